package preflight

import (
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

type ec2ACL struct{ acl *ec2types.NetworkAcl }

// newACL builds a network ACL from "NUMBER PROTO allow|deny in|out CIDR [PORT]".
func newACL(entries ...string) *ec2ACL {
	a := &ec2types.NetworkAcl{NetworkAclId: aws.String("acl-test")}
	for _, e := range entries {
		f := strings.Fields(e)
		n, _ := strconv.Atoi(f[0])
		en := ec2types.NetworkAclEntry{RuleNumber: aws.Int32(int32(n)), Protocol: aws.String(f[1]),
			RuleAction: ec2types.RuleAction(f[2]), Egress: aws.Bool(f[3] == "out"), CidrBlock: aws.String(f[4])}
		if len(f) > 5 {
			p, _ := strconv.Atoi(f[5])
			en.PortRange = &ec2types.PortRange{From: aws.Int32(int32(p)), To: aws.Int32(int32(p))}
		}
		a.Entries = append(a.Entries, en)
	}
	return &ec2ACL{a}
}
