package kms

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"

	smithy "github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Error classes returned by ClassifyError. The network classes come first in
// the order a connection is made, so an operator reads them as the step that
// failed: name lookup, TCP connect, TLS, then the KMS API itself.
const (
	ClassDNS               = "dns"
	ClassConnect           = "connect"
	ClassTLS               = "tls"
	ClassThrottled         = "throttled"
	ClassHTTPStatus        = "http-status"
	ClassAccessDenied      = "access-denied"
	ClassKeyDisabled       = "key-disabled"
	ClassKeyNotFound       = "key-not-found"
	ClassInvalidCiphertext = "invalid-ciphertext"
	ClassOther             = "other"
)

// apiClasses maps KMS (and AWS auth) error codes to classes.
var apiClasses = map[string]string{
	"AccessDeniedException":       ClassAccessDenied,
	"UnrecognizedClientException": ClassAccessDenied, // unknown access key
	"InvalidSignatureException":   ClassAccessDenied,
	"ExpiredTokenException":       ClassAccessDenied,
	"IncompleteSignature":         ClassAccessDenied,
	"DisabledException":           ClassKeyDisabled,
	"KMSInvalidStateException":    ClassKeyDisabled, // pending deletion or import
	"KeyUnavailableException":     ClassKeyDisabled,
	"NotFoundException":           ClassKeyNotFound,
	"ThrottlingException":         ClassThrottled,
	"LimitExceededException":      ClassThrottled, // KMS's request-rate quota
	"RequestLimitExceeded":        ClassThrottled,
	"TooManyRequestsException":    ClassThrottled,
	"InvalidCiphertextException":  ClassInvalidCiphertext,
	"IncorrectKeyException":       ClassInvalidCiphertext, // wrapped by another key
}

// ClassifyError names the step at which a KMS call failed, for the stream's
// reachability watch and its events: one of the Class* constants. Local
// provider errors are classified too (wrong key or context: invalid-ciphertext).
func ClassifyError(err error) string {
	if err == nil {
		return ""
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return ClassDNS
	}
	if isTLSError(err) {
		return ClassTLS
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		if opErr.Op == "remote error" { // crypto/tls reports a peer's alert this way
			return ClassTLS
		}
		return ClassConnect
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		if c, ok := apiClasses[apiErr.ErrorCode()]; ok {
			return c
		}
	}
	var respErr *smithyhttp.ResponseError
	if errors.As(err, &respErr) {
		switch respErr.HTTPStatusCode() {
		case 429:
			return ClassThrottled
		case 403:
			return ClassAccessDenied
		}
		return ClassHTTPStatus
	}
	if errors.Is(err, ErrWrongMasterKey) || errors.Is(err, ErrContextMismatch) ||
		errors.Is(err, ErrAuthFailed) || errors.Is(err, ErrMalformedBlob) {
		return ClassInvalidCiphertext
	}
	return ClassOther
}

func isTLSError(err error) bool {
	var (
		recErr     tls.RecordHeaderError
		alertErr   tls.AlertError
		verifyErr  *tls.CertificateVerificationError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
		echErr     *tls.ECHRejectionError
	)
	return errors.As(err, &recErr) || errors.As(err, &alertErr) || errors.As(err, &verifyErr) ||
		errors.As(err, &unknownCA) || errors.As(err, &hostErr) || errors.As(err, &invalidErr) ||
		errors.As(err, &echErr)
}
