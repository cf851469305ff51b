package esdk

import (
	"fmt"
	"testing"
)

func BenchmarkEncrypt(b *testing.B) {
	k := testKeyring()
	sk, err := GenerateSigningKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	ec := map[string]string{"aws:rds:dbc-id": "cluster-ABCDEFGHIJKL"}
	for _, size := range []int{64 << 10, 256 << 10} {
		pt := randomBytes(b, size)
		for _, tc := range []struct {
			name  string
			suite Suite
			key   bool
		}{
			{"0378/reused-key", SuiteAES256GCMIV12Tag16HKDFSHA384ECDSAP384, true},
			{"0378/fresh-key", SuiteAES256GCMIV12Tag16HKDFSHA384ECDSAP384, false},
			{"0578/reused-key", SuiteAES256GCMHKDFSHA512CommitKeyECDSAP384, true},
			{"0478/unsigned", SuiteAES256GCMHKDFSHA512CommitKey, false},
		} {
			b.Run(fmt.Sprintf("%s/%dKiB", tc.name, size>>10), func(b *testing.B) {
				o := EncryptOptions{Suite: tc.suite, EncryptionContext: ec}
				if tc.key {
					o.SigningKey = sk
				}
				b.ReportAllocs()
				b.SetBytes(int64(size))
				for b.Loop() {
					if _, err := Encrypt(k, pt, o); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	k := testKeyring()
	ec := map[string]string{"aws:rds:dbc-id": "cluster-ABCDEFGHIJKL"}
	for _, size := range []int{64 << 10, 256 << 10} {
		pt := randomBytes(b, size)
		for _, s := range []Suite{SuiteAES256GCMIV12Tag16HKDFSHA384ECDSAP384, SuiteAES256GCMHKDFSHA512CommitKey} {
			msg, err := Encrypt(k, pt, EncryptOptions{Suite: s, EncryptionContext: ec})
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("%04x/%dKiB", uint16(s), size>>10), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				for b.Loop() {
					if _, err := Decrypt(k, msg, DecryptOptions{}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
