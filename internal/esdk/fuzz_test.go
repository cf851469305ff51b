package esdk

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecrypt: no input may panic, every error must be classified, and a
// message that decrypts must be consistent.
func FuzzDecrypt(f *testing.F) {
	k := testKeyring()
	for _, s := range []Suite{SuiteAES256GCMIV12Tag16HKDFSHA384ECDSAP384, SuiteAES256GCMHKDFSHA512CommitKeyECDSAP384,
		SuiteAES256GCMHKDFSHA512CommitKey, SuiteAES256GCMIV12Tag16HKDFSHA256, SuiteAES128GCMIV12Tag16NoKDF} {
		for _, n := range []int{0, 5, 70} {
			msg, err := Encrypt(k, bytes.Repeat([]byte{'x'}, n), EncryptOptions{Suite: s, FrameLength: 32,
				EncryptionContext: map[string]string{"aws:rds:dbc-id": "cluster-X"}})
			if err != nil {
				f.Fatal(err)
			}
			f.Add(msg)
		}
		msg, err := encrypt(k, []byte("single block"), EncryptOptions{Suite: s}, contentNonFramed)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(msg)
	}
	golden, _ := filepath.Glob(filepath.Join("testdata", "official-*.bin"))
	for _, g := range golden {
		msg, err := os.ReadFile(g)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(msg)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		m, err := Decrypt(k, msg, DecryptOptions{})
		if err != nil {
			if !classified(err) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if !m.Suite.Known() || len(m.MessageID) != 16*int(m.Version) || len(m.Plaintext) > len(msg) {
			t.Fatalf("inconsistent message: suite %v version %d id %d bytes", m.Suite, m.Version, len(m.MessageID))
		}
	})
}

// FuzzRoundTrip: whatever the plaintext, frame length and context, what
// Encrypt writes Decrypt reads back.
func FuzzRoundTrip(f *testing.F) {
	k := testKeyring()
	f.Add([]byte("hello"), uint16(4096), "aws:rds:dbc-id", "cluster-X", uint8(0))
	f.Add([]byte{}, uint16(1), "", "", uint8(3))
	f.Fuzz(func(t *testing.T, pt []byte, frame uint16, ck, cv string, suiteIdx uint8) {
		all := Suites()
		s := all[int(suiteIdx)%len(all)]
		o := EncryptOptions{Suite: s, FrameLength: int(frame), EncryptionContext: map[string]string{ck: cv}}
		msg, err := Encrypt(k, pt, o)
		if err != nil {
			if !classified(err) {
				t.Fatalf("unclassified error: %v", err)
			}
			return // e.g. a reserved or non-UTF-8 context key
		}
		m, err := Decrypt(k, msg, DecryptOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m.Plaintext, pt) || m.EncryptionContext[ck] != cv {
			t.Fatal("round trip differs")
		}
	})
}
