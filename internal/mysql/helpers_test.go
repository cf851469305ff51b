package mysql

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// readHex loads a golden fixture: hex bytes, '#' comments.
func readHex(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		sb.WriteString(strings.ReplaceAll(line, " ", ""))
	}
	b, err := hex.DecodeString(sb.String())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Builders of server packets, written from the protocol documentation.

func pOK(affected, insertID uint64, status, warnings uint16) []byte {
	return OKPacket(affected, insertID, status, warnings)
}

// pOKEOF is the OK packet with a 0xFE header that ends a result set under
// CLIENT_DEPRECATE_EOF.
func pOKEOF(status, warnings uint16, info string) []byte {
	b := []byte{0xfe, 0, 0, byte(status), byte(status >> 8), byte(warnings), byte(warnings >> 8)}
	if info != "" {
		b = append(b, info...)
	}
	return b
}

func pEOF(status, warnings uint16) []byte {
	return []byte{0xfe, byte(warnings), byte(warnings >> 8), byte(status), byte(status >> 8)}
}

func pERR(code uint16, state, msg string) []byte { return ErrorPacket(code, state, msg) }

func pColCount(n uint64) []byte { return AppendLenenc(nil, n) }

func pColDef(name string, t FieldType) []byte {
	var b []byte
	for _, s := range []string{"def", "test", "t", "t", name, name} {
		b = AppendLenencString(b, []byte(s))
	}
	b = append(b, 0x0c, 0x21, 0x00) // fixed length, charset utf8
	b = binary.LittleEndian.AppendUint32(b, 255)
	b = append(b, byte(t), 0, 0, 0, 0, 0)
	return b
}

// pTextRow builds a text row; nil is NULL.
func pTextRow(vals ...[]byte) []byte {
	var b []byte
	for _, v := range vals {
		if v == nil {
			b = append(b, 0xfb)
		} else {
			b = AppendLenencString(b, v)
		}
	}
	return b
}

// pBinRow builds a binary row of n columns, all non-NULL LONGs.
func pBinRow(vals ...uint32) []byte {
	b := []byte{0x00}
	b = append(b, make([]byte, (len(vals)+7+2)/8)...)
	for _, v := range vals {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	return b
}

func pPrepareOK(id uint32, cols, params uint16) []byte {
	b := []byte{0x00}
	b = binary.LittleEndian.AppendUint32(b, id)
	b = binary.LittleEndian.AppendUint16(b, cols)
	b = binary.LittleEndian.AppendUint16(b, params)
	return append(b, 0, 0, 0)
}

// Builders of client packets.

func cQuery(q string) []byte { return append([]byte{byte(ComQuery)}, q...) }

func cStmt(code CommandCode, id uint32, extra ...byte) []byte {
	b := binary.LittleEndian.AppendUint32([]byte{byte(code)}, id)
	return append(b, extra...)
}

// execParam is one parameter for cExecute.
type execParam struct {
	t        FieldType
	unsigned bool
	null     bool
	name     string
	val      []byte // binary value, already encoded
}

// cExecute builds COM_STMT_EXECUTE. sendTypes sets new-params-bound-flag;
// qa adds CLIENT_QUERY_ATTRIBUTES' parameter count and names.
func cExecute(id uint32, flags byte, sendTypes, qa bool, params []execParam) []byte {
	b := cStmt(ComStmtExecute, id, flags, 1, 0, 0, 0)
	if len(params) == 0 && !qa {
		return b
	}
	if qa {
		b = AppendLenenc(b, uint64(len(params)))
	}
	if len(params) == 0 {
		return b
	}
	nullmap := make([]byte, (len(params)+7)/8)
	for i, p := range params {
		if p.null {
			nullmap[i/8] |= 1 << (i % 8)
		}
	}
	b = append(b, nullmap...)
	if sendTypes {
		b = append(b, 1)
		for _, p := range params {
			fl := byte(0)
			if p.unsigned {
				fl = 0x80
			}
			b = append(b, byte(p.t), fl)
			if qa {
				b = AppendLenencString(b, []byte(p.name))
			}
		}
	} else {
		b = append(b, 0)
	}
	for _, p := range params {
		if !p.null {
			b = append(b, p.val...)
		}
	}
	return b
}

func le16(v uint16) []byte       { return binary.LittleEndian.AppendUint16(nil, v) }
func le32(v uint32) []byte       { return binary.LittleEndian.AppendUint32(nil, v) }
func le64(v uint64) []byte       { return binary.LittleEndian.AppendUint64(nil, v) }
func lenenc(s string) []byte     { return AppendLenencString(nil, []byte(s)) }
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
