package proxy

import (
	"fmt"
	"github.com/das-mysql/das/internal/tables"
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
// changes nothing; a text from an expression is unknown, and said so; one
// from a user variable is known when the statement just before set it to
// literals.
func TestSessionDynamicSQL(t *testing.T) {
	s := &session{}
	q := []tables.Assign{{Var: "q", Text: "SELECT * FROM fromvar"}}
	steps := []struct {
		sql     string
		ok      bool
		vars    []tables.Assign
		want    string
		unknown bool
	}{
		{"EXECUTE s1", true, nil, "", true},
		{"PREPARE s1 FROM 'SELECT * FROM secret'", true, nil, "", false},
		{"execute S1", true, nil, "SELECT * FROM secret", false},
		{"PREPARE s1 FROM 'SELECT * FROM other WHERE'", false, nil, "", false}, // the server refused it: s1 stays
		{"EXECUTE s1 USING @a", true, nil, "SELECT * FROM secret", false},
		{"PREPARE s1 FROM @q", true, nil, "", false},
		{"EXECUTE s1", true, nil, "", true},
		{"PREPARE s1 FROM @q", true, q, "", false},
		{"EXECUTE s1", true, nil, "SELECT * FROM fromvar", false},
		{"EXECUTE IMMEDIATE @q", true, q, "SELECT * FROM fromvar", false},
		{"EXECUTE IMMEDIATE @q", true, nil, "", true},
		{"EXECUTE IMMEDIATE CONCAT('SELECT * FROM ', @t)", true, nil, "", true},
		{"PREPARE `s 2` FROM 'DELETE FROM t2'", true, nil, "", false},
		{"DEALLOCATE PREPARE `S 2`", true, nil, "", false},
		{"EXECUTE `s 2`", true, nil, "", true},
		{"EXECUTE IMMEDIATE 'TABLE secret'", true, nil, "TABLE secret", false},
		{"SELECT 1", true, nil, "SELECT 1", false},
		{"PREPARE s3 FROM 'SELECT 1'; CALL p(); SELECT * FROM secret", true, nil, "PREPARE s3 FROM 'SELECT 1'; CALL p(); SELECT * FROM secret", false},
	}
	for _, st := range steps {
		text, unknown := st.sql, false
		if maybeDynamic(st.sql) {
			text, unknown = s.dynamicSQL(st.sql, st.ok, st.vars)
		}
		if text != st.want || unknown != st.unknown {
			t.Errorf("%q: tables from %q (unknown %v), want %q (%v)", st.sql, text, unknown, st.want, st.unknown)
		}
	}
	for i := range maxSQLPrepared + 10 {
		s.dynamicSQL(fmt.Sprintf("PREPARE p%d FROM 'SELECT 1'", i), true, nil)
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
		{"SET collation_connection = gbk_chinese_ci", false}, // the connection's, not how statements are read
		{"SET character_set_client = @cs", true},
		{"SET NAMES DEFAULT", true},
		{"SET NAMES utf8mb4", false},
		{"/*!40101 SET NAMES utf8mb4 */;", false},
		{"/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */", false},
		{"/*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */", true},
		{"SET @@session.character_set_client = 'gbk'", true},
		{"SET SESSION character_set_client := utf8mb4, @x = 'gbk'", false},
		{"SET character_set_client = utf8mb4", false},
		{"SET character_set_client = CONCAT('g', 'bk')", true},
		{"SET CHARSET 'big5'", true},
		{"SET character_set_results = gbk", false},
		{"SET @cs = 'gbk'", false},
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
