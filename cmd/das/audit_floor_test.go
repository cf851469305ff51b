package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/das-mysql/das/internal/auditlog"
	"github.com/das-mysql/das/internal/config"
	"github.com/das-mysql/das/internal/testenv"
	"github.com/das-mysql/das/pkg/dasrecord"
)

// TestGapFree: the floor counts records only up to the first one missing,
// whatever order the sink holds them in.
func TestGapFree(t *testing.T) {
	line := func(id string, seq uint64) []byte {
		r := dasrecord.Record{Type: dasrecord.RecordType, Version: "1.2", DatabaseActivityEvents: "ZXY=", Key: "a2V5", StreamID: id, Seq: seq}
		return r.AppendJSON(nil)
	}
	const id = "cluster-MINE"
	for _, tc := range []struct {
		name    string
		in      []uint64 // seqs of id, in the sink's order; 0 is another stream's record
		want    []uint64
		missing uint64
	}{
		{"in order", []uint64{7, 8, 9}, []uint64{7, 8, 9}, 0},
		{"landed out of order", []uint64{7, 9, 8, 10}, []uint64{7, 8, 9, 10}, 0},
		{"a retried put twice", []uint64{7, 8, 8, 9}, []uint64{7, 8, 8, 9}, 0},
		{"one missing", []uint64{7, 8, 10, 11}, []uint64{7, 8}, 9},
		{"missing after a reorder", []uint64{7, 9, 11, 8}, []uint64{7, 8, 9}, 10},
		{"another stream's records", []uint64{0, 7, 0, 8}, []uint64{7, 8}, 0},
		{"none", nil, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var in [][]byte
			for _, s := range tc.in {
				if s == 0 {
					in = append(in, line("cluster-OTHER", 8))
				} else {
					in = append(in, line(id, s))
				}
			}
			got, missing := gapFree(in, id)
			var seqs []uint64
			for _, l := range got {
				r, err := dasrecord.Parse(l)
				if err != nil || r.StreamID != id {
					t.Fatalf("gapFree returned %q (%v)", l, err)
				}
				seqs = append(seqs, r.Seq)
			}
			if !slices.Equal(seqs, tc.want) || missing != tc.missing {
				t.Fatalf("gapFree(%v) = %v, missing %d; want %v, missing %d", tc.in, seqs, missing, tc.want, tc.missing)
			}
		})
	}
}

// failingSink is a sink whose read-back fails, or hangs until its context ends.
type failingSink struct{ err error }

func (failingSink) Last() (uint64, []byte)                  { return 0, nil }
func (failingSink) AppendAsync(uint64, []byte) func() error { return func() error { return nil } }
func (f failingSink) Newest(ctx context.Context, _ int) ([][]byte, error) {
	if f.err != nil {
		return nil, f.err
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestAuditFloorFallsBack: a sink that cannot be read back leaves the
// checkpoints alone in charge, says so, and does not hold the start up.
func TestAuditFloorFallsBack(t *testing.T) {
	for _, tc := range []struct {
		name string
		sink failingSink
		want string
	}{
		{"read fails", failingSink{errors.New("no broker answered")}, "no broker answered"},
		{"read hangs", failingSink{}, "context deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			logger := slog.New(slog.NewTextHandler(&logs, nil))
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			floor := auditFloor(ctx, config.Config{Sink: "kafka://b/t"}, nil, tc.sink, "cluster-X", logger)
			if floor != nil {
				t.Errorf("floor %v from a sink that was not read", floor)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("auditFloor took %s", d)
			}
			if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "resuming from the checkpoints alone") || !strings.Contains(l, tc.want) {
				t.Errorf("log does not warn of the fallback and say why (%q):\n%s", tc.want, l)
			}
		})
	}
}

// TestServeAuditFloorSinks is issue #6 for every sink: das serve follows a
// server_audit file, is killed with SIGKILL once it has made lines durable
// that its checkpoint does not cover yet, and restarts; every line is then
// in the stream exactly once. The checkpoint is written at most once a
// second, so a kill lands in that window only by chance: the test rewinds
// the checkpoint to where it was before those lines instead, which is the
// state such a kill leaves (the checkpoint behind what the sink holds).
func TestServeAuditFloorSinks(t *testing.T) {
	for _, tc := range []struct {
		name string
		// sink returns the --sink URL and what das consume reads back.
		sink func(t *testing.T, data string) (sink string, from func() string)
	}{
		{"local", func(t *testing.T, data string) (string, func() string) {
			return "local", func() string { return data }
		}},
		{"kafka", func(t *testing.T, data string) (string, func() string) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(2))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			url := "kafka://" + strings.Join(c.ListenAddrs(), ",") + "/das-activity"
			return url, func() string { return url }
		}},
		{"kinesis", func(t *testing.T, data string) (string, func() string) {
			endpoint := testenv.Kinesalite(t)
			q := "?region=" + testenv.Region + "&endpoint=" + endpoint
			return "kinesis://" + q, func() string {
				id, err := os.ReadFile(filepath.Join(data, "stream-id"))
				if err != nil {
					t.Fatal(err)
				}
				return "kinesis://aws-rds-das-" + strings.TrimSpace(string(id)) + q
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			logPath := filepath.Join(t.TempDir(), "server_audit.log")
			sink, from := tc.sink(t, data)
			args := []string{"--data-dir", data, "--audit-log", logPath, "--sink", sink}
			var stderrs []string
			defer func() {
				if t.Failed() {
					for i, s := range stderrs {
						t.Logf("das serve #%d stderr:\n%s", i+1, s)
					}
				}
			}()

			// 1. Lines 0-19, das reads them and stops cleanly: the
			// checkpoint covers them.
			writeAuditLines(t, logPath, 0, 20)
			srv := startAuditServe(t, args...)
			waitAuditDurable(t, srv, data, 20)
			code := srv.stop(t)
			stderrs = append(stderrs, srv.stderr.String())
			if code != 0 {
				t.Fatalf("das serve exited %d", code)
			}
			cp := saveFiles(t, filepath.Join(data, "auditlog"))

			// 2. Lines 20-49 become durable, then SIGKILL, with the
			// checkpoint still where step 1 left it.
			srv = startAuditServe(t, args...)
			writeAuditLines(t, logPath, 20, 30)
			waitAuditDurable(t, srv, data, 30)
			srv.kill()
			stderrs = append(stderrs, srv.stderr.String())
			restoreFiles(t, cp)

			// 3. The restarted das recovers the floor from the sink, and
			// goes on with lines 50-59 only.
			srv = startAuditServe(t, args...)
			writeAuditLines(t, logPath, 50, 10)
			waitAuditDurable(t, srv, data, 10)
			code = srv.stop(t)
			stderrs = append(stderrs, srv.stderr.String())
			if code != 0 {
				t.Fatalf("das serve exited %d", code)
			}
			if n := floorPositions(t, srv.stderr.String()); n < 30 {
				t.Errorf("the restarted das recovered %d positions from the stream, want at least the 30 lines its checkpoint missed", n)
			}

			r := das(t, nil, "consume", "--from", from(), "--data-dir", data)
			if r.code != 0 {
				t.Fatalf("consume: %d %s", r.code, r.stderr)
			}
			got := map[string]int{}
			for _, e := range consumed(t, r.stdout) {
				if _, ok := auditlog.PositionOf(&e); ok {
					got[e.CommandText]++
				}
			}
			for i := range 60 {
				if n := got[auditQuery(i)]; n != 1 {
					t.Errorf("line %d is in the stream %d times, want once", i, n)
				}
			}
			if len(got) != 60 {
				t.Errorf("the stream holds %d distinct audit lines, the file 60", len(got))
			}
		})
	}
}

func auditQuery(i int) string { return fmt.Sprintf("SELECT 'floor-%d'", i) }

// writeAuditLines appends n server_audit QUERY lines, from, from+1, ...
func writeAuditLines(t *testing.T, path string, from, n int) {
	t.Helper()
	var b strings.Builder
	for i := from; i < from+n; i++ {
		q := strings.ReplaceAll(auditQuery(i), "'", `\'`)
		fmt.Fprintf(&b, "20260101 10:00:%02d,dbhost,app,10.0.0.9,7,%d,QUERY,shop,'%s',0\n", i%60, i+1, q)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(b.String()); err != nil {
		t.Fatal(err)
	}
}

// waitAuditDurable waits until das has read at least n lines, and the whole
// file, and every event it took is durable.
func waitAuditDurable(t *testing.T, s *auditServe, data string, n uint64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		c := s.counters(t, data)
		if c["audit_lines"] >= n && c["audit_lag_bytes"] == 0 && c["events_durable"] >= c["events_in"] {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %d audit lines to be durable: %v\n%s", n, c, s.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// floorPositions is what das serve's log says it recovered from the stream.
func floorPositions(t *testing.T, stderr string) int {
	t.Helper()
	for l := range strings.SplitSeq(stderr, "\n") {
		var m struct {
			Msg       string
			Positions *int
		}
		if json.Unmarshal([]byte(l), &m) == nil && strings.HasPrefix(m.Msg, "audit log floor: positions recovered") && m.Positions != nil {
			return *m.Positions
		}
	}
	t.Errorf("das serve did not log the positions it recovered from the stream")
	return 0
}

// saveFiles keeps the files under dir.
func saveFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		files[p] = b
		return err
	})
	if err != nil || len(files) == 0 {
		t.Fatalf("saving %s: %d files, %v", dir, len(files), err)
	}
	return files
}

func restoreFiles(t *testing.T, files map[string][]byte) {
	t.Helper()
	for p, b := range files {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
