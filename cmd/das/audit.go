package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/das-mysql/das/internal/auditlog"
	"github.com/das-mysql/das/internal/config"
	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/kms"
	"github.com/das-mysql/das/internal/pipeline"
	"github.com/das-mysql/das/internal/sink/kafka"
	"github.com/das-mysql/das/internal/sink/kinesis"
	"github.com/das-mysql/das/internal/stream"
	"github.com/das-mysql/das/internal/streamlog"
	"github.com/das-mysql/das/pkg/dasrecord"
)

// auditSink feeds a tailer's events into the stream with backpressure; while
// the stream is stopped the tailer waits (the file keeps the lines) instead
// of losing them.
type auditSink struct{ st *stream.Stream }

func (a auditSink) Submit(ctx context.Context, evs []event.Event, ack func()) error {
	for {
		err := a.st.EnqueueBatch(ctx, evs, ack)
		if !errors.Is(err, stream.ErrNotRecording) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// auditStateDir is where the tailer of one file keeps its checkpoint.
func auditStateDir(c config.Config, path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(c.DataDir, "auditlog", hex.EncodeToString(sum[:8]))
}

// newestReader is a sink that reads its stream's newest records back: the
// local log, the stream's Kafka partition, its Kinesis shard.
type newestReader interface {
	// Newest returns up to n of the stream's newest durable records,
	// oldest first (Kinesis: in the order its shard holds them).
	Newest(ctx context.Context, n int) ([][]byte, error)
}

// Every sink reads back: one that could not would fall back to the
// checkpoints in silence.
var (
	_ newestReader = streamlog.Records{}
	_ newestReader = (*kafka.Sink)(nil)
	_ newestReader = (*kinesis.Sink)(nil)
)

const (
	// floorRecords is how many of the stream's newest records are read
	// back: those made durable since the tailers' last checkpoint (at most
	// a second before das stopped) are among them. Of these, the newest
	// floorKeep that hold audit-log positions make the floor: older
	// positions are behind every checkpoint anyway.
	floorRecords = 256
	floorKeep    = 64
	// floorTimeout bounds the read-back: das starts from the checkpoints
	// alone rather than wait for a sink that does not answer.
	floorTimeout = 30 * time.Second
)

// auditFloor reads the newest records of the stream back from the sink and
// returns the audit-log positions of the tailer events they hold: the
// events that became durable after the last checkpoint was written, which
// a restarted tailer must not send again. On failure it logs why and
// returns nil: the checkpoints alone, which may repeat up to a checkpoint
// interval of lines.
func auditFloor(ctx context.Context, c config.Config, p kms.Provider, sink pipeline.Sink, streamID string, logger *slog.Logger) []auditlog.Position {
	fallback := "resuming from the checkpoints alone: lines made durable since the last checkpoint may be sent again"
	nr, ok := sink.(newestReader)
	if !ok {
		logger.Warn("audit log floor: the sink cannot read its records back; "+fallback, "sink", c.Sink)
		return nil
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, floorTimeout)
	defer cancel()
	lines, err := nr.Newest(ctx, floorRecords)
	if err != nil {
		logger.Warn("audit log floor: cannot read the stream's newest records back; "+fallback, "sink", c.Sink, "err", err)
		return nil
	}
	lines, gap := gapFree(lines, streamID)
	if gap != 0 {
		// A record missing (a put in flight when das stopped) before some
		// that landed: its lines are not durable, so no later position
		// may count.
		logger.Warn("audit log floor: the stream lacks a record before its newest ones; only the positions before it count", "missing_seq", gap)
	}
	dec := &dasrecord.Decrypter{KMS: kms.NewDecryptCache(p, 8), ResourceID: streamID}
	var floor []auditlog.Position
	kept, undecryptable := 0, 0
	for i := len(lines) - 1; i >= 0 && kept < floorKeep; i-- {
		o, err := dec.Decrypt(ctx, lines[i])
		if err != nil {
			if undecryptable++; undecryptable == 1 {
				logger.Warn("audit log floor: a record read back does not decrypt; its positions do not count", "err", err)
			}
			continue
		}
		n := len(floor)
		for j := range o.Payload.Events {
			if pos, ok := auditlog.PositionOf(&o.Payload.Events[j]); ok {
				floor = append(floor, pos)
			}
		}
		if len(floor) > n {
			kept++
		}
	}
	logger.Info("audit log floor: positions recovered from the stream", "sink", c.Sink, "records", len(lines),
		"records_with_positions", kept, "positions", len(floor), "undecryptable", undecryptable, "took", time.Since(start).Round(time.Millisecond))
	return floor
}

// gapFree returns the records of stream id among lines in sequence order,
// up to the first missing sequence number (0 when none is missing).
func gapFree(lines [][]byte, id string) ([][]byte, uint64) {
	type rec struct {
		seq  uint64
		line []byte
	}
	var recs []rec
	for _, l := range lines {
		if r, err := dasrecord.Parse(l); err == nil && r.StreamID == id {
			recs = append(recs, rec{r.Seq, l})
		}
	}
	slices.SortStableFunc(recs, func(a, b rec) int { return cmp.Compare(a.seq, b.seq) })
	out := make([][]byte, 0, len(recs))
	for i, r := range recs {
		// The same seq twice (a retried put) is no gap.
		if i > 0 && r.seq > recs[i-1].seq+1 {
			return out, recs[i-1].seq + 1
		}
		out = append(out, r.line)
	}
	return out, 0
}

// startTailers follows every configured server_audit file into the stream.
// stop ends them and waits; the caller saves their checkpoints after the
// stream has flushed.
func startTailers(ctx context.Context, c config.Config, st *stream.Stream, sink pipeline.Sink, logger *slog.Logger) ([]*auditlog.Tailer, func(), error) {
	if len(c.AuditLogs) == 0 {
		return nil, func() {}, nil
	}
	loc, err := c.AuditLocation()
	if err != nil {
		return nil, nil, &exitError{code: 2, err: err}
	}
	p, err := openKMS(ctx, c, true)
	if err != nil {
		return nil, nil, err
	}
	floor := auditFloor(ctx, c, p, sink, st.Describe().StreamID, logger)
	actx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var tailers []*auditlog.Tailer
	for _, path := range c.AuditLogs {
		tl, err := auditlog.New(auditlog.Options{
			Path: path, StateDir: auditStateDir(c, path), ServerHost: c.ServerHost, QueryLogLimit: c.AuditQueryLogLimit,
			MaxLine: c.AuditMaxLine, Location: loc, Logger: logger, DurableFloor: floor,
		})
		if err != nil {
			cancel()
			wg.Wait()
			return nil, nil, &exitError{code: 2, err: fmt.Errorf("audit_log %s: %w", path, err)}
		}
		tailers = append(tailers, tl)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := tl.Run(actx, auditSink{st}); err != nil && !errors.Is(err, context.Canceled) {
				logger.Error("audit log tailer stopped", "file", path, "err", err)
			}
		}()
		logger.Info("following server_audit log", "file", path, "time_zone", loc.String())
	}
	return tailers, func() { cancel(); wg.Wait() }, nil
}
