package esdk

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/asn1"
	"errors"
	"math/big"
	"testing"
	"time"
)

// primed waits until p holds n nonces, so the precomputed path is the one
// exercised.
func primed(t testing.TB, p *Nonces, n int) {
	deadline := time.Now().Add(10 * time.Second)
	for len(p.pool) < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d nonces precomputed after 10s", len(p.pool), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// Signatures made with precomputed nonces verify with Go's own ECDSA, on
// both curves the suites use; every nonce is used once (no two r equal);
// a signature does not verify for another digest.
func TestNoncesSignaturesVerify(t *testing.T) {
	for _, tc := range []struct {
		suite Suite
		curve elliptic.Curve
		hash  func([]byte) []byte
	}{
		{SuiteAES256GCMIV12Tag16HKDFSHA384ECDSAP384, elliptic.P384(), func(b []byte) []byte { h := sha512.Sum384(b); return h[:] }},
		{SuiteAES128GCMIV12Tag16HKDFSHA256ECDSAP256, elliptic.P256(), func(b []byte) []byte { h := sha256.Sum256(b); return h[:] }},
	} {
		t.Run(tc.suite.String(), func(t *testing.T) {
			si := lookupSuite(tc.suite)
			key, err := ecdsa.GenerateKey(tc.curve, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			p := NewNonces(tc.suite, 8)
			defer p.Close()
			seen := map[string]bool{}
			for i := range 64 {
				if i%8 == 0 {
					primed(t, p, 8)
				}
				msg := []byte{byte(i), byte(i >> 8), 'm'}
				digest := tc.hash(msg)
				sig, err := sign(si, key, digest, p)
				if err != nil {
					t.Fatal(err)
				}
				if !ecdsa.VerifyASN1(&key.PublicKey, digest, sig) {
					t.Fatalf("signature %d does not verify", i)
				}
				if ecdsa.VerifyASN1(&key.PublicKey, tc.hash(append(msg, 'x')), sig) {
					t.Fatalf("signature %d verifies for another digest", i)
				}
				var rs struct{ R, S *big.Int }
				if _, err := asn1.Unmarshal(sig, &rs); err != nil {
					t.Fatal(err)
				}
				if seen[rs.R.String()] {
					t.Fatalf("signature %d reuses a nonce (r repeated)", i)
				}
				seen[rs.R.String()] = true
				if len(sig) != si.sigLen && i < 8 {
					t.Logf("signature %d has an unusual length %d", i, len(sig))
				}
			}
		})
	}
}

func TestNoncesClosedAndUnsigned(t *testing.T) {
	if p := NewNonces(SuiteAES256GCMIV12Tag16HKDFSHA256, 4); p != nil {
		t.Fatal("a pool for an unsigned suite")
	}
	p := NewNonces(DefaultSuite, 1)
	p.Close()
	p.Close() // twice is fine
	key, _ := GenerateSigningKey(nil)
	digest := make([]byte, 48)
	sig, err := sign(lookupSuite(DefaultSuite), key, digest, p)
	if err != nil || !ecdsa.VerifyASN1(&key.PublicKey, digest, sig) {
		t.Fatalf("signing with a closed pool: %v", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

func TestPresignRandomFailures(t *testing.T) {
	c := curveFor(elliptic.P384())
	if _, err := c.presign(errReader{}); err == nil {
		t.Fatal("presign with a failing random source succeeded")
	}
	// All ones is above the group order: every draw is rejected.
	if _, err := c.presign(bytes.NewReader(bytes.Repeat([]byte{0xff}, 48*200))); err == nil {
		t.Fatal("presign accepted a nonce >= n")
	}
}

// BenchmarkSign: ECDSA P-384 signing inline (what crypto/ecdsa does) against
// signing with a nonce precomputed in the background.
func BenchmarkSign(b *testing.B) {
	si := lookupSuite(DefaultSuite)
	key, _ := GenerateSigningKey(nil)
	digest := make([]byte, 48)
	b.Run("crypto-ecdsa", func(b *testing.B) {
		for b.Loop() {
			ecdsa.SignASN1(rand.Reader, key, digest)
		}
	})
	b.Run("precomputed", func(b *testing.B) {
		p := NewNonces(DefaultSuite, 1)
		defer p.Close()
		c := curveFor(si.curve)
		pre := make([]presig, b.N)
		for i := range pre {
			pre[i], _ = c.presign(rand.Reader)
		}
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			if _, _, err := c.signWith(pre[i%len(pre)], key, digest); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPresign: the background cost of one nonce (k·G and k⁻¹).
func BenchmarkPresign(b *testing.B) {
	c := curveFor(elliptic.P384())
	for b.Loop() {
		if _, err := c.presign(rand.Reader); err != nil {
			b.Fatal(err)
		}
	}
}
