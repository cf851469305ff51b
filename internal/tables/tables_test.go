package tables

import (
	"fmt"
	"strings"
	"testing"
)

// ofCases are statements the grammar parses, with the tables they touch.
var ofCases = []struct {
	sql  string
	want string // "OP db.table" joined by "; ", "" for none
}{
	{"SELECT c FROM sbtest1 WHERE id=?", "READ sbtest1"},
	{"SELECT 1", ""},
	{"SELECT NEXTVAL(s), setval(db.s2, 5)", "WRITE s; WRITE db.s2"},
	{"SELECT NEXT VALUE FOR db.s", "WRITE db.s"},
	{"SELECT LASTVAL(s)", ""},
	{"ALTER TABLE p EXCHANGE PARTITION p0 WITH TABLE db.x", "ALTER p; ALTER db.x"},
	{"ALTER TABLE t ADD COLUMN c INT, RENAME TO db2.u", "ALTER t; RENAME t>db2.u"},
	{"ANALYZE TABLE t, db.u", "READ t; READ db.u"},
	{"SELECT * FROM t JOIN db.u USING (id) FOR UPDATE", "WRITE t; WRITE db.u"},
	{"SELECT * FROM t LOCK IN SHARE MODE", "READ t"},
	{"SELECT 1 FROM dual", ""},
	{"select a.x from db1.t1 a join t2 on a.id=t2.id where a.y in (select y from t3)", "READ db1.t1; READ t2; READ t3"},
	{"SELECT * FROM t1, t1 AS again", "READ t1"},
	{"SELECT 1 UNION SELECT a FROM t5", "READ t5"},
	{"WITH x AS (SELECT * FROM t1) SELECT * FROM x JOIN t2", "READ t1; READ t2"},
	{"SELECT * FROM (SELECT a FROM t1) AS d", "READ t1"},
	{"SELECT * FROM t1 FOR UPDATE", "WRITE t1"}, // as server_audit: locked for writing
	{"INSERT INTO t1 (a) VALUES (1), (2)", "WRITE t1"},
	{"INSERT INTO t1 (a) SELECT b FROM db2.t2", "WRITE t1; READ db2.t2"},
	{"REPLACE INTO t1 VALUES (1)", "WRITE t1"},
	{"INSERT INTO t1 VALUES (1) ON DUPLICATE KEY UPDATE a = (SELECT MAX(a) FROM t3)", "WRITE t1; READ t3"},
	{"UPDATE t1 SET a = 1 WHERE b = 2", "WRITE t1"},
	{"UPDATE t1 SET a = (SELECT MAX(b) FROM t2)", "WRITE t1; READ t2"},
	{"UPDATE t1 JOIN t2 ON t1.a = t2.a SET t1.b = t2.b", "WRITE t1; READ t2"},
	{"UPDATE t1 x JOIN t2 y ON x.a = y.a SET y.b = x.b", "WRITE t2; READ t1"},
	{"UPDATE t1 JOIN t2 ON t1.a = t2.a SET b = 1", "WRITE t1; WRITE t2"},
	{"DELETE FROM t1 WHERE a = 1", "WRITE t1"},
	{"DELETE FROM t1 WHERE a IN (SELECT a FROM t2)", "WRITE t1; READ t2"},
	{"DELETE t1 FROM t1 JOIN t2 ON t1.a = t2.a", "WRITE t1; READ t2"},
	{"LOAD DATA LOCAL INFILE 'f.csv' INTO TABLE t1", "WRITE t1"},
	{"CREATE TABLE t9 (a int)", "CREATE t9"},
	{"CREATE TABLE db.t9 LIKE t1", "CREATE db.t9"},
	{"CREATE TABLE t10 AS SELECT * FROM t1", "CREATE t10; WRITE t10; READ t1"},
	{"CREATE VIEW v AS SELECT * FROM t1", "READ t1"},
	{"ALTER TABLE t9 ADD COLUMN b int", "ALTER t9"},
	{"CREATE INDEX i ON t1 (a)", "ALTER t1"},
	{"DROP TABLE t9, db.t8", "DROP t9; DROP db.t8"},
	{"DROP TABLE IF EXISTS t9", "DROP t9"},
	{"DROP VIEW v", ""},
	{"RENAME TABLE a TO b, db.c TO db2.d", "RENAME a>b; RENAME db.c>db2.d"},
	{"TRUNCATE TABLE t1", "WRITE t1"},
	{"SET @x = (SELECT a FROM t1 LIMIT 1)", "READ t1"},
	{"SET autocommit = 1", ""},
	{"BEGIN", ""},
	{"SHOW TABLES", ""},
	{"GRANT SELECT ON db.* TO u", ""},
}

func TestOf(t *testing.T) {
	for _, tc := range ofCases {
		t.Run(tc.sql, func(t *testing.T) {
			got, err := Of(tc.sql)
			if err != nil {
				t.Fatal(err)
			}
			if s := format(got); s != tc.want {
				t.Errorf("got %q, want %q", s, tc.want)
			}
		})
	}
}

func TestOfUnparsable(t *testing.T) {
	for _, sql := range []string{"", "SELEKT 1", "SELECT * FROM", "\xff\xfe"} {
		if got, err := Of(sql); err == nil && len(got) > 0 {
			t.Errorf("%q: %v without an error", sql, got)
		}
	}
}

func format(as []Access) string {
	var parts []string
	for _, a := range as {
		name := a.Table
		if a.DB != "" {
			name = a.DB + "." + a.Table
		}
		if a.Op == Rename {
			to := a.ToTable
			if a.ToDB != "" {
				to = a.ToDB + "." + a.ToTable
			}
			name += ">" + to
		}
		parts = append(parts, fmt.Sprintf("%s %s", a.Op, name))
	}
	return strings.Join(parts, "; ")
}

// BenchmarkOf is the parse's cost per statement: the proxy pays it for
// every text statement whose text it has not seen in the session.
func BenchmarkOf(b *testing.B) {
	for _, sql := range []string{
		"SELECT c FROM sbtest1 WHERE id=4242",
		"UPDATE sbtest3 SET c='08566691963-88624912351-16662227201-46648573979' WHERE id=5012",
		"SELECT a.x, b.y FROM orders a JOIN customers b ON a.cid = b.id WHERE a.created > '2026-01-01' AND b.region IN ('eu', 'us') ORDER BY a.created DESC LIMIT 50",
	} {
		b.Run(strings.Fields(sql)[0], func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := Of(sql); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
