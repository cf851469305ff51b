package embeddb_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/das-mysql/das/internal/embeddb"
	dasmysql "github.com/das-mysql/das/internal/mysql"
)

func start(t testing.TB, o embeddb.Options) *embeddb.DB {
	t.Helper()
	d, err := embeddb.Start(context.Background(), o)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return d
}

func open(t testing.TB, user, pass, addr, db string) *sql.DB {
	t.Helper()
	cfg := gomysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = user, pass, "tcp", addr, db
	cfg.Timeout = 5 * time.Second
	c, err := gomysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sdb := sql.OpenDB(c)
	t.Cleanup(func() { sdb.Close() })
	return sdb
}

func TestListensOnLoopbackOnly(t *testing.T) {
	d := start(t, embeddb.Options{})
	host, port, err := net.SplitHostPort(d.Addr())
	if err != nil {
		t.Fatalf("Addr %q: %v", d.Addr(), err)
	}
	if host != "127.0.0.1" || port == "0" {
		t.Fatalf("Addr = %q, want 127.0.0.1:<port>", d.Addr())
	}
}

// The greeting is what the proxy sees first: these are the facts it relies on.
func TestGreeting(t *testing.T) {
	d := start(t, embeddb.Options{})
	c, err := net.DialTimeout("tcp", d.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	payload, _, err := dasmysql.ReadPacket(bufio.NewReader(c), nil, 1<<20)
	if err != nil {
		t.Fatalf("read greeting: %v", err)
	}
	h, err := dasmysql.ParseHandshakeV10(payload)
	if err != nil {
		t.Fatalf("parse greeting: %v", err)
	}
	if h.ServerVersion != d.Version() {
		t.Errorf("greeting version %q, Version() %q", h.ServerVersion, d.Version())
	}
	if h.AuthPlugin != "mysql_native_password" {
		t.Errorf("auth plugin %q, want mysql_native_password", h.AuthPlugin)
	}
	for _, c := range []struct {
		name string
		cap  dasmysql.Capability
		want bool
	}{
		{"CLIENT_PROTOCOL_41", dasmysql.ClientProtocol41, true},
		{"CLIENT_PLUGIN_AUTH", dasmysql.ClientPluginAuth, true},
		{"CLIENT_DEPRECATE_EOF", dasmysql.ClientDeprecateEOF, true},
		{"CLIENT_SSL", dasmysql.ClientSSL, false},
	} {
		if got := h.Capabilities&c.cap != 0; got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestGoDriver(t *testing.T) {
	d := start(t, embeddb.Options{})
	db := open(t, embeddb.DefaultUser, embeddb.DefaultPassword, d.Addr(), embeddb.DefaultDatabase)
	ctx := context.Background()

	var version, current string
	if err := db.QueryRowContext(ctx, "SELECT @@version, DATABASE()").Scan(&version, &current); err != nil {
		t.Fatalf("select: %v", err)
	}
	if version != d.Version() || current != embeddb.DefaultDatabase {
		t.Errorf("@@version, DATABASE() = %q, %q; want %q, %q", version, current, d.Version(), embeddb.DefaultDatabase)
	}

	mustExec(t, db, "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, amount DECIMAL(10,2))")
	mustExec(t, db, "INSERT INTO t VALUES (1, 'alice', 10.50), (2, 'bob', NULL)")

	// Args without interpolation go through COM_STMT_PREPARE/EXECUTE.
	stmt, err := db.PrepareContext(ctx, "INSERT INTO t (id, name, amount) VALUES (?, ?, ?)")
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	for i, name := range []string{"carol", "dave"} {
		res, err := stmt.ExecContext(ctx, 3+i, name, 1.25*float64(i+1))
		if err != nil {
			t.Fatalf("exec prepared: %v", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			t.Errorf("rows affected %d, want 1", n)
		}
	}
	stmt.Close()

	rows, err := db.QueryContext(ctx, "SELECT id, name, amount FROM t WHERE id >= ? ORDER BY id", 2)
	if err != nil {
		t.Fatalf("query prepared: %v", err)
	}
	var got []string
	for rows.Next() {
		var id int
		var name string
		var amount sql.NullString
		if err := rows.Scan(&id, &name, &amount); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d %s %s", id, name, amount.String))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{"2 bob ", "3 carol 1.25", "4 dave 2.50"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("rows = %q, want %q", got, want)
	}

	_, err = db.ExecContext(ctx, "INSERT INTO t VALUES (1, 'dup', 0)")
	var me *gomysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1062 {
		t.Errorf("duplicate key: err = %v, want MySQL error 1062", err)
	}
}

// A client must not reach the das host's files through the server: the
// proxy may expose it beyond loopback and das keeps key files on disk.
func TestNoServerFileAccess(t *testing.T) {
	d := start(t, embeddb.Options{})
	db := open(t, embeddb.DefaultUser, embeddb.DefaultPassword, d.Addr(), embeddb.DefaultDatabase)
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "key")
	if err := os.WriteFile(secretFile, []byte("1\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// MySQL answers NULL; this engine fails the statement. Either is fine.
	var content sql.NullString
	if err := db.QueryRow("SELECT LOAD_FILE(?)", secretFile).Scan(&content); err == nil && content.Valid {
		t.Errorf("LOAD_FILE read %q, want NULL or an error", content.String)
	}

	mustExec(t, db, "CREATE TABLE f (v INT)")
	if _, err := db.Exec("LOAD DATA INFILE '" + secretFile + "' INTO TABLE f"); err == nil {
		t.Error("LOAD DATA INFILE succeeded")
	}

	out := filepath.Join(dir, "out")
	if _, err := db.Exec("SELECT 1 INTO OUTFILE '" + out + "'"); err == nil {
		t.Error("SELECT INTO OUTFILE succeeded")
	}
	if _, err := db.Exec("SELECT 1 INTO DUMPFILE '" + out + "'"); err == nil {
		t.Error("SELECT INTO DUMPFILE succeeded")
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("server wrote %s (stat err %v)", out, err)
	}
}

func TestCustomAccount(t *testing.T) {
	d := start(t, embeddb.Options{User: "app", Password: "s3cret", Database: "shop"})
	db := open(t, "app", "s3cret", d.Addr(), "shop")
	var current string
	if err := db.QueryRow("SELECT DATABASE()").Scan(&current); err != nil {
		t.Fatalf("select: %v", err)
	}
	if current != "shop" {
		t.Errorf("DATABASE() = %q, want shop", current)
	}
	// The default account must not exist alongside the chosen one.
	if err := open(t, embeddb.DefaultUser, embeddb.DefaultPassword, d.Addr(), "").Ping(); !isAccessDenied(err) {
		t.Errorf("default account on custom server: err = %v, want access denied", err)
	}
}

func TestRefusesBadCredentials(t *testing.T) {
	d := start(t, embeddb.Options{})
	for _, c := range []struct{ name, user, pass string }{
		{"wrong password", embeddb.DefaultUser, "nope"},
		{"empty password", embeddb.DefaultUser, ""},
		{"unknown user", "mallory", embeddb.DefaultPassword},
		{"root", "root", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := open(t, c.user, c.pass, d.Addr(), "").Ping()
			if !isAccessDenied(err) {
				t.Fatalf("err = %v, want access denied (1045)", err)
			}
		})
	}
}

func isAccessDenied(err error) bool {
	var me *gomysql.MySQLError
	return errors.As(err, &me) && me.Number == 1045
}

func TestMariaDBCLI(t *testing.T) {
	cli, err := exec.LookPath("mariadb")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mariadb CLI not found: %v", err)
		}
		t.Skipf("mariadb CLI not found: %v", err)
	}
	d := start(t, embeddb.Options{})
	host, port, _ := net.SplitHostPort(d.Addr())
	run := func(pass, sql string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, cli, "--no-defaults", "-h", host, "-P", port,
			"-u", embeddb.DefaultUser, "-p"+pass, "--batch", "--skip-column-names",
			embeddb.DefaultDatabase, "-e", sql)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	// PREPARE and UPDATE answer with OK packets that carried an info text
	// the library encodes in a way libmariadb rejects.
	const script = `CREATE TABLE cli (v INT); INSERT INTO cli VALUES (40);
		UPDATE cli SET v = v + 1;
		PREPARE s FROM 'SELECT v + ? FROM cli'; SET @one = 1; EXECUTE s USING @one; DEALLOCATE PREPARE s;
		SELECT 1`
	out, err := run(embeddb.DefaultPassword, script)
	if err != nil {
		t.Fatalf("mariadb: %v\n%s", err, out)
	}
	if out != "42\n1\n" {
		t.Errorf("mariadb output %q, want %q", out, "42\n1\n")
	}

	out, err = run("wrong", "SELECT 1")
	if err == nil || !strings.Contains(out, "Access denied") {
		t.Errorf("wrong password: err = %v, output %q; want failure with Access denied", err, out)
	}
}

func TestCloseDropsClients(t *testing.T) {
	d, err := embeddb.Start(context.Background(), embeddb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db := open(t, embeddb.DefaultUser, embeddb.DefaultPassword, d.Addr(), "")
	db.SetMaxIdleConns(1)
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.PingContext(context.Background()); err != nil {
		t.Fatal(err)
	}

	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := conn.PingContext(context.Background()); err == nil {
		t.Error("ping on a connection opened before Close succeeded")
	}
	if c, err := net.DialTimeout("tcp", d.Addr(), time.Second); err == nil {
		c.Close()
		t.Error("port still accepts after Close")
	}
}

func TestContextCancelStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	d, err := embeddb.Start(ctx, embeddb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", d.Addr(), time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting 5s after ctx was cancelled")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("Close after cancel: %v", err)
	}

	if _, err := embeddb.Start(ctx, embeddb.Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Start with done ctx: err = %v, want context.Canceled", err)
	}
}

// Engine errors reach the Logger, but never the statement that caused them.
func TestLogsWithoutQueryText(t *testing.T) {
	var buf syncBuffer
	d := start(t, embeddb.Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	db := open(t, embeddb.DefaultUser, embeddb.DefaultPassword, d.Addr(), embeddb.DefaultDatabase)
	const secret = "hunter2-do-not-log"
	if _, err := db.Prepare("SELECT * FROM nosuch WHERE pw = '" + secret + "'"); err == nil {
		t.Fatal("prepare on a missing table succeeded")
	}
	if _, err := db.Exec("SELEC '" + secret + "'"); err == nil {
		t.Fatal("syntax error accepted")
	}
	logs := buf.String()
	if !strings.Contains(logs, "unable to prepare query") {
		t.Errorf("engine error not logged; logs:\n%s", logs)
	}
	if strings.Contains(logs, secret) {
		t.Errorf("logs contain query text:\n%s", logs)
	}
}

func mustExec(t *testing.T, db *sql.DB, q string) {
	t.Helper()
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func BenchmarkStart(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		d, err := embeddb.Start(context.Background(), embeddb.Options{})
		if err != nil {
			b.Fatal(err)
		}
		d.Close()
	}
}

// BenchmarkPointSelect is the floor a proxied query cannot beat: one
// prepared primary-key lookup, straight to the embedded server.
func BenchmarkPointSelect(b *testing.B) {
	d := start(b, embeddb.Options{})
	db := open(b, embeddb.DefaultUser, embeddb.DefaultPassword, d.Addr(), embeddb.DefaultDatabase)
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("CREATE TABLE kv (k INT PRIMARY KEY, v VARCHAR(32))"); err != nil {
		b.Fatal(err)
	}
	for i := range 100 {
		if _, err := db.Exec("INSERT INTO kv VALUES (?, ?)", i, fmt.Sprint("value-", i)); err != nil {
			b.Fatal(err)
		}
	}
	stmt, err := db.Prepare("SELECT v FROM kv WHERE k = ?")
	if err != nil {
		b.Fatal(err)
	}
	defer stmt.Close()
	b.ReportAllocs()
	var v string
	i := 0
	for b.Loop() {
		if err := stmt.QueryRow(i % 100).Scan(&v); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
