//go:build linux

package proxy

import (
	"testing"

	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/mysql"
)

// FuzzRelayInput feeds arbitrary client and server bytes, in small pieces, to
// the framing the event loops use (clientInput, serverInput) and the state
// machine behind it. Any input may end the session with an error; none may
// panic, claim more bytes than it was given, or ask for a buffer it already
// has while making no progress.
func FuzzRelayInput(f *testing.F) {
	frame := func(seq byte, payload ...byte) []byte {
		n := len(payload)
		return append([]byte{byte(n), byte(n >> 8), byte(n >> 16), seq}, payload...)
	}
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	ok := frame(1, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00)
	f.Add(frame(0, 0x0e), ok, uint8(3))                          // COM_PING
	f.Add(frame(0, append([]byte{0x03}, "SELECT 1"...)...), cat( // one-row result set
		frame(1, 0x01),
		frame(2, 0x03, 'd', 'e', 'f', 0, 0, 0, 1, '1', 0, 0x0c, 0x3f, 0, 1, 0, 0, 0, 0x08, 0x81, 0, 0, 0, 0),
		frame(3, 0xfe, 0, 0, 0x02, 0),
		frame(4, 0x01, '1'),
		frame(5, 0xfe, 0, 0, 0x02, 0)), uint8(5))
	f.Add(frame(0, append([]byte{0x16}, "SELECT ?"...)...), frame(1, 0x00, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0), uint8(1)) // prepare
	f.Add(cat(frame(0, 0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0x08, 0, 5, 0, 0, 0, 0, 0, 0, 0)), ok, uint8(2))         // execute
	f.Add([]byte{0xff, 0xff, 0xff, 0, 1, 2, 3}, []byte{0xff, 0xff, 0xff, 1}, uint8(1))                                 // continued frames, cut short
	f.Fuzz(func(t *testing.T, client, server []byte, chunk uint8) {
		step := int(chunk%16) + 1
		p := New(Options{Upstream: "127.0.0.1:1", MaxPacket: 1 << 16, EventLoops: -1}, &memSink{})
		s := &session{p: p, log: p.log, cfd: -1, sfd: -1, cursors: make(map[uint32]*event.Event),
			ms: mysql.NewSession(mysql.ClientProtocol41 | mysql.ClientSecureConnection | mysql.ClientPluginAuth |
				mysql.ClientMultiStatements | mysql.ClientMultiResults | mysql.ClientPSMultiResults | mysql.ClientDeprecateEOF)}
		feed := func(in func([]byte) (int, bool, int, error), data []byte) bool {
			var buf []byte
			for len(data) > 0 {
				n := min(step, len(data))
				buf, data = append(buf, data[:n]...), data[n:]
				used, hold, need, err := in(buf)
				if used < 0 || used > len(buf) {
					t.Fatalf("used %d of %d bytes", used, len(buf))
				}
				if hold { // async: nothing is held
					t.Fatal("held with no sync event")
				}
				if err != nil {
					return false
				}
				if need <= len(buf) && used == 0 && len(buf) > 0 {
					t.Fatalf("no progress on %d bytes, yet asks for %d", len(buf), need)
				}
				buf = buf[used:]
			}
			return true
		}
		if feed(s.clientInput, client) {
			feed(s.serverInput, server)
		}
		s.endErr = errClientClosed // what the loop sets before the session's goroutine finishes
		s.finish()
	})
}
