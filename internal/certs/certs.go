// Package certs builds the TLS configurations of das: the proxy's own
// certificate (configured, or self-signed into the data dir on first start)
// and the client side towards the upstream database.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// LoadOrCreate returns the certificate in certFile/keyFile. When both are
// empty it uses dir/proxy.crt and dir/proxy.key, creating a self-signed
// certificate for hosts (and localhost, 127.0.0.1, ::1) there on first use,
// key mode 0600. created reports whether it made one.
func LoadOrCreate(dir, certFile, keyFile string, hosts []string) (cert tls.Certificate, created bool, err error) {
	if (certFile == "") != (keyFile == "") {
		return cert, false, errors.New("certs: set both tls_cert and tls_key, or neither (das then makes a self-signed certificate)")
	}
	if certFile != "" {
		cert, err = tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return cert, false, fmt.Errorf("certs: tls_cert %s / tls_key %s: %w", certFile, keyFile, err)
		}
		return cert, false, nil
	}
	certFile, keyFile = filepath.Join(dir, "proxy.crt"), filepath.Join(dir, "proxy.key")
	if _, err := os.Stat(certFile); err == nil {
		if st, err := os.Stat(keyFile); err == nil && st.Mode().Perm()&0o077 != 0 {
			return cert, false, fmt.Errorf("certs: %s has mode %v, open to group or others; fix: chmod 600 %s", keyFile, st.Mode().Perm(), keyFile)
		}
		cert, err = tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return cert, false, fmt.Errorf("certs: %s: %w (delete both files to make a new self-signed certificate)", certFile, err)
		}
		return cert, false, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return cert, false, fmt.Errorf("certs: %w", err)
	}
	certPEM, keyPEM, err := SelfSigned(append([]string{"localhost", "127.0.0.1", "::1"}, hosts...), 5*365*24*time.Hour)
	if err != nil {
		return cert, false, err
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return cert, false, fmt.Errorf("certs: %w", err)
	}
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		return cert, false, fmt.Errorf("certs: %w", err)
	}
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	return cert, true, err
}

// SelfSigned makes a self-signed ECDSA P-256 server certificate.
func SelfSigned(hosts []string, validFor time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("certs: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "das proxy", Organization: []string{"das"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validFor),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// Upstream builds the TLS client configuration towards the database: verify
// the server against the system roots or caFile by default, under serverName
// (default: the upstream host), or skip verification when asked.
func Upstream(upstream, caFile, serverName string, skipVerify bool) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if c.ServerName == "" {
		host, _, err := net.SplitHostPort(upstream)
		if err != nil {
			return nil, fmt.Errorf("certs: upstream %q: %w", upstream, err)
		}
		c.ServerName = host
	}
	if caFile != "" {
		pemBytes, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("certs: upstream_tls_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("certs: upstream_tls_ca %s holds no PEM certificate", caFile)
		}
		c.RootCAs = pool
	}
	c.InsecureSkipVerify = skipVerify
	return c, nil
}
