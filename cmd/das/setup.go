package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/das-mysql/das/internal/config"
	"github.com/das-mysql/das/internal/esdk"
	"github.com/das-mysql/das/internal/kms"
)

// flagSet returns a command's flag set with the shared settings registered.
func flagSet(name string, stderr io.Writer) (*flag.FlagSet, *config.Flags) {
	fs := flag.NewFlagSet("das "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs, config.Register(fs)
}

// parse parses args and loads the configuration; -h gives status 0.
func parse(fs *flag.FlagSet, cf *config.Flags, args []string) (config.Config, error) {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return config.Config{}, &exitError{code: 0}
		}
		return config.Config{}, &exitError{code: 2}
	}
	if fs.NArg() > 0 {
		return config.Config{}, &exitError{code: 2, err: fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	c, err := cf.Load()
	if err != nil {
		return c, &exitError{code: 2, err: err}
	}
	return c, nil
}

func newLogger(c config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.LogLevel))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl}))
}

// openKMS opens the configured provider. The local key is created only by
// commands that write (create), so that a consumer pointed at the wrong
// directory fails instead of minting a useless key.
func openKMS(ctx context.Context, c config.Config, create bool) (kms.Provider, error) {
	switch c.KMS {
	case "aws":
		return kms.OpenAWS(ctx, kms.AWSOptions{Region: c.KMSRegion, KeyID: c.KMSKeyID, Endpoint: c.KMSEndpoint})
	default:
		path := c.LocalKeyFile()
		if !create {
			if _, err := os.Stat(path); err != nil {
				return nil, fmt.Errorf("local KMS key %s: %w (set --data-dir to the stream's data dir, or use --kms aws)", path, err)
			}
		}
		return kms.OpenLocal(path)
	}
}

func suiteOf(c config.Config) esdk.Suite {
	switch c.Suite {
	case "committing":
		return esdk.SuiteAES256GCMHKDFSHA512CommitKeyECDSAP384
	case "unsigned":
		return esdk.SuiteAES256GCMHKDFSHA512CommitKey
	}
	return esdk.SuiteAES256GCMIV12Tag16HKDFSHA384ECDSAP384
}

// resolveFrom turns --from into a log directory and, when the data dir was
// not given, points the data dir at the one --from lives in, so that
// `das consume --from ./das-data` finds the local key and stream id there.
func resolveFrom(c *config.Config, cf *config.Flags, from string) (logDir string) {
	if from == "" {
		return c.LogDir()
	}
	if st, err := os.Stat(filepath.Join(from, "stream")); err == nil && st.IsDir() {
		if !cf.Set("data_dir") {
			c.DataDir = from
		}
		return filepath.Join(from, "stream")
	}
	if !cf.Set("data_dir") {
		if _, err := os.Stat(filepath.Join(filepath.Dir(from), "kms")); err == nil {
			c.DataDir = filepath.Dir(from)
		}
	}
	return from
}
