package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/das-mysql/das/internal/event"
)

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
	s, _, l, err := openStream(ctx, c, logger, nil, func(seq uint64, n int) {
		mu.Lock()
		acked += uint64(n)
		fmt.Fprintf(stdout, "{\"seq\":%d,\"events\":%d,\"acked\":%d}\n", seq, n, acked)
		mu.Unlock()
	})
	if err != nil {
		return err
	}
	defer l.Close()
	if _, err := s.Start(ctx, ""); err != nil {
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
		if err := s.Enqueue(ctx, ev); err != nil {
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
	d := s.Describe()
	logger.Info("ingest done", "stream_id", d.StreamID, "events", d.Counters["events_durable"], "records", d.Counters["records"], "last_seq", d.Counters["last_seq"])
	return inErr
}
