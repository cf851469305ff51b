package kinesis

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/das-mysql/das/internal/testenv"
	"github.com/das-mysql/das/pkg/dasrecord"
)

const testStreamID = "cluster-KINESISTESTAAAAAAAAAAAA"

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Options
		err  string
	}{
		{in: "kinesis://my-stream", want: Options{Stream: "my-stream"}},
		{in: "kinesis://", want: Options{}},
		{in: "kinesis://s_1.x?region=eu-west-1&endpoint=http://127.0.0.1:4567&create=false&shards=3",
			want: Options{Stream: "s_1.x", Region: "eu-west-1", Endpoint: "http://127.0.0.1:4567", NoCreate: true, Shards: 3}},
		{in: "kinesis:///path-style", want: Options{Stream: "path-style"}},
		{in: "kafka://b:9092/t", err: `scheme is "kafka"`},
		{in: "kinesis://bad$name", err: `stream name "bad$name"`},
		{in: "kinesis://a?create=maybe", err: `create="maybe" is not true or false`},
		{in: "kinesis://a?shards=0", err: "shards"},
		{in: "kinesis://a?regoin=x", err: `unknown setting "regoin"`},
		{in: "kinesis://a?endpoint=127.0.0.1:4567", err: "want http(s)://host"},
		{in: "kinesis://a/b", err: "no '/'"},
		{in: "kinesis://" + strings.Repeat("x", 129), err: "1 to 128"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseURL(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	r, err := ParseReaderURL("kinesis://s?start=2026-01-02T03:04:05Z&follow=true&region=us-east-1")
	if err != nil || r.Stream != "s" || !r.Follow || r.Start.(time.Time).Year() != 2026 {
		t.Fatalf("reader url: %+v %v", r, err)
	}
	if _, err := ParseReaderURL("kinesis://s?start=yesterday"); err == nil || !strings.Contains(err.Error(), "trim_horizon, latest or an RFC 3339 time") {
		t.Fatalf("bad start: %v", err)
	}
	if _, err := ParseReaderURL("kinesis://"); err == nil {
		t.Fatal("a reader without a stream name was accepted")
	}
}

// chainLines builds records from seq from on, chained to prev (a line, or nil).
func chainLines(streamID string, from, n int, prev []byte, size int) [][]byte {
	lines := make([][]byte, n)
	pad := strings.Repeat("A", max(0, size))
	for i := range lines {
		r := dasrecord.Record{Type: dasrecord.RecordType, Version: "1.2",
			DatabaseActivityEvents: base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("events %d", from+i))) + pad,
			Key:                    "a2V5", StreamID: streamID, Seq: uint64(from + i)}
		if prev != nil {
			r.Prev = dasrecord.DigestOf(prev).String()
		} else {
			r.Prev = dasrecord.Digest{}.String()
		}
		lines[i] = r.AppendJSON(nil)
		prev = lines[i]
	}
	return lines
}

func openSink(t *testing.T, endpoint string, o Options) *Sink {
	t.Helper()
	if o.StreamID == "" {
		o.StreamID = testStreamID
	}
	o.Endpoint = endpoint
	o.Region = testenv.Region
	o.Logger = slog.New(slog.NewTextHandler(testLog{t}, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// appendAll appends lines and waits for every one.
func appendAll(t *testing.T, s *Sink, from int, lines [][]byte) {
	t.Helper()
	waits := make([]func() error, len(lines))
	for i, l := range lines {
		waits[i] = s.AppendAsync(uint64(from+i), l)
	}
	for i, w := range waits {
		if err := w(); err != nil {
			t.Fatalf("record %d: %v", from+i, err)
		}
	}
}

// testLog sends the sink's log to the test's.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Helper()
	l.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

type read struct {
	line  []byte
	where string
}

func readAll(t *testing.T, endpoint, stream string, start any) []read {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := OpenReader(ctx, ReaderOptions{Stream: stream, Region: testenv.Region, Endpoint: endpoint, Start: start})
	if err != nil {
		t.Fatal(err)
	}
	var out []read
	for {
		line, where, err := r.Next(ctx)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, read{line, where})
	}
}

var whereRE = regexp.MustCompile(`^shardId-\d{12}/\d+$`)

// checkChain checks that got is exactly records first..last of the chain:
// in order, no gaps, no duplicates, each chained to its predecessor.
func checkChain(t *testing.T, got []read, first, last uint64) {
	t.Helper()
	if want := int(last - first + 1); len(got) != want {
		t.Fatalf("read %d records, want %d (seq %d..%d)", len(got), want, first, last)
	}
	var prev []byte
	for i, g := range got {
		r, err := dasrecord.Parse(g.line)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if r.Seq != first+uint64(i) {
			t.Fatalf("record %d has seq %d, want %d", i, r.Seq, first+uint64(i))
		}
		if prev != nil && r.Prev != dasrecord.DigestOf(prev).String() {
			t.Fatalf("record %d: dasPrev does not match the digest of record %d", r.Seq, r.Seq-1)
		}
		if !whereRE.MatchString(g.where) {
			t.Fatalf("where %q, want shardId-NNNNNNNNNNNN/SEQUENCE", g.where)
		}
		prev = g.line
	}
}

func client(t *testing.T, endpoint string) *kinesis.Client {
	t.Helper()
	c, err := newClient(context.Background(), testenv.Region, endpoint, 0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDefaultStreamCreatedOrRefused(t *testing.T) {
	endpoint := testenv.Kinesalite(t)
	_, err := Open(context.Background(), Options{StreamID: testStreamID, Region: testenv.Region, Endpoint: endpoint, NoCreate: true})
	if err == nil || !strings.Contains(err.Error(), "aws-rds-das-"+testStreamID+" does not exist") || !strings.Contains(err.Error(), "create=false") {
		t.Fatalf("create=false on a missing stream: %v", err)
	}
	c := client(t, endpoint)
	if out, err := c.ListStreams(context.Background(), &kinesis.ListStreamsInput{}); err != nil || len(out.StreamNames) != 0 {
		t.Fatalf("create=false created something: %v %v", out, err)
	}

	s := openSink(t, endpoint, Options{Shards: 2})
	defer s.Close()
	if s.Stream() != "aws-rds-das-"+testStreamID {
		t.Fatalf("stream %s", s.Stream())
	}
	sum, err := c.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(s.Stream())})
	if err != nil {
		t.Fatal(err)
	}
	if sum.StreamDescriptionSummary.StreamStatus != types.StreamStatusActive || aws.ToInt32(sum.StreamDescriptionSummary.OpenShardCount) != 2 {
		t.Fatalf("stream %+v", sum.StreamDescriptionSummary)
	}
	if seq, line := s.Last(); seq != 0 || line != nil {
		t.Fatalf("new stream: Last() = %d", seq)
	}
	// An existing stream opens with create=false.
	s2 := openSink(t, endpoint, Options{StreamID: "cluster-OTHER", Stream: s.Stream(), NoCreate: true})
	s2.Close()
}

func TestRoundTripAndRestart(t *testing.T) {
	endpoint := testenv.Kinesalite(t)
	s := openSink(t, endpoint, Options{MaxBufferedRecords: 700})
	lines := chainLines(testStreamID, 1, 5000, nil, 200)
	start := time.Now()
	appendAll(t, s, 1, lines)
	t.Logf("5000 records put in %v", time.Since(start))
	if seq, line := s.Last(); seq != 5000 || !bytes.Equal(line, lines[4999]) {
		t.Fatalf("Last() = %d", seq)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAsync(5001, lines[0])(); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}

	// A restarted writer continues the chain from the stream.
	s = openSink(t, endpoint, Options{})
	seq, line := s.Last()
	if seq != 5000 || !bytes.Equal(line, lines[4999]) {
		t.Fatalf("restart: Last() = %d", seq)
	}
	more := chainLines(testStreamID, 5001, 100, line, 200)
	appendAll(t, s, 5001, more)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkChain(t, readAll(t, endpoint, s.Stream(), StartTrimHorizon), 1, 5100)
}

// TestRestartAfterCrash: the writer dies without Close, its tip tag several
// calls behind; the next Open reads forward from the tag to the real end.
func TestRestartAfterCrash(t *testing.T) {
	endpoint := testenv.Kinesalite(t)
	s := openSink(t, endpoint, Options{TipInterval: time.Hour})
	lines := chainLines(testStreamID, 1, 1200, nil, 100)
	appendAll(t, s, 1, lines[:10])
	time.Sleep(200 * time.Millisecond) // the first tip update
	appendAll(t, s, 11, lines[10:])
	// Crash: stop without recording the tip.
	close(s.tipStop)
	<-s.tipDone
	s.cancel()
	<-s.sent

	// The tag names the last record of the first call: 10, or fewer when
	// the first ten went in more than one call. Never one of the later
	// 1,190, which the crash kept from it.
	tag, err := readTag(context.Background(), client(t, endpoint), s.Stream(), TipTag(testStreamID))
	n, perr := strconv.Atoi(tag[strings.LastIndexByte(tag, '/')+1:])
	if err != nil || perr != nil || n < 1 || n > 10 {
		t.Fatalf("tip tag %q (%v), want one of the first call's records, 1..10", tag, err)
	}
	s2 := openSink(t, endpoint, Options{})
	defer s2.Close()
	if seq, line := s2.Last(); seq != 1200 || !bytes.Equal(line, lines[1199]) {
		t.Fatalf("after a crash: Last() = %d, want 1200", seq)
	}
}

func TestRecordTooLarge(t *testing.T) {
	endpoint := testenv.Kinesalite(t)
	s := openSink(t, endpoint, Options{})
	defer s.Close()
	big := chainLines(testStreamID, 1, 1, nil, MaxRecordBytes)[0]
	err := s.AppendAsync(1, big)()
	if !errors.Is(err, ErrRecordTooLarge) || !strings.Contains(err.Error(), "lower batch_max_events") || !strings.Contains(err.Error(), "record 1") {
		t.Fatalf("oversized record: %v", err)
	}
	// The sink still works; a record just under the limit goes through.
	fits := chainLines(testStreamID, 1, 1, nil, 0)[0]
	fits = chainLines(testStreamID, 1, 1, nil, MaxRecordBytes-len(fits)-len(testStreamID))[0]
	if err := s.AppendAsync(1, fits)(); err != nil {
		t.Fatalf("a record of exactly the limit: %v", err)
	}
}

// faultProxy sits between the sink and kinesalite. It fails some records of
// some PutRecords calls the way Kinesis does when a shard is throttled (the
// others of the call are written), and makes some whole calls look failed
// after they were written, so that the SDK's retry writes duplicates.
type faultProxy struct {
	target      string
	calls       atomic.Int64
	failedRecs  atomic.Int64
	dupCalls    atomic.Int64
	partialMode bool
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	op := strings.TrimPrefix(req.Header.Get("X-Amz-Target"), "Kinesis_20131202.")
	var fail map[int]bool
	var dup bool
	if op == "PutRecords" {
		n := p.calls.Add(1)
		var in struct {
			StreamName string
			Records    []json.RawMessage
		}
		if err := json.Unmarshal(body, &in); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		switch {
		case n%3 == 0:
			dup = true
		case n%2 == 1 && len(in.Records) > 2:
			// Throttle a few records in the middle; later ones land first.
			fail = map[int]bool{}
			for i := 1; i < len(in.Records)-1; i += 7 {
				fail[i] = true
			}
			var keep []json.RawMessage
			for i, r := range in.Records {
				if !fail[i] {
					keep = append(keep, r)
				}
			}
			in.Records = keep
			body, _ = json.Marshal(in)
		}
	}
	out, err := http.NewRequest(req.Method, p.target+req.URL.Path, bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	out.Header = req.Header.Clone()
	out.Header.Del("Content-Length")
	resp, err := http.DefaultClient.Do(out)
	if err != nil {
		http.Error(w, err.Error(), 502)
		return
	}
	rbody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if dup && resp.StatusCode == 200 {
		p.dupCalls.Add(1)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(500)
		io.WriteString(w, `{"__type":"InternalFailure","message":"injected after the write"}`)
		return
	}
	if fail != nil && resp.StatusCode == 200 {
		var res struct {
			FailedRecordCount int
			Records           []json.RawMessage
		}
		json.Unmarshal(rbody, &res)
		var merged []json.RawMessage
		j := 0
		for i := 0; i < len(res.Records)+len(fail); i++ {
			if fail[i] {
				merged = append(merged, json.RawMessage(`{"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"Rate exceeded for shard shardId-000000000000"}`))
				continue
			}
			merged = append(merged, res.Records[j])
			j++
		}
		p.failedRecs.Add(int64(len(fail)))
		rbody, _ = json.Marshal(map[string]any{"FailedRecordCount": len(fail), "Records": merged})
	}
	for k, v := range resp.Header {
		if k != "Content-Length" {
			w.Header()[k] = v
		}
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(rbody)
}

func TestThrottledRecordsRetriedInOrder(t *testing.T) {
	endpoint := testenv.Kinesalite(t)
	p := &faultProxy{target: endpoint}
	proxy := httptest.NewServer(p)
	defer proxy.Close()

	s := openSink(t, proxy.URL, Options{MaxBufferedRecords: 2000})
	lines := chainLines(testStreamID, 1, 3000, nil, 100)
	appendAll(t, s, 1, lines)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if p.failedRecs.Load() == 0 || p.dupCalls.Load() == 0 {
		t.Fatalf("no faults injected: %d records throttled, %d calls duplicated", p.failedRecs.Load(), p.dupCalls.Load())
	}
	t.Logf("%d calls, %d records throttled, %d calls written twice", p.calls.Load(), p.failedRecs.Load(), p.dupCalls.Load())

	// What landed: out of order and with duplicates...
	var raw []uint64
	var best scanBest
	best.streamID = testStreamID
	c := client(t, endpoint)
	_, err := readShard(context.Background(), c, &kinesis.GetShardIteratorInput{StreamName: aws.String(s.Stream()),
		ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon},
		func(r types.Record) { rec, _ := dasrecord.Parse(r.Data); raw = append(raw, rec.Seq) })
	if err != nil {
		t.Fatal(err)
	}
	sorted, dups := true, len(raw)-3000
	for i := 1; i < len(raw); i++ {
		sorted = sorted && raw[i] > raw[i-1]
	}
	if sorted || dups <= 0 {
		t.Fatalf("the stream holds the records in order without duplicates: the faults did not bite")
	}
	// ...and the reader puts them back in order, without duplicates.
	checkChain(t, readAll(t, endpoint, s.Stream(), StartTrimHorizon), 1, 3000)
}

func TestReshardedStreamReadInOrder(t *testing.T) {
	endpoint := testenv.Kinesalite(t)
	s := openSink(t, endpoint, Options{TipInterval: time.Hour})
	lines := chainLines(testStreamID, 1, 600, nil, 100)
	appendAll(t, s, 1, lines[:200])
	time.Sleep(200 * time.Millisecond) // the tip tag names the parent shard

	ctx := context.Background()
	c := client(t, endpoint)
	if _, err := c.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(s.Stream()),
		ShardToSplit:       aws.String("shardId-000000000000"),
		NewStartingHashKey: aws.String(new(big.Int).Lsh(big.NewInt(1), 127).String())}); err != nil {
		t.Fatal(err)
	}
	if _, err := waitActive(ctx, c, s.Stream()); err != nil {
		t.Fatal(err)
	}
	appendAll(t, s, 201, lines[200:400])
	// Merge the children back: a third generation.
	if _, err := c.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String(s.Stream()),
		ShardToMerge: aws.String("shardId-000000000001"), AdjacentShardToMerge: aws.String("shardId-000000000002")}); err != nil {
		t.Fatal(err)
	}
	if _, err := waitActive(ctx, c, s.Stream()); err != nil {
		t.Fatal(err)
	}
	appendAll(t, s, 401, lines[400:])
	// Crash without writing the tip: the restart follows the descendants.
	close(s.tipStop)
	<-s.tipDone
	s.cancel()
	<-s.sent

	got := readAll(t, endpoint, s.Stream(), StartTrimHorizon)
	checkChain(t, got, 1, 600)
	shardsSeen := map[string]bool{}
	for _, g := range got {
		shardsSeen[strings.Split(g.where, "/")[0]] = true
	}
	if len(shardsSeen) != 3 {
		t.Fatalf("records came from shards %v, want a parent, one child and the merged shard", shardsSeen)
	}
	s2 := openSink(t, endpoint, Options{})
	defer s2.Close()
	if seq, _ := s2.Last(); seq != 600 {
		t.Fatalf("restart after resharding: Last() = %d, want 600", seq)
	}
}

func TestReaderStartsAndFollows(t *testing.T) {
	endpoint := testenv.Kinesalite(t)
	s := openSink(t, endpoint, Options{})
	defer s.Close()
	lines := chainLines(testStreamID, 1, 30, nil, 50)
	appendAll(t, s, 1, lines[:10])
	time.Sleep(20 * time.Millisecond)
	mark := time.Now()
	time.Sleep(20 * time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	latest, err := OpenReader(ctx, ReaderOptions{Stream: s.Stream(), Region: testenv.Region, Endpoint: endpoint,
		Start: StartLatest, Follow: true, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, s, 11, lines[10:20])
	var got []read
	for len(got) < 10 {
		line, where, err := latest.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, read{line, where})
	}
	checkChain(t, got, 11, 20)

	// Following: a record put later arrives.
	go func() { time.Sleep(100 * time.Millisecond); s.AppendAsync(21, lines[20]) }()
	line, _, err := latest.Next(ctx)
	if err != nil || !bytes.Equal(line, lines[20]) {
		t.Fatalf("follow: %v", err)
	}
	checkChain(t, readAll(t, endpoint, s.Stream(), mark), 11, 21)
}

func TestDeletedStream(t *testing.T) {
	endpoint := testenv.Kinesalite(t)
	s := openSink(t, endpoint, Options{})
	defer s.Close()
	lines := chainLines(testStreamID, 1, 20, nil, 50)
	appendAll(t, s, 1, lines[:10])
	c := client(t, endpoint)
	if _, err := c.DeleteStream(context.Background(), &kinesis.DeleteStreamInput{StreamName: aws.String(s.Stream())}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	err := s.AppendAsync(11, lines[10])()
	if !errors.Is(err, ErrStreamNotFound) || !strings.Contains(err.Error(), "deleted") {
		t.Fatalf("put to a deleted stream: %v", err)
	}
	// Later appends fail at once with the same error.
	if err := s.AppendAsync(12, lines[11])(); !errors.Is(err, ErrStreamNotFound) {
		t.Fatalf("second put to a deleted stream: %v", err)
	}
	_, err = OpenReader(context.Background(), ReaderOptions{Stream: s.Stream(), Region: testenv.Region, Endpoint: endpoint})
	if !errors.Is(err, ErrStreamNotFound) {
		t.Fatalf("reading a deleted stream: %v", err)
	}
}

// TestBackpressure: with the stream unreachable, AppendAsync blocks once
// MaxBufferedRecords are buffered; Close gives up after CloseTimeout.
func TestBackpressure(t *testing.T) {
	endpoint := testenv.Kinesalite(t)
	var down atomic.Bool
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if down.Load() && strings.HasSuffix(req.Header.Get("X-Amz-Target"), "PutRecords") {
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.WriteHeader(503)
			io.WriteString(w, `{"__type":"ServiceUnavailable","message":"down"}`)
			return
		}
		(&faultProxy{target: endpoint}).forward(w, req)
	}))
	defer proxy.Close()
	s := openSink(t, proxy.URL, Options{MaxBufferedRecords: 5, CloseTimeout: 300 * time.Millisecond, MaxAttempts: 1})
	down.Store(true)
	lines := chainLines(testStreamID, 1, 6, nil, 10)
	var waits []func() error
	for i := range 5 {
		waits = append(waits, s.AppendAsync(uint64(i+1), lines[i]))
	}
	blocked := make(chan func() error)
	go func() { blocked <- s.AppendAsync(6, lines[5]) }()
	select {
	case <-blocked:
		t.Fatal("AppendAsync did not block with the buffer full")
	case <-time.After(300 * time.Millisecond):
	}
	s.Close()
	if w := <-blocked; !errors.Is(w(), ErrClosed) {
		t.Fatal("the blocked append was not released by Close")
	}
	for _, w := range waits {
		if err := w(); !errors.Is(err, ErrClosed) {
			t.Fatalf("undelivered record: %v", err)
		}
	}
}

// forward relays a request unchanged.
func (p *faultProxy) forward(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	out, _ := http.NewRequest(req.Method, p.target+req.URL.Path, bytes.NewReader(body))
	out.Header = req.Header.Clone()
	resp, err := http.DefaultClient.Do(out)
	if err != nil {
		http.Error(w, err.Error(), 502)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// TestNewest: a reopened sink reads its chain's newest records back, those
// before the tip tag's record included (Kinesis reads forward only), and
// not another chain's that shares the stream.
func TestNewest(t *testing.T) {
	endpoint := testenv.Kinesalite(t)
	s := openSink(t, endpoint, Options{})
	other := openSink(t, endpoint, Options{StreamID: "cluster-OTHER", Stream: s.Stream()})
	mine := chainLines(testStreamID, 1, 300, nil, 100)
	theirs := chainLines("cluster-OTHER", 1, 300, nil, 100)
	for i := 0; i < 300; i += 50 {
		appendAll(t, s, i+1, mine[i:i+50])
		appendAll(t, other, i+1, theirs[i:i+50])
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // the tip tag names record 300
		t.Fatal(err)
	}
	s = openSink(t, endpoint, Options{})
	defer s.Close()
	fresh := openSink(t, endpoint, Options{StreamID: "cluster-NONE", Stream: s.Stream()})
	defer fresh.Close()

	for _, tc := range []struct {
		name string
		s    *Sink
		n    int
		want [][]byte
	}{
		{"last one", s, 1, mine[299:]},
		{"before the tip tag's record", s, 120, mine[180:]},
		{"more than there are", s, 1000, mine},
		{"chain with no record", fresh, 10, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			got, err := tc.s.Newest(ctx, tc.n)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("Newest(%d) returned %d records, want %d", tc.n, len(got), len(tc.want))
			}
			for i := range got {
				if !bytes.Equal(got[i], tc.want[i]) {
					r, _ := dasrecord.Parse(got[i])
					t.Fatalf("Newest(%d)[%d] is %s seq %d, want seq %d of %s", tc.n, i, r.StreamID, r.Seq, 300-len(tc.want)+i+1, testStreamID)
				}
			}
		})
	}
}
