package main

import (
	"cmp"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/testenv"
)

// TestServeTablesMatchServerAudit runs statements through das while das
// also follows MariaDB's server_audit log with TABLE events on, and checks
// that for every statement the proxy's AUX events name the same tables,
// with the same operations, as the server's own TABLE events. The server
// also reports its internal tables (mysql.*_stats) and, for a table it
// both writes and reads (ALTER copies rows), a READ too: those are left
// out of the comparison, as the proxy leaves them out of its events.
func TestServeTablesMatchServerAudit(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "audit", "server_audit.log")
	os.MkdirAll(filepath.Dir(logPath), 0o755)
	db := testenv.MariaDB(t, testenv.MariaDBArgs("--plugin-load-add=server_audit", "--server-audit-logging=ON",
		"--server-audit-file-path="+logPath, "--server-audit-events=CONNECT,QUERY,TABLE"))
	data := t.TempDir()
	addr, stop := startServe(t, "--data-dir", data, "--upstream", db.Addr(), "--upstream-tls", "off", "--audit-log", logPath)
	statements := []string{
		"CREATE DATABASE tx_other",
		"CREATE TABLE tx_a (id INT PRIMARY KEY, v INT)",
		"CREATE TABLE tx_other.tx_b (id INT PRIMARY KEY, v INT)",
		"INSERT INTO tx_a VALUES (1, 10), (2, 20), (3, 30)",
		"INSERT INTO tx_other.tx_b SELECT id, v * 2 FROM tx_a WHERE id < 3",
		"SELECT a.v, b.v FROM tx_a a JOIN tx_other.tx_b b ON a.id = b.id ORDER BY a.id",
		"SELECT v FROM tx_a WHERE id IN (SELECT id FROM tx_other.tx_b)",
		"UPDATE tx_a a JOIN tx_other.tx_b b ON a.id = b.id SET a.v = b.v + 1",
		"UPDATE tx_a SET v = v + 1 WHERE id = 3",
		"DELETE FROM tx_a WHERE id = 3",
		"REPLACE INTO tx_a VALUES (3, 33)",
		// MariaDB syntax the grammar lacks: the proxy scans these.
		"SELECT HIGH_PRIORITY v FROM tx_a WHERE id = 1",
		"INSERT INTO tx_a VALUES (4, 40) RETURNING id",
		"DELETE FROM tx_a WHERE id IN (SELECT id FROM tx_other.tx_b) AND id > 3 RETURNING v",
		"SELECT 1 /*!50000 , v FROM tx_other.tx_b */",
		// Dynamic SQL: one session, compared statement by statement.
		"PREPARE tx_p FROM 'SELECT v FROM tx_a WHERE id = ?'; SET @i = 1; EXECUTE tx_p USING @i; DEALLOCATE PREPARE tx_p",
		"EXECUTE IMMEDIATE 'SELECT COUNT(*) FROM tx_other.tx_b'",
		"INSERT INTO tx_a VALUES (1, 1)",                  // fails: duplicate key
		"SELECT nope FROM tx_a",                           // fails: unknown column
		"SELECT * FROM tx_missing",                        // fails: no such table
		"UPDATE tx_a SET v = 1 WHERE nope = 2",            // fails: unknown column
		"INSERT INTO tx_a SELECT * FROM tx_other.tx_nope", // fails: no such table
		"DROP TABLE tx_nope",                              // fails: unknown table
		"SELEKT 1",                                        // fails: syntax
		// HANDLER reads rows through a handler, which may have an alias:
		// the READ names the handler's table, as the server does.
		"HANDLER tx_a OPEN AS tx_h; HANDLER tx_h READ FIRST; HANDLER tx_h CLOSE",
		"HANDLER tx_a OPEN; HANDLER tx_a READ `PRIMARY` FIRST; HANDLER tx_a CLOSE",
		"CHECKSUM TABLE tx_a",
		// Sequences are tables: created, advanced (written), dropped.
		"CREATE SEQUENCE tx_s",
		"SELECT NEXTVAL(tx_s)",
		"SELECT NEXT VALUE FOR tx_s",
		"DROP SEQUENCE tx_s",
		"CREATE TABLE tx_pa (id INT PRIMARY KEY, v INT) PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (100))",
		"CREATE TABLE tx_x (id INT PRIMARY KEY, v INT)",
		"ALTER TABLE tx_pa EXCHANGE PARTITION p0 WITH TABLE tx_x",
		"DROP TABLE tx_pa, tx_x",
		// Renames inside an ALTER, to another database too; maintenance.
		"CREATE TABLE tx_r (id INT)",
		"ALTER TABLE tx_r RENAME TO tx_r2",
		"ALTER TABLE tx_r2 ADD COLUMN w INT, RENAME TO tx_other.tx_r3",
		"DROP TABLE tx_other.tx_r3",
		"OPTIMIZE TABLE tx_a",
		"REPAIR TABLE tx_a",
		"ANALYZE TABLE tx_a",
		"CREATE TABLE tx_y (id INT) SELECT id FROM tx_a",
		"DROP TABLE tx_y",
		"SET STATEMENT max_statement_time=10 FOR SELECT v FROM tx_a WHERE id = 1",
		// Quoted names, renames of several tables, subqueries and
		// clauses where a table hides.
		"CREATE TABLE `tx q` (id INT)",
		"INSERT INTO `tx q` SELECT id FROM tx_a WHERE id < 3",
		"UPDATE tx_a SET v = (SELECT MAX(id) FROM `tx q`) WHERE id = 1",
		"DELETE FROM `tx q` ORDER BY id LIMIT 1",
		"RENAME TABLE `tx q` TO tx_q2, tx_a TO tx_a2",
		"RENAME TABLE tx_q2 TO `tx q`, tx_a2 TO tx_a",
		"INSERT INTO tx_a (id, v) SELECT id + 100, v FROM tx_a WHERE id < 3",
		"CREATE OR REPLACE TABLE `tx q` (id INT)",
		"DROP TABLE IF EXISTS `tx q`",
		"SELECT * FROM (SELECT id FROM tx_a) d JOIN tx_other.tx_b USING (id)",
		"SELECT id FROM tx_a UNION ALL SELECT id FROM tx_other.tx_b",
		"SELECT id FROM tx_a FOR UPDATE",
		"INSERT INTO tx_other.tx_b (id, v) VALUES (9, 9) ON DUPLICATE KEY UPDATE v = VALUES(v)",
		"ALTER TABLE tx_other.tx_b ENGINE = InnoDB",
		"CREATE TABLE tx_sv (id INT) WITH SYSTEM VERSIONING",
		"SELECT * FROM tx_sv FOR SYSTEM_TIME ALL",
		"DROP TABLE tx_sv",
		"CREATE TABLE tx_c LIKE tx_a",
		"CREATE TABLE tx_d AS SELECT * FROM tx_a",
		"ALTER TABLE tx_c ADD COLUMN w INT",
		"CREATE VIEW tx_v AS SELECT id FROM tx_a",
		"SELECT * FROM tx_v",
		"RENAME TABLE tx_c TO tx_e",
		"TRUNCATE TABLE tx_d",
		"DROP VIEW tx_v",
		"DROP TABLE tx_e, tx_d",
		"DROP TABLE tx_other.tx_b",
		"DROP DATABASE tx_other",
	}
	login := []string{"-u", "root", "-p" + db.RootPassword(), testenv.TestDatabase}
	failed := 0
	for _, sql := range statements {
		if out, err := mariadbCLI(t, addr, append(login, "-e", sql)...); err != nil {
			t.Logf("FAILED %q: %v %s", sql, err, out)
			failed++ // on purpose: checked below in both sources
		}
	}
	if failed != 7 {
		t.Fatalf("%d statements failed, want 7", failed)
	}
	time.Sleep(time.Second) // the tailer polls the file
	if code, stderr := stop(); code != 0 {
		t.Fatalf("das serve exited %d: %s", code, stderr)
	}
	r := das(t, nil, "consume", "--from", data)
	if r.code != 0 {
		t.Fatalf("consume: %s", r.stderr)
	}
	type stmt struct{ session, id string }
	scanned := map[string]bool{
		"SELECT HIGH_PRIORITY v FROM tx_a WHERE id = 1":                                      true,
		"INSERT INTO tx_a VALUES (4, 40) RETURNING id":                                       true,
		"DELETE FROM tx_a WHERE id IN (SELECT id FROM tx_other.tx_b) AND id > 3 RETURNING v": true,
		"CHECKSUM TABLE tx_a":                            true,
		"CREATE OR REPLACE TABLE `tx q` (id INT)":        true,
		"OPTIMIZE TABLE tx_a":                            true,
		"REPAIR TABLE tx_a":                              true,
		"CREATE TABLE tx_y (id INT) SELECT id FROM tx_a": true,
		"SET STATEMENT max_statement_time=10 FOR SELECT v FROM tx_a WHERE id = 1": true,
		"CREATE SEQUENCE tx_s": true,
		"DROP SEQUENCE tx_s":   true,
	}
	tablesOf := map[string]map[stmt][]event.Event{} // source -> statement -> AUX events
	mains := map[string]map[string]stmt{}           // source -> text -> statement
	for _, e := range consumed(t, r.stdout) {
		src := strings.Trim(string(e.Extra.Get("dasSource")), `"`)
		if tablesOf[src] == nil {
			tablesOf[src], mains[src] = map[stmt][]event.Event{}, map[string]stmt{}
		}
		k := stmt{e.SessionID, strconv.FormatInt(e.StatementID, 10)}
		switch {
		case e.Class == event.ClassAux:
			tablesOf[src][k] = append(tablesOf[src][k], e)
		case e.Command == event.CommandQuery:
			mains[src][e.CommandText] = k
		}
	}
	// server_audit logs an EXECUTE with the text it runs.
	auditText := map[string]string{"EXECUTE tx_p USING @i": "SELECT v FROM tx_a WHERE id = ?"}
	var compared []string
	for _, sql := range statements {
		compared = append(compared, strings.Split(sql, "; ")...)
	}
	for _, sql := range compared {
		p, okp := mains["proxy"][sql]
		a, oka := mains["server_audit"][cmp.Or(auditText[sql], sql)]
		if !okp || !oka {
			t.Errorf("%q: recorded by the proxy %v, by server_audit %v", sql, okp, oka)
			continue
		}
		got, want := accesses(tablesOf["proxy"][p]), accesses(tablesOf["server_audit"][a])
		if sql == "SELECT * FROM tx_v" {
			// A known difference: the server reads a view's tables,
			// which the proxy cannot know without the schema.
			if !slices.Equal(got, []string{"READ dastest.tx_v"}) || !slices.Equal(want, []string{"READ dastest.tx_a"}) {
				t.Errorf("%q: proxy %q, server_audit %q", sql, got, want)
			}
			continue
		}
		if strings.Contains(sql, "EXCHANGE PARTITION") {
			// The other: the server logs the exchange as reads of both
			// tables; both change, and the proxy says so.
			if !slices.Equal(got, []string{"ALTER dastest.tx_pa", "ALTER dastest.tx_x"}) ||
				!slices.Equal(want, []string{"READ dastest.tx_pa", "READ dastest.tx_x"}) {
				t.Errorf("%q: proxy %q, server_audit %q", sql, got, want)
			}
			continue
		}
		if !slices.Equal(got, want) {
			t.Errorf("%q:\n  proxy        %q\n  server_audit %q", sql, got, want)
		}
		for _, e := range tablesOf["proxy"][p] {
			if e.Extra.Has("dasTablesScanned") != scanned[sql] {
				t.Errorf("%q: AUX %s %s marked scanned %v, want %v", sql, e.Command, e.ObjectName, !scanned[sql], scanned[sql])
			}
		}
	}
	if r := das(t, nil, "verify", "--from", data); r.code != 0 {
		t.Fatalf("verify: %s", r.stdout)
	}
}

// accesses lists AUX events as "COMMAND objectName", sorted, without the
// server's internal tables and without READs of a table also changed.
func accesses(evs []event.Event) []string {
	changed := map[string]bool{}
	for _, e := range evs {
		if e.Command != "READ" {
			changed[e.ObjectName] = true
		}
	}
	var out []string
	for _, e := range evs {
		if strings.HasPrefix(e.ObjectName, "mysql.") || e.Command == "READ" && changed[e.ObjectName] {
			continue
		}
		s := e.Command + " " + e.ObjectName
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}
