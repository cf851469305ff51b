package events

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite docs/EVENTS.md from the catalogue")

const docPath = "../../docs/EVENTS.md"

func TestCatalogueIDsUniqueAndWellFormed(t *testing.T) {
	idRe := regexp.MustCompile(`^DAS-EVENT-\d{4}$`)
	seen := map[string]bool{}
	msgs := map[string]string{}
	prev := ""
	for _, d := range Catalogue() {
		if !idRe.MatchString(d.ID) {
			t.Errorf("id %q is not DAS-EVENT-NNNN", d.ID)
		}
		if seen[d.ID] {
			t.Errorf("id %s appears twice", d.ID)
		}
		seen[d.ID] = true
		if d.ID <= prev {
			t.Errorf("id %s out of order after %s", d.ID, prev)
		}
		prev = d.ID
		if other, ok := msgs[d.Message]; ok {
			t.Errorf("%s and %s share the message %q", d.ID, other, d.Message)
		}
		msgs[d.Message] = d.ID
		if !strings.HasSuffix(d.Message, ".") || d.Note == "" || d.Category == "" {
			t.Errorf("%s: message must end with '.', note and category must be set: %+v", d.ID, d)
		}
		switch d.Severity {
		case Info, Warning, Error:
		default:
			t.Errorf("%s: severity %q", d.ID, d.Severity)
		}
	}
}

// The released ids and messages. Changing one breaks every operator's alert
// that matches on it: add a new id instead.
func TestCatalogueMessagesFixed(t *testing.T) {
	want := map[string]string{
		StreamStarting:     "Database Activity Stream is starting.",
		StreamStarted:      "Database Activity Stream is started.",
		StreamStopping:     "Database Activity Stream is stopping.",
		StreamStopped:      "Database Activity Stream is stopped.",
		KMSUnreachable:     "The activity stream cannot reach its KMS key.",
		KMSReachable:       "The activity stream can reach its KMS key again.",
		LossWindowStart:    "Activity records may have been lost: the window starts.",
		LossWindowEnd:      "Activity records may have been lost: the window ends.",
		SinkUnreachable:    "The activity stream cannot write to its sink.",
		SinkRecovered:      "The activity stream can write to its sink again.",
		FailClosedEngaged:  "The activity stream is not recording; new database sessions are refused.",
		FailClosedReleased: "The activity stream is recording again; new database sessions are accepted.",
		DataKeyRotated:     "The activity stream's data key was rotated.",
		AuditLogLost:       "An audit log file was rotated away before it was read; its unread bytes are lost.",
		AuditLineSkipped:   "An audit log line could not be parsed and was skipped.",
		SpoolEngaged:       "KMS is unreachable; activity is spooled locally until it answers again.",
		SpoolDrained:       "The local spool was drained into the sink.",
	}
	if len(Catalogue()) != len(want) {
		t.Errorf("catalogue has %d events, this test knows %d: add the new one here", len(Catalogue()), len(want))
	}
	for id, msg := range want {
		d, ok := Lookup(id)
		if !ok {
			t.Errorf("%s missing from the catalogue", id)
			continue
		}
		if d.Message != msg {
			t.Errorf("%s message = %q, released as %q", id, d.Message, msg)
		}
	}
}

func TestEventsDoc(t *testing.T) {
	got := Markdown()
	if *update {
		if err := os.WriteFile(docPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/events -run TestEventsDoc -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("docs/EVENTS.md is out of date with the catalogue; run go test ./internal/events -run TestEventsDoc -update")
	}
	for _, d := range Catalogue() {
		if !bytes.Contains(want, []byte("| "+d.ID+" |")) {
			t.Errorf("docs/EVENTS.md lacks %s", d.ID)
		}
	}
}

func TestEmitUsesCatalogueAndLogsJSON(t *testing.T) {
	var logBuf syncBuffer
	b, err := New(Options{Logger: slog.New(slog.NewJSONHandler(&logBuf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ev := b.Emit(StreamStopped, "cluster-X", map[string]string{AttrReason: ReasonKMSUnreachable})
	if ev.Seq != 1 || ev.Message != "Database Activity Stream is stopped." || ev.Attrs[AttrReason] != "kms-unreachable" || ev.Stream != "cluster-X" || ev.Time.IsZero() {
		t.Fatalf("event = %+v", ev)
	}
	var line map[string]any
	if err := json.Unmarshal(logBuf.Bytes(), &line); err != nil {
		t.Fatalf("log is not one JSON line: %v: %s", err, logBuf.Bytes())
	}
	if line["event_id"] != StreamStopped || line["msg"] != ev.Message || line["level"] != "WARN" ||
		line["attrs"].(map[string]any)["reason"] != "kms-unreachable" || line["stream"] != "cluster-X" {
		t.Errorf("log line = %v", line)
	}
	unk := b.Emit("DAS-EVENT-9999", "s", nil)
	if unk.Seq != 2 || !strings.Contains(unk.Message, "unknown event id") {
		t.Errorf("unknown id event = %+v", unk)
	}
}

func TestHistoryBounded(t *testing.T) {
	b, err := New(Options{History: 5})
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Since(0); len(got) != 0 {
		t.Fatalf("empty bus Since(0) = %v", got)
	}
	for i := 0; i < 12; i++ {
		b.Emit(DataKeyRotated, "s", nil)
	}
	tests := []struct {
		since     uint64
		wantFirst uint64
		wantLen   int
	}{
		{0, 8, 5}, {7, 8, 5}, {9, 10, 3}, {11, 12, 1}, {12, 0, 0}, {100, 0, 0},
	}
	for _, tc := range tests {
		got := b.Since(tc.since)
		if len(got) != tc.wantLen {
			t.Errorf("Since(%d) has %d events, want %d", tc.since, len(got), tc.wantLen)
			continue
		}
		for i, ev := range got {
			if ev.Seq != tc.wantFirst+uint64(i) {
				t.Errorf("Since(%d)[%d].Seq = %d, want %d", tc.since, i, ev.Seq, tc.wantFirst+uint64(i))
			}
		}
	}
	if b.LastSeq() != 12 {
		t.Errorf("LastSeq = %d", b.LastSeq())
	}
}

func TestWebhookURLMustBeHTTP(t *testing.T) {
	for _, u := range []string{"ftp://example.com/x", "file:///etc/passwd", "example.com/hook", "", "http://", "javascript:alert(1)", "https://user:s3cret@/x"} {
		_, err := New(Options{Webhooks: []string{"http://127.0.0.1:1/ok", u}})
		if err == nil {
			t.Errorf("webhook %q accepted", u)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error shows the URL's password: %v", err)
		}
		if !strings.Contains(err.Error(), "webhook") || !strings.Contains(err.Error(), "http") {
			t.Errorf("error does not say what is wrong: %v", err)
		}
	}
	if _, err := New(Options{Webhooks: []string{"ftp://example.com/x"}}); err == nil || !strings.Contains(err.Error(), `"ftp://example.com/x"`) {
		t.Errorf("error does not name the URL: %v", err)
	}
	for _, u := range []string{"http://127.0.0.1:8080/hook", "https://hooks.example.com/a?b=c"} {
		b, err := New(Options{Webhooks: []string{u}})
		if err != nil {
			t.Errorf("%s: %v", u, err)
			continue
		}
		b.Close(context.Background())
	}
}

var fastRetry = Retry{MaxAttempts: 5, Initial: time.Millisecond, Max: 5 * time.Millisecond}

// A webhook that fails twice then succeeds gets every event, in order, and
// with the bearer token.
func TestWebhookRetriesKeepOrder(t *testing.T) {
	var mu sync.Mutex
	var got []uint64
	attempts := map[uint64]int{}
	var badAuth atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer hook-token" || r.Header.Get("Content-Type") != "application/json" {
			badAuth.Add(1)
		}
		var ev Event
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			t.Errorf("webhook body: %v", err)
			w.WriteHeader(400)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		attempts[ev.Seq]++
		if ev.Seq == 2 && attempts[ev.Seq] <= 2 { // fails twice then succeeds
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if r.Header.Get("X-Das-Event-Seq") == "" || r.Header.Get("X-Das-Event-Id") != ev.ID {
			t.Errorf("headers = %v", r.Header)
		}
		got = append(got, ev.Seq)
	}))
	defer srv.Close()
	b, err := New(Options{Webhooks: []string{srv.URL + "/hook"}, Token: "hook-token", Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		b.Emit(SinkUnreachable, "s", map[string]string{AttrSink: "local"})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []uint64{1, 2, 3, 4, 5}; !equal(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
	if attempts[2] != 3 {
		t.Errorf("event 2 tried %d times, want 3", attempts[2])
	}
	if badAuth.Load() != 0 {
		t.Errorf("%d requests without the token or content type", badAuth.Load())
	}
	st := b.Stats()[0]
	if st.Delivered != 5 || st.Failed != 0 || st.Dropped != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestWebhookGivesUpAfterMaxAttemptsAndOnPermanentStatus(t *testing.T) {
	var calls atomic.Int32
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer down.Close()
	var gone atomic.Int32
	notFound := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gone.Add(1)
		http.NotFound(w, r)
	}))
	defer notFound.Close()
	var logBuf syncBuffer
	b, err := New(Options{Webhooks: []string{down.URL, notFound.URL}, Retry: Retry{MaxAttempts: 3, Initial: time.Millisecond, Max: time.Millisecond},
		Logger: slog.New(slog.NewJSONHandler(&logBuf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	b.Emit(StreamStarted, "s", nil)
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 || gone.Load() != 1 {
		t.Errorf("5xx webhook called %d times (want 3), 404 webhook %d times (want 1)", calls.Load(), gone.Load())
	}
	st := b.Stats()
	if st[0].Failed != 1 || st[1].Failed != 1 {
		t.Errorf("stats = %+v", st)
	}
	if !strings.Contains(logBuf.String(), "webhook delivery failed") {
		t.Errorf("failure not logged: %s", logBuf.String())
	}
}

// A webhook that hangs must not hold up a healthy one: the healthy one
// receives every event while the other is still stuck in its first request.
func TestDownWebhookDelaysNothingElse(t *testing.T) {
	release := make(chan struct{})
	var stuck atomic.Int32
	arrived := make(chan struct{}, 100)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stuck.Add(1)
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(500)
	}))
	defer hang.Close()
	defer close(release)
	const n = 20
	got := make(chan uint64, n)
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev Event
		json.NewDecoder(r.Body).Decode(&ev)
		got <- ev.Seq
	}))
	defer healthy.Close()
	b, err := New(Options{Webhooks: []string{hang.URL, healthy.URL}, Queue: 4, Retry: fastRetry, Client: &http.Client{}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		b.Emit(KMSUnreachable, "s", map[string]string{AttrClass: "connect"})
	}
	// The healthy webhook's queue is 4 as well, so it may drop the oldest
	// while its sender is busy; what it receives must be in order and end
	// with the last event, and the hanging one must still be on request 1.
	deadline := time.After(20 * time.Second) // a failure guard, not a timing assertion
	var last uint64
	for last != n {
		select {
		case s := <-got:
			if s <= last {
				t.Fatalf("healthy webhook got seq %d after %d", s, last)
			}
			last = s
		case <-deadline:
			t.Fatalf("healthy webhook stuck at seq %d while the other hangs", last)
		}
	}
	select {
	case <-arrived:
	case <-deadline:
		t.Fatal("the hanging webhook never got its first request")
	}
	if s := stuck.Load(); s != 1 {
		t.Errorf("hanging webhook saw %d requests, want 1 (still in the first)", s)
	}
	st := b.Stats()
	if st[0].Dropped == 0 || st[0].Queued > 4 {
		t.Errorf("hanging webhook's queue not bounded: %+v", st[0])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := b.Close(ctx); err == nil {
		t.Errorf("Close with a hanging webhook returned nil; want the abandoned-events error")
	}
}

func TestSubscribe(t *testing.T) {
	b, _ := New(Options{})
	ch, cancel := b.Subscribe(4)
	b.Emit(StreamStarting, "s", nil)
	b.Emit(StreamStarted, "s", nil)
	if a, c := <-ch, <-ch; a.ID != StreamStarting || c.ID != StreamStarted {
		t.Errorf("got %s, %s", a.ID, c.ID)
	}
	cancel()
	b.Emit(StreamStopped, "s", nil)
	select {
	case ev := <-ch:
		t.Errorf("event after cancel: %+v", ev)
	default:
	}
}

func BenchmarkEmit(b *testing.B) {
	bus, _ := New(Options{History: 1000, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	attrs := map[string]string{AttrReason: "requested"}
	b.ReportAllocs()
	for b.Loop() {
		bus.Emit(StreamStopped, "cluster-X", attrs)
	}
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.b.Bytes()...)
}

func (s *syncBuffer) String() string { return string(s.Bytes()) }
