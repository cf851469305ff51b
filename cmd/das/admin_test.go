package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/das-mysql/das/internal/admin"
)

// verbController is a one-stream admin.Controller for the CLI verbs' tests.
type verbController struct {
	mu    sync.Mutex
	st    admin.StreamStatus
	reqs  []admin.StartRequest
	stops int
}

func (f *verbController) StartActivityStream(_ context.Context, r admin.StartRequest) (admin.StreamStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, r)
	if f.st.Status == admin.StatusStarted {
		if r.Mode != "" && r.Mode != f.st.Mode {
			return f.st, fmt.Errorf("%w: started in %s mode; stop the stream to change its mode", admin.ErrConflict, f.st.Mode)
		}
		return f.st, admin.ErrNoChange
	}
	f.st.Status, f.st.Reason = admin.StatusStarted, ""
	if r.Mode != "" {
		f.st.Mode = r.Mode
	}
	if r.KmsKeyId != "" {
		f.st.KmsKeyId = r.KmsKeyId
	}
	t := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	f.st.StartedAt = &t
	return f.st, nil
}

func (f *verbController) StopActivityStream(context.Context, admin.StopRequest) (admin.StreamStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stops++
	if f.st.Status == admin.StatusStopped {
		return f.st, admin.ErrNoChange
	}
	f.st.Status, f.st.Reason, f.st.StartedAt = admin.StatusStopped, "requested", nil
	return f.st, nil
}

func (f *verbController) DescribeActivityStreams(context.Context) ([]admin.StreamStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return []admin.StreamStatus{f.st}, nil
}

// adminFixture serves the admin API with a fake controller and a token
// generated into a data dir, as das serve would.
func adminFixture(t *testing.T) (ctl *verbController, addr, dataDir string) {
	t.Helper()
	dataDir = t.TempDir()
	t.Setenv(admin.TokenEnv, "")
	os.Unsetenv(admin.TokenEnv)
	tok, err := admin.LoadOrCreateToken(dataDir, "")
	if err != nil {
		t.Fatal(err)
	}
	ctl = &verbController{st: admin.StreamStatus{StreamId: "cluster-CLITEST", Status: admin.StatusStopped, Mode: "async",
		KmsKeyId: "local", Sink: "local:" + filepath.Join(dataDir, "stream"), Policy: admin.PolicyFailOpen,
		Counters: map[string]uint64{"records": 12, "events_dropped": 0}}}
	h, err := admin.NewServer(admin.ServerOptions{Token: tok, Controller: ctl})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return ctl, strings.TrimPrefix(srv.URL, "http://"), dataDir
}

type verbResult struct {
	out, err string
	code     int
}

func runVerb(t *testing.T, args ...string) verbResult {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, nil, &out, &errb)
	return verbResult{out.String(), errb.String(), code}
}

func TestActivityStreamVerbs(t *testing.T) {
	ctl, addr, dataDir := adminFixture(t)
	common := []string{"--admin", addr, "--data-dir", dataDir}

	r := runVerb(t, append([]string{"describe-activity-streams"}, common...)...)
	if r.code != 0 || !strings.Contains(r.out, "ACTIVITYSTREAM  cluster-CLITEST\n") || !strings.Contains(r.out, "    Status              stopped\n") ||
		!strings.Contains(r.out, "records                 12") {
		t.Fatalf("describe: %+v", r)
	}

	r = runVerb(t, append([]string{"start-activity-stream", "--mode", "sync", "--kms-key-id", "alias/das-test", "--apply-immediately"}, common...)...)
	if r.code != 0 || !strings.Contains(r.out, "Status              started") || !strings.Contains(r.out, "Mode                sync") ||
		!strings.Contains(r.out, "KmsKeyId            alias/das-test") || !strings.Contains(r.out, "StartedAt           2025-03-04T05:06:07Z") {
		t.Fatalf("start: %+v", r)
	}
	if got := ctl.reqs[0]; got != (admin.StartRequest{Mode: "sync", KmsKeyId: "alias/das-test", ApplyImmediately: true}) {
		t.Errorf("start request = %+v", got)
	}

	// Starting again: a clear idempotent answer, status 0.
	r = runVerb(t, append([]string{"start-activity-stream"}, common...)...)
	if r.code != 0 || !strings.HasPrefix(r.out, "The stream is already started; nothing changed.\n") {
		t.Errorf("second start: %+v", r)
	}
	if got := ctl.reqs[1]; got != (admin.StartRequest{}) {
		t.Errorf("start without flags sent %+v; want nothing but what was given", got)
	}
	// A conflicting start fails with the controller's reason.
	r = runVerb(t, append([]string{"start-activity-stream", "--mode", "async"}, common...)...)
	if r.code != 1 || !strings.Contains(r.err, "stop the stream to change its mode") || !strings.Contains(r.err, "409") {
		t.Errorf("conflicting start: %+v", r)
	}

	r = runVerb(t, append([]string{"describe-activity-streams", "--json"}, common...)...)
	var desc admin.DescribeResponse
	if r.code != 0 || json.Unmarshal([]byte(r.out), &desc) != nil || len(desc.ActivityStreams) != 1 ||
		desc.ActivityStreams[0].Status != "started" || desc.ActivityStreams[0].Mode != "sync" {
		t.Errorf("describe --json: %+v", r)
	}

	r = runVerb(t, append([]string{"stop-activity-stream", "--json"}, common...)...)
	var st admin.StreamStatus
	if r.code != 0 || json.Unmarshal([]byte(r.out), &st) != nil || st.Status != "stopped" || st.Reason != "requested" {
		t.Errorf("stop --json: %+v", r)
	}
	r = runVerb(t, append([]string{"stop-activity-stream"}, common...)...)
	if r.code != 0 || !strings.Contains(r.out, "already stopped") {
		t.Errorf("second stop: %+v", r)
	}
	if ctl.stops != 2 {
		t.Errorf("controller saw %d stops, want 2", ctl.stops)
	}
}

func TestActivityStreamVerbsTokenAndErrors(t *testing.T) {
	ctl, addr, dataDir := adminFixture(t)
	tok, _ := os.ReadFile(filepath.Join(dataDir, admin.TokenFileName))

	// The token from the environment, with no data dir holding one.
	t.Setenv(admin.TokenEnv, strings.TrimSpace(string(tok)))
	if r := runVerb(t, "describe-activity-streams", "--admin", "http://"+addr, "--data-dir", t.TempDir()); r.code != 0 {
		t.Errorf("token from env: %+v", r)
	}
	// A wrong token: 401, status 1, says where the token came from; nothing changed.
	t.Setenv(admin.TokenEnv, "wrong-token-0123456789abcdef")
	r := runVerb(t, "start-activity-stream", "--admin", addr, "--data-dir", dataDir)
	if r.code != 1 || !strings.Contains(r.err, "401") || !strings.Contains(r.err, "$DAS_ADMIN_TOKEN") {
		t.Errorf("wrong token: %+v", r)
	}
	if len(ctl.reqs) != 0 {
		t.Errorf("controller called with a wrong token")
	}
	os.Unsetenv(admin.TokenEnv)

	// A token file named by flag, and one that others may read.
	named := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(named, tok, 0o600)
	if r := runVerb(t, "describe-activity-streams", "--admin", addr, "--admin-token-file", named); r.code != 0 {
		t.Errorf("--admin-token-file: %+v", r)
	}
	os.Chmod(named, 0o644)
	r = runVerb(t, "describe-activity-streams", "--admin", addr, "--admin-token-file", named)
	if r.code != 1 || !strings.Contains(r.err, "chmod 600 "+named) {
		t.Errorf("0644 token file: %+v", r)
	}

	// No token anywhere: says where it looked.
	empty := t.TempDir()
	r = runVerb(t, "describe-activity-streams", "--admin", addr, "--data-dir", empty)
	if r.code != 1 || !strings.Contains(r.err, filepath.Join(empty, "admin.token")) {
		t.Errorf("no token: %+v", r)
	}
	// Nothing listening: says so.
	r = runVerb(t, "describe-activity-streams", "--admin", "127.0.0.1:1", "--data-dir", dataDir)
	if r.code != 1 || !strings.Contains(r.err, "is das serve running") {
		t.Errorf("nothing listening: %+v", r)
	}
	// A bad mode never reaches the API.
	r = runVerb(t, "start-activity-stream", "--admin", addr, "--data-dir", dataDir, "--mode", "fast")
	if r.code != 2 || !strings.Contains(r.err, "mode") {
		t.Errorf("bad mode: %+v", r)
	}
	if len(ctl.reqs) != 0 {
		t.Errorf("controller called: %+v", ctl.reqs)
	}
}
