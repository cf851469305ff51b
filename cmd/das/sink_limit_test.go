package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/das-mysql/das/internal/embeddb"
	"github.com/das-mysql/das/internal/testenv"
)

// TestServeKinesisSplitsLargeRecords sends statements that together seal to
// several MiB within one linger window, and one that alone seals to more
// than Kinesis's 1 MiB record limit: das splits the batch into records that
// fit, cuts the one statement (marked with dasTextCut), loses nothing, and
// the chain stays intact.
func TestServeKinesisSplitsLargeRecords(t *testing.T) {
	endpoint := testenv.Kinesalite(t)
	data := t.TempDir()
	sink := "kinesis://?region=" + testenv.Region + "&endpoint=" + endpoint
	addr, stop := startServe(t, "--data-dir", data, "--sink", sink, "--batch-linger", "3s")

	// Random base64 does not compress: each 200 KB statement seals to
	// about as much, so 12 of them are ~2.4 MB in one linger window.
	blob := func(n int) string {
		b := make([]byte, n*3/4)
		rand.Read(b)
		return base64.StdEncoding.EncodeToString(b)
	}
	var sql strings.Builder
	var want []string
	for i := range 12 {
		marker := fmt.Sprintf("split-%02d", i)
		want = append(want, marker)
		fmt.Fprintf(&sql, "SELECT '%s', LENGTH('%s');\n", marker, blob(200_000))
	}
	huge := blob(1_000_000) // under max_command_text (1 MiB), over the record limit once sealed
	fmt.Fprintf(&sql, "SELECT 'huge', LENGTH('%s');\n", huge)
	bin, err := exec.LookPath("mariadb")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("the mariadb client is missing: run scripts/install-test-deps.sh")
		}
		t.Skip("the mariadb client is missing")
	}
	host, port, _ := net.SplitHostPort(addr)
	cli := exec.Command(bin, "--no-defaults", "-h", host, "-P", port, "--protocol=TCP", "--batch",
		"--max-allowed-packet=16M", "-u", embeddb.DefaultUser, "-p"+embeddb.DefaultPassword, embeddb.DefaultDatabase)
	cli.Stdin = strings.NewReader(sql.String())
	if out, err := cli.CombinedOutput(); err != nil {
		t.Fatalf("mariadb: %v %s", err, out)
	}
	if code, stderr := stop(); code != 0 {
		t.Fatalf("das serve exited %d: %s", code, stderr)
	}

	id, _ := os.ReadFile(filepath.Join(data, "stream-id"))
	from := "kinesis://aws-rds-das-" + strings.TrimSpace(string(id)) + "?region=" + testenv.Region + "&endpoint=" + endpoint
	r := das(t, nil, "consume", "--from", from, "--data-dir", data, "--command", "QUERY")
	if r.code != 0 {
		t.Fatalf("consume from Kinesis: %d %s", r.code, r.stderr)
	}
	var got []string
	cut := 0
	for _, e := range consumed(t, r.stdout) {
		switch {
		case strings.HasPrefix(e.CommandText, "SELECT 'split-"):
			got = append(got, e.CommandText[8:16])
			if e.Extra.Has("dasTextCut") {
				t.Errorf("%s was cut though it fits a record", e.CommandText[8:16])
			}
		case strings.HasPrefix(e.CommandText, "SELECT 'huge'"):
			cut++
			n := string(e.Extra.Get("dasTextCut"))
			if n == "" || len(e.CommandText) >= len(huge) || !strings.Contains(huge, e.CommandText[len("SELECT 'huge', LENGTH('"):]) {
				t.Errorf("the huge statement: %d bytes kept, dasTextCut %q", len(e.CommandText), n)
			}
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") || cut != 1 {
		t.Fatalf("statements in the stream: %v and %d huge, want %v and 1", got, cut, want)
	}
	v := das(t, nil, "verify", "--from", from, "--data-dir", data)
	if v.code != 0 || !strings.HasPrefix(v.stdout, "intact:") {
		t.Fatalf("verify from Kinesis: %d %s %s", v.code, v.stdout, v.stderr)
	}
	// Several records: the 2.4 MB batch did not go out as one.
	var records int
	if i := strings.Index(v.stdout, "("); i > 0 {
		fmt.Sscanf(v.stdout[i+1:], "%d records", &records)
	}
	if records < 4 {
		t.Fatalf("verify: %s; want the batch split into at least 4 records", v.stdout)
	}
}
