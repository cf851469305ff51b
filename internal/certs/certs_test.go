package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadOrCreateSelfSigned(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	c1, created, err := LoadOrCreate(dir, "", "", []string{"das.internal"})
	if err != nil || !created {
		t.Fatalf("first start: created=%v err=%v", created, err)
	}
	st, err := os.Stat(filepath.Join(dir, "proxy.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600 (%v)", st.Mode().Perm(), err)
	}
	leaf, _ := x509.ParseCertificate(c1.Certificate[0])
	if err := leaf.VerifyHostname("das.internal"); err != nil {
		t.Fatal(err)
	}
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	c2, created, err := LoadOrCreate(dir, "", "", nil)
	if err != nil || created || !bytes.Equal(c1.Certificate[0], c2.Certificate[0]) {
		t.Fatalf("second start must reuse the certificate: created=%v err=%v", created, err)
	}
	os.Chmod(filepath.Join(dir, "proxy.key"), 0o644)
	if _, _, err := LoadOrCreate(dir, "", "", nil); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a readable key was accepted: %v", err)
	}
}

func TestLoadOrCreateConfigured(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM, err := SelfSigned([]string{"db.example"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cf, kf := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(cf, certPEM, 0o644)
	os.WriteFile(kf, keyPEM, 0o600)
	if _, created, err := LoadOrCreate(filepath.Join(dir, "tls"), cf, kf, nil); err != nil || created {
		t.Fatalf("configured pair: %v %v", created, err)
	}
	if _, _, err := LoadOrCreate(dir, cf, "", nil); err == nil || !strings.Contains(err.Error(), "both tls_cert and tls_key") {
		t.Fatalf("half a pair: %v", err)
	}
	if _, _, err := LoadOrCreate(dir, kf, cf, nil); err == nil || !strings.Contains(err.Error(), "tls_cert") {
		t.Fatalf("swapped pair: %v", err)
	}
}

func TestUpstream(t *testing.T) {
	dir := t.TempDir()
	certPEM, _, _ := SelfSigned([]string{"db"}, time.Hour)
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, certPEM, 0o644)
	c, err := Upstream("db.internal:3306", ca, "", false)
	if err != nil || c.ServerName != "db.internal" || c.RootCAs == nil || c.InsecureSkipVerify || c.MinVersion < tls.VersionTLS12 {
		t.Fatalf("%+v %v", c, err)
	}
	os.WriteFile(ca, []byte("nope"), 0o644)
	if _, err := Upstream("db:3306", ca, "", false); err == nil {
		t.Fatal("a CA file without certificates was accepted")
	}
}
