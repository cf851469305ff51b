package preflight

import (
	"bytes"
	"context"

	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/das-mysql/das/internal/testenv"
)

// fixtureAPI serves the RDS and EC2 query APIs from testdata/aws: a
// scenario's own file for an Action, else base's. It records every request.
type fixtureAPI struct {
	t        *testing.T
	scenario string
	mu       sync.Mutex
	calls    []url.Values
}

func (f *fixtureAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=AKIDDASTESTLOCALKMS0/") {
		f.t.Errorf("request not signed with the test credentials: %q", r.Header.Get("Authorization"))
	}
	f.mu.Lock()
	f.calls = append(f.calls, r.PostForm)
	f.mu.Unlock()
	action := r.PostForm.Get("Action")
	if r.PostForm.Get("DryRun") == "true" {

		b, _ := os.ReadFile(filepath.Join("testdata", "aws", "base", "DryRunOperation.xml"))
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusPreconditionFailed)
		w.Write(b)
		return
	}
	for _, dir := range []string{f.scenario, "base"} {
		b, err := os.ReadFile(filepath.Join("testdata", "aws", dir, action+".xml"))
		if err == nil {
			w.Header().Set("Content-Type", "text/xml")
			w.Write(b)
			return
		}
	}
	f.t.Errorf("fixture: no response for Action=%q", action)
	http.Error(w, "no fixture", http.StatusBadRequest)
}

func (f *fixtureAPI) actions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		out = append(out, c.Get("Action"))
	}
	return out
}

func (f *fixtureAPI) call(action string) url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls {
		if c.Get("Action") == action {
			return c
		}
	}
	return nil
}

func startFixtures(t *testing.T, scenario string) (*fixtureAPI, string) {
	testenv.AWSCredentials(t)
	f := &fixtureAPI{t: t, scenario: scenario}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func TestAWSClassification(t *testing.T) {
	tests := []struct {
		scenario string
		ok       bool
		status   string // of every instance
		want     []string
		fix      []string
	}{
		{"base", false, Fail, []string{"blocked:", "no route 0.0.0.0/0 in rtb-0main00000000001"},
			[]string{"--create-kms-endpoint", "com.amazonaws.us-east-1.kms", "vpc-0a1b2c3d4e5f00001", "NAT gateway"}},
		{"public", true, Pass, []string{"public:", "publicly accessible", "-> igw-0123456789abcdef0"}, nil},
		{"nat", true, Pass, []string{"private-with-nat:", "-> nat-0123456789abcdef0", "subnet-0ccc0000000000003"}, nil},
		{"kms-endpoint", true, Pass, []string{"private-with-kms-endpoint:", "vpce-0123456789abcdef0", "private DNS"}, nil},
		{"endpoint-no-private-dns", false, Fail, []string{"blocked:", "private DNS disabled"},
			[]string{"modify-vpc-endpoint --vpc-endpoint-id vpce-0123456789abcdef0 --private-dns-enabled"}},
		{"endpoint-sg-closed", false, Fail, []string{"blocked:", "do not admit TCP 443 from the instance's groups (sg-0db00000000000001)"},
			[]string{"authorize-security-group-ingress --group-id sg-0e0000000000000e1 --protocol tcp --port 443 --source-group sg-0db00000000000001"}},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			f, endpoint := startFixtures(t, tc.scenario)
			r := AWS(context.Background(), AWSOptions{ClusterID: "orders", Region: "us-east-1", Endpoint: endpoint})
			var text bytes.Buffer
			r.WriteText(&text)
			t.Logf("\n%s", text.String())
			if r.OK() != tc.ok {
				t.Fatalf("OK() = %v, want %v", r.OK(), tc.ok)
			}
			c, _ := r.Find("aws.cluster")
			if c.Status != Pass || !strings.Contains(c.Measured, "vpc-0a1b2c3d4e5f00001: 2 instance(s) (orders-1, orders-2)") {
				t.Errorf("aws.cluster = %+v", c)
			}
			for _, inst := range []string{"orders-1", "orders-2"} {
				c, ok := r.Find("aws.instance." + inst)
				if !ok {
					t.Fatalf("no check for %s", inst)
				}
				if c.Status != tc.status {
					t.Errorf("%s: status %s, want %s: %s", inst, c.Status, tc.status, c.Measured)
				}
				for _, w := range tc.want {
					if !strings.Contains(c.Measured, w) {
						t.Errorf("%s: measured %q lacks %q", inst, c.Measured, w)
					}
				}
				for _, w := range tc.fix {
					if !strings.Contains(c.Fix, w) {
						t.Errorf("%s: fix %q lacks %q", inst, c.Fix, w)
					}
				}
			}
			for _, a := range []string{"DescribeDBClusters", "DescribeDBInstances", "DescribeSubnets", "DescribeRouteTables",
				"DescribeInternetGateways", "DescribeNatGateways", "DescribeVpcEndpoints", "DescribeSecurityGroups", "DescribeNetworkAcls"} {
				if f.call(a) == nil {
					t.Errorf("%s was not called", a)
				}
			}
			if got := f.call("DescribeDBClusters").Get("DBClusterIdentifier"); got != "orders" {
				t.Errorf("DescribeDBClusters DBClusterIdentifier = %q", got)
			}
			if got := f.call("DescribeVpcEndpoints"); got.Get("Filter.1.Name") != "vpc-id" || got.Get("Filter.1.Value.1") != "vpc-0a1b2c3d4e5f00001" {
				t.Errorf("DescribeVpcEndpoints filters = %v", got)
			}
		})
	}
}

func TestAWSCreateKMSEndpointDryRun(t *testing.T) {
	f, endpoint := startFixtures(t, "base")
	r := AWS(context.Background(), AWSOptions{ClusterID: "orders", Region: "us-east-1", Endpoint: endpoint,
		CreateKMSEndpoint: true, DryRun: true})
	c, ok := r.Find("aws.create-kms-endpoint.dry-run")
	if !ok || c.Status != Pass {
		t.Fatalf("dry run check = %+v", c)
	}
	for _, w := range []string{"CreateSecurityGroup GroupName=das-kms-endpoint-orders VpcId=vpc-0a1b2c3d4e5f00001",
		"tcp/443 from sg-0db00000000000001",
		"CreateVpcEndpoint VpcEndpointType=Interface ServiceName=com.amazonaws.us-east-1.kms VpcId=vpc-0a1b2c3d4e5f00001 SubnetIds=subnet-0aaa0000000000001,subnet-0bbb0000000000002",
		"PrivateDnsEnabled=true", "EC2 DryRun: the requests would succeed"} {
		if !strings.Contains(c.Measured, w) {
			t.Errorf("dry run %q lacks %q", c.Measured, w)
		}
	}
	for _, a := range []string{"CreateSecurityGroup", "CreateVpcEndpoint"} {
		if got := f.call(a); got == nil || got.Get("DryRun") != "true" {
			t.Errorf("%s: sent %v, want DryRun=true", a, got)
		}
	}
	if f.call("AuthorizeSecurityGroupIngress") != nil {
		t.Error("a dry run authorized ingress")
	}
}

func TestAWSCreateKMSEndpoint(t *testing.T) {
	f, endpoint := startFixtures(t, "base")
	r := AWS(context.Background(), AWSOptions{ClusterID: "orders", Region: "us-east-1", Endpoint: endpoint, CreateKMSEndpoint: true})
	c, ok := r.Find("aws.create-kms-endpoint")
	if !ok || c.Status != Pass || !strings.Contains(c.Measured, "created vpce-0new0000000000001 (pending)") {
		t.Fatalf("create check = %+v", c)
	}
	sg := f.call("CreateSecurityGroup")
	if sg.Get("GroupName") != "das-kms-endpoint-orders" || sg.Get("VpcId") != "vpc-0a1b2c3d4e5f00001" || sg.Get("DryRun") == "true" {
		t.Errorf("CreateSecurityGroup = %v", sg)
	}
	auth := f.call("AuthorizeSecurityGroupIngress")
	want := map[string]string{
		"GroupId":                          "sg-0new000000000000n1",
		"IpPermissions.1.IpProtocol":       "tcp",
		"IpPermissions.1.FromPort":         "443",
		"IpPermissions.1.ToPort":           "443",
		"IpPermissions.1.Groups.1.GroupId": "sg-0db00000000000001",
	}
	for k, v := range want {
		if auth.Get(k) != v {
			t.Errorf("AuthorizeSecurityGroupIngress %s = %q, want %q (all: %v)", k, auth.Get(k), v, auth)
		}
	}
	ep := f.call("CreateVpcEndpoint")
	want = map[string]string{
		"VpcId":             "vpc-0a1b2c3d4e5f00001",
		"ServiceName":       "com.amazonaws.us-east-1.kms",
		"VpcEndpointType":   "Interface",
		"PrivateDnsEnabled": "true",
		"SubnetId.1":        "subnet-0aaa0000000000001",
		"SubnetId.2":        "subnet-0bbb0000000000002",
		"SecurityGroupId.1": "sg-0new000000000000n1",
		"ClientToken":       "das-kms-endpoint-orders",
	}
	for k, v := range want {
		if ep.Get(k) != v {
			t.Errorf("CreateVpcEndpoint %s = %q, want %q (all: %v)", k, ep.Get(k), v, ep)
		}
	}
	if ep.Get("SubnetId.3") != "" || ep.Get("DryRun") == "true" {
		t.Errorf("CreateVpcEndpoint = %v", ep)
	}
	if got := f.actions(); got[len(got)-1] != "CreateVpcEndpoint" {
		t.Errorf("last call %q", got[len(got)-1])
	}
}

func TestAWSCreateKMSEndpointWithGivenGroups(t *testing.T) {
	f, endpoint := startFixtures(t, "base")
	r := AWS(context.Background(), AWSOptions{ClusterID: "orders", Region: "us-east-1", Endpoint: endpoint,
		CreateKMSEndpoint: true, SecurityGroupIDs: []string{"sg-0given00000000001"}})
	if c, _ := r.Find("aws.create-kms-endpoint"); c.Status != Pass {
		t.Fatalf("create = %+v", c)
	}
	if f.call("CreateSecurityGroup") != nil {
		t.Error("created a group though one was given")
	}
	if got := f.call("CreateVpcEndpoint").Get("SecurityGroupId.1"); got != "sg-0given00000000001" {
		t.Errorf("SecurityGroupId.1 = %q", got)
	}
}

func TestAWSCreateKMSEndpointExisting(t *testing.T) {
	f, endpoint := startFixtures(t, "endpoint-no-private-dns")
	r := AWS(context.Background(), AWSOptions{ClusterID: "orders", Region: "us-east-1", Endpoint: endpoint, CreateKMSEndpoint: true})
	c, _ := r.Find("aws.create-kms-endpoint")
	if c.Status != Warn || !strings.Contains(c.Measured, "already has KMS endpoint vpce-0123456789abcdef0") {
		t.Errorf("create = %+v", c)
	}
	if f.call("CreateVpcEndpoint") != nil {
		t.Error("a second endpoint was created")
	}
}

func TestAWSClusterNotFound(t *testing.T) {
	testenv.AWSCredentials(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`<ErrorResponse xmlns="http://rds.amazonaws.com/doc/2014-10-31/"><Error><Type>Sender</Type><Code>DBClusterNotFoundFault</Code><Message>DBCluster nope not found.</Message></Error><RequestId>1</RequestId></ErrorResponse>`))
	}))
	defer srv.Close()
	r := AWS(context.Background(), AWSOptions{ClusterID: "nope", Region: "us-east-1", Endpoint: srv.URL})
	c, _ := r.Find("aws.cluster")
	if c.Status != Fail || !strings.Contains(c.Fix, "check --db-cluster-identifier and --region") {
		t.Errorf("aws.cluster = %+v", c)
	}
	if r.OK() {
		t.Error("OK with a missing cluster")
	}
}
