// Package esdk reads and writes AWS Encryption SDK messages with a raw AES
// keyring: the envelope that Database Activity Streams puts in each record's
// databaseActivityEvents field. Messages it writes decrypt with the official
// SDKs, and it decrypts theirs, for every algorithm suite of message formats 1
// and 2 (framed and non-framed content).
//
// The whole message is held in memory: DAS records are small, and one pass
// over a preallocated buffer is faster than the streaming machinery.
package esdk

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"
)

// Suite is an algorithm suite id, as written in the message header.
type Suite uint16

// The algorithm suites of the AWS Encryption SDK. Every one encrypts and
// decrypts; AWS DAS for Aurora MySQL emits the default, 0x0378.
const (
	SuiteAES128GCMIV12Tag16NoKDF               Suite = 0x0014
	SuiteAES192GCMIV12Tag16NoKDF               Suite = 0x0046
	SuiteAES256GCMIV12Tag16NoKDF               Suite = 0x0078
	SuiteAES128GCMIV12Tag16HKDFSHA256          Suite = 0x0114
	SuiteAES192GCMIV12Tag16HKDFSHA256          Suite = 0x0146
	SuiteAES256GCMIV12Tag16HKDFSHA256          Suite = 0x0178
	SuiteAES128GCMIV12Tag16HKDFSHA256ECDSAP256 Suite = 0x0214
	SuiteAES192GCMIV12Tag16HKDFSHA384ECDSAP384 Suite = 0x0346
	SuiteAES256GCMIV12Tag16HKDFSHA384ECDSAP384 Suite = 0x0378 // the default: what DAS emits (format 1, signed)
	SuiteAES256GCMHKDFSHA512CommitKey          Suite = 0x0478 // committing, format 2
	SuiteAES256GCMHKDFSHA512CommitKeyECDSAP384 Suite = 0x0578 // committing, format 2, signed
)

// DefaultSuite is used when EncryptOptions.Suite is zero.
const DefaultSuite = SuiteAES256GCMIV12Tag16HKDFSHA384ECDSAP384

// DefaultFrameLength is the ESDK's default frame length.
const DefaultFrameLength = 4096

// Errors returned by Encrypt and Decrypt, always wrapped with detail; test
// with errors.Is.
var (
	// ErrMalformed: the message does not parse (the detail names the byte offset).
	ErrMalformed = errors.New("esdk: malformed message")
	// ErrUnsupported: an unknown version, type, suite or content type.
	ErrUnsupported = errors.New("esdk: unsupported message")
	// ErrNoMatchingKey: no encrypted data key is for this keyring, or the one
	// that names it does not unwrap with its key (wrong key material).
	ErrNoMatchingKey = errors.New("esdk: no encrypted data key matches the keyring")
	// ErrAuthentication: the header or a frame fails AES-GCM authentication.
	ErrAuthentication = errors.New("esdk: authentication failed")
	// ErrCommitment: the key commitment does not match, or the options require
	// a committing suite and the message has none.
	ErrCommitment = errors.New("esdk: key commitment")
	// ErrSignature: the footer signature does not verify.
	ErrSignature = errors.New("esdk: signature verification failed")
	// ErrTooManyKeys: the message has more encrypted data keys than allowed.
	ErrTooManyKeys = errors.New("esdk: too many encrypted data keys")
	// ErrInvalid: a bad argument (keyring, options, encryption context).
	ErrInvalid = errors.New("esdk: invalid argument")
)

// Keyring is a raw AES-GCM wrapping key (the ESDK's Raw AES keyring with
// IV 12, tag 16). DAS uses Namespace "BC", Name "DataKey" and a 32-byte key.
type Keyring struct {
	Namespace string // key provider id
	Name      string // key name, the start of the key provider info
	Key       []byte // 16, 24 or 32 bytes
}

func (k Keyring) validate() error {
	switch len(k.Key) {
	case 16, 24, 32:
	default:
		return fmt.Errorf("%w: wrapping key is %d bytes, want 16, 24 or 32", ErrInvalid, len(k.Key))
	}
	if k.Namespace == "" || k.Name == "" {
		return fmt.Errorf("%w: keyring namespace and name must be set", ErrInvalid)
	}
	// The spec reserves "aws-kms" for KMS keyrings.
	if k.Namespace == "aws-kms" {
		return fmt.Errorf("%w: keyring namespace %q is reserved", ErrInvalid, k.Namespace)
	}
	if len(k.Namespace) > 0xFFFF || len(k.Name)+8+gcmIVLen > 0xFFFF {
		return fmt.Errorf("%w: keyring namespace or name too long", ErrInvalid)
	}
	return nil
}

const (
	gcmIVLen  = 12
	gcmTagLen = 16

	// publicKeyContextKey carries the verification key of signed suites.
	publicKeyContextKey = "aws-crypto-public-key"
	reservedPrefix      = "aws-crypto-"

	contentNonFramed byte = 0x01
	contentFramed    byte = 0x02

	finalFrameMarker = 0xFFFFFFFF
	// maxNonFramedLen is the GCM limit the spec puts on non-framed content.
	maxNonFramedLen = 1<<36 - 32
)

// suiteInfo is one row of the spec's algorithm suite table.
type suiteInfo struct {
	id      Suite
	name    string
	version byte             // message format
	keyLen  int              // data key and content key length
	kdf     func() hash.Hash // nil: identity KDF
	commit  bool             // format 2: HKDF-SHA512 with commitment
	curve   elliptic.Curve   // nil: unsigned
	hash    func() hash.Hash // signature digest
	sigLen  int              // fixed DER signature length we emit, as the Java and Go SDKs do
}

func (s *suiteInfo) msgIDLen() int {
	if s.version == 2 {
		return 32
	}
	return 16
}

var suites = []suiteInfo{
	{id: 0x0014, name: "AES_128_GCM_IV12_TAG16_NO_KDF", version: 1, keyLen: 16},
	{id: 0x0046, name: "AES_192_GCM_IV12_TAG16_NO_KDF", version: 1, keyLen: 24},
	{id: 0x0078, name: "AES_256_GCM_IV12_TAG16_NO_KDF", version: 1, keyLen: 32},
	{id: 0x0114, name: "AES_128_GCM_IV12_TAG16_HKDF_SHA256", version: 1, keyLen: 16, kdf: sha256.New},
	{id: 0x0146, name: "AES_192_GCM_IV12_TAG16_HKDF_SHA256", version: 1, keyLen: 24, kdf: sha256.New},
	{id: 0x0178, name: "AES_256_GCM_IV12_TAG16_HKDF_SHA256", version: 1, keyLen: 32, kdf: sha256.New},
	{id: 0x0214, name: "AES_128_GCM_IV12_TAG16_HKDF_SHA256_ECDSA_P256", version: 1, keyLen: 16, kdf: sha256.New,
		curve: elliptic.P256(), hash: sha256.New, sigLen: 71},
	{id: 0x0346, name: "AES_192_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384", version: 1, keyLen: 24, kdf: sha512.New384,
		curve: elliptic.P384(), hash: sha512.New384, sigLen: 103},
	{id: 0x0378, name: "AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384", version: 1, keyLen: 32, kdf: sha512.New384,
		curve: elliptic.P384(), hash: sha512.New384, sigLen: 103},
	{id: 0x0478, name: "AES_256_GCM_HKDF_SHA512_COMMIT_KEY", version: 2, keyLen: 32, kdf: sha512.New, commit: true},
	{id: 0x0578, name: "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384", version: 2, keyLen: 32, kdf: sha512.New, commit: true,
		curve: elliptic.P384(), hash: sha512.New384, sigLen: 103},
}

func lookupSuite(s Suite) *suiteInfo {
	for i := range suites {
		if suites[i].id == s {
			return &suites[i]
		}
	}
	return nil
}

// Suites lists every supported algorithm suite.
func Suites() []Suite {
	out := make([]Suite, len(suites))
	for i := range suites {
		out[i] = suites[i].id
	}
	return out
}

// String is the suite's ESDK name, or its hex id when unknown.
func (s Suite) String() string {
	if si := lookupSuite(s); si != nil {
		return si.name
	}
	return fmt.Sprintf("Suite(0x%04X)", uint16(s))
}

// Known reports whether s is a supported suite.
func (s Suite) Known() bool { return lookupSuite(s) != nil }

// Committing reports whether s commits to its data key (message format 2).
func (s Suite) Committing() bool {
	si := lookupSuite(s)
	return si != nil && si.commit
}

// Signed reports whether messages of suite s end with an ECDSA signature.
func (s Suite) Signed() bool {
	si := lookupSuite(s)
	return si != nil && si.curve != nil
}

// EncryptOptions tune Encrypt. The zero value is DAS's choice: suite 0x0378,
// 4096-byte frames, a fresh signing key, crypto/rand.
type EncryptOptions struct {
	Suite             Suite             // zero => 0x0378
	FrameLength       int               // zero => 4096; framed content only
	EncryptionContext map[string]string // keys must not start with "aws-crypto-"
	// SigningKey, if set, signs every message instead of a fresh key per
	// message (key generation dominates the cost of small messages). P-384 for
	// the P-384 suites, P-256 for 0x0214. Reuse weakens only the
	// "one key per message" property: anyone holding the data key can already
	// forge messages for non-signed suites.
	SigningKey *ecdsa.PrivateKey
	// Nonces, if set, supplies precomputed ECDSA nonces (see NewNonces).
	Nonces *Nonces
	Rand   io.Reader // nil => crypto/rand; data keys, message ids, IVs
}

// DecryptOptions tune Decrypt.
type DecryptOptions struct {
	// RequireCommitment rejects non-committing suites (the ESDK's
	// REQUIRE_ENCRYPT_REQUIRE_DECRYPT). DAS emits 0x0378, so a DAS consumer
	// leaves it false (REQUIRE_ENCRYPT_ALLOW_DECRYPT).
	RequireCommitment bool
	// MaxEncryptedDataKeys rejects messages with more encrypted data keys;
	// zero means no limit, as in the ESDK.
	MaxEncryptedDataKeys int
}

// Message is a decrypted message.
type Message struct {
	Suite     Suite
	Version   byte   // message format: 1 or 2
	MessageID []byte // 16 bytes (format 1) or 32 (format 2)
	// EncryptionContext is the context from the header, including
	// "aws-crypto-public-key" for signed suites, as the ESDK returns it.
	EncryptionContext map[string]string
	Plaintext         []byte
}
