package kinesis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
)

// ErrClosed is returned for records appended after Close, or still queued
// when Close gave up delivering them.
var ErrClosed = errors.New("kinesis: sink closed")

// ErrRecordTooLarge reports a record over Kinesis's 1 MiB limit.
var ErrRecordTooLarge = errors.New("record too large for Kinesis")

// Sink writes one das stream's records to a Kinesis stream, in order. It
// implements the pipeline's Sink.
type Sink struct {
	o      Options
	stream string
	c      *kinesis.Client
	log    *slog.Logger
	key    *string  // partition key: the stream id
	found  chainRec // the chain's newest record on the stream at Open

	mu       sync.Mutex
	space    *sync.Cond // signalled when buffered drops or the sink stops
	queue    []*entry   // appended, not yet sent
	buffered int        // queued + in flight
	closing  bool
	fatal    error
	lastSeq  uint64
	lastLine []byte
	tip      tipPos // newest acknowledged position
	tipDirty bool
	wake     chan struct{}

	ctx     context.Context // cancelled when Close gives up
	cancel  context.CancelFunc
	sent    chan struct{} // sender exited
	tipKick chan struct{}
	tipStop chan struct{}
	tipDone chan struct{}

	closeOnce sync.Once
	closeErr  error
}

type entry struct {
	seq  uint64
	line []byte
	err  error
	done chan struct{}
}

func (e *entry) resolve(err error) {
	e.err = err
	close(e.done)
}

// Open connects to the stream, creating it when missing unless NoCreate,
// waits until it is ACTIVE, and finds the end of StreamID's chain on it.
func Open(ctx context.Context, o Options) (*Sink, error) {
	if o.StreamID == "" {
		return nil, errors.New("kinesis: stream id is empty")
	}
	stream, err := streamName(o.Stream, o.StreamID)
	if err != nil {
		return nil, err
	}
	if len(o.StreamID) > 256 {
		return nil, fmt.Errorf("kinesis: stream id %q is longer than a partition key may be (256)", o.StreamID)
	}
	if o.Shards <= 0 {
		o.Shards = 1
	}
	if o.MaxBufferedRecords <= 0 {
		o.MaxBufferedRecords = 10000
	}
	if o.TipInterval <= 0 {
		o.TipInterval = 5 * time.Second
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Stream = stream
	c, err := newClient(ctx, o.Region, o.Endpoint, o.MaxAttempts)
	if err != nil {
		return nil, err
	}
	if err := ensureStream(ctx, c, o, o.Logger); err != nil {
		return nil, err
	}
	found, err := findTip(ctx, c, stream, o.StreamID)
	if err != nil {
		return nil, err
	}
	s := &Sink{
		o: o, stream: stream, c: c, log: o.Logger.With("sink", "kinesis", "stream", stream),
		key:     aws.String(o.StreamID),
		found:   found,
		lastSeq: found.seq, lastLine: found.line,
		wake:    make(chan struct{}, 1),
		sent:    make(chan struct{}),
		tipKick: make(chan struct{}, 1),
		tipStop: make(chan struct{}),
		tipDone: make(chan struct{}),
	}
	s.space = sync.NewCond(&s.mu)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.send()
	go s.tagger()
	return s, nil
}

// ensureStream creates the stream when missing (unless forbidden) and waits
// until it is ACTIVE.
func ensureStream(ctx context.Context, c *kinesis.Client, o Options, log *slog.Logger) error {
	_, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(o.Stream)})
	var nf *types.ResourceNotFoundException
	switch {
	case errors.As(err, &nf) && o.NoCreate:
		return fmt.Errorf("kinesis: stream %s does not exist, and create=false forbids creating it", o.Stream)
	case errors.As(err, &nf):
		_, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{
			StreamName: aws.String(o.Stream), ShardCount: aws.Int32(int32(o.Shards)),
		})
		var inUse *types.ResourceInUseException
		if err != nil && !errors.As(err, &inUse) { // in use: someone created it meanwhile
			return fmt.Errorf("kinesis: create stream %s: %w", o.Stream, err)
		}
		log.Info("kinesis: created stream", "stream", o.Stream, "shards", o.Shards)
	case err != nil:
		return describeErr(c, o.Stream, err)
	}
	_, err = waitActive(ctx, c, o.Stream)
	return err
}

// Stream returns the Kinesis stream's name.
func (s *Sink) Stream() string { return s.stream }

// Last returns the newest record of the chain that Kinesis acknowledged (or
// that Open found on the stream), (0, nil) when the chain has not started.
func (s *Sink) Last() (uint64, []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastSeq, s.lastLine
}

// MaxRecordBytes is the largest record line Kinesis takes with this stream's
// partition key: the writer splits batches to fit it.
func (s *Sink) MaxRecordBytes() int { return MaxRecordBytes - len(*s.key) }

// AppendAsync queues one record after those queued before it, blocking while
// MaxBufferedRecords are buffered. wait returns once Kinesis acknowledged the
// record, or the error that stopped it.
func (s *Sink) AppendAsync(seq uint64, line []byte) (wait func() error) {
	if n := len(line) + len(*s.key); n > MaxRecordBytes {
		err := fmt.Errorf("kinesis: record %d: %w: %d bytes with its partition key, the limit is %d; lower batch_max_events",
			seq, ErrRecordTooLarge, n, MaxRecordBytes)
		return func() error { return err }
	}
	e := &entry{seq: seq, line: line, done: make(chan struct{})}
	s.mu.Lock()
	for s.buffered >= s.o.MaxBufferedRecords && !s.closing && s.fatal == nil {
		s.space.Wait()
	}
	switch {
	case s.fatal != nil:
		err := s.fatal
		s.mu.Unlock()
		return func() error { return err }
	case s.closing:
		s.mu.Unlock()
		return func() error { return ErrClosed }
	}
	s.queue = append(s.queue, e)
	s.buffered++
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return func() error {
		<-e.done
		return e.err
	}
}

// Close stops accepting records, delivers those queued for up to
// CloseTimeout, records the chain's tip in the stream's tag, and fails what
// could not be delivered with ErrClosed.
func (s *Sink) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		s.space.Broadcast()
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
		select {
		case <-s.sent:
		case <-time.After(s.o.CloseTimeout):
			s.log.Warn("kinesis: close: records still undelivered; giving up", "timeout", s.o.CloseTimeout)
			s.cancel()
			<-s.sent
		}
		close(s.tipStop)
		<-s.tipDone
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.writeTip(ctx); err != nil {
			s.closeErr = err
		}
		s.cancel()
		s.mu.Lock()
		if s.fatal != nil && s.closeErr == nil {
			s.closeErr = s.fatal
		}
		s.mu.Unlock()
	})
	return s.closeErr
}

// send is the one goroutine putting records: one PutRecords call in flight,
// so that the stream holds them in order.
func (s *Sink) send() {
	defer close(s.sent)
	for {
		batch := s.next()
		if batch == nil {
			return
		}
		s.put(batch)
	}
}

// next takes the next call's records off the queue, waiting for some; nil
// when closing and drained, or stopped.
func (s *Sink) next() []*entry {
	for {
		s.mu.Lock()
		if s.fatal != nil || s.ctx.Err() != nil {
			s.mu.Unlock()
			return nil
		}
		if len(s.queue) > 0 {
			n, size := 0, 0
			for n < len(s.queue) && n < MaxCallRecords {
				sz := len(s.queue[n].line) + len(*s.key)
				if n > 0 && size+sz > MaxCallBytes {
					break
				}
				size += sz
				n++
			}
			batch := make([]*entry, n)
			copy(batch, s.queue)
			s.queue = s.queue[n:]
			if len(s.queue) == 0 {
				s.queue = nil // let the backing array go
			}
			s.mu.Unlock()
			return batch
		}
		closing := s.closing
		s.mu.Unlock()
		if closing {
			return nil
		}
		select {
		case <-s.wake:
		case <-s.ctx.Done():
		}
	}
}

// put delivers one batch, retrying failed records (and only them) until all
// are acknowledged, the error is permanent, or the sink is stopped.
func (s *Sink) put(batch []*entry) {
	backoff := newBackoff()
	for attempt := 1; len(batch) > 0; attempt++ {
		recs := make([]types.PutRecordsRequestEntry, len(batch))
		for i, e := range batch {
			recs[i] = types.PutRecordsRequestEntry{Data: e.line, PartitionKey: s.key}
		}
		out, err := s.c.PutRecords(s.ctx, &kinesis.PutRecordsInput{StreamName: aws.String(s.stream), Records: recs})
		if err != nil {
			if s.ctx.Err() != nil {
				s.stop(batch, ErrClosed)
				return
			}
			if perm := permanent(s.stream, err); perm != nil {
				s.log.Warn("kinesis: put failed; the sink stops", "err", perm)
				s.stop(batch, perm)
				return
			}
			d := backoff()
			s.log.Warn("kinesis: put failed; retrying", "records", len(batch), "attempt", attempt, "in", d, "err", err)
			if !s.sleep(d) {
				s.stop(batch, ErrClosed)
				return
			}
			continue
		}
		if len(out.Records) != len(batch) {
			s.stop(batch, fmt.Errorf("kinesis: put to %s: %d results for %d records", s.stream, len(out.Records), len(batch)))
			return
		}
		var failed []*entry
		var acked []*entry
		var code string
		var tip tipPos
		for i, r := range out.Records {
			if r.ErrorCode != nil {
				failed = append(failed, batch[i])
				code = aws.ToString(r.ErrorCode) + ": " + aws.ToString(r.ErrorMessage)
				continue
			}
			acked = append(acked, batch[i])
			if batch[i].seq >= tip.seq {
				tip = tipPos{shard: aws.ToString(r.ShardId), kseq: aws.ToString(r.SequenceNumber), seq: batch[i].seq}
			}
		}
		s.ack(acked, tip)
		batch = failed
		if len(failed) > 0 {
			d := backoff()
			s.log.Warn("kinesis: records not accepted; retrying them before any later ones",
				"failed", len(failed), "attempt", attempt, "in", d, "error", code)
			if !s.sleep(d) {
				s.stop(batch, ErrClosed)
				return
			}
		}
	}
}

// ack releases acknowledged records and moves Last and the tip.
func (s *Sink) ack(acked []*entry, tip tipPos) {
	if len(acked) == 0 {
		return
	}
	s.mu.Lock()
	for _, e := range acked {
		if e.seq > s.lastSeq {
			s.lastSeq, s.lastLine = e.seq, e.line
		}
	}
	if tip.kseq != "" && tip.seq >= s.tip.seq {
		s.tip, s.tipDirty = tip, true
	}
	s.buffered -= len(acked)
	s.space.Broadcast()
	s.mu.Unlock()
	for _, e := range acked {
		e.resolve(nil)
	}
	select {
	case s.tipKick <- struct{}{}:
	default:
	}
}

// stop fails batch with err; a permanent error also fails everything queued
// and every later append.
func (s *Sink) stop(batch []*entry, err error) {
	s.mu.Lock()
	rest := s.queue
	s.queue = nil
	if !errors.Is(err, ErrClosed) {
		s.fatal = err
	}
	s.buffered -= len(batch) + len(rest)
	s.space.Broadcast()
	s.mu.Unlock()
	for _, e := range batch {
		e.resolve(err)
	}
	for _, e := range rest {
		e.resolve(err)
	}
}

func (s *Sink) sleep(d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-s.ctx.Done():
		return false
	}
}

// permanent returns the error to stop with when err cannot heal by retrying.
func permanent(stream string, err error) error {
	var nf *types.ResourceNotFoundException
	if errors.As(err, &nf) {
		return fmt.Errorf("kinesis: put to %s: %w: the stream was deleted or never existed (%s)",
			stream, ErrStreamNotFound, aws.ToString(nf.Message))
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "InvalidArgumentException", "ValidationException", "AccessDeniedException",
			"KMSDisabledException", "KMSInvalidStateException", "KMSAccessDeniedException",
			"KMSNotFoundException", "KMSOptInRequired", "UnrecognizedClientException":
			return fmt.Errorf("kinesis: put to %s: %w", stream, err)
		}
	}
	return nil
}

// newBackoff returns exponential delays with jitter, 50ms to 5s.
func newBackoff() func() time.Duration {
	d := 50 * time.Millisecond
	return func() time.Duration {
		j := d/2 + rand.N(d/2+1)
		d = min(2*d, 5*time.Second)
		return j
	}
}
