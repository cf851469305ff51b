// Command das captures MySQL-family database activity and streams it, sealed
// in the Database Activity Streams record format.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

// exitError carries a process exit status through the command functions.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

type command struct {
	name  string
	short string
	run   func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "relay MySQL sessions to the database and stream their activity, sealed", runServe},
		{"ingest", "seal activity events (JSON lines on stdin) into the local stream", runIngest},
		{"consume", "decrypt a stream and print its activity events as JSON lines", runConsume},
		{"verify", "prove that a stream has nothing missing, duplicated, reordered or altered", runVerify},
		{"start-activity-stream", "start the activity stream of a running das serve (admin API)", runStartActivityStream},
		{"stop-activity-stream", "stop the activity stream of a running das serve (admin API)", runStopActivityStream},
		{"describe-activity-streams", "show the activity stream's status, mode, KMS key, sink and counters", runDescribeActivityStreams},
		{"preflight", "check the network prerequisites of a stream before it starts", runPreflight},
		{"version", "print the version", func(_ context.Context, _ []string, _ io.Reader, out, _ io.Writer) error {
			fmt.Fprintln(out, "das", version)
			return nil
		}},
	}
}

var version = "dev" // set with -ldflags "-X main.version=..."

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// DAS_CPUPROFILE=file writes a CPU profile of the whole run, for the
	// benchmark scripts.
	if path := os.Getenv("DAS_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				defer pprof.StopCPUProfile()
			}
		}
	}
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	pprof.StopCPUProfile()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdin, stdout, stderr)
		if err == nil {
			return 0
		}
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.err != nil {
				fmt.Fprintf(stderr, "das %s: %v\n", c.name, ee.err)
			}
			return ee.code
		}
		fmt.Fprintf(stderr, "das %s: %v\n", c.name, err)
		return 1
	}
	fmt.Fprintf(stderr, "das: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: das COMMAND [flags]\n\ncommands:")
	width := 0
	for _, c := range commands() {
		width = max(width, len(c.name))
	}
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.name, c.short)
	}
	fmt.Fprintln(w, "\nRun 'das COMMAND -h' for a command's flags.")
}
