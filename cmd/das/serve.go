package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"time"

	"github.com/das-mysql/das/internal/certs"
	"github.com/das-mysql/das/internal/embeddb"
	"github.com/das-mysql/das/internal/pipeline"
	"github.com/das-mysql/das/internal/proxy"
)

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

	upstream := c.Upstream
	if upstream == "" {
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
	if c.UpstreamTLS != "off" {
		if upTLS, err = certs.Upstream(upstream, c.UpstreamTLSCA, c.UpstreamTLSServerName, c.UpstreamTLSSkipVerify); err != nil {
			return &exitError{code: 2, err: err}
		}
	}

	s, err := openStream(ctx, c, pipeline.Options{Logger: logger})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		s.Close(context.Background())
		return fmt.Errorf("listen: %w", err)
	}
	mode := proxy.UpstreamTLSFollow
	switch c.UpstreamTLS {
	case "preferred":
		mode = proxy.UpstreamTLSPreferred
	case "required":
		mode = proxy.UpstreamTLSRequired
	}
	p := proxy.New(proxy.Options{
		Upstream:        upstream,
		TLS:             &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		RequireTLS:      c.RequireTLS,
		UpstreamTLS:     upTLS,
		UpstreamTLSMode: mode,
		MaxPacket:       int(c.MaxPacket),
		MaxCommandText:  int(c.MaxCommandText),
		ServerHost:      c.ServerHost,
		Logger:          logger,
	}, s.writer)
	logger.Info("das serve: relaying MySQL sessions", "listen", ln.Addr().String(), "upstream", upstream,
		"stream_id", s.cfg.StreamID, "data_dir", c.DataDir, "kms", c.KMS)

	served := make(chan error, 1)
	go func() { served <- p.Serve(context.Background(), ln) }()
	select {
	case <-ctx.Done():
		logger.Info("shutting down: no new sessions; open sessions may finish", "timeout", c.ShutdownTimeout)
	case err := <-served:
		if err != nil {
			logger.Error("proxy stopped", "err", err)
		}
	}
	ln.Close()
	sctx, cancel := context.WithTimeout(context.Background(), c.ShutdownTimeout)
	if err := p.Shutdown(sctx); err != nil {
		logger.Warn("sessions closed at the shutdown deadline", "err", err)
	}
	cancel()
	// Every captured event is flushed before exit.
	fctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = s.Close(fctx)
	st := s.writer.Stats()
	logger.Info("das serve stopped", "events", st.EventsDurable, "dropped", st.EventsDropped, "records", st.Records, "last_seq", st.LastSeq)
	return err
}
