package preflight

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/das-mysql/das/internal/config"
	"github.com/das-mysql/das/internal/sink/kafka"
	"github.com/das-mysql/das/internal/testenv"
)

func kafkaCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(2), kfake.DefaultNumPartitions(2)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func sinkConfig(t *testing.T, sink string) config.Config {
	c := config.Defaults()
	c.DataDir = t.TempDir()
	c.StreamID = "cluster-PREFLIGHTTEST"
	c.Sink = sink
	return c
}

// kafkaState lists the cluster's topics and the records in them, to prove
// that a preflight created and wrote nothing.
func kafkaState(t *testing.T, c *kfake.Cluster) string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tds, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, tds.Names()...)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, topic := range tds.Names() {
		var n int64
		ends.Each(func(o kadm.ListedOffset) {
			if o.Topic == topic {
				n += o.Offset
			}
		})
		parts = append(parts, topic+"="+strconv.FormatInt(n, 10))
	}
	return strings.Join(parts, ",")
}

func TestKafkaSink(t *testing.T) {
	cl := kafkaCluster(t, kfake.SeedTopics(3, "das-activity"))
	brokers := strings.Join(cl.ListenAddrs(), ",")
	before := kafkaState(t, cl)
	if before != "das-activity=0" {
		t.Fatalf("cluster starts as %q", before)
	}

	for _, tc := range []struct {
		name, sink string
		checks     [][]string // name, status, measured...
		fix        map[string]string
		absent     []string
	}{
		{name: "topic exists", sink: "kafka://" + brokers + "/das-activity",
			checks: [][]string{
				{"sink.kafka.brokers", Pass, "seed brokers answering", "node 0", "node 1", "produce v"},
				{"sink.kafka.topic", Pass, "topic das-activity exists: 3 partitions", "max.message.bytes"},
				{"sink.kafka.produce", Pass, "allows WRITE, READ and DESCRIBE on topic das-activity to User:ANONYMOUS", "idempotent producer id", "nothing was written"},
			},
			absent: []string{"sink.writable", "sink.free-space"}},
		{name: "missing, creatable", sink: "kafka://" + brokers + "/das-new?partitions=4",
			checks: [][]string{
				{"sink.kafka.topic", Pass, "topic das-new does not exist; das serve creates it (4 partitions", "validate_only, and created nothing"},
				// kfake lists no ACLs without an authorizer, where Kafka
				// says "security disabled": WRITE stays unproven.
				{"sink.kafka.produce", Warn, "the topic does not exist yet", "idempotent producer id", "nothing was written"},
			},
			fix: map[string]string{"sink.kafka.produce": "--operation Write"}},
		{name: "missing, create_topic=false", sink: "kafka://" + brokers + "/das-new?create_topic=false",
			checks: [][]string{{"sink.kafka.topic", Fail, "topic das-new does not exist, and create_topic=false forbids"}},
			fix:    map[string]string{"sink.kafka.topic": "kafka-topics.sh --bootstrap-server " + cl.ListenAddrs()[0] + " --create --topic das-new"},
			absent: []string{"sink.kafka.produce"}},
		{name: "one seed down", sink: "kafka://127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)) + "," + brokers + "/das-activity",
			checks: [][]string{
				{"sink.kafka.brokers", Warn, "seed brokers not answering", "connection refused"},
				{"sink.kafka.produce", Pass},
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Local(context.Background(), sinkConfig(t, tc.sink), Options{Timeout: 5 * time.Second})
			for _, ch := range tc.checks {
				checkOf(t, r, ch[0], ch[1], ch[2:]...)
			}
			for name, want := range tc.fix {
				if c, _ := r.Find(name); !strings.Contains(c.Fix, want) {
					t.Errorf("%s: fix %q lacks %q", name, c.Fix, want)
				}
			}
			for _, name := range tc.absent {
				if _, ok := r.Find(name); ok {
					t.Errorf("unexpected check %s", name)
				}
			}
		})
	}
	if after := kafkaState(t, cl); after != before {
		t.Errorf("the preflight changed the cluster: %q, was %q", after, before)
	}
}

func TestKafkaSinkDown(t *testing.T) {
	addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	start := time.Now()
	r := Local(context.Background(), sinkConfig(t, "kafka://"+addr+"/das"), Options{Timeout: 2 * time.Second})
	c := checkOf(t, r, "sink.kafka.brokers", Fail, addr+": connection refused")
	if want := "nothing answers at " + addr + ": start Kafka or fix the brokers in sink"; c.Fix != want {
		t.Errorf("fix %q, want %q", c.Fix, want)
	}
	if _, ok := r.Find("sink.kafka.topic"); ok || r.OK() {
		t.Errorf("a down cluster: topic check ran or report OK")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %s", d)
	}

	r = Local(context.Background(), sinkConfig(t, "kafka://"+addr+"/bad topic"), Options{})
	checkOf(t, r, "sink.kafka.url", Fail, "not allowed")
}

func TestKafkaSinkACLs(t *testing.T) {
	topicACL := func(topic string, op kmsg.ACLOperation) kfake.ACL {
		return kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: topic, Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: op, Allow: true}
	}
	cl := kafkaCluster(t, kfake.SeedTopics(1, "das-activity"), kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser("SCRAM-SHA-256", "admin", "admin"),
		// A reader of das-activity that may write elsewhere: it gets an
		// idempotent producer id, but may not produce to das-activity.
		kfake.User("SCRAM-SHA-256", "reader", "pw",
			topicACL("das-activity", kmsg.ACLOperationDescribe), topicACL("das-activity", kmsg.ACLOperationRead),
			topicACL("other", kmsg.ACLOperationWrite)),
		kfake.User("SCRAM-SHA-256", "nobody", "pw",
			topicACL("das-activity", kmsg.ACLOperationDescribe)))
	base := "kafka://" + strings.Join(cl.ListenAddrs(), ",") + "/das-activity?sasl=scram-sha-256&user="

	t.Setenv(kafka.PasswordEnv, "pw")
	r := Local(context.Background(), sinkConfig(t, base+"reader"), Options{})
	checkOf(t, r, "sink.kafka.topic", Pass, "1 partitions", "max.message.bytes unreadable")
	c := checkOf(t, r, "sink.kafka.produce", Fail, "denies WRITE on topic das-activity to User:reader", "idempotent producer id")
	if !strings.Contains(c.Fix, "--allow-principal User:reader --operation Write") {
		t.Errorf("fix: %s", c.Fix)
	}

	r = Local(context.Background(), sinkConfig(t, base+"nobody"), Options{})
	c = checkOf(t, r, "sink.kafka.produce", Fail, "InitProducerID (idempotent producer) refused", "CLUSTER_AUTHORIZATION_FAILED")
	if !strings.Contains(c.Fix, "IDEMPOTENT_WRITE") {
		t.Errorf("fix: %s", c.Fix)
	}

	r = Local(context.Background(), sinkConfig(t, base+"admin"), Options{}) // admin's password is not pw
	c = checkOf(t, r, "sink.kafka.brokers", Fail)
	if !strings.Contains(c.Fix, "SASL authentication failed") || strings.Contains(c.Measured+c.Fix, "pw") {
		t.Errorf("wrong password: %+v", c)
	}
}

func kinesisTestClient(t *testing.T, endpoint string) *awskinesis.Client {
	t.Helper()
	cfg, err := awsconfig.LoadDefaultConfig(context.Background(), awsconfig.WithRegion(testenv.Region))
	if err != nil {
		t.Fatal(err)
	}
	return awskinesis.NewFromConfig(cfg, func(o *awskinesis.Options) { o.BaseEndpoint = aws.String(endpoint) })
}

func TestKinesisSink(t *testing.T) {
	endpoint := testenv.Kinesalite(t)
	kc := kinesisTestClient(t, endpoint)
	ctx := context.Background()
	if _, err := kc.CreateStream(ctx, &awskinesis.CreateStreamInput{StreamName: aws.String("das-stream"), ShardCount: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	for {
		out, err := kc.DescribeStreamSummary(ctx, &awskinesis.DescribeStreamSummaryInput{StreamName: aws.String("das-stream")})
		if err != nil {
			t.Fatal(err)
		}
		if out.StreamDescriptionSummary.StreamStatus == "ACTIVE" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	q := "?region=" + testenv.Region + "&endpoint=" + endpoint

	for _, tc := range []struct {
		name, sink string
		checks     [][]string
		fix        map[string]string
		absent     []string
	}{
		{name: "stream exists", sink: "kinesis://das-stream" + q,
			checks: [][]string{
				{"sink.kinesis.endpoint", Pass, endpoint, "custom, from endpoint="},
				{"sink.kinesis.dns", Pass, "127.0.0.1 is an address"},
				{"sink.kinesis.connect", Pass, "connected"},
				{"sink.kinesis.stream", Pass, "stream das-stream is ACTIVE: 2 open shards", "retention 24h"},
				{"sink.kinesis.put", Warn, "ListTagsForStream allowed (no chain tip tag yet)", "cannot be proven without writing", "kinesis:PutRecords"},
			},
			fix:    map[string]string{"sink.kinesis.put": "kinesis:AddTagsToStream"},
			absent: []string{"sink.writable"}},
		{name: "missing, creatable", sink: "kinesis://" + q,
			checks: [][]string{
				{"sink.kinesis.stream", Pass, "stream aws-rds-das-cluster-PREFLIGHTTEST does not exist; das serve creates it (1 shard(s))"},
				{"sink.kinesis.put", Warn, "cannot be proven without writing"},
			}},
		{name: "missing, create=false", sink: "kinesis://das-none" + q + "&create=false",
			checks: [][]string{{"sink.kinesis.stream", Fail, "stream das-none does not exist, and create=false forbids"}},
			fix:    map[string]string{"sink.kinesis.stream": "aws kinesis create-stream --stream-name das-none --shard-count 1 --region us-east-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Local(ctx, sinkConfig(t, tc.sink), Options{Getenv: noProxyEnv})
			for _, ch := range tc.checks {
				checkOf(t, r, ch[0], ch[1], ch[2:]...)
			}
			for name, want := range tc.fix {
				if c, _ := r.Find(name); !strings.Contains(c.Fix, want) {
					t.Errorf("%s: fix %q lacks %q", name, c.Fix, want)
				}
			}
			for _, name := range tc.absent {
				if _, ok := r.Find(name); ok {
					t.Errorf("unexpected check %s", name)
				}
			}
		})
	}

	// Nothing was created or written.
	streams, err := kc.ListStreams(ctx, &awskinesis.ListStreamsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(streams.StreamNames) != 1 {
		t.Errorf("streams after the preflight: %v", streams.StreamNames)
	}
	tags, err := kc.ListTagsForStream(ctx, &awskinesis.ListTagsForStreamInput{StreamName: aws.String("das-stream")})
	if err != nil || len(tags.Tags) != 0 {
		t.Errorf("tags after the preflight: %v, %v", tags, err)
	}
}

func TestKinesisSinkDown(t *testing.T) {
	testenv.AWSCredentials(t)
	addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	r := Local(context.Background(), sinkConfig(t, "kinesis://s?region=us-east-1&endpoint=http://"+addr), Options{Timeout: 2 * time.Second})
	c := checkOf(t, r, "sink.kinesis.connect", Fail, addr+": connection refused")
	if want := "nothing accepts connections at " + addr + ": start the Kinesis endpoint, or fix endpoint= in sink"; c.Fix != want {
		t.Errorf("fix %q, want %q", c.Fix, want)
	}
	if _, ok := r.Find("sink.kinesis.stream"); ok {
		t.Error("the stream check ran without a connection")
	}

	// No stream id yet and no stream name: the name is not known.
	c2 := sinkConfig(t, "kinesis://?region=us-east-1&endpoint=http://"+addr)
	c2.StreamID = ""
	r = Local(context.Background(), c2, Options{Timeout: 2 * time.Second})
	checkOf(t, r, "sink.kinesis.connect", Fail)

	r = Local(context.Background(), sinkConfig(t, "kinesis://s?shards=0"), Options{})
	checkOf(t, r, "sink.kinesis.url", Fail, "shards")
}
