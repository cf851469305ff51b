package kinesis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/das-mysql/das/pkg/dasrecord"
)

// Reader start positions (ReaderOptions.Start); a time.Time starts there.
const (
	StartTrimHorizon = "trim_horizon"
	StartLatest      = "latest"
)

// ReaderOptions select what a Reader reads.
type ReaderOptions struct {
	Stream           string
	Region, Endpoint string
	// Start is StartTrimHorizon (also the zero value), StartLatest, or a
	// time.Time.
	Start any
	// Follow keeps reading new records; otherwise Next returns io.EOF once
	// every shard is read to its end.
	Follow bool
	// PollInterval between reads of a caught-up stream (default 500ms; a
	// shard serves 5 reads per second to all its readers).
	PollInterval time.Duration
	// Hold is how long a record that arrived ahead of a missing predecessor
	// waits for it when following (default 10s); then it is delivered
	// anyway and the gap is verify's to report.
	Hold        time.Duration
	MaxAttempts int
}

// ParseReaderURL parses "kinesis://stream?region=R&endpoint=URL&start=S&follow=true"
// where S is trim_horizon, latest, or an RFC 3339 time.
func ParseReaderURL(s string) (ReaderOptions, error) {
	var o ReaderOptions
	stream, q, err := parseURL(s)
	if err != nil {
		return o, err
	}
	if stream == "" {
		return o, fmt.Errorf("kinesis: %s: no stream name", s)
	}
	o.Stream = stream
	for k, vs := range q {
		v := vs[len(vs)-1]
		switch k {
		case "region":
			o.Region = v
		case "endpoint":
			o.Endpoint = v
		case "start":
			st, err := ParseStart(v)
			if err != nil {
				return o, fmt.Errorf("kinesis: %s: %w", s, err)
			}
			o.Start = st
		case "follow":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return o, fmt.Errorf("kinesis: %s: follow=%q is not true or false", s, v)
			}
			o.Follow = b
		default:
			return o, fmt.Errorf("kinesis: %s: unknown setting %q (known: region, endpoint, start, follow)", s, k)
		}
	}
	return o, nil
}

// ParseStart parses trim_horizon, latest or an RFC 3339 time.
func ParseStart(v string) (any, error) {
	switch v {
	case "", StartTrimHorizon, "TRIM_HORIZON":
		return StartTrimHorizon, nil
	case StartLatest, "LATEST":
		return StartLatest, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return nil, fmt.Errorf("start %q: want trim_horizon, latest or an RFC 3339 time", v)
	}
	return t, nil
}

// Reader reads every shard of a stream, each shard's parents before it, and
// puts each das chain's records in sequence order, dropping the duplicates
// that retried puts leave.
type Reader struct {
	o      ReaderOptions
	c      *kinesis.Client
	shards map[string]*shardState
	order  []string // shard ids in discovery order, for fair polling
	out    []item
	chains map[string]*chain
	idle   int // consecutive polls that found nothing
}

type shardState struct {
	id, parent, adjacent string
	start                *kinesis.GetShardIteratorInput // until it has an iterator
	iter                 *string
	lastKSeq             string
	done                 bool
}

type item struct {
	line  []byte
	where string
}

// chain is one das stream's reorder and duplicate state.
type chain struct {
	next   uint64 // next expected seq; 0 before the first record
	recent map[uint64]dasrecord.Digest
	held   map[uint64]heldItem
	since  time.Time // when the oldest held record arrived
}

type heldItem struct {
	item
	digest dasrecord.Digest
}

// reorderWindow bounds held records: a retried put lets a record land at
// most one PutRecords call (500 records) ahead of its predecessor.
const reorderWindow = MaxCallRecords

// recentWindow is how many delivered records' digests are kept to recognise
// a retried put's duplicates.
const recentWindow = 4 * MaxCallRecords

// OpenReader lists the stream's shards and positions on them.
func OpenReader(ctx context.Context, o ReaderOptions) (*Reader, error) {
	if o.Stream == "" {
		return nil, errors.New("kinesis: reader: no stream name")
	}
	if o.Start == nil {
		o.Start = StartTrimHorizon
	}
	switch st := o.Start.(type) {
	case string:
		if st != StartTrimHorizon && st != StartLatest {
			return nil, fmt.Errorf("kinesis: reader: start %q: want trim_horizon, latest or a time", st)
		}
	case time.Time:
	default:
		return nil, fmt.Errorf("kinesis: reader: start %v: want trim_horizon, latest or a time", o.Start)
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 500 * time.Millisecond
	}
	if o.Hold <= 0 {
		o.Hold = 10 * time.Second
	}
	c, err := newClient(ctx, o.Region, o.Endpoint, o.MaxAttempts)
	if err != nil {
		return nil, err
	}
	if _, err := waitActive(ctx, c, o.Stream); err != nil {
		return nil, err
	}
	r := &Reader{o: o, c: c, shards: map[string]*shardState{}, chains: map[string]*chain{}}
	if err := r.discover(ctx, true); err != nil {
		return nil, err
	}
	// Position now, not at the first Next: "latest" means as of opening.
	for _, id := range r.order {
		if st := r.shards[id]; !st.done && r.ready(st) {
			if err := r.position(ctx, st); err != nil {
				return nil, err
			}
		}
	}
	return r, nil
}

// discover adds shards not seen before. Those of the first listing start at
// the reader's start; later ones are children of shards read to their end,
// and start at their beginning.
func (r *Reader) discover(ctx context.Context, first bool) error {
	shards, err := listShards(ctx, r.c, r.o.Stream)
	if err != nil {
		return err
	}
	for _, sh := range shards {
		id := aws.ToString(sh.ShardId)
		if r.shards[id] != nil {
			continue
		}
		st := &shardState{id: id, parent: aws.ToString(sh.ParentShardId), adjacent: aws.ToString(sh.AdjacentParentShardId)}
		in := &kinesis.GetShardIteratorInput{StreamName: aws.String(r.o.Stream), ShardId: sh.ShardId,
			ShardIteratorType: types.ShardIteratorTypeTrimHorizon}
		if first {
			switch start := r.o.Start.(type) {
			case time.Time:
				in.ShardIteratorType, in.Timestamp = types.ShardIteratorTypeAtTimestamp, aws.Time(start)
			case string:
				if start == StartLatest {
					if sh.SequenceNumberRange != nil && sh.SequenceNumberRange.EndingSequenceNumber != nil {
						st.done = true // closed: nothing new will come
					}
					in.ShardIteratorType = types.ShardIteratorTypeLatest
				}
			}
		}
		st.start = in
		r.shards[id] = st
		r.order = append(r.order, id)
	}
	return nil
}

// ready reports whether a shard's parents (those still listed) are read.
func (r *Reader) ready(st *shardState) bool {
	for _, p := range []string{st.parent, st.adjacent} {
		if ps := r.shards[p]; p != "" && ps != nil && !ps.done {
			return false
		}
	}
	return true
}

// Next returns the next record line and where it was read ("shard/sequence
// number"). Without Follow it returns io.EOF once every shard is read to its
// current end.
func (r *Reader) Next(ctx context.Context) (line []byte, where string, err error) {
	for {
		if len(r.out) > 0 {
			it := r.out[0]
			r.out = r.out[1:]
			return it.line, it.where, nil
		}
		got, err := r.poll(ctx)
		if err != nil {
			return nil, "", err
		}
		if got {
			r.idle = 0
			continue
		}
		r.idle++
		if !r.o.Follow {
			r.flush(time.Time{})
			if len(r.out) > 0 {
				continue
			}
			return nil, "", io.EOF
		}
		r.flush(time.Now().Add(-r.o.Hold))
		if len(r.out) > 0 {
			continue
		}
		if err := sleepCtx(ctx, r.o.PollInterval); err != nil {
			return nil, "", err
		}
	}
}

// poll reads once from every readable shard; got reports whether anything
// was read or a shard's state changed (so that polling goes on at once).
func (r *Reader) poll(ctx context.Context) (got bool, err error) {
	ended := false
	for _, id := range r.order {
		st := r.shards[id]
		if st.done || !r.ready(st) {
			continue
		}
		if st.iter == nil {
			if err := r.position(ctx, st); err != nil {
				return false, err
			}
		}
		out, err := r.c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: st.iter})
		if err != nil {
			var exp *types.ExpiredIteratorException
			var thr *types.ProvisionedThroughputExceededException
			switch {
			case errors.As(err, &exp):
				st.iter = nil // repositioned after the last record read
				got = true
				continue
			case errors.As(err, &thr):
				continue
			}
			return false, fmt.Errorf("kinesis: read %s shard %s: %w", r.o.Stream, st.id, describeErr(r.c, r.o.Stream, err))
		}
		for _, rec := range out.Records {
			ks := aws.ToString(rec.SequenceNumber)
			st.lastKSeq = ks
			r.add(rec.Data, st.id+"/"+ks)
			got = true
		}
		st.iter = out.NextShardIterator
		if st.iter == nil {
			st.done, ended, got = true, true, true
		} else if len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) > 0 {
			got = true // behind, not caught up: keep reading
		}
	}
	if ended {
		if err := r.discover(ctx, false); err != nil {
			return false, err
		}
	}
	return got, nil
}

// position gets a shard's iterator: at its start, or after the last record
// read when an iterator expired.
func (r *Reader) position(ctx context.Context, st *shardState) error {
	in := st.start
	if st.lastKSeq != "" {
		in = &kinesis.GetShardIteratorInput{StreamName: aws.String(r.o.Stream), ShardId: aws.String(st.id),
			ShardIteratorType: types.ShardIteratorTypeAfterSequenceNumber, StartingSequenceNumber: aws.String(st.lastKSeq)}
	}
	asked := time.Now()
	out, err := r.c.GetShardIterator(ctx, in)
	if err != nil {
		return fmt.Errorf("kinesis: read %s shard %s: %w", r.o.Stream, st.id, describeErr(r.c, r.o.Stream, err))
	}
	st.iter = out.ShardIterator
	if in.ShardIteratorType == types.ShardIteratorTypeLatest {
		// LATEST is the shard's end as the reader opened. Should this
		// iterator expire before a record is read, a new LATEST would skip
		// what arrived meanwhile: go back to this moment instead.
		st.start = &kinesis.GetShardIteratorInput{StreamName: in.StreamName, ShardId: in.ShardId,
			ShardIteratorType: types.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(asked)}
	}
	return nil
}

// add passes a record through its chain's reorder and duplicate filter.
// Records that are not das chain records (AWS's DAS records, or anything
// else) pass as they are.
func (r *Reader) add(data []byte, where string) {
	rec, err := dasrecord.Parse(data)
	if err != nil || rec.StreamID == "" || rec.Seq == 0 {
		r.out = append(r.out, item{data, where})
		return
	}
	ch := r.chains[rec.StreamID]
	if ch == nil {
		ch = &chain{recent: map[uint64]dasrecord.Digest{}, held: map[uint64]heldItem{}}
		r.chains[rec.StreamID] = ch
	}
	d := dasrecord.DigestOf(data)
	it := item{data, where}
	switch {
	case ch.next == 0 || rec.Seq == ch.next:
		r.deliver(ch, rec.Seq, d, it)
		r.drain(ch)
	case rec.Seq < ch.next:
		if prev, ok := ch.recent[rec.Seq]; ok && prev == d {
			return // a retried put's duplicate
		}
		r.out = append(r.out, it) // an old or conflicting record: verify's to judge
	default: // ahead of a missing predecessor
		if h, ok := ch.held[rec.Seq]; ok && h.digest == d {
			return
		}
		if len(ch.held) == 0 {
			ch.since = time.Now()
		}
		ch.held[rec.Seq] = heldItem{it, d}
		if len(ch.held) > reorderWindow {
			r.flushChain(ch)
		}
	}
}

func (r *Reader) deliver(ch *chain, seq uint64, d dasrecord.Digest, it item) {
	r.out = append(r.out, it)
	ch.recent[seq] = d
	if len(ch.recent) > 2*recentWindow {
		for s := range ch.recent {
			if s+recentWindow < seq {
				delete(ch.recent, s)
			}
		}
	}
	ch.next = seq + 1
}

// drain delivers held records that are now next.
func (r *Reader) drain(ch *chain) {
	for {
		h, ok := ch.held[ch.next]
		if !ok {
			break
		}
		delete(ch.held, ch.next)
		r.deliver(ch, ch.next, h.digest, h.item)
	}
	if len(ch.held) > 0 {
		ch.since = time.Now()
	}
}

// flush gives up waiting for the missing records of chains whose held
// records arrived before cutoff (all, for the zero time).
func (r *Reader) flush(cutoff time.Time) {
	for _, ch := range r.chains {
		if len(ch.held) > 0 && (cutoff.IsZero() || ch.since.Before(cutoff)) {
			r.flushChain(ch)
		}
	}
}

// flushChain delivers held records from the lowest on; what is missing
// before them is a gap.
func (r *Reader) flushChain(ch *chain) {
	seqs := make([]uint64, 0, len(ch.held))
	for s := range ch.held {
		seqs = append(seqs, s)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	ch.next = seqs[0]
	r.drain(ch)
	if len(ch.held) > 0 {
		r.flushChain(ch)
	}
}
