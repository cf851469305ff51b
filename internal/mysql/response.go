package mysql

import (
	"encoding/binary"
	"fmt"
)

// OK is a decoded OK packet (also the OK-with-0xFE-header that replaces EOF
// under CLIENT_DEPRECATE_EOF).
type OK struct {
	AffectedRows uint64
	LastInsertID uint64
	Status       uint16
	Warnings     uint16
	Info         []byte // human-readable info; aliases the payload
}

// ERR is a decoded ERR packet.
type ERR struct {
	Code     uint16
	SQLState string // empty when the packet carries none (errors during the handshake)
	Message  string
}

func (e ERR) Error() string {
	if e.SQLState == "" {
		return fmt.Sprintf("ERROR %d: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("ERROR %d (%s): %s", e.Code, e.SQLState, e.Message)
}

// IsOK reports whether payload is an OK packet (header 0x00) in a position
// where an OK packet is possible. It does not look further than the header.
func IsOK(payload []byte) bool { return len(payload) > 0 && payload[0] == headerOK }

// IsERR reports whether payload starts with the ERR header 0xFF.
func IsERR(payload []byte) bool { return len(payload) > 0 && payload[0] == headerERR }

// IsEOF reports whether payload is an EOF packet: header 0xFE and shorter
// than 9 bytes (longer 0xFE packets are rows or OK-as-EOF packets).
func IsEOF(payload []byte) bool {
	return len(payload) > 0 && payload[0] == headerEOF && len(payload) < 9
}

// ParseOK decodes an OK packet (header 0x00 or 0xFE). Session state
// information is skipped.
func ParseOK(payload []byte, caps Capability) (OK, error) {
	d := decoder{b: payload, what: "OK packet"}
	var ok OK
	h, err := d.u8("header")
	if err != nil {
		return ok, err
	}
	if h != headerOK && h != headerEOF {
		return ok, d.malformed("header 0x%02x, want 0x00 or 0xfe", h)
	}
	if ok.AffectedRows, err = d.lenencInt("affected rows"); err != nil {
		return ok, err
	}
	if ok.LastInsertID, err = d.lenencInt("last insert id"); err != nil {
		return ok, err
	}
	if caps&ClientProtocol41 != 0 {
		if ok.Status, err = d.u16("status flags"); err != nil {
			return ok, err
		}
		if ok.Warnings, err = d.u16("warnings"); err != nil {
			return ok, err
		}
	} else if caps&ClientTransactions != 0 {
		if ok.Status, err = d.u16("status flags"); err != nil {
			return ok, err
		}
	}
	if caps&ClientSessionTrack != 0 {
		// Info is length-encoded, and servers may omit it entirely.
		if d.left() > 0 {
			if ok.Info, err = d.lenencBytes("info"); err != nil {
				return ok, err
			}
		}
		// Session state changes follow; not needed.
	} else {
		ok.Info = d.rest()
	}
	return ok, nil
}

// ParseERR decodes an ERR packet. The SQL state marker '#' is optional: the
// server omits it before capabilities are agreed (errors sent instead of the
// greeting) and for clients without CLIENT_PROTOCOL_41.
func ParseERR(payload []byte, caps Capability) (ERR, error) {
	d := decoder{b: payload, what: "ERR packet"}
	var e ERR
	h, err := d.u8("header")
	if err != nil {
		return e, err
	}
	if h != headerERR {
		return e, d.malformed("header 0x%02x, want 0xff", h)
	}
	if e.Code, err = d.u16("error code"); err != nil {
		return e, err
	}
	if d.left() >= 6 && payload[d.off] == '#' {
		e.SQLState = string(payload[d.off+1 : d.off+6])
		d.off += 6
	}
	e.Message = string(d.rest())
	return e, nil
}

// ParseEOF decodes an EOF packet (warnings, status flags). A pre-4.1 EOF is
// the single byte 0xFE.
func ParseEOF(payload []byte) (warnings, status uint16, err error) {
	if !IsEOF(payload) {
		return 0, 0, fmt.Errorf("mysql: EOF packet: %d bytes starting 0x%02x is not an EOF: %w", len(payload), first(payload), ErrMalformed)
	}
	if len(payload) >= 5 {
		warnings = binary.LittleEndian.Uint16(payload[1:])
		status = binary.LittleEndian.Uint16(payload[3:])
	}
	return warnings, status, nil
}

func first(b []byte) byte {
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// ErrorPacket builds the payload of an ERR packet with a SQL state (which
// must be 5 characters; it is padded or cut to fit) for a client that speaks
// protocol 4.1. Frame it with AppendPacket or WritePacket.
func ErrorPacket(code uint16, sqlState, msg string) []byte {
	b := make([]byte, 0, 9+len(msg))
	b = append(b, headerERR, byte(code), byte(code>>8), '#')
	st := sqlState + "HY000"[min(len(sqlState), 5):]
	b = append(b, st[:5]...)
	return append(b, msg...)
}

// ErrorPacketNoState builds an ERR payload without SQL state, as a server
// sends before the handshake (instead of the greeting).
func ErrorPacketNoState(code uint16, msg string) []byte {
	b := make([]byte, 0, 3+len(msg))
	b = append(b, headerERR, byte(code), byte(code>>8))
	return append(b, msg...)
}

// OKPacket builds the payload of an OK packet for a protocol 4.1 client.
func OKPacket(affectedRows, lastInsertID uint64, status, warnings uint16) []byte {
	b := []byte{headerOK}
	b = AppendLenenc(b, affectedRows)
	b = AppendLenenc(b, lastInsertID)
	return append(b, byte(status), byte(status>>8), byte(warnings), byte(warnings>>8))
}
