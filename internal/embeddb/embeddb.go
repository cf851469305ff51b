// Package embeddb runs an in-memory, MySQL-compatible database server on a
// loopback port. `das serve` starts one when no upstream is configured, so a
// fresh machine has something for the proxy to forward to.
//
// The engine is github.com/dolthub/go-mysql-server. Nothing is written to
// disk: every table is gone when the server closes.
package embeddb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	sqle "github.com/dolthub/go-mysql-server"
	"github.com/dolthub/go-mysql-server/memory"
	"github.com/dolthub/go-mysql-server/server"
	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/vitess/go/mysql"
	"github.com/dolthub/vitess/go/sqltypes"
)

// Defaults for Options. The README tells users to connect with
// `mariadb -h 127.0.0.1 -P <port> -u das -pdas das`.
const (
	DefaultUser     = "das"
	DefaultPassword = "das"
	DefaultDatabase = "das"
)

// Options configure Start. Zero values take the defaults above.
type Options struct {
	// User is created as a superuser reachable from loopback only
	// (MySQL account 'User'@'localhost').
	User string
	// Password is checked with mysql_native_password. Empty means
	// DefaultPassword: a password-less account is not offered.
	Password string
	// Database is created empty and is the one clients land in when they
	// name it on connect.
	Database string
	// Logger receives the engine's warnings and errors. Nil discards them.
	Logger *slog.Logger
}

// DB is a running embedded server.
type DB struct {
	srv     *server.Server
	engine  *sqle.Engine
	ln      *trackingListener
	version string
	log     *slog.Logger

	done      chan struct{} // closed when the accept loop returns
	closeOnce sync.Once
	closeErr  error
	stop      func() bool // detaches the ctx watcher
}

// Start listens on 127.0.0.1 on a free port and serves until Close is
// called or ctx is done.
func Start(ctx context.Context, o Options) (*DB, error) {
	if o.User == "" {
		o.User = DefaultUser
	}
	if o.Password == "" {
		o.Password = DefaultPassword
	}
	if o.Database == "" {
		o.Database = DefaultDatabase
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("embeddb: start: %w", err)
	}
	routeEngineLogs(o.Logger)
	if err := disableFileAccess(); err != nil {
		return nil, fmt.Errorf("embeddb: %w", err)
	}

	memDB := memory.NewDatabase(o.Database)
	// Without primary-key indexes the memory engine scans every row even for
	// point lookups by key.
	memDB.EnablePrimaryKeyIndexes()
	pro := memory.NewDBProvider(memDB)
	engine := sqle.NewDefault(pro)

	// Adding a user turns the built-in mysql.user table on; until then the
	// engine lets anyone in with any password.
	users := engine.Analyzer.Catalog.MySQLDb
	ed := users.Editor()
	users.AddSuperUser(ed, o.User, "localhost", o.Password)
	ed.Close()

	// Bind it ourselves so the server can never end up on a wildcard
	// address, and so Close can cut open client connections.
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("embeddb: listen: %w", err)
	}
	ln := &trackingListener{Listener: raw, conns: make(map[net.Conn]struct{})}

	// Advertise in the handshake the same version that SELECT @@version
	// reports; the library's defaults for the two differ.
	version := mysql.DefaultServerVersion
	if _, v, ok := sql.SystemVariables.GetGlobal("version"); ok {
		if s, ok := v.(string); ok && s != "" {
			version = s
		}
	}

	cfg := server.Config{
		Protocol: "tcp",
		Address:  raw.Addr().String(),
		Listener: ln,
		Version:  version,
		ProtocolListenerFactory: func(cfg server.Config, lc mysql.ListenerConfig, sel server.ServerEventListener) (server.ProtocolListener, error) {
			lc.AuthServer = denyUnknownUsers(lc.AuthServer)
			return server.MySQLProtocolListenerFactory(cfg, lc, sel)
		},
	}
	srv, err := server.NewServerWithHandler(cfg, engine, sql.NewContext, memory.NewSessionBuilder(pro), nil,
		func(h mysql.Handler) (mysql.Handler, error) { return infoStripper{h}, nil })
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("embeddb: new server: %w", err)
	}

	d := &DB{
		srv:     srv,
		engine:  engine,
		ln:      ln,
		version: version,
		log:     o.Logger,
		done:    make(chan struct{}),
	}
	go func() {
		defer close(d.done)
		_ = srv.Start() // blocks in Accept until the listener closes; always nil
	}()
	d.stop = context.AfterFunc(ctx, func() { _ = d.Close() })
	o.Logger.Info("embedded database started", "addr", d.Addr(), "database", o.Database, "user", o.User, "version", version)
	return d, nil
}

// noFileDir is where file import/export is confined to. It names a path
// below a character device, so it can never exist and every LOAD DATA
// INFILE, SELECT ... INTO OUTFILE/DUMPFILE and LOAD_FILE() is refused.
const noFileDir = "/dev/null/embeddb-file-access-disabled"

// disableFileAccess sets secure_file_priv. The library's default, "", lets
// any client of the server read and write every file the das process can,
// its key files included, and the proxy may expose this server to clients
// beyond loopback. The setting is process-wide (the library keeps system
// variables in a global) and is applied before any session copies it.
func disableFileAccess() error {
	if err := sql.SystemVariables.AssignValues(map[string]any{"secure_file_priv": noFileDir}); err != nil {
		return fmt.Errorf("set secure_file_priv: %w", err)
	}
	return nil
}

// Addr is the host:port clients connect to, e.g. "127.0.0.1:40123".
func (d *DB) Addr() string { return d.ln.Addr().String() }

// Version is the server version sent in the handshake and returned by
// SELECT @@version.
func (d *DB) Version() string { return d.version }

// Close stops accepting, drops open client connections and waits for the
// accept loop to end. Data is discarded. It is safe to call more than once.
func (d *DB) Close() error {
	d.closeOnce.Do(func() {
		if d.stop != nil {
			d.stop()
		}
		_ = d.srv.Close() // closes the listener; always nil
		d.ln.closeConns()
		<-d.done
		// Shutdown of the engine's background threads reports the
		// cancellation it uses to stop them.
		if err := d.engine.Close(); err != nil && !errors.Is(err, context.Canceled) {
			d.closeErr = fmt.Errorf("embeddb: close engine: %w", err)
		}
		d.log.Info("embedded database stopped")
	})
	return d.closeErr
}

// trackingListener remembers accepted connections so Close can end them:
// the library's own shutdown only stops accepting.
type trackingListener struct {
	net.Listener
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, l: l}
	l.conns[tc] = struct{}{}
	return tc, nil
}

func (l *trackingListener) closeConns() {
	l.mu.Lock()
	l.closed = true
	conns := l.conns
	l.conns = nil
	l.mu.Unlock()
	for c := range conns {
		c.(*trackedConn).Conn.Close()
	}
}

type trackedConn struct {
	net.Conn
	l    *trackingListener
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	err := c.Conn.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// denyUnknownUsers makes a login as a user that does not exist fail with
// ER_ACCESS_DENIED_ERROR (1045), as MySQL does. Left alone, the library
// finds no auth method "for" an unknown user and answers with a client-side
// error code (2012, "No authentication methods available"), which would
// confuse anyone checking for 1045 through the proxy.
func denyUnknownUsers(as mysql.AuthServer) mysql.AuthServer {
	methods := as.AuthMethods()
	wrapped := make([]mysql.AuthMethod, len(methods))
	copy(wrapped, methods)
	for i, m := range methods {
		if m.Name() == mysql.MysqlNativePassword {
			others := append(append([]mysql.AuthMethod(nil), methods[:i]...), methods[i+1:]...)
			wrapped[i] = fallbackMethod{AuthMethod: m, others: others}
		}
	}
	return authServer{AuthServer: as, methods: wrapped}
}

type authServer struct {
	mysql.AuthServer
	methods []mysql.AuthMethod
}

func (a authServer) AuthMethods() []mysql.AuthMethod { return a.methods }

// fallbackMethod takes users no other method claims; its password check
// then rejects them with 1045 since the account does not exist.
type fallbackMethod struct {
	mysql.AuthMethod
	others []mysql.AuthMethod
}

func (f fallbackMethod) HandleUser(c *mysql.Conn, user string) bool {
	if f.AuthMethod.HandleUser(c, user) {
		return true
	}
	for _, m := range f.others {
		if m.HandleUser(c, user) {
			return false
		}
	}
	return true
}

// infoStripper drops the info text of OK packets ("Statement prepared",
// "Rows matched: 1  Changed: 1  Warnings: 0"). The library writes it as a
// '#' byte followed by the raw text, where clients read a length-encoded
// string: '#' reads as length 35, so libmariadb rejects shorter texts as a
// malformed packet (SQL PREPARE in the mariadb CLI) and cuts longer ones.
// An OK packet without info is valid for every client.
type infoStripper struct{ mysql.Handler }

func (h infoStripper) ComQuery(ctx context.Context, c *mysql.Conn, query string, cb mysql.ResultSpoolFn) error {
	return h.Handler.ComQuery(ctx, c, query, stripInfo(cb))
}

func (h infoStripper) ComMultiQuery(ctx context.Context, c *mysql.Conn, query string, cb mysql.ResultSpoolFn) (string, error) {
	return h.Handler.ComMultiQuery(ctx, c, query, stripInfo(cb))
}

func stripInfo(cb mysql.ResultSpoolFn) mysql.ResultSpoolFn {
	return func(res *sqltypes.Result, more bool) error {
		if res != nil {
			res.Info = ""
		}
		return cb(res, more)
	}
}
