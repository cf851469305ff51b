package embeddb

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sirupsen/logrus"
)

// go-mysql-server logs through logrus's process-wide standard logger, with
// no way to give it one of our own. Left alone it prints a line per
// connection to stderr, and at debug level every query's text, which may
// hold passwords. So, once per process, the standard logger is silenced and
// its warnings and errors go to the Logger of the most recently started DB.
// This is the package's only global state, forced by the dependency.
var (
	routeOnce sync.Once
	engineLog atomic.Pointer[slog.Logger]
)

func routeEngineLogs(l *slog.Logger) {
	engineLog.Store(l)
	routeOnce.Do(func() {
		std := logrus.StandardLogger()
		std.SetOutput(io.Discard)
		std.SetLevel(logrus.WarnLevel)
		std.AddHook(slogHook{})
	})
}

type slogHook struct{}

func (slogHook) Levels() []logrus.Level {
	return []logrus.Level{logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel, logrus.WarnLevel}
}

func (slogHook) Fire(e *logrus.Entry) error {
	l := engineLog.Load()
	if l == nil {
		return nil
	}
	level := slog.LevelWarn
	if e.Level <= logrus.ErrorLevel {
		level = slog.LevelError
	}
	msg := e.Message
	attrs := make([]slog.Attr, 0, len(e.Data)+1)
	attrs = append(attrs, slog.String("component", "embeddb"))
	for k, v := range e.Data {
		// Query text can carry credentials (SET PASSWORD, CREATE USER), and
		// so can the parser's error detail that quotes it: keep only the
		// message's lead ("unable to prepare query"). Statements belong in
		// the proxy's audit stream, redacted.
		if k == "query" {
			if i := strings.Index(msg, ": "); i >= 0 {
				msg = msg[:i]
			}
			continue
		}
		attrs = append(attrs, slog.Any(k, v))
	}
	l.LogAttrs(context.Background(), level, msg, attrs...)
	return nil
}
