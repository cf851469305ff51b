package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/das-mysql/das/internal/config"
	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/kms"
	"github.com/das-mysql/das/internal/sink/kafka"
	"github.com/das-mysql/das/internal/sink/kinesis"
	"github.com/das-mysql/das/internal/streamlog"
	"github.com/das-mysql/das/pkg/dasrecord"
)

// filter selects events to print.
type filter struct {
	user, database, command, class string
	since                          time.Time
	heartbeats                     bool
}

func (f *filter) match(e *event.Event) bool {
	switch {
	case e.IsHeartbeat() && !f.heartbeats:
		return false
	case f.user != "" && e.DBUserName != f.user:
		return false
	case f.database != "" && e.DatabaseName != f.database:
		return false
	case f.command != "" && !strings.EqualFold(e.Command, f.command):
		return false
	case f.class != "" && !strings.EqualFold(e.Class, f.class):
		return false
	case !f.since.IsZero() && e.LogTime.Time.Before(f.since):
		return false
	}
	return true
}

func parseSince(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := event.ParseTime(s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want RFC 3339 (2026-11-25T10:00:00Z), DAS time (2026-11-25 10:00:00.000000+00) or a duration back from now (15m)", s)
}

// source yields record lines with a position for messages.
type source interface {
	next(ctx context.Context) (line []byte, where string, err error)
	close() error
}

// logSource reads the local stream log.
type logSource struct {
	r   *streamlog.Reader
	dir string
	seq uint64
}

func (s *logSource) next(ctx context.Context) ([]byte, string, error) {
	e, err := s.r.Next(ctx)
	if err != nil {
		return nil, "", err
	}
	s.seq = e.Seq
	file, off := s.r.Where()
	return e.Data, fmt.Sprintf("seq %d (%s offset %d)", e.Seq, file, off), nil
}

// seqAt is the sequence the log's layout gives the last line.
func (s *logSource) seqAt() uint64 { return s.seq }

// kafkaSource reads a Kafka topic.
type kafkaSource struct{ r *kafka.Reader }

func (s kafkaSource) next(ctx context.Context) ([]byte, string, error) { return s.r.Next(ctx) }
func (s kafkaSource) close() error                                     { return s.r.Close() }

// kinesisSource reads a Kinesis stream.
type kinesisSource struct{ r *kinesis.Reader }

func (s kinesisSource) next(ctx context.Context) ([]byte, string, error) { return s.r.Next(ctx) }
func (s kinesisSource) close() error                                     { return nil }

func (s *logSource) close() error { return s.r.Close() }

// fileSource reads a file of records, one per line: records saved from a
// Kinesis stream, AWS's DAS included.
type fileSource struct {
	f    *os.File
	sc   *bufio.Scanner
	name string
	line int
}

func (s *fileSource) next(context.Context) ([]byte, string, error) {
	for s.sc.Scan() {
		s.line++
		if len(strings.TrimSpace(s.sc.Text())) == 0 {
			continue
		}
		return s.sc.Bytes(), fmt.Sprintf("%s line %d", s.name, s.line), nil
	}
	if err := s.sc.Err(); err != nil {
		return nil, "", fmt.Errorf("%s line %d: %w", s.name, s.line+1, err)
	}
	return nil, "", io.EOF
}

func (s *fileSource) close() error { return s.f.Close() }

// openSource opens --from: a data dir, a stream log dir, a file of records,
// or a Kinesis stream.
func openSource(ctx context.Context, c *config.Config, cf *config.Flags, from string, pos streamlog.Position, follow bool) (source, error) {
	if strings.HasPrefix(from, "kafka://") {
		ro, err := kafka.ParseReaderURL(from)
		if err != nil {
			return nil, err
		}
		ro.Follow = ro.Follow || follow
		r, err := kafka.OpenReader(ctx, ro)
		if err != nil {
			return nil, err
		}
		return kafkaSource{r}, nil
	}
	if strings.HasPrefix(from, "kinesis://") {
		ro, err := kinesis.ParseReaderURL(from)
		if err != nil {
			return nil, err
		}
		if ro.Stream == "" && c.StreamID != "" {
			ro.Stream = kinesis.DefaultStreamPrefix + c.StreamID
		}
		ro.Follow = ro.Follow || follow
		r, err := kinesis.OpenReader(ctx, ro)
		if err != nil {
			return nil, err
		}
		return kinesisSource{r}, nil
	}
	if from != "" {
		if st, err := os.Stat(from); err == nil && !st.IsDir() {
			f, err := os.Open(from)
			if err != nil {
				return nil, err
			}
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 64<<10), 64<<20)
			return &fileSource{f: f, sc: sc, name: from}, nil
		}
	}
	dir := resolveFrom(c, cf, from)
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("--from: %w", err)
	}
	r, err := streamlog.OpenReader(dir, pos)
	if err != nil {
		return nil, err
	}
	r.Follow(follow)
	// A damaged line is reported by the decoder and reading goes on.
	r.Raw(true)
	return &logSource{r: r, dir: dir}, nil
}

// openDecrypter builds a record decrypter from the KMS settings. The stream
// id is --stream-id when given (required for AWS DAS records), else each
// record's own.
func openDecrypter(ctx context.Context, c config.Config) (*dasrecord.Decrypter, error) {
	p, err := openKMS(ctx, c, false)
	if err != nil {
		return nil, err
	}
	return &dasrecord.Decrypter{KMS: kms.NewDecryptCache(p, 64), ResourceID: c.StreamID}, nil
}

func runConsume(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs, cf := flagSet("consume", stderr)
	from := fs.String("from", "", "data dir, stream log dir, a file of records, kafka://BROKERS/TOPIC?start=earliest|latest&group=G, or kinesis://stream?region=R&endpoint=URL&start=trim_horizon|latest|TIME (default: the data dir)")
	follow := fs.Bool("follow", false, "wait for new records")
	var f filter
	fs.StringVar(&f.user, "user", "", "only events of this database user")
	fs.StringVar(&f.database, "database", "", "only events in this database")
	fs.StringVar(&f.command, "command", "", "only events of this command (CONNECT, QUERY, ...)")
	fs.StringVar(&f.class, "class", "", "only events of this class (MAIN, AUX)")
	since := fs.String("since", "", "only events logged at or after this time")
	fs.BoolVar(&f.heartbeats, "heartbeats", false, "print heartbeat events too")
	fromSeq := fs.Uint64("from-seq", 0, "start at this sequence number (local log)")
	c, err := parse(fs, cf, args)
	if err != nil {
		return err
	}
	if f.since, err = parseSince(*since); err != nil {
		return &exitError{code: 2, err: err}
	}
	pos := streamlog.Start
	if *fromSeq > 0 {
		pos = streamlog.AtSeq(*fromSeq)
	}
	src, err := openSource(ctx, &c, cf, *from, pos, *follow)
	if err != nil {
		return err
	}
	defer src.close()
	dec, err := openDecrypter(ctx, c)
	if err != nil {
		return err
	}
	out := bufio.NewWriterSize(stdout, 64<<10)
	defer out.Flush()
	var failed, printed int
	var buf []byte
	for {
		line, where, err := src.next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			failed++
			fmt.Fprintf(stderr, "das consume: %v\n", err)
			if errors.Is(err, streamlog.ErrGap) {
				continue
			}
			break
		}
		o, err := dec.Decrypt(ctx, line)
		if err != nil {
			failed++
			fmt.Fprintf(stderr, "das consume: %s: %v\n", where, err)
			continue
		}
		for i := range o.Payload.Events {
			e := &o.Payload.Events[i]
			if !f.match(e) {
				continue
			}
			buf = appendTagged(buf[:0], e, o.Record)
			out.Write(buf)
			printed++
		}
		if *follow {
			out.Flush()
		}
	}
	if failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d record(s) could not be read (see above); %d event(s) printed", failed, printed)}
	}
	return nil
}

// appendTagged appends the event's JSON with the record's stream id and
// sequence, so that every printed event can be traced to its record.
func appendTagged(dst []byte, e *event.Event, r *dasrecord.Record) []byte {
	if r.StreamID != "" {
		sid, _ := json.Marshal(r.StreamID)
		e.Extra = e.Extra.With("dasStreamId", sid).With("dasSeq", strconv.AppendUint(nil, r.Seq, 10))
	}
	dst = e.AppendJSON(dst)
	return append(dst, '\n')
}
