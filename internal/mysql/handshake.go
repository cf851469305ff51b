package mysql

import (
	"encoding/binary"
	"fmt"
)

// Handshake is the server greeting, Protocol::HandshakeV10.
type Handshake struct {
	ProtocolVersion uint8
	ServerVersion   string
	ConnectionID    uint32
	// AuthPluginData is the scramble: part 1 (8 bytes) and part 2 joined,
	// without the NUL that terminates part 2.
	AuthPluginData []byte
	// Capabilities includes MariaDB's extended capabilities in the upper
	// 32 bits when the server is MariaDB (ClientMySQL clear).
	Capabilities      Capability
	Charset           uint8
	Status            uint16
	AuthPluginDataLen uint8
	AuthPlugin        string
	// hasExt: the reserved bytes carried MariaDB's extended capabilities.
	hasExt bool
	// short: the greeting ended after the lower capability flags.
	short bool
}

// IsMariaDB reports whether the greeting comes from a MariaDB server (which
// clears CLIENT_MYSQL to announce extended capabilities).
func (h *Handshake) IsMariaDB() bool { return h.hasExt }

// greetingLayout holds the offsets of the capability fields in a greeting.
type greetingLayout struct {
	capsLow, capsHigh, ext int // -1 when absent
}

// ParseHandshakeV10 decodes the server greeting.
func ParseHandshakeV10(payload []byte) (*Handshake, error) {
	h, _, err := parseHandshake(payload)
	return h, err
}

func parseHandshake(payload []byte) (*Handshake, greetingLayout, error) {
	d := decoder{b: payload, what: "handshake"}
	lay := greetingLayout{-1, -1, -1}
	h := &Handshake{}
	var err error
	if h.ProtocolVersion, err = d.u8("protocol version"); err != nil {
		return nil, lay, err
	}
	if h.ProtocolVersion == headerERR {
		return nil, lay, fmt.Errorf("mysql: handshake: server sent an ERR packet instead of a greeting: %w", ErrMalformed)
	}
	if h.ProtocolVersion != 10 {
		return nil, lay, fmt.Errorf("mysql: handshake: protocol version %d, want 10: %w", h.ProtocolVersion, ErrMalformed)
	}
	v, err := d.nulString("server version")
	if err != nil {
		return nil, lay, err
	}
	h.ServerVersion = string(v)
	if h.ConnectionID, err = d.u32("connection id"); err != nil {
		return nil, lay, err
	}
	part1, err := d.bytes(8, "auth plugin data part 1")
	if err != nil {
		return nil, lay, err
	}
	if err := d.skip(1, "filler"); err != nil {
		return nil, lay, err
	}
	lay.capsLow = d.off
	lo, err := d.u16("capability flags")
	if err != nil {
		return nil, lay, err
	}
	h.Capabilities = Capability(lo)
	h.AuthPluginData = append([]byte(nil), part1...)
	if d.left() == 0 {
		h.short = true
		return h, lay, nil
	}
	if h.Charset, err = d.u8("character set"); err != nil {
		return nil, lay, err
	}
	if h.Status, err = d.u16("status flags"); err != nil {
		return nil, lay, err
	}
	lay.capsHigh = d.off
	hi, err := d.u16("capability flags upper")
	if err != nil {
		return nil, lay, err
	}
	h.Capabilities |= Capability(hi) << 16
	if h.AuthPluginDataLen, err = d.u8("auth plugin data length"); err != nil {
		return nil, lay, err
	}
	reserved, err := d.bytes(10, "reserved")
	if err != nil {
		return nil, lay, err
	}
	if h.Capabilities&ClientMySQL == 0 {
		h.hasExt = true
		lay.ext = d.off - 4
		h.Capabilities |= Capability(binary.LittleEndian.Uint32(reserved[6:])) << 32
	}
	if h.Capabilities&ClientSecureConnection != 0 {
		n := 13
		if int(h.AuthPluginDataLen)-8 > n {
			n = int(h.AuthPluginDataLen) - 8
		}
		part2, err := d.bytes(uint64(n), "auth plugin data part 2")
		if err != nil {
			return nil, lay, err
		}
		if len(part2) > 0 && part2[len(part2)-1] == 0 {
			part2 = part2[:len(part2)-1]
		}
		h.AuthPluginData = append(h.AuthPluginData, part2...)
	}
	if h.Capabilities&ClientPluginAuth != 0 && d.left() > 0 {
		// Some 5.5 servers omit the terminating NUL.
		name := d.rest()
		for i, c := range name {
			if c == 0 {
				name = name[:i]
				break
			}
		}
		h.AuthPlugin = string(name)
	}
	return h, lay, nil
}

// Marshal encodes the greeting.
func (h *Handshake) Marshal() []byte {
	b := make([]byte, 0, 64+len(h.ServerVersion)+len(h.AuthPlugin))
	b = append(b, h.ProtocolVersion)
	b = append(b, h.ServerVersion...)
	b = append(b, 0)
	b = binary.LittleEndian.AppendUint32(b, h.ConnectionID)
	var part1 [8]byte
	copy(part1[:], h.AuthPluginData)
	b = append(b, part1[:]...)
	b = append(b, 0)
	caps := h.Capabilities
	b = binary.LittleEndian.AppendUint16(b, uint16(caps))
	if h.short {
		return b
	}
	b = append(b, h.Charset)
	b = binary.LittleEndian.AppendUint16(b, h.Status)
	b = binary.LittleEndian.AppendUint16(b, uint16(caps>>16))
	if caps&ClientPluginAuth != 0 {
		b = append(b, h.AuthPluginDataLen)
	} else {
		b = append(b, 0)
	}
	b = append(b, 0, 0, 0, 0, 0, 0)
	if caps&ClientMySQL == 0 {
		b = binary.LittleEndian.AppendUint32(b, uint32(caps>>32))
	} else {
		b = append(b, 0, 0, 0, 0)
	}
	if caps&ClientSecureConnection != 0 {
		n := 13
		if int(h.AuthPluginDataLen)-8 > n {
			n = int(h.AuthPluginDataLen) - 8
		}
		part2 := make([]byte, n)
		if len(h.AuthPluginData) > 8 {
			copy(part2[:n-1], h.AuthPluginData[8:])
		}
		b = append(b, part2...)
	}
	if caps&ClientPluginAuth != 0 {
		b = append(b, h.AuthPlugin...)
		b = append(b, 0)
	}
	return b
}

// layoutCaps are the flags that change the layout of the greeting or the
// response: SetCapabilities refuses to toggle them.
const layoutCaps = ClientProtocol41 | ClientSecureConnection | ClientPluginAuth | ClientMySQL

// SetCapabilities rewrites, in place, the capability flags of a greeting
// payload (lower, upper and MariaDB extended parts), for example to clear
// ClientCompress and ClientZstdCompressionAlgorithm or to set or clear
// ClientSSL in the greeting a proxy forwards. Flags that change the packet
// layout cannot be toggled.
func SetCapabilities(payload []byte, caps Capability) error {
	h, lay, err := parseHandshake(payload)
	if err != nil {
		return err
	}
	if (h.Capabilities^caps)&layoutCaps != 0 {
		return fmt.Errorf("mysql: handshake: cannot toggle layout capabilities 0x%x", uint64((h.Capabilities^caps)&layoutCaps))
	}
	if h.short && caps>>16 != 0 {
		return fmt.Errorf("mysql: handshake: greeting has no upper capability flags: %w", ErrMalformed)
	}
	if !h.hasExt && caps>>32 != 0 {
		return fmt.Errorf("mysql: handshake: greeting has no extended capability flags: %w", ErrMalformed)
	}
	binary.LittleEndian.PutUint16(payload[lay.capsLow:], uint16(caps))
	if lay.capsHigh >= 0 {
		binary.LittleEndian.PutUint16(payload[lay.capsHigh:], uint16(caps>>16))
	}
	if lay.ext >= 0 {
		binary.LittleEndian.PutUint32(payload[lay.ext:], uint32(caps>>32))
	}
	return nil
}

// HandshakeResponse is the client's answer to the greeting
// (Protocol::HandshakeResponse41 or HandshakeResponse320).
type HandshakeResponse struct {
	// Capabilities includes MariaDB's extended client capabilities.
	Capabilities  Capability
	MaxPacketSize uint32
	Charset       uint8
	Username      string
	AuthResponse  []byte
	Database      string
	AuthPlugin    string
	Attrs         map[string]string
	ZstdLevel     uint8
	Protocol41    bool
}

// IsSSLRequest reports whether a client packet answering the greeting is an
// SSLRequest: the response cut after the fixed part, with ClientSSL set.
func IsSSLRequest(payload []byte) bool {
	switch len(payload) {
	case 32:
		c := Capability(binary.LittleEndian.Uint32(payload))
		return c&ClientProtocol41 != 0 && c&ClientSSL != 0
	case 5: // pre-4.1 client
		c := Capability(binary.LittleEndian.Uint16(payload))
		return c&ClientProtocol41 == 0 && c&ClientSSL != 0
	}
	return false
}

// ParseHandshakeResponse decodes a handshake response of either protocol
// version, chosen by the client's ClientProtocol41 flag.
func ParseHandshakeResponse(payload []byte) (*HandshakeResponse, error) {
	if len(payload) >= 2 && Capability(payload[1])<<8&ClientProtocol41 == 0 {
		return ParseHandshakeResponse320(payload)
	}
	return ParseHandshakeResponse41(payload)
}

// ParseHandshakeResponse41 decodes Protocol::HandshakeResponse41.
func ParseHandshakeResponse41(payload []byte) (*HandshakeResponse, error) {
	d := decoder{b: payload, what: "handshake response"}
	r := &HandshakeResponse{Protocol41: true}
	c, err := d.u32("capability flags")
	if err != nil {
		return nil, err
	}
	r.Capabilities = Capability(c)
	if r.Capabilities&ClientProtocol41 == 0 {
		return nil, d.malformed("ClientProtocol41 not set")
	}
	if r.MaxPacketSize, err = d.u32("max packet size"); err != nil {
		return nil, err
	}
	if r.Charset, err = d.u8("character set"); err != nil {
		return nil, err
	}
	filler, err := d.bytes(23, "filler")
	if err != nil {
		return nil, err
	}
	if r.Capabilities&ClientMySQL == 0 {
		r.Capabilities |= Capability(binary.LittleEndian.Uint32(filler[19:])) << 32
	}
	if d.left() == 0 {
		return nil, d.malformed("response ends after the fixed part (an SSLRequest?)")
	}
	user, err := d.nulString("username")
	if err != nil {
		return nil, err
	}
	r.Username = string(user)
	var auth []byte
	switch {
	case r.Capabilities&ClientPluginAuthLenencClientData != 0:
		auth, err = d.lenencBytes("auth response")
	case r.Capabilities&ClientSecureConnection != 0:
		var n byte
		if n, err = d.u8("auth response length"); err == nil {
			auth, err = d.bytes(uint64(n), "auth response")
		}
	default:
		auth, err = d.nulString("auth response")
	}
	if err != nil {
		return nil, err
	}
	r.AuthResponse = append([]byte(nil), auth...)
	if r.Capabilities&ClientConnectWithDB != 0 && d.left() > 0 {
		db, err := d.nulString("database")
		if err != nil {
			return nil, err
		}
		r.Database = string(db)
	}
	if r.Capabilities&ClientPluginAuth != 0 && d.left() > 0 {
		name, err := d.nulString("auth plugin name")
		if err != nil {
			return nil, err
		}
		r.AuthPlugin = string(name)
	}
	if r.Capabilities&ClientConnectAttrs != 0 && d.left() > 0 {
		if r.Attrs, err = parseAttrs(&d); err != nil {
			return nil, err
		}
	}
	if r.Capabilities&ClientZstdCompressionAlgorithm != 0 && d.left() > 0 {
		r.ZstdLevel, _ = d.u8("zstd compression level")
	}
	return r, nil
}

// parseAttrs decodes connection attributes: a length-encoded total length,
// then length-encoded key/value pairs.
func parseAttrs(d *decoder) (map[string]string, error) {
	n, err := d.lenencInt("connection attributes length")
	if err != nil {
		return nil, err
	}
	blob, err := d.bytes(n, "connection attributes")
	if err != nil {
		return nil, err
	}
	a := decoder{b: blob, what: d.what + " connection attributes"}
	attrs := make(map[string]string)
	for a.left() > 0 {
		k, err := a.lenencBytes("attribute name")
		if err != nil {
			return nil, err
		}
		v, err := a.lenencBytes("attribute value")
		if err != nil {
			return nil, err
		}
		attrs[string(k)] = string(v)
	}
	return attrs, nil
}

// ParseHandshakeResponse320 decodes the pre-4.1 Protocol::HandshakeResponse320.
func ParseHandshakeResponse320(payload []byte) (*HandshakeResponse, error) {
	d := decoder{b: payload, what: "handshake response 320"}
	r := &HandshakeResponse{}
	c, err := d.u16("capability flags")
	if err != nil {
		return nil, err
	}
	r.Capabilities = Capability(c)
	mp, err := d.bytes(3, "max packet size")
	if err != nil {
		return nil, err
	}
	r.MaxPacketSize = uint32(mp[0]) | uint32(mp[1])<<8 | uint32(mp[2])<<16
	user, err := d.nulString("username")
	if err != nil {
		return nil, err
	}
	r.Username = string(user)
	if r.Capabilities&ClientConnectWithDB != 0 {
		auth, err := d.nulString("auth response")
		if err != nil {
			return nil, err
		}
		r.AuthResponse = append([]byte(nil), auth...)
		if d.left() > 0 {
			db, err := d.nulString("database")
			if err != nil {
				return nil, err
			}
			r.Database = string(db)
		}
		return r, nil
	}
	auth := d.rest()
	if len(auth) > 0 && auth[len(auth)-1] == 0 {
		auth = auth[:len(auth)-1]
	}
	r.AuthResponse = append([]byte(nil), auth...)
	return r, nil
}

// SetResponseCapabilities rewrites, in place, the capability flags of a
// HandshakeResponse41 or SSLRequest payload. Layout flags cannot be toggled.
func SetResponseCapabilities(payload []byte, caps Capability) error {
	if len(payload) < 32 {
		return fmt.Errorf("mysql: handshake response: %d bytes, want at least 32: %w", len(payload), ErrMalformed)
	}
	old := Capability(binary.LittleEndian.Uint32(payload))
	// Clearing ClientZstdCompressionAlgorithm leaves the level byte at the end,
	// which servers ignore.
	if (old^caps)&(layoutCaps|ClientPluginAuthLenencClientData|ClientConnectWithDB|ClientConnectAttrs) != 0 {
		return fmt.Errorf("mysql: handshake response: cannot toggle layout capabilities 0x%x", uint64(old^caps))
	}
	binary.LittleEndian.PutUint32(payload, uint32(caps))
	if caps&ClientMySQL == 0 {
		binary.LittleEndian.PutUint32(payload[28:], uint32(caps>>32))
	}
	return nil
}
