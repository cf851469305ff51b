package mysql

import "bytes"

// AuthKind classifies a server packet of an authentication exchange (after
// the handshake response, and after COM_CHANGE_USER).
type AuthKind uint8

const (
	AuthNone       AuthKind = iota
	AuthOK                  // authentication succeeded (OK packet)
	AuthFailed              // authentication failed (ERR packet)
	AuthSwitch              // 0xFE: switch to another plugin
	AuthMoreData            // 0x01: plugin-specific data (caching_sha2 fast/full auth, RSA key, parsec salt)
	AuthNextFactor          // 0x02: MySQL multi-factor authentication, next factor
)

// caching_sha2_password more-data codes.
const (
	CachingSHA2FastAuthOK = 0x03
	CachingSHA2FullAuth   = 0x04
	CachingSHA2RequestKey = 0x02 // sent by the client
)

// AuthPacket is a decoded server packet of an authentication exchange.
type AuthPacket struct {
	Kind   AuthKind
	Plugin string // AuthSwitch, AuthNextFactor
	Data   []byte // plugin data; aliases the payload
	OK     OK
	Err    ERR
	// ClientNext: the client answers this packet (false for OK, ERR and
	// caching_sha2_password's fast-auth success, after which the server
	// sends OK itself).
	ClientNext bool
}

// ParseAuthPacket classifies a server packet in the authentication phase.
// In that phase the first byte is unambiguous: plugin data is always wrapped
// in 0x01.
func ParseAuthPacket(payload []byte, caps Capability) (AuthPacket, error) {
	var a AuthPacket
	d := decoder{b: payload, what: "authentication packet"}
	if len(payload) == 0 {
		return a, d.malformed("empty packet")
	}
	switch payload[0] {
	case headerOK:
		ok, err := ParseOK(payload, caps)
		a.Kind, a.OK = AuthOK, ok
		return a, err
	case headerERR:
		e, err := ParseERR(payload, caps)
		a.Kind, a.Err = AuthFailed, e
		return a, err
	case headerEOF:
		a.Kind, a.ClientNext = AuthSwitch, true
		if len(payload) == 1 {
			// Old auth switch request: use mysql_old_password.
			a.Plugin = "mysql_old_password"
			return a, nil
		}
		d.off = 1
		name, err := d.nulString("plugin name")
		if err != nil {
			return a, err
		}
		a.Plugin, a.Data = string(name), d.rest()
		return a, nil
	case headerAuthMore:
		a.Kind, a.Data = AuthMoreData, payload[1:]
		a.ClientNext = !bytes.Equal(a.Data, []byte{CachingSHA2FastAuthOK})
		return a, nil
	case headerAuthNext:
		a.Kind, a.ClientNext = AuthNextFactor, true
		d.off = 1
		name, err := d.nulString("plugin name")
		if err != nil {
			return a, err
		}
		a.Plugin, a.Data = string(name), d.rest()
		return a, nil
	}
	return a, d.malformed("unexpected header 0x%02x in the authentication phase", payload[0])
}
