package preflight

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/das-mysql/das/internal/config"
)

// The audit-log checks. The local ones need only the file system: das must
// be able to read the file it follows and find its rotations. The server
// ones ask the database whether server_audit writes, to that file, what das
// needs, and whether its local time is audit_time_zone's. Any account will
// do: SHOW GLOBAL VARIABLES and information_schema.PLUGINS need no privilege.
// Each failure names the SQL that fixes it at once and the my.cnf line that
// keeps it across restarts.

// The account for the server checks when Options.DBDSN is empty; it is used
// with the upstream's address.
const (
	EnvDBUser     = "DAS_PREFLIGHT_DB_USER"
	EnvDBPassword = "DAS_PREFLIGHT_DB_PASSWORD"
)

const (
	// MinAuditRotateSize is the server_audit_file_rotate_size under which
	// the rotation check warns: with the default 1 MB and 9 rotations a
	// reader that falls ten megabytes behind (a second of a busy server)
	// finds its next file already deleted.
	MinAuditRotateSize = 16 << 20
	// MinAuditQueryLogLimit is the server_audit_query_log_limit under which
	// the check warns that statements are cut in the log.
	MinAuditQueryLogLimit = 8192

	auditDefaultFile     = "server_audit.log" // the plugin's default name, also used inside a directory
	suggestedRotateSize  = 100 << 20
	suggestedRotations   = 9
	suggestedQueryLimit  = 1 << 20
	suggestedAuditEvents = "CONNECT,QUERY,TABLE"
)

func checkAuditLogs(ctx context.Context, r *Report, c config.Config, o Options) {
	for _, p := range c.AuditLogs {
		r.add(timed(ctx, o.Timeout, "audit.file", func(context.Context) Check { return checkAuditFile(p) }))
		r.add(timed(ctx, o.Timeout, "audit.dir", func(context.Context) Check { return checkAuditDir(p) }))
	}
	checkAuditServer(ctx, r, c, o)
}

// ---- local: the file and its directory ----

const unreadableFix = "the plugin creates its files with mariadbd's umask (0660 by default, owner mysql): add das's user to the mysql group " +
	"and chmod g+r the files; to keep new files group-readable, set UMASK=0640 for mariadbd (systemctl edit mariadb: [Service] Environment=UMASK=0640)"

// checkAuditFile checks that path is a regular file das can read. The
// tailer reads only regular files (it lstats, so a symlink is not followed).
func checkAuditFile(path string) Check {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		abs := absPath(path)
		return Check{Status: Fail, Measured: fmt.Sprintf("%s does not exist: das would follow nothing", path),
			Fix: "make server_audit write it: " + sqlFix(fmt.Sprintf("SET GLOBAL server_audit_file_path=%s; SET GLOBAL server_audit_logging=ON;", sqlString(abs)),
				"server_audit_file_path="+abs+", server_audit_logging=ON") + "; or point audit_log at the file the plugin writes"}
	case err != nil:
		return Check{Status: Fail, Measured: err.Error(), Fix: "make the directories on the way to it searchable (x) by das's user"}
	case fi.Mode()&os.ModeSymlink != 0:
		target, terr := filepath.EvalSymlinks(path)
		if terr != nil {
			target = "(" + terr.Error() + ")"
		}
		return Check{Status: Fail, Measured: fmt.Sprintf("%s is a symlink to %s: das reads only regular files, and follows rotations by the name the plugin renames", path, target),
			Fix: "set audit_log to the file itself: " + target}
	case fi.IsDir():
		return Check{Status: Fail, Measured: path + " is a directory",
			Fix: "server_audit writes " + auditDefaultFile + " inside a directory given as its file path: set audit_log to " + filepath.Join(path, auditDefaultFile)}
	case !fi.Mode().IsRegular():
		return Check{Status: Fail, Measured: fmt.Sprintf("%s is not a regular file (%s)", path, fi.Mode().Type()),
			Fix: "point audit_log (and server_audit_file_path) at a regular file"}
	}
	if err := readable(path); err != nil {
		return Check{Status: Fail, Measured: fmt.Sprintf("%s: %v", path, err), Fix: unreadableFix}
	}
	return Check{Status: Pass, Measured: fmt.Sprintf("%s: regular file, %s, %s, readable", path, humanBytes(uint64(fi.Size())), owner(fi))}
}

// checkAuditDir checks that das can look up the rotated files (FILE.1,
// FILE.2, ...; zero-padded when server_audit_file_rotations >= 10) in the
// file's directory and read those there are.
func checkAuditDir(path string) Check {
	dir := filepath.Dir(path)
	if err := syscall.Access(dir, 0x4|0x1); err != nil { // R_OK|X_OK
		return Check{Status: Fail, Measured: fmt.Sprintf("%s: %v", dir, err),
			Fix: fmt.Sprintf("das finds the rotated files by name in %s: make it readable and searchable by das's user (chmod g+rx, with das's user in its group)", dir)}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return Check{Status: Fail, Measured: fmt.Sprintf("%s: %v", dir, err), Fix: "make " + dir + " readable by das's user"}
	}
	base := filepath.Base(path)
	var rotated, bad []string
	for _, e := range ents {
		suffix, ok := strings.CutPrefix(e.Name(), base+".")
		if !ok || suffix == "" || strings.Trim(suffix, "0123456789") != "" {
			continue
		}
		rotated = append(rotated, e.Name())
		if err := readable(filepath.Join(dir, e.Name())); err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", e.Name(), err))
		}
	}
	sort.Slice(rotated, func(i, j int) bool { return rotationIndex(rotated[i]) < rotationIndex(rotated[j]) })
	if len(bad) > 0 {
		return Check{Status: Fail, Measured: fmt.Sprintf("%s: %d rotated file(s) not readable: %s", dir, len(bad), strings.Join(bad, "; ")),
			Fix: unreadableFix}
	}
	switch len(rotated) {
	case 0:
		return Check{Status: Pass, Measured: fmt.Sprintf("%s is readable; no rotated files yet", dir)}
	case 1:
		return Check{Status: Pass, Measured: fmt.Sprintf("%s is readable; 1 rotated file (%s), readable", dir, rotated[0])}
	}
	return Check{Status: Pass, Measured: fmt.Sprintf("%s is readable; %d rotated files (%s ... %s), all readable",
		dir, len(rotated), rotated[0], rotated[len(rotated)-1])}
}

func rotationIndex(name string) int {
	n, _ := strconv.Atoi(name[strings.LastIndexByte(name, '.')+1:])
	return n
}

// readable opens path and reads a byte, as the tailer will.
func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return errors.New("permission denied")
		}
		return err
	}
	defer f.Close()
	if _, err := f.Read(make([]byte, 1)); err != nil && err != io.EOF {
		return err
	}
	return nil
}

func owner(fi os.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("mode %04o, uid %d gid %d", fi.Mode().Perm(), st.Uid, st.Gid)
	}
	return fmt.Sprintf("mode %04o", fi.Mode().Perm())
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// ---- server: the plugin and its settings ----

type nopLogger struct{}

func (nopLogger) Print(...any) {}

// auditDBConfig is the account for the server checks: Options.DBDSN, or the
// upstream with the account from the environment; nil when there is none.
func auditDBConfig(c config.Config, o Options) (*gomysql.Config, error) {
	var cfg *gomysql.Config
	if o.DBDSN != "" {
		var err error
		if cfg, err = gomysql.ParseDSN(o.DBDSN); err != nil {
			return nil, err // the driver's errors do not repeat the password
		}
	} else {
		user := o.Getenv(EnvDBUser)
		if c.Upstream == "" || user == "" {
			return nil, nil
		}
		cfg = gomysql.NewConfig()
		cfg.User, cfg.Passwd = user, o.Getenv(EnvDBPassword)
		cfg.Net, cfg.Addr = "tcp", c.Upstream
		cfg.TLSConfig = "preferred" // TLS when the server offers it, as upstream_tls auto would
	}
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = o.Timeout, o.Timeout, o.Timeout
	cfg.Logger = nopLogger{} // its messages would interleave with the report
	return cfg, nil
}

func checkAuditServer(ctx context.Context, r *Report, c config.Config, o Options) {
	cfg, err := auditDBConfig(c, o)
	if err != nil {
		r.add(Check{Name: "audit.db", Status: Fail, Measured: "--db-dsn: " + err.Error(),
			Fix: "write it as USER:PASSWORD@tcp(HOST:PORT)/"})
		return
	}
	if cfg == nil {
		r.add(Check{Name: "audit.db", Status: Warn,
			Measured: "not checked: no database account, so whether server_audit writes what das follows is unknown",
			Fix: fmt.Sprintf("give an account (any: only variables and information_schema are read): %s and %s with upstream HOST:PORT, or --db-dsn 'USER:PASSWORD@tcp(HOST:PORT)/'",
				EnvDBUser, EnvDBPassword)}) // a socket DSN works too: USER:PASSWORD@unix(/run/mysqld/mysqld.sock)/
		return
	}
	conn, err := gomysql.NewConnector(cfg)
	if err != nil {
		r.add(Check{Name: "audit.db", Status: Fail, Measured: err.Error(), Fix: "check --db-dsn"})
		return
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	db.SetMaxOpenConns(1)

	who := cfg.User + "@" + cfg.Addr
	var version, datadir string
	dc := timed(ctx, o.Timeout, "audit.db", func(ctx context.Context) Check {
		if err := db.QueryRowContext(ctx, "SELECT VERSION(), @@datadir").Scan(&version, &datadir); err != nil {
			var me *gomysql.MySQLError
			if errors.As(err, &me) && (me.Number == 1045 || me.Number == 1044) {
				return Check{Status: Fail, Measured: fmt.Sprintf("%s: %v", who, err),
					Fix: fmt.Sprintf("check the account (%s/%s or --db-dsn) and that it may log in from this host", EnvDBUser, EnvDBPassword)}
			}
			return Check{Status: Fail, Measured: fmt.Sprintf("%s: %v", who, err),
				Fix: "check that the database runs and that --db-dsn or upstream names it"}
		}
		return Check{Status: Pass, Measured: fmt.Sprintf("%s: %s, datadir %s", who, version, datadir)}
	})
	r.add(dc)
	if dc.Status == Fail {
		return
	}

	pc := timed(ctx, o.Timeout, "audit.plugin", func(ctx context.Context) Check {
		var status, pv string
		err := db.QueryRowContext(ctx,
			"SELECT PLUGIN_STATUS, PLUGIN_VERSION FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'SERVER_AUDIT'").Scan(&status, &pv)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if !strings.Contains(strings.ToLower(version), "mariadb") {
				return Check{Status: Fail, Measured: fmt.Sprintf("server_audit is not installed (%s)", version),
					Fix: "server_audit is MariaDB's plugin (and Aurora MySQL's, set by its parameter group); on MySQL, capture through das's proxy (--listen) instead"}
			}
			return Check{Status: Fail, Measured: "server_audit is not installed",
				Fix: sqlFix("INSTALL SONAME 'server_audit';", "plugin_load_add=server_audit, server_audit=FORCE_PLUS_PERMANENT (so it cannot be uninstalled at run time)")}
		case err != nil:
			return Check{Status: Fail, Measured: "information_schema.PLUGINS: " + err.Error(), Fix: "see the error above"}
		case status != "ACTIVE":
			return Check{Status: Fail, Measured: fmt.Sprintf("server_audit %s is installed but %s", pv, status),
				Fix: "see why in the server's error log; then UNINSTALL SONAME 'server_audit'; INSTALL SONAME 'server_audit';"}
		}
		return Check{Status: Pass, Measured: fmt.Sprintf("server_audit %s is ACTIVE", pv)}
	})
	r.add(pc)
	if pc.Status == Fail {
		return
	}

	vars := map[string]string{}
	vc := timed(ctx, o.Timeout, "audit.settings", func(ctx context.Context) Check {
		rows, err := db.QueryContext(ctx, `SHOW GLOBAL VARIABLES LIKE 'server\_audit\_%'`)
		if err != nil {
			return Check{Status: Fail, Measured: err.Error(), Fix: "see the error above"}
		}
		defer rows.Close()
		for rows.Next() {
			var k, v string
			if err := rows.Scan(&k, &v); err != nil {
				return Check{Status: Fail, Measured: err.Error(), Fix: "see the error above"}
			}
			vars[strings.ToLower(k)] = v
		}
		if err := rows.Err(); err != nil {
			return Check{Status: Fail, Measured: err.Error(), Fix: "see the error above"}
		}
		return Check{Status: Pass, Measured: fmt.Sprintf("%d server_audit variables read", len(vars))}
	})
	if vc.Status == Fail {
		r.add(vc)
		return
	}
	for _, ch := range auditSettingChecks(vars, datadir, c.AuditLogs) {
		r.add(ch)
	}
	r.add(timed(ctx, o.Timeout, "audit.time-zone", func(ctx context.Context) Check { return checkAuditZone(ctx, db, c) }))
}

// ---- server: its time zone ----

// auditZoneQuery asks the server for its process's time zone, in which
// server_audit writes its timestamps (localtime_r, no offset): its
// abbreviation, and its offset from UTC now in seconds. CONVERT_TZ to
// 'SYSTEM' converts to the process's zone whatever the session's
// @@time_zone, and needs no time zone tables; UTC_TIMESTAMP() is fixed for
// the statement, so both of its calls are the same instant.
const auditZoneQuery = "SELECT @@system_time_zone, TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), CONVERT_TZ(UTC_TIMESTAMP(), '+00:00', 'SYSTEM'))"

// checkAuditZone compares the server's UTC offset now with audit_time_zone's.
func checkAuditZone(ctx context.Context, db *sql.DB, c config.Config) Check {
	loc, err := c.AuditLocation()
	if err != nil { // config parsing refuses a bad zone; a Config built by hand may have one
		return Check{Status: Fail, Measured: err.Error(),
			Fix: "set audit_time_zone to the database server's zone as an IANA name such as Europe/Berlin"}
	}
	var sysTZ sql.NullString
	var off sql.NullInt64
	if err := db.QueryRowContext(ctx, auditZoneQuery).Scan(&sysTZ, &off); err != nil || !off.Valid {
		if err == nil {
			err = errors.New("CONVERT_TZ to SYSTEM returned NULL")
		}
		return Check{Status: Warn, Measured: "the server's time zone is unknown: " + err.Error(),
			Fix: "check by hand that audit_time_zone is the zone of the server's SELECT @@system_time_zone (as an IANA name, not that abbreviation)"}
	}
	return auditZoneCheck(int(off.Int64), sysTZ.String, loc, time.Now())
}

// auditZoneCheck judges a server whose local time is serverOff seconds
// east of UTC at now, with system_time_zone sysTZ, for a das reading its
// times in loc.
func auditZoneCheck(serverOff int, sysTZ string, loc *time.Location, now time.Time) Check {
	serverOff = int(math.Round(float64(serverOff)/60)) * 60
	abbr, off := now.In(loc).Zone()
	name := loc.String()
	if loc == time.Local {
		name = "Local (das's own zone, " + abbr + ")"
	}
	server := fmt.Sprintf("the server's zone %s (%s)", orNone(sysTZ), utcOffset(serverOff))
	conf := fmt.Sprintf("audit_time_zone %s is %s now", name, utcOffset(off))
	if off == serverOff {
		m := "server_audit times are in " + server + "; " + conf
		if sysTZ != abbr {
			m += fmt.Sprintf("; the abbreviations differ (%s, %s): if only one of the zones has daylight saving time, the offsets differ part of the year", orNone(sysTZ), abbr)
		}
		return Check{Status: Pass, Measured: m}
	}
	when := "in the future"
	if serverOff < off {
		when = "in the past"
	}
	m := fmt.Sprintf("server_audit times are in %s, but %s: every event's logTime would be %s %s",
		server, conf, hoursMinutes(serverOff-off), when)
	if serverOff == 0 && strings.EqualFold(sysTZ, "UTC") {
		return Check{Status: Fail, Measured: m,
			Fix: "set audit_time_zone to UTC (--audit-time-zone UTC, or audit_time_zone: UTC), the database server's zone (its system_time_zone is UTC)"}
	}
	return Check{Status: Fail, Measured: m,
		Fix: fmt.Sprintf("set audit_time_zone (--audit-time-zone, or audit_time_zone:) to the database server's zone (its system_time_zone is %s, %s now), "+
			"as an IANA name such as Europe/Berlin: %s is an abbreviation, not an IANA name; the server's host names its zone in timedatectl or /etc/timezone, a container in its TZ variable",
			orNone(sysTZ), utcOffset(serverOff), orNone(sysTZ))}
}

// utcOffset writes an offset east of UTC in seconds as UTC+hh:mm.
func utcOffset(sec int) string {
	sign := '+'
	if sec < 0 {
		sign, sec = '-', -sec
	}
	return fmt.Sprintf("UTC%c%02d:%02d", sign, sec/3600, sec%3600/60)
}

// hoursMinutes writes a difference in seconds as 5h30m, 2h or 30m.
func hoursMinutes(sec int) string {
	if sec < 0 {
		sec = -sec
	}
	h, m := sec/3600, sec%3600/60
	switch {
	case h == 0:
		return fmt.Sprintf("%dm", m)
	case m == 0:
		return fmt.Sprintf("%dh", h)
	}
	return fmt.Sprintf("%dh%02dm", h, m)
}

// auditSettingChecks judges the server_audit variables (lower-case names)
// of a server whose data directory is datadir, for a das following paths.
func auditSettingChecks(v map[string]string, datadir string, paths []string) []Check {
	var out []Check
	add := func(name string, c Check) { c.Name = name; out = append(out, c) }

	if strings.EqualFold(v["server_audit_logging"], "ON") {
		add("audit.logging", Check{Status: Pass, Measured: "server_audit_logging=ON"})
	} else {
		add("audit.logging", Check{Status: Fail, Measured: fmt.Sprintf("server_audit_logging=%s: the plugin writes nothing", orNone(v["server_audit_logging"])),
			Fix: sqlFix("SET GLOBAL server_audit_logging=ON;", "server_audit_logging=ON")})
	}

	if ot := v["server_audit_output_type"]; strings.EqualFold(ot, "file") {
		add("audit.output-type", Check{Status: Pass, Measured: "server_audit_output_type=file"})
	} else {
		add("audit.output-type", Check{Status: Fail, Measured: fmt.Sprintf("server_audit_output_type=%s: das follows a file", orNone(ot)),
			Fix: sqlFix("SET GLOBAL server_audit_output_type=file;", "server_audit_output_type=file")})
	}

	writes := auditFilePath(v["server_audit_file_path"], datadir, os.Stat)
	shown := fmt.Sprintf("server_audit_file_path=%q", v["server_audit_file_path"])
	if writes != v["server_audit_file_path"] {
		shown += " (" + writes + ")"
	}
	if p, ok := followed(writes, paths); ok {
		add("audit.file-path", Check{Status: Pass, Measured: shown + ": das follows it as " + p})
	} else {
		want := absPath(paths[0])
		add("audit.file-path", Check{Status: Fail,
			Measured: fmt.Sprintf("%s, but das follows %s", shown, strings.Join(paths, ", ")),
			Fix: sqlFix(fmt.Sprintf("SET GLOBAL server_audit_file_path=%s;", sqlString(want)), "server_audit_file_path="+want) +
				"; or set audit_log to " + writes}) // a path relative to the datadir would do too; absolute is unambiguous
	}

	add("audit.events", eventsCheck(v["server_audit_events"]))

	if in, ex := v["server_audit_incl_users"], v["server_audit_excl_users"]; in != "" || ex != "" {
		m := "server_audit_incl_users=" + orNone(in) + ", server_audit_excl_users=" + orNone(ex)
		add("audit.users", Check{Status: Warn, Measured: m + ": some accounts' activity is not logged",
			Fix: sqlFix("SET GLOBAL server_audit_incl_users=''; SET GLOBAL server_audit_excl_users='';", "remove server_audit_incl_users and server_audit_excl_users") +
				" (if every account must be audited)"})
	}

	add("audit.rotation", rotationCheck(v["server_audit_file_rotate_size"], v["server_audit_file_rotations"]))

	if s, ok := v["server_audit_query_log_limit"]; ok {
		n, _ := strconv.ParseInt(s, 10, 64)
		m := fmt.Sprintf("server_audit_query_log_limit=%s", s)
		if n < MinAuditQueryLogLimit {
			add("audit.query-limit", Check{Status: Warn,
				Measured: m + fmt.Sprintf(": statements longer than %d bytes are cut in the log (das flags them dasTruncated)", n),
				Fix: sqlFix(fmt.Sprintf("SET GLOBAL server_audit_query_log_limit=%d;", suggestedQueryLimit),
					fmt.Sprintf("server_audit_query_log_limit=%d", suggestedQueryLimit))})
		} else {
			add("audit.query-limit", Check{Status: Pass, Measured: m})
		}
	}
	return out
}

// auditFilePath is where the plugin writes, as its start_logging decides:
// leading spaces are ignored, empty is server_audit.log, a relative path is
// relative to the server's working directory (its datadir), and an existing
// directory gets server_audit.log inside. The directory test is made here,
// so it holds when das runs on the database's host.
func auditFilePath(v, datadir string, stat func(string) (os.FileInfo, error)) string {
	p := strings.TrimLeft(v, " ")
	if p == "" {
		p = auditDefaultFile
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(datadir, p)
	}
	if fi, err := stat(p); err == nil && fi.IsDir() {
		p = filepath.Join(p, auditDefaultFile)
	}
	return filepath.Clean(p)
}

// followed returns the configured path that names the file at writes: the
// same absolute path, or the same file by another name (a bind mount).
func followed(writes string, paths []string) (string, bool) {
	wfi, werr := os.Stat(writes)
	for _, p := range paths {
		if absPath(p) == writes {
			return p, true
		}
		if werr == nil {
			if fi, err := os.Stat(p); err == nil && os.SameFile(fi, wfi) {
				return p, true
			}
		}
	}
	return "", false
}

// eventsCheck: das needs CONNECT (logins, disconnects, failed logins) and
// the statements (QUERY, or its QUERY_DDL/DML/DCL parts); empty logs all.
func eventsCheck(val string) Check {
	m := fmt.Sprintf("server_audit_events=%q", val)
	set := map[string]bool{}
	for _, e := range strings.Split(strings.ToUpper(val), ",") {
		if e = strings.TrimSpace(e); e != "" {
			set[e] = true
		}
	}
	if len(set) == 0 {
		return Check{Status: Pass, Measured: m + ": every event class is logged"}
	}
	fix := fmt.Sprintf("SET GLOBAL server_audit_events=%s;", sqlString(suggestedAuditEvents))
	fix = sqlFix(fix, "server_audit_events="+suggestedAuditEvents)
	var parts []string
	for _, p := range []string{"QUERY_DDL", "QUERY_DML", "QUERY_DML_NO_SELECT", "QUERY_DCL"} {
		if set[p] {
			parts = append(parts, p)
		}
	}
	switch {
	case !set["CONNECT"]:
		return Check{Status: Fail, Measured: m + ": no CONNECT, so das sees no logins, failed logins or disconnects", Fix: fix}
	case set["QUERY"]:
		return Check{Status: Pass, Measured: m + ": CONNECT and QUERY"}
	case len(parts) == 0:
		return Check{Status: Fail, Measured: m + ": no QUERY, so das sees no statements", Fix: fix}
	}
	// QUERY_* select statement classes; QUERY logs every statement, also
	// those in none of them (SHOW, SET, CALL, USE, ...).
	return Check{Status: Warn, Measured: fmt.Sprintf("%s: only %s, so other statements (SHOW, SET, CALL, ...) are not logged",
		m, strings.Join(parts, ",")), Fix: fix}
}

// rotationCheck: the plugin deletes its oldest rotation when it rotates, so
// das may fall at most rotate_size x rotations bytes behind.
func rotationCheck(sizeS, rotS string) Check {
	size, _ := strconv.ParseInt(sizeS, 10, 64)
	rot, _ := strconv.Atoi(rotS)
	m := fmt.Sprintf("server_audit_file_rotate_size=%s, server_audit_file_rotations=%s", sizeS, rotS)
	if rot == 0 {
		return Check{Status: Pass, Measured: m + ": the file is never rotated (nothing is deleted under das; the file grows until rotated by hand)"}
	}
	head := fmt.Sprintf(": das can fall %s behind before an unread file is deleted", humanBytes(uint64(size)*uint64(rot)))
	if size < MinAuditRotateSize {
		return Check{Status: Warn, Measured: m + head + " and its events lost",
			Fix: sqlFix(fmt.Sprintf("SET GLOBAL server_audit_file_rotate_size=%d; SET GLOBAL server_audit_file_rotations=%d;", suggestedRotateSize, max(rot, suggestedRotations)),
				fmt.Sprintf("server_audit_file_rotate_size=%d, server_audit_file_rotations=%d", suggestedRotateSize, max(rot, suggestedRotations)))}
	}
	return Check{Status: Pass, Measured: m + head}
}

// sqlFix joins the statement to run now and the my.cnf lines that keep it.
func sqlFix(stmt, cnf string) string {
	return fmt.Sprintf("run %s and, to keep it across restarts, put in my.cnf under [mariadb]: %s", stmt, cnf)
}

// sqlString quotes s as a SQL string literal.
func sqlString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func orNone(s string) string {
	if s == "" {
		return "''"
	}
	return s
}
