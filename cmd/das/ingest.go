package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/das-mysql/das/internal/config"
	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/kms"
	"github.com/das-mysql/das/internal/pipeline"
	"github.com/das-mysql/das/internal/record"
	"github.com/das-mysql/das/internal/streamlog"
	"github.com/das-mysql/das/pkg/dasrecord"
)

// stream is an open activity stream writer: KMS, data keys, sealer, log.
type stream struct {
	cfg    config.Config
	keys   *kms.KeyCache
	log    *streamlog.Log
	writer *pipeline.Writer
}

// openStream opens the stream of the data dir for writing.
func openStream(ctx context.Context, c config.Config, o pipeline.Options) (*stream, error) {
	if err := c.ResolveStreamID(true); err != nil {
		return nil, err
	}
	p, err := openKMS(ctx, c, true)
	if err != nil {
		return nil, err
	}
	keys := kms.NewKeyCache(p, dasrecord.ContextFor(c.StreamID), c.DataKeyMaxUses, c.DataKeyMaxAge)
	sealer, err := record.NewSealer(keys, record.Options{
		StreamID:   c.StreamID,
		InstanceID: c.InstanceID,
		Suite:      suiteOf(c),
	})
	if err != nil {
		keys.Close()
		return nil, err
	}
	l, err := streamlog.Open(c.LogDir(), streamlog.Options{
		SegmentBytes: c.SegmentBytes,
		RetainBytes:  c.RetainBytes,
		RetainAge:    c.RetainAge,
		Logger:       o.Logger,
	})
	if err != nil {
		keys.Close()
		return nil, err
	}
	o.MaxEvents = c.BatchMaxEvents
	o.Linger = c.BatchLinger
	o.QueueEvents = c.QueueEvents
	o.HeartbeatInterval = c.HeartbeatInterval
	host := c.ServerHost
	o.Heartbeat = func(now time.Time) event.Event { return event.Heartbeat(now, host, "", "das") }
	return &stream{cfg: c, keys: keys, log: l, writer: pipeline.New(sealer, logSink{l}, o)}, nil
}

// Close flushes the writer, then closes the log and zeroes the data keys.
func (s *stream) Close(ctx context.Context) error {
	err := s.writer.Close(ctx)
	if e := s.log.Close(); err == nil {
		err = e
	}
	s.keys.Close()
	return err
}

// logSink adapts the local stream log to the pipeline.
type logSink struct{ l *streamlog.Log }

func (s logSink) Last() (uint64, []byte) { return s.l.Last() }
func (s logSink) AppendAsync(seq uint64, line []byte) func() error {
	return s.l.AppendAsync(context.Background(), streamlog.Entry{Seq: seq, Data: line}).Err
}

// runIngest seals events read as JSON lines from stdin. Each line is one
// activity event in DAS JSON; fields it leaves out get das's defaults. For
// every record that becomes durable it prints {"seq":N,"events":M,"acked":T}:
// the first T input events are durable.
func runIngest(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs, cf := flagSet("ingest", stderr)
	c, err := parse(fs, cf, args)
	if err != nil {
		return err
	}
	logger := newLogger(c, stderr)
	var mu sync.Mutex
	var acked uint64
	s, err := openStream(ctx, c, pipeline.Options{
		Logger: logger,
		OnDurable: func(seq uint64, n int) {
			mu.Lock()
			acked += uint64(n)
			fmt.Fprintf(stdout, "{\"seq\":%d,\"events\":%d,\"acked\":%d}\n", seq, n, acked)
			mu.Unlock()
		},
	})
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	lineNo := 0
	var inErr error
	for sc.Scan() && ctx.Err() == nil {
		lineNo++
		if len(sc.Bytes()) == 0 {
			continue
		}
		ev := event.New(time.Now())
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			inErr = fmt.Errorf("stdin line %d: not an activity event: %w", lineNo, err)
			break
		}
		if err := s.writer.Enqueue(ctx, ev); err != nil {
			inErr = err
			break
		}
	}
	if err := sc.Err(); err != nil && inErr == nil {
		inErr = fmt.Errorf("stdin: %w", err)
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Close(closeCtx); err != nil {
		return err
	}
	st := s.writer.Stats()
	logger.Info("ingest done", "stream_id", c.StreamID, "events", st.EventsDurable, "records", st.Records, "last_seq", st.LastSeq)
	return inErr
}
