package preflight

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	kinesistypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/das-mysql/das/internal/config"
	"github.com/das-mysql/das/internal/sink/kafka"
	"github.com/das-mysql/das/internal/sink/kinesis"
)

// The sink checks only read: no topic or stream is created and no record
// is written. Where a permission can be proven only by using it, the check
// says so and warns instead of passing.

// ---- Kafka ----

// kafkaFixDown is the fix when no broker answers.
func kafkaFixDown(addrs []string) string {
	return fmt.Sprintf("nothing answers at %s: start Kafka or fix the brokers in sink", strings.Join(addrs, ", "))
}

func checkKafka(ctx context.Context, r *Report, c config.Config, o Options) {
	ko, err := kafka.ParseURL(c.Sink)
	if err != nil {
		r.add(Check{Name: "sink.kafka.url", Status: Fail, Measured: err.Error(),
			Fix: "write the sink as kafka://HOST:PORT[,HOST:PORT...]/TOPIC?tls=true&sasl=scram-sha-512&user=U (password in " + kafka.PasswordEnv + ")"})
		return
	}
	cl, err := kgo.NewClient(kafkaClientOpts(ko, o)...)
	if err != nil {
		r.add(Check{Name: "sink.kafka.brokers", Status: Fail, Measured: err.Error(), Fix: "check the sink URL"})
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(int32(o.Timeout / time.Millisecond))

	if !addKafkaBrokers(ctx, r, ko, adm, o) {
		return
	}
	var topic kafkaTopic
	tc := timed(ctx, o.Timeout, "sink.kafka.topic", func(ctx context.Context) Check {
		var c Check
		topic, c = checkKafkaTopic(ctx, ko, cl, adm)
		return c
	})
	r.add(tc)
	if tc.Status == Fail {
		return
	}
	r.add(timed(ctx, o.Timeout, "sink.kafka.produce", func(ctx context.Context) Check {
		return checkKafkaProduce(ctx, ko, cl, topic)
	}))
}

// kafkaClientOpts connects the way the sink does (TLS, SASL), with few,
// short retries, and dials through o.Resolver.
func kafkaClientOpts(ko kafka.Options, o Options) []kgo.Opt {
	d := &net.Dialer{Timeout: o.Timeout, Resolver: o.Resolver}
	dial := d.DialContext
	if ko.TLS != nil {
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			tc := ko.TLS.Clone()
			if tc.ServerName == "" {
				tc.ServerName, _, _ = net.SplitHostPort(addr)
			}
			return (&tls.Dialer{NetDialer: d, Config: tc}).DialContext(ctx, network, addr)
		}
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(ko.Brokers...),
		kgo.ClientID("das-preflight"),
		kgo.Dialer(dial),
		kgo.RequestRetries(2),
		kgo.RetryTimeout(o.Timeout),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }),
	}
	switch ko.SASL.Mechanism {
	case kafka.MechanismPlain:
		opts = append(opts, kgo.SASL(plain.Auth{User: ko.SASL.User, Pass: ko.SASL.Password}.AsMechanism()))
	case kafka.MechanismSCRAMSHA256:
		opts = append(opts, kgo.SASL(scram.Auth{User: ko.SASL.User, Pass: ko.SASL.Password}.AsSha256Mechanism()))
	case kafka.MechanismSCRAMSHA512:
		opts = append(opts, kgo.SASL(scram.Auth{User: ko.SASL.User, Pass: ko.SASL.Password}.AsSha512Mechanism()))
	}
	return opts
}

// addKafkaBrokers dials every seed broker, then asks every broker of the
// cluster (as the cluster advertises them) for its API versions, over TLS
// and SASL as configured.
func addKafkaBrokers(ctx context.Context, r *Report, ko kafka.Options, adm *kadm.Client, o Options) bool {
	c := timed(ctx, o.Timeout, "sink.kafka.brokers", func(ctx context.Context) Check {
		var (
			answered, silent []string
			errs             []string
			refused          = true
		)
		d := net.Dialer{Resolver: o.Resolver}
		for _, b := range ko.Brokers {
			start := time.Now()
			conn, err := d.DialContext(ctx, "tcp", b)
			if err != nil {
				silent = append(silent, b)
				errs = append(errs, fmt.Sprintf("%s: %s", b, connectErr(err)))
				refused = refused && isRefused(err)
				continue
			}
			conn.Close()
			answered = append(answered, fmt.Sprintf("%s (%s)", b, ms(time.Since(start))))
		}
		if len(answered) == 0 {
			fix := kafkaFixDown(silent)
			if !refused {
				fix += " (packets are dropped or unroutable: a firewall or security group must admit TCP from this host to the brokers)"
			}
			return Check{Status: Fail, Measured: strings.Join(errs, "; "), Fix: fix}
		}
		meta, err := adm.BrokerMetadata(ctx)
		var vs kadm.BrokersApiVersions
		if err == nil {
			vs, err = adm.ApiVersions(ctx)
		}
		if err != nil {
			return Check{Status: Fail, Measured: fmt.Sprintf("TCP to %s, then: %v", strings.Join(answered, ", "), err), Fix: kafkaProtocolFix(err, ko)}
		}
		var good, bad []string
		var badErr error
		for _, v := range vs.Sorted() {
			addr := kafkaBrokerAddr(meta, v.NodeID)
			if v.Err != nil {
				bad = append(bad, fmt.Sprintf("node %d at %s: %v", v.NodeID, addr, v.Err))
				badErr = v.Err
				continue
			}
			produce, _ := v.KeyMaxVersion(0)
			good = append(good, fmt.Sprintf("node %d at %s (API versions of Kafka %s, produce v%d)", v.NodeID, addr, v.VersionGuess(), produce))
		}
		m := fmt.Sprintf("seed brokers answering: %s; cluster brokers answering: %s", strings.Join(answered, ", "), strings.Join(good, ", "))
		switch {
		case len(good) == 0:
			return Check{Status: Fail, Measured: fmt.Sprintf("seed brokers answered (%s), but no broker the cluster advertises did: %s", strings.Join(answered, ", "), strings.Join(bad, "; ")),
				Fix: "the brokers advertise addresses this host cannot reach: fix advertised.listeners on the brokers, or the network path to those addresses; " + kafkaProtocolFix(badErr, ko)}
		case len(bad) > 0:
			return Check{Status: Warn, Measured: m + "; not answering: " + strings.Join(bad, "; "),
				Fix: "partitions led by those brokers cannot be written from here: check their advertised.listeners and the network path to them"}
		case len(silent) > 0:
			return Check{Status: Warn, Measured: m + "; seed brokers not answering: " + strings.Join(errs, "; "),
				Fix: "remove or fix those brokers in sink; das needs only one seed, but a dead one delays every start"}
		}
		return Check{Status: Pass, Measured: m}
	})
	r.add(c)
	return c.Status != Fail
}

func kafkaBrokerAddr(m kadm.Metadata, node int32) string {
	for _, b := range m.Brokers {
		if b.NodeID == node {
			return net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
		}
	}
	return "?"
}

// kafkaProtocolFix explains a failure after TCP connected: TLS, SASL or ACLs.
func kafkaProtocolFix(err error, ko kafka.Options) string {
	var (
		ua x509.UnknownAuthorityError
		hn x509.HostnameError
		re tls.RecordHeaderError
	)
	switch {
	case err == nil:
		return "see the error above"
	case errors.Is(err, kerr.SaslAuthenticationFailed), errors.Is(err, kerr.IllegalSaslState):
		return fmt.Sprintf("SASL authentication failed: check user=%s, sasl=%s and the password in %s", ko.SASL.User, ko.SASL.Mechanism, kafka.PasswordEnv)
	case errors.Is(err, kerr.UnsupportedSaslMechanism):
		return fmt.Sprintf("the brokers do not offer sasl=%s: use a mechanism their listener enables (sasl.enabled.mechanisms)", ko.SASL.Mechanism)
	case errors.Is(err, kerr.ClusterAuthorizationFailed), errors.Is(err, kerr.TopicAuthorizationFailed):
		return fmt.Sprintf("the brokers refuse %s (ACLs): grant it DESCRIBE on the cluster and DESCRIBE, READ and WRITE on topic %s", kafkaPrincipal(ko), ko.Topic)
	case errors.As(err, &ua), errors.As(err, &hn):
		return "the brokers' certificate is not trusted for their address: set tls_ca= to the CA that signed it (and tls_server_name= if the name differs)"
	case errors.As(err, &re):
		return "the brokers do not speak TLS on this port: drop tls=true, or use their TLS listener's port"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), strings.Contains(err.Error(), "connection reset"):
		switch {
		case ko.SASL.Mechanism != "":
			// Brokers drop the connection on a failed login rather than say why.
			return fmt.Sprintf("the brokers closed the connection: SASL authentication failed? check user=%s, sasl=%s and the password in %s; or the listener expects TLS (tls=true)",
				ko.SASL.User, ko.SASL.Mechanism, kafka.PasswordEnv)
		case ko.TLS == nil:
			return "the brokers closed the connection: their listener probably expects TLS (tls=true) or SASL (sasl=, user=)"
		}
		return "the brokers closed the connection: check that the listener on this port takes TLS and the SASL settings in sink"
	case errors.Is(err, context.DeadlineExceeded):
		return "the brokers accepted TCP but did not answer in time: a TLS listener spoken to in plain text (or the reverse) stalls like this; check tls= in sink"
	}
	return "see the error above"
}

func kafkaPrincipal(ko kafka.Options) string {
	switch {
	case ko.SASL.Mechanism != "":
		return "User:" + ko.SASL.User
	case ko.TLS != nil:
		return "this client's principal (User:ANONYMOUS, or its TLS certificate's name with ssl.client.auth)"
	}
	return "User:ANONYMOUS"
}

// kafkaTopic is what the topic check learned for the produce check.
type kafkaTopic struct {
	exists bool  // the topic exists
	ops    int32 // authorized operations on it; math.MinInt32 when the broker does not say
}

func checkKafkaTopic(ctx context.Context, ko kafka.Options, cl *kgo.Client, adm *kadm.Client) (kafkaTopic, Check) {
	t := ko.Topic
	// Our own Metadata request, so that a broker with
	// auto.create.topics.enable does not create the topic for asking.
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(t)
	req.Topics = append(req.Topics, rt)
	req.AllowAutoTopicCreation = false
	req.IncludeTopicAuthorizedOperations = true
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return kafkaTopic{}, Check{Status: Fail, Measured: fmt.Sprintf("metadata of topic %s: %v", t, err), Fix: kafkaProtocolFix(err, ko)}
	}
	var md *kmsg.MetadataResponseTopic
	for i := range resp.Topics {
		if resp.Topics[i].Topic != nil && *resp.Topics[i].Topic == t {
			md = &resp.Topics[i]
		}
	}
	if md == nil {
		return kafkaTopic{}, Check{Status: Fail, Measured: fmt.Sprintf("the metadata answer does not mention topic %s", t), Fix: "retry; if it persists, check the brokers' logs"}
	}
	terr := kerr.ErrorForCode(md.ErrorCode)
	switch {
	case terr == nil:
		return kafkaTopic{exists: true, ops: md.AuthorizedOperations}, kafkaTopicExists(ctx, adm, t, md)
	case errors.Is(terr, kerr.TopicAuthorizationFailed):
		return kafkaTopic{}, Check{Status: Fail, Measured: fmt.Sprintf("topic %s: %v", t, terr),
			Fix: fmt.Sprintf("the brokers refuse %s any access to topic %s: grant it DESCRIBE, READ and WRITE on the topic (kafka-acls.sh --add --allow-principal %s --operation Describe --operation Read --operation Write --topic %s)",
				kafkaPrincipal(ko), t, kafkaACLPrincipal(ko), t)}
	case !errors.Is(terr, kerr.UnknownTopicOrPartition):
		return kafkaTopic{}, Check{Status: Fail, Measured: fmt.Sprintf("topic %s: %v", t, terr), Fix: "see the error above; retry when the cluster has settled"}
	}

	// The topic does not exist.
	create := fmt.Sprintf("kafka-topics.sh --bootstrap-server %s --create --topic %s", ko.Brokers[0], t)
	if ko.Partitions > 0 {
		create += fmt.Sprintf(" --partitions %d", ko.Partitions)
	}
	if !ko.CreateTopic {
		return kafkaTopic{}, Check{Status: Fail,
			Measured: fmt.Sprintf("topic %s does not exist, and create_topic=false forbids das to create it", t),
			Fix:      fmt.Sprintf("create it (%s), or drop create_topic=false from sink", create)}
	}
	parts, rf := ko.Partitions, ko.ReplicationFactor
	if parts <= 0 {
		parts = -1 // the broker's num.partitions, as the sink asks
	}
	if rf <= 0 {
		rf = -1
	}
	vr, err := adm.ValidateCreateTopics(ctx, parts, rf, nil, t)
	if err == nil {
		var ok bool
		var one kadm.CreateTopicResponse
		if one, ok = vr[t]; !ok {
			err = fmt.Errorf("no answer for topic %s", t)
		} else {
			err = one.Err
			if err != nil && one.ErrMessage != "" {
				err = fmt.Errorf("%w: %s", err, one.ErrMessage)
			}
			if err == nil || errors.Is(err, kerr.TopicAlreadyExists) {
				what := "the brokers' defaults"
				if one.NumPartitions > 0 {
					what = fmt.Sprintf("%d partitions, replication factor %d", one.NumPartitions, one.ReplicationFactor)
				}
				return kafkaTopic{}, Check{Status: Pass,
					Measured: fmt.Sprintf("topic %s does not exist; das serve creates it (%s): the cluster accepted CreateTopics with validate_only, and created nothing", t, what)}
			}
		}
	}
	fix := fmt.Sprintf("create the topic yourself (%s), or let das: ", create)
	switch {
	case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.ClusterAuthorizationFailed):
		fix += fmt.Sprintf("grant %s CREATE on the topic or the cluster", kafkaACLPrincipal(ko))
	case errors.Is(err, kerr.InvalidReplicationFactor):
		fix += "the brokers' default.replication.factor exceeds the brokers available; lower it, or create the topic with a replication factor that fits"
	case errors.Is(err, kerr.InvalidPartitions):
		fix += "set partitions=N in sink (brokers older than Kafka 2.4 need an explicit count)"
	case errors.Is(err, kerr.PolicyViolation):
		fix += "the cluster's create.topic.policy refuses the topic as das would create it"
	default:
		fix += "see the error above"
	}
	return kafkaTopic{}, Check{Status: Fail,
		Measured: fmt.Sprintf("topic %s does not exist, and the cluster would not create it (CreateTopics, validate_only): %v", t, err), Fix: fix}
}

func kafkaACLPrincipal(ko kafka.Options) string {
	if ko.SASL.Mechanism != "" {
		return "User:" + ko.SASL.User
	}
	return "User:ANONYMOUS"
}

func kafkaTopicExists(ctx context.Context, adm *kadm.Client, t string, md *kmsg.MetadataResponseTopic) Check {
	rf, leaderless := 0, 0
	for _, p := range md.Partitions {
		rf = max(rf, len(p.Replicas))
		if p.Leader < 0 || p.ErrorCode != 0 {
			leaderless++
		}
	}
	maxBytes := "max.message.bytes unreadable"
	if rcs, err := adm.DescribeTopicConfigs(ctx, t); err == nil {
		if rc, err := rcs.On(t, nil); err == nil && rc.Err == nil {
			for _, cfg := range rc.Configs {
				if cfg.Key == "max.message.bytes" && cfg.Value != nil {
					maxBytes = "max.message.bytes " + *cfg.Value
				}
			}
		} else if err == nil {
			maxBytes += fmt.Sprintf(" (%v): das assumes %d", rc.Err, kafka.DefaultMaxMessageBytes)
		}
	} else {
		maxBytes += fmt.Sprintf(" (%v): das assumes %d", err, kafka.DefaultMaxMessageBytes)
	}
	m := fmt.Sprintf("topic %s exists: %d partitions, replication factor %d, %s", t, len(md.Partitions), rf, maxBytes)
	if len(md.Partitions) == 0 {
		return Check{Status: Fail, Measured: m, Fix: "the topic has no partitions yet (being created or deleted?): retry shortly"}
	}
	if leaderless > 0 {
		return Check{Status: Warn, Measured: fmt.Sprintf("%s; %d partitions have no leader", m, leaderless),
			Fix: "records for those partitions wait until their brokers return: check the brokers"}
	}
	return Check{Status: Pass, Measured: m}
}

// checkKafkaProduce proves what it can of the right to produce without
// producing: the broker's own authorizer verdict on the topic (Metadata's
// authorized operations), or failing that the ACLs, and an idempotent
// producer id (InitProducerID, which needs IDEMPOTENT_WRITE or WRITE on some
// topic and writes nothing).
func checkKafkaProduce(ctx context.Context, ko kafka.Options, cl *kgo.Client, t kafkaTopic) Check {
	grant := fmt.Sprintf("kafka-acls.sh --bootstrap-server %s --add --allow-principal %s --operation Write --operation Read --operation Describe --topic %s",
		ko.Brokers[0], kafkaACLPrincipal(ko), ko.Topic)

	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionTimeoutMillis = 60000
	resp, err := req.RequestWith(ctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		fix := kafkaProtocolFix(err, ko)
		if errors.Is(err, kerr.ClusterAuthorizationFailed) {
			fix = fmt.Sprintf("das produces with the idempotent producer: grant %s WRITE on topic %s (%s), or IDEMPOTENT_WRITE on the cluster on brokers older than Kafka 2.8",
				kafkaACLPrincipal(ko), ko.Topic, grant)
		}
		return Check{Status: Fail, Measured: fmt.Sprintf("InitProducerID (idempotent producer) refused: %v", err), Fix: fix}
	}
	pid := fmt.Sprintf("the cluster granted an idempotent producer id (InitProducerID: producer %d, epoch %d)", resp.ProducerID, resp.ProducerEpoch)
	const nothing = "; nothing was written"

	if t.exists && t.ops != math.MinInt32 {
		var missing []string
		for _, op := range []kmsg.ACLOperation{kmsg.ACLOperationWrite, kmsg.ACLOperationRead, kmsg.ACLOperationDescribe} {
			if t.ops&(1<<int32(op)) == 0 {
				missing = append(missing, strings.ToUpper(op.String()))
			}
		}
		if len(missing) > 0 {
			return Check{Status: Fail,
				Measured: fmt.Sprintf("the brokers' authorizer denies %s on topic %s to %s (Metadata authorized operations); %s",
					strings.Join(missing, ", "), ko.Topic, kafkaPrincipal(ko), pid),
				Fix: "das writes the topic, and reads it at start to continue its chain: " + grant}
		}
		return Check{Status: Pass, Measured: fmt.Sprintf("the brokers' authorizer allows WRITE, READ and DESCRIBE on topic %s to %s (Metadata authorized operations), and %s%s",
			ko.Topic, kafkaPrincipal(ko), pid, nothing)}
	}

	// No verdict from the authorizer (a topic not created yet, or brokers
	// older than Kafka 2.3): read the ACLs, if we may.
	why := "the topic does not exist yet"
	if t.exists {
		why = "the brokers do not report authorized operations (Kafka before 2.3)"
	}
	dreq := kmsg.NewPtrDescribeACLsRequest()
	dreq.ResourceType = kmsg.ACLResourceTypeTopic
	dreq.ResourceName = kmsg.StringPtr(ko.Topic)
	dreq.ResourcePatternType = kmsg.ACLResourcePatternTypeMatch // literal, prefixed and wildcard ACLs that apply
	dreq.Operation = kmsg.ACLOperationAny
	dreq.PermissionType = kmsg.ACLPermissionTypeAny
	acls, err := dreq.RequestWith(ctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(acls.ErrorCode)
	}
	switch {
	case errors.Is(err, kerr.SecurityDisabled):
		return Check{Status: Pass, Measured: fmt.Sprintf("the brokers run no authorizer (DescribeACLs: security disabled), so any client may produce; %s%s", pid, nothing)}
	case err != nil:
		return Check{Status: Warn,
			Measured: fmt.Sprintf("%s and the ACLs cannot be read (%v): WRITE on topic %s is unproven; %s%s", why, err, ko.Topic, pid, nothing),
			Fix:      "make sure " + kafkaACLPrincipal(ko) + " may write and read the topic: " + grant}
	}
	me := kafkaACLPrincipal(ko)
	var allow, deny bool
	for _, res := range acls.Resources {
		for _, a := range res.ACLs {
			if a.Principal != me && a.Principal != "User:*" {
				continue
			}
			if a.Operation != kmsg.ACLOperationWrite && a.Operation != kmsg.ACLOperationAll {
				continue
			}
			if a.PermissionType == kmsg.ACLPermissionTypeDeny {
				deny = true
			} else if a.PermissionType == kmsg.ACLPermissionTypeAllow {
				allow = true
			}
		}
	}
	switch {
	case deny:
		return Check{Status: Fail, Measured: fmt.Sprintf("an ACL denies WRITE on topic %s to %s (DescribeACLs); %s", ko.Topic, me, pid),
			Fix: "remove the DENY ACL (kafka-acls.sh --list --topic " + ko.Topic + "), then " + grant}
	case allow:
		return Check{Status: Pass, Measured: fmt.Sprintf("%s, but an ACL allows WRITE on topic %s to %s (DescribeACLs); %s%s", why, ko.Topic, me, pid, nothing)}
	}
	return Check{Status: Warn,
		Measured: fmt.Sprintf("%s, and no ACL allows WRITE on topic %s to %s (DescribeACLs; super.users and other principal mappings are not listed there); %s%s", why, ko.Topic, me, pid, nothing),
		Fix:      "unless " + me + " is a super user: " + grant}
}

// ---- Kinesis ----

func checkKinesis(ctx context.Context, r *Report, c config.Config, o Options) {
	ko, err := kinesis.ParseURL(c.Sink)
	if err != nil {
		r.add(Check{Name: "sink.kinesis.url", Status: Fail, Measured: err.Error(),
			Fix: "write the sink as kinesis://STREAM?region=R (empty STREAM: aws-rds-das-<stream id>; endpoint=URL, create=false, shards=N)"})
		return
	}
	var (
		client *awskinesis.Client
		u      *url.URL
	)
	r.add(timed(ctx, o.Timeout, "sink.kinesis.endpoint", func(ctx context.Context) Check {
		var err error
		client, err = kinesisClient(ctx, ko, o)
		if err != nil {
			return Check{Status: Fail, Measured: err.Error(), Fix: "set region= in the sink URL, or AWS_REGION"}
		}
		var source string
		u, source, err = kinesisEndpoint(ctx, client, ko.Endpoint)
		if err != nil {
			return Check{Status: Fail, Measured: "resolve the endpoint: " + err.Error(),
				Fix: "set endpoint= in the sink URL to the Kinesis URL (https://kinesis.REGION.amazonaws.com or a VPC endpoint's URL)"}
		}
		return Check{Status: Pass, Measured: fmt.Sprintf("%s (%s)", u.Redacted(), source)}
	}))
	if u == nil {
		return
	}
	host, port := urlHostPort(u)
	ips, ok := addDNS(ctx, r, "sink.kinesis.dns", host, o,
		fmt.Sprintf("%s does not resolve: check endpoint= in sink and this host's resolver; a Kinesis VPC endpoint answers for the regional name only with private DNS enabled", host))
	if ok {
		ok = addConnect(ctx, r, "sink.kinesis.connect", ips, port, o, func(addr string, ip net.IP, err error) string {
			switch {
			case isRefused(err):
				return fmt.Sprintf("nothing accepts connections at %s: start the Kinesis endpoint, or fix endpoint= in sink", addr)
			case addrClass(ip) == "private":
				return fmt.Sprintf("no TCP connection to %s (a VPC endpoint's address?): its security group must admit TCP %s from this host", addr, port)
			}
			return fmt.Sprintf("no TCP connection to %s: allow outbound TCP %s, and give the subnet a route (NAT or internet gateway), or use a Kinesis VPC endpoint", addr, port)
		})
	}
	if !ok {
		return
	}
	stream := ko.Stream
	if stream == "" {
		if c.StreamID == "" {
			r.add(Check{Name: "sink.kinesis.stream", Status: Warn,
				Measured: "the stream is named " + kinesis.DefaultStreamPrefix + "<stream id>, and this data dir has no stream id yet (das serve makes one at its first start)",
				Fix:      "name the stream in sink (kinesis://NAME), or run das serve once and preflight again"})
			return
		}
		stream = kinesis.DefaultStreamPrefix + c.StreamID
	}
	var sum *kinesistypes.StreamDescriptionSummary
	r.add(timed(ctx, o.Timeout, "sink.kinesis.stream", func(ctx context.Context) Check {
		out, err := client.DescribeStreamSummary(ctx, &awskinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
		var nf *kinesistypes.ResourceNotFoundException
		switch {
		case errors.As(err, &nf) && ko.NoCreate:
			return Check{Status: Fail, Measured: fmt.Sprintf("stream %s does not exist, and create=false forbids das to create it", stream),
				Fix: fmt.Sprintf("create it (aws kinesis create-stream --stream-name %s --shard-count 1 --region %s), or drop create=false from sink", stream, client.Options().Region)}
		case errors.As(err, &nf):
			shards := max(ko.Shards, 1)
			return Check{Status: Pass, Measured: fmt.Sprintf("stream %s does not exist; das serve creates it (%d shard(s)) — kinesis:CreateStream cannot be proven without creating", stream, shards)}
		case err != nil:
			return kinesisFail(ctx, "DescribeStreamSummary", stream, err)
		}
		sum = out.StreamDescriptionSummary
		m := fmt.Sprintf("stream %s is %s: %d open shards, %s mode, retention %dh, encryption %s",
			stream, sum.StreamStatus, aws.ToInt32(sum.OpenShardCount), kinesisMode(sum), aws.ToInt32(sum.RetentionPeriodHours), sum.EncryptionType)
		if sum.EncryptionType == kinesistypes.EncryptionTypeKms {
			m += " (key " + aws.ToString(sum.KeyId) + ")"
		}
		switch sum.StreamStatus {
		case kinesistypes.StreamStatusActive:
			return Check{Status: Pass, Measured: m}
		case kinesistypes.StreamStatusCreating, kinesistypes.StreamStatusUpdating:
			return Check{Status: Warn, Measured: m, Fix: "das serve waits until it is ACTIVE; a stream stuck in " + string(sum.StreamStatus) + " needs a look in the Kinesis console"}
		}
		return Check{Status: Fail, Measured: m, Fix: "the stream is being deleted: wait, then let das create it again (or create it yourself)"}
	}))
	r.add(timed(ctx, o.Timeout, "sink.kinesis.put", func(ctx context.Context) Check {
		return checkKinesisPut(ctx, client, stream, c.StreamID, sum)
	}))
}

// kinesisActions are what das calls on the stream.
const kinesisActions = "kinesis:PutRecords, kinesis:ListTagsForStream, kinesis:AddTagsToStream (and DescribeStreamSummary, ListShards, GetShardIterator, GetRecords to find the chain's end; CreateStream unless create=false)"

// checkKinesisPut proves the one thing it can without writing: that das may
// read the stream's tags, where it keeps the end of its chain. Kinesis has
// no dry run; PutRecords and AddTagsToStream stay unproven, and the check
// says so.
func checkKinesisPut(ctx context.Context, client *awskinesis.Client, stream, streamID string, sum *kinesistypes.StreamDescriptionSummary) Check {
	fix := "make sure the IAM policy allows " + kinesisActions + " on the stream"
	if sum != nil && sum.EncryptionType == kinesistypes.EncryptionTypeKms {
		fix += fmt.Sprintf(", and kms:GenerateDataKey on its key %s", aws.ToString(sum.KeyId))
	}
	if sum == nil {
		return Check{Status: Warn, Measured: "cannot be proven without writing (the stream does not exist yet); das needs " + kinesisActions, Fix: fix}
	}
	out, err := client.ListTagsForStream(ctx, &awskinesis.ListTagsForStreamInput{StreamName: aws.String(stream)})
	if err != nil {
		c := kinesisFail(ctx, "ListTagsForStream", stream, err)
		if isAccessDenied(err) {
			c.Fix = "das reads the stream's tags to find the end of its chain: " + fix
		}
		return c
	}
	tip := "no chain tip tag yet"
	if streamID != "" {
		for _, tg := range out.Tags {
			if aws.ToString(tg.Key) == kinesis.TipTag(streamID) {
				tip = "chain tip tag " + kinesis.TipTag(streamID) + " found"
			}
		}
	}
	return Check{Status: Warn,
		Measured: fmt.Sprintf("ListTagsForStream allowed (%s); PutRecords and AddTagsToStream cannot be proven without writing; das needs %s", tip, kinesisActions),
		Fix:      fix}
}

func kinesisMode(s *kinesistypes.StreamDescriptionSummary) string {
	if s.StreamModeDetails != nil && s.StreamModeDetails.StreamMode != "" {
		return string(s.StreamModeDetails.StreamMode)
	}
	return string(kinesistypes.StreamModeProvisioned)
}

func isAccessDenied(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code := ae.ErrorCode()
		return code == "AccessDeniedException" || code == "AccessDenied" || code == "UnauthorizedOperation" ||
			code == "UnrecognizedClientException" || code == "InvalidSignatureException"
	}
	return false
}

// kinesisFail classifies a failed Kinesis call.
func kinesisFail(ctx context.Context, op, stream string, err error) Check {
	m := fmt.Sprintf("%s %s: %v", op, stream, err)
	var ae smithy.APIError
	s := err.Error()
	switch {
	case strings.Contains(s, "get credentials") || strings.Contains(s, "get identity") || strings.Contains(s, "failed to refresh cached credentials"):
		return Check{Status: Fail, Measured: m, Fix: "no AWS credentials could be loaded: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run with an instance/task role"}
	case isAccessDenied(err):
		return Check{Status: Fail, Measured: m,
			Fix: fmt.Sprintf("the credentials in use may not call kinesis:%s on stream %s: allow %s in their IAM policy; check the credentials (AWS_PROFILE, role) are the intended ones", op, stream, kinesisActions)}
	case errors.As(err, &ae) && (ae.ErrorCode() == "LimitExceededException" || ae.ErrorCode() == "ThrottlingException"):
		return Check{Status: Warn, Measured: m, Fix: "Kinesis throttled the call: retry the preflight in a moment"}
	case ctx.Err() != nil:
		return Check{Status: Fail, Measured: m, Fix: "Kinesis did not answer in time: check the route to the endpoint (NAT, VPC endpoint, proxy) and retry"}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
		return Check{Status: Fail, Measured: m, Fix: "the endpoint failed: retry; check that endpoint= in sink is a Kinesis endpoint"}
	}
	return Check{Status: Fail, Measured: m, Fix: "see the error above"}
}

// kinesisClient builds the client as the sink does (region, endpoint, the
// SDK's chain), with one attempt per call and dials through o.Resolver.
func kinesisClient(ctx context.Context, ko kinesis.Options, o Options) (*awskinesis.Client, error) {
	cfg, err := loadAWSConfig(ctx, ko.Region, o)
	if err != nil {
		return nil, fmt.Errorf("load AWS config: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("no region: set region= in the sink URL or AWS_REGION")
	}
	return awskinesis.NewFromConfig(cfg, func(co *awskinesis.Options) {
		if ko.Endpoint != "" {
			co.BaseEndpoint = aws.String(ko.Endpoint)
		}
	}), nil
}

func kinesisEndpoint(ctx context.Context, client *awskinesis.Client, configured string) (*url.URL, string, error) {
	opt := client.Options()
	fips := opt.EndpointOptions.UseFIPSEndpoint == aws.FIPSEndpointStateEnabled
	dual := opt.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateEnabled
	ep, err := opt.EndpointResolverV2.ResolveEndpoint(ctx, awskinesis.EndpointParameters{
		Region: aws.String(opt.Region), UseFIPS: aws.Bool(fips), UseDualStack: aws.Bool(dual), Endpoint: opt.BaseEndpoint,
	})
	if err != nil {
		return nil, "", err
	}
	var source string
	switch {
	case configured != "" && strings.Contains(ep.URI.Host, ".vpce.amazonaws.com"):
		source = "VPC endpoint, from endpoint="
	case configured != "":
		source = "custom, from endpoint="
	case opt.BaseEndpoint != nil:
		source = "custom, from AWS_ENDPOINT_URL(_KINESIS) or the shared config"
	case fips:
		source = "regional FIPS endpoint of " + opt.Region
	default:
		source = "regional endpoint of " + opt.Region
	}
	if dual {
		source += ", dual-stack"
	}
	u := ep.URI
	return &u, source, nil
}
