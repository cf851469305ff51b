// Package testenv starts the external services that tests run against, on
// loopback only, and stops them when the test ends.
package testenv

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
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

// What LocalKMS serves.
const (
	Region    = "us-east-1"
	AccountID = "111122223333"
	KeyAlias  = "alias/das-test"
)

// LocalKMSModule is the local-kms version the tests are written against.
const LocalKMSModule = "github.com/nsmithuk/local-kms@v0.0.0-20260228092603-2a5e92d09ab6"

// LocalKMS starts a local-kms server seeded with one symmetric key and the
// alias KeyAlias, and returns its endpoint ("http://127.0.0.1:PORT") and the
// key's ARN. It also sets dummy AWS credentials and region for the test (see
// AWSCredentials), so it cannot be used from parallel tests.
//
// local-kms listens on every interface (it binds ":PORT"; there is no setting
// for the address), on a port the kernel picks; the tests dial it on
// 127.0.0.1 only.
func LocalKMS(t testing.TB) (endpoint, keyARN string) {
	t.Helper()
	bin := localKMSBinary(t)
	AWSCredentials(t)

	dir := t.TempDir()
	keyID := newUUID(t)
	backing := make([]byte, 32)
	if _, err := rand.Read(backing); err != nil {
		t.Fatal(err)
	}
	seed := fmt.Sprintf(`Keys:
  Symmetric:
    Aes:
      - Metadata:
          KeyId: %s
          Description: das test key
        BackingKeys:
          - %s
Aliases:
  - AliasName: %s
    TargetKeyId: %s
`, keyID, hex.EncodeToString(backing), KeyAlias, keyID)
	seedPath := filepath.Join(dir, "seed.yaml")
	if err := os.WriteFile(seedPath, []byte(seed), 0o600); err != nil {
		t.Fatal(err)
	}
	dataPath := filepath.Join(dir, "data")
	if err := os.Mkdir(dataPath, 0o700); err != nil {
		t.Fatal(err)
	}

	logs := &logWriter{port: make(chan int, 1)}
	cmd := exec.Command(bin)
	// A clean environment: no AWS settings or proxies leak in from the host.
	cmd.Env = []string{
		"PORT=0", // the kernel picks a free port; the log line tells us which
		"KMS_REGION=" + Region,
		"KMS_ACCOUNT_ID=" + AccountID,
		"KMS_DATA_PATH=" + dataPath,
		"KMS_SEED_PATH=" + seedPath,
	}
	cmd.Dir = dir
	cmd.Stdout = logs
	cmd.Stderr = logs
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("local-kms output:\n%s", logs.String())
		}
	})

	var port int
	select {
	case port = <-logs.port:
	case err := <-exited:
		exited <- err // for the cleanup's receive
		t.Fatalf("testenv: local-kms exited before listening: %v\n%s", err, logs.String())
	case <-time.After(15 * time.Second):
		t.Fatalf("testenv: local-kms did not report a port within 15s\n%s", logs.String())
	}
	endpoint = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	keyARN = fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", Region, AccountID, keyID)
	waitReady(t, endpoint, keyARN)
	return endpoint, keyARN
}

// waitReady polls DescribeKey until the seeded key is served.
func waitReady(t testing.TB, endpoint, keyARN string) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	body := `{"KeyId":"` + KeyAlias + `"}`
	deadline := time.Now().Add(15 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		req, err := http.NewRequest(http.MethodPost, endpoint+"/", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		req.Header.Set("X-Amz-Target", "TrentService.DescribeKey")
		resp, err := client.Do(req)
		if err == nil {
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(b.String(), keyARN) {
				return
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, b.String())
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("testenv: local-kms at %s not ready: %s", endpoint, last)
}

// AWSCredentials points the AWS SDK's default chain at dummy static
// credentials and Region for this test, and cuts it off from the host's
// config files and from the EC2 metadata service, so that nothing but the
// endpoint under test is contacted.
func AWSCredentials(t testing.TB) {
	t.Helper()
	none := filepath.Join(t.TempDir(), "none")
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":           "AKIDDASTESTLOCALKMS0",
		"AWS_SECRET_ACCESS_KEY":       "das-test-secret-not-a-real-credential",
		"AWS_SESSION_TOKEN":           "",
		"AWS_REGION":                  Region,
		"AWS_DEFAULT_REGION":          Region,
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             none,
		"AWS_SHARED_CREDENTIALS_FILE": none,
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_ENDPOINT_URL":            "",
		"AWS_ENDPOINT_URL_KMS":        "",
		"AWS_MAX_ATTEMPTS":            "",
		"AWS_RETRY_MODE":              "",
	} {
		t.Setenv(k, v)
	}
}

// FreePort returns a loopback TCP port that was free a moment ago. Nothing
// listens on it when it returns, which also makes it a "closed port" target.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// localKMSBinary finds local-kms: $LOCAL_KMS_BIN, PATH, then $(go env GOPATH)/bin.
// Without it the test fails under CI=true and is skipped elsewhere.
func localKMSBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("LOCAL_KMS_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("testenv: LOCAL_KMS_BIN=%s: %v", p, err)
		}
		return p
	}
	if p, err := exec.LookPath("local-kms"); err == nil {
		return p
	}
	var tried []string
	if gopath := goPath(); gopath != "" {
		for _, dir := range filepath.SplitList(gopath) {
			p := filepath.Join(dir, "bin", "local-kms")
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
				return p
			}
			tried = append(tried, p)
		}
	}
	msg := fmt.Sprintf("testenv: local-kms not found ($LOCAL_KMS_BIN, PATH, %s); install with: go install %s",
		strings.Join(tried, ", "), LocalKMSModule)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func goPath() string {
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		if s := strings.TrimSpace(string(out)); s != "" {
			return s
		}
	}
	if s := os.Getenv("GOPATH"); s != "" {
		return s
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, "go")
	}
	return ""
}

func newUUID(t testing.TB) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// startedRE matches local-kms's "Local KMS started on 0.0.0.0:PORT".
var startedRE = regexp.MustCompile(`Local KMS started on \S*:(\d+)`)

// logWriter keeps the server's output (bounded) and reports the port once.
type logWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	found bool
	port  chan int
}

const maxLog = 256 << 10

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if room := maxLog - w.buf.Len(); room > 0 {
		w.buf.Write(p[:min(len(p), room)])
	}
	if !w.found {
		if m := startedRE.FindSubmatch(w.buf.Bytes()); m != nil {
			if port, err := strconv.Atoi(string(m[1])); err == nil {
				w.found = true
				w.port <- port
			}
		}
	}
	return len(p), nil
}

func (w *logWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
