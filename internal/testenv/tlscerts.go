package testenv

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Certs is a throwaway PKI for one test: a CA, a server certificate for
// 127.0.0.1, ::1 and localhost, and a client certificate, all as PEM files.
// Keys are ECDSA P-256, which MariaDB (OpenSSL), Go and the mariadb client
// all accept.
type Certs struct {
	Dir string

	CAFile         string // CA certificate (PEM)
	ServerCertFile string // server certificate (PEM), signed by the CA
	ServerKeyFile  string // server key (PEM, 0600)
	ClientCertFile string // client certificate (PEM), signed by the CA, CN "das_test"
	ClientKeyFile  string // client key (PEM, 0600)

	CA     *x509.Certificate
	CAPool *x509.CertPool
	Server tls.Certificate
	Client tls.Certificate

	caKey crypto.Signer
}

// TLSCerts creates a CA, a server and a client certificate under dir (a new
// t.TempDir() when dir is ""). Certificates are valid from an hour ago for
// seven days.
func TLSCerts(t testing.TB, dir string) *Certs {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatalf("testenv: certs dir: %v", err)
	}
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "das test CA", Organization: []string{"das tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatalf("testenv: create CA: %v", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testenv: parse CA: %v", err)
	}
	c := &Certs{Dir: dir, CA: ca, CAPool: x509.NewCertPool(), caKey: caKey}
	c.CAPool.AddCert(ca)
	c.CAFile = filepath.Join(dir, "ca.pem")
	writePEM(t, c.CAFile, "CERTIFICATE", der, 0o644)

	c.ServerCertFile, c.ServerKeyFile, c.Server = c.issue(t, "server", true, "127.0.0.1", "::1", "localhost")
	c.ClientCertFile, c.ClientKeyFile, c.Client = c.issue(t, "client", false)
	return c
}

// IssueServer signs another server certificate for hosts (IP addresses or
// DNS names) with the same CA, for example for a proxy that clients reach
// with verification, and writes NAME-cert.pem and NAME-key.pem into Dir.
func (c *Certs) IssueServer(t testing.TB, name string, hosts ...string) (certFile, keyFile string, cert tls.Certificate) {
	t.Helper()
	return c.issue(t, name, true, hosts...)
}

// ServerTLS is a server-side config presenting the server certificate; a
// client certificate is verified against the CA when one is offered.
func (c *Certs) ServerTLS() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{c.Server},
		ClientCAs:    c.CAPool,
		ClientAuth:   tls.VerifyClientCertIfGiven,
		MinVersion:   tls.VersionTLS12,
	}
}

// ClientTLS is a client-side config that trusts only the CA, verifies the
// server's name (serverName; "127.0.0.1" when empty) and offers the client
// certificate.
func (c *Certs) ClientTLS(serverName string) *tls.Config {
	if serverName == "" {
		serverName = "127.0.0.1"
	}
	return &tls.Config{
		RootCAs:      c.CAPool,
		ServerName:   serverName,
		Certificates: []tls.Certificate{c.Client},
		MinVersion:   tls.VersionTLS12,
	}
}

func (c *Certs) issue(t testing.TB, name string, server bool, hosts ...string) (certFile, keyFile string, cert tls.Certificate) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: "das test " + name, Organization: []string{"das tests"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	} else {
		tmpl.Subject.CommonName = "das_test"
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.CA, key.Public(), c.caKey)
	if err != nil {
		t.Fatalf("testenv: create %s certificate: %v", name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("testenv: marshal %s key: %v", name, err)
	}
	certFile = filepath.Join(c.Dir, name+"-cert.pem")
	keyFile = filepath.Join(c.Dir, name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der, 0o644)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER, 0o600)
	cert, err = tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("testenv: load %s key pair: %v", name, err)
	}
	return certFile, keyFile, cert
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testenv: generate key: %v", err)
	}
	return k
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("testenv: serial: %v", err)
	}
	return n.Add(n, big.NewInt(1)) // never zero
}

// writePEM writes one PEM block. The file is created with perm from the
// start, so a key is never readable by others, not even briefly.
func writePEM(t testing.TB, path, typ string, der []byte, perm os.FileMode) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		t.Fatalf("testenv: write %s: %v", path, err)
	}
	if err := pem.Encode(f, &pem.Block{Type: typ, Bytes: der}); err != nil {
		f.Close()
		t.Fatalf("testenv: write %s: %v", path, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("testenv: write %s: %v", path, err)
	}
	if err := os.Chmod(path, perm); err != nil { // umask may have narrowed it; a key must not be wider
		t.Fatalf("testenv: chmod %s: %v", path, err)
	}
}
