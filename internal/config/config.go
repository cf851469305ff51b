// Package config holds the settings every das command shares, read from a
// YAML file and from flags of the same names (flags win: a list setting
// given as flags replaces the file's list). An unknown or invalid setting
// is an error that names the setting and how to fix it.
package config

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	// The database server's zone must resolve where das runs without
	// /usr/share/zoneinfo (a minimal container).
	_ "time/tzdata"

	"go.yaml.in/yaml/v3"
)

// Config is the shared settings. Field comments give the setting's name.
type Config struct {
	DataDir  string // data_dir
	StreamID string // stream_id

	KMS         string // kms: local | aws
	KMSKeyID    string // kms_key_id
	KMSRegion   string // kms_region
	KMSEndpoint string // kms_endpoint

	DataKeyMaxUses int           // data_key_max_uses
	DataKeyMaxAge  time.Duration // data_key_max_age
	Suite          string        // suite: das (0x0378) | committing (0x0578) | unsigned (0x0478)

	BatchMaxEvents    int           // batch_max_events
	BatchLinger       time.Duration // batch_linger
	QueueEvents       int           // queue_events
	HeartbeatInterval time.Duration // heartbeat_interval

	Sink         string        // sink: local | kinesis://... | kafka://...
	SegmentBytes int64         // log_segment_bytes
	RetainBytes  int64         // log_retain_bytes
	RetainAge    time.Duration // log_retain_age

	InstanceID string // instance_id
	ServerHost string // server_host
	LogLevel   string // log_level

	// das serve
	Listen                string        // listen (empty: no proxy, audit logs only)
	AuditLogs             []string      // audit_log: server_audit files to follow (repeatable)
	AuditQueryLogLimit    int           // audit_query_log_limit: the server's server_audit_query_log_limit
	AuditMaxLine          int           // audit_max_line: longer server_audit lines are cut
	AuditTimeZone         string        // audit_time_zone: the zone server_audit writes its times in (IANA name, UTC or Local)
	Upstream              string        // upstream: host:port; empty starts an embedded database
	TLSCert               string        // tls_cert
	TLSKey                string        // tls_key
	RequireTLS            bool          // require_tls
	UpstreamTLS           string        // upstream_tls: auto | off
	UpstreamTLSCA         string        // upstream_tls_ca
	UpstreamTLSServerName string        // upstream_tls_server_name
	UpstreamTLSSkipVerify bool          // upstream_tls_skip_verify
	Mode                  string        // mode: async | sync
	FailClosed            bool          // fail_closed
	AutoRestart           bool          // auto_restart
	KMSRetryWindow        time.Duration // kms_retry_window
	SyncTimeout           time.Duration // sync_timeout
	SinkOpenTimeout       time.Duration // sink_open_timeout
	SpoolOnKMSOutage      bool          // spool_on_kms_outage
	SpoolMaxRecords       int           // spool_max_records
	AdminListen           string        // admin_listen
	AdminTokenFile        string        // admin_token_file
	Webhooks              string        // webhooks: comma-separated URLs
	MaxPacket             int64         // max_packet
	MaxCommandText        int64         // max_command_text
	ShutdownTimeout       time.Duration // shutdown_timeout
	EventLoops            int           // event_loops
	GCPercent             int           // gc_percent
}

// Defaults returns the embedded defaults: everything works with no file.
func Defaults() Config {
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	return Config{
		DataDir:        "./das-data",
		KMS:            "local",
		DataKeyMaxUses: 1000,
		DataKeyMaxAge:  5 * time.Minute,
		Suite:          "das",
		// Each record costs a signature and a seal: at a tailer's 40k lines/s,
		// 1024 made ~40 records/s and ~10% more CPU than 4096
		// (docs/PERFORMANCE.md). Sinks with a size limit split and adapt.
		BatchMaxEvents:     4096,
		BatchLinger:        200 * time.Millisecond,
		QueueEvents:        65536,
		HeartbeatInterval:  10 * time.Second,
		Sink:               "local",
		SegmentBytes:       64 << 20,
		InstanceID:         "das-" + host,
		ServerHost:         host,
		LogLevel:           "info",
		Listen:             "127.0.0.1:3307",
		AuditQueryLogLimit: 1024,
		AuditMaxLine:       1 << 20,
		AuditTimeZone:      "Local",
		UpstreamTLS:        "auto",
		Mode:               "async",
		KMSRetryWindow:     60 * time.Second,
		SyncTimeout:        5 * time.Second,
		SinkOpenTimeout:    30 * time.Second,
		SpoolMaxRecords:    100000,
		AdminListen:        "127.0.0.1:9307",
		MaxPacket:          1 << 30,
		MaxCommandText:     1 << 20,
		ShutdownTimeout:    30 * time.Second,
		// Sealing allocates per event; at Go's default (100) a tailer spent
		// ~10% of its CPU collecting, and 400 saved 8% of its CPU per line
		// for a few tens of MB of heap (docs/PERFORMANCE.md).
		GCPercent: 400,
	}
}

type setting struct {
	name  string
	usage string
	set   func(c *Config, v string) error
}

// boolFlags are settings given as flags without a value (--require-tls).
var boolFlags = map[string]bool{"require_tls": true, "upstream_tls_skip_verify": true, "fail_closed": true, "auto_restart": true, "spool_on_kms_outage": true}

// listSettings take several values: a repeated flag, a YAML list, a
// repeated key, commas. Their setter appends.
var listSettings = map[string]func(c *Config) *[]string{
	"audit_log": func(c *Config) *[]string { return &c.AuditLogs },
}

func str(f func(c *Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *f(c) = v; return nil }
}

func integer(f func(c *Config) *int, min int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < min {
			return fmt.Errorf("%q is not a whole number of at least %d", v, min)
		}
		*f(c) = n
		return nil
	}
}

func size(f func(c *Config) *int64, min int64) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := ParseSize(v)
		if err != nil || n < min {
			return fmt.Errorf("%q is not a size of at least %d bytes (write 64MiB, 1GiB or a byte count)", v, min)
		}
		*f(c) = n
		return nil
	}
}

func duration(f func(c *Config) *time.Duration, min time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < min {
			return fmt.Errorf("%q is not a duration of at least %v (write 500ms, 10s, 5m)", v, min)
		}
		*f(c) = d
		return nil
	}
}

func oneOf(f func(c *Config) *string, choices ...string) func(*Config, string) error {
	return func(c *Config, v string) error {
		for _, ch := range choices {
			if v == ch {
				*f(c) = v
				return nil
			}
		}
		return fmt.Errorf("%q is not one of %s", v, strings.Join(choices, ", "))
	}
}

func boolean(f func(c *Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		*f(c) = b
		return nil
	}
}

func hostPort(f func(c *Config) *string, empty bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		if v == "" && empty {
			*f(c) = v
			return nil
		}
		if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
			return fmt.Errorf("%q is not HOST:PORT (write 127.0.0.1:3306 or db.internal:3306)", v)
		}
		*f(c) = v
		return nil
	}
}

var streamIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

var settings = []setting{
	{"data_dir", "directory for the stream log, keys and state", str(func(c *Config) *string { return &c.DataDir })},
	{"stream_id", "the stream's resource id, bound into the KMS encryption context (default: generated once and kept in the data dir)", func(c *Config, v string) error {
		if !streamIDRe.MatchString(v) {
			return fmt.Errorf("%q is not a resource id (letters, digits, '-', '_', '.'; at most 128)", v)
		}
		c.StreamID = v
		return nil
	}},
	{"kms", "KMS provider: local (a key file in the data dir) or aws", oneOf(func(c *Config) *string { return &c.KMS }, "local", "aws")},
	{"kms_key_id", "AWS KMS key id, alias/NAME or ARN", str(func(c *Config) *string { return &c.KMSKeyID })},
	{"kms_region", "AWS region of the KMS key (default: the SDK's region chain)", str(func(c *Config) *string { return &c.KMSRegion })},
	{"kms_endpoint", "KMS endpoint URL override: a VPC endpoint or a local KMS server", func(c *Config, v string) error {
		if v != "" && !strings.HasPrefix(v, "https://") && !strings.HasPrefix(v, "http://") {
			return fmt.Errorf("%q is not a URL (write https://kms.REGION.amazonaws.com or http://127.0.0.1:PORT)", v)
		}
		c.KMSEndpoint = v
		return nil
	}},
	{"data_key_max_uses", "records sealed under one data key before a new one is made", integer(func(c *Config) *int { return &c.DataKeyMaxUses }, 1)},
	{"data_key_max_age", "lifetime of one data key", duration(func(c *Config) *time.Duration { return &c.DataKeyMaxAge }, time.Second)},
	{"suite", "encryption suite: das (0x0378, what AWS DAS emits), committing (0x0578, message format v2) or unsigned (0x0478: format v2 without the per-record ECDSA signature, several times cheaper per record, for sync mode; authenticity then rests on the data key alone)", oneOf(func(c *Config) *string { return &c.Suite }, "das", "committing", "unsigned")},
	{"batch_max_events", "events sealed into one record at most (a record over the sink's size limit is split)", integer(func(c *Config) *int { return &c.BatchMaxEvents }, 1)},
	{"batch_linger", "how long an async record waits for more events before it is sealed (sync events never wait): longer means fewer records and less signing", duration(func(c *Config) *time.Duration { return &c.BatchLinger }, 0)},
	{"queue_events", "events buffered before the stream sheds load; sync-mode events may fill twice as many, so that async ones never refuse them", integer(func(c *Config) *int { return &c.QueueEvents }, 1)},
	{"heartbeat_interval", "a heartbeat record is sealed after this long without activity (0 disables)", duration(func(c *Config) *time.Duration { return &c.HeartbeatInterval }, 0)},
	{"sink", "where sealed records go: local (segment log in the data dir), kinesis://STREAM?region=R&endpoint=URL (empty STREAM: aws-rds-das-<stream id>) or kafka://BROKER,BROKER/TOPIC", func(c *Config, v string) error {
		if v != "local" && !strings.HasPrefix(v, "kinesis://") && !strings.HasPrefix(v, "kafka://") {
			return fmt.Errorf("%q is not a sink (write local, kinesis://STREAM?region=R or kafka://BROKER/TOPIC)", v)
		}
		c.Sink = v
		return nil
	}},
	{"log_segment_bytes", "rotate a stream log segment at this size", size(func(c *Config) *int64 { return &c.SegmentBytes }, 4096)},
	{"log_retain_bytes", "delete the oldest segments beyond this total (0: keep all)", size(func(c *Config) *int64 { return &c.RetainBytes }, 0)},
	{"log_retain_age", "delete segments older than this (0: keep all)", duration(func(c *Config) *time.Duration { return &c.RetainAge }, 0)},
	{"instance_id", "instanceId in each record's payload", str(func(c *Config) *string { return &c.InstanceID })},
	{"server_host", "serverHost of the events this das captures", str(func(c *Config) *string { return &c.ServerHost })},
	{"log_level", "debug, info, warn or error", oneOf(func(c *Config) *string { return &c.LogLevel }, "debug", "info", "warn", "error")},
	{"listen", "serve: address MySQL clients connect to (empty: no proxy, only the audit logs)", hostPort(func(c *Config) *string { return &c.Listen }, true)},
	{"audit_query_log_limit", "serve: the server's server_audit_query_log_limit, so that statements cut at it are flagged dasTruncated", integer(func(c *Config) *int { return &c.AuditQueryLogLimit }, 1)},
	{"audit_max_line", "serve: a server_audit line longer than this is cut to it (flagged dasLineCut); must exceed audit_query_log_limit, with room for the other fields", func(c *Config, v string) error {
		// Each tailer holds up to this much of one line in memory.
		n, err := ParseSize(v)
		if err != nil || n < 1<<10 || n > 1<<30 {
			return fmt.Errorf("%q is not a size from 1KiB to 1GiB (write 1MiB, 64KiB or a byte count)", v)
		}
		c.AuditMaxLine = int(n)
		return nil
	}},
	{"audit_time_zone", "serve: the database server's time zone, in which server_audit writes its timestamps: an IANA name (Europe/Berlin), UTC, or Local (das's own; set it when das and the server run in different zones, e.g. containers)", func(c *Config, v string) error {
		if _, err := zone(v); err != nil {
			return err
		}
		c.AuditTimeZone = v
		return nil
	}},
	{"audit_log", "serve: a MariaDB server_audit log file to follow (repeat the flag or separate with commas; in the file a YAML list; flags replace the file's list)", func(c *Config, v string) error {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				c.AuditLogs = append(c.AuditLogs, p)
			}
		}
		return nil
	}},
	{"upstream", "serve: the database, HOST:PORT (empty: start an embedded database)", hostPort(func(c *Config) *string { return &c.Upstream }, true)},
	{"tls_cert", "serve: the proxy's certificate for clients (PEM; default: self-signed in the data dir)", str(func(c *Config) *string { return &c.TLSCert })},
	{"tls_key", "serve: the key of tls_cert (PEM)", str(func(c *Config) *string { return &c.TLSKey })},
	{"require_tls", "serve: refuse clients that do not use TLS", boolean(func(c *Config) *bool { return &c.RequireTLS })},
	{"upstream_tls", "serve: auto (TLS to the database when the client uses TLS and the database offers it), preferred (whenever the database offers it), required (refuse the session otherwise) or off", oneOf(func(c *Config) *string { return &c.UpstreamTLS }, "auto", "preferred", "required", "off")},
	{"upstream_tls_ca", "serve: CA file to verify the database's certificate (default: system roots)", str(func(c *Config) *string { return &c.UpstreamTLSCA })},
	{"upstream_tls_server_name", "serve: name to verify in the database's certificate (default: the upstream host)", str(func(c *Config) *string { return &c.UpstreamTLSServerName })},
	{"upstream_tls_skip_verify", "serve: do not verify the database's certificate (unsafe)", boolean(func(c *Config) *bool { return &c.UpstreamTLSSkipVerify })},
	{"mode", "serve: async (sessions never wait for the stream) or sync (a statement's answer waits until its event is durable)", oneOf(func(c *Config) *string { return &c.Mode }, "async", "sync")},
	{"fail_closed", "serve: refuse new database sessions while the stream is not recording", boolean(func(c *Config) *bool { return &c.FailClosed })},
	{"auto_restart", "serve: start the stream again when KMS answers after an outage (DAS needs a manual restart)", boolean(func(c *Config) *bool { return &c.AutoRestart })},
	{"kms_retry_window", "serve: how long sealing retries an unreachable KMS before the stream stops (kms-unreachable)", duration(func(c *Config) *time.Duration { return &c.KMSRetryWindow }, 0)},
	{"sink_open_timeout", "how long opening a Kafka or Kinesis sink may take (brokers or an endpoint that accept connections but do not answer) before the command fails", duration(func(c *Config) *time.Duration { return &c.SinkOpenTimeout }, time.Millisecond)},
	{"sync_timeout", "serve: in sync mode, how long a statement's answer waits for durability before the session goes on", duration(func(c *Config) *time.Duration { return &c.SyncTimeout }, time.Millisecond)},
	{"spool_on_kms_outage", "serve: keep recording through a KMS outage under the last valid data key (bounded by spool_max_records) instead of stopping the stream", boolean(func(c *Config) *bool { return &c.SpoolOnKMSOutage })},
	{"spool_max_records", "serve: records sealed under the last data key during one KMS outage at most", integer(func(c *Config) *int { return &c.SpoolMaxRecords }, 1)},
	{"admin_listen", "serve: address of the admin API (start/stop/describe the stream, events)", hostPort(func(c *Config) *string { return &c.AdminListen }, true)},
	{"admin_token_file", "admin API bearer token file, 0600 (default: <data-dir>/admin.token, made on first start; or env DAS_ADMIN_TOKEN)", str(func(c *Config) *string { return &c.AdminTokenFile })},
	{"webhooks", "serve: comma-separated http(s) URLs that receive every stream event as JSON", str(func(c *Config) *string { return &c.Webhooks })},
	{"max_packet", "serve: close a session that sends a larger packet", size(func(c *Config) *int64 { return &c.MaxPacket }, 1024)},
	{"max_command_text", "serve: keep at most this much of a statement's text (and of each bound value) in its event", size(func(c *Config) *int64 { return &c.MaxCommandText }, 1024)},
	{"event_loops", "serve: threads that relay plaintext sessions after login (Linux, epoll; 0: one per core; -1: none, each session then relays on its own goroutines)", integer(func(c *Config) *int { return &c.EventLoops }, -1)},
	{"gc_percent", "serve: Go's garbage-collection target (as GOGC): the heap may grow to 1 + gc_percent/100 times the live data before a collection, so a higher value spends memory to save CPU; the GOGC environment variable, when set, wins", integer(func(c *Config) *int { return &c.GCPercent }, 25)},
	{"shutdown_timeout", "serve: how long sessions may finish after SIGTERM", duration(func(c *Config) *time.Duration { return &c.ShutdownTimeout }, 0)},
}

func lookup(name string) *setting {
	for i := range settings {
		if settings[i].name == name {
			return &settings[i]
		}
	}
	return nil
}

// Flags binds every shared setting to fs as --name-with-dashes, plus --config.
// After fs.Parse, call Load.
type Flags struct {
	fs     *flag.FlagSet
	config *string
}

// Register adds the shared settings to fs.
func Register(fs *flag.FlagSet) *Flags {
	f := &Flags{fs: fs}
	f.config = fs.String("config", "", "YAML config file with the same settings (flags override it)")
	for _, s := range settings {
		if listSettings[s.name] != nil {
			fs.Var(&listFlag{}, FlagName(s.name), s.usage)
			continue
		}
		if boolFlags[s.name] {
			fs.Bool(FlagName(s.name), false, s.usage)
			continue
		}
		fs.String(FlagName(s.name), "", s.usage)
	}
	return f
}

// listFlag is a repeatable flag; its value is the comma-joined list.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// FlagName is the flag spelling of a setting.
func FlagName(setting string) string { return strings.ReplaceAll(setting, "_", "-") }

// Set reports whether the flag for setting was given on the command line.
func (f *Flags) Set(setting string) bool {
	found := false
	f.fs.Visit(func(fl *flag.Flag) {
		if fl.Name == FlagName(setting) {
			found = true
		}
	})
	return found
}

// Load builds the configuration: defaults, then the file named by --config,
// then the flags given on the command line.
func (f *Flags) Load() (Config, error) {
	c := Defaults()
	if *f.config != "" {
		if err := loadFile(&c, *f.config); err != nil {
			return c, err
		}
	}
	var err error
	f.fs.Visit(func(fl *flag.Flag) {
		if err != nil || fl.Name == "config" {
			return
		}
		name := strings.ReplaceAll(fl.Name, "-", "_")
		s := lookup(name)
		if s == nil {
			return // a command's own flag
		}
		if l := listSettings[name]; l != nil {
			*l(&c) = nil // the flags' list replaces the file's
		}
		if e := s.set(&c, fl.Value.String()); e != nil {
			err = fmt.Errorf("config: --%s: %w", fl.Name, e)
		}
	})
	if err != nil {
		return c, err
	}
	return c, c.Validate()
}

func loadFile(c *Config, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return Parse(c, path, b)
}

// Parse applies a YAML document of settings to c; path names it in errors.
func Parse(c *Config, path string, b []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return fmt.Errorf("config: %s: line %d: want a mapping of settings (name: value)", path, m.Line)
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		s := lookup(k.Value)
		if s == nil {
			return fmt.Errorf("config: %s: line %d: unknown setting %q%s", path, k.Line, k.Value, suggest(k.Value))
		}
		values := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode && listSettings[k.Value] != nil {
			values = v.Content
		}
		for _, v := range values {
			if v.Kind != yaml.ScalarNode {
				return fmt.Errorf("config: %s: line %d: %s: want a single value", path, v.Line, k.Value)
			}
			if err := s.set(c, v.Value); err != nil {
				return fmt.Errorf("config: %s: line %d: %s: %w", path, v.Line, k.Value, err)
			}
		}
	}
	return nil
}

// suggest names the closest known setting, for typos.
func suggest(name string) string {
	best, bestD := "", 4
	for _, s := range settings {
		if d := editDistance(name, s.name); d < bestD {
			best, bestD = s.name, d
		}
	}
	if best == "" {
		names := make([]string, len(settings))
		for i, s := range settings {
			names[i] = s.name
		}
		sort.Strings(names)
		return " (known settings: " + strings.Join(names, ", ") + ")"
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Validate checks settings that depend on each other.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("config: data_dir is empty; set --data-dir or data_dir: to a directory")
	}
	if c.Listen == "" && len(c.AuditLogs) == 0 {
		return errors.New("config: listen is empty and no audit_log is given: das serve would capture nothing; set --listen HOST:PORT or --audit-log PATH")
	}
	seen := map[string]bool{}
	for _, p := range c.AuditLogs {
		// Two tailers of one file would deliver each line twice.
		if p = filepath.Clean(p); seen[p] {
			return fmt.Errorf("config: audit_log %s is given twice; list each server_audit file once", p)
		}
		seen[p] = true
	}
	if len(c.AuditLogs) > 0 && c.AuditMaxLine <= c.AuditQueryLogLimit {
		// The plugin writes queries of up to the limit: each would be cut again.
		return fmt.Errorf("config: audit_max_line (%d) is not above audit_query_log_limit (%d): lines the server writes whole would be cut; set --audit-max-line or audit_max_line: to the limit plus 1KiB or more for the other fields", c.AuditMaxLine, c.AuditQueryLogLimit)
	}
	if c.KMS == "aws" && c.KMSKeyID == "" {
		return errors.New("config: kms_key_id is required when kms is aws; set --kms-key-id or kms_key_id: to a key id, alias/NAME or ARN")
	}
	return nil
}

// AuditLocation is audit_time_zone's location ("" is Local).
func (c *Config) AuditLocation() (*time.Location, error) {
	if c.AuditTimeZone == "" {
		return time.Local, nil
	}
	loc, err := zone(c.AuditTimeZone)
	if err != nil {
		return nil, fmt.Errorf("config: audit_time_zone: %w", err)
	}
	return loc, nil
}

// zone loads a time zone by name; "" (which LoadLocation takes for UTC) is
// refused as ambiguous.
func zone(name string) (*time.Location, error) {
	loc, err := time.LoadLocation(name)
	if err != nil || name == "" {
		return nil, fmt.Errorf("%q is not a time zone (write the database server's zone as an IANA name such as Europe/Berlin or America/New_York, UTC, or Local for das's own)", name)
	}
	return loc, nil
}

// StreamIDFile is where a generated stream id is kept.
func (c *Config) StreamIDFile() string { return filepath.Join(c.DataDir, "stream-id") }

// LocalKeyFile is the local KMS master key.
func (c *Config) LocalKeyFile() string { return filepath.Join(c.DataDir, "kms", "master.key") }

// LogDir is the local stream log.
func (c *Config) LogDir() string { return filepath.Join(c.DataDir, "stream") }

// ResolveStreamID fills StreamID: the configured one, else the one kept in
// the data dir, else (when create is set) a new Aurora-style id
// ("cluster-" and 26 upper-case base32 characters) that is kept from then on.
func (c *Config) ResolveStreamID(create bool) error {
	if c.StreamID != "" {
		return nil
	}
	b, err := os.ReadFile(c.StreamIDFile())
	if err == nil {
		id := strings.TrimSpace(string(b))
		if !streamIDRe.MatchString(id) {
			return fmt.Errorf("config: %s holds %q, which is not a stream id; fix or delete the file", c.StreamIDFile(), id)
		}
		c.StreamID = id
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("config: stream id: %w", err)
	}
	if !create {
		return fmt.Errorf("config: no stream id: %s does not exist; set --stream-id", c.StreamIDFile())
	}
	id := NewStreamID()
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("config: data dir: %w", err)
	}
	if err := writeFileAtomic(c.StreamIDFile(), []byte(id+"\n"), 0o644); err != nil {
		return fmt.Errorf("config: stream id: %w", err)
	}
	c.StreamID = id
	return nil
}

// NewStreamID returns "cluster-" and 26 upper-case base32 characters, the
// shape of an Aurora DbClusterResourceId.
func NewStreamID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return "cluster-" + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])
}

func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ParseSize reads a byte count: 4096, 64KiB, 64MiB, 1GiB (KB/MB/GB are taken
// as the same binary units).
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}
