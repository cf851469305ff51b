package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/das-mysql/das/internal/preflight"
)

// runPreflight checks a configured stream's prerequisites (KMS, sink,
// upstream), or with "aws" first, an Aurora cluster's path to KMS.
func runPreflight(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "aws" {
		return runPreflightAWS(ctx, args[1:], stdout, stderr)
	}
	fs, cf := flagSet("preflight", stderr)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	timeout := fs.Duration("timeout", preflight.DefaultTimeout, "time limit of each check")
	dbDSN := fs.String("db-dsn", "", "with audit_log: the account to check server_audit with, USER:PASSWORD@tcp(HOST:PORT)/ (default: upstream with $"+preflight.EnvDBUser+" and $"+preflight.EnvDBPassword+")")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: das preflight [flags]          check a configured stream (KMS, sink, upstream)")
		fmt.Fprintln(stderr, "       das preflight aws --db-cluster-identifier ID --region R [--create-kms-endpoint [--dry-run]]")
		fs.PrintDefaults()
	}
	c, err := parse(fs, cf, args)
	if err != nil {
		return err
	}
	// Read the stream id without creating one: a preflight leaves nothing behind.
	if err := c.ResolveStreamID(false); err != nil {
		c.StreamID = ""
	}
	r := preflight.Local(ctx, c, preflight.Options{Timeout: *timeout, DBDSN: *dbDSN})
	return report(r, *asJSON, stdout)
}

func runPreflightAWS(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("das preflight aws", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o preflight.AWSOptions
	fs.StringVar(&o.ClusterID, "db-cluster-identifier", "", "the Aurora cluster (required)")
	fs.StringVar(&o.Region, "region", "", "the cluster's region (required)")
	fs.StringVar(&o.Endpoint, "endpoint-url", "", "RDS and EC2 API endpoint override (for tests)")
	fs.BoolVar(&o.CreateKMSEndpoint, "create-kms-endpoint", false, "create the KMS interface endpoint (private DNS) in the cluster's VPC and subnets when it has none")
	fs.BoolVar(&o.DryRun, "dry-run", false, "with --create-kms-endpoint: show the requests and ask EC2 (DryRun) whether they would be allowed")
	sgs := fs.String("security-group-ids", "", "with --create-kms-endpoint: comma-separated groups for the endpoint (default: create one admitting TCP 443 from the cluster's groups)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	timeout := fs.Duration("timeout", preflight.DefaultTimeout, "time limit of each API call")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return &exitError{code: 0}
		}
		return &exitError{code: 2}
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, err: fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if o.ClusterID == "" || o.Region == "" {
		return &exitError{code: 2, err: errors.New("--db-cluster-identifier and --region are required")}
	}
	if o.DryRun && !o.CreateKMSEndpoint {
		return &exitError{code: 2, err: errors.New("--dry-run goes with --create-kms-endpoint")}
	}
	for _, g := range strings.Split(*sgs, ",") {
		if g = strings.TrimSpace(g); g != "" {
			o.SecurityGroupIDs = append(o.SecurityGroupIDs, g)
		}
	}
	o.Timeout = *timeout
	return report(preflight.AWS(ctx, o), *asJSON, stdout)
}

// report prints r; the exit status is 1 when a check failed.
func report(r *preflight.Report, asJSON bool, stdout io.Writer) error {
	var err error
	if asJSON {
		err = r.WriteJSON(stdout)
	} else {
		err = r.WriteText(stdout)
	}
	if err != nil {
		return err
	}
	if !r.OK() {
		return &exitError{code: 1}
	}
	return nil
}
