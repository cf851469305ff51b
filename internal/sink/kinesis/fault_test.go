package kinesis

// Faults of the Kinesis API under the sink and the reader (issue #5, "bad
// input and faults"): the server going away and coming back, a shard
// iterator expiring, a batch over PutRecords' 5 MiB.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/das-mysql/das/internal/testenv"
	"github.com/das-mysql/das/pkg/dasrecord"
)

// hookProxy relays Kinesis API calls to target; hook sees each call first
// (op is the action, "PutRecords") and may answer it itself, returning true.
type hookProxy struct {
	target string
	hook   func(w http.ResponseWriter, op string, body []byte) bool
}

func (p *hookProxy) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	op := strings.TrimPrefix(req.Header.Get("X-Amz-Target"), "Kinesis_20131202.")
	if p.hook != nil && p.hook(w, op, body) {
		return
	}
	out, err := http.NewRequest(req.Method, p.target+req.URL.Path, bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	out.Header = req.Header.Clone()
	resp, err := http.DefaultClient.Do(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// apiError answers a call with a Kinesis error, as kinesalite and Kinesis
// do: HTTP 400 and a JSON body naming the exception.
func apiError(w http.ResponseWriter, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
}

// awsLines builds records as AWS's own DAS writes them: no das chain fields,
// so that the reader has no sequence to drop repeats by.
func awsLines(from, n int) [][]byte {
	lines := make([][]byte, n)
	for i := range lines {
		r := dasrecord.Record{Type: dasrecord.RecordType, Version: "1.2",
			DatabaseActivityEvents: base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("aws events %d", from+i))),
			Key:                    "a2V5"}
		lines[i] = r.AppendJSON(nil)
	}
	return lines
}

// TestReaderRecoversFromExpiredIterator: a shard iterator expires (Kinesis
// gives it 5 minutes; a consumer that stopped calling Next that long, say
// behind a slow pipe, finds it expired). The test's proxy answers one
// GetRecords with ExpiredIteratorException, as kinesalite words it, either
// after the reader delivered the records before it or before it read any.
// The reader goes on from where it was: every record once, in order,
// nothing skipped, nothing repeated (AWS's records have no das sequence for
// the reader to drop repeats by).
func TestReaderRecoversFromExpiredIterator(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines func(from, n int) [][]byte
		start func(before time.Time) any // before: a moment before the first records
		// readFirst records (of the 10 put before the reader opens) are
		// read before the iterator expires; the 10 put after the reader
		// opened are read after it.
		readFirst int
		want      []int // indexes into the 20 records
	}{
		{name: "trim_horizon, das chain, expires between reads", lines: chainOf,
			start: func(time.Time) any { return StartTrimHorizon }, readFirst: 10, want: span(0, 20)},
		{name: "trim_horizon, AWS records, expires between reads", lines: awsLines,
			start: func(time.Time) any { return StartTrimHorizon }, readFirst: 10, want: span(0, 20)},
		{name: "trim_horizon, AWS records, expires before the first read", lines: awsLines,
			start: func(time.Time) any { return StartTrimHorizon }, want: span(0, 20)},
		{name: "latest, das chain, expires before the first read", lines: chainOf,
			start: func(time.Time) any { return StartLatest }, want: span(10, 20)},
		{name: "latest, AWS records, expires before the first read", lines: awsLines,
			start: func(time.Time) any { return StartLatest }, want: span(10, 20)},
		{name: "at a time, AWS records, expires before the first read", lines: awsLines,
			start: func(before time.Time) any { return before }, want: span(0, 20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			endpoint := testenv.Kinesalite(t)
			var expire atomic.Bool
			var expired atomic.Int64
			proxy := httptest.NewServer(&hookProxy{target: endpoint, hook: func(w http.ResponseWriter, op string, _ []byte) bool {
				if op != "GetRecords" || !expire.CompareAndSwap(true, false) {
					return false
				}
				expired.Add(1)
				now := time.Now().UTC()
				apiError(w, "ExpiredIteratorException", fmt.Sprintf("Iterator expired. The iterator was created at time %s while right now it is %s "+
					"which is further in the future than the tolerated delay of 300000 milliseconds.",
					now.Add(-301*time.Second).Format(time.UnixDate), now.Format(time.UnixDate)))
				return true
			}})
			defer proxy.Close()

			s := openSink(t, endpoint, Options{})
			defer s.Close()
			lines := tc.lines(1, 20)
			before := time.Now()
			time.Sleep(20 * time.Millisecond)
			appendAll(t, s, 1, lines[:10])

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			r, err := OpenReader(ctx, ReaderOptions{Stream: s.Stream(), Region: testenv.Region, Endpoint: proxy.URL,
				Start: tc.start(before), Follow: true, PollInterval: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			var got [][]byte
			next := func() {
				t.Helper()
				line, _, err := r.Next(ctx)
				if err != nil {
					t.Fatalf("after %d records: %v", len(got), err)
				}
				got = append(got, line)
			}
			for range tc.readFirst {
				next()
			}
			time.Sleep(50 * time.Millisecond) // the reader is caught up, its iterator at the end
			appendAll(t, s, 11, lines[10:])
			expire.Store(true)
			for len(got) < len(tc.want) {
				next()
			}
			for i, w := range tc.want {
				if !bytes.Equal(got[i], lines[w]) {
					t.Fatalf("record %d read is %s, want %s (skipped or repeated records)", i, label(got[i]), label(lines[w]))
				}
			}
			// Nothing more: no repeat comes after.
			short, cancelShort := context.WithTimeout(ctx, 500*time.Millisecond)
			defer cancelShort()
			if line, _, err := r.Next(short); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("after the %d records expected, Next returned %s, %v; want nothing more", len(tc.want), label(line), err)
			}
			if expired.Load() != 1 {
				t.Fatalf("the iterator was expired %d times, want once", expired.Load())
			}
		})
	}
}

// label names a test record: its das sequence, or what its events say.
func label(line []byte) string {
	r, err := dasrecord.Parse(line)
	if err != nil {
		return fmt.Sprintf("%.40q", line)
	}
	if r.Seq != 0 {
		return fmt.Sprintf("seq %d", r.Seq)
	}
	ev, _ := base64.StdEncoding.DecodeString(r.DatabaseActivityEvents)
	return fmt.Sprintf("%q", ev)
}

func chainOf(from, n int) [][]byte { return chainLines(testStreamID, from, n, nil, 10) }

func span(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}
