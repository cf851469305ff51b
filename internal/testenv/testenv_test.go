package testenv

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestLocalKMSServesAndStops(t *testing.T) {
	var endpoint, keyARN string
	t.Run("start", func(t *testing.T) {
		endpoint, keyARN = LocalKMS(t)
		if !strings.HasPrefix(endpoint, "http://127.0.0.1:") {
			t.Errorf("endpoint %q is not on 127.0.0.1", endpoint)
		}
		if !strings.HasPrefix(keyARN, "arn:aws:kms:us-east-1:111122223333:key/") {
			t.Errorf("key ARN %q", keyARN)
		}
		if got := os.Getenv("AWS_EC2_METADATA_DISABLED"); got != "true" {
			t.Errorf("AWS_EC2_METADATA_DISABLED = %q", got)
		}
		if os.Getenv("AWS_ACCESS_KEY_ID") == "" || os.Getenv("AWS_REGION") != Region {
			t.Error("dummy credentials or region not set")
		}
	})
	if endpoint == "" {
		return // skipped: no binary
	}
	// After the subtest's cleanup the server is gone.
	addr := strings.TrimPrefix(endpoint, "http://")
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("local-kms still listening on %s after cleanup", addr)
	}
}

// recorder stands in for a test to observe Skip and Fatal.
type recorder struct {
	testing.TB
	skipped, fatal string
}

func (r *recorder) Helper()                   {}
func (r *recorder) Skip(args ...any)          { r.skipped = fmt.Sprint(args...); runtime.Goexit() }
func (r *recorder) Fatal(args ...any)         { r.fatal = fmt.Sprint(args...); runtime.Goexit() }
func (r *recorder) Fatalf(f string, a ...any) { r.Fatal(fmt.Sprintf(f, a...)) }

func TestMissingBinary(t *testing.T) {
	t.Setenv("LOCAL_KMS_BIN", "")
	t.Setenv("PATH", "")
	t.Setenv("GOPATH", t.TempDir())
	for _, ci := range []string{"true", ""} {
		t.Setenv("CI", ci)
		r := &recorder{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			localKMSBinary(r)
		}()
		<-done
		got := r.skipped
		if ci == "true" {
			got = r.fatal
			if r.skipped != "" {
				t.Error("skipped under CI=true")
			}
		} else if r.fatal != "" {
			t.Errorf("failed outside CI: %s", r.fatal)
		}
		if !strings.Contains(got, "go install "+LocalKMSModule) {
			t.Errorf("CI=%q: message %q lacks the install command", ci, got)
		}
	}
}

func TestFreePort(t *testing.T) {
	p := FreePort(t)
	if p <= 0 || p > 65535 {
		t.Fatalf("port %d", p)
	}
	if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), time.Second); err == nil {
		c.Close()
		t.Errorf("something listens on the free port %d", p)
	}
}

// TestKinesaliteRestart: a stopped kinesalite refuses connections; started
// again it answers on the same endpoint, with the streams it had when they
// persist, with none when it kept them in memory (kinesalite's default).
func TestKinesaliteRestart(t *testing.T) {
	for _, tc := range []struct {
		persist bool
		want    string
	}{
		{persist: true, want: `{"StreamNames":["kept"]`},
		{persist: false, want: `{"StreamNames":[]`},
	} {
		t.Run(fmt.Sprintf("persist=%v", tc.persist), func(t *testing.T) {
			k := StartKinesalite(t, KinesaliteOptions{Persist: tc.persist})
			call := func(op, body string) string {
				t.Helper()
				req, err := kinesaliteRequest(k.Endpoint, op, body)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatalf("%s: %v", op, err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s: HTTP %d %s", op, resp.StatusCode, b)
				}
				return string(b)
			}
			call("CreateStream", `{"StreamName":"kept","ShardCount":1}`)
			before := k.Endpoint
			k.Stop()
			if _, err := http.Post(k.Endpoint, "application/x-amz-json-1.1", strings.NewReader("{}")); err == nil {
				t.Fatalf("a stopped kinesalite answered at %s", k.Endpoint)
			}
			k.Start()
			if k.Endpoint != before {
				t.Fatalf("restarted at %s, was %s", k.Endpoint, before)
			}
			if got := call("ListStreams", `{}`); !strings.HasPrefix(got, tc.want) {
				t.Fatalf("streams after a restart: %s, want %s...", got, tc.want)
			}
		})
	}
}
