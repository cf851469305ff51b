package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/testenv"
)

var dasBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "das-e2e")
	if err != nil {
		panic(err)
	}
	dasBin = filepath.Join(dir, "das")
	out, err := exec.Command("go", "build", "-race", "-o", dasBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building das: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

func das(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	cmd := exec.Command(dasBin, args...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("das %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// consumed decodes das consume's output.
func consumed(t *testing.T, out string) []event.Event {
	t.Helper()
	var evs []event.Event
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var e event.Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("consume printed a line that is not an event: %q: %v", l, err)
		}
		evs = append(evs, e)
	}
	return evs
}

func queries(prefix string, from, n int) string {
	var b strings.Builder
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&b, `{"command":"QUERY","dbUserName":"app","sessionId":"7","statementId":%d,"commandText":"%s %d"}`+"\n", i, prefix, i)
	}
	return b.String()
}

func TestIngestConsumeVerify(t *testing.T) {
	data := t.TempDir()
	examples, err := os.ReadFile("../../examples/events.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	r := das(t, bytes.NewReader(examples), "ingest", "--data-dir", data)
	if r.code != 0 {
		t.Fatalf("ingest: %d %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, `"acked":5}`) {
		t.Fatalf("ingest did not acknowledge 5 events: %s", r.stdout)
	}
	st, err := os.Stat(filepath.Join(data, "kms", "master.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("local master key: %v mode %v, want 0600", err, st.Mode())
	}

	r = das(t, nil, "consume", "--from", data)
	if r.code != 0 {
		t.Fatalf("consume: %d %s", r.code, r.stderr)
	}
	evs := consumed(t, r.stdout)
	if len(evs) != 5 {
		t.Fatalf("consume printed %d events, want 5:\n%s", len(evs), r.stdout)
	}
	cmds := []string{"CONNECT", "QUERY", "QUERY", "FAILED_CONNECT", "DISCONNECT"}
	for i, e := range evs {
		if e.Command != cmds[i] {
			t.Errorf("event %d is %s, want %s", i, e.Command, cmds[i])
		}
		if !e.Extra.Has("dasSeq") {
			t.Errorf("event %d is not tagged with its record's sequence", i)
		}
	}
	if strings.Contains(r.stdout, "s3cret") {
		t.Fatal("a password reached the stream")
	}
	if evs[3].ExitCode != "1045" || evs[3].DBUserName != "root" {
		t.Fatalf("failed login lost its details: %+v", evs[3])
	}

	r = das(t, nil, "consume", "--from", data, "--command", "failed_connect")
	if n := len(consumed(t, r.stdout)); n != 1 {
		t.Fatalf("--command filter printed %d events", n)
	}
	r = das(t, nil, "consume", "--from", data, "--user", "admin")
	if n := len(consumed(t, r.stdout)); n != 1 {
		t.Fatalf("--user filter printed %d events", n)
	}

	r = das(t, nil, "verify", "--from", data)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "intact: stream cluster-") {
		t.Fatalf("verify: %d %q %s", r.code, r.stdout, r.stderr)
	}
}

// TestCrashAndRestart is the records issue's acceptance test: a writer is
// killed with SIGKILL mid-stream, a torn record is left at the tail as a crash
// mid-write leaves it, the writer restarts and goes on; consume then prints
// every acknowledged event exactly once and in order, and verify says intact.
func TestCrashAndRestart(t *testing.T) {
	data := t.TempDir()
	const total = 200000
	cmd := exec.Command(dasBin, "ingest", "--data-dir", data, "--batch-max-events", "64", "--batch-linger", "1ms", "--log-segment-bytes", "16KiB")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		// The writer is killed long before all of this is read.
		io.Copy(stdin, strings.NewReader(queries("SELECT first", 0, total)))
		stdin.Close()
	}()
	var acked int
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var a struct{ Seq, Events, Acked int }
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			t.Fatalf("ack line %q: %v", sc.Text(), err)
		}
		acked = a.Acked
		if acked >= 5000 {
			break
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if acked < 5000 || acked >= total {
		t.Fatalf("acked %d before the kill; the test needs a mid-stream kill", acked)
	}

	// A crash in the middle of a write leaves half a record behind.
	segs, _ := filepath.Glob(filepath.Join(data, "stream", "*.log"))
	sort.Strings(segs)
	if len(segs) < 2 {
		t.Fatalf("want rotation across segments, got %v", segs)
	}
	f, err := os.OpenFile(segs[len(segs)-1], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"type":"DatabaseActivityMonitoringRecords","version":"1.2","databaseActivityEv`)
	f.Close()

	r := das(t, strings.NewReader(queries("SELECT second", 0, 1000)), "ingest", "--data-dir", data)
	if r.code != 0 {
		t.Fatalf("restart: %d %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "torn") {
		t.Errorf("the restarted writer did not say it cut a torn record: %s", r.stderr)
	}

	r = das(t, nil, "consume", "--from", data)
	if r.code != 0 {
		t.Fatalf("consume: %d %s", r.code, r.stderr)
	}
	evs := consumed(t, r.stdout)
	first := 0
	for first < len(evs) && strings.HasPrefix(evs[first].CommandText, "SELECT first") {
		if want := fmt.Sprintf("SELECT first %d", first); evs[first].CommandText != want {
			t.Fatalf("event %d is %q, want %q: lost, duplicated or reordered", first, evs[first].CommandText, want)
		}
		first++
	}
	// Events made durable after the last ack was printed may also be there;
	// every acknowledged one must be.
	if first < acked {
		t.Fatalf("only %d of %d acknowledged events survived the crash", first, acked)
	}
	rest := evs[first:]
	if len(rest) != 1000 {
		t.Fatalf("after the restart %d events, want 1000", len(rest))
	}
	for i, e := range rest {
		if want := fmt.Sprintf("SELECT second %d", i); e.CommandText != want {
			t.Fatalf("event %d after restart is %q, want %q", i, e.CommandText, want)
		}
	}
	t.Logf("acked %d before SIGKILL, %d durable; %d events in all", acked, first, len(evs))

	r = das(t, nil, "verify", "--from", data)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "intact:") {
		t.Fatalf("verify after crash: %d %q %s", r.code, r.stdout, r.stderr)
	}
}

// tamper rewrites the newest segment's lines.
func tamper(t *testing.T, data string, edit func(lines []string) []string) {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(data, "stream", "*.log"))
	sort.Strings(segs)
	seg := segs[len(segs)-1]
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	lines = edit(lines)
	if err := os.WriteFile(seg, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyNamesTheBreak(t *testing.T) {
	base := t.TempDir()
	r := das(t, strings.NewReader(queries("SELECT", 0, 10)), "ingest", "--data-dir", base, "--batch-max-events", "1", "--batch-linger", "0s")
	if r.code != 0 {
		t.Fatalf("ingest: %s", r.stderr)
	}
	other := t.TempDir()
	r = das(t, strings.NewReader(queries("SELECT", 0, 3)), "ingest", "--data-dir", other, "--batch-max-events", "1", "--batch-linger", "0s")
	if r.code != 0 {
		t.Fatalf("ingest: %s", r.stderr)
	}
	otherLines, _ := os.ReadFile(mustGlob(t, filepath.Join(other, "stream", "*.log")))
	foreign := strings.Split(string(otherLines), "\n")[1]

	alter := func(l string) string {
		// Flip one base64 character inside the encrypted events.
		i := strings.Index(l, `"databaseActivityEvents":"`) + 200
		c := byte('A')
		if l[i] == 'A' {
			c = 'B'
		}
		return l[:i] + string(c) + l[i+1:]
	}
	tests := []struct {
		name  string
		edit  func([]string) []string
		chain bool // --chain-only
		want  string
	}{
		{"missing record", func(l []string) []string { return append(l[:4:4], l[5:]...) }, false, "missing seq 5"},
		{"missing range", func(l []string) []string { return append(l[:2:2], l[6:]...) }, false, "missing seq 3..6 (4 records)"},
		{"duplicate", func(l []string) []string { return append(l[:5:5], append([]string{l[3]}, l[5:]...)...) }, false, "seq 4 after seq 5: duplicated or reordered"},
		{"reordered", func(l []string) []string { l[6], l[7] = l[7], l[6]; return l }, false, "duplicated or reordered"},
		{"altered", func(l []string) []string { l[2] = alter(l[2]); return l }, true, "seq 3 altered"},
		{"altered newest", func(l []string) []string { l[9] = alter(l[9]); return l }, false, "not authentic"},
		{"outer fields moved", func(l []string) []string {
			l[9] = strings.Replace(l[9], `"dasSeq":10`, `"dasSeq":11`, 1)
			return l
		}, false, "do not match their sealed copy"},
		{"other stream", func(l []string) []string { return append(l, foreign) }, false, "record of another stream"},
		{"corrupted line", func(l []string) []string { l[1] = "{not json"; return l }, true, "corrupted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := t.TempDir()
			if err := os.CopyFS(data, os.DirFS(base)); err != nil {
				t.Fatal(err)
			}
			// CopyFS does not keep modes; the key must stay private.
			os.Chmod(filepath.Join(data, "kms", "master.key"), 0o600)
			tamper(t, data, tt.edit)
			args := []string{"verify", "--from", data}
			if tt.chain {
				args = append(args, "--chain-only")
			}
			r := das(t, nil, args...)
			if r.code == 0 || !strings.HasPrefix(r.stdout, "BROKEN:") || !strings.Contains(r.stdout, tt.want) {
				t.Fatalf("verify = %d %q (stderr %s), want BROKEN naming %q", r.code, r.stdout, r.stderr, tt.want)
			}
		})
	}
}

func mustGlob(t *testing.T, pattern string) string {
	m, _ := filepath.Glob(pattern)
	if len(m) == 0 {
		t.Fatalf("nothing matches %s", pattern)
	}
	return m[0]
}

func TestConsumeReportsWhatItCannotRead(t *testing.T) {
	data := t.TempDir()
	r := das(t, strings.NewReader(queries("SELECT", 0, 5)), "ingest", "--data-dir", data, "--batch-max-events", "1", "--batch-linger", "0s")
	if r.code != 0 {
		t.Fatalf("ingest: %s", r.stderr)
	}
	tamper(t, data, func(l []string) []string {
		l[2] = strings.Replace(l[2], `"key":"`, `"key":"AAAA`, 1)
		l[3] = "{garbage"
		return l
	})
	r = das(t, nil, "consume", "--from", data)
	if r.code == 0 {
		t.Fatal("consume exited 0 with an unreadable record")
	}
	if !strings.Contains(r.stderr, "seq 3 (00000000000000000001.log offset") || !strings.Contains(r.stderr, "data key cannot be decrypted") {
		t.Fatalf("consume did not name the record: %s", r.stderr)
	}
	if !strings.Contains(r.stderr, "seq 4 (00000000000000000001.log offset") || !strings.Contains(r.stderr, "not a DAS record") {
		t.Fatalf("consume did not name the corrupted line: %s", r.stderr)
	}
	if !strings.Contains(r.stderr, "2 record(s) could not be read") {
		t.Fatalf("consume did not sum up: %s", r.stderr)
	}
	if n := len(consumed(t, r.stdout)); n != 3 {
		t.Fatalf("consume printed %d events, want the 3 readable ones", n)
	}

	// Another data dir's key cannot open this stream.
	wrong := t.TempDir()
	das(t, strings.NewReader(queries("x", 0, 1)), "ingest", "--data-dir", wrong)
	r = das(t, nil, "consume", "--from", filepath.Join(data, "stream"), "--data-dir", wrong)
	if r.code == 0 || !strings.Contains(r.stderr, "wrong local master key") {
		t.Fatalf("wrong key: %d %s", r.code, r.stderr)
	}
}

func TestBadConfigNamesTheSetting(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "das.yaml")
	os.WriteFile(cfg, []byte("data_dir: /tmp/x\nkms_keyid: alias/a\n"), 0o600)
	r := das(t, nil, "consume", "--config", cfg)
	if r.code != 2 || !strings.Contains(r.stderr, `unknown setting "kms_keyid" (did you mean "kms_key_id"?)`) {
		t.Fatalf("got %d %s", r.code, r.stderr)
	}
}

func TestFollowSeesNewRecords(t *testing.T) {
	data := t.TempDir()
	das(t, strings.NewReader(queries("SELECT early", 0, 3)), "ingest", "--data-dir", data)
	cmd := exec.Command(dasBin, "consume", "--from", data, "--follow")
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	das(t, strings.NewReader(queries("SELECT late", 0, 2)), "ingest", "--data-dir", data)
	var got []string
	timeout := time.After(20 * time.Second)
	for len(got) < 5 {
		select {
		case l := <-lines:
			got = append(got, l)
		case <-timeout:
			t.Fatalf("follow printed %d of 5 events", len(got))
		}
	}
	if !strings.Contains(got[4], "SELECT late 1") {
		t.Fatalf("last followed event: %s", got[4])
	}
}

// TestAWSKMS runs the same commands against a real KMS API server, the way a
// VPC endpoint is addressed: --kms aws with --kms-endpoint.
func TestAWSKMS(t *testing.T) {
	endpoint, _ := testenv.LocalKMS(t)
	data := t.TempDir()
	kmsArgs := []string{"--kms", "aws", "--kms-endpoint", endpoint, "--kms-key-id", testenv.KeyAlias, "--kms-region", testenv.Region}
	r := das(t, strings.NewReader(queries("SELECT aws", 0, 50)), append([]string{"ingest", "--data-dir", data}, kmsArgs...)...)
	if r.code != 0 {
		t.Fatalf("ingest: %d %s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(data, "kms", "master.key")); err == nil {
		t.Fatal("a local master key was made although the stream uses AWS KMS")
	}
	r = das(t, nil, append([]string{"consume", "--from", data}, kmsArgs...)...)
	if r.code != 0 || len(consumed(t, r.stdout)) != 50 {
		t.Fatalf("consume: %d, %d events, %s", r.code, len(consumed(t, r.stdout)), r.stderr)
	}
	r = das(t, nil, append([]string{"verify", "--from", data}, kmsArgs...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "50 events, every record decrypted") {
		t.Fatalf("verify: %d %q %s", r.code, r.stdout, r.stderr)
	}
	// A file of records, as saved from a Kinesis stream, with the resource id
	// given: how AWS's own DAS records are read.
	seg := mustGlob(t, filepath.Join(data, "stream", "*.log"))
	id, _ := os.ReadFile(filepath.Join(data, "stream-id"))
	r = das(t, nil, append([]string{"consume", "--from", seg, "--stream-id", strings.TrimSpace(string(id))}, kmsArgs...)...)
	if r.code != 0 || len(consumed(t, r.stdout)) != 50 {
		t.Fatalf("consume of a record file: %d %s", r.code, r.stderr)
	}
	// Records of one stream are not read as another's.
	r = das(t, nil, append([]string{"consume", "--from", seg, "--stream-id", "cluster-NOTTHISONE"}, kmsArgs...)...)
	if r.code == 0 || !strings.Contains(r.stderr, "another stream") {
		t.Fatalf("wrong stream id: %d %s", r.code, r.stderr)
	}
}

// TestSuites: every --suite das offers seals records that consume reads and
// verify authenticates; the suite is the one asked for.
func TestSuites(t *testing.T) {
	examples, err := os.ReadFile("../../examples/events.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	for suite, id := range map[string]uint16{"das": 0x0378, "committing": 0x0578, "unsigned": 0x0478} {
		t.Run(suite, func(t *testing.T) {
			data := t.TempDir()
			if r := das(t, bytes.NewReader(examples), "ingest", "--data-dir", data, "--suite", suite); r.code != 0 {
				t.Fatalf("ingest: %d %s", r.code, r.stderr)
			}
			if r := das(t, nil, "consume", "--from", data); r.code != 0 || len(consumed(t, r.stdout)) != 5 {
				t.Fatalf("consume: %d %s %s", r.code, r.stdout, r.stderr)
			}
			if r := das(t, nil, "verify", "--from", data); r.code != 0 || !strings.HasPrefix(r.stdout, "intact:") {
				t.Fatalf("verify: %d %s %s", r.code, r.stdout, r.stderr)
			}
			// The ESDK message's first bytes: version, then (format 1: type,
			// then) the suite id.
			line, _ := os.ReadFile(firstSegment(t, data))
			var rec struct {
				Events string `json:"databaseActivityEvents"`
			}
			json.Unmarshal(bytes.SplitN(line, []byte("\n"), 2)[0], &rec)
			msg, err := base64.StdEncoding.DecodeString(rec.Events)
			if err != nil || len(msg) < 4 {
				t.Fatalf("record payload: %v", err)
			}
			got := binary.BigEndian.Uint16(msg[1:3])
			if msg[0] == 1 {
				got = binary.BigEndian.Uint16(msg[2:4])
			}
			if got != id {
				t.Fatalf("suite %#04x, want %#04x", got, id)
			}
		})
	}
}

// firstSegment returns the path of the stream log's first segment in data.
func firstSegment(t *testing.T, data string) string {
	t.Helper()
	var first string
	filepath.WalkDir(data, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".log") && first == "" {
			first = p
		}
		return nil
	})
	if first == "" {
		t.Fatalf("no log segment under %s", data)
	}
	return first
}
