package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/das-mysql/das/internal/mysql"
)

// rawClient speaks the protocol by hand, for what drivers do not send.
type rawClient struct {
	t        testing.TB
	c        net.Conn
	r        *bufio.Reader
	scramble []byte
	caps     mysql.Capability
	id       string         // the connection id in the greeting
	ms       *mysql.Session // tells when a response is complete
}

const rawCaps = mysql.ClientLongPassword | mysql.ClientLongFlag | mysql.ClientConnectWithDB |
	mysql.ClientProtocol41 | mysql.ClientTransactions | mysql.ClientSecureConnection |
	mysql.ClientMultiResults | mysql.ClientPluginAuth

func nativePassword(scramble []byte, pw string) []byte {
	if pw == "" {
		return nil
	}
	h1 := sha1.Sum([]byte(pw))
	h2 := sha1.Sum(h1[:])
	h := sha1.New()
	h.Write(scramble[:20])
	h.Write(h2[:])
	out := h.Sum(nil)
	for i := range out {
		out[i] ^= h1[i]
	}
	return out
}

// dialRaw logs in with mysql_native_password; it fails the test unless OK.
func dialRaw(t testing.TB, addr, user, pw, db string) *rawClient {
	t.Helper()
	return dialRawCaps(t, addr, user, pw, db, rawCaps)
}

// dialRawCaps is dialRaw with the capabilities of the handshake response,
// which it sends as they are, whatever the greeting offered.
func dialRawCaps(t testing.TB, addr, user, pw, db string, caps mysql.Capability) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	rc := &rawClient{t: t, c: c, r: bufio.NewReader(c)}
	g, _ := rc.read()
	h, err := mysql.ParseHandshakeV10(g)
	if err != nil {
		t.Fatal(err)
	}
	rc.scramble = h.AuthPluginData
	rc.id = strconv.FormatUint(uint64(h.ConnectionID), 10)
	rc.caps = rawCaps & h.Capabilities
	var b []byte
	b = binary.LittleEndian.AppendUint32(b, uint32(caps))
	b = binary.LittleEndian.AppendUint32(b, 1<<24)
	b = append(b, 45)
	b = append(b, make([]byte, 23)...)
	b = append(append(b, user...), 0)
	auth := nativePassword(rc.scramble, pw)
	b = append(append(b, byte(len(auth))), auth...)
	b = append(append(b, db...), 0)
	b = append(append(b, "mysql_native_password"...), 0)
	rc.write(1, b)
	if p, _ := rc.read(); !mysql.IsOK(p) {
		t.Fatalf("raw login: %q", p)
	}
	rc.ms = mysql.NewSession(rc.caps)
	return rc
}

func (rc *rawClient) read() ([]byte, uint8) {
	rc.t.Helper()
	p, seq, err := mysql.ReadPacket(rc.r, nil, 0)
	if err != nil {
		rc.t.Fatalf("raw client read: %v", err)
	}
	return p, seq
}

func (rc *rawClient) write(seq uint8, p []byte) {
	rc.t.Helper()
	if _, err := mysql.WritePacket(rc.c, seq, p); err != nil {
		rc.t.Fatal(err)
	}
}

// command sends a command and reads its whole response, returning the
// outcomes (and the statement of a prepare).
func (rc *rawClient) command(p []byte) []mysql.ServerEvent {
	rc.t.Helper()
	if _, err := rc.ms.ClientCommand(p); err != nil {
		rc.t.Fatal(err)
	}
	rc.write(0, p)
	var evs []mysql.ServerEvent
	for rc.ms.InFlight() > 0 {
		pkt, _ := rc.read()
		ev, err := rc.ms.ServerPacket(pkt)
		if err != nil {
			rc.t.Fatal(err)
		}
		if ev.Kind != mysql.EventNone {
			evs = append(evs, ev)
		}
	}
	return evs
}

// changeUser sends COM_CHANGE_USER and answers an auth switch; it returns
// the final packet (OK or ERR).
func (rc *rawClient) changeUser(user, pw, db string) []byte {
	rc.t.Helper()
	b := []byte{byte(mysql.ComChangeUser)}
	b = append(append(b, user...), 0)
	auth := nativePassword(rc.scramble, pw)
	b = append(append(b, byte(len(auth))), auth...)
	b = append(append(b, db...), 0)
	b = append(b, 45, 0)
	b = append(append(b, "mysql_native_password"...), 0)
	rc.write(0, b)
	p, seq := rc.read()
	if len(p) > 0 && p[0] == 0xfe { // auth switch: answer with the new scramble
		rest := p[1:]
		i := bytes.IndexByte(rest, 0)
		data := bytes.TrimRight(rest[i+1:], "\x00")
		rc.write(seq+1, nativePassword(data, pw))
		p, _ = rc.read()
	}
	return p
}
