package kafka

import (
	"context"
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
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// selfSigned makes a certificate for 127.0.0.1 and writes it as a CA file.
func selfSigned(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kfake"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, ca
}

func TestTLSAndSCRAM(t *testing.T) {
	cert, ca := selfSigned(t)
	c := newCluster(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "das", "right-password"))
	url := "kafka://" + strings.Join(c.ListenAddrs(), ",") + "/das?sasl=scram-sha-512&user=das&tls_ca=" + ca

	t.Setenv(PasswordEnv, "right-password")
	o, err := ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	o.StreamID, o.Logger = "cluster-TLS", quietLogger()
	s := openSink(t, o)
	ch := newChain("cluster-TLS", 100)
	writeN(t, s, ch, 10)
	ro, err := ParseReaderURL(url)
	if err != nil {
		t.Fatal(err)
	}
	ro.Logger = quietLogger()
	if lines, _, _ := readAll(t, ro); len(lines) != 10 {
		t.Fatalf("read %d records over TLS+SCRAM", len(lines))
	}

	t.Setenv(PasswordEnv, "wrong-password")
	o, err = ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	o.StreamID, o.Logger = "cluster-TLS", quietLogger()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := Open(ctx, o); err == nil || !strings.Contains(err.Error(), "SASL authentication failed") || strings.Contains(err.Error(), "wrong-password") {
		t.Fatalf("wrong password: %v", err)
	}
	// Without the CA the broker's certificate is refused.
	o.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	o.SASL.Password = "right-password"
	if _, err := Open(ctx, o); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("unknown CA: %v", err)
	}
}
