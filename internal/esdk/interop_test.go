package esdk

// Interoperability with the official AWS Encryption SDK for Go (a Dafny-built
// implementation of the same specification), used here as a test oracle only.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"testing"

	mpl "github.com/aws/aws-cryptographic-material-providers-library/releases/go/mpl/awscryptographymaterialproviderssmithygenerated"
	mpltypes "github.com/aws/aws-cryptographic-material-providers-library/releases/go/mpl/awscryptographymaterialproviderssmithygeneratedtypes"
	official "github.com/aws/aws-encryption-sdk/releases/go/encryption-sdk/awscryptographyencryptionsdksmithygenerated"
	officialtypes "github.com/aws/aws-encryption-sdk/releases/go/encryption-sdk/awscryptographyencryptionsdksmithygeneratedtypes"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/official-*.bin from the official SDK")

func officialKeyring(t testing.TB, k Keyring) mpltypes.IKeyring {
	t.Helper()
	m, err := mpl.NewClient(mpltypes.MaterialProvidersConfig{})
	if err != nil {
		t.Fatal(err)
	}
	kr, err := m.CreateRawAesKeyring(context.Background(), mpltypes.CreateRawAesKeyringInput{
		KeyNamespace: k.Namespace,
		KeyName:      k.Name,
		WrappingAlg:  mpltypes.AesWrappingAlgAlgAes256GcmIv12Tag16,
		WrappingKey:  k.Key,
	})
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func officialClient(t testing.TB, policy mpltypes.ESDKCommitmentPolicy) *official.Client {
	t.Helper()
	c, err := official.NewClient(officialtypes.AwsEncryptionSdkConfig{CommitmentPolicy: &policy})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func officialSuiteID(s Suite) mpltypes.ESDKAlgorithmSuiteId {
	return mpltypes.ESDKAlgorithmSuiteId(fmt.Sprintf("0x%04X", uint16(s)))
}

func withoutPublicKey(ec map[string]string) map[string]string {
	out := maps.Clone(ec)
	delete(out, publicKeyContextKey)
	return out
}

// TestInteropOfficialDecryptsOurs: every suite, framed and non-framed, sizes
// around the frame boundary; the official SDK must return our plaintext,
// suite and context (public key included).
func TestInteropOfficialDecryptsOurs(t *testing.T) {
	k := testKeyring()
	kr := officialKeyring(t, k)
	// DAS consumers' policy: decrypts both committing and non-committing.
	client := officialClient(t, mpltypes.ESDKCommitmentPolicyRequireEncryptAllowDecrypt)
	signingKey, err := GenerateSigningKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	ec := map[string]string{"aws:rds:dbc-id": "cluster-ABCDEFGHIJKL", "purpose": "interop", "ünï": "cödé"}

	type tcase struct {
		suite   Suite
		n       int
		frame   int
		framed  bool
		reuseSK bool
	}
	var cases []tcase
	for _, s := range Suites() {
		for _, n := range []int{0, 1, 4096, 4097} {
			cases = append(cases, tcase{s, n, 0, true, false})
		}
	}
	for _, s := range []Suite{SuiteAES256GCMIV12Tag16HKDFSHA384ECDSAP384, SuiteAES256GCMHKDFSHA512CommitKeyECDSAP384} {
		cases = append(cases,
			tcase{s, 20000, 1000, true, true},
			tcase{s, 100, 1, true, true},
			tcase{s, 0, 0, false, false},
			tcase{s, 3000, 0, false, true},
		)
	}
	for _, tc := range cases {
		name := fmt.Sprintf("%04x/n=%d/frame=%d/framed=%v/reuse=%v", uint16(tc.suite), tc.n, tc.frame, tc.framed, tc.reuseSK)
		t.Run(name, func(t *testing.T) {
			pt := randomBytes(t, tc.n)
			o := EncryptOptions{Suite: tc.suite, FrameLength: tc.frame, EncryptionContext: ec}
			if tc.reuseSK && tc.suite.Signed() {
				// das's way: one key per data key, precomputed nonces.
				o.SigningKey = signingKey
				o.Nonces = NewNonces(tc.suite, 2)
				defer o.Nonces.Close()
			}
			ct := contentFramed
			if !tc.framed {
				ct = contentNonFramed
			}
			msg, err := encrypt(k, pt, o, ct)
			if err != nil {
				t.Fatal(err)
			}
			out, err := client.Decrypt(context.Background(), officialtypes.DecryptInput{Ciphertext: msg, Keyring: kr, EncryptionContext: ec})
			if err != nil {
				t.Fatalf("official SDK rejects our message: %v", err)
			}
			if !bytes.Equal(out.Plaintext, pt) {
				t.Fatalf("official SDK plaintext differs (%d bytes, want %d)", len(out.Plaintext), len(pt))
			}
			if out.AlgorithmSuiteId != officialSuiteID(tc.suite) {
				t.Errorf("official SDK sees suite %s, want %s", out.AlgorithmSuiteId, officialSuiteID(tc.suite))
			}
			if !maps.Equal(withoutPublicKey(out.EncryptionContext), ec) {
				t.Errorf("official SDK context %v, want %v", out.EncryptionContext, ec)
			}
			ours, err := Decrypt(k, msg, DecryptOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(out.EncryptionContext, ours.EncryptionContext) {
				t.Errorf("contexts differ: official %v, ours %v", out.EncryptionContext, ours.EncryptionContext)
			}
		})
	}

	// The official SDK must also reject what we reject: a flipped body byte.
	msg, err := Encrypt(k, []byte("tamper"), EncryptOptions{EncryptionContext: ec})
	if err != nil {
		t.Fatal(err)
	}
	msg[len(msg)-2-103-20] ^= 1
	if _, err := client.Decrypt(context.Background(), officialtypes.DecryptInput{Ciphertext: msg, Keyring: kr}); err == nil {
		t.Error("official SDK accepts a tampered message")
	}
}

// TestInteropWeDecryptOfficial: the official SDK encrypts (its default
// committing suite, and every other suite it lets one choose), we decrypt.
func TestInteropWeDecryptOfficial(t *testing.T) {
	k := testKeyring()
	kr := officialKeyring(t, k)
	ctx := context.Background()
	ec := map[string]string{"aws:rds:dbc-id": "cluster-ABCDEFGHIJKL", "z": "", "a": "1"}

	// Default client and suite: 0x0578 under REQUIRE_ENCRYPT_REQUIRE_DECRYPT.
	def, err := official.NewClient(officialtypes.AwsEncryptionSdkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	pt := randomBytes(t, 10000)
	out, err := def.Encrypt(ctx, officialtypes.EncryptInput{Plaintext: pt, Keyring: kr, EncryptionContext: ec})
	if err != nil {
		t.Fatal(err)
	}
	if got := Suite(binary.BigEndian.Uint16(out.Ciphertext[1:])); got != SuiteAES256GCMHKDFSHA512CommitKeyECDSAP384 {
		t.Fatalf("official default suite %v, expected 0x0578", got)
	}
	m, err := Decrypt(k, out.Ciphertext, DecryptOptions{RequireCommitment: true})
	if err != nil {
		t.Fatalf("official default message: %v", err)
	}
	if !bytes.Equal(m.Plaintext, pt) || !maps.Equal(m.EncryptionContext, out.EncryptionContext) || m.Version != 2 {
		t.Fatalf("official default message decrypts to other plaintext/context (version %d)", m.Version)
	}

	// Non-committing suites need FORBID_ENCRYPT; committing ones REQUIRE.
	forbid := officialClient(t, mpltypes.ESDKCommitmentPolicyForbidEncryptAllowDecrypt)
	require := officialClient(t, mpltypes.ESDKCommitmentPolicyRequireEncryptAllowDecrypt)
	for _, s := range Suites() {
		c := forbid
		if s.Committing() {
			c = require
		}
		for _, tc := range []struct{ n, frame int }{{0, 4096}, {1, 4096}, {4096, 4096}, {4097, 4096}, {1000, 100}, {5, 1}} {
			t.Run(fmt.Sprintf("%04x/n=%d/frame=%d", uint16(s), tc.n, tc.frame), func(t *testing.T) {
				pt := randomBytes(t, tc.n)
				id := officialSuiteID(s)
				frame := int64(tc.frame)
				out, err := c.Encrypt(ctx, officialtypes.EncryptInput{Plaintext: pt, Keyring: kr, EncryptionContext: ec,
					AlgorithmSuiteId: &id, FrameLength: &frame})
				if err != nil {
					t.Fatalf("official encrypt: %v", err)
				}
				m, err := Decrypt(k, out.Ciphertext, DecryptOptions{MaxEncryptedDataKeys: 1})
				if err != nil {
					t.Fatalf("we reject the official message: %v", err)
				}
				if !bytes.Equal(m.Plaintext, pt) {
					t.Fatal("plaintext differs")
				}
				if m.Suite != s {
					t.Errorf("suite %v, want %v", m.Suite, s)
				}
				if !maps.Equal(m.EncryptionContext, out.EncryptionContext) {
					t.Errorf("context %v, official says %v", m.EncryptionContext, out.EncryptionContext)
				}
				if s.Signed() != (m.EncryptionContext[publicKeyContextKey] != "") {
					t.Errorf("public key in context: %v, suite signed: %v", m.EncryptionContext[publicKeyContextKey] != "", s.Signed())
				}
				// And every flip of the official message is caught.
				for _, i := range []int{0, 5, 40, len(out.Ciphertext) / 2, len(out.Ciphertext) - 1} {
					bad := bytes.Clone(out.Ciphertext)
					bad[i] ^= 0x10
					if _, err := Decrypt(k, bad, DecryptOptions{}); err == nil || !classified(err) {
						t.Errorf("flip at %d of official message: %v", i, err)
					}
				}
			})
		}
	}
}

// TestInteropMultipleKeys: the official multi-keyring writes two encrypted
// data keys; we find ours among them and honour MaxEncryptedDataKeys.
func TestInteropMultipleKeys(t *testing.T) {
	k := testKeyring()
	other := Keyring{Namespace: "BC", Name: "Other", Key: bytes.Repeat([]byte{9}, 32)}
	m, err := mpl.NewClient(mpltypes.MaterialProvidersConfig{})
	if err != nil {
		t.Fatal(err)
	}
	gen := officialKeyring(t, other)
	multi, err := m.CreateMultiKeyring(context.Background(), mpltypes.CreateMultiKeyringInput{
		Generator: gen, ChildKeyrings: []mpltypes.IKeyring{officialKeyring(t, k)},
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := officialClient(t, mpltypes.ESDKCommitmentPolicyForbidEncryptAllowDecrypt).Encrypt(context.Background(),
		officialtypes.EncryptInput{Plaintext: []byte("two keys"), Keyring: multi, AlgorithmSuiteId: ptr(officialSuiteID(DefaultSuite))})
	if err != nil {
		t.Fatal(err)
	}
	for _, kr := range []Keyring{k, other} {
		msg, err := Decrypt(kr, out.Ciphertext, DecryptOptions{})
		if err != nil || string(msg.Plaintext) != "two keys" {
			t.Errorf("keyring %s: %v", kr.Name, err)
		}
	}
	if _, err := Decrypt(k, out.Ciphertext, DecryptOptions{MaxEncryptedDataKeys: 1}); !errors.Is(err, ErrTooManyKeys) {
		t.Errorf("two keys under limit 1: %v, want ErrTooManyKeys", err)
	}
	stranger := Keyring{Namespace: "BC", Name: "Nobody", Key: k.Key}
	if _, err := Decrypt(stranger, out.Ciphertext, DecryptOptions{}); !errors.Is(err, ErrNoMatchingKey) {
		t.Errorf("unknown key name: %v, want ErrNoMatchingKey", err)
	}
}

func ptr[T any](v T) *T { return &v }

// TestOfficialGolden decrypts messages the official SDK wrote once (see
// -update), so the format is pinned even if the oracle changes.
func TestOfficialGolden(t *testing.T) {
	k := testKeyring()
	golden := []struct {
		file  string
		suite Suite
	}{
		{"official-0378.bin", SuiteAES256GCMIV12Tag16HKDFSHA384ECDSAP384},
		{"official-0578.bin", SuiteAES256GCMHKDFSHA512CommitKeyECDSAP384},
		{"official-0178.bin", SuiteAES256GCMIV12Tag16HKDFSHA256},
	}
	const plaintext = `{"type":"DatabaseActivityMonitoringRecord","clusterId":"cluster-ABCDEFGHIJKL","databaseActivityEventList":[]}`
	ec := map[string]string{"aws:rds:dbc-id": "cluster-ABCDEFGHIJKL"}
	if *updateGolden {
		for _, g := range golden {
			c := officialClient(t, mpltypes.ESDKCommitmentPolicyForbidEncryptAllowDecrypt)
			if g.suite.Committing() {
				c = officialClient(t, mpltypes.ESDKCommitmentPolicyRequireEncryptAllowDecrypt)
			}
			out, err := c.Encrypt(context.Background(), officialtypes.EncryptInput{Plaintext: []byte(plaintext),
				Keyring: officialKeyring(t, k), EncryptionContext: ec, AlgorithmSuiteId: ptr(officialSuiteID(g.suite)), FrameLength: ptr(int64(64))})
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join("testdata", g.file), out.Ciphertext, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, g := range golden {
		msg, err := os.ReadFile(filepath.Join("testdata", g.file))
		if err != nil {
			t.Fatal(err)
		}
		m, err := Decrypt(k, msg, DecryptOptions{})
		if err != nil {
			t.Fatalf("%s: %v", g.file, err)
		}
		if string(m.Plaintext) != plaintext || m.Suite != g.suite || !maps.Equal(withoutPublicKey(m.EncryptionContext), ec) {
			t.Errorf("%s: got suite %v, context %v, plaintext %q", g.file, m.Suite, m.EncryptionContext, m.Plaintext)
		}
	}
}
