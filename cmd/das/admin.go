package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/das-mysql/das/internal/admin"
	"github.com/das-mysql/das/internal/config"
)

// The activity-stream verbs call das serve's admin API. They find it the
// way serve does: the address from --admin (default: the admin_listen
// setting, 127.0.0.1:9307), the token from --admin-token-file, else
// $DAS_ADMIN_TOKEN, else <data-dir>/admin.token.

type adminCLI struct {
	fs     *flag.FlagSet
	cf     *config.Flags
	addr   *string
	asJSON *bool
	// tokenFrom says where the token came from, for a 401's message.
	tokenFrom string
}

func newAdminCLI(name string, stderr io.Writer) *adminCLI {
	fs, cf := flagSet(name, stderr)
	a := &adminCLI{fs: fs, cf: cf}
	a.addr = fs.String("admin", "", "address of das serve's admin API, HOST:PORT or URL (default: --admin-listen, "+admin.DefaultListen+")")
	a.asJSON = fs.Bool("json", false, "print the API's JSON answer")
	return a
}

// client parses args and returns a client of the admin API.
func (a *adminCLI) client(args []string) (*admin.Client, config.Config, error) {
	c, err := parse(a.fs, a.cf, args)
	if err != nil {
		return nil, c, err
	}
	addr := *a.addr
	if addr == "" {
		addr = c.AdminListen
	}
	if addr == "" {
		addr = admin.DefaultListen
	}
	tok, err := admin.LoadToken(c.DataDir, c.AdminTokenFile)
	if err != nil {
		return nil, c, err
	}
	switch _, env := os.LookupEnv(admin.TokenEnv); {
	case c.AdminTokenFile != "":
		a.tokenFrom = c.AdminTokenFile
	case env:
		a.tokenFrom = "$" + admin.TokenEnv
	default:
		a.tokenFrom = filepath.Join(c.DataDir, admin.TokenFileName)
	}
	return admin.NewClient(addr, tok, nil), c, nil
}

func runStartActivityStream(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	a := newAdminCLI("start-activity-stream", stderr)
	apply := a.fs.Bool("apply-immediately", false, "apply now (das always does; accepted for the RDS verb's sake)")
	cl, _, err := a.client(args)
	if err != nil {
		return err
	}
	// Only what was given on the command line goes into the request: the
	// rest is das serve's own configuration.
	var req admin.StartRequest
	if a.cf.Set("mode") {
		req.Mode = a.fs.Lookup("mode").Value.String()
	}
	if a.cf.Set("kms_key_id") {
		req.KmsKeyId = a.fs.Lookup(config.FlagName("kms_key_id")).Value.String()
	}
	req.ApplyImmediately = *apply
	st, err := cl.StartActivityStream(ctx, req)
	if err != nil {
		return a.apiErr(err)
	}
	return a.printStatus(stdout, st)
}

func runStopActivityStream(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	a := newAdminCLI("stop-activity-stream", stderr)
	apply := a.fs.Bool("apply-immediately", false, "apply now (das always does; accepted for the RDS verb's sake)")
	cl, _, err := a.client(args)
	if err != nil {
		return err
	}
	st, err := cl.StopActivityStream(ctx, admin.StopRequest{ApplyImmediately: *apply})
	if err != nil {
		return a.apiErr(err)
	}
	return a.printStatus(stdout, st)
}

func runDescribeActivityStreams(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	a := newAdminCLI("describe-activity-streams", stderr)
	cl, _, err := a.client(args)
	if err != nil {
		return err
	}
	list, err := cl.DescribeActivityStreams(ctx)
	if err != nil {
		return a.apiErr(err)
	}
	if *a.asJSON {
		return printJSON(stdout, admin.DescribeResponse{ActivityStreams: list})
	}
	if len(list) == 0 {
		fmt.Fprintln(stdout, "no activity streams")
		return nil
	}
	for i, st := range list {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		writeStatus(stdout, st)
	}
	return nil
}

func (a *adminCLI) printStatus(w io.Writer, st admin.StreamStatus) error {
	if *a.asJSON {
		return printJSON(w, st)
	}
	if st.Note != "" {
		fmt.Fprintln(w, st.Note)
	}
	writeStatus(w, st)
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "    ")
	return enc.Encode(v)
}

// writeStatus prints one stream as a block, the way the AWS CLI lays out a
// described resource: a header line, then one field per line.
func writeStatus(w io.Writer, st admin.StreamStatus) {
	fmt.Fprintf(w, "ACTIVITYSTREAM  %s\n", st.StreamId)
	field := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "    %-20s%s\n", k, v)
		}
	}
	field("Status", st.Status)
	field("Reason", st.Reason)
	field("Mode", st.Mode)
	field("KmsKeyId", st.KmsKeyId)
	field("Sink", st.Sink)
	if st.StartedAt != nil {
		field("StartedAt", st.StartedAt.UTC().Format(time.RFC3339))
	}
	field("Policy", st.Policy)
	field("AutoRestart", fmt.Sprint(st.AutoRestart))
	field("LastError", st.LastError)
	if len(st.Counters) > 0 {
		fmt.Fprintln(w, "    COUNTERS")
		keys := make([]string, 0, len(st.Counters))
		for k := range st.Counters {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "        %-24s%d\n", k, st.Counters[k])
		}
	}
}

// apiErr adds the likely fix to an API error.
func (a *adminCLI) apiErr(err error) error {
	var ae *admin.APIError
	if !errors.As(err, &ae) {
		return err
	}
	switch ae.Status {
	case 401:
		return fmt.Errorf("the admin API refused the token from %s (401): give the one das serve uses (--admin-token-file, $%s, or the same --data-dir)", a.tokenFrom, admin.TokenEnv)
	case 409:
		return fmt.Errorf("%s (409 %s)", strings.TrimSpace(ae.Message), ae.Code)
	}
	return fmt.Errorf("admin API: %w (HTTP %d)", ae, ae.Status)
}
