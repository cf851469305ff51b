// Package kms provides the envelope-key providers that seal activity records:
// an embedded local master key (the default) and AWS KMS. Every call binds an
// encryption context, exactly as DAS does with {"aws:rds:dbc-id": <resource id>}.
package kms

import (
	"context"
	"encoding/binary"
	"fmt"
	"sort"
)

// DataKey is a fresh 256-bit data key: its plaintext, used once or a bounded
// number of times to seal records and then zeroed, and its ciphertext under the
// provider's master key, which travels in each record's "key" field.
type DataKey struct {
	Plaintext  []byte
	Ciphertext []byte
	KeyID      string // the master key that wrapped it (ARN for AWS KMS)
}

// String keeps the plaintext out of logs and error messages however a
// DataKey is printed (%v, %+v, %s).
func (k DataKey) String() string {
	return fmt.Sprintf("DataKey{KeyID: %q, Plaintext: [%d bytes redacted], Ciphertext: [%d bytes]}",
		k.KeyID, len(k.Plaintext), len(k.Ciphertext))
}

// GoString does the same for %#v.
func (k DataKey) GoString() string { return k.String() }

// Provider is a KMS: it makes data keys and unwraps them under an encryption context.
type Provider interface {
	GenerateDataKey(ctx context.Context, encCtx map[string]string) (DataKey, error)
	Decrypt(ctx context.Context, ciphertext []byte, encCtx map[string]string) ([]byte, error)
	// Name says which provider and key this is, for logs and errors ("local:/path", "aws:arn:...").
	Name() string
}

// canonicalContext serializes an encryption context deterministically: a pair
// count, then each pair in sorted key order with both key and value
// length-prefixed, so that no two different contexts share an encoding. A nil
// and an empty context encode the same.
func canonicalContext(encCtx map[string]string) []byte {
	keys := make([]string, 0, len(encCtx))
	n := 4
	for k, v := range encCtx {
		keys = append(keys, k)
		n += 8 + len(k) + len(v)
	}
	sort.Strings(keys)
	b := make([]byte, 0, n)
	b = binary.BigEndian.AppendUint32(b, uint32(len(keys)))
	for _, k := range keys {
		v := encCtx[k]
		b = binary.BigEndian.AppendUint32(b, uint32(len(k)))
		b = append(b, k...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
		b = append(b, v...)
	}
	return b
}

// copyContext returns a private copy so callers may reuse their map.
func copyContext(encCtx map[string]string) map[string]string {
	c := make(map[string]string, len(encCtx))
	for k, v := range encCtx {
		c[k] = v
	}
	return c
}

// zero overwrites key material that is no longer needed.
func zero(b []byte) {
	clear(b)
}
