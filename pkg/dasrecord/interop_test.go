package dasrecord_test

// Interoperability with AWS's own libraries, against a real KMS API server
// (local-kms): a record das seals is read by a DAS consumer written only with
// aws-sdk-go-v2 and the official AWS Encryption SDK, the way AWS's samples
// read DAS streams; and a record made the way AWS's DAS makes it (official
// ESDK, suite 0x0378) is read by das.

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

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

const clusterID = "cluster-A6TSYXITZCZXJHIRVFUBZ5LTWY"

// officialClients returns an AWS KMS client for the endpoint and an official
// ESDK client on the policy AWS's DAS samples use.
func officialClients(t *testing.T, endpoint string) (*awskms.Client, *esdkclient.Client, *mplclient.Client) {
	t.Helper()
	cfg, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	kc := awskms.NewFromConfig(cfg, func(o *awskms.Options) { o.BaseEndpoint = aws.String(endpoint) })
	policy := mpltypes.ESDKCommitmentPolicyRequireEncryptAllowDecrypt
	ec, err := esdkclient.NewClient(esdktypes.AwsEncryptionSdkConfig{CommitmentPolicy: &policy})
	if err != nil {
		t.Fatal(err)
	}
	mpl, err := mplclient.NewClient(mpltypes.MaterialProvidersConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return kc, ec, mpl
}

func rawAESKeyring(t *testing.T, mpl *mplclient.Client, key []byte) mpltypes.IKeyring {
	t.Helper()
	kr, err := mpl.CreateRawAesKeyring(context.Background(), mpltypes.CreateRawAesKeyringInput{
		KeyNamespace: "BC", KeyName: "DataKey", WrappingKey: key,
		WrappingAlg: mpltypes.AesWrappingAlgAlgAes256GcmIv12Tag16,
	})
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestDASConsumerWithAWSLibrariesReadsDasRecords(t *testing.T) {
	endpoint, keyARN := testenv.LocalKMS(t)
	ctx := context.Background()
	p, err := kms.OpenAWS(ctx, kms.AWSOptions{KeyID: keyARN, Endpoint: endpoint})
	if err != nil {
		t.Fatal(err)
	}
	keys := kms.NewKeyCache(p, dasrecord.ContextFor(clusterID), 100, time.Hour)
	defer keys.Close()
	kc, ec, mpl := officialClients(t, endpoint)

	for _, suite := range []string{"das", "committing"} {
		t.Run(suite, func(t *testing.T) {
			o := record.Options{StreamID: clusterID, InstanceID: "db-TEST"}
			if suite == "committing" {
				o.Suite = 0x0578
			}
			s, err := record.NewSealer(keys, o)
			if err != nil {
				t.Fatal(err)
			}
			e := event.New(time.Now())
			e.Command, e.CommandText, e.DBUserName, e.RowCount = "QUERY", "SELECT * FROM t WHERE a = 'it''s'", "app", 2
			sealed, err := s.Seal(ctx, []event.Event{e}, 1, nil)
			if err != nil {
				t.Fatal(err)
			}

			// What AWS's DAS samples do, step by step.
			var rec map[string]any
			if err := json.Unmarshal(sealed.Line, &rec); err != nil {
				t.Fatal(err)
			}
			if rec["type"] != "DatabaseActivityMonitoringRecords" {
				t.Fatalf("type %v", rec["type"])
			}
			wrapped, _ := base64.StdEncoding.DecodeString(rec["key"].(string))
			msg, _ := base64.StdEncoding.DecodeString(rec["databaseActivityEvents"].(string))
			dk, err := kc.Decrypt(ctx, &awskms.DecryptInput{
				CiphertextBlob:    wrapped,
				EncryptionContext: map[string]string{"aws:rds:dbc-id": clusterID},
			})
			if err != nil {
				t.Fatalf("AWS KMS Decrypt of das's key: %v", err)
			}
			out, err := ec.Decrypt(ctx, esdktypes.DecryptInput{Ciphertext: msg, Keyring: rawAESKeyring(t, mpl, dk.Plaintext)})
			if err != nil {
				t.Fatalf("official ESDK cannot decrypt das's record: %v", err)
			}
			zr, err := gzip.NewReader(bytes.NewReader(out.Plaintext))
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
			if payload.Type != "DatabaseActivityMonitoringRecord" || payload.ClusterID != clusterID || len(payload.Events) != 1 {
				t.Fatalf("payload %+v", payload)
			}
			if got := payload.Events[0]["commandText"]; got != e.CommandText {
				t.Fatalf("commandText %v", got)
			}
		})
	}
}

func TestDasReadsRecordsMadeLikeAWSDAS(t *testing.T) {
	endpoint, keyARN := testenv.LocalKMS(t)
	ctx := context.Background()
	kc, ec, mpl := officialClients(t, endpoint)

	// AWS's documented Aurora MySQL CONNECT event, plus a field from a future
	// DAS version that consumers must keep.
	payload := `{"type":"DatabaseActivityMonitoringRecord","clusterId":"` + clusterID + `","instanceId":"db-4JCWQLUZVFYP7DIWP6JVQ77O3Q",` +
		`"databaseActivityEventList":[{"logTime":"2020-05-22 18:07:13.267214+00","type":"record","clientApplication":null,"pid":2830,` +
		`"dbUserName":"rdsadmin","databaseName":"","remoteHost":"localhost","remotePort":"11053","command":"CONNECT","commandText":"",` +
		`"paramList":null,"objectType":"TABLE","objectName":"","statementId":0,"substatementId":1,"exitCode":"0","sessionId":"725121",` +
		`"rowCount":0,"serverHost":"master","serverType":"MySQL","serviceName":"Amazon Aurora MySQL","serverVersion":"MySQL 5.7.12",` +
		`"startTime":"2020-05-22 18:07:13.267207+00","endTime":"2020-05-22 18:07:13.267213+00","transactionId":"0","dbProtocol":"MySQL",` +
		`"netProtocol":"TCP","errorMessage":"","class":"MAIN","futureField":{"x":1}}]}`
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(payload))
	zw.Close()

	dk, err := kc.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{
		KeyId: aws.String(keyARN), KeySpec: kmstypes.DataKeySpecAes256,
		EncryptionContext: map[string]string{"aws:rds:dbc-id": clusterID},
	})
	if err != nil {
		t.Fatal(err)
	}
	suite := mpltypes.ESDKAlgorithmSuiteIdAlgAes256GcmIv12Tag16HkdfSha384EcdsaP384
	policy := mpltypes.ESDKCommitmentPolicyForbidEncryptAllowDecrypt
	legacy, err := esdkclient.NewClient(esdktypes.AwsEncryptionSdkConfig{CommitmentPolicy: &policy})
	if err != nil {
		t.Fatal(err)
	}
	for name, enc := range map[string]esdktypes.EncryptInput{
		"0x0378 as AWS DAS":  {Plaintext: gz.Bytes(), AlgorithmSuiteId: &suite, Keyring: rawAESKeyring(t, mpl, dk.Plaintext)},
		"sdk default 0x0578": {Plaintext: gz.Bytes(), Keyring: rawAESKeyring(t, mpl, dk.Plaintext)},
	} {
		t.Run(name, func(t *testing.T) {
			client := ec
			if enc.AlgorithmSuiteId != nil {
				client = legacy // the non-committing suite needs the legacy policy to encrypt
			}
			out, err := client.Encrypt(ctx, enc)
			if err != nil {
				t.Fatal(err)
			}
			line, _ := json.Marshal(map[string]string{
				"type": "DatabaseActivityMonitoringRecords", "version": "1.2",
				"databaseActivityEvents": base64.StdEncoding.EncodeToString(out.Ciphertext),
				"key":                    base64.StdEncoding.EncodeToString(dk.CiphertextBlob),
			})
			p, err := kms.OpenAWS(ctx, kms.AWSOptions{Endpoint: endpoint})
			if err != nil {
				t.Fatal(err)
			}
			d := &dasrecord.Decrypter{KMS: kms.NewDecryptCache(p, 8), ResourceID: clusterID}
			o, err := d.Decrypt(ctx, line)
			if err != nil {
				t.Fatalf("das cannot read a record made like AWS DAS: %v", err)
			}
			if len(o.Payload.Events) != 1 {
				t.Fatalf("%d events", len(o.Payload.Events))
			}
			ev := o.Payload.Events[0]
			if ev.Command != "CONNECT" || ev.SessionID != "725121" || ev.PID != 2830 || ev.RemotePort != "11053" {
				t.Fatalf("event %+v", ev)
			}
			if !ev.Extra.Has("futureField") {
				t.Fatal("an unknown field was dropped")
			}
			// Without the cluster id, the key cannot be unwrapped.
			d2 := &dasrecord.Decrypter{KMS: p, ResourceID: "cluster-WRONG"}
			if _, err := d2.Decrypt(ctx, line); err == nil {
				t.Fatal("decrypted under the wrong resource id")
			}
		})
	}
}
