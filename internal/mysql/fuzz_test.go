package mysql

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

func FuzzParseHandshakeResponse(f *testing.F) {
	f.Add(response41(mysql8Caps, "alice", bytes.Repeat([]byte{7}, 32), "shop", "caching_sha2_password", [][2]string{{"a", "b"}}))
	f.Add(response41(mariadbCaps, "u", []byte("x"), "d", "p", nil))
	f.Add(greeting("8.0.36", mysql8Caps, "caching_sha2_password"))
	f.Fuzz(func(t *testing.T, p []byte) {
		r, err := ParseHandshakeResponse(p)
		if err == nil && r == nil {
			t.Fatal("nil response without error")
		}
		if h, err := ParseHandshakeV10(p); err == nil {
			m := h.Marshal()
			if _, err := ParseHandshakeV10(m); err != nil {
				t.Fatalf("marshalled greeting does not parse: %v", err)
			}
			_ = SetCapabilities(bytes.Clone(p), h.Capabilities&^ClientCompress)
		}
		l := NewLogin()
		_, _ = l.ServerPacket(p)
		_, _ = l.ClientPacket(p)
		_, _ = l.ServerPacket(p)
	})
}

func FuzzParseCommand(f *testing.F) {
	f.Add(cQuery("SELECT 1"), uint16(0))
	f.Add([]byte("\x03\x01\x01\x00\x01\xfd\x00\x01a\x01bSELECT"), uint16(1))
	f.Add(cExecute(1, 0, true, false, []execParam{{t: TypeDateTime, val: []byte{4, 0xe8, 7, 1, 2}}, {t: TypeTime, val: []byte{0}}}), uint16(2))
	f.Add(cExecute(1, 8, true, true, []execParam{{t: TypeLong, val: le32(1), name: "n"}}), uint16(3))
	f.Add(cat([]byte{byte(ComChangeUser)}, []byte("bob\x00"), []byte{1, 'x'}, []byte("db\x00"), le16(8), []byte("p\x00")), uint16(0))
	f.Fuzz(func(t *testing.T, p []byte, params uint16) {
		caps := baseCaps | ClientConnectAttrs
		if params&1 != 0 {
			caps |= ClientQueryAttributes
		}
		_, _ = ParseCommand(p, caps)
		st := &Stmt{ID: 1, NumParams: params % 300}
		_, _ = ParseStmtExecute(p, caps, st)
		_, _ = ParseStmtExecute(p, caps, st) // with whatever types were bound
		s := NewSession(caps)
		s.stmts[1] = &Stmt{ID: 1, NumParams: params % 8}
		_, _ = s.ClientCommand(p)
	})
}

// FuzzSessionServerPackets feeds a command and a stream of server packets
// (split on a separator) to a session: it must never panic, whatever the order.
func FuzzSessionServerPackets(f *testing.F) {
	join := func(pkts ...[]byte) []byte { return bytes.Join(pkts, []byte("|#|")) }
	f.Add(byte(ComQuery), uint8(0), join(resultSet(false, 0, []string{"a"}, pTextRow([]byte("1")))...))
	f.Add(byte(ComQuery), uint8(1), join(resultSet(true, StatusMoreResultsExists, []string{"a"}, pTextRow(nil))...))
	f.Add(byte(ComStmtPrepare), uint8(0), join(pPrepareOK(1, 1, 1), pColDef("?", TypeLong), pEOF(0, 0), pColDef("a", TypeLong), pEOF(0, 0)))
	f.Add(byte(ComStmtExecute), uint8(2), join(pColCount(1), pColDef("a", TypeLong), pBinRow(1), pOKEOF(StatusCursorExists, 0, "")))
	f.Add(byte(ComQuery), uint8(0), join([]byte("\xfbfile"), pOK(1, 0, 0, 0)))
	f.Add(byte(ComChangeUser), uint8(0), join([]byte("\xfeplugin\x00data"), []byte{1, 3}, pOK(0, 0, 0, 0)))
	f.Add(byte(ComStmtFetch), uint8(1), join(pBinRow(1), pEOF(StatusLastRowSent, 0)))
	f.Fuzz(func(t *testing.T, code byte, flags uint8, stream []byte) {
		caps := baseCaps
		if flags&1 != 0 {
			caps |= ClientDeprecateEOF
		}
		if flags&4 != 0 {
			caps |= MariaDBClientCacheMetadata | ClientOptionalResultsetMetadata
		}
		s := NewSession(caps)
		s.stmts[1] = &Stmt{ID: 1}
		cmd := []byte{code, 1, 0, 0, 0}
		if flags&2 != 0 && code == byte(ComStmtExecute) {
			cmd = append(cmd, CursorTypeReadOnly)
		} else {
			cmd = append(cmd, 0)
		}
		cmd = append(cmd, 1, 0, 0, 0)
		_, _ = s.ClientCommand(cmd)
		for _, p := range bytes.Split(stream, []byte("|#|")) {
			if s.AwaitingClientData() {
				_ = s.ClientPacket(nil)
			}
			if _, err := s.ServerPacket(p); err != nil {
				return
			}
		}
	})
}

func FuzzReadPacket(f *testing.F) {
	w, _ := AppendPacket(nil, 0, []byte("hello"))
	f.Add(w, 100)
	w, _ = AppendPacket(nil, 0, nil)
	f.Add(w, 0)
	f.Add([]byte{0xff, 0xff, 0xff, 0, 1, 2}, 1<<20)
	f.Add([]byte{3, 0, 0, 0, 1, 2}, 2)
	f.Fuzz(func(t *testing.T, wire []byte, maxLen int) {
		if maxLen <= 0 || maxLen > 1<<20 {
			maxLen = 1 << 20 // bound what a fuzzed header can make us allocate
		}
		// ScanPacket over the whole input finds the packets ReadPacket
		// reads, and fails where it fails (an incomplete packet at the end
		// is ReadPacket's unexpected EOF).
		r := bufio.NewReader(bytes.NewReader(wire))
		rest := wire
		for {
			p, seq, err := ReadPacket(r, nil, maxLen)
			end, sseq, need, serr := ScanPacket(rest, maxLen)
			if err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					if serr != nil || end != 0 || (len(rest) > 0 && need <= len(rest)) {
						t.Fatalf("ReadPacket: %v; ScanPacket: end %d need %d of %d, %v", err, end, need, len(rest), serr)
					}
				} else if serr == nil || serr.Error() != err.Error() {
					t.Fatalf("ReadPacket: %v; ScanPacket: %v", err, serr)
				}
				break
			}
			if serr != nil || end == 0 || sseq != seq || !bytes.Equal(PacketPayload(rest[:end]), p) {
				t.Fatalf("ReadPacket read %d bytes (seq %d); ScanPacket: end %d seq %d, %v", len(p), seq, end, sseq, serr)
			}
			if len(p) > maxLen {
				t.Fatalf("payload %d > max %d", len(p), maxLen)
			}
			rest = rest[end:]
		}
		r = bufio.NewReader(bytes.NewReader(wire))
		var relayed []byte
		for {
			fr, _, err := ReadFrame(r, nil)
			if err != nil {
				break
			}
			relayed = append(relayed, fr...)
		}
		if !bytes.HasPrefix(wire, relayed) {
			t.Fatal("relayed frames differ from the input")
		}
	})
}
