package mysql

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

type loginStep struct {
	server bool
	p      []byte
	want   LoginEventKind
	plugin string
}

func runLogin(t *testing.T, steps []loginStep) *Login {
	t.Helper()
	l := NewLogin()
	for i, st := range steps {
		var e LoginEvent
		var err error
		if st.server {
			e, err = l.ServerPacket(st.p)
		} else {
			e, err = l.ClientPacket(st.p)
		}
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if e.Kind != st.want || (st.plugin != "" && e.Plugin != st.plugin) {
			t.Fatalf("step %d: event %+v, want kind %d plugin %q", i, e, st.want, st.plugin)
		}
	}
	return l
}

func TestLoginFlows(t *testing.T) {
	caps := mysql8Caps
	greet := greeting("8.0.36", caps, "caching_sha2_password")
	resp := response41(caps&^ClientCompress, "alice", bytes.Repeat([]byte{7}, 32), "shop", "caching_sha2_password", [][2]string{{"program_name", "mysql"}})
	ssl := bytes.Clone(resp[:32])
	binary.LittleEndian.PutUint32(ssl, uint32(caps|ClientSSL))
	more := func(b ...byte) []byte { return append([]byte{0x01}, b...) }
	pem := more([]byte("-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n")...)

	t.Run("caching_sha2 fast path over TLS", func(t *testing.T) {
		l := runLogin(t, []loginStep{
			{true, greet, LoginGreeting, "caching_sha2_password"},
			{false, ssl, LoginSSLRequest, ""},
			{false, resp, LoginResponse, "caching_sha2_password"},
			{true, more(CachingSHA2FastAuthOK), LoginNone, ""},
			{true, pOK(0, 0, StatusAutocommit, 0), LoginSucceeded, ""},
		})
		if !l.TLS || !l.Succeeded() || l.Response.Username != "alice" || l.Response.Database != "shop" || l.Response.Attrs["program_name"] != "mysql" {
			t.Fatalf("%+v", l)
		}
		if l.Capabilities()&ClientCompress != 0 || l.Capabilities()&ClientDeprecateEOF == 0 {
			t.Fatalf("caps 0x%x", uint64(l.Capabilities()))
		}
		if s := l.Session(); s.Capabilities() != l.Capabilities() {
			t.Fatal("session caps")
		}
	})
	t.Run("caching_sha2 full auth with RSA key over plaintext", func(t *testing.T) {
		l := NewLogin()
		steps := []loginStep{
			{true, greet, LoginGreeting, ""},
			{false, resp, LoginResponse, ""},
			{true, more(CachingSHA2FullAuth), LoginNone, ""},
			{false, []byte{CachingSHA2RequestKey}, LoginNone, ""},
			{true, pem, LoginNone, ""},
			{false, bytes.Repeat([]byte{9}, 256), LoginNone, ""},
			{true, pOK(0, 0, 0, 0), LoginSucceeded, ""},
		}
		for i, st := range steps {
			var e LoginEvent
			var err error
			if st.server {
				e, err = l.ServerPacket(st.p)
				if err == nil && i >= 2 && e.Kind == LoginNone && !l.ClientNext() {
					t.Fatalf("step %d: client should answer", i)
				}
			} else {
				e, err = l.ClientPacket(st.p)
			}
			if err != nil || e.Kind != st.want {
				t.Fatalf("step %d: %+v %v", i, e, err)
			}
		}
	})
	t.Run("auth switch to native password, wrong password", func(t *testing.T) {
		l := runLogin(t, []loginStep{
			{true, greet, LoginGreeting, ""},
			{false, resp, LoginResponse, ""},
			{true, append([]byte("\xfemysql_native_password\x00"), append(bytes.Repeat([]byte{'n'}, 20), 0)...), LoginAuthSwitch, "mysql_native_password"},
			{false, bytes.Repeat([]byte{3}, 20), LoginNone, ""},
			{true, pERR(1045, "28000", "Access denied for user 'alice'@'127.0.0.1' (using password: YES)"), LoginFailed, "mysql_native_password"},
		})
		if l.Succeeded() || !l.Done() {
			t.Fatal("state")
		}
	})
	t.Run("mariadb ed25519", func(t *testing.T) {
		mg := greeting("5.5.5-10.11.6-MariaDB", mariadbCaps, "mysql_native_password")
		mr := response41(mariadbCaps, "ed", bytes.Repeat([]byte{1}, 20), "", "mysql_native_password", nil)
		runLogin(t, []loginStep{
			{true, mg, LoginGreeting, "mysql_native_password"},
			{false, mr, LoginResponse, ""},
			{true, append([]byte("\xfeclient_ed25519\x00"), bytes.Repeat([]byte{0}, 32)...), LoginAuthSwitch, "client_ed25519"},
			{false, bytes.Repeat([]byte{5}, 64), LoginNone, ""},
			{true, pOK(0, 0, 0, 0), LoginSucceeded, "client_ed25519"},
		})
	})
	t.Run("mariadb parsec", func(t *testing.T) {
		mg := greeting("11.6.2-MariaDB", mariadbCaps, "mysql_native_password")
		mr := response41(mariadbCaps, "p", nil, "", "parsec", nil)
		runLogin(t, []loginStep{
			{true, mg, LoginGreeting, ""},
			{false, mr, LoginResponse, "parsec"},
			{true, append([]byte("\xfeparsec\x00"), bytes.Repeat([]byte{4}, 32)...), LoginAuthSwitch, "parsec"},
			{false, nil, LoginNone, ""},
			{true, more(append([]byte{'P', 0x12}, bytes.Repeat([]byte{6}, 18)...)...), LoginNone, ""},
			{false, bytes.Repeat([]byte{5}, 96), LoginNone, ""},
			{true, pOK(0, 0, 0, 0), LoginSucceeded, ""},
		})
	})
	t.Run("refused before the greeting", func(t *testing.T) {
		l := NewLogin()
		e, err := l.ServerPacket(ErrorPacketNoState(1040, "Too many connections"))
		if err != nil || e.Kind != LoginFailed || e.Err.Code != 1040 || e.Err.Message != "Too many connections" {
			t.Fatalf("%+v %v", e, err)
		}
	})
	t.Run("out of order", func(t *testing.T) {
		l := NewLogin()
		if _, err := l.ClientPacket(resp); !errors.Is(err, ErrUnexpected) {
			t.Fatal(err)
		}
		if _, err := l.ServerPacket([]byte("garbage")); !errors.Is(err, ErrMalformed) {
			t.Fatal(err)
		}
		l = runLogin(t, []loginStep{{true, greet, LoginGreeting, ""}})
		if _, err := l.ServerPacket(pOK(0, 0, 0, 0)); !errors.Is(err, ErrUnexpected) {
			t.Fatal(err)
		}
		runLogin(t, []loginStep{{true, greet, LoginGreeting, ""}, {false, resp, LoginResponse, ""}})
		l2 := runLogin(t, []loginStep{{true, greet, LoginGreeting, ""}, {false, resp, LoginResponse, ""}})
		if _, err := l2.ServerPacket([]byte{0x07}); !errors.Is(err, ErrMalformed) {
			t.Fatal(err)
		}
	})
}
