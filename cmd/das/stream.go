package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/das-mysql/das/internal/config"
	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/pipeline"
	"github.com/das-mysql/das/internal/record"
	"github.com/das-mysql/das/internal/sink/kafka"
	"github.com/das-mysql/das/internal/sink/kinesis"
	"github.com/das-mysql/das/internal/stream"
	"github.com/das-mysql/das/internal/streamlog"
)

// openStream opens the data dir's stream for writing: the KMS provider, the
// sink and the stream on them, not yet started. onDurable, when set, is told
// of each durable record. It returns the sink too, to be closed after the
// stream.
func openStream(ctx context.Context, c config.Config, logger *slog.Logger, notify stream.Notify, onDurable func(seq uint64, events int)) (*stream.Stream, pipeline.Sink, io.Closer, error) {
	if err := c.ResolveStreamID(true); err != nil {
		return nil, nil, nil, err
	}
	provider, err := openKMS(ctx, c, true)
	if err != nil {
		return nil, nil, nil, err
	}
	sink, closer, sinkName, err := openSink(ctx, c, logger)
	if err != nil {
		return nil, nil, nil, err
	}
	keyID := c.KMSKeyID
	if c.KMS == "local" {
		keyID = provider.Name()
	}
	host := c.ServerHost
	st := stream.New(stream.Options{
		StreamID: c.StreamID, InstanceID: c.InstanceID,
		Suite:    record.Options{Suite: suiteOf(c)},
		Provider: provider, KMSKeyID: keyID, MaxUses: c.DataKeyMaxUses, MaxAge: c.DataKeyMaxAge,
		Sink: sink, SinkName: sinkName,
		Writer: pipeline.Options{
			MaxEvents: c.BatchMaxEvents, Linger: c.BatchLinger, QueueEvents: c.QueueEvents,
			HeartbeatInterval: c.HeartbeatInterval,
			Heartbeat:         func(now time.Time) event.Event { return event.Heartbeat(now, host, "", "das") },
			OnDurable:         onDurable,
		},
		Mode: c.Mode, FailClosed: c.FailClosed, AutoRestart: c.AutoRestart,
		RetryWindow: c.KMSRetryWindow, SyncTimeout: c.SyncTimeout,
		SpoolRecords: spoolRecords(c),
		Notify:       notify,
		Logger:       logger,
	})
	return st, sink, closer, nil
}

// openSink opens the configured sink: the local log, a Kafka topic or a
// Kinesis stream.
func openSink(ctx context.Context, c config.Config, logger *slog.Logger) (pipeline.Sink, io.Closer, string, error) {
	// A remote sink that accepts connections and never answers must not
	// hold das at start forever.
	ctx, cancel := context.WithTimeout(ctx, c.SinkOpenTimeout)
	defer cancel()
	switch {
	case strings.HasPrefix(c.Sink, "kinesis://"):
		o, err := kinesis.ParseURL(c.Sink)
		if err != nil {
			return nil, nil, "", &exitError{code: 2, err: fmt.Errorf("config: sink: %w", err)}
		}
		o.StreamID, o.Logger = c.StreamID, logger
		k, err := kinesis.Open(ctx, o)
		if err != nil {
			return nil, nil, "", fmt.Errorf("sink %s: %w", c.Sink, openErr(ctx, c, err))
		}
		return k, k, "kinesis:" + k.Stream(), nil
	case strings.HasPrefix(c.Sink, "kafka://"):
		o, err := kafka.ParseURL(c.Sink)
		if err != nil {
			return nil, nil, "", &exitError{code: 2, err: fmt.Errorf("config: sink: %w", err)}
		}
		o.StreamID, o.Sync, o.Logger = c.StreamID, c.Mode == "sync", logger
		k, err := kafka.Open(ctx, o)
		if err != nil {
			return nil, nil, "", fmt.Errorf("sink %s: %w", c.Sink, openErr(ctx, c, err))
		}
		return k, k, "kafka:" + o.Topic, nil
	}
	l, err := streamlog.Open(c.LogDir(), streamlog.Options{
		SegmentBytes: c.SegmentBytes, RetainBytes: c.RetainBytes, RetainAge: c.RetainAge, Logger: logger,
	})
	if err != nil {
		return nil, nil, "", err
	}
	return streamlog.Records{L: l}, l, "local:" + c.LogDir(), nil
}

func spoolRecords(c config.Config) int {
	if c.SpoolOnKMSOutage {
		return c.SpoolMaxRecords
	}
	return 0
}

// openErr says when a sink failed to open because sink_open_timeout ran out.
func openErr(ctx context.Context, c config.Config, err error) error {
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("no answer within sink_open_timeout (%s): %w", c.SinkOpenTimeout, err)
	}
	return err
}
