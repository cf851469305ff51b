package preflight

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/das-mysql/das/internal/config"
	"github.com/das-mysql/das/internal/testenv"
)

func TestAuditFileChecks(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "server_audit.log")
	if err := os.WriteFile(good, []byte("20260101 10:00:00,h,u,localhost,1,0,CONNECT,,,0\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"server_audit.log.1", "server_audit.log.2", "server_audit.log.bak"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "link.log")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "auditdir")
	if err := os.Mkdir(sub, 0o750); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "nope.log")

	tests := []struct {
		name, path       string
		file, dirStatus  string
		measured, fixHas string
	}{
		{"regular", good, Pass, Pass, "regular file", ""},
		{"missing", missing, Fail, Pass, "does not exist", "SET GLOBAL server_audit_file_path='" + missing + "'; SET GLOBAL server_audit_logging=ON;"},
		{"symlink", link, Fail, Pass, "is a symlink to " + good, "set audit_log to the file itself: " + good},
		{"directory", sub, Fail, Pass, "is a directory", "set audit_log to " + filepath.Join(sub, "server_audit.log")},
		{"no directory", filepath.Join(dir, "gone", "a.log"), Fail, Fail, "does not exist", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := checkAuditFile(tt.path)
			if f.Status != tt.file || !strings.Contains(f.Measured, tt.measured) || !strings.Contains(f.Fix, tt.fixHas) {
				t.Errorf("file check = %s %q fix %q; want %s, %q, fix with %q", f.Status, f.Measured, f.Fix, tt.file, tt.measured, tt.fixHas)
			}
			d := checkAuditDir(tt.path)
			if d.Status != tt.dirStatus {
				t.Errorf("dir check = %s %q; want %s", d.Status, d.Measured, tt.dirStatus)
			}
		})
	}
	d := checkAuditDir(good)
	if want := "2 rotated files (server_audit.log.1 ... server_audit.log.2)"; !strings.Contains(d.Measured, want) {
		t.Errorf("dir check says %q, want %q", d.Measured, want)
	}
	if os.Geteuid() != 0 { // root reads anything
		if err := os.Chmod(filepath.Join(dir, "server_audit.log.2"), 0); err != nil {
			t.Fatal(err)
		}
		if d := checkAuditDir(good); d.Status != Fail || !strings.Contains(d.Measured, "server_audit.log.2: permission denied") {
			t.Errorf("unreadable rotation: %s %q", d.Status, d.Measured)
		}
	}
}

func TestAuditSettingChecks(t *testing.T) {
	datadir := t.TempDir()
	logDir := filepath.Join(datadir, "audit")
	if err := os.Mkdir(logDir, 0o750); err != nil {
		t.Fatal(err)
	}
	abs := filepath.Join(datadir, "x", "audit.log")
	base := map[string]string{
		"server_audit_logging":          "ON",
		"server_audit_output_type":      "file",
		"server_audit_file_path":        abs,
		"server_audit_events":           "CONNECT,QUERY",
		"server_audit_file_rotate_size": "104857600",
		"server_audit_file_rotations":   "9",
		"server_audit_query_log_limit":  "1048576",
		"server_audit_incl_users":       "",
		"server_audit_excl_users":       "",
	}
	tests := []struct {
		name    string
		set     map[string]string
		paths   []string
		check   string
		status  string
		measure string
		fix     string
	}{
		{"all good", nil, []string{abs}, "", Pass, "", ""},
		{"logging off", map[string]string{"server_audit_logging": "OFF"}, []string{abs}, "audit.logging", Fail, "server_audit_logging=OFF", "run SET GLOBAL server_audit_logging=ON; and, to keep it across restarts, put in my.cnf under [mariadb]: server_audit_logging=ON"},
		{"syslog", map[string]string{"server_audit_output_type": "syslog"}, []string{abs}, "audit.output-type", Fail, "syslog", "SET GLOBAL server_audit_output_type=file;"},
		{"default path is in the datadir", map[string]string{"server_audit_file_path": "server_audit.log"}, []string{filepath.Join(datadir, "server_audit.log")}, "audit.file-path", Pass, "(" + filepath.Join(datadir, "server_audit.log") + ")", ""},
		{"empty path is the default", map[string]string{"server_audit_file_path": ""}, []string{filepath.Join(datadir, "server_audit.log")}, "audit.file-path", Pass, "", ""},
		{"relative path", map[string]string{"server_audit_file_path": "x/audit.log"}, []string{abs}, "audit.file-path", Pass, "", ""},
		{"a directory gets server_audit.log", map[string]string{"server_audit_file_path": "audit"}, []string{filepath.Join(logDir, "server_audit.log")}, "audit.file-path", Pass, "", ""},
		{"another file", map[string]string{"server_audit_file_path": "server_audit.log"}, []string{abs}, "audit.file-path", Fail, "but das follows " + abs,
			"SET GLOBAL server_audit_file_path='" + abs + "'; and, to keep it across restarts, put in my.cnf under [mariadb]: server_audit_file_path=" + abs},
		{"one of several paths", nil, []string{"/elsewhere/a.log", abs}, "audit.file-path", Pass, "das follows it as " + abs, ""},
		{"all events", map[string]string{"server_audit_events": ""}, []string{abs}, "audit.events", Pass, "every event class", ""},
		{"no connect", map[string]string{"server_audit_events": "QUERY,TABLE"}, []string{abs}, "audit.events", Fail, "no CONNECT", "SET GLOBAL server_audit_events='CONNECT,QUERY,TABLE';"},
		{"no query", map[string]string{"server_audit_events": "connect,table"}, []string{abs}, "audit.events", Fail, "no QUERY", "SET GLOBAL server_audit_events='CONNECT,QUERY,TABLE';"},
		{"query parts", map[string]string{"server_audit_events": "CONNECT,QUERY_DDL,QUERY_DML"}, []string{abs}, "audit.events", Warn, "only QUERY_DDL,QUERY_DML", "SET GLOBAL server_audit_events='CONNECT,QUERY,TABLE';"},
		{"excluded users", map[string]string{"server_audit_excl_users": "backup"}, []string{abs}, "audit.users", Warn, "server_audit_excl_users=backup", "SET GLOBAL server_audit_excl_users='';"},
		{"small rotations", map[string]string{"server_audit_file_rotate_size": "1000000"}, []string{abs}, "audit.rotation", Warn, "das can fall 8.6 MiB behind",
			"SET GLOBAL server_audit_file_rotate_size=104857600; SET GLOBAL server_audit_file_rotations=9;"},
		{"no rotation", map[string]string{"server_audit_file_rotate_size": "4096", "server_audit_file_rotations": "0"}, []string{abs}, "audit.rotation", Pass, "never rotated", ""},
		{"query limit", map[string]string{"server_audit_query_log_limit": "1024"}, []string{abs}, "audit.query-limit", Warn, "longer than 1024 bytes are cut",
			"SET GLOBAL server_audit_query_log_limit=1048576; and, to keep it across restarts, put in my.cnf under [mariadb]: server_audit_query_log_limit=1048576"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := map[string]string{}
			for k, x := range base {
				v[k] = x
			}
			for k, x := range tt.set {
				v[k] = x
			}
			r := &Report{Checks: auditSettingChecks(v, datadir+"/", tt.paths)}
			for _, c := range r.Checks {
				if c.Name == tt.check {
					if c.Status != tt.status || !strings.Contains(c.Measured, tt.measure) || !strings.Contains(c.Fix, tt.fix) {
						t.Errorf("%s = %s %q fix %q; want %s, %q, fix with %q", c.Name, c.Status, c.Measured, c.Fix, tt.status, tt.measure, tt.fix)
					}
				} else if c.Status != Pass {
					t.Errorf("%s = %s %q; want pass", c.Name, c.Status, c.Measured)
				}
			}
			if _, ok := r.Find(tt.check); tt.check != "" && !ok {
				t.Errorf("no check %s in %+v", tt.check, r.Checks)
			}
		})
	}
}

func TestAuditNoAccount(t *testing.T) {
	path := filepath.Join(t.TempDir(), "server_audit.log")
	os.WriteFile(path, nil, 0o600)
	o := Options{Getenv: func(string) string { return "" }}
	o.defaults()
	r := &Report{}
	checkAuditLogs(context.Background(), r, config.Config{Upstream: "127.0.0.1:1", AuditLogs: []string{path}}, o)
	c, _ := r.Find("audit.db")
	if c.Status != Warn || !strings.Contains(c.Fix, EnvDBUser) || !strings.Contains(c.Fix, "--db-dsn") {
		t.Errorf("audit.db = %s %q fix %q; want a warning naming the ways to give an account", c.Status, c.Measured, c.Fix)
	}
	if len(r.Checks) != 3 { // file, dir, db
		t.Errorf("checks: %+v", r.Checks)
	}
}

// fixRE finds the statements of a check's fix ("run STMT; STMT; and, to
// keep it ..."); applyFix runs them as root, as a user following the report
// would.
var fixRE = regexp.MustCompile(`run (.*;) and, to keep it`)

func applyFix(t *testing.T, root *sql.DB, c Check) {
	t.Helper()
	m := fixRE.FindStringSubmatch(c.Fix)
	if m == nil {
		t.Fatalf("%s: fix %q has no SQL to run", c.Name, c.Fix)
	}
	for _, stmt := range strings.SplitAfter(m[1], "; ") {
		if stmt = strings.TrimSpace(stmt); stmt != "" {
			if _, err := root.Exec(stmt); err != nil {
				t.Fatalf("%s: the fix's %q: %v", c.Name, stmt, err)
			}
		}
	}
}

func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1) // SET GLOBAL applies to later sessions; one keeps it simple
	return db
}

func auditStatuses(r *Report) map[string]string {
	m := map[string]string{}
	for _, c := range r.Checks {
		if strings.HasPrefix(c.Name, "audit.") {
			m[c.Name] = c.Status
		}
	}
	return m
}

// TestAuditMariaDB runs the preflight against a MariaDB with server_audit:
// set up as das needs, then set up wrong, then fixed by running the SQL the
// report prints. The server runs in India's time (TZ, so server_audit's
// too) with sessions in +03:00 (@@time_zone, which server_audit ignores).
func TestAuditMariaDB(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "audit", "server_audit.log")
	if err := os.Mkdir(filepath.Dir(logPath), 0o750); err != nil {
		t.Fatal(err)
	}
	db := testenv.MariaDB(t, testenv.MariaDBArgs("--plugin-load-add=server_audit", "--server-audit-logging=ON",
		"--server-audit-file-path="+logPath, "--server-audit-events=CONNECT,QUERY,TABLE",
		"--server-audit-file-rotate-size=104857600", "--server-audit-query-log-limit=65536",
		// A POSIX TZ string (India's: IST, UTC+05:30, no DST), so that the
		// server's zone needs no tzdata on the machine.
		"--default-time-zone=+03:00"), testenv.MariaDBEnv("TZ=IST-5:30"))
	root := openDB(t, db.RootDSN())
	c := config.Defaults()
	c.AuditTimeZone = "Asia/Kolkata"
	c.DataDir = filepath.Join(dir, "das-data")
	c.Upstream = db.Addr()
	c.UpstreamTLS = "off"
	c.AuditLogs = []string{logPath}
	ctx := context.Background()
	run := func(o Options) *Report {
		t.Helper()
		r := Local(ctx, c, o)
		t.Logf("%s", text(r))
		return r
	}
	// Any account will do: the test user has no global privilege.
	userDSN := Options{DBDSN: db.UserDSN()}

	t.Run("ready", func(t *testing.T) {
		r := run(userDSN)
		want := []string{"audit.file", "audit.dir", "audit.db", "audit.plugin", "audit.logging", "audit.output-type",
			"audit.file-path", "audit.events", "audit.rotation", "audit.query-limit", "audit.time-zone"}
		got := auditStatuses(r)
		for _, n := range want {
			if got[n] != Pass {
				t.Errorf("%s = %q, want pass", n, got[n])
			}
		}
		if len(got) != len(want) {
			t.Errorf("audit checks %v, want %v", got, want)
		}
		if !r.OK() {
			t.Errorf("report not OK: %v", r.Failed())
		}
	})

	t.Run("time zone", func(t *testing.T) {
		defer func(z string) { c.AuditTimeZone = z }(c.AuditTimeZone)
		// The premise: sessions are in +03:00, and server_audit writes India's time.
		var sessionTZ string
		if err := root.QueryRow("SELECT @@time_zone").Scan(&sessionTZ); err != nil || sessionTZ != "+03:00" {
			t.Fatalf("session time zone %q, %v; want +03:00", sessionTZ, err)
		}
		b, _ := os.ReadFile(logPath)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		last := lines[len(lines)-1]
		if len(last) < 17 {
			t.Fatalf("audit log ends with %q", last)
		}
		logged, err := time.ParseInLocation("20060102 15:04:05", last[:17], time.FixedZone("IST", 19800))
		if d := time.Since(logged); err != nil || d < -time.Minute || d > time.Minute {
			t.Fatalf("the audit log's last line %q is not India's time now (%v)", last, err)
		}

		ch, _ := run(userDSN).Find("audit.time-zone")
		if want := "server_audit times are in the server's zone IST (UTC+05:30); audit_time_zone Asia/Kolkata is UTC+05:30 now"; ch.Status != Pass || ch.Measured != want {
			t.Errorf("audit.time-zone = %s %q fix %q; want pass %q", ch.Status, ch.Measured, ch.Fix, want)
		}
		c.AuditTimeZone = "UTC"
		r := run(userDSN)
		ch, _ = r.Find("audit.time-zone")
		if ch.Status != Fail || !strings.Contains(ch.Measured, "(UTC+05:30), but audit_time_zone UTC is UTC+00:00 now") ||
			!strings.Contains(ch.Fix, "set audit_time_zone") || !strings.Contains(ch.Fix, "its system_time_zone is IST, UTC+05:30 now") {
			t.Errorf("audit.time-zone with UTC = %s %q fix %q", ch.Status, ch.Measured, ch.Fix)
		}
		if r.OK() {
			t.Error("report OK with the wrong time zone")
		}
	})

	t.Run("account from the environment", func(t *testing.T) {
		env := map[string]string{EnvDBUser: testenv.TestUser, EnvDBPassword: db.UserPassword()}
		r := run(Options{Getenv: func(k string) string { return env[k] }})
		if ch, _ := r.Find("audit.db"); ch.Status != Pass || !strings.Contains(ch.Measured, testenv.TestUser+"@"+db.Addr()) {
			t.Errorf("audit.db = %s %q", ch.Status, ch.Measured)
		}
		env[EnvDBPassword] = "wrong"
		r = run(Options{Getenv: func(k string) string { return env[k] }})
		ch, _ := r.Find("audit.db")
		if ch.Status != Fail || !strings.Contains(ch.Measured, "Access denied") || !strings.Contains(ch.Fix, EnvDBUser) {
			t.Errorf("audit.db with a wrong password = %s %q fix %q", ch.Status, ch.Measured, ch.Fix)
		}
		if strings.Contains(text(r), "wrong") {
			t.Error("the report shows the password")
		}
		if _, ok := r.Find("audit.plugin"); ok {
			t.Error("server checks ran without a connection")
		}
	})

	t.Run("misconfigured, then fixed", func(t *testing.T) {
		for _, s := range []string{
			"SET GLOBAL server_audit_logging=OFF",
			"SET GLOBAL server_audit_events='QUERY_DDL'",
			"SET GLOBAL server_audit_file_rotate_size=4096",
			"SET GLOBAL server_audit_query_log_limit=1024",
			"SET GLOBAL server_audit_file_path='elsewhere.log'", // relative: in the datadir
		} {
			if _, err := root.Exec(s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
		r := run(userDSN)
		want := map[string]string{"audit.logging": Fail, "audit.events": Fail, "audit.rotation": Warn,
			"audit.query-limit": Warn, "audit.file-path": Fail}
		for n, st := range want {
			if ch, _ := r.Find(n); ch.Status != st {
				t.Errorf("%s = %s %q, want %s", n, ch.Status, ch.Measured, st)
			}
		}
		if ch, _ := r.Find("audit.file-path"); !strings.Contains(ch.Measured, filepath.Join(db.DataDir(), "elsewhere.log")) {
			t.Errorf("audit.file-path does not resolve the relative path in the datadir: %q", ch.Measured)
		}
		if r.OK() {
			t.Error("report OK with logging off")
		}
		// The order matters: the path first, so logging starts in das's file.
		for _, n := range []string{"audit.file-path", "audit.events", "audit.rotation", "audit.query-limit", "audit.logging"} {
			ch, _ := r.Find(n)
			applyFix(t, root, ch)
		}
		r = run(userDSN)
		for n := range want {
			if ch, _ := r.Find(n); ch.Status != Pass {
				t.Errorf("after the fix, %s = %s %q", n, ch.Status, ch.Measured)
			}
		}
		if !r.OK() {
			t.Errorf("report not OK after the fixes: %v", r.Failed())
		}
	})
}

// TestAuditMariaDBNoPlugin: without server_audit the report says to install
// it, and its SQL does.
func TestAuditMariaDBNoPlugin(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "server_audit.log")
	db := testenv.MariaDB(t)
	root := openDB(t, db.RootDSN())
	o := Options{DBDSN: db.RootDSN()}
	o.defaults()
	c := config.Config{Upstream: db.Addr(), AuditLogs: []string{logPath}}
	r := &Report{}
	checkAuditLogs(context.Background(), r, c, o)
	t.Logf("%s", text(r))
	if ch, _ := r.Find("audit.file"); ch.Status != Fail || !strings.Contains(ch.Measured, "does not exist") {
		t.Errorf("audit.file = %s %q", ch.Status, ch.Measured)
	}
	ch, _ := r.Find("audit.plugin")
	if ch.Status != Fail || !strings.Contains(ch.Fix, "run INSTALL SONAME 'server_audit';") || !strings.Contains(ch.Fix, "plugin_load_add=server_audit") {
		t.Fatalf("audit.plugin = %s %q fix %q", ch.Status, ch.Measured, ch.Fix)
	}
	if _, ok := r.Find("audit.logging"); ok {
		t.Error("settings checked without the plugin")
	}
	applyFix(t, root, ch)
	// The file check's fix makes the plugin write das's file.
	f, _ := r.Find("audit.file")
	applyFix(t, root, f)
	r = &Report{}
	checkAuditLogs(context.Background(), r, c, o)
	t.Logf("%s", text(r))
	for _, n := range []string{"audit.file", "audit.plugin", "audit.logging", "audit.file-path", "audit.events"} {
		if ch, _ := r.Find(n); ch.Status != Pass {
			t.Errorf("after INSTALL SONAME and the file's fix, %s = %s %q", n, ch.Status, ch.Measured)
		}
	}
}

func text(r *Report) string {
	var b strings.Builder
	r.WriteText(&b)
	return b.String()
}

func TestAuditZoneCheck(t *testing.T) {
	load := func(name string) *time.Location {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Fatal(err)
		}
		return loc
	}
	winter := time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)
	summer := time.Date(2026, 7, 15, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		serverOff int
		sysTZ     string
		loc       *time.Location
		now       time.Time
		status    string
		measured  string
		fix       string
	}{
		{"match", 3600, "CET", load("Europe/Berlin"), winter, Pass,
			"server_audit times are in the server's zone CET (UTC+01:00); audit_time_zone Europe/Berlin is UTC+01:00 now", ""},
		{"match in summer", 7200, "CEST", load("Europe/Berlin"), summer, Pass,
			"server_audit times are in the server's zone CEST (UTC+02:00); audit_time_zone Europe/Berlin is UTC+02:00 now", ""},
		{"half-hour zone", 19800, "IST", load("Asia/Kolkata"), winter, Pass,
			"server_audit times are in the server's zone IST (UTC+05:30); audit_time_zone Asia/Kolkata is UTC+05:30 now", ""},
		{"rounded to the minute", 19801, "IST", load("Asia/Kolkata"), winter, Pass, "(UTC+05:30)", ""},
		{"same offset, other zone", 0, "UTC", load("Europe/London"), winter, Pass,
			"audit_time_zone Europe/London is UTC+00:00 now; the abbreviations differ (UTC, GMT): if only one of the zones has daylight saving time", ""},
		{"server in Berlin, das in UTC", 3600, "CET", time.UTC, winter, Fail,
			"server_audit times are in the server's zone CET (UTC+01:00), but audit_time_zone UTC is UTC+00:00 now: every event's logTime would be 1h in the future",
			"set audit_time_zone (--audit-time-zone, or audit_time_zone:) to the database server's zone (its system_time_zone is CET, UTC+01:00 now), as an IANA name such as Europe/Berlin: CET is an abbreviation, not an IANA name"},
		{"half-hour mismatch", 19800, "IST", load("Europe/Berlin"), summer, Fail,
			"server_audit times are in the server's zone IST (UTC+05:30), but audit_time_zone Europe/Berlin is UTC+02:00 now: every event's logTime would be 3h30m in the future",
			"its system_time_zone is IST, UTC+05:30 now"},
		{"server in UTC", 0, "UTC", load("Asia/Kolkata"), winter, Fail,
			"but audit_time_zone Asia/Kolkata is UTC+05:30 now: every event's logTime would be 5h30m in the past",
			"set audit_time_zone to UTC (--audit-time-zone UTC, or audit_time_zone: UTC)"},
		{"west of UTC", -18000, "EST", load("America/Los_Angeles"), winter, Fail,
			"the server's zone EST (UTC-05:00), but audit_time_zone America/Los_Angeles is UTC-08:00 now: every event's logTime would be 3h in the future", "EST is an abbreviation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := auditZoneCheck(tt.serverOff, tt.sysTZ, tt.loc, tt.now)
			if c.Status != tt.status || !strings.Contains(c.Measured, tt.measured) || !strings.Contains(c.Fix, tt.fix) || (tt.fix == "") != (c.Fix == "") {
				t.Errorf("= %s %q fix %q;\nwant %s, %q, fix with %q", c.Status, c.Measured, c.Fix, tt.status, tt.measured, tt.fix)
			}
		})
	}
	if c := auditZoneCheck(3600, "CET", time.Local, winter); !strings.Contains(c.Measured, "audit_time_zone Local (das's own zone, ") {
		t.Errorf("Local: %q", c.Measured)
	}
}
