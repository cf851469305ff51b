// Package dasrecord reads Database Activity Stream records: the JSON record
// that travels on a stream, its KMS-wrapped data key, and the AWS Encryption
// SDK message holding the gzip-compressed activity events. It decrypts records
// written by das and by AWS's own DAS alike, so that other programs can consume
// either without das itself.
package dasrecord

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// RecordType is the "type" of every record on a DAS stream.
const RecordType = "DatabaseActivityMonitoringRecords"

// Encryption context keys. AWS binds the data key to the resource id of the
// cluster (dbc) or instance (db); das also binds each record's place in its
// stream into the message's own encryption context, so that the unauthenticated
// outer fields cannot be moved between records undetected.
const (
	ContextCluster  = "aws:rds:dbc-id"
	ContextInstance = "aws:rds:db-id"
	ContextStream   = "das:stream"
	ContextSeq      = "das:seq"
	ContextPrev     = "das:prev"
)

// Record is one record on the stream. StreamID, Seq and Prev are das's
// integrity fields; DAS consumers ignore them, and records from AWS's DAS lack
// them.
type Record struct {
	Type                   string `json:"type"`
	Version                string `json:"version"`
	DatabaseActivityEvents string `json:"databaseActivityEvents"`
	Key                    string `json:"key"`
	StreamID               string `json:"dasStreamId,omitempty"`
	Seq                    uint64 `json:"dasSeq,omitempty"`
	Prev                   string `json:"dasPrev,omitempty"`
}

// ErrNotRecord reports a line that is not a DAS record.
var ErrNotRecord = errors.New("not a DAS record")

// Parse decodes one record line and checks its shape.
func Parse(line []byte) (*Record, error) {
	var r Record
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotRecord, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the record", ErrNotRecord)
	}
	switch {
	case r.Type != RecordType:
		return nil, fmt.Errorf("%w: type is %q, want %q", ErrNotRecord, r.Type, RecordType)
	case r.DatabaseActivityEvents == "":
		return nil, fmt.Errorf("%w: databaseActivityEvents is empty", ErrNotRecord)
	case r.Key == "":
		return nil, fmt.Errorf("%w: key is empty", ErrNotRecord)
	}
	return &r, nil
}

// AppendJSON appends the record's line form (no newline). Field order is fixed
// so that a record's digest is reproducible.
func (r *Record) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"type":`...)
	dst = strconv.AppendQuote(dst, r.Type)
	dst = append(dst, `,"version":`...)
	dst = strconv.AppendQuote(dst, r.Version)
	// base64 needs no escaping.
	dst = append(dst, `,"databaseActivityEvents":"`...)
	dst = append(dst, r.DatabaseActivityEvents...)
	dst = append(dst, `","key":"`...)
	dst = append(dst, r.Key...)
	dst = append(dst, '"')
	if r.StreamID != "" {
		dst = append(dst, `,"dasStreamId":`...)
		dst = appendJSONString(dst, r.StreamID)
		dst = append(dst, `,"dasSeq":`...)
		dst = strconv.AppendUint(dst, r.Seq, 10)
		dst = append(dst, `,"dasPrev":"`...)
		dst = append(dst, r.Prev...)
		dst = append(dst, '"')
	}
	return append(dst, '}')
}

// appendJSONString quotes s for JSON. Stream ids are plain ASCII in practice;
// json.Marshal keeps any other string correct.
func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s)
	return append(dst, b...)
}

// Digest is the SHA-256 of a record's exact line bytes; each record carries
// its predecessor's digest in dasPrev.
type Digest [sha256.Size]byte

// DigestOf returns the digest of one record line (without its newline).
func DigestOf(line []byte) Digest { return sha256.Sum256(line) }

func (d Digest) String() string { return hex.EncodeToString(d[:]) }
