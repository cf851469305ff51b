package kafka

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/das-mysql/das/pkg/dasrecord"
)

// Options configure a Sink.
type Options struct {
	Brokers  []string
	Topic    string
	StreamID string // the record key: one stream, one partition
	TLS      *tls.Config
	SASL     SASL
	// Sync tunes for latency (no linger): sync-mode callers wait for every
	// record, and the pipeline's group commit does the batching.
	Sync bool
	// Linger waits this long for more records before sending a batch in
	// async mode; 0 means 5ms.
	Linger time.Duration
	// MaxBufferedBytes bounds the records waiting for acknowledgement;
	// AppendAsync blocks when it is reached (backpressure). 0 means 64 MiB.
	MaxBufferedBytes int
	// CreateTopic creates a missing topic at Open, with Partitions (0: the
	// broker's default) and ReplicationFactor (0: the broker's default).
	CreateTopic       bool
	Partitions        int32
	ReplicationFactor int16
	// DeliveryTimeout fails a record not acknowledged within it. 0 retries
	// until Close: the chain stays intact across an outage, and the
	// pipeline's bounded queue decides what is lost meanwhile.
	DeliveryTimeout time.Duration
	// CloseTimeout bounds how long Close waits for buffered records; 0
	// means 30s.
	CloseTimeout time.Duration
	Logger       *slog.Logger
}

// DefaultMaxMessageBytes is Kafka's default max.message.bytes, used when the
// topic's setting cannot be read.
const DefaultMaxMessageBytes = 1048588

// batchOverhead is what a one-record batch adds to the key and value: the
// batch header (61 bytes) and the record's own varints and headers, rounded up.
const batchOverhead = 61 + 32

// ErrClosed is returned for records appended after Close.
var ErrClosed = errors.New("kafka: sink closed")

// Sink produces one stream's sealed records to a Kafka topic. It implements
// pipeline.Sink.
type Sink struct {
	o         Options
	log       *slog.Logger
	cl        *kgo.Client
	key       []byte
	partition int32
	maxBytes  int
	conn      []kgo.Opt // for reading back (Newest)

	ctx    context.Context // canceled by Close after its flush
	cancel context.CancelFunc
	closed atomic.Bool
	sync   atomic.Bool // sync mode now: records do not linger

	mu       sync.Mutex
	lastSeq  uint64
	lastLine []byte
}

// Open connects to the brokers, creates the topic when allowed, and finds
// the stream's newest record in the topic, where the chain continues.
func Open(ctx context.Context, o Options) (*Sink, error) {
	if len(o.Brokers) == 0 {
		return nil, errors.New("kafka: no brokers")
	}
	if err := validTopic(o.Topic); err != nil {
		return nil, err
	}
	if o.StreamID == "" {
		return nil, errors.New("kafka: no stream id (the record key)")
	}
	if err := o.SASL.validate(); err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Linger <= 0 {
		o.Linger = 5 * time.Millisecond
	}
	if o.Sync {
		o.Linger = 0
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = 30 * time.Second
	}
	if o.MaxBufferedBytes <= 0 {
		o.MaxBufferedBytes = 64 << 20
	}
	log := o.Logger.With("sink", "kafka", "topic", o.Topic)
	conn := connOpts(o.Brokers, o.TLS, o.SASL, log)

	// kgo caches metadata for MetadataMinAge (5s): a topic created a
	// moment ago would look missing that long.
	admCl, err := kgo.NewClient(append(conn, kgo.MetadataMinAge(100*time.Millisecond))...)
	if err != nil {
		return nil, fmt.Errorf("kafka: client: %w", err)
	}
	defer admCl.Close()
	if err := ping(ctx, admCl, o.Brokers, o.SASL, o.TLS); err != nil {
		return nil, err
	}
	adm := kadm.NewClient(admCl)
	nparts, created, err := ensureTopic(ctx, adm, o)
	if err != nil {
		return nil, err
	}
	maxBytes := topicMaxBytes(ctx, adm, o.Topic, log)
	key := []byte(o.StreamID)
	part := int32(partitionFor(key, nparts))
	var seq uint64
	var line []byte
	if !created {
		if seq, line, err = findLast(ctx, adm, conn, o.Topic, part, o.StreamID, log); err != nil {
			return nil, err
		}
	}

	popts := append(conn,
		kgo.DefaultProduceTopic(o.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotence is on by default and needs it
		kgo.RecordPartitioner(kgo.BasicConsistentPartitioner(func(string) func(*kgo.Record, int) int {
			return func(r *kgo.Record, n int) int { return partitionFor(r.Key, n) }
		})),
		kgo.ProducerLinger(o.Linger),
		kgo.MaxBufferedBytes(o.MaxBufferedBytes),
		// Sealed records are gzip'd and encrypted: compressing again only costs CPU.
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerBatchMaxBytes(int32(maxBytes)),
	)
	if o.DeliveryTimeout > 0 {
		popts = append(popts, kgo.RecordDeliveryTimeout(o.DeliveryTimeout))
	}
	cl, err := kgo.NewClient(popts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: producer: %w", err)
	}
	// Full slice: appends to conn must copy, not write into its array.
	s := &Sink{o: o, log: log, cl: cl, key: key, partition: part, maxBytes: maxBytes, conn: conn[:len(conn):len(conn)], lastSeq: seq, lastLine: line}
	s.sync.Store(o.Sync)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	log.Info("kafka sink open", "brokers", o.Brokers, "partition", part, "last_seq", seq,
		"sync", o.Sync, "linger", o.Linger, "max_message_bytes", maxBytes, "sasl", o.SASL.String())
	return s, nil
}

// ensureTopic returns the topic's partition count, creating it if allowed.
// created says the topic is new, so the stream has no record in it yet.
func ensureTopic(ctx context.Context, adm *kadm.Client, o Options) (n int, created bool, err error) {
	for attempt := 0; ; attempt++ {
		tds, err := adm.ListTopics(ctx, o.Topic)
		if err != nil {
			return 0, false, fmt.Errorf("kafka: topic %q: metadata: %w", o.Topic, explain(err))
		}
		td, ok := tds[o.Topic]
		switch {
		case ok && td.Err == nil && len(td.Partitions) > 0:
			return len(td.Partitions), created, nil
		case ok && td.Err != nil && !errors.Is(td.Err, kerr.UnknownTopicOrPartition):
			return 0, false, fmt.Errorf("kafka: topic %q: %w", o.Topic, explain(td.Err))
		case created:
			// A new topic's metadata takes a moment to reach every broker.
			if attempt > 50 {
				return 0, false, fmt.Errorf("kafka: topic %q was created but has no partitions yet", o.Topic)
			}
			select {
			case <-ctx.Done():
				return 0, false, fmt.Errorf("kafka: topic %q: %w", o.Topic, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
			continue
		case !o.CreateTopic:
			return 0, false, fmt.Errorf("kafka: topic %q does not exist and creating it is not allowed (create_topic=false)", o.Topic)
		}
		parts, rf := o.Partitions, o.ReplicationFactor
		if parts <= 0 {
			parts = -1
		}
		if rf <= 0 {
			rf = -1
		}
		resp, err := adm.CreateTopic(ctx, parts, rf, nil, o.Topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return 0, false, fmt.Errorf("kafka: create topic %q: %w", o.Topic, explain(err))
		}
		if err == nil && resp.NumPartitions > 0 {
			return int(resp.NumPartitions), true, nil
		}
		created = true
	}
}

// topicMaxBytes reads the topic's max.message.bytes, so that an oversized
// record fails here with a clear message rather than at the broker.
func topicMaxBytes(ctx context.Context, adm *kadm.Client, topic string, log *slog.Logger) int {
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err == nil {
		var rc kadm.ResourceConfig
		if rc, err = rcs.On(topic, nil); err == nil {
			err = rc.Err
			for _, c := range rc.Configs {
				if c.Key == "max.message.bytes" && c.Value != nil {
					if n, perr := strconv.Atoi(*c.Value); perr == nil && n >= 512 && n <= 1<<30 {
						return n
					}
				}
			}
		}
	}
	log.Warn("kafka: cannot read the topic's max.message.bytes; assuming Kafka's default", "default", DefaultMaxMessageBytes, "err", err)
	return DefaultMaxMessageBytes
}

// findLast finds the newest record of stream id in the partition.
func findLast(ctx context.Context, adm *kadm.Client, conn []kgo.Opt, topic string, part int32, streamID string, log *slog.Logger) (uint64, []byte, error) {
	recs, err := findNewest(ctx, adm, conn, topic, part, streamID, 1, log)
	if err != nil || len(recs) == 0 {
		return 0, nil, err
	}
	r := recs[0]
	if _, err := dasrecord.Parse(r.line); err != nil {
		return 0, nil, fmt.Errorf("kafka: the newest record of stream %q (%s/%d/%d) cannot continue the chain: %w", streamID, topic, part, r.offset, err)
	}
	return r.seq, r.line, nil
}

// streamRec is one record of a stream, where the partition holds it.
type streamRec struct {
	seq    uint64
	line   []byte
	offset int64
}

// findNewest returns up to n of the newest records of stream id in the
// partition, oldest first, reading windows of growing size backwards from
// the end: they are usually in the last few, but other streams may share
// the partition.
func findNewest(ctx context.Context, adm *kadm.Client, conn []kgo.Opt, topic string, part int32, streamID string, n int, log *slog.Logger) ([]streamRec, error) {
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("kafka: topic %q: start offsets: %w", topic, explain(err))
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("kafka: topic %q: end offsets: %w", topic, explain(err))
	}
	so, ok1 := starts.Lookup(topic, part)
	eo, ok2 := ends.Lookup(topic, part)
	if !ok1 || !ok2 || so.Err != nil || eo.Err != nil {
		return nil, fmt.Errorf("kafka: topic %q partition %d: offsets: %v", topic, part, errors.Join(so.Err, eo.Err))
	}
	key := []byte(streamID)
	lo, hi := so.Offset, eo.Offset
	var out []streamRec
	for window := int64(max(64, n)); hi > lo && len(out) < n; window = min(window*4, 1<<20) {
		from := max(lo, hi-window)
		var got []streamRec
		err := scanRange(ctx, conn, topic, part, from, hi, log, func(r *kgo.Record) {
			if !bytes.Equal(r.Key, key) {
				return
			}
			if id, seq, ok := dasFields(r.Value); ok && id == streamID {
				got = append(got, streamRec{seq: seq, line: r.Value, offset: r.Offset})
			}
		})
		if err != nil {
			return nil, err
		}
		out = append(got, out...)
		hi = from
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out, nil
}

// scanRange passes the records at offsets [from, to) to fn, in order.
func scanRange(ctx context.Context, conn []kgo.Opt, topic string, part int32, from, to int64, log *slog.Logger, fn func(*kgo.Record)) error {
	cl, err := kgo.NewClient(append(conn,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {part: kgo.NewOffset().At(from)}}),
		kgo.FetchMaxWait(200*time.Millisecond),
	)...)
	if err != nil {
		return fmt.Errorf("kafka: consumer: %w", err)
	}
	defer cl.Close()
	next := from
	for next < to {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return fmt.Errorf("kafka: reading %s/%d back: %w", topic, part, ctx.Err())
		}
		if fs.IsClientClosed() {
			return ErrClosed
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, e error) {
			if !errors.Is(e, context.DeadlineExceeded) {
				ferr = e
			}
		})
		if ferr != nil {
			return fmt.Errorf("kafka: reading %s/%d back: %w", topic, part, explain(ferr))
		}
		if fs.NumRecords() == 0 {
			// Offsets below the end that never come (transaction markers,
			// compaction) must not hang the caller.
			log.Warn("kafka: no records where expected while reading the stream's newest records back", "partition", part, "offset", next, "end", to)
			break
		}
		fs.EachRecord(func(r *kgo.Record) {
			next = r.Offset + 1
			if r.Offset < to {
				fn(r)
			}
		})
	}
	return nil
}

// Newest returns up to n of the stream's newest records in the topic,
// oldest first: a restarted das reads them back to learn what is durable
// already (the audit tailers' floor).
func (s *Sink) Newest(ctx context.Context, n int) ([][]byte, error) {
	cl, err := kgo.NewClient(s.conn...)
	if err != nil {
		return nil, fmt.Errorf("kafka: client: %w", err)
	}
	defer cl.Close()
	recs, err := findNewest(ctx, kadm.NewClient(cl), s.conn, s.o.Topic, s.partition, s.o.StreamID, n, s.log)
	if err != nil {
		return nil, err
	}
	lines := make([][]byte, len(recs))
	for i, r := range recs {
		lines[i] = r.line
	}
	return lines, nil
}

// Last returns the newest acknowledged record of the stream: at Open, the one
// found in the topic (0, nil when none).
func (s *Sink) Last() (uint64, []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastSeq, s.lastLine
}

// Partition returns the partition the stream's records go to.
func (s *Sink) Partition() int32 { return s.partition }

// AppendAsync produces the record after those appended before it, keyed by
// the stream id. It blocks while MaxBufferedBytes are waiting (backpressure).
// wait returns once the brokers acknowledged the record (acks=all), or why
// not. line must not be modified until then.
func (s *Sink) AppendAsync(seq uint64, line []byte) (wait func() error) {
	if s.closed.Load() {
		return failed(fmt.Errorf("kafka: record %d: %w", seq, ErrClosed))
	}
	if size := len(line) + len(s.key) + batchOverhead; size > s.maxBytes {
		return failed(s.tooLarge(seq, size))
	}
	done := make(chan error, 1)
	r := &kgo.Record{Key: s.key, Value: line}
	s.cl.Produce(s.ctx, r, func(r *kgo.Record, err error) {
		if err != nil {
			done <- s.deliveryErr(seq, len(line), err)
			return
		}
		// Promises of one partition run in order.
		s.mu.Lock()
		if seq > s.lastSeq {
			s.lastSeq, s.lastLine = seq, line
		}
		s.mu.Unlock()
		done <- nil
	})
	if s.sync.Load() && s.o.Linger > 0 {
		// Opened async, now sync (the stream's mode changed): a waiting
		// session must not wait for the linger. kgo has no per-record
		// linger; Flush stops lingering until what is buffered is sent.
		go func() { _ = s.cl.Flush(s.ctx) }()
	}
	var once sync.Once
	var res error
	return func() error {
		once.Do(func() { res = <-done })
		return res
	}
}

// SetSync tells the sink the stream's mode: in sync mode sessions wait for
// each record, which then does not linger. The stream calls it when its
// mode changes while the sink stays open.
func (s *Sink) SetSync(sync bool) { s.sync.Store(sync) }

// MaxRecordBytes is the largest record line the topic takes with this
// stream's key: the writer splits batches to fit it.
func (s *Sink) MaxRecordBytes() int { return s.maxBytes - len(s.key) - batchOverhead }

func failed(err error) func() error { return func() error { return err } }

func (s *Sink) tooLarge(seq uint64, size int) error {
	return fmt.Errorf("kafka: record %d is %d bytes, over topic %q's max.message.bytes (%d): lower --batch-max-events or raise max.message.bytes: %w",
		seq, size, s.o.Topic, s.maxBytes, kerr.MessageTooLarge)
}

// deliveryErr says why record seq was not acknowledged, in the user's terms.
func (s *Sink) deliveryErr(seq uint64, size int, err error) error {
	switch {
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge):
		return s.tooLarge(seq, size+len(s.key)+batchOverhead)
	case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.UnknownTopicID):
		return fmt.Errorf("kafka: record %d: topic %q does not exist (deleted while das was writing?): %w", seq, s.o.Topic, err)
	case errors.Is(err, kgo.ErrRecordTimeout):
		return fmt.Errorf("kafka: record %d not acknowledged within the delivery timeout (%s); brokers down or unreachable?: %w", seq, s.o.DeliveryTimeout, err)
	case errors.Is(err, kgo.ErrClientClosed), errors.Is(err, context.Canceled):
		return fmt.Errorf("kafka: record %d not acknowledged before the sink closed: %w", seq, ErrClosed)
	}
	return fmt.Errorf("kafka: record %d: %w", seq, explain(err))
}

// Close waits up to CloseTimeout for buffered records to be acknowledged,
// then fails those still waiting and disconnects.
func (s *Sink) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.o.CloseTimeout)
	err := s.cl.Flush(ctx)
	cancel()
	s.cancel()
	s.cl.Close()
	if err != nil {
		return fmt.Errorf("kafka: close: records still unacknowledged after %s: %w", s.o.CloseTimeout, err)
	}
	return nil
}
