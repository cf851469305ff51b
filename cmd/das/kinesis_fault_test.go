package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/das-mysql/das/internal/testenv"
)

// The tests of this file take the Kinesis API away from das serve (issue
// #5, "a sink that is down at start", "a sink that goes down while
// running"). kinesalite goes away as a crashed server or a cut network
// does: its port refuses connections. It comes back on the same address
// with the streams it had (on disk), as the Kinesis service keeps a stream
// through an outage.

// TestServeKinesisDownAtStart: with nothing answering at the sink's
// endpoint, das serve does not start: it exits non-zero naming the sink,
// the endpoint and the cause.
func TestServeKinesisDownAtStart(t *testing.T) {
	testenv.AWSCredentials(t)
	for _, tc := range []struct{ name, stream string }{
		{name: "named stream", stream: "das-activity"},
		{name: "DAS's stream name", stream: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := testenv.FreePort(t)
			endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
			sink := "kinesis://" + tc.stream + "?region=" + testenv.Region + "&endpoint=" + endpoint
			start := time.Now()
			r := das(t, nil, "serve", "--data-dir", t.TempDir(), "--sink", sink,
				"--listen", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), "--admin-listen", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)))
			took := time.Since(start)
			if r.code == 0 {
				t.Fatalf("das serve with nothing at the sink's endpoint exited 0: %s", r.stderr)
			}
			for _, want := range []string{"sink " + sink, "no Kinesis API answered at " + endpoint, "connection refused"} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("das serve's error does not say %q:\n%s", want, r.stderr)
				}
			}
			if took > 20*time.Second {
				t.Errorf("das serve took %s to give up", took)
			}
			t.Logf("exit %d after %s", r.code, took.Round(time.Millisecond))
		})
	}
}
