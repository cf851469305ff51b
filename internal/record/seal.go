// Package record seals batches of activity events into DAS records: events ->
// JSON -> gzip -> AWS Encryption SDK message under a KMS data key -> base64,
// plus das's integrity fields (stream id, sequence, previous digest).
// Reading records back lives in pkg/dasrecord, which other programs can import.
package record

import (
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"fmt"
	"strconv"
	"sync"

	"github.com/klauspost/compress/gzip"

	"github.com/das-mysql/das/internal/esdk"
	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/kms"
	"github.com/das-mysql/das/pkg/dasrecord"
)

// Options configure a Sealer.
type Options struct {
	StreamID   string // resource id bound into the KMS encryption context
	ClusterID  string // payload clusterId; defaults to StreamID
	InstanceID string // payload instanceId
	Suite      esdk.Suite
	// FrameLength of the Encryption SDK message; zero means the SDK default.
	FrameLength int
	// GzipLevel; zero means gzip.BestSpeed: the payload is sealed on the hot
	// path and activity text compresses well even at the fastest level.
	GzipLevel int
}

// KeySource hands out the current data key; *kms.KeyCache is one.
type KeySource interface {
	Acquire(ctx context.Context) (*kms.Lease, error)
}

// Sealer turns event batches into record lines. Seal is safe for concurrent
// use, but a stream's sequence is assigned by its single writer.
type Sealer struct {
	keys KeySource
	o    Options

	// gz holds scratch buffers for Seal. A sync.Pool would be emptied by
	// every other GC, which under load means regrowing a record-sized
	// buffer for most records; these stay.
	gz chan *gzipBuf

	mu      sync.Mutex
	signGen uint64
	signKey *ecdsa.PrivateKey

	// nonces keeps ECDSA nonces precomputed off the sealing path: a signed
	// record then costs ~3 µs of signing where it waits, not ~270 µs.
	nonces *esdk.Nonces
}

// jsonChunk is how much JSON Seal encodes before handing it to gzip: small
// enough to stay in a core's L2 cache, large enough that gzip's per-write
// cost does not count.
const jsonChunk = 32 << 10

// gzipBuf is per-goroutine scratch: a gzip writer, its output and the JSON
// input, reused so that sealing does not allocate per batch.
type gzipBuf struct {
	w   *gzip.Writer
	buf growBuf
	js  []byte
}

// growBuf is an io.Writer over a reusable byte slice.
type growBuf struct{ b []byte }

func (g *growBuf) Write(p []byte) (int, error) { g.b = append(g.b, p...); return len(p), nil }

// NewSealer returns a Sealer for one stream.
func NewSealer(keys KeySource, o Options) (*Sealer, error) {
	if o.StreamID == "" {
		return nil, fmt.Errorf("record: stream id is empty")
	}
	if o.ClusterID == "" {
		o.ClusterID = o.StreamID
	}
	if o.Suite == 0 {
		o.Suite = esdk.SuiteAES256GCMIV12Tag16HKDFSHA384ECDSAP384
	}
	if o.GzipLevel == 0 {
		o.GzipLevel = gzip.BestSpeed
	}
	if _, err := gzip.NewWriterLevel(nil, o.GzipLevel); err != nil {
		return nil, fmt.Errorf("record: gzip level %d: %w", o.GzipLevel, err)
	}
	return &Sealer{keys: keys, o: o, nonces: esdk.NewNonces(o.Suite, 16), gz: make(chan *gzipBuf, 4)}, nil
}

// Close stops the nonce precomputation. A closed Sealer still seals,
// computing each signature's nonce inline.
func (s *Sealer) Close() { s.nonces.Close() }

// Sealed is one sealed record.
type Sealed struct {
	Line   []byte // the record's line, no newline
	Digest dasrecord.Digest
	Events int
}

// Seal seals events as record seq of the stream, chained to prev (the digest
// of record seq-1, or the zero digest for the first record).
func (s *Sealer) Seal(ctx context.Context, events []event.Event, seq uint64, prev *dasrecord.Digest) (Sealed, error) {
	p := event.Payload{
		Type:       "DatabaseActivityMonitoringRecord",
		ClusterID:  s.o.ClusterID,
		InstanceID: s.o.InstanceID,
		Events:     events,
	}
	var g *gzipBuf
	select {
	case g = <-s.gz:
	default:
		w, _ := gzip.NewWriterLevel(nil, s.o.GzipLevel)
		g = &gzipBuf{w: w}
	}
	defer func() {
		select {
		case s.gz <- g:
		default:
		}
	}()
	g.buf.b = g.buf.b[:0]
	g.w.Reset(&g.buf)
	js, err := p.WriteJSON(g.w, g.js, jsonChunk)
	g.js = js
	if err != nil {
		return Sealed{}, fmt.Errorf("record: gzip: %w", err)
	}
	if err := g.w.Close(); err != nil {
		return Sealed{}, fmt.Errorf("record: gzip: %w", err)
	}

	lease, err := s.keys.Acquire(ctx)
	if err != nil {
		return Sealed{}, fmt.Errorf("record: data key: %w", err)
	}
	defer lease.Release()
	sign, err := s.signingKey(lease.Generation())
	if err != nil {
		return Sealed{}, err
	}
	prevHex := ""
	if prev != nil {
		prevHex = prev.String()
	}
	seqStr := strconv.FormatUint(seq, 10)
	ec := map[string]string{
		dasrecord.ContextStream: s.o.StreamID,
		dasrecord.ContextSeq:    seqStr,
		dasrecord.ContextPrev:   prevHex,
	}
	for k, v := range dasrecord.ContextFor(s.o.StreamID) {
		ec[k] = v
	}
	msg, err := esdk.Encrypt(esdk.Keyring{Namespace: "BC", Name: "DataKey", Key: lease.Plaintext()}, g.buf.b, esdk.EncryptOptions{
		Suite:             s.o.Suite,
		FrameLength:       s.o.FrameLength,
		EncryptionContext: ec,
		SigningKey:        sign,
		Nonces:            s.nonces,
	})
	if err != nil {
		return Sealed{}, fmt.Errorf("record: seal: %w", err)
	}
	r := dasrecord.Record{
		Type:     dasrecord.RecordType,
		Version:  event.Version,
		StreamID: s.o.StreamID,
		Seq:      seq,
		Prev:     prevHex,
	}
	r.DatabaseActivityEvents = base64.StdEncoding.EncodeToString(msg)
	r.Key = base64.StdEncoding.EncodeToString(lease.Ciphertext())
	line := r.AppendJSON(make([]byte, 0, len(r.DatabaseActivityEvents)+len(r.Key)+256))
	return Sealed{Line: line, Digest: dasrecord.DigestOf(line), Events: len(events)}, nil
}

// signingKey returns the ECDSA key for signed suites. Generating a P-384 key
// costs as much as sealing a large batch, so one key signs every record sealed
// under the same data key and is replaced with it; consumers verify against
// the public key each message carries.
func (s *Sealer) signingKey(gen uint64) (*ecdsa.PrivateKey, error) {
	if !s.o.Suite.Signed() {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.signKey == nil || s.signGen != gen {
		k, err := esdk.GenerateSigningKey(nil)
		if err != nil {
			return nil, fmt.Errorf("record: signing key: %w", err)
		}
		s.signKey, s.signGen = k, gen
	}
	return s.signKey, nil
}
