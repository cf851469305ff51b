package kinesis

// Sealed records through Kinesis: das's own reader and decrypter, and a DAS
// consumer written only with AWS's libraries (the interoperability
// check), both reading what the sink put on a real Kinesis API server.

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	kinesistypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	mplclient "github.com/aws/aws-cryptographic-material-providers-library/releases/go/mpl/awscryptographymaterialproviderssmithygenerated"
	mpltypes "github.com/aws/aws-cryptographic-material-providers-library/releases/go/mpl/awscryptographymaterialproviderssmithygeneratedtypes"
	esdkclient "github.com/aws/aws-encryption-sdk/releases/go/encryption-sdk/awscryptographyencryptionsdksmithygenerated"
	esdktypes "github.com/aws/aws-encryption-sdk/releases/go/encryption-sdk/awscryptographyencryptionsdksmithygeneratedtypes"

	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/kms"
	"github.com/das-mysql/das/internal/record"
	"github.com/das-mysql/das/internal/testenv"
	"github.com/das-mysql/das/pkg/dasrecord"
)

func testEvents(n, from int) []event.Event {
	evs := make([]event.Event, n)
	for i := range evs {
		e := event.New(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
		e.Command, e.DBUserName, e.RemoteHost, e.RemotePort, e.SessionID = event.CommandQuery, "app", "10.1.2.3", "51000", "42"
		e.StatementID = int64(from + i)
		e.CommandText = fmt.Sprintf("SELECT * FROM orders WHERE id = %d", from+i)
		evs[i] = e
	}
	return evs
}

// sealChain seals n records of per events each, chained.
func sealChain(t testing.TB, s *record.Sealer, n, per int) [][]byte {
	t.Helper()
	var prev *dasrecord.Digest
	lines := make([][]byte, n)
	for i := range lines {
		sealed, err := s.Seal(context.Background(), testEvents(per, i*per), uint64(i+1), prev)
		if err != nil {
			t.Fatal(err)
		}
		lines[i] = sealed.Line
		prev = &sealed.Digest
	}
	return lines
}

func TestSealedRecordsRoundTrip(t *testing.T) {
	endpoint := testenv.Kinesalite(t)
	p, err := kms.OpenLocal(filepath.Join(t.TempDir(), "kms", "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	keys := kms.NewKeyCache(p, dasrecord.ContextFor(testStreamID), 1000, time.Hour)
	defer keys.Close()
	sealer, err := record.NewSealer(keys, record.Options{StreamID: testStreamID, InstanceID: "das-test"})
	if err != nil {
		t.Fatal(err)
	}
	lines := sealChain(t, sealer, 40, 25)
	s := openSink(t, endpoint, Options{})
	appendAll(t, s, 1, lines)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, endpoint, s.Stream(), StartTrimHorizon)
	checkChain(t, got, 1, 40)
	d := &dasrecord.Decrypter{KMS: p, ResourceID: testStreamID}
	for i, g := range got {
		o, err := d.Decrypt(context.Background(), g.line)
		if err != nil {
			t.Fatalf("record %d read back from Kinesis: %v", i+1, err)
		}
		if len(o.Payload.Events) != 25 || o.Payload.Events[3].CommandText != fmt.Sprintf("SELECT * FROM orders WHERE id = %d", i*25+3) {
			t.Fatalf("record %d: events did not survive: %+v", i+1, o.Payload.Events[3])
		}
	}
}

// TestDASConsumerWithAWSLibrariesReadsKinesis reads the stream the way AWS's
// DAS samples do: Kinesis GetRecords, KMS Decrypt of the key under
// aws:rds:dbc-id, the official Encryption SDK with a raw AES keyring, gunzip.
func TestDASConsumerWithAWSLibrariesReadsKinesis(t *testing.T) {
	kmsEndpoint, keyARN := testenv.LocalKMS(t)
	endpoint := testenv.Kinesalite(t)
	ctx := context.Background()
	p, err := kms.OpenAWS(ctx, kms.AWSOptions{KeyID: keyARN, Endpoint: kmsEndpoint})
	if err != nil {
		t.Fatal(err)
	}
	keys := kms.NewKeyCache(p, dasrecord.ContextFor(testStreamID), 100, time.Hour)
	defer keys.Close()
	sealer, err := record.NewSealer(keys, record.Options{StreamID: testStreamID, InstanceID: "db-TEST"})
	if err != nil {
		t.Fatal(err)
	}
	lines := sealChain(t, sealer, 3, 2)
	s := openSink(t, endpoint, Options{})
	appendAll(t, s, 1, lines)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// From here on, only AWS's libraries.
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kc := awskinesis.NewFromConfig(cfg, func(o *awskinesis.Options) { o.BaseEndpoint = aws.String(endpoint) })
	kmsc := awskms.NewFromConfig(cfg, func(o *awskms.Options) { o.BaseEndpoint = aws.String(kmsEndpoint) })
	policy := mpltypes.ESDKCommitmentPolicyRequireEncryptAllowDecrypt
	ec, err := esdkclient.NewClient(esdktypes.AwsEncryptionSdkConfig{CommitmentPolicy: &policy})
	if err != nil {
		t.Fatal(err)
	}
	mpl, err := mplclient.NewClient(mpltypes.MaterialProvidersConfig{})
	if err != nil {
		t.Fatal(err)
	}
	stream := "aws-rds-das-" + testStreamID
	it, err := kc.GetShardIterator(ctx, &awskinesis.GetShardIteratorInput{StreamName: aws.String(stream),
		ShardId: aws.String("shardId-000000000000"), ShardIteratorType: kinesistypes.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	out, err := kc.GetRecords(ctx, &awskinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Records) != 3 {
		t.Fatalf("%d records on the stream, want 3", len(out.Records))
	}
	for i, r := range out.Records {
		if aws.ToString(r.PartitionKey) != testStreamID {
			t.Fatalf("partition key %q", aws.ToString(r.PartitionKey))
		}
		var rec map[string]any
		if err := json.Unmarshal(r.Data, &rec); err != nil {
			t.Fatal(err)
		}
		if rec["type"] != "DatabaseActivityMonitoringRecords" {
			t.Fatalf("type %v", rec["type"])
		}
		wrapped, _ := base64.StdEncoding.DecodeString(rec["key"].(string))
		msg, _ := base64.StdEncoding.DecodeString(rec["databaseActivityEvents"].(string))
		dk, err := kmsc.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: wrapped,
			EncryptionContext: map[string]string{"aws:rds:dbc-id": testStreamID}})
		if err != nil {
			t.Fatalf("AWS KMS Decrypt of the record's key: %v", err)
		}
		kr, err := mpl.CreateRawAesKeyring(ctx, mpltypes.CreateRawAesKeyringInput{KeyNamespace: "BC", KeyName: "DataKey",
			WrappingKey: dk.Plaintext, WrappingAlg: mpltypes.AesWrappingAlgAlgAes256GcmIv12Tag16})
		if err != nil {
			t.Fatal(err)
		}
		dec, err := ec.Decrypt(ctx, esdktypes.DecryptInput{Ciphertext: msg, Keyring: kr})
		if err != nil {
			t.Fatalf("official ESDK cannot decrypt the record from Kinesis: %v", err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(dec.Plaintext))
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		var payload struct {
			Type      string           `json:"type"`
			ClusterID string           `json:"clusterId"`
			Events    []map[string]any `json:"databaseActivityEventList"`
		}
		if err := json.Unmarshal(plain, &payload); err != nil {
			t.Fatal(err)
		}
		if payload.Type != "DatabaseActivityMonitoringRecord" || payload.ClusterID != testStreamID || len(payload.Events) != 2 {
			t.Fatalf("payload %+v", payload)
		}
		if got, want := payload.Events[1]["commandText"], fmt.Sprintf("SELECT * FROM orders WHERE id = %d", i*2+1); got != want {
			t.Fatalf("commandText %v, want %s", got, want)
		}
	}
}

// BenchmarkSealAndPut seals records of 256 events and puts them to
// kinesalite through the sink, waiting for every acknowledgement.
func BenchmarkSealAndPut(b *testing.B) {
	endpoint := testenv.Kinesalite(b)
	p, err := kms.OpenLocal(filepath.Join(b.TempDir(), "kms", "master.key"))
	if err != nil {
		b.Fatal(err)
	}
	keys := kms.NewKeyCache(p, dasrecord.ContextFor(testStreamID), 1<<20, time.Hour)
	defer keys.Close()
	sealer, err := record.NewSealer(keys, record.Options{StreamID: testStreamID, InstanceID: "das-bench"})
	if err != nil {
		b.Fatal(err)
	}
	s, err := Open(context.Background(), Options{StreamID: testStreamID, Region: testenv.Region, Endpoint: endpoint,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const per = 256
	evs := testEvents(per, 0)
	ctx := context.Background()
	var prev *dasrecord.Digest
	waits := make([]func() error, 0, b.N)
	var bytesOut int64
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		sealed, err := sealer.Seal(ctx, evs, uint64(i+1), prev)
		if err != nil {
			b.Fatal(err)
		}
		prev = &sealed.Digest
		bytesOut += int64(len(sealed.Line))
		waits = append(waits, s.AppendAsync(uint64(i+1), sealed.Line))
	}
	for _, w := range waits {
		if err := w(); err != nil {
			b.Fatal(err)
		}
	}
	el := time.Since(start).Seconds()
	b.SetBytes(bytesOut / int64(b.N))
	b.ReportMetric(float64(b.N)/el, "records/s")
	b.ReportMetric(float64(b.N*per)/el, "events/s")
}

// BenchmarkPut puts ready records of about 6 KiB (what 256 events seal to)
// to kinesalite: the sink and the server without sealing.
func BenchmarkPut(b *testing.B) {
	endpoint := testenv.Kinesalite(b)
	s, err := Open(context.Background(), Options{StreamID: testStreamID, Region: testenv.Region, Endpoint: endpoint,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	lines := chainLines(testStreamID, 1, 1000, nil, 6000)
	waits := make([]func() error, 0, b.N)
	b.SetBytes(int64(len(lines[0])))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		waits = append(waits, s.AppendAsync(uint64(i+1), lines[i%len(lines)]))
	}
	for _, w := range waits {
		if err := w(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}
