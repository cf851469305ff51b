package kafka

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/das-mysql/das/pkg/dasrecord"
)

// ReaderOptions configure a Reader.
type ReaderOptions struct {
	Brokers []string
	Topic   string
	// Group, when set, reads as a member of this consumer group: partitions
	// are shared among the members, and the offsets of records returned by
	// Next are committed. Start then applies only where the group has no
	// committed offset.
	Group string
	// Start is "earliest" (the default), "latest", or explicit offsets
	// "partition:offset[,partition:offset...]" (only those partitions are
	// read; not with Group).
	Start string
	// Follow waits for new records at the end instead of returning io.EOF.
	Follow bool
	TLS    *tls.Config
	SASL   SASL
	Logger *slog.Logger
	// IdleTimeout: without Follow, how long a read may find nothing before
	// the reader gives up (an error while records are known to be missing,
	// io.EOF in group mode, whose positions are only known to the group).
	// 0 means 10s.
	IdleTimeout time.Duration
}

type start struct {
	latest  bool
	offsets map[int32]int64 // explicit
}

func parseStart(s string) (start, error) {
	switch s {
	case "", "earliest":
		return start{}, nil
	case "latest":
		return start{latest: true}, nil
	}
	st := start{offsets: map[int32]int64{}}
	for part := range strings.SplitSeq(s, ",") {
		p, o, ok := strings.Cut(part, ":")
		pn, err1 := strconv.ParseInt(p, 10, 32)
		on, err2 := strconv.ParseInt(o, 10, 64)
		if !ok || err1 != nil || err2 != nil || pn < 0 || on < 0 {
			return start{}, fmt.Errorf("kafka: start=%q: want earliest, latest or partition:offset[,partition:offset...]", s)
		}
		if _, dup := st.offsets[int32(pn)]; dup {
			return start{}, fmt.Errorf("kafka: start=%q names partition %d twice", s, pn)
		}
		st.offsets[int32(pn)] = on
	}
	return st, nil
}

// dedupWindow is how many recent records per stream the reader remembers to
// recognise a retried duplicate.
const dedupWindow = 256

type seenRec struct {
	seq uint64
	d   dasrecord.Digest
	set bool
}

// Reader reads records from a topic, in order within each partition.
type Reader struct {
	o     ReaderOptions
	log   *slog.Logger
	cl    *kgo.Client
	buf   []*kgo.Record
	ends  map[int32]int64 // non-follow: the end at open
	pos   map[int32]int64 // next offset per partition, -1 unknown
	group bool
	seen  map[string]*[dedupWindow]seenRec
	dups  uint64

	mu       sync.Mutex
	assigned map[int32]bool // group mode: this member's partitions
}

// OpenReader connects and positions a reader.
func OpenReader(ctx context.Context, o ReaderOptions) (*Reader, error) {
	if len(o.Brokers) == 0 {
		return nil, errors.New("kafka: no brokers")
	}
	if err := validTopic(o.Topic); err != nil {
		return nil, err
	}
	if err := o.SASL.validate(); err != nil {
		return nil, err
	}
	st, err := parseStart(o.Start)
	if err != nil {
		return nil, err
	}
	if o.Group != "" && st.offsets != nil {
		return nil, errors.New("kafka: start=partition:offset and group= exclude each other (a group resumes from its committed offsets)")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 10 * time.Second
	}
	log := o.Logger.With("reader", "kafka", "topic", o.Topic)
	conn := connOpts(o.Brokers, o.TLS, o.SASL, log)

	admCl, err := kgo.NewClient(conn...)
	if err != nil {
		return nil, fmt.Errorf("kafka: client: %w", err)
	}
	defer admCl.Close()
	if err := ping(ctx, admCl, o.Brokers, o.SASL, o.TLS); err != nil {
		return nil, err
	}
	adm := kadm.NewClient(admCl)
	tds, err := adm.ListTopics(ctx, o.Topic)
	if err != nil {
		return nil, fmt.Errorf("kafka: topic %q: metadata: %w", o.Topic, explain(err))
	}
	td, ok := tds[o.Topic]
	if !ok || td.Err != nil || len(td.Partitions) == 0 {
		return nil, fmt.Errorf("kafka: topic %q does not exist", o.Topic)
	}
	for p := range st.offsets {
		if _, ok := td.Partitions[p]; !ok {
			return nil, fmt.Errorf("kafka: start names partition %d; topic %q has %d partitions", p, o.Topic, len(td.Partitions))
		}
	}
	r := &Reader{o: o, log: log, pos: map[int32]int64{}, group: o.Group != "", assigned: map[int32]bool{}, seen: map[string]*[dedupWindow]seenRec{}}
	starts, err := adm.ListStartOffsets(ctx, o.Topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("kafka: topic %q: start offsets: %w", o.Topic, explain(err))
	}
	if !o.Follow {
		ends, err := adm.ListEndOffsets(ctx, o.Topic)
		if err == nil {
			err = ends.Error()
		}
		if err != nil {
			return nil, fmt.Errorf("kafka: topic %q: end offsets: %w", o.Topic, explain(err))
		}
		r.ends = map[int32]int64{}
		ends.Each(func(l kadm.ListedOffset) {
			if st.offsets == nil || hasKey(st.offsets, l.Partition) {
				r.ends[l.Partition] = l.Offset
			}
		})
	}
	// Where each partition starts, to know without Follow when all is read.
	var committed kadm.OffsetResponses
	if r.group {
		// A new group has no offsets yet.
		if committed, err = adm.FetchOffsets(ctx, o.Group); err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
			return nil, fmt.Errorf("kafka: group %q: committed offsets: %w", o.Group, explain(err))
		}
	}
	starts.Each(func(l kadm.ListedOffset) {
		switch {
		case st.offsets != nil:
			if off, ok := st.offsets[l.Partition]; ok {
				r.pos[l.Partition] = max(off, l.Offset)
			}
		case r.group:
			if c, ok := committed.Lookup(o.Topic, l.Partition); ok && c.Err == nil && c.At >= 0 {
				r.pos[l.Partition] = c.At
			} else if st.latest {
				r.pos[l.Partition] = r.ends[l.Partition]
			} else {
				r.pos[l.Partition] = l.Offset
			}
		case st.latest:
			r.pos[l.Partition] = r.ends[l.Partition]
		default:
			r.pos[l.Partition] = l.Offset
		}
	})

	copts := append(conn, kgo.FetchMaxWait(500*time.Millisecond))
	reset := kgo.NewOffset().AtStart()
	if st.latest {
		reset = kgo.NewOffset().AtEnd()
	}
	switch {
	case st.offsets != nil:
		m := map[int32]kgo.Offset{}
		for p, off := range st.offsets {
			m[p] = kgo.NewOffset().At(off)
		}
		copts = append(copts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{o.Topic: m}))
	case r.group:
		copts = append(copts, kgo.ConsumerGroup(o.Group), kgo.ConsumeTopics(o.Topic), kgo.ConsumeResetOffset(reset),
			// Only what Next returned is committed: a crash re-reads, never skips.
			kgo.AutoCommitMarks(), kgo.AutoCommitInterval(time.Second),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { r.assign(m[o.Topic], true) }),
			kgo.OnPartitionsRevoked(func(_ context.Context, cl *kgo.Client, m map[string][]int32) {
				// Commit what was returned before another member takes over.
				_ = cl.CommitMarkedOffsets(context.Background())
				r.assign(m[o.Topic], false)
			}),
			kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { r.assign(m[o.Topic], false) }))
	default:
		copts = append(copts, kgo.ConsumeTopics(o.Topic), kgo.ConsumeResetOffset(reset))
	}
	if r.cl, err = kgo.NewClient(copts...); err != nil {
		return nil, fmt.Errorf("kafka: consumer: %w", err)
	}
	return r, nil
}

func hasKey(m map[int32]int64, k int32) bool { _, ok := m[k]; return ok }

// Next returns the next record line and where it was, as
// "topic/partition/offset". Without Follow it returns io.EOF once every
// partition is read up to its end at open. Exact duplicates of a recent
// record of the same stream (same dasStreamId, dasSeq and bytes) are skipped.
func (r *Reader) Next(ctx context.Context) (line []byte, where string, err error) {
	for {
		for len(r.buf) > 0 {
			rec := r.buf[0]
			r.buf = r.buf[1:]
			if end, ok := r.ends[rec.Partition]; ok && rec.Offset >= end {
				continue // past the end at open: a later read's
			}
			r.pos[rec.Partition] = rec.Offset + 1
			if r.group {
				r.cl.MarkCommitRecords(rec)
			}
			if r.duplicate(rec.Value) {
				r.dups++
				continue
			}
			return rec.Value, rec.Topic + "/" + strconv.Itoa(int(rec.Partition)) + "/" + strconv.FormatInt(rec.Offset, 10), nil
		}
		if !r.o.Follow && r.atEnd() {
			return nil, "", io.EOF
		}
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if !r.o.Follow {
			pctx, cancel = context.WithTimeout(ctx, r.o.IdleTimeout)
		}
		fs := r.cl.PollFetches(pctx)
		idle := pctx.Err() != nil
		cancel()
		if err := ctx.Err(); err != nil {
			return nil, "", err
		}
		if fs.IsClientClosed() {
			return nil, "", ErrClosed
		}
		var ferr error
		fs.EachError(func(t string, p int32, e error) {
			if !errors.Is(e, context.DeadlineExceeded) && !errors.Is(e, context.Canceled) && ferr == nil {
				ferr = fmt.Errorf("kafka: reading %s/%d: %w", t, p, explain(e))
			}
		})
		if ferr != nil {
			return nil, "", ferr
		}
		r.buf = fs.Records()
		if len(r.buf) == 0 && idle {
			if r.group {
				// Positions belong to the group; nothing more came.
				return nil, "", io.EOF
			}
			return nil, "", fmt.Errorf("kafka: no records for %s while reading %s up to its end (%s); brokers down?", r.o.IdleTimeout, r.o.Topic, r.behind())
		}
	}
}

// atEnd reports whether every partition (in group mode: every partition
// this member reads) is read up to its end at open.
func (r *Reader) atEnd() bool {
	if r.group {
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.assigned) == 0 {
			return false
		}
		for p := range r.assigned {
			if pos, ok := r.pos[p]; ok && pos < r.ends[p] {
				return false
			}
		}
		return true
	}
	for p, end := range r.ends {
		if pos, ok := r.pos[p]; ok && pos < end {
			return false
		}
	}
	return true
}

func (r *Reader) assign(ps []int32, on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range ps {
		if on {
			r.assigned[p] = true
		} else {
			delete(r.assigned, p)
		}
	}
}

func (r *Reader) behind() string {
	var b []string
	for p, end := range r.ends {
		if pos := r.pos[p]; pos < end {
			b = append(b, fmt.Sprintf("partition %d at %d of %d", p, pos, end))
		}
	}
	return strings.Join(b, ", ")
}

// duplicate reports whether line repeats a recent record of its stream byte
// for byte; it remembers line otherwise.
func (r *Reader) duplicate(line []byte) bool {
	id, seq, ok := dasFields(line)
	if !ok {
		return false
	}
	ring := r.seen[id]
	if ring == nil {
		ring = new([dedupWindow]seenRec)
		r.seen[id] = ring
	}
	d := dasrecord.DigestOf(line)
	slot := &ring[seq%dedupWindow]
	if slot.set && slot.seq == seq && slot.d == d {
		return true
	}
	*slot = seenRec{seq: seq, d: d, set: true}
	return false
}

// Duplicates returns how many duplicate records Next skipped.
func (r *Reader) Duplicates() uint64 { return r.dups }

// Close commits the group offsets of the records returned and disconnects.
func (r *Reader) Close() error {
	var err error
	if r.group {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if cerr := r.cl.CommitMarkedOffsets(ctx); cerr != nil {
			err = fmt.Errorf("kafka: group %q: commit: %w", r.o.Group, cerr)
		}
		cancel()
	}
	r.cl.Close()
	return err
}

var dasTail = []byte(`,"dasStreamId":`)

// dasFields reads a record line's stream id and seq from its tail, where
// das puts them, without decoding the (large) payload.
func dasFields(line []byte) (id string, seq uint64, ok bool) {
	i := bytes.LastIndex(line, dasTail)
	if i < 0 {
		return "", 0, false
	}
	tail := append([]byte{'{'}, line[i+1:]...)
	var f struct {
		ID  string `json:"dasStreamId"`
		Seq uint64 `json:"dasSeq"`
	}
	if json.Unmarshal(tail, &f) != nil || f.ID == "" {
		return "", 0, false
	}
	return f.ID, f.Seq, true
}
