package tables

import (
	"strings"
	"testing"

	"github.com/das-mysql/das/internal/charset"
)

// TestScan: statements the grammar rejects but MariaDB runs, and ways of
// writing a statement meant to hide its tables, name them all.
func TestScan(t *testing.T) {
	for _, tc := range []struct {
		sql  string
		want string
	}{
		// MariaDB syntax the grammar lacks.
		{"SELECT HIGH_PRIORITY c FROM secret", "READ secret"},
		{"SELECT SQL_SMALL_RESULT STRAIGHT_JOIN c FROM secret s, other o WHERE s.a = o.a", "READ secret; READ other"},
		{"INSERT DELAYED INTO secret VALUES (1)", "WRITE secret"},
		{"INSERT LOW_PRIORITY IGNORE secret (a) VALUES (1)", "WRITE secret"},
		{"DELETE FROM secret WHERE a = 1 RETURNING *", "WRITE secret"},
		{"DELETE FROM db1.secret WHERE a IN (SELECT a FROM other) RETURNING a", "WRITE db1.secret; READ other"},
		{"INSERT INTO secret VALUES (1) RETURNING a", "WRITE secret"},
		{"REPLACE secret SELECT * FROM other", "WRITE secret; READ other"},
		{"HANDLER secret OPEN AS h", "READ secret"},
		{"OPTIMIZE TABLE secret, other", "ALTER secret; ALTER other; WRITE secret; WRITE other"},
		{"REPAIR NO_WRITE_TO_BINLOG TABLE secret", "WRITE secret"},
		{"ALTER ONLINE TABLE t ADD COLUMN c INT, RENAME TO db2.u", "ALTER t; RENAME t>db2.u"},
		{"ALTER TABLE t RENAME COLUMN a TO b", "ALTER t"},
		{"CREATE OR REPLACE TABLE t (a INT)", "CREATE t; DROP t"},
		{"SELECT HIGH_PRIORITY * FROM secret WHERE a IN (SELECT a FROM other) FOR UPDATE NOWAIT", "WRITE secret; WRITE other"},
		{"SELECT HIGH_PRIORITY * FROM secret FOR SHARE", "READ secret"},
		{"CHECKSUM TABLE db.secret", "READ db.secret"},
		{"DESCRIBE secret", "READ secret"},
		{"SELECT * FROM secret FOR SYSTEM_TIME ALL", "READ secret"},
		{"SELECT * FROM seq_1_to_10, secret", "READ seq_1_to_10; READ secret"},
		// Sequences are tables: their DDL, and the functions that advance them.
		{"CREATE OR REPLACE SEQUENCE IF NOT EXISTS db.s START WITH 1", "CREATE db.s; WRITE db.s; DROP db.s"},
		{"DROP SEQUENCE IF EXISTS s, db.s2", "DROP s; DROP db.s2"},
		{"ALTER SEQUENCE s RESTART 5", "ALTER s"},
		{"INSERT INTO secret VALUES (NEXT VALUE FOR db.s, NEXTVAL(s2), SETVAL(s3, 9))", "WRITE secret; WRITE db.s; WRITE s2; WRITE s3"},
		{"HANDLER secret READ NEXT", "READ secret"},
		// Comments, quotes and executable comments.
		{"SELECT 1 /*!50000 , c FROM secret */", "READ secret"},
		{"SELECT 1 /*M!100100 , c FROM secret */", "READ secret"},
		{"/*!40101 DROP TABLE secret */", "DROP secret"},
		{"SELECT/**/c/**/FROM/**/secret", "READ secret"},
		{"SELECT 'FROM fake' FROM secret -- FROM fake2\n", "READ secret"},
		{"SELECT \"FROM x\", 'it''s', 'a\\'b FROM fake' FROM `sec``ret` # FROM fake", "READ sec`ret"},
		{"SELECT c FROM `db`.`secret` AS `s`", "READ db.secret"},
		{"SELECT c FROM db . secret", "READ db.secret"},
		{"SELECT c FROM \"secret\"", "READ secret"}, // ANSI_QUOTES
		{"SELECT c FROM value", "READ value"},       // a non-reserved word names a table
		// GBK, SJIS, Big5: 0xBF 0x5C is one character to the server, a
		// byte and an escape to a byte-wise reader. Both readings count.
		{"SELECT '\xbf\\' FROM secret -- '", "READ secret"},
		{"SELECT '\xbf\\'' FROM secret", "READ secret"},
		{"SELECT c FROM t WHERE a = '\xbf\\' UNION SELECT c FROM secret #'", "READ t; READ secret"},
		// Lists, joins, subqueries.
		{"SELECT * FROM a x USE INDEX (i), b AS y, (SELECT 1 FROM c) z, d", "READ a; READ b; READ c; READ d"},
		{"SELECT * FROM a JOIN b ON a.x = b.x, c", "READ a; READ b; READ c"},
		{"SELECT * FROM a WHERE x IN (SELECT y FROM b WHERE z = ANY (SELECT z FROM c))", "READ a; READ b; READ c"},
		{"SELECT a, b, c FROM t WHERE f(a, b) ORDER BY a, b", "READ t"},
		{"SELECT * FROM JSON_TABLE('[]', '$[*]' COLUMNS (a INT PATH '$')) j, secret", "READ secret"},
		{"(SELECT a FROM t1) UNION (SELECT a FROM t2)", "READ t1; READ t2"},
		{"SELECT a INTO @x FROM t1", "READ t1"},
		{"SELECT a FROM t1 INTO OUTFILE '/tmp/x'", "READ t1"},
		{"WITH x AS (SELECT * FROM t1), y (c) AS (SELECT 1) SELECT * FROM x, y, t2", "READ t1; READ t2"},
		{"WITH x AS (SELECT * FROM t1) DELETE FROM t2 WHERE a IN (SELECT a FROM x)", "READ t1; WRITE t2"},
		{"WITH x AS (SELECT COUNT(*) AS n FROM t1) SELECT COUNT(*) AS m FROM x, count", "READ t1; READ count"},
		{"SELECT 1 FROM dual", ""},
		// Verbs.
		{"UPDATE LOW_PRIORITY t1 a JOIN t2 b ON a.x = b.x SET a.y = (SELECT MAX(y) FROM t3)", "WRITE t1; WRITE t2; READ t3"},
		{"DELETE a, b.* FROM t1 a JOIN t2 b ON a.x = b.x JOIN t3 c ON c.x = a.x", "WRITE t1; WRITE t2; READ t3"},
		{"DELETE QUICK FROM t1, t2 USING t1 JOIN t2 JOIN t3", "WRITE t1; WRITE t2; READ t3"},
		{"LOAD DATA LOCAL INFILE 'f' REPLACE INTO TABLE db.t1 FIELDS TERMINATED BY ','", "WRITE db.t1"},
		{"TRUNCATE secret", "WRITE secret"},
		{"CREATE TABLE t9 (a INT, b INT) ENGINE=InnoDB, COMMENT='x'", "CREATE t9"},
		{"CREATE TEMPORARY TABLE IF NOT EXISTS t9 SELECT a, b FROM t1, t2", "CREATE t9; READ t1; READ t2; WRITE t9"},
		{"ALTER ONLINE TABLE t9 ADD COLUMN b INT, ENGINE = InnoDB", "ALTER t9"},
		{"DROP TEMPORARY TABLE IF EXISTS t9, db.t8", "DROP t9; DROP db.t8"},
		{"DROP INDEX i ON t1", "ALTER t1"},
		{"CREATE TABLE t9 SELECT * FROM t1 JOIN t2 ON t1.a = t2.a", "CREATE t9; READ t1; READ t2; WRITE t9"},
		{"EXPLAIN FORMAT=JSON SELECT * FROM t1", "READ t1"},
		{"EXPLAIN t1", "READ t1"},
		{"RENAME TABLE a TO b, db.c TO db2.d", "RENAME a>b; RENAME db.c>db2.d"},
		{"LOCK TABLES t1 READ, t2 AS x WRITE", "READ t1; READ t2"},
		{"SHOW CREATE TABLE secret", ""},
		{"GRANT SELECT ON db.secret TO u", ""},
		{"", ""},
		{"SELECT * FROM", ""},
		{"SELECT 'unterminated FROM x", ""},
		{"SELECT c FROM secret; SELECT c FROM other", "READ secret; READ other"},
		{"CALL p(); DELETE a FROM t1 a; SHOW TABLES FROM db; UPDATE t2 SET x = 1;; SELECT * FROM t3 s", "WRITE t1; WRITE t2; READ t3"},
		{"SELECT * FROM t1; USE db2; SELECT * FROM t1, db3.t2; RENAME TABLE a TO b", "READ t1; READ db2.t1; READ db3.t2; RENAME db2.a>db2.b"},
		{"BEGIN NOT ATOMIC SELECT * FROM t1; INSERT INTO t2 SELECT * FROM t1; END", "READ t1; WRITE t2"},
	} {
		t.Run(tc.sql, func(t *testing.T) {
			if got := format(Scan(tc.sql)); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestScanNoEscapes(t *testing.T) {
	for _, tc := range []struct{ sql, want, byDefault string }{
		{`SELECT 'a\' AS x, c FROM secret -- '`, "READ secret", ""},
		{`SELECT "a\", c FROM secret -- "`, "READ secret", ""},
		{`SELECT 'it''s\' FROM t1 JOIN secret -- '`, "READ t1; READ secret", ""},
		{`INSERT INTO t VALUES ('O''Brien')`, "WRITE t", "WRITE t"},
	} {
		if got := format(ScanNoEscapes(tc.sql)); got != tc.want {
			t.Errorf("ScanNoEscapes(%q) = %q, want %q", tc.sql, got, tc.want)
		}
		if got := format(Scan(tc.sql)); got != tc.byDefault {
			t.Errorf("Scan(%q) = %q, want %q", tc.sql, got, tc.byDefault)
		}
	}
}

// TestScanCoversOf: for every statement the grammar parses, the scan names
// at least the tables the parse does, so that the fallback never knows
// less than the parser would have.
func TestScanCoversOf(t *testing.T) {
	for _, tc := range ofCases {
		parsed, err := Of(tc.sql)
		if err != nil {
			t.Fatal(err)
		}
		scanned := Scan(tc.sql)
		for _, p := range parsed {
			found := false
			for _, s := range scanned {
				found = found || s.DB == p.DB && s.Table == p.Table
			}
			if !found {
				t.Errorf("%q: the parse names %s %s.%s, the scan %q", tc.sql, p.Op, p.DB, p.Table, format(scanned))
			}
		}
	}
}

// FuzzScan: no input panics or loops, and every table the scan names is
// written in the statement.
func FuzzScan(f *testing.F) {
	for _, tc := range ofCases {
		f.Add(tc.sql)
	}
	f.Add("SELECT 1 /*!50000 , c FROM `a``b` */ -- x")
	f.Add("DELETE a.*, b FROM t a, u b WHERE 'x\\'")
	f.Add("WITH x (a) AS (SELECT 1) UPDATE t SET a = 1")
	f.Add("SELECT '\xbf\\' FROM `\x81` JOIN b -- '")
	f.Fuzz(func(t *testing.T, sql string) {
		naive := false
		for i := 1; i < len(sql); i++ {
			naive = naive || (sql[i] == '\\' || sql[i] == '`') && sql[i-1] >= 0x81 && sql[i-1] <= 0xfe
		}
		if charset.Ambiguous(sql) != naive {
			t.Fatalf("charset.Ambiguous(%q) = %v", sql, !naive)
		}
		// A quoted name loses its doubled quotes and escapes: compare
		// without quotes and backslashes.
		bare := strings.NewReplacer("`", "", `"`, "", `\`, "")
		for _, a := range Scan(sql) {
			for _, name := range []string{a.DB, a.Table, a.ToDB, a.ToTable} {
				if !strings.Contains(bare.Replace(sql), bare.Replace(name)) {
					t.Fatalf("%q: %q is not in the statement", sql, name)
				}
			}
		}
	})
}

// BenchmarkScan is the fallback's cost: linear in the statement's length,
// so that a long statement (a bulk INSERT) costs little more than reading.
func BenchmarkScan(b *testing.B) {
	var bulk strings.Builder
	bulk.WriteString("INSERT INTO sbtest1 (id, k, c, pad) VALUES ")
	for i := range 4000 {
		if i > 0 {
			bulk.WriteString(", ")
		}
		bulk.WriteString("(1234, 5678, '68487932199-96439406143-93774651418-41631865787-96406072701', 'x\\'y')")
	}
	for _, sql := range []string{
		"SELECT HIGH_PRIORITY c FROM sbtest1 WHERE id=4242",
		bulk.String(),
	} {
		b.Run(strings.Fields(sql)[0], func(b *testing.B) {
			b.SetBytes(int64(len(sql)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				Scan(sql)
			}
		})
	}
}
