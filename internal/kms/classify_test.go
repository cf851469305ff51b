package kms

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	smithy "github.com/aws/smithy-go"
)

// Shapes the SDK produces that the loopback tests cannot provoke without
// leaving loopback (DNS) or that need a misbehaving TLS peer.
func TestClassifyError(t *testing.T) {
	wrap := func(err error) error {
		// As the SDK nests it: retry wrapper, url.Error, then the cause.
		return fmt.Errorf("kms: aws:alias/x: generate data key: %w",
			&retry.MaxAttemptsError{Attempt: 3, Err: &url.Error{Op: "Post", URL: "https://kms", Err: err}})
	}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"dns", wrap(&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "kms.example", IsNotFound: true}}), ClassDNS},
		{"refused", wrap(&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}), ClassConnect},
		{"peer alert", wrap(&net.OpError{Op: "remote error", Err: errors.New("tls: handshake failure")}), ClassTLS},
		{"not tls", wrap(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), ClassTLS},
		{"unknown ca", wrap(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), ClassTLS},
		{"hostname", wrap(x509.HostnameError{Host: "kms.example"}), ClassTLS},
		{"api throttled", wrap(&smithy.GenericAPIError{Code: "ThrottlingException"}), ClassThrottled},
		{"api incorrect key", wrap(&smithy.GenericAPIError{Code: "IncorrectKeyException"}), ClassInvalidCiphertext},
		{"api unknown code", wrap(&smithy.GenericAPIError{Code: "Whatever"}), ClassOther},
		{"local wrong key", fmt.Errorf("x: %w", ErrWrongMasterKey), ClassInvalidCiphertext},
		{"canceled", wrap(context.Canceled), ClassOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ClassifyError(tc.err); got != tc.want {
				t.Errorf("ClassifyError(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}
