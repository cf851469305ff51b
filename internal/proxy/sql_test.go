package proxy

import (
	"fmt"
	"reflect"
	"testing"
)

func TestSplitStatements(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"SELECT 1", []string{"SELECT 1"}},
		{"SELECT 1;", []string{"SELECT 1"}},
		{"SELECT 1; SELECT 2 ;\n", []string{"SELECT 1", "SELECT 2"}},
		{"SELECT 'a;b'; SELECT \"c;\"", []string{"SELECT 'a;b'", "SELECT \"c;\""}},
		{"SELECT 'it\\'s;'; SELECT 'x''y;'", []string{"SELECT 'it\\'s;'", "SELECT 'x''y;'"}},
		{"SELECT `a;b` FROM t; SELECT 2", []string{"SELECT `a;b` FROM t", "SELECT 2"}},
		{"SELECT 1 -- c;\n; SELECT 2 # d;\n", []string{"SELECT 1 -- c;", "SELECT 2 # d;"}},
		{"SELECT 1 /* ; */; SELECT 2", []string{"SELECT 1 /* ; */", "SELECT 2"}},
		{"SELECT 1--2; SELECT 3", []string{"SELECT 1--2", "SELECT 3"}},
		{"SELECT 'unterminated; SELECT 2", []string{"SELECT 'unterminated; SELECT 2"}},
		{" ; ", nil},
	}
	for _, tt := range tests {
		if got := splitStatements(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("splitStatements(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestUseTarget(t *testing.T) {
	tests := []struct {
		in   string
		db   string
		isOK bool
	}{
		{"USE db1", "db1", true},
		{"use db1;", "db1", true},
		{"  /* x */ Use `my db` ; ", "my db", true},
		{"USE `a``b`", "a`b", true},
		{"USE`db`", "db", true},
		{"-- c\nUSE db", "db", true},
		{"USE/**/db2", "db2", true},
		{"USE/* x */`db2`/* y */", "db2", true},
		{"/*!50000 USE db2 */", "db2", true},
		{"/*!USE db2*/;", "db2", true},
		{"/*M!100100 use db2 */", "db2", true},
		{"USE# c\ndb2", "db2", true},
		{"/*!50000 SELECT 1 */", "", false},
		{"USE_x", "", false},
		{"use2 db", "", false},
		{"USER", "", false},
		{"USE", "", false},
		{"USE db1 extra", "", false},
		{"SELECT 1", "", false},
		{"user_table", "", false},
	}
	for _, tt := range tests {
		db, ok := useTarget(tt.in)
		if db != tt.db || ok != tt.isOK {
			t.Errorf("useTarget(%q) = %q, %v, want %q, %v", tt.in, db, ok, tt.db, tt.isOK)
		}
	}
}

func TestCutText(t *testing.T) {
	if got := cutText("héllo", 2); got != "h" {
		t.Errorf("cutText on a rune boundary = %q, want %q", got, "h")
	}
	if got := cutText("hello", 0); got != "hello" {
		t.Errorf("cutText without limit = %q", got)
	}
	if got := cutText("hello", 3); got != "hel" {
		t.Errorf("cutText = %q", got)
	}
}

func TestServerVersion(t *testing.T) {
	for in, want := range map[string]string{
		"5.5.5-10.11.19-MariaDB-0+deb12u1": "MariaDB 10.11.19-MariaDB-0+deb12u1",
		"11.4.2-MariaDB":                   "MariaDB 11.4.2-MariaDB",
		"8.0.36":                           "MySQL 8.0.36",
	} {
		if got := serverVersion(in); got != want {
			t.Errorf("serverVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSessionDynamicSQL: EXECUTE gets the tables of the text its PREPARE
// gave, by name (case-insensitive), until DEALLOCATE; a failed PREPARE
// changes nothing; an expression's text is unknown.
func TestSessionDynamicSQL(t *testing.T) {
	s := &session{}
	steps := []struct {
		sql  string
		ok   bool
		want string
	}{
		{"EXECUTE s1", true, ""},
		{"PREPARE s1 FROM 'SELECT * FROM secret'", true, ""},
		{"execute S1", true, "SELECT * FROM secret"},
		{"PREPARE s1 FROM 'SELECT * FROM other WHERE'", false, ""}, // the server refused it: s1 stays
		{"EXECUTE s1 USING @a", true, "SELECT * FROM secret"},
		{"PREPARE s1 FROM @q", true, ""},
		{"EXECUTE s1", true, ""},
		{"PREPARE `s 2` FROM 'DELETE FROM t2'", true, ""},
		{"DEALLOCATE PREPARE `S 2`", true, ""},
		{"EXECUTE `s 2`", true, ""},
		{"EXECUTE IMMEDIATE 'TABLE secret'", true, "TABLE secret"},
		{"SELECT 1", true, "SELECT 1"},
		{"PREPARE s3 FROM 'SELECT 1'; CALL p(); SELECT * FROM secret", true, "PREPARE s3 FROM 'SELECT 1'; CALL p(); SELECT * FROM secret"},
	}
	for _, st := range steps {
		text := st.sql
		if maybeDynamic(st.sql) {
			text = s.dynamicSQL(st.sql, st.ok)
		}
		if text != st.want {
			t.Errorf("%q: tables from %q, want %q", st.sql, text, st.want)
		}
	}
	for i := range maxSQLPrepared + 10 {
		s.dynamicSQL(fmt.Sprintf("PREPARE p%d FROM 'SELECT 1'", i), true)
	}
	if len(s.prepared) > maxSQLPrepared {
		t.Errorf("%d prepared statements remembered, bound %d", len(s.prepared), maxSQLPrepared)
	}
}

func TestSetsMBCharset(t *testing.T) {
	for _, tc := range []struct {
		sql  string
		want bool
	}{
		{"SET NAMES gbk", true},
		{"set names 'SJIS' collate sjis_bin", true},
		{"/*!40101 SET NAMES big5 */", true},
		{"SET character_set_client = cp932", true},
		{"SET CHARACTER SET gb18030", true},
		{"SET collation_connection = gbk_chinese_ci", true},
		{"SET character_set_client = @cs", true},
		{"SET NAMES DEFAULT", true},
		{"SET NAMES utf8mb4", false},
		{"SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci", false},
		{"SET autocommit = 1", false},
		{"SELECT 'gbk'", false},
		{"SETTINGS gbk", false},
	} {
		if got := setsMBCharset(tc.sql); got != tc.want {
			t.Errorf("setsMBCharset(%q) = %v, want %v", tc.sql, got, tc.want)
		}
	}
}
