// Package preflight checks the prerequisites of an activity stream before it
// starts: the KMS endpoint (name, route, TLS, key and permissions), the sink
// and the upstream database, and, for an Aurora cluster, the network path
// from its instances to KMS. Every check has a timeout, so a preflight never
// hangs, and no check prints key material or credentials.
package preflight

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Check statuses.
const (
	Pass = "pass"
	Fail = "fail"
	Warn = "warn" // works, but worth a look; does not fail the preflight
)

// DefaultTimeout bounds each check.
const DefaultTimeout = 5 * time.Second

// Check is the outcome of one check.
type Check struct {
	Name     string        `json:"name"`
	Status   string        `json:"status"`
	Measured string        `json:"measured"`
	Fix      string        `json:"fix,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// Report is every check of one preflight, in the order they ran.
type Report struct {
	Checks []Check `json:"checks"`
}

// OK reports whether no check failed (warnings allowed).
func (r *Report) OK() bool {
	for _, c := range r.Checks {
		if c.Status == Fail {
			return false
		}
	}
	return true
}

// Failed returns the failed checks.
func (r *Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.Status == Fail {
			out = append(out, c)
		}
	}
	return out
}

// Find returns the first check named name.
func (r *Report) Find(name string) (Check, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

func (r *Report) add(c Check) { r.Checks = append(r.Checks, c) }

// WriteText prints one line per check ("PASS kms.dns  host -> addr") and an
// indented fix under each check that has one.
func (r *Report) WriteText(w io.Writer) error {
	width := 0
	for _, c := range r.Checks {
		width = max(width, len(c.Name))
	}
	var b strings.Builder
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "%-4s %-*s  %s\n", strings.ToUpper(c.Status), width, c.Name, c.Measured)
		if c.Fix != "" {
			fmt.Fprintf(&b, "     fix: %s\n", c.Fix)
		}
	}
	if r.OK() {
		fmt.Fprintf(&b, "preflight: %d checks, none failed\n", len(r.Checks))
	} else {
		fmt.Fprintf(&b, "preflight: %d of %d checks failed\n", len(r.Failed()), len(r.Checks))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON prints the report as one indented JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	out := struct {
		OK     bool    `json:"ok"`
		Checks []Check `json:"checks"`
	}{r.OK(), r.Checks}
	if out.Checks == nil {
		out.Checks = []Check{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// timed runs f under its own timeout and records how long it took.
func timed(ctx context.Context, timeout time.Duration, name string, f func(ctx context.Context) Check) Check {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	c := f(ctx)
	c.Name = name
	c.Duration = time.Since(start)
	return c
}

// addrClass says where an address leads: loopback, private (RFC 1918, ULA,
// link-local, CGNAT) or public.
func addrClass(ip net.IP) string {
	switch {
	case ip.IsLoopback():
		return "loopback"
	case ip.IsPrivate(), ip.IsLinkLocalUnicast():
		return "private"
	case ip.To4() != nil && ip.To4()[0] == 100 && ip.To4()[1]&0xc0 == 64: // 100.64.0.0/10
		return "private"
	}
	return "public"
}

func ms(d time.Duration) string {
	if d < time.Millisecond {
		return d.Round(time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}
