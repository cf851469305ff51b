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
// the tip tag. A stream without the tag gets one marking the chain pending.
func findTip(ctx context.Context, c *kinesis.Client, stream, streamID string) (uint64, []byte, error) {
	key := TipTag(streamID)
	val, err := readTag(ctx, c, stream, key)
	if err != nil {
		return 0, nil, err
	}
	if val == "" {
		// The chain has never been written here. Mark it before the first
		// record goes out, so that a crash before the first tip update
		// still leads the next Open to search.
		return 0, nil, writeTag(ctx, c, stream, key, pendingTip+"/"+strconv.FormatInt(time.Now().UnixMilli(), 10))
	}
	parts := strings.Split(val, "/")
	var best scanBest
	best.streamID = streamID
	switch {
	case len(parts) == 2 && parts[0] == pendingTip:
		ms, err := strconv.ParseInt(parts[1], 10, 64)
		if err != nil {
			return 0, nil, fmt.Errorf("kinesis: stream %s: tag %s=%q is malformed", stream, key, val)
		}
		// A minute of slack for clock skew between hosts.
		if err := scanSince(ctx, c, stream, time.UnixMilli(ms).Add(-time.Minute), &best); err != nil {
			return 0, nil, err
		}
		return best.seq, best.line, nil
	case len(parts) == 3:
		seq, err := strconv.ParseUint(parts[2], 10, 64)
		if err != nil {
			return 0, nil, fmt.Errorf("kinesis: stream %s: tag %s=%q is malformed", stream, key, val)
		}
		if err := scanFrom(ctx, c, stream, tipPos{shard: parts[0], kseq: parts[1], seq: seq}, &best); err != nil {
			return 0, nil, err
		}
		if best.seq < seq {
			return 0, nil, fmt.Errorf("kinesis: stream %s: the chain of %s reached record %d (tag %s), but that record is no longer on the stream "+
				"(past the retention period?); remove the tag to start a new chain", stream, streamID, seq, key)
		}
		return best.seq, best.line, nil
	default:
		return 0, nil, fmt.Errorf("kinesis: stream %s: tag %s=%q is malformed", stream, key, val)
	}
}

// scanBest keeps the newest record of one chain.
type scanBest struct {
	streamID string
	seq      uint64
	line     []byte
}

func (b *scanBest) add(data []byte) {
	r, err := dasrecord.Parse(data)
	if err != nil || r.StreamID != b.streamID || r.Seq <= b.seq {
		return
	}
	b.seq, b.line = r.Seq, append([]byte(nil), data...)
}

// scanFrom reads from the tip position to the end of its shard and, when
// that shard was split or merged, on through its descendants.
func scanFrom(ctx context.Context, c *kinesis.Client, stream string, from tipPos, best *scanBest) error {
	shards, err := listShards(ctx, c, stream)
	if err != nil {
		return err
	}
	known := false
	for _, sh := range shards {
		known = known || aws.ToString(sh.ShardId) == from.shard
	}
	if !known {
		return fmt.Errorf("kinesis: stream %s: shard %s of the chain's tip is no longer listed (past the retention period?)", stream, from.shard)
	}
	type start struct {
		shard string
		in    kinesis.GetShardIteratorInput
	}
	todo := []start{{from.shard, kinesis.GetShardIteratorInput{
		ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: aws.String(from.kseq),
	}}}
	seen := map[string]bool{from.shard: true}
	for len(todo) > 0 {
		st := todo[0]
		todo = todo[1:]
		st.in.StreamName, st.in.ShardId = aws.String(stream), aws.String(st.shard)
		closed, err := readShard(ctx, c, &st.in, func(r types.Record) { best.add(r.Data) })
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

// scanSince reads every shard from a time on. (kinesalite, the test server,
// does not answer AT_TIMESTAMP on a shard without records after the time; real
// Kinesis does, and only a writer that crashed before its first tip update
// comes here.)
func scanSince(ctx context.Context, c *kinesis.Client, stream string, since time.Time, best *scanBest) error {
	shards, err := listShards(ctx, c, stream)
	if err != nil {
		return err
	}
	for _, sh := range shards {
		in := &kinesis.GetShardIteratorInput{
			StreamName: aws.String(stream), ShardId: sh.ShardId,
			ShardIteratorType: types.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(since),
		}
		if _, err := readShard(ctx, c, in, func(r types.Record) { best.add(r.Data) }); err != nil {
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
