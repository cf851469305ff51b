package mysql

import (
	"encoding/binary"
	"fmt"
)

// decoder reads protocol fields from a payload and builds precise errors
// naming the structure, the offset and the field that did not fit.
type decoder struct {
	b    []byte
	off  int
	what string // "handshake response", "COM_STMT_EXECUTE", ...
}

func (d *decoder) left() int { return len(d.b) - d.off }

func (d *decoder) truncated(field string, need uint64) error {
	return fmt.Errorf("mysql: %s: truncated at offset %d (%s length %d > %d bytes left): %w",
		d.what, d.off, field, need, d.left(), ErrMalformed)
}

func (d *decoder) malformed(format string, args ...any) error {
	return fmt.Errorf("mysql: %s: at offset %d: %s: %w", d.what, d.off, fmt.Sprintf(format, args...), ErrMalformed)
}

func (d *decoder) u8(field string) (byte, error) {
	if d.left() < 1 {
		return 0, d.truncated(field, 1)
	}
	v := d.b[d.off]
	d.off++
	return v, nil
}

func (d *decoder) u16(field string) (uint16, error) {
	if d.left() < 2 {
		return 0, d.truncated(field, 2)
	}
	v := binary.LittleEndian.Uint16(d.b[d.off:])
	d.off += 2
	return v, nil
}

func (d *decoder) u32(field string) (uint32, error) {
	if d.left() < 4 {
		return 0, d.truncated(field, 4)
	}
	v := binary.LittleEndian.Uint32(d.b[d.off:])
	d.off += 4
	return v, nil
}

func (d *decoder) u64(field string) (uint64, error) {
	if d.left() < 8 {
		return 0, d.truncated(field, 8)
	}
	v := binary.LittleEndian.Uint64(d.b[d.off:])
	d.off += 8
	return v, nil
}

func (d *decoder) bytes(n uint64, field string) ([]byte, error) {
	if n > uint64(d.left()) {
		return nil, d.truncated(field, n)
	}
	v := d.b[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return v, nil
}

func (d *decoder) skip(n uint64, field string) error {
	_, err := d.bytes(n, field)
	return err
}

// lenenc reads a length-encoded integer. null reports the 0xFB marker.
func (d *decoder) lenenc(field string) (v uint64, null bool, err error) {
	if d.left() < 1 {
		return 0, false, d.truncated(field, 1)
	}
	switch c := d.b[d.off]; {
	case c < 0xfb:
		d.off++
		return uint64(c), false, nil
	case c == 0xfb:
		d.off++
		return 0, true, nil
	case c == 0xfc:
		if d.left() < 3 {
			return 0, false, d.truncated(field, 3)
		}
		v = uint64(d.b[d.off+1]) | uint64(d.b[d.off+2])<<8
		d.off += 3
	case c == 0xfd:
		if d.left() < 4 {
			return 0, false, d.truncated(field, 4)
		}
		v = uint64(d.b[d.off+1]) | uint64(d.b[d.off+2])<<8 | uint64(d.b[d.off+3])<<16
		d.off += 4
	case c == 0xfe:
		if d.left() < 9 {
			return 0, false, d.truncated(field, 9)
		}
		v = binary.LittleEndian.Uint64(d.b[d.off+1:])
		d.off += 9
	default:
		return 0, false, d.malformed("%s: invalid length-encoded integer prefix 0xff", field)
	}
	return v, false, nil
}

// lenencInt is lenenc where NULL is not allowed.
func (d *decoder) lenencInt(field string) (uint64, error) {
	v, null, err := d.lenenc(field)
	if err == nil && null {
		d.off--
		return 0, d.malformed("%s: unexpected NULL (0xfb)", field)
	}
	return v, err
}

func (d *decoder) lenencBytes(field string) ([]byte, error) {
	n, err := d.lenencInt(field)
	if err != nil {
		return nil, err
	}
	return d.bytes(n, field)
}

// nulString reads up to a NUL byte; the NUL is consumed.
func (d *decoder) nulString(field string) ([]byte, error) {
	for i := d.off; i < len(d.b); i++ {
		if d.b[i] == 0 {
			v := d.b[d.off:i:i]
			d.off = i + 1
			return v, nil
		}
	}
	return nil, d.malformed("%s: missing NUL terminator", field)
}

func (d *decoder) rest() []byte {
	v := d.b[d.off:len(d.b):len(d.b)]
	d.off = len(d.b)
	return v
}

// Encoding helpers, used by the builders and by tests.

// AppendLenenc appends v as a length-encoded integer.
func AppendLenenc(b []byte, v uint64) []byte {
	switch {
	case v < 0xfb:
		return append(b, byte(v))
	case v < 1<<16:
		return append(b, 0xfc, byte(v), byte(v>>8))
	case v < 1<<24:
		return append(b, 0xfd, byte(v), byte(v>>8), byte(v>>16))
	default:
		b = append(b, 0xfe)
		return binary.LittleEndian.AppendUint64(b, v)
	}
}

// AppendLenencString appends s prefixed with its length-encoded length.
func AppendLenencString(b []byte, s []byte) []byte {
	return append(AppendLenenc(b, uint64(len(s))), s...)
}
