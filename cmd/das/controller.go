package main

import (
	"context"
	"fmt"

	"github.com/das-mysql/das/internal/admin"
	"github.com/das-mysql/das/internal/auditlog"
	"github.com/das-mysql/das/internal/stream"
)

// controller serves the admin API's operations on das serve's stream.
type controller struct {
	st       *stream.Stream
	kmsKeyID string
	tailers  []*auditlog.Tailer
}

func toAdmin(s stream.Status) admin.StreamStatus {
	return admin.StreamStatus{
		StreamId: s.StreamID, Status: s.State, Reason: s.Reason, Mode: s.Mode, KmsKeyId: s.KMSKeyID,
		Sink: s.Sink, StartedAt: s.StartedAt, LastError: s.LastError, Policy: s.Policy,
		AutoRestart: s.AutoRestart, Counters: s.Counters,
	}
}

func (c controller) StartActivityStream(ctx context.Context, r admin.StartRequest) (admin.StreamStatus, error) {
	if r.KmsKeyId != "" && r.KmsKeyId != c.kmsKeyID {
		return toAdmin(c.st.Describe()), fmt.Errorf("%w: KmsKeyId: this das serve seals with %q; restart it with --kms-key-id to change the key", admin.ErrInvalid, c.kmsKeyID)
	}
	before := c.st.Describe()
	if before.State == stream.Started || before.State == stream.Starting {
		if r.Mode != "" && r.Mode != before.Mode {
			s, err := c.st.Start(ctx, r.Mode) // a mode change on a started stream
			return toAdmin(s), err
		}
		return toAdmin(before), fmt.Errorf("%w: the stream is already %s", admin.ErrNoChange, before.State)
	}
	s, err := c.st.Start(ctx, r.Mode)
	return toAdmin(s), err
}

func (c controller) StopActivityStream(ctx context.Context, _ admin.StopRequest) (admin.StreamStatus, error) {
	before := c.st.Describe()
	if before.State == stream.Stopped || before.State == stream.Stopping {
		return toAdmin(before), fmt.Errorf("%w: the stream is already %s", admin.ErrNoChange, before.State)
	}
	s, err := c.st.Stop(ctx)
	return toAdmin(s), err
}

func (c controller) DescribeActivityStreams(context.Context) ([]admin.StreamStatus, error) {
	s := toAdmin(c.st.Describe())
	// The audit-log tailers' progress: how far behind the server they are.
	for _, tl := range c.tailers {
		ts := tl.Stats()
		s.Counters["audit_lines"] += ts.Lines
		s.Counters["audit_unparsed"] += ts.Unparsed
		s.Counters["audit_lost_bytes"] += ts.LostBytes
		s.Counters["audit_lag_bytes"] += uint64(max(ts.LagBytes, 0))
		s.Counters["audit_lag_seconds"] = max(s.Counters["audit_lag_seconds"], uint64(ts.LagSeconds))
	}
	return []admin.StreamStatus{s}, nil
}
