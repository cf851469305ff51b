package preflight

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	rdstypes "github.com/aws/aws-sdk-go-v2/service/rds/types"
	smithy "github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
)

// Classes of an Aurora instance's path to KMS.
const (
	ClassPublic         = "public"
	ClassNAT            = "private-with-nat"
	ClassKMSEndpoint    = "private-with-kms-endpoint"
	ClassBlocked        = "blocked"
	ClassTransitGateway = "private-via-transit-gateway" // not verifiable from the VPC alone
)

// AWSOptions select the Aurora cluster to check.
type AWSOptions struct {
	ClusterID string
	Region    string
	// Endpoint overrides the RDS and EC2 endpoint URL (tests; empty: AWS).
	Endpoint string
	// Timeout bounds each API call (0: DefaultTimeout).
	Timeout time.Duration
	// CreateKMSEndpoint creates the KMS interface endpoint the seed's console
	// steps create, when the VPC has none; DryRun only shows the requests and
	// asks EC2 (DryRun flag) whether they would be allowed.
	CreateKMSEndpoint bool
	DryRun            bool
	// SecurityGroupIDs for a new endpoint; empty creates a group admitting
	// TCP 443 from the instances' security groups.
	SecurityGroupIDs []string
}

// network is what the AWS APIs say about the cluster's VPC.
type network struct {
	region, vpc string
	cluster     rdstypes.DBCluster
	instances   []rdstypes.DBInstance
	groupSubs   []rdstypes.Subnet // the cluster's DB subnet group
	subnets     map[string]ec2types.Subnet
	routeTables []ec2types.RouteTable
	igws        map[string]ec2types.InternetGateway
	nats        map[string]ec2types.NatGateway
	endpoints   []ec2types.VpcEndpoint // KMS interface endpoints of the VPC
	sgs         map[string]ec2types.SecurityGroup
	nacls       []ec2types.NetworkAcl
}

func (n *network) kmsService() string { return "com.amazonaws." + n.region + ".kms" }

// AWS reads an Aurora cluster's network through the RDS and EC2 APIs and
// classifies each instance's path to KMS; optionally it creates the KMS
// interface endpoint.
func AWS(ctx context.Context, o AWSOptions) *Report {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	r := &Report{}
	var (
		rc *rds.Client
		ec *ec2.Client
	)
	c := timed(ctx, o.Timeout, "aws.config", func(ctx context.Context) Check {
		if o.Region == "" {
			return Check{Status: Fail, Measured: "no region", Fix: "pass --region (the cluster's region)"}
		}
		cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(o.Region), awsconfig.WithRetryMaxAttempts(2), awsconfig.WithLogger(logging.Nop{}))
		if err != nil {
			return Check{Status: Fail, Measured: err.Error(), Fix: "fix the AWS shared config (AWS_PROFILE, ~/.aws/config)"}
		}
		rc = rds.NewFromConfig(cfg, func(ro *rds.Options) {
			if o.Endpoint != "" {
				ro.BaseEndpoint = aws.String(o.Endpoint)
			}
		})
		ec = ec2.NewFromConfig(cfg, func(eo *ec2.Options) {
			if o.Endpoint != "" {
				eo.BaseEndpoint = aws.String(o.Endpoint)
			}
		})
		where := "AWS"
		if o.Endpoint != "" {
			where = o.Endpoint
		}
		return Check{Status: Pass, Measured: fmt.Sprintf("region %s, RDS and EC2 APIs at %s", o.Region, where)}
	})
	r.add(c)
	if c.Status == Fail {
		return r
	}
	n := &network{region: o.Region}
	c = timed(ctx, o.Timeout*4, "aws.cluster", func(ctx context.Context) Check {
		if err := n.load(ctx, rc, ec, o); err != nil {
			return Check{Status: Fail, Measured: err.Error(), Fix: apiFix(err, o)}
		}
		var names []string
		for _, in := range n.instances {
			names = append(names, aws.ToString(in.DBInstanceIdentifier))
		}
		return Check{Status: Pass, Measured: fmt.Sprintf("%s in %s: %d instance(s) (%s), subnet group %s with %d subnet(s)",
			o.ClusterID, n.vpc, len(n.instances), strings.Join(names, ", "), aws.ToString(n.cluster.DBSubnetGroup), len(n.groupSubs))}
	})
	r.add(c)
	if c.Status == Fail {
		return r
	}
	r.add(n.endpointSummary())
	for _, in := range n.instances {
		r.add(n.classify(in, o))
	}
	if o.CreateKMSEndpoint {
		for _, ch := range n.createEndpoint(ctx, ec, o) {
			r.add(ch)
		}
	}
	return r
}

func apiFix(err error, o AWSOptions) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "DBClusterNotFoundFault":
			return fmt.Sprintf("no cluster %q in %s: check --db-cluster-identifier and --region", o.ClusterID, o.Region)
		case "AccessDenied", "AccessDeniedException", "UnauthorizedOperation":
			return "allow these read-only calls to the credentials in use: rds:DescribeDBClusters, rds:DescribeDBInstances, ec2:DescribeSubnets, ec2:DescribeRouteTables, ec2:DescribeInternetGateways, ec2:DescribeNatGateways, ec2:DescribeVpcEndpoints, ec2:DescribeSecurityGroups, ec2:DescribeNetworkAcls"
		case "InvalidClientTokenId", "SignatureDoesNotMatch", "AuthFailure", "ExpiredToken":
			return "the AWS credentials are not valid: check AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
		}
	}
	if strings.Contains(err.Error(), "credentials") {
		return "no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run with a role"
	}
	return "check the region, the credentials and the network path to the RDS and EC2 APIs"
}

// call runs one API call under the per-call timeout.
func call[T any](ctx context.Context, timeout time.Duration, f func(ctx context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return f(ctx)
}

// pages gathers every page of a Describe call.
func pages[T any](ctx context.Context, timeout time.Duration, f func(ctx context.Context, token *string) ([]T, *string, error)) ([]T, error) {
	var all []T
	var token *string
	for {
		var (
			items []T
			next  *string
			err   error
		)
		_, err = call(ctx, timeout, func(ctx context.Context) (struct{}, error) {
			items, next, err = f(ctx, token)
			return struct{}{}, err
		})
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if aws.ToString(next) == "" {
			return all, nil
		}
		token = next
	}
}

func vpcFilter(vpc string) []ec2types.Filter {
	return []ec2types.Filter{{Name: aws.String("vpc-id"), Values: []string{vpc}}}
}

func (n *network) load(ctx context.Context, rc *rds.Client, ec *ec2.Client, o AWSOptions) error {
	t := o.Timeout
	cl, err := call(ctx, t, func(ctx context.Context) (*rds.DescribeDBClustersOutput, error) {
		return rc.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(o.ClusterID)})
	})
	if err != nil {
		return fmt.Errorf("rds DescribeDBClusters %s: %w", o.ClusterID, err)
	}
	if len(cl.DBClusters) == 0 {
		return fmt.Errorf("rds DescribeDBClusters %s: no such cluster", o.ClusterID)
	}
	n.cluster = cl.DBClusters[0]
	insts, err := pages(ctx, t, func(ctx context.Context, tok *string) ([]rdstypes.DBInstance, *string, error) {
		out, err := rc.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{Marker: tok,
			Filters: []rdstypes.Filter{{Name: aws.String("db-cluster-id"), Values: []string{o.ClusterID}}}})
		if err != nil {
			return nil, nil, err
		}
		return out.DBInstances, out.Marker, nil
	})
	if err != nil {
		return fmt.Errorf("rds DescribeDBInstances: %w", err)
	}
	for _, in := range insts {
		if c := aws.ToString(in.DBClusterIdentifier); c == "" || strings.EqualFold(c, o.ClusterID) {
			n.instances = append(n.instances, in)
		}
	}
	if len(n.instances) == 0 {
		return fmt.Errorf("cluster %s has no instances: nothing to check", o.ClusterID)
	}
	sg := n.instances[0].DBSubnetGroup
	if sg == nil || aws.ToString(sg.VpcId) == "" {
		return fmt.Errorf("instance %s has no DB subnet group in a VPC", aws.ToString(n.instances[0].DBInstanceIdentifier))
	}
	n.vpc, n.groupSubs = aws.ToString(sg.VpcId), sg.Subnets
	vpc := n.vpc

	subs, err := pages(ctx, t, func(ctx context.Context, tok *string) ([]ec2types.Subnet, *string, error) {
		out, err := ec.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: vpcFilter(vpc), NextToken: tok})
		if err != nil {
			return nil, nil, err
		}
		return out.Subnets, out.NextToken, nil
	})
	if err != nil {
		return fmt.Errorf("ec2 DescribeSubnets: %w", err)
	}
	n.subnets = map[string]ec2types.Subnet{}
	for _, s := range subs {
		n.subnets[aws.ToString(s.SubnetId)] = s
	}
	if n.routeTables, err = pages(ctx, t, func(ctx context.Context, tok *string) ([]ec2types.RouteTable, *string, error) {
		out, err := ec.DescribeRouteTables(ctx, &ec2.DescribeRouteTablesInput{Filters: vpcFilter(vpc), NextToken: tok})
		if err != nil {
			return nil, nil, err
		}
		return out.RouteTables, out.NextToken, nil
	}); err != nil {
		return fmt.Errorf("ec2 DescribeRouteTables: %w", err)
	}
	igws, err := pages(ctx, t, func(ctx context.Context, tok *string) ([]ec2types.InternetGateway, *string, error) {
		out, err := ec.DescribeInternetGateways(ctx, &ec2.DescribeInternetGatewaysInput{NextToken: tok,
			Filters: []ec2types.Filter{{Name: aws.String("attachment.vpc-id"), Values: []string{vpc}}}})
		if err != nil {
			return nil, nil, err
		}
		return out.InternetGateways, out.NextToken, nil
	})
	if err != nil {
		return fmt.Errorf("ec2 DescribeInternetGateways: %w", err)
	}
	n.igws = map[string]ec2types.InternetGateway{}
	for _, g := range igws {
		for _, a := range g.Attachments {
			if aws.ToString(a.VpcId) == vpc && (strings.EqualFold(string(a.State), "available") || strings.EqualFold(string(a.State), "attached")) {
				n.igws[aws.ToString(g.InternetGatewayId)] = g
			}
		}
	}
	nats, err := pages(ctx, t, func(ctx context.Context, tok *string) ([]ec2types.NatGateway, *string, error) {
		out, err := ec.DescribeNatGateways(ctx, &ec2.DescribeNatGatewaysInput{NextToken: tok,
			Filter: vpcFilter(vpc)})
		if err != nil {
			return nil, nil, err
		}
		return out.NatGateways, out.NextToken, nil
	})
	if err != nil {
		return fmt.Errorf("ec2 DescribeNatGateways: %w", err)
	}
	n.nats = map[string]ec2types.NatGateway{}
	for _, g := range nats {
		n.nats[aws.ToString(g.NatGatewayId)] = g
	}
	eps, err := pages(ctx, t, func(ctx context.Context, tok *string) ([]ec2types.VpcEndpoint, *string, error) {
		out, err := ec.DescribeVpcEndpoints(ctx, &ec2.DescribeVpcEndpointsInput{NextToken: tok,
			Filters: append(vpcFilter(vpc), ec2types.Filter{Name: aws.String("service-name"),
				Values: []string{n.kmsService(), "com.amazonaws." + n.region + ".kms-fips"}})})
		if err != nil {
			return nil, nil, err
		}
		return out.VpcEndpoints, out.NextToken, nil
	})
	if err != nil {
		return fmt.Errorf("ec2 DescribeVpcEndpoints: %w", err)
	}
	for _, e := range eps {
		svc := aws.ToString(e.ServiceName)
		if aws.ToString(e.VpcId) == vpc && (svc == n.kmsService() || svc == n.kmsService()+"-fips") &&
			!strings.EqualFold(string(e.State), "deleted") && !strings.EqualFold(string(e.State), "deleting") {
			n.endpoints = append(n.endpoints, e)
		}
	}
	sgs, err := pages(ctx, t, func(ctx context.Context, tok *string) ([]ec2types.SecurityGroup, *string, error) {
		out, err := ec.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: vpcFilter(vpc), NextToken: tok})
		if err != nil {
			return nil, nil, err
		}
		return out.SecurityGroups, out.NextToken, nil
	})
	if err != nil {
		return fmt.Errorf("ec2 DescribeSecurityGroups: %w", err)
	}
	n.sgs = map[string]ec2types.SecurityGroup{}
	for _, g := range sgs {
		n.sgs[aws.ToString(g.GroupId)] = g
	}
	if n.nacls, err = pages(ctx, t, func(ctx context.Context, tok *string) ([]ec2types.NetworkAcl, *string, error) {
		out, err := ec.DescribeNetworkAcls(ctx, &ec2.DescribeNetworkAclsInput{Filters: vpcFilter(vpc), NextToken: tok})
		if err != nil {
			return nil, nil, err
		}
		return out.NetworkAcls, out.NextToken, nil
	}); err != nil {
		return fmt.Errorf("ec2 DescribeNetworkAcls: %w", err)
	}
	return nil
}

// ---- classification ----

func (n *network) endpointSummary() Check {
	if len(n.endpoints) == 0 {
		return Check{Name: "aws.kms-endpoint", Status: Pass, Measured: fmt.Sprintf("no %s interface endpoint in %s", n.kmsService(), n.vpc)}
	}
	var parts []string
	for _, e := range n.endpoints {
		var azs []string
		for _, s := range e.SubnetIds {
			azs = append(azs, aws.ToString(n.subnets[s].AvailabilityZone))
		}
		var groups []string
		for _, g := range e.Groups {
			groups = append(groups, aws.ToString(g.GroupId))
		}
		parts = append(parts, fmt.Sprintf("%s %s (%s, private DNS %t, subnets %s in %s, security groups %s)",
			aws.ToString(e.VpcEndpointId), aws.ToString(e.ServiceName), strings.ToLower(string(e.State)),
			aws.ToBool(e.PrivateDnsEnabled), strings.Join(e.SubnetIds, ","), strings.Join(azs, ","), strings.Join(groups, ",")))
	}
	return Check{Name: "aws.kms-endpoint", Status: Pass, Measured: strings.Join(parts, "; ")}
}

func (n *network) routeTable(subnet string) *ec2types.RouteTable {
	var main *ec2types.RouteTable
	for i := range n.routeTables {
		rt := &n.routeTables[i]
		for _, a := range rt.Associations {
			if aws.ToString(a.SubnetId) == subnet {
				return rt
			}
			if aws.ToBool(a.Main) {
				main = rt
			}
		}
	}
	return main
}

func defaultRoute(rt *ec2types.RouteTable) *ec2types.Route {
	if rt == nil {
		return nil
	}
	for i := range rt.Routes {
		if aws.ToString(rt.Routes[i].DestinationCidrBlock) == "0.0.0.0/0" {
			return &rt.Routes[i]
		}
	}
	return nil
}

func (n *network) nacl(subnet string) *ec2types.NetworkAcl {
	var def *ec2types.NetworkAcl
	for i := range n.nacls {
		a := &n.nacls[i]
		for _, as := range a.Associations {
			if aws.ToString(as.SubnetId) == subnet {
				return a
			}
		}
		if aws.ToBool(a.IsDefault) {
			def = a
		}
	}
	return def
}

func (n *network) cidr(subnet string) *net.IPNet {
	_, c, err := net.ParseCIDR(aws.ToString(n.subnets[subnet].CidrBlock))
	if err != nil {
		return nil
	}
	return c
}

var anywhere = &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}

// contains reports whether rule covers all of want.
func contains(rule string, want *net.IPNet) bool {
	_, rn, err := net.ParseCIDR(rule)
	if err != nil || want == nil {
		return false
	}
	rb, _ := rn.Mask.Size()
	wb, _ := want.Mask.Size()
	return rb <= wb && rn.Contains(want.IP)
}

func overlaps(rule string, want *net.IPNet) bool {
	_, rn, err := net.ParseCIDR(rule)
	if err != nil || want == nil {
		return false
	}
	return rn.Contains(want.IP) || want.Contains(rn.IP)
}

// sgAllows reports whether any of groups has a rule (ingress or egress)
// admitting TCP port to or from the peer groups or the peer CIDR.
func (n *network) sgAllows(groups []string, egress bool, port int32, peerGroups []string, peer *net.IPNet) (bool, string) {
	for _, g := range groups {
		sg, ok := n.sgs[g]
		if !ok {
			continue
		}
		perms := sg.IpPermissions
		if egress {
			perms = sg.IpPermissionsEgress
		}
		for _, p := range perms {
			proto := aws.ToString(p.IpProtocol)
			if proto != "-1" && proto != "tcp" && proto != "6" {
				continue
			}
			if proto != "-1" && (aws.ToInt32(p.FromPort) > port || aws.ToInt32(p.ToPort) < port) {
				continue
			}
			for _, pair := range p.UserIdGroupPairs {
				for _, pg := range peerGroups {
					if aws.ToString(pair.GroupId) == pg {
						return true, fmt.Sprintf("%s admits %s", g, pg)
					}
				}
			}
			for _, ipr := range p.IpRanges {
				if contains(aws.ToString(ipr.CidrIp), peer) {
					return true, fmt.Sprintf("%s admits %s", g, aws.ToString(ipr.CidrIp))
				}
			}
		}
	}
	return false, ""
}

// naclAllows evaluates a network ACL the way EC2 does: rules in ascending
// number, the first that matches decides. A rule that only partly covers
// the ports or the peer range counts as matching, and then allows only if it
// covers them whole (conservative: it never reports a partial path as open).
func naclAllows(acl *ec2types.NetworkAcl, egress bool, lo, hi int32, peer *net.IPNet) (bool, string) {
	if acl == nil {
		return true, ""
	}
	entries := append([]ec2types.NetworkAclEntry(nil), acl.Entries...)
	sort.Slice(entries, func(i, j int) bool { return aws.ToInt32(entries[i].RuleNumber) < aws.ToInt32(entries[j].RuleNumber) })
	for _, e := range entries {
		if aws.ToBool(e.Egress) != egress || e.CidrBlock == nil {
			continue
		}
		proto := aws.ToString(e.Protocol)
		if proto != "-1" && proto != "6" && proto != "tcp" {
			continue
		}
		full := true
		if proto != "-1" && e.PortRange != nil {
			from, to := aws.ToInt32(e.PortRange.From), aws.ToInt32(e.PortRange.To)
			if to < lo || from > hi {
				continue
			}
			full = from <= lo && to >= hi
		}
		if !overlaps(aws.ToString(e.CidrBlock), peer) {
			continue
		}
		full = full && contains(aws.ToString(e.CidrBlock), peer)
		num := aws.ToInt32(e.RuleNumber)
		if e.RuleAction == ec2types.RuleActionAllow && full {
			return true, ""
		}
		return false, fmt.Sprintf("rule %d (%s %s)", num, e.RuleAction, aws.ToString(e.CidrBlock))
	}
	return false, "no rule allows it"
}

// naclPath checks a TCP 443 flow from subnet src to peer (and the replies).
func (n *network) naclPath(subnet string, peer *net.IPNet, peerName string) (bool, string) {
	acl := n.nacl(subnet)
	if ok, why := naclAllows(acl, true, 443, 443, peer); !ok {
		return false, fmt.Sprintf("network ACL %s of %s denies TCP 443 out to %s: %s", aws.ToString(acl.NetworkAclId), subnet, peerName, why)
	}
	if ok, why := naclAllows(acl, false, 1024, 65535, peer); !ok {
		return false, fmt.Sprintf("network ACL %s of %s denies the replies (TCP 1024-65535 in) from %s: %s", aws.ToString(acl.NetworkAclId), subnet, peerName, why)
	}
	return true, ""
}

func instanceGroups(in rdstypes.DBInstance) []string {
	var out []string
	for _, g := range in.VpcSecurityGroups {
		out = append(out, aws.ToString(g.VpcSecurityGroupId))
	}
	return out
}

// instanceSubnets are the subnets of the DB subnet group in the instance's
// AZ: RDS does not say which one holds the instance, so all must work.
func (n *network) instanceSubnets(in rdstypes.DBInstance) []string {
	az := aws.ToString(in.AvailabilityZone)
	var out []string
	for _, s := range n.groupSubs {
		if s.SubnetAvailabilityZone != nil && aws.ToString(s.SubnetAvailabilityZone.Name) == az {
			out = append(out, aws.ToString(s.SubnetIdentifier))
		}
	}
	if len(out) == 0 && in.DBSubnetGroup != nil {
		for _, s := range in.DBSubnetGroup.Subnets {
			if s.SubnetAvailabilityZone != nil && aws.ToString(s.SubnetAvailabilityZone.Name) == az {
				out = append(out, aws.ToString(s.SubnetIdentifier))
			}
		}
	}
	return out
}

func (n *network) createHint(o AWSOptions) string {
	return fmt.Sprintf("create a KMS interface endpoint in %s (recommended): das preflight aws --db-cluster-identifier %s --region %s --create-kms-endpoint "+
		"(or the VPC console: Endpoints > Create endpoint > AWS services > %s > %s); or route 0.0.0.0/0 of the instance's subnet to a NAT gateway in a public subnet",
		n.vpc, o.ClusterID, o.Region, n.kmsService(), n.vpc)
}

// classify names an instance's path to KMS. A KMS endpoint with private DNS
// comes first: it takes the KMS name for the whole VPC, so even a public
// instance then reaches KMS only through it.
func (n *network) classify(in rdstypes.DBInstance, o AWSOptions) Check {
	id := aws.ToString(in.DBInstanceIdentifier)
	name := "aws.instance." + id
	az := aws.ToString(in.AvailabilityZone)
	subnets := n.instanceSubnets(in)
	if len(subnets) == 0 {
		return Check{Name: name, Status: Fail, Measured: fmt.Sprintf("%s: %s: no subnet of the DB subnet group is in its AZ", ClassBlocked, az),
			Fix: "add a subnet in " + az + " to the DB subnet group"}
	}
	groups := instanceGroups(in)
	var results []Check
	for _, s := range subnets {
		c := n.classifySubnet(in, s, groups, o)
		c.Name = name
		results = append(results, c)
	}
	// The worst subnet decides: the instance may be in any of them.
	worst := results[0]
	for _, c := range results[1:] {
		if rank(c.Status) > rank(worst.Status) {
			worst = c
		}
	}
	return worst
}

func rank(s string) int {
	switch s {
	case Fail:
		return 2
	case Warn:
		return 1
	}
	return 0
}

func (n *network) classifySubnet(in rdstypes.DBInstance, subnet string, groups []string, o AWSOptions) Check {
	az := aws.ToString(in.AvailabilityZone)
	public := aws.ToBool(in.PubliclyAccessible)
	where := fmt.Sprintf("%s in %s", subnet, az)
	block := func(why, fix string) Check {
		return Check{Status: Fail, Measured: fmt.Sprintf("%s: %s: %s", ClassBlocked, where, why), Fix: fix}
	}

	// A usable endpoint with private DNS carries all KMS traffic of the VPC.
	for _, e := range n.endpoints {
		if !aws.ToBool(e.PrivateDnsEnabled) {
			continue
		}
		return n.viaEndpoint(e, subnet, az, groups, where, o)
	}

	rt := n.routeTable(subnet)
	rtID := "(no route table)"
	if rt != nil {
		rtID = aws.ToString(rt.RouteTableId)
	}
	def := defaultRoute(rt)
	why := fmt.Sprintf("no route 0.0.0.0/0 in %s", rtID)
	var noDNS []string
	for _, e := range n.endpoints {
		noDNS = append(noDNS, aws.ToString(e.VpcEndpointId))
	}
	fix := n.createHint(o)
	if len(noDNS) > 0 {
		why += fmt.Sprintf(", and KMS endpoint %s has private DNS disabled (Aurora calls KMS by its regional name, which then resolves to public addresses)", strings.Join(noDNS, ", "))
		fix = fmt.Sprintf("enable private DNS: aws ec2 modify-vpc-endpoint --vpc-endpoint-id %s --private-dns-enabled --region %s "+
			"(the VPC needs enableDnsSupport and enableDnsHostnames)", noDNS[0], o.Region)
	}
	if def != nil && string(def.State) == "blackhole" {
		return block(fmt.Sprintf("route 0.0.0.0/0 in %s is a blackhole (its target is gone)", rtID), fix)
	}
	sgOut := func() (bool, string) {
		ok, _ := n.sgAllows(groups, true, 443, nil, anywhere)
		if !ok {
			return false, fmt.Sprintf("no security group of the instance (%s) allows TCP 443 out to 0.0.0.0/0", strings.Join(groups, ","))
		}
		return n.naclPath(subnet, anywhere, "0.0.0.0/0")
	}
	switch {
	case def == nil:
		return block(why, fix)
	case strings.HasPrefix(aws.ToString(def.GatewayId), "igw-"):
		igw := aws.ToString(def.GatewayId)
		if _, ok := n.igws[igw]; !ok {
			return block(fmt.Sprintf("route 0.0.0.0/0 -> %s, which is not attached to %s", igw, n.vpc), fix)
		}
		if !public {
			return block(fmt.Sprintf("in a public subnet (0.0.0.0/0 -> %s) but not publicly accessible: without a public address it cannot use the internet gateway", igw)+noDNSNote(noDNS), fix)
		}
		if ok, why := sgOut(); !ok {
			return block(why, "allow TCP 443 outbound to 0.0.0.0/0 in the instance's security group and the subnet's network ACL (and TCP 1024-65535 inbound replies in the ACL)")
		}
		return Check{Status: Pass, Measured: fmt.Sprintf("%s: %s: publicly accessible, route 0.0.0.0/0 -> %s (KMS reached over the internet; satisfied automatically)", ClassPublic, where, igw)}
	case aws.ToString(def.NatGatewayId) != "":
		id := aws.ToString(def.NatGatewayId)
		g, ok := n.nats[id]
		if !ok || !strings.EqualFold(string(g.State), "available") {
			state := "not found"
			if ok {
				state = strings.ToLower(string(g.State))
			}
			return block(fmt.Sprintf("route 0.0.0.0/0 -> %s, which is %s", id, state),
				"replace the NAT gateway (or wait until it is available), or "+fix)
		}
		if g.ConnectivityType == ec2types.ConnectivityTypePrivate {
			return Check{Status: Warn, Measured: fmt.Sprintf("%s: %s: route 0.0.0.0/0 -> private NAT gateway %s; the path beyond it is not visible from this VPC", ClassNAT, where, id),
				Fix: "make sure the private NAT gateway's network reaches KMS, or " + fix}
		}
		natSub := aws.ToString(g.SubnetId)
		if nd := defaultRoute(n.routeTable(natSub)); nd == nil || !strings.HasPrefix(aws.ToString(nd.GatewayId), "igw-") {
			return block(fmt.Sprintf("route 0.0.0.0/0 -> %s, but the NAT gateway's subnet %s has no route to an internet gateway", id, natSub),
				fmt.Sprintf("route 0.0.0.0/0 of %s's route table to the VPC's internet gateway, or %s", natSub, fix))
		}
		if ok, why := sgOut(); !ok {
			return block(why, "allow TCP 443 outbound to 0.0.0.0/0 in the instance's security group and the subnet's network ACL (and TCP 1024-65535 inbound replies in the ACL)")
		}
		return Check{Status: Pass, Measured: fmt.Sprintf("%s: %s: route 0.0.0.0/0 -> %s (available, in %s)", ClassNAT, where, id, natSub)}
	case aws.ToString(def.InstanceId) != "" || aws.ToString(def.NetworkInterfaceId) != "":
		target := aws.ToString(def.InstanceId)
		if target == "" {
			target = aws.ToString(def.NetworkInterfaceId)
		}
		return Check{Status: Warn, Measured: fmt.Sprintf("%s: %s: route 0.0.0.0/0 -> %s (a NAT instance; its own setup is not checked)", ClassNAT, where, target),
			Fix: "make sure the NAT instance forwards TCP 443 (source/destination check disabled), or " + fix}
	case aws.ToString(def.TransitGatewayId) != "":
		return Check{Status: Warn, Measured: fmt.Sprintf("%s: %s: route 0.0.0.0/0 -> %s; egress beyond it is not visible from this VPC", ClassTransitGateway, where, aws.ToString(def.TransitGatewayId)),
			Fix: "make sure the transit gateway's egress reaches KMS, or " + fix}
	}
	return block(fmt.Sprintf("route 0.0.0.0/0 in %s leads to neither an internet gateway nor a NAT", rtID), fix)
}

func noDNSNote(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	return "; KMS endpoint " + strings.Join(ids, ", ") + " has private DNS disabled"
}

// viaEndpoint checks the path from an instance subnet to a KMS endpoint.
func (n *network) viaEndpoint(e ec2types.VpcEndpoint, subnet, az string, groups []string, where string, o AWSOptions) Check {
	id := aws.ToString(e.VpcEndpointId)
	block := func(why, fix string) Check {
		return Check{Status: Fail, Measured: fmt.Sprintf("%s: %s: KMS endpoint %s (private DNS) carries the VPC's KMS traffic, but %s", ClassBlocked, where, id, why), Fix: fix}
	}
	if !strings.EqualFold(string(e.State), "available") {
		return block("it is "+strings.ToLower(string(e.State)),
			fmt.Sprintf("wait until %s is available (aws ec2 describe-vpc-endpoints --vpc-endpoint-ids %s); if it failed, delete and create it again", id, id))
	}
	if !strings.EqualFold(string(e.VpcEndpointType), "interface") {
		return block("it is not an interface endpoint", "create an interface endpoint for "+n.kmsService())
	}
	// The endpoint's network interface the instance reaches: one in its own
	// subnet or AZ if any, else any (cross-AZ works, but ties the path to
	// another AZ).
	epSub, sameAZ := "", false
	for _, s := range e.SubnetIds {
		if s == subnet || aws.ToString(n.subnets[s].AvailabilityZone) == az {
			epSub, sameAZ = s, true
			break
		}
	}
	if epSub == "" && len(e.SubnetIds) > 0 {
		epSub = e.SubnetIds[0]
	}
	if epSub == "" {
		return block("it has no subnets", fmt.Sprintf("aws ec2 modify-vpc-endpoint --vpc-endpoint-id %s --add-subnet-ids %s", id, subnet))
	}
	var epGroups []string
	for _, g := range e.Groups {
		epGroups = append(epGroups, aws.ToString(g.GroupId))
	}
	src := n.cidr(subnet)
	if ok, _ := n.sgAllows(epGroups, false, 443, groups, src); !ok {
		fix := fmt.Sprintf("aws ec2 authorize-security-group-ingress --group-id %s --protocol tcp --port 443 --source-group %s --region %s",
			firstOr(epGroups, "sg-OF-THE-ENDPOINT"), firstOr(groups, "sg-OF-THE-INSTANCE"), o.Region)
		return block(fmt.Sprintf("its security groups (%s) do not admit TCP 443 from the instance's groups (%s) or from %s",
			strings.Join(epGroups, ","), strings.Join(groups, ","), aws.ToString(n.subnets[subnet].CidrBlock)), fix)
	}
	dst := n.cidr(epSub)
	if ok, _ := n.sgAllows(groups, true, 443, epGroups, dst); !ok {
		return block(fmt.Sprintf("the instance's security groups (%s) do not allow TCP 443 out to the endpoint (%s or %s)",
			strings.Join(groups, ","), strings.Join(epGroups, ","), aws.ToString(n.subnets[epSub].CidrBlock)),
			fmt.Sprintf("aws ec2 authorize-security-group-egress --group-id %s --ip-permissions IpProtocol=tcp,FromPort=443,ToPort=443,UserIdGroupPairs=[{GroupId=%s}]",
				firstOr(groups, "sg-OF-THE-INSTANCE"), firstOr(epGroups, "sg-OF-THE-ENDPOINT")))
	}
	if epSub != subnet { // traffic inside one subnet does not cross a network ACL
		if ok, why := n.naclPath(subnet, dst, epSub); !ok {
			return block(why, "allow TCP 443 out to the endpoint's subnet and TCP 1024-65535 back in the network ACL")
		}
		acl := n.nacl(epSub)
		if ok, why := naclAllows(acl, false, 443, 443, src); !ok {
			return block(fmt.Sprintf("network ACL %s of the endpoint's subnet %s denies TCP 443 in from %s: %s", aws.ToString(acl.NetworkAclId), epSub, subnet, why),
				"allow TCP 443 in from the instance's subnet in the endpoint subnet's network ACL")
		}
		if ok, why := naclAllows(acl, true, 1024, 65535, src); !ok {
			return block(fmt.Sprintf("network ACL %s of the endpoint's subnet %s denies the replies (TCP 1024-65535 out) to %s: %s", aws.ToString(acl.NetworkAclId), epSub, subnet, why),
				"allow TCP 1024-65535 out to the instance's subnet in the endpoint subnet's network ACL")
		}
	}
	m := fmt.Sprintf("%s: %s: KMS endpoint %s (available, private DNS, network interface in %s, TCP 443 admitted)", ClassKMSEndpoint, where, id, epSub)
	if !sameAZ {
		return Check{Status: Warn, Measured: m + "; the endpoint has no subnet in " + az + ", so the path crosses AZs",
			Fix: fmt.Sprintf("aws ec2 modify-vpc-endpoint --vpc-endpoint-id %s --add-subnet-ids %s --region %s", id, subnet, o.Region)}
	}
	return Check{Status: Pass, Measured: m}
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

// ---- creating the endpoint ----

// endpointSubnets picks one subnet per AZ of the DB subnet group.
func (n *network) endpointSubnets() []string {
	byAZ := map[string]string{}
	for _, s := range n.groupSubs {
		az := ""
		if s.SubnetAvailabilityZone != nil {
			az = aws.ToString(s.SubnetAvailabilityZone.Name)
		}
		id := aws.ToString(s.SubnetIdentifier)
		if cur, ok := byAZ[az]; !ok || id < cur {
			byAZ[az] = id
		}
	}
	azs := make([]string, 0, len(byAZ))
	for az := range byAZ {
		azs = append(azs, az)
	}
	sort.Strings(azs)
	out := make([]string, len(azs))
	for i, az := range azs {
		out[i] = byAZ[az]
	}
	return out
}

func (n *network) instanceGroupsAll() []string {
	seen := map[string]bool{}
	var out []string
	for _, in := range n.instances {
		for _, g := range instanceGroups(in) {
			if !seen[g] {
				seen[g] = true
				out = append(out, g)
			}
		}
	}
	sort.Strings(out)
	return out
}

// isDryRunOK reports EC2's answer to a permitted DryRun request.
func isDryRunOK(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "DryRunOperation"
}

func (n *network) createEndpoint(ctx context.Context, ec *ec2.Client, o AWSOptions) []Check {
	name := "aws.create-kms-endpoint"
	if len(n.endpoints) > 0 {
		return []Check{{Name: name, Status: Warn,
			Measured: fmt.Sprintf("not created: %s already has KMS endpoint %s (a second one with private DNS would conflict)", n.vpc, aws.ToString(n.endpoints[0].VpcEndpointId)),
			Fix:      "fix the existing endpoint as the checks above say"}}
	}
	subnets := n.endpointSubnets()
	dbGroups := n.instanceGroupsAll()
	sgName := "das-kms-endpoint-" + o.ClusterID
	sgIn := &ec2.CreateSecurityGroupInput{
		GroupName:   aws.String(sgName),
		Description: aws.String("KMS endpoint for Aurora cluster " + o.ClusterID + ": TCP 443 from its security groups (das preflight)"),
		VpcId:       aws.String(n.vpc),
		DryRun:      aws.Bool(o.DryRun),
	}
	pairs := make([]ec2types.UserIdGroupPair, len(dbGroups))
	for i, g := range dbGroups {
		pairs[i] = ec2types.UserIdGroupPair{GroupId: aws.String(g)}
	}
	authIn := &ec2.AuthorizeSecurityGroupIngressInput{
		IpPermissions: []ec2types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(443), ToPort: aws.Int32(443), UserIdGroupPairs: pairs}},
		DryRun:        aws.Bool(o.DryRun),
	}
	epIn := &ec2.CreateVpcEndpointInput{
		VpcId:             aws.String(n.vpc),
		ServiceName:       aws.String(n.kmsService()),
		VpcEndpointType:   ec2types.VpcEndpointTypeInterface,
		SubnetIds:         subnets,
		SecurityGroupIds:  o.SecurityGroupIDs,
		PrivateDnsEnabled: aws.Bool(true),
		ClientToken:       aws.String(clientToken(o.ClusterID)),
		DryRun:            aws.Bool(o.DryRun),
	}
	newGroup := len(o.SecurityGroupIDs) == 0
	describe := func() string {
		sgs := strings.Join(o.SecurityGroupIDs, ",")
		var b strings.Builder
		if newGroup {
			sgs = "(the new group)"
			fmt.Fprintf(&b, "CreateSecurityGroup GroupName=%s VpcId=%s; AuthorizeSecurityGroupIngress tcp/443 from %s; ",
				sgName, n.vpc, strings.Join(dbGroups, ","))
		}
		fmt.Fprintf(&b, "CreateVpcEndpoint VpcEndpointType=Interface ServiceName=%s VpcId=%s SubnetIds=%s SecurityGroupIds=%s PrivateDnsEnabled=true ClientToken=%s",
			n.kmsService(), n.vpc, strings.Join(subnets, ","), sgs, aws.ToString(epIn.ClientToken))
		return b.String()
	}

	if o.DryRun {
		return []Check{timed(ctx, o.Timeout*2, name+".dry-run", func(ctx context.Context) Check {
			m := "would send: " + describe()
			if newGroup {
				_, err := ec.CreateSecurityGroup(ctx, sgIn)
				if !isDryRunOK(err) {
					return Check{Status: Fail, Measured: m + "; EC2 DryRun of CreateSecurityGroup: " + errString(err), Fix: createFix(err)}
				}
			}
			// Without the new group's id, the endpoint's DryRun names none
			// (EC2 would then use the VPC's default group): permissions are
			// what it proves.
			_, err := ec.CreateVpcEndpoint(ctx, epIn)
			if !isDryRunOK(err) {
				return Check{Status: Fail, Measured: m + "; EC2 DryRun of CreateVpcEndpoint: " + errString(err), Fix: createFix(err)}
			}
			return Check{Status: Pass, Measured: m + "; EC2 DryRun: the requests would succeed"}
		})}
	}

	return []Check{timed(ctx, o.Timeout*3, name, func(ctx context.Context) Check {
		if newGroup {
			sg, err := ec.CreateSecurityGroup(ctx, sgIn)
			if err != nil {
				return Check{Status: Fail, Measured: "CreateSecurityGroup " + sgName + ": " + errString(err), Fix: createFix(err)}
			}
			gid := aws.ToString(sg.GroupId)
			authIn.GroupId = aws.String(gid)
			if _, err := ec.AuthorizeSecurityGroupIngress(ctx, authIn); err != nil {
				return Check{Status: Fail, Measured: fmt.Sprintf("AuthorizeSecurityGroupIngress %s: %s", gid, errString(err)), Fix: createFix(err)}
			}
			epIn.SecurityGroupIds = []string{gid}
		}
		out, err := ec.CreateVpcEndpoint(ctx, epIn)
		if err != nil {
			return Check{Status: Fail, Measured: "CreateVpcEndpoint: " + errString(err), Fix: createFix(err)}
		}
		e := out.VpcEndpoint
		if e == nil {
			return Check{Status: Fail, Measured: "CreateVpcEndpoint returned no endpoint", Fix: "check the VPC console's Endpoints page"}
		}
		return Check{Status: Pass, Measured: fmt.Sprintf("created %s (%s) for %s in %s, subnets %s, security groups %s, private DNS; "+
			"it becomes available within minutes: run das preflight aws again then",
			aws.ToString(e.VpcEndpointId), strings.ToLower(string(e.State)), n.kmsService(), n.vpc,
			strings.Join(epIn.SubnetIds, ","), strings.Join(epIn.SecurityGroupIds, ","))}
	})}
}

// clientToken makes retries of the same creation idempotent (EC2 allows 64
// characters).
func clientToken(cluster string) string {
	t := "das-kms-endpoint-" + cluster
	if len(t) > 64 {
		t = t[:64]
	}
	return t
}

func errString(err error) string {
	if err == nil {
		return "no error (a DryRun request should be refused with DryRunOperation)"
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode() + ": " + ae.ErrorMessage()
	}
	return err.Error()
}

func createFix(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "UnauthorizedOperation", "AccessDenied":
			return "allow ec2:CreateVpcEndpoint, ec2:CreateSecurityGroup and ec2:AuthorizeSecurityGroupIngress to the credentials in use, or create the endpoint in the VPC console"
		case "InvalidGroup.Duplicate":
			return "a group with this name exists: pass its id with --security-group-ids"
		}
	}
	return "create the endpoint in the VPC console: Endpoints > Create endpoint > AWS services > com.amazonaws.REGION.kms > the cluster's VPC"
}
