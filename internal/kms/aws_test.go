package kms

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/das-mysql/das/internal/testenv"
)

func openTestAWS(t testing.TB, o AWSOptions) *AWS {
	t.Helper()
	a, err := OpenAWS(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAWSLocalKMS(t *testing.T) {
	endpoint, keyARN := testenv.LocalKMS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	byARN := openTestAWS(t, AWSOptions{KeyID: keyARN, Endpoint: endpoint})
	byAlias := openTestAWS(t, AWSOptions{KeyID: testenv.KeyAlias, Endpoint: endpoint, Region: testenv.Region})
	anyKey := openTestAWS(t, AWSOptions{Endpoint: endpoint})

	if got, want := byARN.Name(), "aws:"+keyARN+"@"+endpoint; got != want {
		t.Errorf("Name() = %q, want %q", got, want)
	}

	t.Run("round trip", func(t *testing.T) {
		for _, gen := range []*AWS{byARN, byAlias} {
			dk, err := gen.GenerateDataKey(ctx, streamCtx)
			if err != nil {
				t.Fatal(err)
			}
			if len(dk.Plaintext) != 32 || len(dk.Ciphertext) == 0 {
				t.Fatalf("%s: %d-byte key, %d-byte blob", gen.Name(), len(dk.Plaintext), len(dk.Ciphertext))
			}
			if dk.KeyID != keyARN {
				t.Errorf("%s: KeyID = %q, want the key ARN %q", gen.Name(), dk.KeyID, keyARN)
			}
			for _, dec := range []*AWS{byARN, byAlias, anyKey} {
				pt, err := dec.Decrypt(ctx, dk.Ciphertext, streamCtx)
				if err != nil {
					t.Fatalf("%s decrypting %s's key: %v", dec.Name(), gen.Name(), err)
				}
				if !bytes.Equal(pt, dk.Plaintext) {
					t.Fatalf("%s unwrapped %s's key to different bytes", dec.Name(), gen.Name())
				}
			}
		}
	})

	t.Run("wrong context", func(t *testing.T) {
		dk, err := byARN.GenerateDataKey(ctx, streamCtx)
		if err != nil {
			t.Fatal(err)
		}
		_, err = byARN.Decrypt(ctx, dk.Ciphertext, map[string]string{"aws:rds:dbc-id": "cluster-OTHER"})
		if err == nil {
			t.Fatal("decrypt under another context succeeded")
		}
		if c := ClassifyError(err); c != ClassInvalidCiphertext {
			t.Errorf("ClassifyError = %q, want %q (err: %v)", c, ClassInvalidCiphertext, err)
		}
		if !strings.Contains(err.Error(), "encryption context") || !strings.Contains(err.Error(), "cluster-OTHER") {
			t.Errorf("error does not point at the context: %v", err)
		}
	})

	t.Run("unknown alias", func(t *testing.T) {
		p := openTestAWS(t, AWSOptions{KeyID: "alias/does-not-exist", Endpoint: endpoint})
		_, err := p.GenerateDataKey(ctx, streamCtx)
		if c := ClassifyError(err); c != ClassKeyNotFound {
			t.Errorf("ClassifyError = %q, want %q (err: %v)", c, ClassKeyNotFound, err)
		}
		if err != nil && !strings.Contains(err.Error(), "alias/does-not-exist") {
			t.Errorf("error does not name the key: %v", err)
		}
	})

	t.Run("no key id", func(t *testing.T) {
		_, err := anyKey.GenerateDataKey(ctx, streamCtx)
		if err == nil || !strings.Contains(err.Error(), "no key id") {
			t.Errorf("err = %v, want a missing key id error", err)
		}
	})

	// Last: it disables the key.
	t.Run("disabled key", func(t *testing.T) {
		if _, err := byARN.client.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: aws.String(keyARN)}); err != nil {
			t.Fatal(err)
		}
		_, err := byAlias.GenerateDataKey(ctx, streamCtx)
		if c := ClassifyError(err); c != ClassKeyDisabled {
			t.Errorf("ClassifyError = %q, want %q (err: %v)", c, ClassKeyDisabled, err)
		}
	})
}

func TestAWSUnreachable(t *testing.T) {
	testenv.AWSCredentials(t)
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t))
	p := openTestAWS(t, AWSOptions{KeyID: "alias/das-test", Endpoint: endpoint, MaxAttempts: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := p.GenerateDataKey(ctx, streamCtx)
	if c := ClassifyError(err); c != ClassConnect {
		t.Fatalf("ClassifyError = %q, want %q (err: %v)", c, ClassConnect, err)
	}
	if !strings.Contains(err.Error(), "alias/das-test") {
		t.Errorf("error does not name the provider: %v", err)
	}
	_, err = p.Decrypt(ctx, []byte("blob"), streamCtx)
	if c := ClassifyError(err); c != ClassConnect {
		t.Errorf("Decrypt: ClassifyError = %q, want %q (err: %v)", c, ClassConnect, err)
	}
}

// Servers that answer badly, each on loopback, classified end to end through the SDK.
func TestAWSClassifyResponses(t *testing.T) {
	testenv.AWSCredentials(t)
	apiError := func(status int, code string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"__type":"%s","message":"test"}`, code)
		}
	}
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		tls     bool
		want    string
	}{
		{"throttled", apiError(400, "ThrottlingException"), false, ClassThrottled},
		{"rate limit", apiError(400, "LimitExceededException"), false, ClassThrottled},
		{"access denied", apiError(400, "AccessDeniedException"), false, ClassAccessDenied},
		{"bad credentials", apiError(400, "UnrecognizedClientException"), false, ClassAccessDenied},
		{"disabled", apiError(400, "DisabledException"), false, ClassKeyDisabled},
		{"pending deletion", apiError(400, "KMSInvalidStateException"), false, ClassKeyDisabled},
		{"not found", apiError(400, "NotFoundException"), false, ClassKeyNotFound},
		{"invalid ciphertext", apiError(400, "InvalidCiphertextException"), false, ClassInvalidCiphertext},
		{"proxy 502", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "bad gateway", http.StatusBadGateway)
		}, false, ClassHTTPStatus},
		{"unknown api error", apiError(500, "KMSInternalException"), false, ClassHTTPStatus},
		{"untrusted certificate", apiError(400, "NotFoundException"), true, ClassTLS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var srv *httptest.Server
			if tc.tls {
				srv = httptest.NewTLSServer(tc.handler)
			} else {
				srv = httptest.NewServer(tc.handler)
			}
			defer srv.Close()
			p := openTestAWS(t, AWSOptions{KeyID: "alias/das-test", Endpoint: srv.URL, MaxAttempts: 1})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := p.GenerateDataKey(ctx, streamCtx)
			if c := ClassifyError(err); c != tc.want {
				t.Errorf("ClassifyError = %q, want %q (err: %v)", c, tc.want, err)
			}
		})
	}
}

func TestOpenAWSOptions(t *testing.T) {
	testenv.AWSCredentials(t)
	ctx := context.Background()

	if _, err := OpenAWS(ctx, AWSOptions{KeyID: "alias/x", Endpoint: "vpce-0abc.kms.us-east-1.vpce.amazonaws.com"}); err == nil ||
		!strings.Contains(err.Error(), "https://vpce-0abc") {
		t.Errorf("scheme-less endpoint: err = %v, want a hint with https://", err)
	}

	p := openTestAWS(t, AWSOptions{KeyID: "alias/x", Region: "eu-central-1"})
	if got := p.client.Options().Region; got != "eu-central-1" {
		t.Errorf("explicit region: client region %q", got)
	}

	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	arn := "arn:aws:kms:ap-southeast-2:111122223333:key/0b3d2c6e-1111-4222-8333-944455556666"
	p = openTestAWS(t, AWSOptions{KeyID: arn})
	if got := p.client.Options().Region; got != "ap-southeast-2" {
		t.Errorf("region from ARN: client region %q", got)
	}
	if _, err := OpenAWS(ctx, AWSOptions{KeyID: "alias/x"}); err == nil || !strings.Contains(err.Error(), "no region") {
		t.Errorf("no region anywhere: err = %v", err)
	}
}

func BenchmarkAWSLocalKMSGenerateDataKey(b *testing.B) {
	endpoint, keyARN := testenv.LocalKMS(b)
	p := openTestAWS(b, AWSOptions{KeyID: keyARN, Endpoint: endpoint})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.GenerateDataKey(ctx, streamCtx); err != nil {
			b.Fatal(err)
		}
	}
}
