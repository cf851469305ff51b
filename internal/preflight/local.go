package preflight

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go/logging"

	"github.com/das-mysql/das/internal/config"
	"github.com/das-mysql/das/internal/kms"
	"github.com/das-mysql/das/internal/mysql"
)

// Options tune the local checks. The zero value uses the system's resolver,
// environment and CA roots, with DefaultTimeout per check.
type Options struct {
	// Timeout bounds each check (0: DefaultTimeout).
	Timeout time.Duration
	// Resolver resolves names for the checks and for the KMS call itself, so
	// both see the same answers (nil: net.DefaultResolver).
	Resolver *net.Resolver
	// Getenv reads HTTPS_PROXY, NO_PROXY and friends (nil: os.Getenv).
	Getenv func(string) string
	// RootCAs verify the KMS endpoint's certificate (nil: system roots).
	RootCAs *x509.CertPool
	// DBDSN is the account for the audit-log checks, a go-sql-driver DSN
	// (empty: the upstream with EnvDBUser and EnvDBPassword).
	DBDSN string

	// freeSpace replaces statfs in tests.
	freeSpace func(dir string) (uint64, error)
}

func (o *Options) defaults() {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.freeSpace == nil {
		o.freeSpace = statfsFree
	}
}

// LowSpace is the free space under which the sink check warns.
const LowSpace = 1 << 30

// Local checks what the stream configured by c needs: its KMS, its sink, its
// upstream database and, with audit logs, the files and server_audit. c.StreamID should be resolved; when empty a
// placeholder id is used for the encryption context.
func Local(ctx context.Context, c config.Config, o Options) *Report {
	o.defaults()
	r := &Report{}
	streamID := c.StreamID
	if streamID == "" {
		streamID = "cluster-PREFLIGHT"
	}
	encCtx := map[string]string{"aws:rds:dbc-id": streamID}
	switch c.KMS {
	case "aws":
		checkAWSKMS(ctx, r, c, o, encCtx)
	default:
		r.add(timed(ctx, o.Timeout, "kms.local-key", func(ctx context.Context) Check {
			return checkLocalKey(ctx, c.LocalKeyFile(), encCtx)
		}))
	}
	switch {
	case strings.HasPrefix(c.Sink, "kafka://"):
		checkKafka(ctx, r, c, o)
	case strings.HasPrefix(c.Sink, "kinesis://"):
		checkKinesis(ctx, r, c, o)
	default:
		checkSink(ctx, r, c, o)
	}
	checkUpstream(ctx, r, c, o)
	if len(c.AuditLogs) > 0 {
		checkAuditLogs(ctx, r, c, o)
	}
	return r
}

// ---- KMS (aws) ----

// loadAWSConfig loads the SDK's configuration the way das's clients do (region,
// the default chain), with one attempt per call, the SDK's own warnings off
// (they would interleave with the report) and dials through o.Resolver.
func loadAWSConfig(ctx context.Context, region string, o Options) (aws.Config, error) {
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRetryMaxAttempts(1),
		awsconfig.WithLogger(logging.Nop{}),
		awsconfig.WithHTTPClient(awshttp.NewBuildableClient().
			WithDialerOptions(func(d *net.Dialer) { d.Resolver = o.Resolver }).
			WithTransportOptions(func(t *http.Transport) {
				if o.RootCAs != nil {
					t.TLSClientConfig = &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12}
				}
			})),
	}
	if region != "" {
		opts = append(opts, awsconfig.WithRegion(region))
	}
	return awsconfig.LoadDefaultConfig(ctx, opts...)
}

// kmsClient builds the KMS client the way the stream does (region, endpoint
// override, the SDK's default chain), with one attempt per call and dials
// through o.Resolver.
func kmsClient(ctx context.Context, c config.Config, o Options) (*awskms.Client, error) {
	cfg, err := loadAWSConfig(ctx, c.KMSRegion, o)
	if err != nil {
		return nil, fmt.Errorf("load AWS config: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = regionFromARN(c.KMSKeyID)
	}
	if cfg.Region == "" {
		return nil, errors.New("no region: set kms_region, AWS_REGION, or use a key ARN")
	}
	return awskms.NewFromConfig(cfg, func(co *awskms.Options) {
		if c.KMSEndpoint != "" {
			co.BaseEndpoint = aws.String(c.KMSEndpoint)
		}
	}), nil
}

func regionFromARN(s string) string {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) == 6 && parts[0] == "arn" && parts[2] == "kms" {
		return parts[3]
	}
	return ""
}

// kmsEndpoint returns the URL the client will call and where it came from,
// using the SDK's own endpoint rules (regional, FIPS, dual-stack, override).
func kmsEndpoint(ctx context.Context, client *awskms.Client, configured string) (u *url.URL, source string, err error) {
	opt := client.Options()
	fips := opt.EndpointOptions.UseFIPSEndpoint == aws.FIPSEndpointStateEnabled
	dual := opt.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateEnabled
	ep, err := opt.EndpointResolverV2.ResolveEndpoint(ctx, awskms.EndpointParameters{
		Region: aws.String(opt.Region), UseFIPS: aws.Bool(fips), UseDualStack: aws.Bool(dual),
		Endpoint: opt.BaseEndpoint,
	})
	if err != nil {
		return nil, "", err
	}
	u = &ep.URI
	switch {
	case configured != "" && strings.Contains(u.Host, ".vpce.amazonaws.com"):
		source = "VPC endpoint, from kms_endpoint"
	case configured != "":
		source = "custom, from kms_endpoint"
	case opt.BaseEndpoint != nil:
		source = "custom, from AWS_ENDPOINT_URL(_KMS) or the shared config"
	case fips:
		source = "regional FIPS endpoint of " + opt.Region
	default:
		source = "regional endpoint of " + opt.Region
	}
	if dual {
		source += ", dual-stack"
	}
	return u, source, nil
}

func checkAWSKMS(ctx context.Context, r *Report, c config.Config, o Options, encCtx map[string]string) {
	var (
		client *awskms.Client
		u      *url.URL
	)
	r.add(timed(ctx, o.Timeout, "kms.endpoint", func(ctx context.Context) Check {
		var err error
		client, err = kmsClient(ctx, c, o)
		if err != nil {
			return Check{Status: Fail, Measured: err.Error(),
				Fix: "set the KMS region (--kms-region or kms_region:), AWS_REGION, or give kms_key_id as a key ARN"}
		}
		var source string
		u, source, err = kmsEndpoint(ctx, client, c.KMSEndpoint)
		if err != nil {
			return Check{Status: Fail, Measured: "resolve the endpoint: " + err.Error(),
				Fix: "set kms_endpoint to the KMS URL (https://kms.REGION.amazonaws.com or a VPC endpoint's URL)"}
		}
		return Check{Status: Pass, Measured: fmt.Sprintf("%s (%s)", u.Redacted(), source)}
	}))
	if u == nil {
		return
	}
	host, port := urlHostPort(u)
	r.add(timed(ctx, o.Timeout, "kms.proxy", func(context.Context) Check { return checkProxy(u, o.Getenv) }))
	ips, ok := addDNS(ctx, r, "kms.dns", host, o, kmsDNSFix(host))
	if ok {
		ok = addConnect(ctx, r, "kms.connect", ips, port, o, kmsConnectFix)
	}
	if ok && u.Scheme == "https" {
		addTLS(ctx, r, "kms.tls", ips, port, host, o)
	}
	r.add(timed(ctx, o.Timeout, "kms.generate-data-key", func(ctx context.Context) Check {
		return generateDataKey(ctx, client, c.KMSKeyID, encCtx)
	}))
}

func generateDataKey(ctx context.Context, client *awskms.Client, keyID string, encCtx map[string]string) Check {
	start := time.Now()
	out, err := client.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{
		KeyId: aws.String(keyID), KeySpec: kmstypes.DataKeySpecAes256, EncryptionContext: encCtx,
	})
	took := time.Since(start)
	if err != nil {
		class := kms.ClassifyError(err)
		// Not KMS's answer: no credentials could be had here.
		if strings.Contains(err.Error(), "get credentials") || strings.Contains(err.Error(), "get identity") {
			class = "credentials"
		} else if class == kms.ClassOther && ctx.Err() != nil {
			class = "timeout"
		}
		return Check{Status: Fail,
			Measured: fmt.Sprintf("%s failed after %s (%s): %v", keyID, ms(took), class, err),
			Fix:      kmsFix(class, keyID, encCtx, err)}
	}
	for i := range out.Plaintext { // the key is not used; do not keep it
		out.Plaintext[i] = 0
	}
	return Check{Status: Pass, Measured: fmt.Sprintf("key %s made a data key under %s in %s",
		aws.ToString(out.KeyId), formatContext(encCtx), ms(took))}
}

func formatContext(m map[string]string) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%q: %q", k, v))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// kmsFix is the fix for a failed GenerateDataKey, by failure class.
func kmsFix(class, keyID string, encCtx map[string]string, err error) string {
	id := encCtx["aws:rds:dbc-id"]
	switch class {
	case kms.ClassDNS:
		return "the KMS host name does not resolve from here: check the resolver; with a KMS VPC endpoint, enable its private DNS (and the VPC's enableDnsSupport and enableDnsHostnames), or set kms_endpoint to the endpoint's own DNS name"
	case kms.ClassConnect:
		return "no TCP connection to KMS: allow outbound TCP 443 (security group egress, network ACL), give the subnet a route (NAT gateway or internet gateway), or create a KMS VPC endpoint whose security group admits TCP 443 from this host"
	case kms.ClassTLS:
		return "the TLS handshake with KMS failed: if a proxy or middlebox re-signs TLS, add its CA to the system trust store (or SSL_CERT_FILE); otherwise check that kms_endpoint names the KMS host the certificate is for"
	case kms.ClassAccessDenied:
		return fmt.Sprintf("the credentials in use may not call kms:GenerateDataKey on %s: allow it in the key policy and the IAM policy, with the condition "+
			"\"StringEquals\": {\"kms:EncryptionContext:aws:rds:dbc-id\": %q} if you scope it; check the credentials (AWS_PROFILE, role) are the intended ones", keyID, id)
	case kms.ClassKeyDisabled:
		return fmt.Sprintf("the key is disabled or pending deletion: aws kms enable-key --key-id %s (or cancel-key-deletion first)", keyID)
	case kms.ClassKeyNotFound:
		return fmt.Sprintf("no key %s in this account and region: check kms_key_id (alias/NAME, key id or ARN) and kms_region; an alias must exist in the key's region", keyID)
	case kms.ClassThrottled:
		return "KMS throttled the request: retry later, or raise the account's KMS request quota"
	case kms.ClassHTTPStatus:
		return "the endpoint answered, but not as KMS: check that kms_endpoint is a KMS endpoint (and no proxy rewrites the request)"
	case "credentials":
		return "no AWS credentials could be loaded: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run with an instance/task role"
	case "timeout":
		return "KMS did not answer in time: check the route to the endpoint (NAT, VPC endpoint, proxy) and retry"
	}
	if strings.Contains(err.Error(), "credentials") {
		return "no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run with an instance/task role"
	}
	return "see the error above"
}

func kmsDNSFix(host string) string {
	if strings.HasSuffix(host, ".amazonaws.com") {
		return fmt.Sprintf("%s does not resolve: check this host's resolver (/etc/resolv.conf); in a VPC the VPC needs enableDnsSupport; "+
			"a KMS VPC endpoint answers for this name only with private DNS enabled", host)
	}
	return fmt.Sprintf("%s does not resolve: check the host name in kms_endpoint and this host's resolver", host)
}

func kmsConnectFix(addr string, ip net.IP, err error) string {
	switch {
	case ip.IsLoopback() && isRefused(err):
		return fmt.Sprintf("nothing accepts connections at %s: start the KMS server, or fix the port in kms_endpoint", addr)
	case isRefused(err):
		return fmt.Sprintf("%s refused the connection: check kms_endpoint's port", addr)
	case addrClass(ip) == "private":
		return fmt.Sprintf("no TCP connection to %s (a VPC endpoint's address): its security group must admit TCP 443 from this host, "+
			"and the subnets' network ACLs must allow 443 out and ephemeral ports back", addr)
	}
	return fmt.Sprintf("no TCP connection to %s (a public address): allow outbound TCP 443 in the security group and network ACL, "+
		"and give this subnet a route 0.0.0.0/0 to a NAT gateway (private) or internet gateway (public); or create a KMS VPC endpoint with private DNS (recommended)", addr)
}

// checkProxy reports whether an HTTP(S) proxy applies to u, as the SDK's
// transport (http.ProxyFromEnvironment) would decide.
func checkProxy(u *url.URL, getenv func(string) string) Check {
	get := func(names ...string) (string, string) {
		for _, n := range names {
			if v := getenv(n); v != "" {
				return n, v
			}
		}
		return "", ""
	}
	var name, proxy string
	if u.Scheme == "https" {
		name, proxy = get("HTTPS_PROXY", "https_proxy")
	} else {
		name, proxy = get("HTTP_PROXY", "http_proxy")
	}
	if proxy == "" {
		return Check{Status: Pass, Measured: "no " + strings.ToUpper(u.Scheme) + "_PROXY in the environment: KMS is dialled directly"}
	}
	shown := proxy
	if pu, err := url.Parse(proxy); err == nil && pu.Host != "" {
		shown = pu.Redacted() // never print a proxy password
	} else {
		shown = "(unparsed value)"
	}
	noName, noProxy := get("NO_PROXY", "no_proxy")
	if noProxy != "" && noProxyMatch(noProxy, u.Hostname()) {
		return Check{Status: Pass, Measured: fmt.Sprintf("%s=%s is set, but %s=%q excludes %s: KMS is dialled directly",
			name, shown, noName, noProxy, u.Hostname())}
	}
	if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsLoopback() {
		return Check{Status: Pass, Measured: fmt.Sprintf("%s=%s is set, but Go never proxies loopback: KMS is dialled directly", name, shown)}
	}
	return Check{Status: Warn,
		Measured: fmt.Sprintf("%s=%s applies to %s: KMS calls go through the proxy (the dns/connect/tls checks below measure the direct path)", name, shown, u.Hostname()),
		Fix:      fmt.Sprintf("make sure the proxy allows CONNECT to %s:443, or add it to NO_PROXY to go direct (e.g. through a VPC endpoint)", u.Hostname())}
}

// noProxyMatch follows Go's NO_PROXY rules: "*", host names (a leading dot
// or none both match subdomains), IPs and CIDRs, each optionally with a port.
func noProxyMatch(list, host string) bool {
	host = strings.ToLower(host)
	ip := net.ParseIP(host)
	for _, e := range strings.Split(list, ",") {
		e = strings.ToLower(strings.TrimSpace(e))
		if e == "" {
			continue
		}
		if e == "*" {
			return true
		}
		if _, n, err := net.ParseCIDR(e); err == nil {
			if ip != nil && n.Contains(ip) {
				return true
			}
			continue
		}
		if h, _, err := net.SplitHostPort(e); err == nil {
			e = h
		}
		if eip := net.ParseIP(e); eip != nil {
			if ip != nil && eip.Equal(ip) {
				return true
			}
			continue
		}
		e = strings.TrimPrefix(strings.TrimPrefix(e, "*"), ".")
		if host == e || strings.HasSuffix(host, "."+e) {
			return true
		}
	}
	return false
}

// ---- network steps shared by KMS and upstream ----

// addDNS resolves host; an IP literal passes without a lookup.
func addDNS(ctx context.Context, r *Report, name, host string, o Options, fix string) ([]net.IP, bool) {
	var ips []net.IP
	c := timed(ctx, o.Timeout, name, func(ctx context.Context) Check {
		if ip := net.ParseIP(host); ip != nil {
			ips = []net.IP{ip}
			return Check{Status: Pass, Measured: fmt.Sprintf("%s is an address, no lookup (%s)", host, addrClass(ip))}
		}
		addrs, err := o.Resolver.LookupIPAddr(ctx, host)
		if err != nil {
			what := err.Error()
			var de *net.DNSError
			if errors.As(err, &de) {
				switch {
				case de.IsNotFound:
					what = "no such host (NXDOMAIN)"
				case de.IsTimeout:
					what = "the resolver did not answer in time"
				}
			}
			return Check{Status: Fail, Measured: fmt.Sprintf("%s: %s", host, what), Fix: fix}
		}
		classes := map[string]bool{}
		var shown []string
		for _, a := range addrs {
			ips = append(ips, a.IP)
			classes[addrClass(a.IP)] = true
			shown = append(shown, a.IP.String())
		}
		kind := "mixed private and public"
		switch {
		case len(classes) == 1 && classes["private"]:
			kind = "private"
			if strings.HasPrefix(name, "kms.") {
				kind = "private: VPC endpoint"
			}
		case len(classes) == 1 && classes["public"]:
			kind = "public"
			if strings.HasPrefix(name, "kms.") {
				kind = "public: reached over an internet gateway, NAT or proxy"
			}
		case len(classes) == 1 && classes["loopback"]:
			kind = "loopback"
		}
		return Check{Status: Pass, Measured: fmt.Sprintf("%s -> %s (%s)", host, strings.Join(shown, ", "), kind)}
	})
	r.add(c)
	return ips, c.Status != Fail
}

// addConnect dials port on each address until one answers.
func addConnect(ctx context.Context, r *Report, name string, ips []net.IP, port string, o Options,
	fix func(addr string, ip net.IP, err error) string) bool {
	c := timed(ctx, o.Timeout, name, func(ctx context.Context) Check {
		var (
			errs  []string
			first net.IP
			ferr  error
		)
		d := net.Dialer{}
		for _, ip := range ips {
			addr := net.JoinHostPort(ip.String(), port)
			start := time.Now()
			conn, err := d.DialContext(ctx, "tcp", addr)
			if err == nil {
				conn.Close()
				return Check{Status: Pass, Measured: fmt.Sprintf("%s connected in %s", addr, ms(time.Since(start)))}
			}
			if first == nil {
				first, ferr = ip, err
			}
			errs = append(errs, fmt.Sprintf("%s: %s", addr, connectErr(err)))
		}
		return Check{Status: Fail, Measured: strings.Join(errs, "; "),
			Fix: fix(net.JoinHostPort(first.String(), port), first, ferr)}
	})
	r.add(c)
	return c.Status != Fail
}

func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

func connectErr(err error) string {
	switch {
	case isRefused(err):
		return "connection refused"
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return "no route to host"
	case errors.Is(err, context.DeadlineExceeded), os.IsTimeout(err):
		return "timed out (packets dropped: security group, network ACL or route)"
	}
	return err.Error()
}

// addTLS shakes hands with the first address and describes the certificate.
// It verifies by hand, after the handshake, so that an untrusted certificate
// is still shown (its issuer often names the proxy that re-signed it).
func addTLS(ctx context.Context, r *Report, name string, ips []net.IP, port, host string, o Options) {
	r.add(timed(ctx, o.Timeout, name, func(ctx context.Context) Check {
		addr := net.JoinHostPort(ips[0].String(), port)
		d := tls.Dialer{Config: &tls.Config{ServerName: host, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return Check{Status: Fail, Measured: fmt.Sprintf("handshake with %s: %v", addr, err),
				Fix: "the endpoint does not speak TLS 1.2+ here: check the scheme and port of kms_endpoint, and for a proxy or firewall intercepting port 443"}
		}
		defer conn.Close()
		st := conn.(*tls.Conn).ConnectionState()
		leaf := st.PeerCertificates[0]
		desc := fmt.Sprintf("%s, subject %q, issuer %q, expires %s", tls.VersionName(st.Version),
			leaf.Subject.String(), leaf.Issuer.String(), leaf.NotAfter.UTC().Format(time.DateOnly))
		inter := x509.NewCertPool()
		for _, c := range st.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: o.RootCAs, Intermediates: inter}); err != nil {
			return Check{Status: Fail, Measured: desc + ": " + err.Error(),
				Fix: "the certificate is not trusted for " + host + ": if a proxy or middlebox re-signs TLS, add its CA to the system trust store (or SSL_CERT_FILE); otherwise kms_endpoint names the wrong host"}
		}
		if left := time.Until(leaf.NotAfter); left < 14*24*time.Hour {
			return Check{Status: Warn, Measured: desc + fmt.Sprintf(" (in %d days)", int(left.Hours()/24)),
				Fix: "the endpoint's certificate expires soon: renew it (or tell whoever runs the endpoint)"}
		}
		return Check{Status: Pass, Measured: desc + " (trusted)"}
	}))
}

// ---- local KMS key ----

func checkLocalKey(ctx context.Context, path string, encCtx map[string]string) Check {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		dir, werr := nearestDir(filepath.Dir(path))
		if werr != nil {
			return Check{Status: Fail, Measured: fmt.Sprintf("%s does not exist and %v", path, werr),
				Fix: "make the data dir writable by this user, or set --data-dir to a directory it can write"}
		}
		return Check{Status: Pass, Measured: fmt.Sprintf("%s does not exist yet; das serve creates it (mode 0600) under %s, which is writable", path, dir)}
	}
	if err != nil {
		return Check{Status: Fail, Measured: err.Error(), Fix: "make the data dir readable by this user"}
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return Check{Status: Fail, Measured: fmt.Sprintf("%s has mode %04o: open to group or others", path, perm),
			Fix: "chmod 600 " + path}
	}
	p, err := kms.OpenLocal(path)
	if err != nil {
		return Check{Status: Fail, Measured: err.Error(), Fix: "restore the key file from backup; a new key cannot unwrap existing records"}
	}
	dk, err := p.GenerateDataKey(ctx, encCtx)
	if err == nil {
		var pt []byte
		pt, err = p.Decrypt(ctx, dk.Ciphertext, encCtx)
		clear(pt)
		clear(dk.Plaintext)
	}
	if err != nil {
		return Check{Status: Fail, Measured: fmt.Sprintf("%s: %v", path, err), Fix: "restore the key file from backup"}
	}
	return Check{Status: Pass, Measured: fmt.Sprintf("%s (mode 0600, key id %s) made and unwrapped a data key under %s", path, p.KeyID(), formatContext(encCtx))}
}

// nearestDir returns path or its nearest existing ancestor, and an error
// unless this process may create entries in it.
func nearestDir(path string) (string, error) {
	for p := filepath.Clean(path); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err == nil {
			if !fi.IsDir() {
				return p, fmt.Errorf("%s is not a directory", p)
			}
			if err := syscall.Access(p, 0x2|0x1); err != nil { // W_OK|X_OK
				return p, fmt.Errorf("%s is not writable: %v", p, err)
			}
			return p, nil
		}
		if !(errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) || p == filepath.Dir(p) {
			return p, err
		}
	}
}

// ---- sink ----

func checkSink(ctx context.Context, r *Report, c config.Config, o Options) {
	dir := c.LogDir()
	var existing string
	r.add(timed(ctx, o.Timeout, "sink.writable", func(context.Context) Check {
		d, err := nearestDir(dir)
		existing = d
		if err != nil {
			return Check{Status: Fail, Measured: fmt.Sprintf("stream log %s: %v", dir, err),
				Fix: "make the data dir writable by this user (chown/chmod), or set --data-dir elsewhere"}
		}
		if d != dir {
			return Check{Status: Pass, Measured: fmt.Sprintf("stream log %s does not exist yet; %s is writable", dir, d)}
		}
		f, err := os.CreateTemp(dir, ".preflight-*")
		if err != nil {
			return Check{Status: Fail, Measured: fmt.Sprintf("stream log %s: %v", dir, err),
				Fix: "make " + dir + " writable by this user"}
		}
		name := f.Name()
		err = f.Sync()
		f.Close()
		os.Remove(name)
		if err != nil {
			return Check{Status: Fail, Measured: fmt.Sprintf("stream log %s: fsync: %v", dir, err), Fix: "put the data dir on a file system that supports fsync"}
		}
		return Check{Status: Pass, Measured: fmt.Sprintf("stream log %s is writable (a file was created, synced and removed)", dir)}
	}))
	if existing == "" {
		return
	}
	r.add(timed(ctx, o.Timeout, "sink.free-space", func(context.Context) Check {
		free, err := o.freeSpace(existing)
		if err != nil {
			return Check{Status: Fail, Measured: fmt.Sprintf("statfs %s: %v", existing, err), Fix: "check the data dir's file system"}
		}
		m := fmt.Sprintf("%s free on %s", humanBytes(free), existing)
		if free < LowSpace {
			return Check{Status: Warn, Measured: m + " (under 1 GiB)",
				Fix: "free space on that file system, set log_retain_bytes / log_retain_age, or move --data-dir"}
		}
		return Check{Status: Pass, Measured: m}
	}))
}

func statfsFree(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

func humanBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}

// ---- upstream ----

func checkUpstream(ctx context.Context, r *Report, c config.Config, o Options) {
	if c.Upstream == "" {
		r.add(Check{Name: "upstream", Status: Pass, Measured: "none configured: das serve starts its embedded database"})
		return
	}
	host, port, err := net.SplitHostPort(c.Upstream)
	if err != nil {
		r.add(Check{Name: "upstream", Status: Fail, Measured: err.Error(), Fix: "set --upstream to HOST:PORT"})
		return
	}
	ips, ok := addDNS(ctx, r, "upstream.dns", host, o,
		fmt.Sprintf("%s does not resolve: check the host in --upstream and this host's resolver", host))
	if !ok {
		return
	}
	var hs *mysql.Handshake
	var addr string
	ok = addConnect(ctx, r, "upstream.connect", ips, port, o, func(a string, ip net.IP, err error) string {
		if isRefused(err) {
			return fmt.Sprintf("nothing accepts connections at %s: start the database, or fix the port in --upstream", a)
		}
		return fmt.Sprintf("no TCP connection to %s: the database's security group / firewall must admit TCP %s from this host", a, port)
	})
	if !ok {
		return
	}
	r.add(timed(ctx, o.Timeout, "upstream.greeting", func(ctx context.Context) Check {
		d := net.Dialer{}
		var conn net.Conn
		for _, ip := range ips {
			addr = net.JoinHostPort(ip.String(), port)
			if conn, err = d.DialContext(ctx, "tcp", addr); err == nil {
				break
			}
		}
		if err != nil {
			return Check{Status: Fail, Measured: err.Error(), Fix: "the database stopped accepting connections during the preflight; retry"}
		}
		defer conn.Close()
		if dl, ok := ctx.Deadline(); ok {
			_ = conn.SetDeadline(dl)
		}
		payload, _, err := mysql.ReadPacket(bufio.NewReader(conn), nil, 1<<16)
		if err != nil {
			return Check{Status: Fail, Measured: fmt.Sprintf("%s: reading the greeting: %v", addr, err),
				Fix: "this is not a MySQL/MariaDB server, or it is overloaded: check --upstream"}
		}
		if len(payload) >= 3 && payload[0] == 0xff {
			code := binary.LittleEndian.Uint16(payload[1:3])
			msg := strings.TrimPrefix(string(payload[3:]), "#")
			return Check{Status: Fail, Measured: fmt.Sprintf("%s refused us before the greeting: error %d: %s", addr, code, msg),
				Fix: "let this host connect (MySQL host-based grants, max_connections, or a host blocked after errors: FLUSH HOSTS)"}
		}
		hs, err = mysql.ParseHandshakeV10(payload)
		if err != nil {
			return Check{Status: Fail, Measured: fmt.Sprintf("%s: %v", addr, err), Fix: "check that --upstream is a MySQL/MariaDB server"}
		}
		kind := "MySQL"
		if hs.IsMariaDB() {
			kind = "MariaDB"
		}
		return Check{Status: Pass, Measured: fmt.Sprintf("%s: %s %s, auth plugin %s", addr, kind, hs.ServerVersion, hs.AuthPlugin)}
	}))
	if hs == nil {
		return
	}
	if hs.Capabilities&mysql.ClientSSL != 0 {
		r.add(Check{Name: "upstream.tls", Status: Pass, Measured: addr + " offers TLS"})
		return
	}
	fix := "enable TLS on the database (ssl_cert, ssl_key) so das can encrypt the upstream leg"
	if c.UpstreamTLS == "required" {
		r.add(Check{Name: "upstream.tls", Status: Fail, Measured: addr + " does not offer TLS, and upstream_tls is required", Fix: fix})
		return
	}
	r.add(Check{Name: "upstream.tls", Status: Warn, Measured: addr + " does not offer TLS: sessions to it travel in the clear", Fix: fix})
}

// urlHostPort is the host and port an endpoint URL dials: its port, or the
// scheme's default.
func urlHostPort(u *url.URL) (host, port string) {
	host, port = u.Hostname(), u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	return host, port
}
