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
	"sync"
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

// TestKinesisOutageBuffersThenResumes: the Kinesis API goes away while the
// sink is putting records (kinesalite killed, its port refusing
// connections) and comes back on the same address a few seconds later with
// the stream it had. Kinesis keeps a stream through an outage of the
// service, so kinesalite keeps its streams on disk here; one that forgot
// them would be a deleted stream, which TestDeletedStream covers. Meanwhile
// the sink buffers up to MaxBufferedRecords and then blocks the appender
// (the pipeline's backpressure) without failing anything; once the server is
// back every record is acknowledged, and the stream reads back as the
// whole chain, in order, without gaps or duplicates.
func TestKinesisOutageBuffersThenResumes(t *testing.T) {
	const (
		total  = 3000
		bound  = 200
		outage = 3 * time.Second
	)
	k := testenv.StartKinesalite(t, testenv.KinesaliteOptions{Persist: true})
	s := openSink(t, k.Endpoint, Options{MaxBufferedRecords: bound})
	lines := chainLines(testStreamID, 1, total, nil, 100)

	// The appender: as fast as the sink takes records, as the pipeline does.
	var appended atomic.Int64
	waits := make([]func() error, total)
	producerDone := make(chan struct{})
	go func() {
		defer close(producerDone)
		for i, l := range lines {
			waits[i] = s.AppendAsync(uint64(i+1), l)
			appended.Add(1)
		}
	}()
	waitFor(t, "the sink to acknowledge 500 records", 30*time.Second, func() bool {
		seq, _ := s.Last()
		return seq >= 500
	})
	k.Stop() // likely with a call in flight
	down := time.Now()

	time.Sleep(outage / 2)
	midAcked, _ := s.Last()
	midAppended := appended.Load()
	time.Sleep(outage / 2)
	lateAcked, _ := s.Last()
	lateAppended := appended.Load()
	s.mu.Lock()
	fatal := s.fatal
	s.mu.Unlock()
	if fatal != nil {
		t.Fatalf("the sink gave up during the outage: %v", fatal)
	}
	if midAppended >= total {
		t.Fatalf("all %d records were appended during the outage: nothing was held back", total)
	}
	if waiting := midAppended - int64(midAcked); waiting > bound {
		t.Fatalf("during the outage %d records were appended and %d acknowledged: %d buffered, over the bound of %d",
			midAppended, midAcked, waiting, bound)
	}
	if lateAcked != midAcked || lateAppended != midAppended {
		t.Fatalf("while the server was down the sink moved from %d appended, %d acknowledged to %d, %d",
			midAppended, midAcked, lateAppended, lateAcked)
	}

	k.Start()
	up := time.Now()
	select {
	case <-producerDone:
	case <-time.After(30 * time.Second):
		t.Fatalf("the appender was still blocked 30s after the server returned (%d of %d appended)", appended.Load(), total)
	}
	for i, w := range waits {
		if err := w(); err != nil {
			t.Fatalf("record %d: %v", i+1, err)
		}
	}
	resumed := time.Since(up)
	if seq, line := s.Last(); seq != total || !bytes.Equal(line, lines[total-1]) {
		t.Fatalf("after the outage Last() = %d, want %d", seq, total)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkChain(t, readAll(t, k.Endpoint, s.Stream(), StartTrimHorizon), 1, total)
	// A writer opened after it continues the same chain.
	s2 := openSink(t, k.Endpoint, Options{})
	defer s2.Close()
	if seq, _ := s2.Last(); seq != total {
		t.Fatalf("reopened after the outage: Last() = %d, want %d", seq, total)
	}
	t.Logf("down %s with %d acknowledged and %d buffered; all %d acknowledged %s after the server returned",
		up.Sub(down).Round(time.Millisecond), midAcked, midAppended-int64(midAcked), total, resumed.Round(time.Millisecond))
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
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

// sizedChain builds a chain whose records are exactly sizes[i] bytes long.
func sizedChain(sizes []int) [][]byte {
	lines := make([][]byte, len(sizes))
	var prev []byte
	for i, size := range sizes {
		base := chainLines(testStreamID, i+1, 1, prev, 0)[0]
		lines[i] = chainLines(testStreamID, i+1, 1, prev, size-len(base))[0]
		prev = lines[i]
	}
	return lines
}

// TestPutRecordsCallLimit: records that are each within Kinesis's 1 MiB but
// together over PutRecords' 5 MiB a call (data and partition keys) go out in
// calls within the limit, each as full as the limit allows, and arrive in
// order. kinesalite does not enforce the 5 MiB (only a 7 MiB request body,
// base64 included), so the test's proxy does, as Kinesis would: a call over
// it is refused with InvalidArgumentException.
func TestPutRecordsCallLimit(t *testing.T) {
	key := len(testStreamID)
	const kib = 1 << 10
	rep := func(n, size int) []int {
		s := make([]int, n)
		for i := range s {
			s[i] = size
		}
		return s
	}
	for _, tc := range []struct {
		name  string
		sizes []int // of the records after the first
		want  []int // records per call after the first
	}{
		// Five records of the largest size fill a call exactly.
		{name: "largest records", sizes: rep(6, MaxRecordBytes-key), want: []int{5, 1}},
		// The data of six records fits in 5 MiB, their partition keys do not.
		{name: "partition keys count", sizes: rep(6, (MaxCallBytes-3*key)/6), want: []int{5, 1}},
		{name: "mid-size records", sizes: rep(20, 700*kib), want: []int{7, 7, 6}},
		// In order: the 50 KiB record would fit the first call, but
		// follows one that does not.
		{name: "mixed sizes", sizes: []int{1000 * kib, 1000 * kib, 1000 * kib, 1000 * kib, 900 * kib, 300 * kib, 50 * kib},
			want: []int{5, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			endpoint := testenv.Kinesalite(t)
			var mu sync.Mutex
			var calls []int // records per call
			var sizes []int // bytes per call
			first := make(chan struct{})
			gate := make(chan struct{})
			proxy := httptest.NewServer(&hookProxy{target: endpoint, hook: func(w http.ResponseWriter, op string, body []byte) bool {
				if op != "PutRecords" {
					return false
				}
				var in struct {
					Records []struct{ Data, PartitionKey string }
				}
				if err := json.Unmarshal(body, &in); err != nil {
					apiError(w, "SerializationException", err.Error())
					return true
				}
				size := 0
				for _, r := range in.Records {
					data, err := base64.StdEncoding.DecodeString(r.Data)
					if err != nil {
						apiError(w, "SerializationException", err.Error())
						return true
					}
					size += len(data) + len(r.PartitionKey)
				}
				mu.Lock()
				calls, sizes = append(calls, len(in.Records)), append(sizes, size)
				n := len(calls)
				mu.Unlock()
				if n == 1 {
					// Hold the first call until the rest are queued, so
					// that the later calls take what the limits allow.
					close(first)
					<-gate
				}
				if size > MaxCallBytes {
					apiError(w, "InvalidArgumentException", fmt.Sprintf("the test proxy: %d bytes in one PutRecords call, over Kinesis's %d", size, MaxCallBytes))
					return true
				}
				return false
			}})
			defer proxy.Close()

			s := openSink(t, proxy.URL, Options{})
			defer s.Close()
			lines := sizedChain(append([]int{100}, tc.sizes...))
			waits := []func() error{s.AppendAsync(1, lines[0])}
			<-first
			for i, l := range lines[1:] {
				waits = append(waits, s.AppendAsync(uint64(i+2), l))
			}
			close(gate)
			for i, w := range waits {
				if err := w(); err != nil {
					t.Fatalf("record %d: %v", i+1, err)
				}
			}
			mu.Lock()
			gotCalls, gotSizes := calls[1:], sizes[1:]
			mu.Unlock()
			if fmt.Sprint(gotCalls) != fmt.Sprint(tc.want) {
				t.Fatalf("records per PutRecords call %v (bytes %v), want %v", gotCalls, gotSizes, tc.want)
			}
			for i, n := range gotSizes {
				if n > MaxCallBytes {
					t.Fatalf("call %d carried %d bytes, over %d", i+2, n, MaxCallBytes)
				}
			}
			checkChain(t, readAll(t, endpoint, s.Stream(), StartTrimHorizon), 1, uint64(len(lines)))
			t.Logf("calls after the first: records %v, bytes %v", gotCalls, gotSizes)
		})
	}
}
