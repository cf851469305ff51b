package config

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func load(t *testing.T, file string, args ...string) (Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := Register(fs)
	if file != "" {
		p := filepath.Join(t.TempDir(), "das.yaml")
		if err := os.WriteFile(p, []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"--config", p}, args...)
	}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return f.Load()
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		args    []string
		check   func(c Config) bool
		wantErr string // substring; the setting's name and the fix
	}{
		{name: "defaults", check: func(c Config) bool {
			return c.DataDir == "./das-data" && c.KMS == "local" && c.Suite == "das" && c.BatchMaxEvents == 4096
		}},
		{name: "file", file: "data_dir: /var/lib/das\nkms: aws\nkms_key_id: alias/das\nkms_region: eu-west-1\nlog_segment_bytes: 8MiB\ndata_key_max_age: 90s\n",
			check: func(c Config) bool {
				return c.DataDir == "/var/lib/das" && c.KMS == "aws" && c.KMSKeyID == "alias/das" && c.SegmentBytes == 8<<20 && c.DataKeyMaxAge == 90*time.Second
			}},
		{name: "flag overrides file", file: "data_dir: /a\nsuite: committing\n", args: []string{"--data-dir", "/b"},
			check: func(c Config) bool { return c.DataDir == "/b" && c.Suite == "committing" }},
		{name: "unknown setting suggests", file: "kms_keyid: x\n", wantErr: `line 1: unknown setting "kms_keyid" (did you mean "kms_key_id"?)`},
		{name: "bad provider", args: []string{"--kms", "vault"}, wantErr: `--kms: "vault" is not one of local, aws`},
		{name: "bad duration", file: "batch_linger: soon\n", wantErr: `batch_linger: "soon" is not a duration`},
		{name: "bad size", file: "log_segment_bytes: 12\n", wantErr: "log_segment_bytes"},
		{name: "aws needs key", args: []string{"--kms", "aws"}, wantErr: "kms_key_id is required when kms is aws; set --kms-key-id"},
		{name: "endpoint must be URL", args: []string{"--kms-endpoint", "kms.internal:443"}, wantErr: "is not a URL"},
		{name: "bad stream id", args: []string{"--stream-id", "a b"}, wantErr: "is not a resource id"},
		{name: "not a mapping", file: "- a\n- b\n", wantErr: "want a mapping"},
		{name: "nested value", file: "kms:\n  provider: aws\n", wantErr: "kms: want a single value"},
		{name: "audit max line default", check: func(c Config) bool { return c.AuditMaxLine == 1<<20 }},
		{name: "audit max line in file", file: "audit_max_line: 64KiB\n", check: func(c Config) bool { return c.AuditMaxLine == 64<<10 }},
		{name: "audit max line flag", file: "audit_max_line: 64KiB\n", args: []string{"--audit-max-line", "4MiB"},
			check: func(c Config) bool { return c.AuditMaxLine == 4<<20 }},
		{name: "audit max line too small", file: "audit_max_line: 100\n", wantErr: `line 1: audit_max_line: "100" is not a size from 1KiB to 1GiB (write 1MiB`},
		{name: "audit max line too large", args: []string{"--audit-max-line", "2GiB"}, wantErr: `--audit-max-line: "2GiB" is not a size from 1KiB to 1GiB`},
		{name: "audit max line not a size", args: []string{"--audit-max-line", "long"}, wantErr: `--audit-max-line: "long" is not a size`},
		{name: "audit max line within the query limit", file: "audit_log: /a\naudit_query_log_limit: 4096\naudit_max_line: 4KiB\n",
			wantErr: "audit_max_line (4096) is not above audit_query_log_limit (4096): lines the server writes whole would be cut; set --audit-max-line"},
		{name: "audit time zone default", check: func(c Config) bool { loc, err := c.AuditLocation(); return err == nil && loc == time.Local }},
		{name: "audit time zone in file", file: "audit_time_zone: America/New_York\n", check: func(c Config) bool {
			loc, err := c.AuditLocation()
			return err == nil && loc.String() == "America/New_York" &&
				time.Date(2026, 11, 25, 16, 54, 4, 0, loc).UTC() == time.Date(2026, 11, 25, 21, 54, 4, 0, time.UTC)
		}},
		{name: "audit time zone flag", file: "audit_time_zone: America/New_York\n", args: []string{"--audit-time-zone", "UTC"},
			check: func(c Config) bool { loc, err := c.AuditLocation(); return err == nil && loc == time.UTC }},
		{name: "audit time zone unknown", file: "audit_time_zone: Europe/Atlantis\n",
			wantErr: `line 1: audit_time_zone: "Europe/Atlantis" is not a time zone (write the database server's zone as an IANA name such as Europe/Berlin`},
		{name: "audit time zone offset", args: []string{"--audit-time-zone", "+02:00"}, wantErr: `--audit-time-zone: "+02:00" is not a time zone (write`},
		{name: "audit time zone empty", file: "audit_time_zone: \"\"\n", wantErr: `audit_time_zone: "" is not a time zone`},
		{name: "gc percent default", check: func(c Config) bool { return c.GCPercent == 400 }},
		{name: "gc percent flag", file: "gc_percent: 200\n", args: []string{"--gc-percent", "100"}, check: func(c Config) bool { return c.GCPercent == 100 }},
		{name: "gc percent too small", file: "gc_percent: 5\n", wantErr: `line 1: gc_percent: "5" is not a whole number of at least 25`},
		{name: "audit max line above the query limit", file: "audit_log: /a\naudit_query_log_limit: 4096\naudit_max_line: 8KiB\n",
			check: func(c Config) bool { return c.AuditMaxLine == 8<<10 && c.AuditQueryLogLimit == 4096 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load(t, tt.file, tt.args...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Fatalf("unexpected config %+v", c)
			}
		})
	}
}

// audit_log takes several paths, in the file or as flags; flags given
// replace the file's list (flags override the file), never add to it.
func TestAuditLogList(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		args    []string
		want    []string
		wantErr string
	}{
		{name: "none", want: nil},
		{name: "file, YAML list", file: "audit_log:\n  - /a\n  - /b\n", want: []string{"/a", "/b"}},
		{name: "file, flow list", file: "audit_log: [/a, /b]\n", want: []string{"/a", "/b"}},
		{name: "file, repeated key", file: "audit_log: /a\naudit_log: /b\n", want: []string{"/a", "/b"}},
		{name: "file, commas", file: "audit_log: /a, /b\n", want: []string{"/a", "/b"}},
		{name: "flags, repeated", args: []string{"--audit-log", "/a", "--audit-log", "/b,/c"}, want: []string{"/a", "/b", "/c"}},
		{name: "flags replace the file's list", file: "audit_log: /a\naudit_log: /b\n", args: []string{"--audit-log", "/c", "--audit-log", "/d"},
			want: []string{"/c", "/d"}},
		{name: "other flags keep the file's list", file: "audit_log: [/a, /b]\n", args: []string{"--listen", "127.0.0.1:3308"},
			want: []string{"/a", "/b"}},
		{name: "an empty flag clears the file's list", file: "audit_log: [/a]\n", args: []string{"--audit-log", ""}, want: nil},
		{name: "nested list", file: "audit_log:\n  - [/a]\n", wantErr: "line 2: audit_log: want a single value"},
		{name: "list for a single setting", file: "listen:\n  - 127.0.0.1:1\n", wantErr: "line 2: listen: want a single value"},
		{name: "a path twice", file: "audit_log: [/a, /b]\n", args: []string{"--audit-log", "/c", "--audit-log", "/c/"},
			wantErr: "config: audit_log /c is given twice; list each server_audit file once"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load(t, tt.file, tt.args...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.AuditLogs, tt.want) {
				t.Fatalf("audit_log %q, want %q", c.AuditLogs, tt.want)
			}
		})
	}
}

func TestStreamIDGeneratedOnceAndKept(t *testing.T) {
	c := Defaults()
	c.DataDir = filepath.Join(t.TempDir(), "data")
	if err := c.ResolveStreamID(false); err == nil {
		t.Fatal("want an error without a kept stream id when not creating")
	}
	if err := c.ResolveStreamID(true); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^cluster-[A-Z2-7]{26}$`).MatchString(c.StreamID) {
		t.Fatalf("stream id %q is not Aurora-shaped", c.StreamID)
	}
	again := Defaults()
	again.DataDir = c.DataDir
	if err := again.ResolveStreamID(true); err != nil {
		t.Fatal(err)
	}
	if again.StreamID != c.StreamID {
		t.Fatalf("second resolve gave %q, want the kept %q", again.StreamID, c.StreamID)
	}
	if NewStreamID() == NewStreamID() {
		t.Fatal("two generated ids are equal")
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"4096": 4096, "64KiB": 64 << 10, "64MiB": 64 << 20, "1GiB": 1 << 30, "2 MB": 2 << 20, "10B": 10} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "-1", "1TB"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) succeeded", bad)
		}
	}
}

func TestServeSettings(t *testing.T) {
	c, err := load(t, "upstream: db.internal:3306\nrequire_tls: true\nshutdown_timeout: 5s\n", "--listen", "0.0.0.0:3307", "--upstream-tls-skip-verify")
	if err != nil {
		t.Fatal(err)
	}
	if c.Upstream != "db.internal:3306" || !c.RequireTLS || !c.UpstreamTLSSkipVerify || c.Listen != "0.0.0.0:3307" || c.ShutdownTimeout != 5*time.Second {
		t.Fatalf("%+v", c)
	}
	if _, err := load(t, "upstream: db.internal\n"); err == nil || !strings.Contains(err.Error(), "upstream: \"db.internal\" is not HOST:PORT") {
		t.Fatalf("upstream without port: %v", err)
	}
	if _, err := load(t, "require_tls: maybe\n"); err == nil || !strings.Contains(err.Error(), "require_tls") {
		t.Fatalf("bad bool: %v", err)
	}
}
