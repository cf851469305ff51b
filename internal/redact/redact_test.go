package redact

import (
	"strings"
	"testing"

	"github.com/das-mysql/das/internal/charset"
)

func TestSQL(t *testing.T) {
	tests := []struct{ in, want string }{
		// CREATE / ALTER USER, all the auth spellings.
		{`CREATE USER u1 IDENTIFIED BY 'pwd_123'`, `CREATE USER u1 IDENTIFIED BY *****`},
		{`create user 'u1'@'%' identified by "pwd_123"`, `create user 'u1'@'%' identified by *****`},
		{`CREATE OR REPLACE USER u1 IDENTIFIED BY 'pwd_123'`, `CREATE OR REPLACE USER u1 IDENTIFIED BY *****`},
		{`CREATE USER IF NOT EXISTS u1 IDENTIFIED BY 'p'`, `CREATE USER IF NOT EXISTS u1 IDENTIFIED BY *****`},
		{`ALTER USER u1 IDENTIFIED BY 'pwd_123'`, `ALTER USER u1 IDENTIFIED BY *****`},
		{`ALTER USER if exists u1 IDENTIFIED BY 'pwd_123'`, `ALTER USER if exists u1 IDENTIFIED BY *****`},
		{`ALTER USER u IDENTIFIED WITH mysql_native_password BY 'pw'`, `ALTER USER u IDENTIFIED WITH mysql_native_password BY *****`},
		{`ALTER USER u IDENTIFIED WITH 'caching_sha2_password' BY 'pw'`, `ALTER USER u IDENTIFIED WITH 'caching_sha2_password' BY *****`},
		{"CREATE USER u IDENTIFIED WITH `sha256_password` BY 'pw'", "CREATE USER u IDENTIFIED WITH `sha256_password` BY *****"},
		{`CREATE USER u IDENTIFIED WITH mysql_native_password AS '*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19'`, `CREATE USER u IDENTIFIED WITH mysql_native_password AS *****`},
		{`CREATE USER u IDENTIFIED BY PASSWORD '*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19'`, `CREATE USER u IDENTIFIED BY PASSWORD *****`},
		{`CREATE USER u IDENTIFIED BY RANDOM PASSWORD`, `CREATE USER u IDENTIFIED BY RANDOM PASSWORD`},
		{`CREATE USER a IDENTIFIED BY 'pa', b IDENTIFIED BY 'pb', c@'%' IDENTIFIED WITH x AS 'pc'`, `CREATE USER a IDENTIFIED BY *****, b IDENTIFIED BY *****, c@'%' IDENTIFIED WITH x AS *****`},
		{`ALTER USER u IDENTIFIED BY 'new' REPLACE 'old' RETAIN CURRENT PASSWORD`, `ALTER USER u IDENTIFIED BY ***** REPLACE ***** RETAIN CURRENT PASSWORD`},
		{`CREATE USER u IDENTIFIED BY 'p' REQUIRE SUBJECT '/CN=u' AND ISSUER '/CN=ca' COMMENT 'ops' PASSWORD EXPIRE INTERVAL 90 DAY`, `CREATE USER u IDENTIFIED BY ***** REQUIRE SUBJECT '/CN=u' AND ISSUER '/CN=ca' COMMENT 'ops' PASSWORD EXPIRE INTERVAL 90 DAY`},
		{`CREATE USER u IDENTIFIED WITH authentication_ldap_sasl AND IDENTIFIED WITH authentication_fido INITIAL AUTHENTICATION IDENTIFIED BY 'p'`, `CREATE USER u IDENTIFIED WITH authentication_ldap_sasl AND IDENTIFIED WITH authentication_fido INITIAL AUTHENTICATION IDENTIFIED BY *****`},
		// MariaDB VIA / USING, ed25519, OR chains.
		{`create user u2 IDENTIFIED VIA ed25519 USING PASSWORD('pwd_123')`, `create user u2 IDENTIFIED VIA ed25519 USING PASSWORD(*****)`},
		{`alter user u2 identified VIA ed25519 USING password('pwd_123')`, `alter user u2 identified VIA ed25519 USING password(*****)`},
		{`GRANT ALL ON test TO u1 identified VIA ed25519 as password('pwd_123') or ed25519 using password('pwd_123')`, `GRANT ALL ON test TO u1 identified VIA ed25519 as password(*****) or ed25519 using password(*****)`},
		{`CREATE USER u IDENTIFIED VIA mysql_native_password USING '*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19' OR unix_socket`, `CREATE USER u IDENTIFIED VIA mysql_native_password USING ***** OR unix_socket`},
		{`SET STATEMENT max_statement_time=10 FOR ALTER USER u1 IDENTIFIED BY 'pwd_123'`, `SET STATEMENT max_statement_time=10 FOR ALTER USER u1 IDENTIFIED BY *****`},
		// SET PASSWORD.
		{`SET PASSWORD = 'my-password'`, `SET PASSWORD = *****`},
		{`SET PASSWORD FOR u1 = PASSWORD('pwd_123')`, `SET PASSWORD FOR u1 = PASSWORD(*****)`},
		{`set password for 'u1'@'%' = old_password('x')`, `set password for 'u1'@'%' = old_password(*****)`},
		{`SET PASSWORD FOR u = '*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19'`, `SET PASSWORD FOR u = *****`},
		{`SET PASSWORD = 'new' REPLACE 'old'`, `SET PASSWORD = ***** REPLACE *****`},
		{`SET PASSWORD FOR u TO RANDOM`, `SET PASSWORD FOR u TO RANDOM`},
		{`SET PASSWORD=PASSWORD ( 'x' )`, `SET PASSWORD=PASSWORD ( ***** )`},
		// GRANT.
		{`GRANT ALL ON test TO u1 IDENTIFIED BY "pwd_123"`, `GRANT ALL ON test TO u1 IDENTIFIED BY *****`},
		{`GRANT SELECT ON db.* TO 'u'@'%' IDENTIFIED BY 'p' WITH GRANT OPTION`, `GRANT SELECT ON db.* TO 'u'@'%' IDENTIFIED BY ***** WITH GRANT OPTION`},
		// Replication.
		{`CHANGE MASTER TO MASTER_HOST='h', MASTER_USER='repl', MASTER_PASSWORD='s3cr3t', MASTER_PORT=3306`, `CHANGE MASTER TO MASTER_HOST='h', MASTER_USER='repl', MASTER_PASSWORD=*****, MASTER_PORT=3306`},
		{`change replication source to source_host = 'h', source_password = "s3cr3t"`, `change replication source to source_host = 'h', source_password = *****`},
		{`START REPLICA USER='repl' PASSWORD='s3cr3t' DEFAULT_AUTH='x'`, `START REPLICA USER='repl' PASSWORD=***** DEFAULT_AUTH='x'`},
		{`START SLAVE USER='repl' PASSWORD='s3cr3t'`, `START SLAVE USER='repl' PASSWORD=*****`},
		{`START GROUP_REPLICATION USER='rpl', PASSWORD='s3cr3t'`, `START GROUP_REPLICATION USER='rpl', PASSWORD=*****`},
		{`CREATE SERVER s FOREIGN DATA WRAPPER mysql OPTIONS (USER 'u', PASSWORD 'pw', HOST 'h')`, `CREATE SERVER s FOREIGN DATA WRAPPER mysql OPTIONS (USER 'u', PASSWORD *****, HOST 'h')`},
		// Quoting: escapes, doubled quotes, adjacent literals, introducers.
		{`CREATE USER u IDENTIFIED BY 'it\'s a \\ "pw"'`, `CREATE USER u IDENTIFIED BY *****`},
		{`CREATE USER u IDENTIFIED BY 'it''s' COMMENT 'c'`, `CREATE USER u IDENTIFIED BY ***** COMMENT 'c'`},
		{`CREATE USER u IDENTIFIED BY "say \"hi\"" COMMENT 'c'`, `CREATE USER u IDENTIFIED BY ***** COMMENT 'c'`},
		{`CREATE USER u IDENTIFIED BY 'pa' 'ss' /* c */ "word" COMMENT 'c'`, `CREATE USER u IDENTIFIED BY ***** COMMENT 'c'`},
		{`CREATE USER u IDENTIFIED BY _utf8mb4'pw' COMMENT 'c'`, `CREATE USER u IDENTIFIED BY ***** COMMENT 'c'`},
		{`CREATE USER u IDENTIFIED BY N'pw'`, `CREATE USER u IDENTIFIED BY *****`},
		{`CREATE USER u IDENTIFIED BY 'unterminated \' and more`, `CREATE USER u IDENTIFIED BY *****`},
		// GBK, Big5, SJIS: 0xBF 0x5C is one character to a server in
		// those sets; read byte by byte, the 0x5C escapes the quote. Both
		// readings' passwords are masked.
		{"CREATE USER u IDENTIFIED BY '\xbf\\' , v IDENTIFIED BY 'realsecret' -- '", "CREATE USER u IDENTIFIED BY ***** -- '"},
		{"SET PASSWORD = PASSWORD('\xa5\\'), @x = 'secret2' -- ')", "SET PASSWORD = PASSWORD(***** -- ')"}, // more than either reading alone: never less
		// The sets disagree on which bytes begin a character: SJIS reads
		// 0xBB alone and 0xE0 0x5C as one (GBK escapes the quote after
		// 0xBB 0xE0), Big5 reads 0x81 alone and 0xA1 0x5C as one (GBK and
		// SJIS pair 0x81 0xA1): each set's reading is made.
		// The leading 'p\'q' keeps the NO_BACKSLASH_ESCAPES readings from
		// finding w's password by chance.
		{"CREATE USER u IDENTIFIED BY 'p\\'q' , v IDENTIFIED BY 'x\xbb\xe0\\' , w IDENTIFIED BY 'realsecret' -- '", "CREATE USER u IDENTIFIED BY ***** , v IDENTIFIED BY ***** -- '"},
		{"CREATE USER u IDENTIFIED BY 'p\\'q' , v IDENTIFIED BY 'x\x81\xa1\\' , w IDENTIFIED BY 'realsecret' -- '", "CREATE USER u IDENTIFIED BY ***** , v IDENTIFIED BY ***** -- '"},
		{"CREATE USER u IDENTIFIED BY 'caf\xc3\xa9\\'s'", "CREATE USER u IDENTIFIED BY *****"},
		// NO_BACKSLASH_ESCAPES ends 'a\' at its second quote: v's
		// password is masked as either mode reads the text.
		{"CREATE USER u IDENTIFIED BY 'a\\' , v IDENTIFIED BY 'realsecret' -- '", "CREATE USER u IDENTIFIED BY ***** -- '"},
		// Comments, case, whitespace.
		{"CREATE USER u IDENTIFIED /* x */ BY -- note\n 'pw'", "CREATE USER u IDENTIFIED /* x */ BY -- note\n *****"},
		{"CREATE USER u IDENTIFIED # note\nBY 'pw'", "CREATE USER u IDENTIFIED # note\nBY *****"},
		{"/* lead */ CREATE USER u IDENTIFIED BY 'pw'", "/* lead */ CREATE USER u IDENTIFIED BY *****"},
		{"CREATE USER u /*!50700 IDENTIFIED BY 'pw' */", "CREATE USER u /*!50700 IDENTIFIED BY ***** */"},
		{"CREATE USER u /*! IDENTIFIED BY 'pw'*/", "CREATE USER u /*! IDENTIFIED BY ******/"},
		// A mask beside a slash would make a comment's opener or closer.
		{"CREATE USER u IDENTIFIED BY 'pw'/* c */", "CREATE USER u IDENTIFIED BY ***** /* c */"},
		{"CREATE USER u /*M!100100 IDENTIFIED VIA ed25519 USING PASSWORD('pw') */", "CREATE USER u /*M!100100 IDENTIFIED VIA ed25519 USING PASSWORD(*****) */"},
		{"CREATE USER u /* IDENTIFIED BY 'in comment' */", "CREATE USER u /* IDENTIFIED BY 'in comment' */"},
		{"cReAtE\n\tUSER  u\r\n  IdEnTiFiEd\n\n  bY\t'pw'", "cReAtE\n\tUSER  u\r\n  IdEnTiFiEd\n\n  bY\t*****"},
		{"CREATE USER u IDENTIFIED BY'pw'", "CREATE USER u IDENTIFIED BY*****"},
		{"CREATE USER u IDENTIFIED BY 'a--b' -- 'not a password'\n", "CREATE USER u IDENTIFIED BY ***** -- 'not a password'\n"},
		// Multi-statement texts.
		{"SELECT 1; CREATE USER a IDENTIFIED BY 'x'; SET PASSWORD FOR a = 'y';SELECT 'IDENTIFIED BY z'", "SELECT 1; CREATE USER a IDENTIFIED BY *****; SET PASSWORD FOR a = *****;SELECT 'IDENTIFIED BY z'"},
		{"CREATE USER a IDENTIFIED BY 'x';\nSELECT 'y' AS z", "CREATE USER a IDENTIFIED BY *****;\nSELECT 'y' AS z"},
		// Text that only looks like a password is left alone.
		{`SELECT 'IDENTIFIED BY x'`, `SELECT 'IDENTIFIED BY x'`},
		{`SELECT "SET PASSWORD = 'x'" FROM t`, `SELECT "SET PASSWORD = 'x'" FROM t`},
		{"SELECT `identified` FROM t WHERE `password` = 'x'", "SELECT `identified` FROM t WHERE `password` = 'x'"},
		{`UPDATE users SET password = 'hash' WHERE id = 1`, `UPDATE users SET password = 'hash' WHERE id = 1`},
		{`SELECT * FROM users WHERE password = 'x' OR u.password = 'y'`, `SELECT * FROM users WHERE password = 'x' OR u.password = 'y'`},
		{`SET @password = 'x'`, `SET @password = 'x'`},
		{`CREATE TABLE t (password VARCHAR(64) DEFAULT 'x')`, `CREATE TABLE t (password VARCHAR(64) DEFAULT 'x')`},
		{`ALTER TABLE t ALTER COLUMN password SET DEFAULT 'x'`, `ALTER TABLE t ALTER COLUMN password SET DEFAULT 'x'`},
		{`CREATE USER u IDENTIFIED BY *****`, `CREATE USER u IDENTIFIED BY *****`},
		// PASSWORD() computes a hash from a password wherever it appears.
		{`UPDATE mysql.user SET authentication_string = PASSWORD('pw') WHERE User = 'u'`, `UPDATE mysql.user SET authentication_string = PASSWORD(*****) WHERE User = 'u'`},
		{`SELECT PASSWORD('pw'), OLD_PASSWORD("pw")`, `SELECT PASSWORD(*****), OLD_PASSWORD(*****)`},
		// Degenerate input.
		{``, ``},
		{`IDENTIFIED`, `IDENTIFIED`},
		{`IDENTIFIED BY`, `IDENTIFIED BY`},
		{`PASSWORD(`, `PASSWORD(`},
		{`SET PASSWORD =`, `SET PASSWORD =`},
		{`IDENTIFIED BY '`, `IDENTIFIED BY *****`},
		{"CREATE USER u /*!50700 IDENTIFIED BY 'pw'", "CREATE USER u /*!50700 IDENTIFIED BY *****"},
	}
	for _, tt := range tests {
		if got := SQL(tt.in); got != tt.want {
			t.Errorf("SQL(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
		if again := SQL(tt.want); again != tt.want {
			t.Errorf("not idempotent on %q: %q", tt.want, again)
		}
	}
}

// Texts without the keywords come back as the same string, with no
// allocation.
func TestFastPathNoAlloc(t *testing.T) {
	q := strings.Repeat("SELECT id, name FROM users WHERE region = 'eu' AND status IN (1, 2) ", 16)
	if got := SQL(q); got != q {
		t.Fatal("changed a text without passwords")
	}
	if n := testing.AllocsPerRun(100, func() { _ = SQL(q) }); n != 0 {
		t.Fatalf("fast path allocates %v times", n)
	}
	// A keyword with nothing to mask takes the slow path, still without
	// allocating.
	q2 := "SELECT password, identified FROM t WHERE password = 'x'"
	if n := testing.AllocsPerRun(100, func() { _ = SQL(q2) }); n != 0 {
		t.Fatalf("keyword-only path allocates %v times", n)
	}
}

// quoteSQL writes pw as a literal the way a client would.
func quoteSQL(pw string, variant uint8) string {
	q := byte('\'')
	if variant&1 != 0 {
		q = '"'
	}
	var b strings.Builder
	b.WriteByte(q)
	for i := 0; i < len(pw); i++ {
		c := pw[i]
		switch {
		case c == '\\':
			b.WriteString(`\\`)
		case c == q && variant&2 != 0:
			b.WriteByte(q)
			b.WriteByte(q)
		case c == q:
			b.WriteByte('\\')
			b.WriteByte(q)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte(q)
	return b.String()
}

func FuzzSQL(f *testing.F) {
	f.Add("CREATE USER u IDENTIFIED BY 'x'", "pwd_123", uint8(0))
	f.Add("SET PASSWORD FOR u = PASSWORD('x'); SELECT 1", "it's \"q\" \\", uint8(3))
	f.Add("/*!50700 CREATE USER u IDENTIFIED BY 'x' */ -- c", "", uint8(6))
	f.Add("CHANGE MASTER TO MASTER_PASSWORD='a' 'b", "\x00\xff*/--#", uint8(9))
	f.Fuzz(func(t *testing.T, q, pw string, variant uint8) {
		out := SQL(q) // must not panic on anything
		if !mayHavePassword(q) && out != q {
			t.Fatalf("fast path changed %q", q)
		}
		if again := SQL(out); again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q", q, out, again)
		}
		stmts := []string{
			"CREATE USER 'u'@'%' IDENTIFIED BY %s",
			"ALTER USER u IDENTIFIED WITH caching_sha2_password BY %s",
			"create user u identified via ed25519 using password(%s)",
			"SET PASSWORD FOR u = %s",
			"GRANT ALL ON *.* TO u IDENTIFIED BY %s",
			"CHANGE REPLICATION SOURCE TO SOURCE_PASSWORD = %s",
			"CREATE USER a IDENTIFIED BY 'x', b /*!50700 IDENTIFIED BY %s */",
		}
		idx := int(variant>>2) % len(stmts)
		tmpl := stmts[idx]
		lit := quoteSQL(pw, variant)
		in := strings.Replace(tmpl, "%s", lit, 1)
		want := strings.Replace(tmpl, "%s", Mask, 1)
		if idx == 6 {
			want = strings.Replace(want, "'x'", Mask, 1)
		}
		if charset.Ambiguous(in) || strings.Contains(in, "\\") {
			// Read two ways, and masked as both read it: the literal
			// goes, and perhaps more.
			if got := SQL(in); strings.Contains(got, lit) {
				t.Fatalf("SQL(%q) = %q keeps the password", in, got)
			}
			return
		}
		if got := SQL(in); got != want {
			t.Fatalf("SQL(%q)\n got %q\nwant %q", in, got, want)
		}
		// The same statement after arbitrary SQL that ends cleanly.
		if !strings.ContainsAny(q, "'\"`#-/*\\") {
			if got := SQL(q + ";\n" + in); !strings.HasSuffix(got, ";\n"+want) {
				t.Fatalf("after %q: %q", q, got)
			}
		}
	})
}

func BenchmarkFastPath(b *testing.B) {
	q := strings.Repeat("SELECT c.id, c.name, o.total FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.created_at > '2026-01-01' ", 9)[:1024]
	b.SetBytes(int64(len(q)))
	b.ReportAllocs()
	for b.Loop() {
		_ = SQL(q)
	}
}

func BenchmarkFastPathShort(b *testing.B) {
	q := "SELECT c FROM sbtest1 WHERE id=4711"
	b.SetBytes(int64(len(q)))
	b.ReportAllocs()
	for b.Loop() {
		_ = SQL(q)
	}
}

func BenchmarkRedact(b *testing.B) {
	q := "CREATE USER 'app'@'10.0.%' IDENTIFIED WITH caching_sha2_password BY 'S3cr3t-P@ss' REQUIRE SSL PASSWORD EXPIRE INTERVAL 90 DAY"
	b.SetBytes(int64(len(q)))
	b.ReportAllocs()
	for b.Loop() {
		_ = SQL(q)
	}
}
