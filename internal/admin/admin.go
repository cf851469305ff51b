// Package admin is das serve's admin HTTP API: start, stop and describe the
// activity stream (shaped after RDS StartActivityStream, StopActivityStream
// and the ActivityStream* fields of DescribeDBClusters), read the event
// history, and the client the CLI verbs use.
//
// Every route but GET /healthz needs "Authorization: Bearer TOKEN". Request
// and response bodies of the stream operations use the RDS API's field
// names (Mode, KmsKeyId, ApplyImmediately, Status, ...), so what DAS users
// know from `aws rds` reads the same here.
package admin

import (
	"context"
	"errors"
	"time"
)

// DefaultListen is the admin API's default address: loopback only.
const DefaultListen = "127.0.0.1:9307"

// Stream states, as RDS names them.
const (
	StatusStarting = "starting"
	StatusStarted  = "started"
	StatusStopping = "stopping"
	StatusStopped  = "stopped"
)

// Controller is what the API drives; das serve implements it.
//
// A Controller answers a request that would change nothing (start a stream
// that is starting or started, stop one that is stopping or stopped) with
// the current status and an error wrapping ErrNoChange; the API turns that
// into 200 with a Note. A request that conflicts with the state (start in
// sync mode a stream started in async mode) wraps ErrConflict (409); a
// request the Controller finds invalid wraps ErrInvalid (400). Other errors
// are 500 and their text is shown to the caller, so it must hold no secret.
type Controller interface {
	StartActivityStream(ctx context.Context, r StartRequest) (StreamStatus, error)
	StopActivityStream(ctx context.Context, r StopRequest) (StreamStatus, error)
	DescribeActivityStreams(ctx context.Context) ([]StreamStatus, error)
}

var (
	ErrNoChange = errors.New("the stream is already in the requested state")
	ErrConflict = errors.New("the request conflicts with the stream's state")
	ErrInvalid  = errors.New("invalid request")
)

// Modes.
const (
	ModeAsync = "async"
	ModeSync  = "sync"
)

// StartRequest is POST /v1/activity-stream/start's body. Every field is
// optional: an empty Mode or KmsKeyId means the configured one.
type StartRequest struct {
	Mode             string `json:"Mode,omitempty"`     // async | sync
	KmsKeyId         string `json:"KmsKeyId,omitempty"` // key id, alias/NAME or ARN
	ApplyImmediately bool   `json:"ApplyImmediately,omitempty"`
}

// StopRequest is POST /v1/activity-stream/stop's body (optional).
type StopRequest struct {
	ApplyImmediately bool `json:"ApplyImmediately,omitempty"`
}

// Policies: what the proxy does while the stream is not recording.
const (
	PolicyFailOpen   = "fail_open"
	PolicyFailClosed = "fail_closed"
)

// StreamStatus describes one activity stream.
type StreamStatus struct {
	StreamId  string     `json:"StreamId"`
	Status    string     `json:"Status"` // starting | started | stopping | stopped
	Reason    string     `json:"Reason,omitempty"`
	Mode      string     `json:"Mode,omitempty"`
	KmsKeyId  string     `json:"KmsKeyId,omitempty"`
	Sink      string     `json:"Sink,omitempty"` // e.g. "local:/var/lib/das/stream" or a Kinesis stream name "aws-rds-das-cluster-..."
	StartedAt *time.Time `json:"StartedAt,omitempty"`
	LastError string     `json:"LastError,omitempty"`
	Policy    string     `json:"Policy,omitempty"` // fail_open | fail_closed
	// AutoRestart: the stream starts again by itself when KMS answers after
	// stopping with kms-unreachable (beyond DAS, which needs a manual start).
	AutoRestart bool              `json:"AutoRestart"`
	Counters    map[string]uint64 `json:"Counters,omitempty"`
	// Note is set by the API on an idempotent answer: the request changed
	// nothing, and says why.
	Note string `json:"Note,omitempty"`
}

// DescribeResponse is GET /v1/activity-streams's body.
type DescribeResponse struct {
	ActivityStreams []StreamStatus `json:"ActivityStreams"`
}

// ErrorBody is every error response's body.
type ErrorBody struct {
	Error APIError `json:"Error"`
}

// APIError is an error answered by the API. Field names the request field
// at fault, when one is.
type APIError struct {
	Status  int    `json:"-"`
	Code    string `json:"Code"`
	Message string `json:"Message"`
	Field   string `json:"Field,omitempty"`
}

func (e *APIError) Error() string {
	if e.Field != "" {
		return e.Code + ": " + e.Field + ": " + e.Message
	}
	return e.Code + ": " + e.Message
}

// Error codes, after the RDS API's where one fits.
const (
	CodeNotAuthorized         = "NotAuthorized"
	CodeMalformedInput        = "MalformedInput"
	CodeUnknownParameter      = "UnknownParameter"
	CodeInvalidParameterValue = "InvalidParameterValue"
	CodeInvalidState          = "InvalidActivityStreamStateFault"
	CodeNotFound              = "NotFound"
	CodeInternalFailure       = "InternalFailure"
)
