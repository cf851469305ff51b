package dasrecord

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/klauspost/compress/gzip"

	"github.com/das-mysql/das/internal/esdk"
	"github.com/das-mysql/das/internal/event"
)

// Event is one activity event (an item of databaseActivityEventList).
type Event = event.Event

// Payload is the decrypted databaseActivityEvents object.
type Payload = event.Payload

// KeyDecrypter unwraps a record's data key: AWS KMS Decrypt, or das's local
// KMS. Implementations should cache, since DAS reuses data keys across records.
type KeyDecrypter interface {
	Decrypt(ctx context.Context, ciphertext []byte, encCtx map[string]string) ([]byte, error)
}

// Errors that name why a record could not be read.
var (
	ErrKey         = errors.New("data key cannot be decrypted")
	ErrMessage     = errors.New("encrypted events cannot be decrypted")
	ErrBinding     = errors.New("record fields do not match their sealed copy")
	ErrPayload     = errors.New("decrypted events are malformed")
	ErrOtherStream = errors.New("record belongs to another stream")
)

// DefaultMaxPayload bounds a decompressed payload, against gzip bombs.
const DefaultMaxPayload = 256 << 20

// Decrypter opens records of one stream.
type Decrypter struct {
	KMS KeyDecrypter
	// ResourceID is the stream's resource id: the DAS cluster resource id
	// ("cluster-..."), an instance's DbiResourceId ("db-..."), or a das stream
	// id. Empty means: take it from each record's dasStreamId.
	ResourceID string
	// MaxPayload bounds the decompressed size; zero means DefaultMaxPayload.
	MaxPayload int
}

// Opened is a decrypted record.
type Opened struct {
	Record  *Record
	Payload Payload
	// Context is the authenticated encryption context of the message.
	Context map[string]string
}

// ContextFor returns the KMS encryption context AWS uses for a resource id:
// instances ("db-...") are bound under aws:rds:db-id, clusters and das
// streams under aws:rds:dbc-id.
func ContextFor(resourceID string) map[string]string {
	if strings.HasPrefix(resourceID, "db-") {
		return map[string]string{ContextInstance: resourceID}
	}
	return map[string]string{ContextCluster: resourceID}
}

// Decrypt parses and opens one record line.
func (d *Decrypter) Decrypt(ctx context.Context, line []byte) (*Opened, error) {
	r, err := Parse(line)
	if err != nil {
		return nil, err
	}
	return d.Open(ctx, r)
}

// Open decrypts a parsed record: KMS unwraps the data key under the stream's
// encryption context, the data key opens the Encryption SDK message (signature
// verified), and the gzip inside holds the events.
func (d *Decrypter) Open(ctx context.Context, r *Record) (*Opened, error) {
	id := d.ResourceID
	switch {
	case id == "":
		id = r.StreamID
		if id == "" {
			return nil, fmt.Errorf("%w: the record has no dasStreamId; give the resource id of the stream", ErrKey)
		}
	case r.StreamID != "" && r.StreamID != id:
		return nil, fmt.Errorf("%w: record of %q, reading %q", ErrOtherStream, r.StreamID, id)
	}
	wrapped, err := base64.StdEncoding.DecodeString(r.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: key is not base64: %v", ErrKey, err)
	}
	msg, err := base64.StdEncoding.DecodeString(r.DatabaseActivityEvents)
	if err != nil {
		return nil, fmt.Errorf("%w: databaseActivityEvents is not base64: %v", ErrMessage, err)
	}
	dataKey, err := d.KMS.Decrypt(ctx, wrapped, ContextFor(id))
	if err != nil {
		return nil, fmt.Errorf("%w under %s: %w", ErrKey, contextString(ContextFor(id)), err)
	}
	m, err := esdk.Decrypt(esdk.Keyring{Namespace: "BC", Name: "DataKey", Key: dataKey}, msg, esdk.DecryptOptions{MaxEncryptedDataKeys: 1})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMessage, err)
	}
	if err := checkBinding(r, m.EncryptionContext); err != nil {
		return nil, err
	}
	max := d.MaxPayload
	if max <= 0 {
		max = DefaultMaxPayload
	}
	plain, err := gunzip(m.Plaintext, max)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPayload, err)
	}
	o := &Opened{Record: r, Context: m.EncryptionContext}
	if err := o.Payload.UnmarshalJSON(plain); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPayload, err)
	}
	return o, nil
}

// checkBinding compares das's outer integrity fields with the copies sealed in
// the message's encryption context. Records without them (AWS's) pass.
func checkBinding(r *Record, ec map[string]string) error {
	s, hasSeq := ec[ContextSeq]
	if !hasSeq {
		if r.StreamID != "" {
			return fmt.Errorf("%w: record claims stream %q but its message carries no das binding", ErrBinding, r.StreamID)
		}
		return nil
	}
	if s != strconv.FormatUint(r.Seq, 10) {
		return fmt.Errorf("%w: dasSeq is %d, sealed %s", ErrBinding, r.Seq, s)
	}
	if p := ec[ContextPrev]; p != r.Prev {
		return fmt.Errorf("%w: dasPrev is %q, sealed %q", ErrBinding, r.Prev, p)
	}
	if sid := ec[ContextStream]; sid != r.StreamID {
		return fmt.Errorf("%w: dasStreamId is %q, sealed %q", ErrBinding, r.StreamID, sid)
	}
	return nil
}

func gunzip(b []byte, max int) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	if len(out) > max {
		return nil, fmt.Errorf("gzip: payload exceeds %d bytes", max)
	}
	return out, nil
}

func contextString(ec map[string]string) string {
	var b strings.Builder
	b.WriteByte('{')
	first := true
	for k, v := range ec {
		if !first {
			b.WriteByte(',')
		}
		first = false
		fmt.Fprintf(&b, "%q:%q", k, v)
	}
	b.WriteByte('}')
	return b.String()
}
