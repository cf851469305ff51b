package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/das-mysql/das/internal/events"
)

const testToken = "test-token-0123456789abcdef"

// fakeController is a one-stream controller that records its calls.
type fakeController struct {
	mu    sync.Mutex
	calls []string
	st    StreamStatus
	fail  error
}

func newFake() *fakeController {
	return &fakeController{st: StreamStatus{StreamId: "cluster-TEST", Status: StatusStopped, Mode: ModeAsync, KmsKeyId: "alias/das", Sink: "local:/data/stream", Policy: PolicyFailOpen}}
}

func (f *fakeController) StartActivityStream(_ context.Context, r StartRequest) (StreamStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("start %s %s %v", r.Mode, r.KmsKeyId, r.ApplyImmediately))
	if f.fail != nil {
		return StreamStatus{}, f.fail
	}
	if f.st.Status == StatusStarted {
		if r.Mode != "" && r.Mode != f.st.Mode {
			return f.st, fmt.Errorf("%w: the stream is started in %s mode; stop it to change the mode", ErrConflict, f.st.Mode)
		}
		return f.st, ErrNoChange
	}
	f.st.Status = StatusStarted
	if r.Mode != "" {
		f.st.Mode = r.Mode
	}
	if r.KmsKeyId != "" {
		f.st.KmsKeyId = r.KmsKeyId
	}
	t := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	f.st.StartedAt = &t
	f.st.Counters = map[string]uint64{"records": 7}
	return f.st, nil
}

func (f *fakeController) StopActivityStream(_ context.Context, r StopRequest) (StreamStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("stop %v", r.ApplyImmediately))
	if f.st.Status == StatusStopped {
		return f.st, fmt.Errorf("stop: %w", ErrNoChange)
	}
	f.st.Status, f.st.Reason, f.st.StartedAt = StatusStopped, "requested", nil
	return f.st, nil
}

func (f *fakeController) DescribeActivityStreams(context.Context) ([]StreamStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "describe")
	return []StreamStatus{f.st}, nil
}

func (f *fakeController) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func newTestServer(t *testing.T, ctl Controller, bus *events.Bus, metrics http.Handler) *httptest.Server {
	t.Helper()
	h, err := NewServer(ServerOptions{Token: testToken, Controller: ctl, Events: bus, Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func call(t *testing.T, method, url, auth, body string) (int, http.Header, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func TestBadTokenGets401AndChangesNothing(t *testing.T) {
	ctl := newFake()
	srv := newTestServer(t, ctl, nil, nil)
	routes := []struct{ method, path, body string }{
		{"POST", "/v1/activity-stream/start", `{"Mode":"sync"}`},
		{"POST", "/v1/activity-stream/stop", ``},
		{"GET", "/v1/activity-streams", ``},
		{"GET", "/v1/events?since=0", ``},
		{"GET", "/metrics", ``},
	}
	auths := []struct{ name, header, wantError string }{
		{"missing", "", ""},
		{"wrong token", "Bearer wrong-token-0123456789abcdef", `error="invalid_token"`},
		{"token prefix", "Bearer " + testToken[:10], `error="invalid_token"`},
		{"token plus", "Bearer " + testToken + "x", `error="invalid_token"`},
		{"basic auth", "Basic " + testToken, ""},
		{"bare token", testToken, ""},
	}
	for _, rt := range routes {
		for _, a := range auths {
			code, hdr, body := call(t, rt.method, srv.URL+rt.path, a.header, rt.body)
			if code != http.StatusUnauthorized {
				t.Errorf("%s %s with %s token: status %d, want 401", rt.method, rt.path, a.name, code)
			}
			wa := hdr.Get("WWW-Authenticate")
			if !strings.HasPrefix(wa, "Bearer ") || !strings.Contains(wa, a.wantError) {
				t.Errorf("%s %s with %s token: WWW-Authenticate %q", rt.method, rt.path, a.name, wa)
			}
			if strings.Contains(string(body), testToken) {
				t.Errorf("401 body shows the token: %s", body)
			}
		}
	}
	if c := ctl.Calls(); len(c) != 0 {
		t.Errorf("controller called without a valid token: %v", c)
	}
	// The right token, in any case of "Bearer", gets through.
	if code, _, body := call(t, "GET", srv.URL+"/v1/activity-streams", "bearer "+testToken, ""); code != 200 {
		t.Errorf("valid token: %d %s", code, body)
	}
	// /healthz needs none.
	if code, _, body := call(t, "GET", srv.URL+"/healthz", "", ""); code != 200 || string(body) != "ok\n" {
		t.Errorf("healthz: %d %q", code, body)
	}
}

func TestMalformedRequestsName400Field(t *testing.T) {
	ctl := newFake()
	srv := newTestServer(t, ctl, nil, nil)
	tests := []struct {
		name, path, body string
		wantCode         string
		wantField        string
		wantStatus       int
	}{
		{"not json", "/v1/activity-stream/start", `{"Mode":`, CodeMalformedInput, "", 400},
		{"syntax", "/v1/activity-stream/start", `{Mode: "async"}`, CodeMalformedInput, "", 400},
		{"array", "/v1/activity-stream/start", `["async"]`, CodeMalformedInput, "", 400},
		{"unknown field", "/v1/activity-stream/start", `{"Mode":"async","ResourceArn":"arn:x"}`, CodeUnknownParameter, "ResourceArn", 400},
		{"bad mode", "/v1/activity-stream/start", `{"Mode":"fast"}`, CodeInvalidParameterValue, "Mode", 400},
		{"mode wrong type", "/v1/activity-stream/start", `{"Mode":1}`, CodeInvalidParameterValue, "Mode", 400},
		{"apply wrong type", "/v1/activity-stream/start", `{"ApplyImmediately":"yes"}`, CodeInvalidParameterValue, "ApplyImmediately", 400},
		{"key with space", "/v1/activity-stream/start", `{"KmsKeyId":"alias/a b"}`, CodeInvalidParameterValue, "KmsKeyId", 400},
		{"two objects", "/v1/activity-stream/start", `{"Mode":"sync"}{"Mode":"async"}`, CodeMalformedInput, "", 400},
		{"stop unknown", "/v1/activity-stream/stop", `{"Force":true}`, CodeUnknownParameter, "Force", 400},
		{"stop wrong type", "/v1/activity-stream/stop", `{"ApplyImmediately":1}`, CodeInvalidParameterValue, "ApplyImmediately", 400},
		{"too big", "/v1/activity-stream/stop", `{"ApplyImmediately":true,"x":"` + strings.Repeat("a", maxBody) + `"}`, CodeMalformedInput, "", 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := call(t, "POST", srv.URL+tc.path, "Bearer "+testToken, tc.body)
			if code != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", code, tc.wantStatus, body)
			}
			var eb ErrorBody
			if err := json.Unmarshal(body, &eb); err != nil {
				t.Fatalf("error body %s: %v", body, err)
			}
			if eb.Error.Code != tc.wantCode || eb.Error.Field != tc.wantField || eb.Error.Message == "" {
				t.Errorf("error = %+v, want code %s field %q", eb.Error, tc.wantCode, tc.wantField)
			}
			if tc.wantField != "" && !strings.Contains(eb.Error.Error(), tc.wantField) {
				t.Errorf("error text %q does not name %s", eb.Error.Error(), tc.wantField)
			}
		})
	}
	if c := ctl.Calls(); len(c) != 0 {
		t.Errorf("controller called for bad requests: %v", c)
	}
	code, _, body := call(t, "GET", srv.URL+"/v1/events?since=-1", "Bearer "+testToken, "")
	if code != 400 || !strings.Contains(string(body), `"Field": "since"`) {
		t.Errorf("since=-1: %d %s", code, body)
	}
	code, _, _ = call(t, "GET", srv.URL+"/v1/activity-stream/start", "Bearer "+testToken, "")
	if code != http.StatusMethodNotAllowed {
		t.Errorf("GET on start: %d, want 405", code)
	}
}

func TestStartStopDescribeThroughClient(t *testing.T) {
	ctl := newFake()
	srv := newTestServer(t, ctl, nil, nil)
	c := NewClient(strings.TrimPrefix(srv.URL, "http://"), testToken, nil)
	ctx := context.Background()

	st, err := c.StartActivityStream(ctx, StartRequest{Mode: ModeSync, KmsKeyId: "alias/other", ApplyImmediately: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != StatusStarted || st.Mode != ModeSync || st.KmsKeyId != "alias/other" || st.StartedAt == nil || st.Note != "" || st.Counters["records"] != 7 {
		t.Errorf("start = %+v", st)
	}
	// Starting a started stream: 200, same status, a note.
	st, err = c.StartActivityStream(ctx, StartRequest{})
	if err != nil {
		t.Fatalf("second start: %v", err)
	}
	if st.Status != StatusStarted || !strings.Contains(st.Note, "already started") {
		t.Errorf("second start = %+v", st)
	}
	// A start that conflicts: 409 with the controller's reason.
	_, err = c.StartActivityStream(ctx, StartRequest{Mode: ModeAsync})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 409 || ae.Code != CodeInvalidState || !strings.Contains(ae.Message, "stop it to change the mode") {
		t.Errorf("conflicting start: %v", err)
	}
	list, err := c.DescribeActivityStreams(ctx)
	if err != nil || len(list) != 1 || list[0].StreamId != "cluster-TEST" || list[0].Status != StatusStarted {
		t.Errorf("describe = %+v, %v", list, err)
	}
	st, err = c.StopActivityStream(ctx, StopRequest{ApplyImmediately: true})
	if err != nil || st.Status != StatusStopped || st.Reason != "requested" || st.Note != "" {
		t.Errorf("stop = %+v, %v", st, err)
	}
	st, err = c.StopActivityStream(ctx, StopRequest{})
	if err != nil || st.Status != StatusStopped || !strings.Contains(st.Note, "already stopped") {
		t.Errorf("second stop = %+v, %v", st, err)
	}
	want := []string{"start sync alias/other true", "start   false", "start async  false", "describe", "stop true", "stop false"}
	if got := ctl.Calls(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("controller calls %q, want %q", got, want)
	}
	// A controller failure is a 500 that says what failed.
	ctl.mu.Lock()
	ctl.fail = errors.New("kms: GenerateDataKey: dial tcp 127.0.0.1:1: connection refused")
	ctl.mu.Unlock()
	_, err = c.StartActivityStream(ctx, StartRequest{})
	if !errors.As(err, &ae) || ae.Status != 500 || !strings.Contains(ae.Message, "connection refused") {
		t.Errorf("failing start: %v", err)
	}
	// A wrong token, through the client.
	_, err = NewClient(srv.URL, "not-the-token-0123456789", nil).DescribeActivityStreams(ctx)
	if !errors.As(err, &ae) || ae.Status != 401 {
		t.Errorf("wrong token: %v", err)
	}
}

func TestEventsSince(t *testing.T) {
	bus, err := events.New(events.Options{History: 3})
	if err != nil {
		t.Fatal(err)
	}
	srv := newTestServer(t, newFake(), bus, nil)
	c := NewClient(srv.URL, testToken, nil)
	ctx := context.Background()
	r, err := c.Events(ctx, 0)
	if err != nil || len(r.Events) != 0 || r.LastSeq != 0 {
		t.Fatalf("empty: %+v %v", r, err)
	}
	bus.Emit(events.StreamStarting, "cluster-TEST", nil)
	bus.Emit(events.StreamStarted, "cluster-TEST", map[string]string{events.AttrMode: "async"})
	r, err = c.Events(ctx, 1)
	if err != nil || len(r.Events) != 1 || r.Events[0].ID != events.StreamStarted || r.Events[0].Attrs["mode"] != "async" || r.LastSeq != 2 || r.Truncated {
		t.Errorf("since 1: %+v %v", r, err)
	}
	for i := 0; i < 3; i++ {
		bus.Emit(events.DataKeyRotated, "cluster-TEST", nil)
	}
	r, err = c.Events(ctx, 0)
	if err != nil || len(r.Events) != 3 || r.Events[0].Seq != 3 || !r.Truncated || r.LastSeq != 5 {
		t.Errorf("since 0 after overflow: %+v %v", r, err)
	}
	// The /events alias the issue names.
	code, _, body := call(t, "GET", srv.URL+"/events?since=4", "Bearer "+testToken, "")
	if code != 200 || !strings.Contains(string(body), `"seq": 5`) || strings.Contains(string(body), `"seq": 4`) {
		t.Errorf("/events?since=4: %d %s", code, body)
	}
}

func TestMetricsHook(t *testing.T) {
	srv := newTestServer(t, newFake(), nil, nil)
	if code, _, _ := call(t, "GET", srv.URL+"/metrics", "Bearer "+testToken, ""); code != 404 {
		t.Errorf("metrics without a handler: %d, want 404", code)
	}
	m := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "das_up 1\n") })
	srv = newTestServer(t, newFake(), nil, m)
	if code, _, body := call(t, "GET", srv.URL+"/metrics", "Bearer "+testToken, ""); code != 200 || string(body) != "das_up 1\n" {
		t.Errorf("metrics: %d %q", code, body)
	}
}

func TestNewServerRefusesNoToken(t *testing.T) {
	if _, err := NewServer(ServerOptions{Controller: newFake()}); err == nil {
		t.Error("NewServer without a token succeeded")
	}
	if _, err := NewServer(ServerOptions{Token: testToken}); err == nil {
		t.Error("NewServer without a controller succeeded")
	}
}

func TestTokenFile(t *testing.T) {
	t.Setenv(TokenEnv, "")
	os.Unsetenv(TokenEnv)
	dir := filepath.Join(t.TempDir(), "data")

	if _, err := LoadToken(dir, ""); err == nil || !strings.Contains(err.Error(), "admin.token") {
		t.Errorf("LoadToken before the first start: %v", err)
	}
	tok, err := LoadOrCreateToken(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, TokenFileName)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("generated token file mode %#o, want 0600", st.Mode().Perm())
	}
	if len(tok) < 40 {
		t.Errorf("generated token %d characters", len(tok))
	}
	again, err := LoadOrCreateToken(dir, "")
	if err != nil || again != tok {
		t.Errorf("second start made a new token (%v)", err)
	}
	if cli, err := LoadToken(dir, ""); err != nil || cli != tok {
		t.Errorf("LoadToken = %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("data dir holds %d files, want only admin.token", len(entries))
	}

	// A token file others can read is refused, with the fix.
	loose := filepath.Join(t.TempDir(), "loose.token")
	os.WriteFile(loose, []byte("loose-token-0123456789abcdef\n"), 0o644)
	os.Chmod(loose, 0o644)
	for _, f := range []func(string, string) (string, error){LoadOrCreateToken, LoadToken} {
		_, err = f(dir, loose)
		if err == nil || !strings.Contains(err.Error(), "chmod 600 "+loose) || !strings.Contains(err.Error(), "0644") {
			t.Errorf("0644 token file: %v", err)
		}
	}
	os.Chmod(path, 0o640)
	if _, err := LoadOrCreateToken(dir, ""); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("0640 generated file: %v", err)
	}
	os.Chmod(path, 0o600)

	// A named file wins over the env and must exist; it is never created.
	named := filepath.Join(t.TempDir(), "named.token")
	if _, err := LoadOrCreateToken(dir, named); err == nil {
		t.Error("missing named token file was accepted")
	}
	if _, err := os.Stat(named); err == nil {
		t.Error("named token file was created")
	}
	os.WriteFile(named, []byte("named-token-0123456789abcdef\n"), 0o600)
	t.Setenv(TokenEnv, "env-token-0123456789abcdef")
	if got, err := LoadToken(dir, named); err != nil || got != "named-token-0123456789abcdef" {
		t.Errorf("named file: %q %v", got, err)
	}
	// Without a named file the env wins over the data dir's file.
	if got, err := LoadOrCreateToken(dir, ""); err != nil || got != "env-token-0123456789abcdef" {
		t.Errorf("env: %q %v", got, err)
	}
	t.Setenv(TokenEnv, "short")
	if _, err := LoadToken(dir, ""); err == nil || !strings.Contains(err.Error(), TokenEnv) {
		t.Errorf("short env token: %v", err)
	}
	short := filepath.Join(t.TempDir(), "short.token")
	os.WriteFile(short, []byte("abc\n"), 0o600)
	if _, err := LoadToken(dir, short); err == nil {
		t.Error("3-character token file accepted")
	}
}
