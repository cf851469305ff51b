package testenv

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// KinesaliteVersion is the kinesalite (npm) release the tests are written
// against; scripts/install-test-deps.sh installs it into KinesaliteDir.
const KinesaliteVersion = "3.3.3"

// kinesaliteMain starts kinesalite on 127.0.0.1 and a port the kernel picks.
// kinesalite's own CLI cannot do either (it listens on every interface, and
// treats --port 0 as "use 4567"), so the test harness drives its library. It
// exits when its stdin closes, that is when the test process goes away.
const kinesaliteMain = `'use strict'
const kinesalite = require(process.argv[2])
const server = kinesalite({createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 100})
server.listen(0, '127.0.0.1', function () {
  const a = server.address()
  console.log('kinesalite listening on ' + a.address + ':' + a.port)
})
process.stdin.on('end', function () { process.exit(0) })
process.stdin.resume()
`

var kinesaliteRE = regexp.MustCompile(`kinesalite listening on 127\.0\.0\.1:(\d+)`)

// Kinesalite starts a kinesalite server (a Kinesis API server keeping its
// streams in memory) listening on 127.0.0.1 only, with stream state changes
// (CREATING, DELETING, UPDATING) taking no time, and returns its endpoint
// ("http://127.0.0.1:PORT"). Like LocalKMS it sets dummy AWS credentials for
// the test, so it cannot be used from parallel tests.
func Kinesalite(t testing.TB) (endpoint string) {
	t.Helper()
	node, module := kinesaliteInstall(t)
	AWSCredentials(t)

	dir := t.TempDir()
	main := filepath.Join(dir, "kinesalite-main.js")
	if err := os.WriteFile(main, []byte(kinesaliteMain), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &portLog{re: kinesaliteRE, port: make(chan int, 1)}
	cmd := exec.Command(node, main, module)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	cmd.Dir = dir
	cmd.Stdout = logs
	cmd.Stderr = logs
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start kinesalite: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("kinesalite output:\n%s", logs.String())
		}
	})

	var port int
	select {
	case port = <-logs.port:
	case err := <-exited:
		exited <- err
		t.Fatalf("testenv: kinesalite exited before listening: %v\n%s", err, logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("testenv: kinesalite did not report a port within 20s\n%s", logs.String())
	}
	endpoint = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	waitKinesalite(t, endpoint)
	return endpoint
}

// waitKinesalite polls ListStreams until the server answers.
func waitKinesalite(t testing.TB, endpoint string) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(15 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		req, err := http.NewRequest(http.MethodPost, endpoint+"/", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		req.Header.Set("X-Amz-Target", "Kinesis_20131202.ListStreams")
		// kinesalite wants a signature's shape, and checks nothing more.
		req.Header.Set("X-Amz-Date", time.Now().UTC().Format("20060102T150405Z"))
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDDASTESTLOCALKMS0/20260101/"+Region+
			"/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000")
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("HTTP %d", resp.StatusCode)
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("testenv: kinesalite at %s not ready: %s", endpoint, last)
}

// KinesaliteDir is where scripts/install-test-deps.sh installs kinesalite
// (npm --prefix): $KINESALITE_DIR, else $(go env GOPATH)/das-node.
func KinesaliteDir() string {
	if d := os.Getenv("KINESALITE_DIR"); d != "" {
		return d
	}
	if gopath := goPath(); gopath != "" {
		return filepath.Join(filepath.SplitList(gopath)[0], "das-node")
	}
	return ""
}

// kinesaliteInstall finds node and the kinesalite module directory. Without
// them the test fails under CI=true and is skipped elsewhere.
func kinesaliteInstall(t testing.TB) (node, module string) {
	t.Helper()
	missing := func(what string) {
		msg := fmt.Sprintf("testenv: %s; install with scripts/install-test-deps.sh (npm install --prefix %s kinesalite@%s)",
			what, KinesaliteDir(), KinesaliteVersion)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node (Node.js) not found in PATH")
		return "", ""
	}
	module = filepath.Join(KinesaliteDir(), "node_modules", "kinesalite")
	if _, err := os.Stat(filepath.Join(module, "index.js")); err != nil {
		missing("kinesalite not found at " + module)
		return "", ""
	}
	return node, module
}

// portLog keeps a server's output (bounded) and reports the port that re's
// first group matches, once.
type portLog struct {
	re    *regexp.Regexp
	port  chan int
	mu    sync.Mutex
	buf   strings.Builder
	found bool
}

func (w *portLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if room := maxLog - w.buf.Len(); room > 0 {
		w.buf.Write(p[:min(len(p), room)])
	}
	if !w.found {
		if m := w.re.FindStringSubmatch(w.buf.String()); m != nil {
			if port, err := strconv.Atoi(m[1]); err == nil {
				w.found = true
				w.port <- port
			}
		}
	}
	return len(p), nil
}

func (w *portLog) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
