package preflight

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/binary"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/das-mysql/das/internal/config"
	"github.com/das-mysql/das/internal/kms"
	"github.com/das-mysql/das/internal/testenv"
)

// fakeDNS answers A queries for names in hosts and NXDOMAIN for every other
// name, on 127.0.0.1, so that name resolution in tests never leaves loopback.
func fakeDNS(t *testing.T, hosts map[string]net.IP) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := dnsAnswer(buf[:n], hosts); resp != nil {
				pc.WriteTo(resp, from)
			}
		}
	}()
	addr := pc.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
}

func dnsAnswer(q []byte, hosts map[string]net.IP) []byte {
	if len(q) < 12 {
		return nil
	}
	var labels []string
	i := 12
	for i < len(q) && q[i] != 0 {
		l := int(q[i])
		if i+1+l > len(q) {
			return nil
		}
		labels = append(labels, string(q[i+1:i+1+l]))
		i += 1 + l
	}
	if i+5 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i+1:])
	question := q[12 : i+5]
	name := strings.ToLower(strings.Join(labels, "."))
	ip, known := hosts[name]
	resp := append([]byte{}, q[:2]...)
	flags := uint16(0x8180) // response, recursion desired and available
	if !known {
		flags |= 3 // NXDOMAIN
	}
	answers := 0
	if known && qtype == 1 {
		answers = 1
	}
	resp = binary.BigEndian.AppendUint16(resp, flags)
	resp = binary.BigEndian.AppendUint16(resp, 1)
	resp = binary.BigEndian.AppendUint16(resp, uint16(answers))
	resp = append(resp, 0, 0, 0, 0)
	resp = append(resp, question...)
	if answers == 1 {
		resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4)
		resp = append(resp, ip.To4()...)
	}
	return resp
}

func awsConfig(t *testing.T, endpoint, key string) config.Config {
	c := config.Defaults()
	c.DataDir = t.TempDir()
	c.StreamID = "cluster-PREFLIGHTTEST"
	c.KMS, c.KMSKeyID, c.KMSRegion, c.KMSEndpoint = "aws", key, testenv.Region, endpoint
	return c
}

func noProxyEnv(string) string { return "" }

func checkOf(t *testing.T, r *Report, name, status string, measured ...string) Check {
	t.Helper()
	c, ok := r.Find(name)
	if !ok {
		var b bytes.Buffer
		r.WriteText(&b)
		t.Fatalf("no check %s in:\n%s", name, b.String())
	}
	if c.Status != status {
		t.Errorf("%s: status %s, want %s: %s (fix: %s)", name, c.Status, status, c.Measured, c.Fix)
	}
	for _, m := range measured {
		if !strings.Contains(c.Measured, m) {
			t.Errorf("%s: measured %q lacks %q", name, c.Measured, m)
		}
	}
	return c
}

func TestLocalKMSPass(t *testing.T) {
	endpoint, keyARN := testenv.LocalKMS(t)
	port := endpoint[strings.LastIndex(endpoint, ":")+1:]
	res := fakeDNS(t, map[string]net.IP{"kms.das-test.invalid": net.IPv4(127, 0, 0, 1)})
	c := awsConfig(t, "http://kms.das-test.invalid:"+port, testenv.KeyAlias)
	r := Local(context.Background(), c, Options{Resolver: res, Getenv: noProxyEnv})
	var out bytes.Buffer
	r.WriteText(&out)
	t.Logf("\n%s", out.String())
	if !r.OK() {
		t.Fatal("preflight failed against local-kms")
	}
	checkOf(t, r, "kms.endpoint", Pass, "http://kms.das-test.invalid:"+port, "custom, from kms_endpoint")
	checkOf(t, r, "kms.dns", Pass, "kms.das-test.invalid -> 127.0.0.1 (loopback)")
	checkOf(t, r, "kms.connect", Pass, "127.0.0.1:"+port+" connected")
	checkOf(t, r, "kms.generate-data-key", Pass, keyARN, `"aws:rds:dbc-id": "cluster-PREFLIGHTTEST"`)
	if _, ok := r.Find("kms.tls"); ok {
		t.Error("a TLS check for an http endpoint")
	}
	if strings.Contains(out.String(), os.Getenv("AWS_SECRET_ACCESS_KEY")) {
		t.Error("the report shows the secret access key")
	}

	// The same key, disabled; then an alias that does not exist.
	disableKey(t, endpoint, keyARN)
	r = Local(context.Background(), c, Options{Resolver: res, Getenv: noProxyEnv})
	g := checkOf(t, r, "kms.generate-data-key", Fail, "(key-disabled)")
	if !strings.Contains(g.Fix, "aws kms enable-key --key-id alias/das-test") {
		t.Errorf("fix %q", g.Fix)
	}
	c.KMSKeyID = "alias/no-such-key"
	r = Local(context.Background(), c, Options{Resolver: res, Getenv: noProxyEnv})
	g = checkOf(t, r, "kms.generate-data-key", Fail, "(key-not-found)")
	if !strings.Contains(g.Fix, "no key alias/no-such-key") || !strings.Contains(g.Fix, "kms_region") {
		t.Errorf("fix %q", g.Fix)
	}
}

func disableKey(t *testing.T, endpoint, keyARN string) {
	req, _ := http.NewRequest(http.MethodPost, endpoint+"/", strings.NewReader(`{"KeyId":"`+keyARN+`"}`))
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "TrentService.DisableKey")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("DisableKey: HTTP %d", resp.StatusCode)
	}
}

func TestKMSUnresolvable(t *testing.T) {
	testenv.AWSCredentials(t)
	res := fakeDNS(t, nil)
	c := awsConfig(t, "https://kms.nowhere.das-test.invalid", testenv.KeyAlias)
	r := Local(context.Background(), c, Options{Resolver: res, Getenv: noProxyEnv})
	d := checkOf(t, r, "kms.dns", Fail, "kms.nowhere.das-test.invalid: no such host (NXDOMAIN)")
	if !strings.Contains(d.Fix, "does not resolve") || !strings.Contains(d.Fix, "resolver") {
		t.Errorf("fix %q", d.Fix)
	}
	if _, ok := r.Find("kms.connect"); ok {
		t.Error("connect was tried without an address")
	}
	g := checkOf(t, r, "kms.generate-data-key", Fail, "(dns)")
	if !strings.Contains(g.Fix, "private DNS") {
		t.Errorf("fix %q", g.Fix)
	}
}

func TestKMSConnectRefused(t *testing.T) {
	testenv.AWSCredentials(t)
	port := strconv.Itoa(testenv.FreePort(t))
	c := awsConfig(t, "http://127.0.0.1:"+port, testenv.KeyAlias)
	r := Local(context.Background(), c, Options{Getenv: noProxyEnv})
	k := checkOf(t, r, "kms.connect", Fail, "127.0.0.1:"+port+": connection refused")
	if !strings.Contains(k.Fix, "nothing accepts connections at 127.0.0.1:"+port) {
		t.Errorf("fix %q", k.Fix)
	}
	checkOf(t, r, "kms.generate-data-key", Fail, "(connect)")
	if r.OK() {
		t.Error("OK with KMS unreachable")
	}
}

func TestKMSUntrustedCertificate(t *testing.T) {
	testenv.AWSCredentials(t)
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	c := awsConfig(t, srv.URL, testenv.KeyAlias)
	r := Local(context.Background(), c, Options{Getenv: noProxyEnv})
	tl := checkOf(t, r, "kms.tls", Fail, "TLS 1.3", `issuer "O=Acme Co"`, "certificate signed by unknown authority")
	if !strings.Contains(tl.Fix, "add its CA") {
		t.Errorf("fix %q", tl.Fix)
	}
	checkOf(t, r, "kms.generate-data-key", Fail, "(tls)")

	// Trusting its CA, the handshake passes; the server is no KMS.
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	r = Local(context.Background(), c, Options{Getenv: noProxyEnv, RootCAs: pool})
	checkOf(t, r, "kms.tls", Pass, "(trusted)")
	checkOf(t, r, "kms.generate-data-key", Fail)
}

func TestKMSEndpointResolution(t *testing.T) {
	testenv.AWSCredentials(t)
	tests := []struct {
		fips, endpoint, want, source string
	}{
		{"", "", "https://kms.us-east-1.amazonaws.com", "regional endpoint of us-east-1"},
		{"true", "", "https://kms-fips.us-east-1.amazonaws.com", "regional FIPS endpoint of us-east-1"},
		{"", "https://vpce-0123-abcd.kms.us-east-1.vpce.amazonaws.com", "https://vpce-0123-abcd.kms.us-east-1.vpce.amazonaws.com", "VPC endpoint, from kms_endpoint"},
	}
	for _, tc := range tests {
		t.Setenv("AWS_USE_FIPS_ENDPOINT", tc.fips)
		c := awsConfig(t, tc.endpoint, testenv.KeyAlias)
		client, err := kmsClient(context.Background(), c, Options{Resolver: net.DefaultResolver})
		if err != nil {
			t.Fatal(err)
		}
		u, source, err := kmsEndpoint(context.Background(), client, tc.endpoint)
		if err != nil {
			t.Fatal(err)
		}
		if u.String() != tc.want || source != tc.source {
			t.Errorf("fips=%q endpoint=%q: %s (%s), want %s (%s)", tc.fips, tc.endpoint, u, source, tc.want, tc.source)
		}
	}
}

func TestProxy(t *testing.T) {
	u := mustURL(t, "https://kms.us-east-1.amazonaws.com")
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	c := checkProxy(u, env(map[string]string{"HTTPS_PROXY": "http://alice:s3cret@proxy.corp:3128"}))
	if c.Status != Warn || !strings.Contains(c.Measured, "proxy.corp:3128") || strings.Contains(c.Measured, "s3cret") {
		t.Errorf("proxy: %+v", c)
	}
	c = checkProxy(u, env(map[string]string{"https_proxy": "http://proxy.corp:3128", "NO_PROXY": "localhost,.amazonaws.com"}))
	if c.Status != Pass || !strings.Contains(c.Measured, "excludes kms.us-east-1.amazonaws.com") {
		t.Errorf("no_proxy: %+v", c)
	}
	c = checkProxy(u, env(map[string]string{"HTTP_PROXY": "http://proxy.corp:3128"}))
	if c.Status != Pass {
		t.Errorf("HTTP_PROXY applied to https: %+v", c)
	}
	for _, tc := range []struct {
		list, host string
		want       bool
	}{
		{"*", "a.b", true}, {"amazonaws.com", "kms.us-east-1.amazonaws.com", true}, {"10.0.0.0/8", "10.1.2.3", true},
		{"10.0.0.0/8", "11.1.2.3", false}, {"example.com:443", "example.com", true}, {"zamazonaws.com", "amazonaws.com", false},
	} {
		if got := noProxyMatch(tc.list, tc.host); got != tc.want {
			t.Errorf("noProxyMatch(%q, %q) = %v", tc.list, tc.host, got)
		}
	}
}

func TestLocalKey(t *testing.T) {
	c := config.Defaults()
	c.DataDir = t.TempDir()
	c.StreamID = "cluster-PREFLIGHTTEST"
	r := Local(context.Background(), c, Options{})
	checkOf(t, r, "kms.local-key", Pass, "does not exist yet", "mode 0600")
	if _, err := os.Stat(c.LocalKeyFile()); err == nil {
		t.Error("preflight created the key")
	}
	if _, err := kms.OpenLocal(c.LocalKeyFile()); err != nil {
		t.Fatal(err)
	}
	r = Local(context.Background(), c, Options{})
	checkOf(t, r, "kms.local-key", Pass, "made and unwrapped a data key")
	key, _ := os.ReadFile(c.LocalKeyFile())
	var out bytes.Buffer
	r.WriteJSON(&out)
	if bytes.Contains(out.Bytes(), bytes.TrimSpace(key)) {
		t.Error("the report shows the master key")
	}
	if err := os.Chmod(c.LocalKeyFile(), 0o644); err != nil {
		t.Fatal(err)
	}
	r = Local(context.Background(), c, Options{})
	k := checkOf(t, r, "kms.local-key", Fail, "mode 0644")
	if k.Fix != "chmod 600 "+c.LocalKeyFile() {
		t.Errorf("fix %q", k.Fix)
	}
}

func TestSink(t *testing.T) {
	c := config.Defaults()
	c.DataDir = t.TempDir()
	if err := os.MkdirAll(c.LogDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	r := Local(context.Background(), c, Options{})
	checkOf(t, r, "sink.writable", Pass, "is writable (a file was created, synced and removed)")
	checkOf(t, r, "sink.free-space", Pass, "free on "+c.LogDir())
	if ents, _ := os.ReadDir(c.LogDir()); len(ents) != 0 {
		t.Errorf("preflight left %d files in the log dir", len(ents))
	}

	low := Options{freeSpace: func(string) (uint64, error) { return 100 << 20, nil }}
	r = Local(context.Background(), c, low)
	s := checkOf(t, r, "sink.free-space", Warn, "100.0 MiB free", "under 1 GiB")
	if !strings.Contains(s.Fix, "log_retain_bytes") || !r.OK() {
		t.Errorf("low space: %+v, OK=%v", s, r.OK())
	}

	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	c.DataDir = filepath.Join(file, "data")
	r = Local(context.Background(), c, Options{})
	checkOf(t, r, "sink.writable", Fail, "is not a directory")
}

func TestUpstreamMariaDB(t *testing.T) {
	db := testenv.MariaDB(t)
	c := config.Defaults()
	c.DataDir = t.TempDir()
	c.Upstream = db.Addr()
	r := Local(context.Background(), c, Options{})
	checkOf(t, r, "upstream.connect", Pass)
	checkOf(t, r, "upstream.greeting", Pass, "MariaDB")
	checkOf(t, r, "upstream.tls", Pass, "offers TLS")

	c.Upstream = "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	r = Local(context.Background(), c, Options{})
	u := checkOf(t, r, "upstream.connect", Fail, "connection refused")
	if !strings.Contains(u.Fix, "start the database") {
		t.Errorf("fix %q", u.Fix)
	}
}

// greeting is a MySQL 8 HandshakeV10 without CLIENT_SSL.
func greeting() []byte {
	p := []byte{10}
	p = append(p, "8.0.36-fake\x00"...)
	p = append(p, 7, 0, 0, 0)
	p = append(p, "abcdefgh"...)
	p = append(p, 0)
	caps := uint32(0x0000_a28f) // CLIENT_PROTOCOL_41 and friends, no CLIENT_SSL (0x800)
	caps |= 1<<19 | 1<<15       // PLUGIN_AUTH, SECURE_CONNECTION
	p = binary.LittleEndian.AppendUint16(p, uint16(caps))
	p = append(p, 45, 2, 0)
	p = binary.LittleEndian.AppendUint16(p, uint16(caps>>16))
	p = append(p, 21)
	p = append(p, make([]byte, 10)...)
	p = append(p, "ijklmnopqrst\x00"...)
	p = append(p, "mysql_native_password\x00"...)
	hdr := []byte{byte(len(p)), byte(len(p) >> 8), 0, 0}
	return append(hdr, p...)
}

func TestUpstreamWithoutTLS(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			conn.Write(greeting())
			conn.Close()
		}
	}()
	c := config.Defaults()
	c.DataDir = t.TempDir()
	c.Upstream = l.Addr().String()
	r := Local(context.Background(), c, Options{})
	checkOf(t, r, "upstream.greeting", Pass, "MySQL 8.0.36-fake, auth plugin mysql_native_password")
	u := checkOf(t, r, "upstream.tls", Warn, "does not offer TLS")
	if !strings.Contains(u.Fix, "ssl_cert") || !r.OK() {
		t.Errorf("no TLS: %+v OK=%v", u, r.OK())
	}
	c.UpstreamTLS = "required"
	r = Local(context.Background(), c, Options{})
	checkOf(t, r, "upstream.tls", Fail, "upstream_tls is required")
}

func TestNACL(t *testing.T) {
	_, peer, _ := net.ParseCIDR("10.0.2.0/24")
	acl := func(entries ...string) *ec2ACL { return newACL(entries...) }
	tests := []struct {
		name string
		acl  *ec2ACL
		want bool
	}{
		{"allow all", acl("100 -1 allow out 0.0.0.0/0"), true},
		{"deny first", acl("90 6 deny out 10.0.2.0/24 443", "100 -1 allow out 0.0.0.0/0"), false},
		{"allow first", acl("90 6 allow out 10.0.0.0/16 443", "100 -1 deny out 0.0.0.0/0"), true},
		{"partial cidr", acl("90 6 allow out 10.0.2.0/25 443", "100 -1 deny out 0.0.0.0/0"), false},
		{"other port", acl("90 6 allow out 0.0.0.0/0 80", "32767 -1 deny out 0.0.0.0/0"), false},
		{"only ingress", acl("100 -1 allow in 0.0.0.0/0"), false},
	}
	for _, tc := range tests {
		if got, _ := naclAllows(tc.acl.acl, true, 443, 443, peer); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
