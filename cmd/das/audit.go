package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/das-mysql/das/internal/auditlog"
	"github.com/das-mysql/das/internal/config"
	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/kms"
	"github.com/das-mysql/das/internal/stream"
	"github.com/das-mysql/das/internal/streamlog"
	"github.com/das-mysql/das/pkg/dasrecord"
)

// auditSink feeds a tailer's events into the stream with backpressure; while
// the stream is stopped the tailer waits (the file keeps the lines) instead
// of losing them.
type auditSink struct{ st *stream.Stream }

func (a auditSink) Submit(ctx context.Context, ev event.Event, ack func()) error {
	for {
		err := a.st.EnqueueAck(ctx, ev, ack)
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

// auditFloor reads the newest records of the local stream log and returns
// the audit-log positions of the tailer events they hold: the events that
// became durable after the last checkpoint was written, which a restarted
// tailer must not send again.
func auditFloor(ctx context.Context, c config.Config, p kms.Provider, lastSeq uint64, logger *slog.Logger) []auditlog.Position {
	if c.Sink != "local" {
		return nil // the checkpoint alone: remote sinks are not read back here
	}
	from := streamlog.Start
	if lastSeq > 256 {
		from = streamlog.AtSeq(lastSeq - 255)
	}
	r, err := streamlog.OpenReader(c.LogDir(), from)
	if err != nil {
		return nil
	}
	defer r.Close()
	dec := &dasrecord.Decrypter{KMS: kms.NewDecryptCache(p, 8), ResourceID: c.StreamID}
	// The last records are enough: older positions are behind every
	// checkpoint anyway.
	var ring [][]auditlog.Position
	for {
		e, err := r.Next(ctx)
		if err != nil {
			break
		}
		o, err := dec.Decrypt(ctx, e.Data)
		if err != nil {
			continue
		}
		var ps []auditlog.Position
		for i := range o.Payload.Events {
			if pos, ok := auditlog.PositionOf(&o.Payload.Events[i]); ok {
				ps = append(ps, pos)
			}
		}
		if len(ps) > 0 {
			ring = append(ring, ps)
			if len(ring) > 64 {
				ring = ring[1:]
			}
		}
	}
	var floor []auditlog.Position
	for _, ps := range ring {
		floor = append(floor, ps...)
	}
	logger.Debug("audit log floor from the stream", "positions", len(floor))
	return floor
}

// startTailers follows every configured server_audit file into the stream.
// stop ends them and waits; the caller saves their checkpoints after the
// stream has flushed.
func startTailers(ctx context.Context, c config.Config, st *stream.Stream, logger *slog.Logger) ([]*auditlog.Tailer, func(), error) {
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
	floor := auditFloor(ctx, c, p, st.Describe().Counters["last_seq"], logger)
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
