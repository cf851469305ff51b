package kms

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// AWSOptions select an AWS KMS key and how to reach it.
type AWSOptions struct {
	// Region; when empty, the standard chain (AWS_REGION, profile) decides,
	// and failing that the region of an ARN KeyID.
	Region string
	// KeyID is a key id, an alias ("alias/name") or a key or alias ARN. It may
	// be empty for a decrypt-only consumer, as KMS ciphertexts name their key.
	KeyID string
	// Endpoint overrides the KMS endpoint URL: a VPC interface endpoint
	// ("https://vpce-...kms.us-east-1.vpce.amazonaws.com") or a local KMS server.
	Endpoint string
	// Profile selects a shared config profile; empty uses the default chain.
	Profile string
	// MaxAttempts bounds the SDK's own retries per call (0: SDK default, 3).
	// The stream lifecycle keeps its own retry window on top.
	MaxAttempts int
}

// AWS is a Provider backed by AWS KMS (or anything speaking its API).
type AWS struct {
	client *awskms.Client
	keyID  string
	name   string
}

// OpenAWS builds a KMS client from the standard credential chain. It does not
// call KMS: reachability is the caller's to check (and to classify with
// ClassifyError), since a stream must start, and report, even when KMS is down.
func OpenAWS(ctx context.Context, o AWSOptions) (*AWS, error) {
	var opts []func(*config.LoadOptions) error
	region := o.Region
	if region == "" {
		region = regionFromARN(o.KeyID)
	}
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	if o.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(o.Profile))
	}
	if o.MaxAttempts > 0 {
		opts = append(opts, config.WithRetryMaxAttempts(o.MaxAttempts))
	}
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("kms: aws: endpoint %q is not an http(s) URL (want e.g. https://%s)",
				o.Endpoint, strings.TrimPrefix(o.Endpoint, "//"))
		}
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("kms: aws: load config: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = region
	}
	if cfg.Region == "" {
		return nil, errors.New("kms: aws: no region: set the KMS region, AWS_REGION, or use a key ARN")
	}
	client := awskms.NewFromConfig(cfg, func(co *awskms.Options) {
		if o.Endpoint != "" {
			co.BaseEndpoint = aws.String(o.Endpoint)
		}
	})
	name := "aws:" + o.KeyID
	if o.KeyID == "" {
		name = "aws:(any key)"
	}
	if o.Endpoint != "" {
		name += "@" + o.Endpoint
	}
	return &AWS{client: client, keyID: o.KeyID, name: name}, nil
}

// regionFromARN returns the region of "arn:aws:kms:REGION:ACCOUNT:key/..." or "".
func regionFromARN(s string) string {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) == 6 && parts[0] == "arn" && parts[2] == "kms" {
		return parts[3]
	}
	return ""
}

// Name implements Provider: "aws:<key>" plus "@<endpoint>" when overridden.
func (a *AWS) Name() string { return a.name }

// GenerateDataKey implements Provider with KeySpec AES_256. The returned
// KeyID is the key ARN KMS reports, whatever form KeyID was configured in.
func (a *AWS) GenerateDataKey(ctx context.Context, encCtx map[string]string) (DataKey, error) {
	if a.keyID == "" {
		return DataKey{}, fmt.Errorf("kms: %s: generate data key: no key id configured", a.name)
	}
	out, err := a.client.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{
		KeyId:             aws.String(a.keyID),
		KeySpec:           types.DataKeySpecAes256,
		EncryptionContext: encCtx,
	})
	if err != nil {
		return DataKey{}, fmt.Errorf("kms: %s: generate data key: %w", a.name, err)
	}
	if len(out.Plaintext) != DataKeySize || len(out.CiphertextBlob) == 0 {
		zero(out.Plaintext)
		return DataKey{}, fmt.Errorf("kms: %s: generate data key: got a %d-byte key, want %d",
			a.name, len(out.Plaintext), DataKeySize)
	}
	return DataKey{Plaintext: out.Plaintext, Ciphertext: out.CiphertextBlob, KeyID: aws.ToString(out.KeyId)}, nil
}

// Decrypt implements Provider. It names the configured key, so KMS refuses a
// ciphertext wrapped by any other key instead of silently using it.
func (a *AWS) Decrypt(ctx context.Context, ciphertext []byte, encCtx map[string]string) ([]byte, error) {
	in := &awskms.DecryptInput{CiphertextBlob: ciphertext, EncryptionContext: encCtx}
	if a.keyID != "" {
		in.KeyId = aws.String(a.keyID)
	}
	out, err := a.client.Decrypt(ctx, in)
	if err != nil {
		hint := ""
		if ClassifyError(err) == "invalid-ciphertext" {
			hint = " under encryption context " + formatContext(encCtx) +
				" (encryption context mismatch, a different key, or a corrupted blob)"
		}
		return nil, fmt.Errorf("kms: %s: decrypt%s: %w", a.name, hint, err)
	}
	return out.Plaintext, nil
}
