package esdk

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"strings"
	"unicode/utf8"
)

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// HKDF labels of message format 2 (KeyDerivation in the ESDK).
const (
	deriveKeyLabel = "DERIVEKEY"
	commitKeyLabel = "COMMITKEY"
)

// deriveKeys turns the data key into the content key and, for committing
// suites, the commitment key.
//
//   - identity KDF: the data key itself;
//   - format 1 HKDF: HKDF(hash, salt none, info = suite id || message id);
//   - format 2: PRK = HKDF-Extract(SHA-512, salt = message id); content key =
//     Expand(PRK, suite id || "DERIVEKEY"); commitment = Expand(PRK, "COMMITKEY").
func deriveKeys(si *suiteInfo, dataKey, msgID []byte) (contentKey, commitKey []byte, err error) {
	var sid [2]byte
	binary.BigEndian.PutUint16(sid[:], uint16(si.id))
	switch {
	case si.kdf == nil:
		return append([]byte(nil), dataKey...), nil, nil
	case !si.commit:
		info := make([]byte, 0, 2+len(msgID))
		info = append(append(info, sid[:]...), msgID...)
		contentKey, err = hkdf.Key(si.kdf, dataKey, nil, string(info), si.keyLen)
		return contentKey, nil, err
	default:
		prk, err := hkdf.Extract(sha512.New, dataKey, msgID)
		if err != nil {
			return nil, nil, err
		}
		contentKey, err = hkdf.Expand(sha512.New, prk, string(sid[:])+deriveKeyLabel, si.keyLen)
		if err != nil {
			return nil, nil, err
		}
		commitKey, err = hkdf.Expand(sha512.New, prk, commitKeyLabel, 32)
		clear(prk)
		return contentKey, commitKey, err
	}
}

// GenerateSigningKey makes a P-384 key for EncryptOptions.SigningKey.
func GenerateSigningKey(rnd io.Reader) (*ecdsa.PrivateKey, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	return ecdsa.GenerateKey(elliptic.P384(), rnd)
}

func sameCurve(a, b elliptic.Curve) bool {
	return a != nil && b != nil && a.Params().Name == b.Params().Name
}

// compressPoint encodes pub as SEC 1 compressed point, the form the ESDK
// puts (base64) under "aws-crypto-public-key".
func compressPoint(pub *ecdsa.PublicKey) ([]byte, error) {
	raw, err := pub.Bytes() // 0x04 || X || Y
	if err != nil {
		return nil, err
	}
	n := (len(raw) - 1) / 2
	out := make([]byte, 1+n)
	out[0] = 2 | raw[len(raw)-1]&1
	copy(out[1:], raw[1:1+n])
	return out, nil
}

func parseCompressedPoint(curve elliptic.Curve, data []byte) (*ecdsa.PublicKey, error) {
	x, y := elliptic.UnmarshalCompressed(curve, data)
	if x == nil {
		return nil, errors.New("not a compressed point on " + curve.Params().Name)
	}
	n := (curve.Params().BitSize + 7) / 8
	raw := make([]byte, 1+2*n)
	raw[0] = 4
	x.FillBytes(raw[1 : 1+n])
	y.FillBytes(raw[1+n:])
	return ecdsa.ParseUncompressedPublicKey(curve, raw)
}

// sign signs digest and returns the DER signature, of exactly si.sigLen bytes
// whenever it can: the Java and Go SDKs do the same so that a message's length
// is known before signing. (r, n-s) is as valid as (r, s), and exactly one of
// s and n-s has its top bit set, so flipping s fixes the length without
// re-signing unless r or s is short by a whole byte (about 1 in 128).
func sign(si *suiteInfo, priv *ecdsa.PrivateKey, digest []byte, nonces *Nonces) ([]byte, error) {
	n := si.curve.Params().N
	c := curveFor(si.curve)
	var sig []byte
	for range 16 {
		ps, err := nonces.take(c)
		if err != nil {
			return nil, err
		}
		rb, sb, err := c.signWith(ps, priv, digest)
		if err != nil {
			return nil, err
		}
		r, s := new(big.Int).SetBytes(rb), new(big.Int).SetBytes(sb)
		sig = appendDERSig(sig[:0], r, s)
		if len(sig) == si.sigLen {
			return sig, nil
		}
		sig = appendDERSig(sig[:0], r, s.Sub(n, s))
		if len(sig) == si.sigLen {
			return sig, nil
		}
	}
	return sig, nil // valid, only of an unusual length
}

// appendDERSig encodes ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER };
// both fit short-form lengths for P-256 and P-384.
func appendDERSig(dst []byte, r, s *big.Int) []byte {
	rb, sb := r.Bytes(), s.Bytes()
	intLen := func(b []byte) int {
		if len(b) == 0 || b[0]&0x80 != 0 {
			return len(b) + 1
		}
		return len(b)
	}
	appendInt := func(dst, b []byte) []byte {
		dst = append(dst, 0x02, byte(intLen(b)))
		if len(b) == 0 || b[0]&0x80 != 0 {
			dst = append(dst, 0)
		}
		return append(dst, b...)
	}
	dst = append(dst, 0x30, byte(2+intLen(rb)+2+intLen(sb)))
	dst = appendInt(dst, rb)
	return appendInt(dst, sb)
}

// pair is one encryption context entry.
type pair struct{ k, v string }

func validContextEntry(k, v string) error {
	if !utf8.ValidString(k) || !utf8.ValidString(v) {
		return fmt.Errorf("%w: encryption context entry %q is not UTF-8", ErrInvalid, k)
	}
	if len(k) > 0xFFFF || len(v) > 0xFFFF {
		return fmt.Errorf("%w: encryption context entry %q longer than 65535 bytes", ErrInvalid, k)
	}
	return nil
}

func sortPairs(p []pair) {
	slices.SortFunc(p, func(a, b pair) int { return strings.Compare(a.k, b.k) })
}

// contextLen is the length of the serialized context: nothing when empty,
// else a pair count and length-prefixed keys and values.
func contextLen(p []pair) int {
	if len(p) == 0 {
		return 0
	}
	n := 2
	for _, kv := range p {
		n += 4 + len(kv.k) + len(kv.v)
	}
	return n
}

// appendContext serializes sorted pairs (the spec's "Key Value Pairs", also
// the raw AES keyring's AAD).
func appendContext(dst []byte, p []pair) []byte {
	if len(p) == 0 {
		return dst
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(p)))
	for _, kv := range p {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(kv.k)))
		dst = append(dst, kv.k...)
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(kv.v)))
		dst = append(dst, kv.v...)
	}
	return dst
}

// ecdsaGenerate makes a per-message signing key on the suite's curve.
func ecdsaGenerate(si *suiteInfo) (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(si.curve, rand.Reader)
}
