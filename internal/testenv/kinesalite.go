package testenv

import (
	"fmt"
	"io"
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

// kinesaliteMain starts kinesalite on 127.0.0.1 and the port given (0: one
// the kernel picks), keeping its streams in memory, or in a LevelDB at the
// path given (argv[4], "" for memory). kinesalite's own CLI cannot listen on
// one address only, and treats --port 0 as "use 4567", so the test harness
// drives its library. It exits when its stdin closes, that is when the test
// process goes away.
const kinesaliteMain = `'use strict'
const kinesalite = require(process.argv[2])
const opts = {createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 100}
if (process.argv[4]) opts.path = process.argv[4]
const server = kinesalite(opts)
server.listen(+process.argv[3], '127.0.0.1', function () {
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
	return StartKinesalite(t, KinesaliteOptions{}).Endpoint
}

// KinesaliteOptions configure StartKinesalite.
type KinesaliteOptions struct {
	// Persist keeps the streams on disk (a LevelDB in the test's temporary
	// directory, through kinesalite's optional leveldown), so that they
	// survive Stop and Start as a Kinesis stream survives an outage of the
	// service. Otherwise kinesalite keeps them in memory, and a restarted
	// server has none.
	Persist bool
}

// KinesaliteServer is a kinesalite process that a test can stop, as a
// crashed or unreachable server, and start again on the same address.
type KinesaliteServer struct {
	// Endpoint is "http://127.0.0.1:PORT", the same across restarts.
	Endpoint string

	t                  testing.TB
	node, module, main string
	dir, path          string
	port               int
	cmd                *exec.Cmd
	stdin              io.Closer
	exited             chan error
	logs               *portLog
}

// StartKinesalite starts kinesalite as Kinesalite does, and returns it for
// the test to stop and start again. The test's cleanup stops it.
func StartKinesalite(t testing.TB, o KinesaliteOptions) *KinesaliteServer {
	t.Helper()
	node, module := kinesaliteInstall(t)
	k := &KinesaliteServer{t: t, node: node, module: module, dir: t.TempDir()}
	if o.Persist {
		leveldown := filepath.Join(filepath.Dir(module), "leveldown", "package.json")
		if _, err := os.Stat(leveldown); err != nil {
			kinesaliteMissing(t, "leveldown (kinesalite's optional dependency, for streams on disk) not found next to "+module)
		}
		k.path = filepath.Join(k.dir, "db")
	}
	AWSCredentials(t)
	k.main = filepath.Join(k.dir, "kinesalite-main.js")
	if err := os.WriteFile(k.main, []byte(kinesaliteMain), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if k.cmd != nil {
			k.kill()
		}
	})
	k.start()
	k.Endpoint = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(k.port))
	waitKinesalite(t, k.Endpoint)
	return k
}

// Stop kills the server, as a crash does, and returns once its port refuses
// connections.
func (k *KinesaliteServer) Stop() {
	k.t.Helper()
	if k.cmd == nil {
		k.t.Fatal("testenv: kinesalite stopped twice")
	}
	k.kill()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(k.port))
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		k.t.Fatalf("testenv: kinesalite still accepts connections at %s after it was killed", addr)
	}
}

// Start starts the stopped server again on its address, with the streams it
// had when they persist.
func (k *KinesaliteServer) Start() {
	k.t.Helper()
	if k.cmd != nil {
		k.t.Fatal("testenv: kinesalite started twice")
	}
	k.start()
	waitKinesalite(k.t, k.Endpoint)
}

func (k *KinesaliteServer) kill() {
	_ = k.cmd.Process.Kill()
	k.stdin.Close()
	<-k.exited
	if k.t.Failed() {
		k.t.Logf("kinesalite output:\n%s", k.logs.String())
	}
	k.cmd = nil
}

// start runs the process on k.port (0 at first: the kernel picks one, kept
// for restarts).
func (k *KinesaliteServer) start() {
	t := k.t
	t.Helper()
	var err error
	for attempt := 0; ; attempt++ {
		if err = k.spawn(); err == nil {
			return
		}
		// The port may linger a moment after a kill.
		if k.port == 0 || attempt == 50 {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (k *KinesaliteServer) spawn() error {
	logs := &portLog{re: kinesaliteRE, port: make(chan int, 1)}
	cmd := exec.Command(k.node, k.main, k.module, strconv.Itoa(k.port), k.path)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + k.dir}
	cmd.Dir = k.dir
	cmd.Stdout = logs
	cmd.Stderr = logs
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("testenv: kinesalite: %w", err)
	}
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testenv: start kinesalite: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case port := <-logs.port:
		if k.port != 0 && port != k.port {
			err = fmt.Errorf("testenv: kinesalite listens on %d, want %d", port, k.port)
		}
		k.port = port
	case err = <-exited:
		err = fmt.Errorf("testenv: kinesalite exited before listening: %v\n%s", err, logs.String())
		return err
	case <-time.After(20 * time.Second):
		err = fmt.Errorf("testenv: kinesalite did not report a port within 20s\n%s", logs.String())
	}
	k.cmd, k.stdin, k.exited, k.logs = cmd, stdin, exited, logs
	if err != nil {
		k.kill()
	}
	return err
}

// waitKinesalite polls ListStreams until the server answers.
func waitKinesalite(t testing.TB, endpoint string) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(15 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		req, err := kinesaliteRequest(endpoint, "ListStreams", `{}`)
		if err != nil {
			t.Fatal(err)
		}
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

// kinesaliteRequest builds a Kinesis API call to kinesalite, which wants a
// signature's shape and checks nothing more.
func kinesaliteRequest(endpoint, op, body string) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, endpoint+"/", strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "Kinesis_20131202."+op)
	req.Header.Set("X-Amz-Date", time.Now().UTC().Format("20060102T150405Z"))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDDASTESTLOCALKMS0/20260101/"+Region+
		"/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000")
	return req, nil
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
	missing := func(what string) { kinesaliteMissing(t, what) }
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

// kinesaliteMissing fails the test under CI=true and skips it elsewhere.
func kinesaliteMissing(t testing.TB, what string) {
	t.Helper()
	msg := fmt.Sprintf("testenv: %s; install with scripts/install-test-deps.sh (npm install --prefix %s kinesalite@%s)",
		what, KinesaliteDir(), KinesaliteVersion)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
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
