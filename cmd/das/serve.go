package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/das-mysql/das/internal/admin"
	"github.com/das-mysql/das/internal/certs"
	"github.com/das-mysql/das/internal/config"
	"github.com/das-mysql/das/internal/cpusched"
	"github.com/das-mysql/das/internal/embeddb"
	"github.com/das-mysql/das/internal/events"
	"github.com/das-mysql/das/internal/proxy"
)

// tuneGC sets the collector's target to gc_percent unless the GOGC
// environment variable is set (the operator's explicit choice wins). It
// returns the value in force and whether it set it.
func tuneGC(pct int, getenv func(string) string) (int, bool) {
	if getenv("GOGC") != "" {
		old := debug.SetGCPercent(-1)
		debug.SetGCPercent(old)
		return old, false
	}
	debug.SetGCPercent(pct)
	return pct, true
}

// runServe is the main job: relay MySQL sessions to the upstream database and
// stream their activity, sealed, to the local stream log. With no upstream it
// starts an embedded database, so that it works on a fresh machine.
func runServe(ctx context.Context, args []string, _ io.Reader, _, stderr io.Writer) error {
	fs, cf := flagSet("serve", stderr)
	c, err := parse(fs, cf, args)
	if err != nil {
		return err
	}
	logger := newLogger(c, stderr)
	if pct, applied := tuneGC(c.GCPercent, os.Getenv); applied {
		logger.Debug("garbage collection target set", "gc_percent", pct)
	}

	upstream := c.Upstream
	if upstream == "" && c.Listen != "" {
		db, err := embeddb.Start(ctx, embeddb.Options{Logger: logger})
		if err != nil {
			return fmt.Errorf("embedded database: %w", err)
		}
		defer db.Close()
		upstream = db.Addr()
		logger.Info("no upstream given: started an embedded in-memory database (its data is lost on exit)",
			"upstream", upstream, "version", db.Version(), "user", embeddb.DefaultUser, "database", embeddb.DefaultDatabase)
	}

	cert, created, err := certs.LoadOrCreate(filepath.Join(c.DataDir, "tls"), c.TLSCert, c.TLSKey, nil)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if created {
		logger.Info("made a self-signed certificate for client TLS; set tls_cert and tls_key to use your own", "dir", filepath.Join(c.DataDir, "tls"))
	}
	var upTLS *tls.Config
	if c.UpstreamTLS != "off" && c.Listen != "" {
		if upTLS, err = certs.Upstream(upstream, c.UpstreamTLSCA, c.UpstreamTLSServerName, c.UpstreamTLSSkipVerify); err != nil {
			return &exitError{code: 2, err: err}
		}
	}

	var hooks []string
	for _, u := range strings.Split(c.Webhooks, ",") {
		if u = strings.TrimSpace(u); u != "" {
			hooks = append(hooks, u)
		}
	}
	bus, err := events.New(events.Options{Webhooks: hooks, Logger: logger})
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("config: webhooks: %w", err)}
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		bus.Close(ctx)
	}()
	st, sink, sinkCloser, err := openStream(ctx, c, logger, func(id string, attrs map[string]string) { bus.Emit(id, c.StreamID, attrs) }, nil)
	if err != nil {
		return err
	}
	defer sinkCloser.Close()
	if _, err := st.Start(ctx, ""); err != nil {
		// Like DAS, the database stays reachable while the stream cannot
		// record (unless fail_closed); the probe starts it with auto_restart.
		logger.Error("the activity stream did not start", "err", err)
	}
	var ln net.Listener
	if c.Listen != "" {
		if ln, err = net.Listen("tcp", c.Listen); err != nil {
			st.Close(context.Background())
			return fmt.Errorf("listen: %w", err)
		}
	}
	if ln == nil && runtime.GOOS == "linux" {
		// Only audit logs: das is background work on the database's host
		// (internal/cpusched says why).
		if n, err := cpusched.Batch(); err != nil {
			logger.Warn("das keeps normal scheduling", "err", err)
		} else {
			logger.Info("no proxy: das runs batch-scheduled, so that its work does not preempt the database's threads", "threads", n)
		}
	}
	tailers, stopTailers, err := startTailers(ctx, c, st, sink, logger)
	if err != nil {
		st.Close(context.Background())
		return err
	}
	var adminSrv *http.Server
	if c.AdminListen != "" {
		token, err := admin.LoadOrCreateToken(c.DataDir, c.AdminTokenFile)
		if err != nil {
			st.Close(context.Background())
			return &exitError{code: 2, err: err}
		}
		keyID := c.KMSKeyID
		if c.KMS == "local" {
			keyID = st.Describe().KMSKeyID
		}
		h, err := admin.NewServer(admin.ServerOptions{Token: token, Controller: controller{st: st, kmsKeyID: keyID, tailers: tailers}, Events: bus, Logger: logger})
		if err != nil {
			st.Close(context.Background())
			return err
		}
		aln, err := net.Listen("tcp", c.AdminListen)
		if err != nil {
			st.Close(context.Background())
			return fmt.Errorf("admin listen: %w", err)
		}
		adminSrv = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		go adminSrv.Serve(aln)
		logger.Info("admin API", "listen", aln.Addr().String(), "token_file", adminTokenPath(c))
	}
	var p *proxy.Proxy
	served := make(chan error, 1)
	if ln != nil {
		mode := proxy.UpstreamTLSFollow
		switch c.UpstreamTLS {
		case "preferred":
			mode = proxy.UpstreamTLSPreferred
		case "required":
			mode = proxy.UpstreamTLSRequired
		}
		p = proxy.New(proxy.Options{
			Upstream:        upstream,
			TLS:             &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
			RequireTLS:      c.RequireTLS,
			UpstreamTLS:     upTLS,
			UpstreamTLSMode: mode,
			MaxPacket:       int(c.MaxPacket),
			MaxCommandText:  int(c.MaxCommandText),
			EventLoops:      c.EventLoops,
			EventLoopProcs:  true,
			Admit:           st.Admit,
			ServerHost:      c.ServerHost,
			Logger:          logger,
		}, st)
		logger.Info("das serve: relaying MySQL sessions", "listen", ln.Addr().String(), "upstream", upstream,
			"stream_id", c.StreamID, "mode", c.Mode, "data_dir", c.DataDir, "kms", c.KMS)
		go func() { served <- p.Serve(context.Background(), ln) }()
	}
	select {
	case <-ctx.Done():
		logger.Info("shutting down: no new sessions; open sessions may finish", "timeout", c.ShutdownTimeout)
	case err := <-served:
		if err != nil {
			logger.Error("proxy stopped", "err", err)
		}
	}
	stopTailers()
	if ln != nil {
		ln.Close()
	}
	if adminSrv != nil {
		actx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		adminSrv.Shutdown(actx)
		cancel()
	}
	if p != nil {
		sctx, cancel := context.WithTimeout(context.Background(), c.ShutdownTimeout)
		if err := p.Shutdown(sctx); err != nil {
			logger.Warn("sessions closed at the shutdown deadline", "err", err)
		}
		cancel()
	}
	// Every captured event is flushed before exit.
	fctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = st.Close(fctx)
	for _, tl := range tailers {
		// The acks of the flushed records have arrived: keep their position.
		if cerr := tl.SaveCheckpoint(); cerr != nil {
			logger.Error("audit log checkpoint", "err", cerr)
		}
		ts := tl.Stats()
		logger.Info("audit log tailer stopped", "lines", ts.Lines, "events", ts.Events, "unparsed", ts.Unparsed,
			"lost_files", ts.LostFiles, "lost_bytes", ts.LostBytes, "lag_bytes", ts.LagBytes)
	}
	d := st.Describe()
	logger.Info("das serve stopped", "events", d.Counters["events_durable"], "dropped", d.Counters["events_dropped"],
		"records", d.Counters["records"], "last_seq", d.Counters["last_seq"])
	return err
}

// adminTokenPath says where the admin token is, for the log (never the token).
func adminTokenPath(c config.Config) string {
	if c.AdminTokenFile != "" {
		return c.AdminTokenFile
	}
	if os.Getenv("DAS_ADMIN_TOKEN") != "" {
		return "$DAS_ADMIN_TOKEN"
	}
	return filepath.Join(c.DataDir, "admin.token")
}
