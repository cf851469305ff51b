package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/das-mysql/das/internal/testenv"
)

func runPreflightCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"preflight"}, args...), nil, &out, &errb)
	return code, out.String(), errb.String()
}

func TestPreflightLocal(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := runPreflightCmd(t, "--data-dir", dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	for _, w := range []string{"PASS kms.local-key", "PASS sink.writable", "PASS sink.free-space", "none failed"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("preflight wrote into the data dir: %v", ents)
	}

	// A closed upstream port fails the preflight, with the fix under it.
	port := strconv.Itoa(testenv.FreePort(t))
	code, out, _ = runPreflightCmd(t, "--data-dir", dir, "--upstream", "127.0.0.1:"+port, "--json")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	var rep struct {
		OK     bool
		Checks []struct{ Name, Status, Measured, Fix string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	found := false
	for _, c := range rep.Checks {
		if c.Name == "upstream.connect" && c.Status == "fail" && strings.Contains(c.Fix, "start the database") {
			found = true
		}
	}
	if rep.OK || !found {
		t.Errorf("report: %+v", rep)
	}
}

func TestPreflightAWS(t *testing.T) {
	testenv.AWSCredentials(t)
	fixtures := filepath.Join("..", "..", "internal", "preflight", "testdata", "aws", "base")
	var created []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		action := r.PostForm.Get("Action")
		if strings.HasPrefix(action, "Create") {
			created = append(created, action+" DryRun="+r.PostForm.Get("DryRun"))
		}
		if r.PostForm.Get("DryRun") == "true" {
			action = "DryRunOperation"
			w.WriteHeader(http.StatusPreconditionFailed)
		}
		b, err := os.ReadFile(filepath.Join(fixtures, action+".xml"))
		if err != nil {
			t.Errorf("no fixture for %s", action)
		}
		w.Write(b)
	}))
	defer srv.Close()

	code, out, errs := runPreflightCmd(t, "aws", "--db-cluster-identifier", "orders", "--region", "us-east-1", "--endpoint-url", srv.URL)
	if code != 1 || !strings.Contains(out, "FAIL aws.instance.orders-1  blocked:") || !strings.Contains(out, "fix: create a KMS interface endpoint") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = runPreflightCmd(t, "aws", "--db-cluster-identifier", "orders", "--region", "us-east-1", "--endpoint-url", srv.URL,
		"--create-kms-endpoint", "--dry-run")
	if !strings.Contains(out, "PASS aws.create-kms-endpoint.dry-run") || strings.Join(created, ";") != "CreateSecurityGroup DryRun=true;CreateVpcEndpoint DryRun=true" {
		t.Fatalf("exit %d, created %v\n%s", code, created, out)
	}
	if code, _, errs = runPreflightCmd(t, "aws", "--region", "us-east-1"); code != 2 || !strings.Contains(errs, "--db-cluster-identifier and --region are required") {
		t.Errorf("missing cluster: exit %d %s", code, errs)
	}
}

func TestPreflightKafkaSink(t *testing.T) {
	cl, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "das-activity"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	dir := t.TempDir()
	code, out, errs := runPreflightCmd(t, "--data-dir", dir, "--sink", "kafka://"+cl.ListenAddrs()[0]+"/das-activity")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	for _, w := range []string{"PASS sink.kafka.brokers", "PASS sink.kafka.topic", "topic das-activity exists: 2 partitions",
		"PASS sink.kafka.produce", "nothing was written", "none failed"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "sink.writable") {
		t.Errorf("a Kafka sink got the local log's checks:\n%s", out)
	}

	// A topic that may not be created fails the preflight, with the fix.
	code, out, _ = runPreflightCmd(t, "--data-dir", dir, "--sink", "kafka://"+cl.ListenAddrs()[0]+"/das-other?create_topic=false")
	if code != 1 || !strings.Contains(out, "FAIL sink.kafka.topic") || !strings.Contains(out, "fix: create it (kafka-topics.sh") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	if testing.Verbose() {
		t.Log(out)
	}
}
