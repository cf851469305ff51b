package mysql

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

func TestParseHandshakeV10Golden(t *testing.T) {
	frame := readHex(t, "handshake_v10_mysql55.hex")
	payload := frame[HeaderLen:]
	h, err := ParseHandshakeV10(payload)
	if err != nil {
		t.Fatal(err)
	}
	if h.ProtocolVersion != 10 || h.ServerVersion != "5.5.2-m2" || h.ConnectionID != 11 {
		t.Errorf("header fields: %+v", h)
	}
	wantScramble := []byte("dvH@I-CJ*4d|cZwk4^]:")
	if !bytes.Equal(h.AuthPluginData, wantScramble) {
		t.Errorf("scramble %q, want %q", h.AuthPluginData, wantScramble)
	}
	if h.Capabilities != 0x800ff7ff || h.Charset != 8 || h.Status != StatusAutocommit || h.AuthPluginDataLen != 21 {
		t.Errorf("caps 0x%x charset %d status %d len %d", uint64(h.Capabilities), h.Charset, h.Status, h.AuthPluginDataLen)
	}
	if h.AuthPlugin != "" || h.IsMariaDB() {
		t.Errorf("plugin %q mariadb %v", h.AuthPlugin, h.IsMariaDB())
	}
}

// greeting builds a HandshakeV10 like MySQL 8 or MariaDB send.
func greeting(version string, caps Capability, plugin string) []byte {
	b := []byte{10}
	b = append(b, version...)
	b = append(b, 0)
	b = append(b, le32(42)...)
	b = append(b, "abcdefgh"...)
	b = append(b, 0)
	b = append(b, le16(uint16(caps))...)
	b = append(b, 0xff)
	b = append(b, le16(StatusAutocommit)...)
	b = append(b, le16(uint16(caps>>16))...)
	b = append(b, 21)
	b = append(b, 0, 0, 0, 0, 0, 0)
	b = append(b, le32(uint32(caps>>32))...)
	b = append(b, "ijklmnopqrst"...)
	b = append(b, 0)
	b = append(b, plugin...)
	return append(b, 0)
}

const mysql8Caps = ClientLongPassword | ClientFoundRows | ClientLongFlag | ClientConnectWithDB | ClientNoSchema |
	ClientCompress | ClientODBC | ClientLocalFiles | ClientIgnoreSpace | ClientProtocol41 | ClientInteractive |
	ClientSSL | ClientIgnoreSigpipe | ClientTransactions | ClientReserved | ClientSecureConnection |
	ClientMultiStatements | ClientMultiResults | ClientPSMultiResults | ClientPluginAuth | ClientConnectAttrs |
	ClientPluginAuthLenencClientData | ClientCanHandleExpiredPasswords | ClientSessionTrack | ClientDeprecateEOF |
	ClientZstdCompressionAlgorithm | ClientQueryAttributes

const mariadbCaps = (mysql8Caps &^ (ClientLongPassword | ClientZstdCompressionAlgorithm | ClientQueryAttributes)) |
	MariaDBClientProgress | MariaDBClientStmtBulkOperations | MariaDBClientExtendedMetadata | MariaDBClientCacheMetadata

func TestHandshakeMarshalAndSetCapabilities(t *testing.T) {
	for _, tc := range []struct {
		name, version string
		caps          Capability
		plugin        string
	}{
		{"mysql8", "8.0.36", mysql8Caps, "caching_sha2_password"},
		{"mariadb", "5.5.5-10.11.6-MariaDB-0+deb12u1", mariadbCaps, "mysql_native_password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload := greeting(tc.version, tc.caps, tc.plugin)
			h, err := ParseHandshakeV10(payload)
			if err != nil {
				t.Fatal(err)
			}
			if h.Capabilities != tc.caps || h.AuthPlugin != tc.plugin || h.ServerVersion != tc.version ||
				string(h.AuthPluginData) != "abcdefghijklmnopqrst" || h.IsMariaDB() != (tc.name == "mariadb") {
				t.Fatalf("parsed %+v caps 0x%x", h, uint64(h.Capabilities))
			}
			if m := h.Marshal(); !bytes.Equal(m, payload) {
				t.Fatalf("Marshal:\n% x\nwant\n% x", m, payload)
			}
			newCaps := tc.caps &^ (ClientCompress | ClientZstdCompressionAlgorithm | ClientSSL)
			if err := SetCapabilities(payload, newCaps); err != nil {
				t.Fatal(err)
			}
			h2, err := ParseHandshakeV10(payload)
			if err != nil || h2.Capabilities != newCaps {
				t.Fatalf("after SetCapabilities caps 0x%x err %v", uint64(h2.Capabilities), err)
			}
			h.Capabilities = newCaps
			if !reflect.DeepEqual(h, h2) {
				t.Fatalf("other fields changed: %+v vs %+v", h, h2)
			}
			if err := SetCapabilities(payload, newCaps|ClientSSL); err != nil {
				t.Fatal(err)
			}
			if h3, _ := ParseHandshakeV10(payload); h3.Capabilities&ClientSSL == 0 {
				t.Fatal("ClientSSL not set")
			}
			if err := SetCapabilities(payload, newCaps&^ClientPluginAuth); err == nil {
				t.Fatal("toggling a layout flag must fail")
			}
		})
	}
}

func TestParseHandshakeErrors(t *testing.T) {
	good := greeting("8.0.36", mysql8Caps, "caching_sha2_password")
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"err packet", ErrorPacketNoState(1040, "Too many connections")},
		{"protocol 9", append([]byte{9}, good[1:]...)},
		{"no NUL", []byte{10, 'a', 'b'}},
		{"cut in scramble", good[:20]},
		{"cut in part 2", good[:45]},
	} {
		if _, err := ParseHandshakeV10(tc.in); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", tc.name, err)
		}
	}
}

func TestParseHandshakeResponse41Golden(t *testing.T) {
	payload := readHex(t, "handshake_response41.hex")[HeaderLen:]
	r, err := ParseHandshakeResponse(payload)
	if err != nil {
		t.Fatal(err)
	}
	if r.Username != "pam" || r.Database != "test" || r.AuthPlugin != "mysql_native_password" ||
		len(r.AuthResponse) != 20 || r.Capabilities != 0x000fa68d || r.Charset != 8 || r.MaxPacketSize != 1<<24 {
		t.Fatalf("%+v", r)
	}
	// Cut inside the auth response: the error says where and why.
	_, err = ParseHandshakeResponse41(payload[:49])
	want := "mysql: handshake response: truncated at offset 37 (auth response length 20 > 12 bytes left): malformed packet"
	if err == nil || err.Error() != want || !errors.Is(err, ErrMalformed) {
		t.Fatalf("error %q\nwant  %q", err, want)
	}
}

// response41 builds a HandshakeResponse41.
func response41(caps Capability, user string, auth []byte, db, plugin string, attrs [][2]string) []byte {
	b := le32(uint32(caps))
	b = append(b, le32(16<<20)...)
	b = append(b, 45)
	filler := make([]byte, 23)
	if caps&ClientMySQL == 0 {
		binary.LittleEndian.PutUint32(filler[19:], uint32(caps>>32))
	}
	b = append(b, filler...)
	b = append(b, user...)
	b = append(b, 0)
	switch {
	case caps&ClientPluginAuthLenencClientData != 0:
		b = AppendLenencString(b, auth)
	case caps&ClientSecureConnection != 0:
		b = append(b, byte(len(auth)))
		b = append(b, auth...)
	default:
		b = append(append(b, auth...), 0)
	}
	if caps&ClientConnectWithDB != 0 {
		b = append(append(b, db...), 0)
	}
	if caps&ClientPluginAuth != 0 {
		b = append(append(b, plugin...), 0)
	}
	if caps&ClientConnectAttrs != 0 {
		var a []byte
		for _, kv := range attrs {
			a = AppendLenencString(a, []byte(kv[0]))
			a = AppendLenencString(a, []byte(kv[1]))
		}
		b = AppendLenencString(b, a)
	}
	if caps&ClientZstdCompressionAlgorithm != 0 {
		b = append(b, 3)
	}
	return b
}

func TestParseHandshakeResponse41(t *testing.T) {
	auth := bytes.Repeat([]byte{0xfe}, 32)
	attrs := [][2]string{{"_client_name", "libmariadb"}, {"program_name", "mysql"}, {"_pid", "1234"}}
	tests := []struct {
		name string
		caps Capability
	}{
		{"lenenc auth attrs", mysql8Caps},
		{"secure connection", mysql8Caps &^ ClientPluginAuthLenencClientData},
		{"nul auth no db", ClientProtocol41 | ClientLongPassword},
		{"mariadb ext caps", mariadbCaps},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := auth
			if tt.caps&ClientSecureConnection == 0 {
				a = []byte("scrambled")
			}
			p := response41(tt.caps, "alice", a, "shop", "caching_sha2_password", attrs)
			r, err := ParseHandshakeResponse41(p)
			if err != nil {
				t.Fatal(err)
			}
			if r.Capabilities != tt.caps || r.Username != "alice" || !bytes.Equal(r.AuthResponse, a) || r.Charset != 45 {
				t.Fatalf("%+v", r)
			}
			if tt.caps&ClientConnectWithDB != 0 && r.Database != "shop" {
				t.Errorf("database %q", r.Database)
			}
			if tt.caps&ClientConnectAttrs != 0 && (r.Attrs["program_name"] != "mysql" || len(r.Attrs) != 3) {
				t.Errorf("attrs %v", r.Attrs)
			}
			if tt.caps&ClientZstdCompressionAlgorithm != 0 && r.ZstdLevel != 3 {
				t.Errorf("zstd level %d", r.ZstdLevel)
			}
			// The 32-byte prefix is what an SSLRequest looks like.
			ssl := bytes.Clone(p[:32])
			binary.LittleEndian.PutUint32(ssl, uint32(tt.caps|ClientSSL))
			if !IsSSLRequest(ssl) || IsSSLRequest(p) {
				t.Error("IsSSLRequest")
			}
			if _, err := ParseHandshakeResponse41(ssl); !errors.Is(err, ErrMalformed) {
				t.Errorf("SSLRequest parsed as a response: %v", err)
			}
			// Every truncation of the mandatory part fails cleanly.
			for i := 0; i < 40; i++ {
				if _, err := ParseHandshakeResponse41(p[:i]); err == nil {
					t.Errorf("cut at %d: no error", i)
				}
			}
		})
	}
}

func TestParseHandshakeResponse320(t *testing.T) {
	p := cat(le16(uint16(ClientLongPassword|ClientConnectWithDB)), []byte{0xff, 0xff, 0xff}, []byte("bob\x00scramble\x00db1\x00"))
	r, err := ParseHandshakeResponse(p)
	if err != nil {
		t.Fatal(err)
	}
	if r.Protocol41 || r.Username != "bob" || string(r.AuthResponse) != "scramble" || r.Database != "db1" || r.MaxPacketSize != 0xffffff {
		t.Fatalf("%+v", r)
	}
	if !IsSSLRequest(cat(le16(uint16(ClientSSL)), []byte{0, 0, 1})) {
		t.Error("320 SSLRequest not recognised")
	}
}

func TestSetResponseCapabilities(t *testing.T) {
	p := response41(mysql8Caps, "u", []byte("x"), "d", "p", nil)
	if err := SetResponseCapabilities(p, mysql8Caps&^ClientCompress); err != nil {
		t.Fatal(err)
	}
	r, err := ParseHandshakeResponse41(p)
	if err != nil || r.Capabilities&ClientCompress != 0 || r.Username != "u" {
		t.Fatalf("%+v %v", r, err)
	}
	if SetResponseCapabilities(p, mysql8Caps&^ClientConnectWithDB) == nil {
		t.Fatal("layout flag toggled")
	}
}
