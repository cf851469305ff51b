package esdk

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"testing"
)

// testKeyring is DAS's keyring shape with a fixed key.
func testKeyring() Keyring {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	return Keyring{Namespace: "BC", Name: "DataKey", Key: key}
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

var sentinels = []error{ErrMalformed, ErrUnsupported, ErrNoMatchingKey, ErrAuthentication,
	ErrCommitment, ErrSignature, ErrTooManyKeys, ErrInvalid}

// classified reports whether err wraps one of the package's sentinels.
func classified(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func TestRoundTrip(t *testing.T) {
	k := testKeyring()
	ec := map[string]string{"aws:rds:dbc-id": "cluster-ABCDEFGHIJKL", "b": "", "a": "ü"}
	sizes := []int{0, 1, 4095, 4096, 4097, 100000}
	for _, suite := range Suites() {
		for _, n := range sizes {
			t.Run(fmt.Sprintf("%04x/%d", uint16(suite), n), func(t *testing.T) {
				pt := randomBytes(t, n)
				msg, err := Encrypt(k, pt, EncryptOptions{Suite: suite, EncryptionContext: ec})
				if err != nil {
					t.Fatal(err)
				}
				if cap(msg) != len(msg) {
					t.Errorf("output capacity %d, length %d: size computed wrong", cap(msg), len(msg))
				}
				got, err := Decrypt(k, msg, DecryptOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got.Plaintext, pt) {
					t.Fatalf("plaintext differs (got %d bytes, want %d)", len(got.Plaintext), n)
				}
				if got.Suite != suite {
					t.Errorf("suite %v, want %v", got.Suite, suite)
				}
				wantVersion, wantIDLen := byte(1), 16
				if suite.Committing() {
					wantVersion, wantIDLen = 2, 32
				}
				if got.Version != wantVersion || len(got.MessageID) != wantIDLen || msg[0] != wantVersion {
					t.Errorf("version %d, message id %d bytes; want %d, %d", got.Version, len(got.MessageID), wantVersion, wantIDLen)
				}
				wantEC := maps.Clone(ec)
				if suite.Signed() {
					pk, ok := got.EncryptionContext[publicKeyContextKey]
					if !ok {
						t.Fatalf("signed suite without %s", publicKeyContextKey)
					}
					wantEC[publicKeyContextKey] = pk
				}
				if !maps.Equal(got.EncryptionContext, wantEC) {
					t.Errorf("context %v, want %v", got.EncryptionContext, wantEC)
				}
			})
		}
	}
}

func TestFrameLayout(t *testing.T) {
	k := testKeyring()
	const suite = SuiteAES256GCMIV12Tag16HKDFSHA256 // unsigned: the body ends the message
	for _, tc := range []struct {
		n, frame        int
		regular, final_ int // frames expected, final frame content length
	}{
		{0, 4096, 0, 0},
		{1, 4096, 0, 1},
		{4096, 4096, 0, 4096}, // a whole frame ends in a full final frame
		{4097, 4096, 1, 1},
		{8192, 4096, 1, 4096},
		{10, 1, 9, 1},
	} {
		msg, err := Encrypt(k, randomBytes(t, tc.n), EncryptOptions{Suite: suite, FrameLength: tc.frame})
		if err != nil {
			t.Fatal(err)
		}
		body := tc.regular*(4+12+tc.frame+16) + 4 + 4 + 12 + 4 + tc.final_ + 16
		// The final frame header sits body bytes before the end.
		at := len(msg) - (4 + 4 + 12 + 4 + tc.final_ + 16)
		if got := binary.BigEndian.Uint32(msg[at:]); got != finalFrameMarker {
			t.Errorf("n=%d frame=%d: no final frame marker at %d (got %08x)", tc.n, tc.frame, at, got)
			continue
		}
		if seq := binary.BigEndian.Uint32(msg[at+4:]); seq != uint32(tc.regular+1) {
			t.Errorf("n=%d frame=%d: final sequence number %d, want %d", tc.n, tc.frame, seq, tc.regular+1)
		}
		if l := binary.BigEndian.Uint32(msg[at+20:]); l != uint32(tc.final_) {
			t.Errorf("n=%d frame=%d: final length %d, want %d", tc.n, tc.frame, l, tc.final_)
		}
		if tc.regular > 0 {
			first := len(msg) - body
			if seq := binary.BigEndian.Uint32(msg[first:]); seq != 1 {
				t.Errorf("n=%d frame=%d: first frame sequence number %d", tc.n, tc.frame, seq)
			}
			// Frame IV is the sequence number, right-aligned in 12 bytes.
			if iv := msg[first+4 : first+16]; !bytes.Equal(iv, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}) {
				t.Errorf("n=%d frame=%d: first frame IV %x", tc.n, tc.frame, iv)
			}
		}
	}
}

func TestNonFramed(t *testing.T) {
	k := testKeyring()
	for _, suite := range []Suite{SuiteAES256GCMIV12Tag16HKDFSHA384ECDSAP384, SuiteAES256GCMHKDFSHA512CommitKeyECDSAP384, SuiteAES128GCMIV12Tag16NoKDF} {
		for _, n := range []int{0, 1, 5000} {
			pt := randomBytes(t, n)
			msg, err := encrypt(k, pt, EncryptOptions{Suite: suite}, contentNonFramed)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decrypt(k, msg, DecryptOptions{})
			if err != nil {
				t.Fatalf("%v n=%d: %v", suite, n, err)
			}
			if !bytes.Equal(got.Plaintext, pt) {
				t.Fatalf("%v n=%d: plaintext differs", suite, n)
			}
		}
	}
}

func TestSigningKeyReuse(t *testing.T) {
	k := testKeyring()
	key, err := GenerateSigningKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	var first string
	for i := range 40 {
		msg, err := Encrypt(k, []byte("record"), EncryptOptions{SigningKey: key})
		if err != nil {
			t.Fatal(err)
		}
		// The footer is a 103-byte DER signature, as the Java and Go SDKs write.
		if l := binary.BigEndian.Uint16(msg[len(msg)-105:]); l != 103 {
			t.Fatalf("message %d: signature length %d, want 103", i, l)
		}
		got, err := Decrypt(k, msg, DecryptOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pk := got.EncryptionContext[publicKeyContextKey]
		if i == 0 {
			first = pk
		} else if pk != first {
			t.Fatalf("message %d carries another public key", i)
		}
	}
	point, err := compressPoint(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(point) != 49 || len(first) != 68 {
		t.Errorf("compressed P-384 point %d bytes, base64 %d chars; want 49, 68", len(point), len(first))
	}

	// A fresh key per message gives each message its own public key.
	a, _ := Encrypt(k, nil, EncryptOptions{})
	b, _ := Encrypt(k, nil, EncryptOptions{})
	ma, err1 := Decrypt(k, a, DecryptOptions{})
	mb, err2 := Decrypt(k, b, DecryptOptions{})
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if ma.EncryptionContext[publicKeyContextKey] == mb.EncryptionContext[publicKeyContextKey] {
		t.Error("two messages without SigningKey share a public key")
	}

	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Encrypt(k, nil, EncryptOptions{SigningKey: p256}); !errors.Is(err, ErrInvalid) {
		t.Errorf("P-256 key for 0x0378: %v, want ErrInvalid", err)
	}
	if _, err := Encrypt(k, nil, EncryptOptions{Suite: SuiteAES128GCMIV12Tag16HKDFSHA256ECDSAP256, SigningKey: p256}); err != nil {
		t.Errorf("P-256 key for 0x0214: %v", err)
	}
}

func TestEncryptInvalid(t *testing.T) {
	k := testKeyring()
	for name, tc := range map[string]struct {
		k Keyring
		o EncryptOptions
	}{
		"reserved context key": {k, EncryptOptions{EncryptionContext: map[string]string{"aws-crypto-public-key": "x"}}},
		"non-UTF-8 context":    {k, EncryptOptions{EncryptionContext: map[string]string{"a": "\xff"}}},
		"context too large":    {k, EncryptOptions{EncryptionContext: map[string]string{"a": string(make([]byte, 65530))}}},
		"unknown suite":        {k, EncryptOptions{Suite: 0x0999}},
		"negative frame":       {k, EncryptOptions{FrameLength: -1}},
		"short key":            {Keyring{Namespace: "BC", Name: "DataKey", Key: make([]byte, 31)}, EncryptOptions{}},
		"empty name":           {Keyring{Namespace: "BC", Key: make([]byte, 32)}, EncryptOptions{}},
		"aws-kms namespace":    {Keyring{Namespace: "aws-kms", Name: "x", Key: make([]byte, 32)}, EncryptOptions{}},
	} {
		if _, err := Encrypt(tc.k, []byte("x"), tc.o); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

// TestTamper flips bytes all over messages: every flip must fail, with a
// classified error, and flips in the right places with the right error.
func TestTamper(t *testing.T) {
	k := testKeyring()
	pt := randomBytes(t, 10000)
	for _, suite := range []Suite{SuiteAES256GCMIV12Tag16HKDFSHA384ECDSAP384, SuiteAES256GCMHKDFSHA512CommitKeyECDSAP384,
		SuiteAES256GCMIV12Tag16HKDFSHA256, SuiteAES256GCMHKDFSHA512CommitKey} {
		msg, err := Encrypt(k, pt, EncryptOptions{Suite: suite, EncryptionContext: map[string]string{"k": "v"}})
		if err != nil {
			t.Fatal(err)
		}
		var positions []int
		for i := range msg {
			if i < 400 || i >= len(msg)-120 || i%61 == 0 {
				positions = append(positions, i)
			}
		}
		for _, i := range positions {
			bad := bytes.Clone(msg)
			bad[i] ^= 0x01
			_, err := Decrypt(k, bad, DecryptOptions{})
			if err == nil {
				t.Fatalf("%v: flipping byte %d of %d went unnoticed", suite, i, len(msg))
			}
			if !classified(err) {
				t.Fatalf("%v: flip at %d: unclassified error %v", suite, i, err)
			}
		}
		// The last frame's tag is authenticated by GCM; the footer by the signature.
		bad := bytes.Clone(msg)
		tagAt := len(msg) - 16
		if suite.Signed() {
			tagAt -= 2 + 103
		}
		bad[tagAt] ^= 0x80
		if _, err := Decrypt(k, bad, DecryptOptions{}); !errors.Is(err, ErrAuthentication) {
			t.Errorf("%v: final tag flip: %v, want ErrAuthentication", suite, err)
		}
		if suite.Signed() {
			bad := bytes.Clone(msg)
			bad[len(msg)-1] ^= 0x01 // last byte of s
			if _, err := Decrypt(k, bad, DecryptOptions{}); !errors.Is(err, ErrSignature) {
				t.Errorf("%v: signature flip: %v, want ErrSignature", suite, err)
			}
		}
		// Trailing bytes.
		if _, err := Decrypt(k, append(bytes.Clone(msg), 0), DecryptOptions{}); !errors.Is(err, ErrMalformed) {
			t.Errorf("%v: trailing byte: %v, want ErrMalformed", suite, err)
		}
	}
}

func TestTruncated(t *testing.T) {
	k := testKeyring()
	for _, suite := range []Suite{SuiteAES256GCMIV12Tag16HKDFSHA384ECDSAP384, SuiteAES256GCMHKDFSHA512CommitKey} {
		msg, err := Encrypt(k, randomBytes(t, 300), EncryptOptions{Suite: suite, FrameLength: 64})
		if err != nil {
			t.Fatal(err)
		}
		for n := range len(msg) {
			if _, err := Decrypt(k, msg[:n], DecryptOptions{}); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%v: truncated to %d of %d: %v, want ErrMalformed", suite, n, len(msg), err)
			}
		}
	}
}

func TestDecryptErrors(t *testing.T) {
	k := testKeyring()
	v1, err := Encrypt(k, []byte("payload"), EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := Encrypt(k, []byte("payload"), EncryptOptions{Suite: SuiteAES256GCMHKDFSHA512CommitKey})
	if err != nil {
		t.Fatal(err)
	}
	otherKey := testKeyring()
	otherKey.Key = bytes.Repeat([]byte{7}, 32)

	set := func(msg []byte, at int, b ...byte) []byte {
		m := bytes.Clone(msg)
		copy(m[at:], b)
		return m
	}
	// 0x0478, empty context: the commitment follows version, suite, id,
	// AAD length, EDK count, namespace, info (7+20), ciphertext (32+16),
	// content type and frame length.
	commitAt := 1 + 2 + 32 + 2 + 2 + (2 + 2) + (2 + 27) + (2 + 48) + 1 + 4

	for _, tc := range []struct {
		name string
		k    Keyring
		msg  []byte
		o    DecryptOptions
		want error
	}{
		{"wrong key", otherKey, v1, DecryptOptions{}, ErrNoMatchingKey},
		{"wrong key name", Keyring{Namespace: "BC", Name: "Other", Key: k.Key}, v1, DecryptOptions{}, ErrNoMatchingKey},
		{"wrong namespace", Keyring{Namespace: "XX", Name: "DataKey", Key: k.Key}, v2, DecryptOptions{}, ErrNoMatchingKey},
		{"commitment required", k, v1, DecryptOptions{RequireCommitment: true}, ErrCommitment},
		{"commitment mismatch", k, set(v2, commitAt, v2[commitAt]^1), DecryptOptions{}, ErrCommitment},
		{"header tag", k, set(v2, commitAt+32, v2[commitAt+32]^1), DecryptOptions{}, ErrAuthentication},
		{"unknown version", k, set(v1, 0, 3), DecryptOptions{}, ErrUnsupported},
		{"unknown type", k, set(v1, 1, 0x81), DecryptOptions{}, ErrUnsupported},
		{"unknown suite", k, set(v1, 2, 0x09, 0x99), DecryptOptions{}, ErrUnsupported},
		{"suite of other version", k, set(v2, 1, 0x03, 0x78), DecryptOptions{}, ErrMalformed},
		{"empty", k, nil, DecryptOptions{}, ErrMalformed},
		{"bad keyring", Keyring{}, v1, DecryptOptions{}, ErrInvalid},
	} {
		_, err := Decrypt(tc.k, tc.msg, tc.o)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := Decrypt(k, v2, DecryptOptions{RequireCommitment: true, MaxEncryptedDataKeys: 1}); err != nil {
		t.Errorf("committing message under RequireCommitment: %v", err)
	}
}

// TestHugeClaims checks that lengths claiming more than the message are
// errors, not allocations.
func TestHugeClaims(t *testing.T) {
	k := testKeyring()
	msg, err := encrypt(k, []byte("abc"), EncryptOptions{Suite: SuiteAES256GCMIV12Tag16HKDFSHA256}, contentNonFramed)
	if err != nil {
		t.Fatal(err)
	}
	// Non-framed: content length is 8 bytes after the 12-byte IV, 16+3+16 from the end... locate it.
	at := len(msg) - 16 - 3 - 8
	if got := binary.BigEndian.Uint64(msg[at:]); got != 3 {
		t.Fatalf("content length field %d at %d", got, at)
	}
	bad := bytes.Clone(msg)
	binary.BigEndian.PutUint64(bad[at:], 1<<62)
	allocs := testing.AllocsPerRun(10, func() {
		if _, err := Decrypt(k, bad, DecryptOptions{}); !errors.Is(err, ErrMalformed) {
			t.Fatalf("huge non-framed length: %v", err)
		}
	})
	if allocs > 50 {
		t.Errorf("%v allocations for a rejected message", allocs)
	}

	framed, err := Encrypt(k, []byte("abc"), EncryptOptions{Suite: SuiteAES256GCMIV12Tag16HKDFSHA256, FrameLength: 16})
	if err != nil {
		t.Fatal(err)
	}
	// Final frame: marker, seq, IV, length, 3 bytes, tag.
	lenAt := len(framed) - 16 - 3 - 4
	bad = bytes.Clone(framed)
	binary.BigEndian.PutUint32(bad[lenAt:], 0xFFFFFFF0)
	if _, err := Decrypt(k, bad, DecryptOptions{}); !errors.Is(err, ErrMalformed) {
		t.Errorf("final frame longer than frame length: %v", err)
	}
}

func TestParseContext(t *testing.T) {
	ser := func(pairs ...string) []byte {
		b := binary.BigEndian.AppendUint16(nil, uint16(len(pairs)/2))
		for _, s := range pairs {
			b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
			b = append(b, s...)
		}
		return b
	}
	// Unsorted on the wire: the keyring AAD is still the sorted form.
	ec, canon, err := parseContext(ser("b", "2", "a", "1"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(ec, map[string]string{"a": "1", "b": "2"}) || !bytes.Equal(canon, ser("a", "1", "b", "2")) {
		t.Errorf("unsorted context: %v, %x", ec, canon)
	}
	// Legacy empty context: count 0 in a 2-byte AAD.
	if ec, canon, err := parseContext([]byte{0, 0}, 0); err != nil || len(ec) != 0 || len(canon) != 0 {
		t.Errorf("count-0 context: %v %x %v", ec, canon, err)
	}
	for name, raw := range map[string][]byte{
		"duplicate":     ser("a", "1", "a", "2"),
		"count too big": {0, 9, 0, 1, 'a', 0, 0},
		"trailing":      append(ser("a", "1"), 0),
		"short":         ser("a", "1")[:5],
		"not UTF-8":     ser("a", "\xff"),
		"count 0 extra": {0, 0, 0},
	} {
		if _, _, err := parseContext(raw, 22); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestAppendDERSig(t *testing.T) {
	k, err := GenerateSigningKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	si := lookupSuite(DefaultSuite)
	digest := make([]byte, 48)
	for range 20 {
		sig, err := sign(si, k, digest, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !ecdsa.VerifyASN1(&k.PublicKey, digest, sig) {
			t.Fatal("normalized signature does not verify")
		}
	}
}
