package testenv

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestTLSCertsFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	c := TLSCerts(t, dir)
	for _, f := range []struct {
		path string
		perm os.FileMode
	}{
		{c.CAFile, 0o644},
		{c.ServerCertFile, 0o644},
		{c.ServerKeyFile, 0o600},
		{c.ClientCertFile, 0o644},
		{c.ClientKeyFile, 0o600},
	} {
		if filepath.Dir(f.path) != dir {
			t.Errorf("%s is not in %s", f.path, dir)
		}
		fi, err := os.Stat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != f.perm {
			t.Errorf("%s: mode %v, want %v", f.path, got, f.perm)
		}
	}
	// The files on disk are the pairs the struct holds.
	if _, err := tls.LoadX509KeyPair(c.ServerCertFile, c.ServerKeyFile); err != nil {
		t.Errorf("server pair: %v", err)
	}
	if _, err := tls.LoadX509KeyPair(c.ClientCertFile, c.ClientKeyFile); err != nil {
		t.Errorf("client pair: %v", err)
	}
}

func TestTLSCertsVerify(t *testing.T) {
	c := TLSCerts(t, "")
	other := TLSCerts(t, "")
	server := leaf(t, c.Server)
	client := leaf(t, c.Client)

	tests := []struct {
		name  string
		cert  *x509.Certificate
		roots *x509.CertPool
		host  string
		usage x509.ExtKeyUsage
		ok    bool
	}{
		{"server 127.0.0.1", server, c.CAPool, "127.0.0.1", x509.ExtKeyUsageServerAuth, true},
		{"server ::1", server, c.CAPool, "::1", x509.ExtKeyUsageServerAuth, true},
		{"server localhost", server, c.CAPool, "localhost", x509.ExtKeyUsageServerAuth, true},
		{"server other name", server, c.CAPool, "example.com", x509.ExtKeyUsageServerAuth, false},
		{"server other CA", server, other.CAPool, "127.0.0.1", x509.ExtKeyUsageServerAuth, false},
		{"client", client, c.CAPool, "", x509.ExtKeyUsageClientAuth, true},
		{"client as server", client, c.CAPool, "", x509.ExtKeyUsageServerAuth, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.cert.Verify(x509.VerifyOptions{
				Roots: tt.roots, DNSName: tt.host, KeyUsages: []x509.ExtKeyUsage{tt.usage},
			})
			if (err == nil) != tt.ok {
				t.Errorf("verify: %v, want ok=%v", err, tt.ok)
			}
		})
	}
	if client.Subject.CommonName != "das_test" {
		t.Errorf("client CN %q", client.Subject.CommonName)
	}

	certFile, _, proxy := c.IssueServer(t, "proxy", "127.0.0.2", "proxy.test")
	if filepath.Base(certFile) != "proxy-cert.pem" {
		t.Errorf("issued cert file %s", certFile)
	}
	if _, err := leaf(t, proxy).Verify(x509.VerifyOptions{Roots: c.CAPool, DNSName: "proxy.test"}); err != nil {
		t.Errorf("issued cert: %v", err)
	}
}

// A handshake between ServerTLS and ClientTLS succeeds both ways
// authenticated; a client trusting another CA is refused.
func TestTLSCertsHandshake(t *testing.T) {
	c := TLSCerts(t, "")
	other := TLSCerts(t, "")
	handshake := func(clientCfg *tls.Config) (*tls.ConnectionState, error) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		deadline := time.Now().Add(10 * time.Second)
		a.SetDeadline(deadline)
		b.SetDeadline(deadline)
		srv := tls.Server(a, c.ServerTLS())
		done := make(chan tls.ConnectionState, 1)
		go func() {
			if srv.Handshake() == nil {
				done <- srv.ConnectionState()
			}
			close(done)
		}()
		cl := tls.Client(b, clientCfg)
		if err := cl.Handshake(); err != nil {
			return nil, err
		}
		st, ok := <-done
		if !ok {
			return nil, nil
		}
		return &st, nil
	}

	st, err := handshake(c.ClientTLS(""))
	if err != nil || st == nil {
		t.Fatalf("handshake: %v", err)
	}
	if len(st.PeerCertificates) == 0 || st.PeerCertificates[0].Subject.CommonName != "das_test" {
		t.Errorf("server did not see the client certificate: %+v", st.PeerCertificates)
	}
	if _, err := handshake(other.ClientTLS("")); err == nil {
		t.Error("client trusting another CA completed the handshake")
	}
}

func leaf(t *testing.T, c tls.Certificate) *x509.Certificate {
	t.Helper()
	if c.Leaf != nil {
		return c.Leaf
	}
	x, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return x
}
