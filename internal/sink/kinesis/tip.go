package kinesis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/das-mysql/das/pkg/dasrecord"
)

// tipPos is where a record of the chain landed.
type tipPos struct {
	shard, kseq string // Kinesis shard id and sequence number
	seq         uint64 // its dasSeq
}

const pendingTip = "pending"

// TipTag returns the name of the stream tag that holds the end of streamID's
// chain. Tag keys allow letters, digits, space and _ . / = + - @; anything
// else in the id becomes '_'.
func TipTag(streamID string) string {
	b := []byte("das-tip/" + streamID)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_./=+-@ ", c) >= 0) {
			b[i] = '_'
		}
	}
	if len(b) > 128 {
		b = b[:128]
	}
	return string(b)
}

// encode: "<shard>/<kinesis seq>/<das seq>", or "pending/<unix ms>".
func (p tipPos) encode() string {
	return p.shard + "/" + p.kseq + "/" + strconv.FormatUint(p.seq, 10)
}

// readTag returns the tip tag's value, "" when the stream has none.
func readTag(ctx context.Context, c *kinesis.Client, stream, key string) (string, error) {
	in := &kinesis.ListTagsForStreamInput{StreamName: aws.String(stream)}
	for {
		out, err := c.ListTagsForStream(ctx, in)
		if err != nil {
			return "", fmt.Errorf("kinesis: stream %s: read tag %s (das keeps its chain's position there; allow kinesis:ListTagsForStream): %w",
				stream, key, err)
		}
		for _, t := range out.Tags {
			if aws.ToString(t.Key) == key {
				return aws.ToString(t.Value), nil
			}
		}
		if !aws.ToBool(out.HasMoreTags) || len(out.Tags) == 0 {
			return "", nil
		}
		in.ExclusiveStartTagKey = out.Tags[len(out.Tags)-1].Key
	}
}

func writeTag(ctx context.Context, c *kinesis.Client, stream, key, value string) error {
	_, err := c.AddTagsToStream(ctx, &kinesis.AddTagsToStreamInput{
		StreamName: aws.String(stream), Tags: map[string]string{key: value},
	})
	if err != nil {
		return fmt.Errorf("kinesis: stream %s: write tag %s (das keeps its chain's position there; allow kinesis:AddTagsToStream): %w",
			stream, key, err)
	}
	return nil
}

// findTip finds the newest record of streamID's chain on the stream, from
// the tip tag (a zero chainRec when there is none). A stream without the
// tag gets one marking the chain pending.
func findTip(ctx context.Context, c *kinesis.Client, stream, streamID string) (chainRec, error) {
	key := TipTag(streamID)
	val, err := readTag(ctx, c, stream, key)
	if err != nil {
		return chainRec{}, err
	}
	if val == "" {
		// The chain has never been written here. Mark it before the first
		// record goes out, so that a crash before the first tip update
		// still leads the next Open to search.
		return chainRec{}, writeTag(ctx, c, stream, key, pendingTip+"/"+strconv.FormatInt(time.Now().UnixMilli(), 10))
	}
	parts := strings.Split(val, "/")
	var best scanBest
	best.streamID = streamID
	switch {
	case len(parts) == 2 && parts[0] == pendingTip:
		ms, err := strconv.ParseInt(parts[1], 10, 64)
		if err != nil {
			return chainRec{}, fmt.Errorf("kinesis: stream %s: tag %s=%q is malformed", stream, key, val)
		}
		// A minute of slack for clock skew between hosts.
		if err := scanSince(ctx, c, stream, time.UnixMilli(ms).Add(-time.Minute), best.add); err != nil {
			return chainRec{}, err
		}
		return best.chainRec, nil
	case len(parts) == 3:
		seq, err := strconv.ParseUint(parts[2], 10, 64)
		if err != nil {
			return chainRec{}, fmt.Errorf("kinesis: stream %s: tag %s=%q is malformed", stream, key, val)
		}
		at := kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: aws.String(parts[1])}
		if err := scanFrom(ctx, c, stream, parts[0], at, best.add); err != nil {
			return chainRec{}, err
		}
		if best.seq < seq {
			return chainRec{}, fmt.Errorf("kinesis: stream %s: the chain of %s reached record %d (tag %s), but that record is no longer on the stream "+
				"(past the retention period?); remove the tag to start a new chain", stream, streamID, seq, key)
		}
		return best.chainRec, nil
	default:
		return chainRec{}, fmt.Errorf("kinesis: stream %s: tag %s=%q is malformed", stream, key, val)
	}
}

// chainRec is a record of a chain where the stream holds it.
type chainRec struct {
	seq         uint64
	line        []byte
	shard, kseq string    // Kinesis shard id and sequence number
	at          time.Time // Kinesis's ApproximateArrivalTimestamp
}

// scanBest keeps the newest record of one chain.
type scanBest struct {
	streamID string
	chainRec
}

func (b *scanBest) add(shard string, r types.Record) {
	rec, err := dasrecord.Parse(r.Data)
	if err != nil || rec.StreamID != b.streamID || rec.Seq <= b.seq {
		return
	}
	b.chainRec = chainRec{seq: rec.Seq, line: append([]byte(nil), r.Data...),
		shard: shard, kseq: aws.ToString(r.SequenceNumber), at: aws.ToTime(r.ApproximateArrivalTimestamp)}
}

// scanFrom reads shard from the position at (its iterator type and
// starting point) to its end and, when that shard was split or merged, on
// through its descendants, passing each record to fn.
func scanFrom(ctx context.Context, c *kinesis.Client, stream, shard string, at kinesis.GetShardIteratorInput, fn func(shard string, r types.Record)) error {
	shards, err := listShards(ctx, c, stream)
	if err != nil {
		return err
	}
	known := false
	for _, sh := range shards {
		known = known || aws.ToString(sh.ShardId) == shard
	}
	if !known {
		return fmt.Errorf("kinesis: stream %s: shard %s of the chain's tip is no longer listed (past the retention period?)", stream, shard)
	}
	type start struct {
		shard string
		in    kinesis.GetShardIteratorInput
	}
	todo := []start{{shard, at}}
	seen := map[string]bool{shard: true}
	for len(todo) > 0 {
		st := todo[0]
		todo = todo[1:]
		st.in.StreamName, st.in.ShardId = aws.String(stream), aws.String(st.shard)
		closed, err := readShard(ctx, c, &st.in, func(r types.Record) { fn(st.shard, r) })
		if err != nil {
			return err
		}
		if !closed {
			continue
		}
		if shards, err = listShards(ctx, c, stream); err != nil {
			return err
		}
		for _, sh := range shards {
			id := aws.ToString(sh.ShardId)
			if !seen[id] && (aws.ToString(sh.ParentShardId) == st.shard || aws.ToString(sh.AdjacentParentShardId) == st.shard) {
				seen[id] = true
				todo = append(todo, start{id, kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeTrimHorizon}})
			}
		}
	}
	return nil
}

// newestLookback is how long before the arrival of the chain's newest
// record (as Open found it) Newest starts reading. Kinesis reads forward
// only, from a record or a time; what a restarted writer needs back became
// durable in the last seconds before it stopped.
const newestLookback = 10 * time.Second

// Newest returns up to n of the chain's newest records on the stream, in
// the order the stream holds them (a retried put may have landed a record
// after its successor): those that arrived from newestLookback before the
// newest record Open found, on its shard and any split or merged from it,
// to the end. A restarted das reads them back to learn what is durable
// already (the audit tailers' floor).
func (s *Sink) Newest(ctx context.Context, n int) ([][]byte, error) {
	f := s.found
	if f.line == nil || n <= 0 {
		return nil, nil // the chain had no record on the stream
	}
	at := kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(f.at.Add(-newestLookback))}
	if f.at.IsZero() { // no arrival time: from the newest record on
		at = kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: aws.String(f.kseq)}
	}
	var lines [][]byte
	err := scanFrom(ctx, s.c, s.stream, f.shard, at, func(_ string, r types.Record) {
		if rec, err := dasrecord.Parse(r.Data); err != nil || rec.StreamID != s.o.StreamID {
			return
		}
		lines = append(lines, r.Data)
		if len(lines) >= 2*n { // a busy stream: keep memory bounded
			lines = append([][]byte(nil), lines[len(lines)-n:]...)
		}
	})
	if err != nil {
		return nil, err
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines, nil
}

// scanSince reads every shard from a time on. (kinesalite, the test server,
// does not answer AT_TIMESTAMP on a shard without records after the time; real
// Kinesis does, and only a writer that crashed before its first tip update
// comes here.)
func scanSince(ctx context.Context, c *kinesis.Client, stream string, since time.Time, fn func(shard string, r types.Record)) error {
	shards, err := listShards(ctx, c, stream)
	if err != nil {
		return err
	}
	for _, sh := range shards {
		in := &kinesis.GetShardIteratorInput{
			StreamName: aws.String(stream), ShardId: sh.ShardId,
			ShardIteratorType: types.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(since),
		}
		if _, err := readShard(ctx, c, in, func(r types.Record) { fn(aws.ToString(sh.ShardId), r) }); err != nil {
			return err
		}
	}
	return nil
}

// readShard reads a shard from the iterator to its current end; closed
// reports that the shard ended (split or merged).
func readShard(ctx context.Context, c *kinesis.Client, in *kinesis.GetShardIteratorInput, fn func(types.Record)) (closed bool, err error) {
	it, err := c.GetShardIterator(ctx, in)
	if err != nil {
		return false, fmt.Errorf("kinesis: stream %s shard %s: %w", aws.ToString(in.StreamName), aws.ToString(in.ShardId), err)
	}
	iter := it.ShardIterator
	for iter != nil {
		out, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
		if err != nil {
			var thr *types.ProvisionedThroughputExceededException
			if errors.As(err, &thr) {
				if err := sleepCtx(ctx, time.Second); err != nil {
					return false, err
				}
				continue
			}
			return false, fmt.Errorf("kinesis: stream %s shard %s: %w", aws.ToString(in.StreamName), aws.ToString(in.ShardId), err)
		}
		for _, r := range out.Records {
			fn(r)
		}
		if len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0 && out.NextShardIterator != nil {
			return false, nil
		}
		iter = out.NextShardIterator
	}
	return true, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tagger refreshes the tip tag at most every TipInterval while writing.
func (s *Sink) tagger() {
	defer close(s.tipDone)
	var last time.Time
	for {
		select {
		case <-s.tipKick:
		case <-s.tipStop:
			return
		}
		if wait := s.o.TipInterval - time.Since(last); !last.IsZero() && wait > 0 {
			select {
			case <-time.After(wait):
			case <-s.tipStop:
				return
			}
		}
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		if err := s.writeTip(ctx); err != nil {
			s.log.Warn("kinesis: tip tag not updated; a restart reads further back", "err", err)
		}
		cancel()
		last = time.Now()
	}
}

// writeTip writes the newest acknowledged position, when it moved.
func (s *Sink) writeTip(ctx context.Context) error {
	s.mu.Lock()
	tip, dirty := s.tip, s.tipDirty
	s.tipDirty = false
	s.mu.Unlock()
	if !dirty {
		return nil
	}
	if err := writeTag(ctx, s.c, s.stream, TipTag(s.o.StreamID), tip.encode()); err != nil {
		s.mu.Lock()
		if s.tip == tip {
			s.tipDirty = true
		}
		s.mu.Unlock()
		return err
	}
	return nil
}
