package admin

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"unicode"

	"github.com/das-mysql/das/internal/events"
)

// ServerOptions configure NewServer.
type ServerOptions struct {
	Token      string // required: the bearer token (see LoadOrCreateToken)
	Controller Controller
	Events     *events.Bus  // serves GET /v1/events; nil: an empty history
	Metrics    http.Handler // serves GET /metrics (behind the token); nil: 404
	Logger     *slog.Logger
}

// maxBody bounds a request body; the largest real one is a few hundred bytes.
const maxBody = 64 << 10

// EventsResponse is GET /v1/events's body. Events use the webhook format
// (docs/EVENTS.md). Truncated says the history no longer holds some events
// after the requested seq.
type EventsResponse struct {
	Events    []events.Event `json:"events"`
	LastSeq   uint64         `json:"last_seq"`
	Truncated bool           `json:"truncated,omitempty"`
}

type server struct {
	tokenSum [sha256.Size]byte
	ctl      Controller
	ev       *events.Bus
	log      *slog.Logger
	mux      *http.ServeMux
}

// NewServer returns the admin API's handler:
//
//	GET  /healthz                    no token; 200 "ok"
//	POST /v1/activity-stream/start   StartRequest  -> StreamStatus
//	POST /v1/activity-stream/stop    StopRequest   -> StreamStatus
//	GET  /v1/activity-streams                      -> DescribeResponse
//	GET  /v1/events?since=SEQ                      -> EventsResponse (also at /events)
//	GET  /metrics                    the Metrics handler
func NewServer(o ServerOptions) (http.Handler, error) {
	if o.Token == "" {
		return nil, errors.New("admin: no token: refusing to serve an API anyone could call")
	}
	if o.Controller == nil {
		return nil, errors.New("admin: no controller")
	}
	s := &server{tokenSum: sha256.Sum256([]byte(o.Token)), ctl: o.Controller, ev: o.Events, log: o.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	m := http.NewServeMux()
	m.HandleFunc("POST /v1/activity-stream/start", s.start)
	m.HandleFunc("POST /v1/activity-stream/stop", s.stop)
	m.HandleFunc("GET /v1/activity-streams", s.describe)
	m.HandleFunc("GET /v1/events", s.events)
	m.HandleFunc("GET /events", s.events)
	if o.Metrics != nil {
		m.Handle("GET /metrics", o.Metrics)
	}
	s.mux = m
	return s, nil
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
		return
	}
	if !s.authorized(w, r) {
		return
	}
	s.mux.ServeHTTP(w, r)
}

// authorized checks the bearer token; on failure it answers 401 and the
// request goes no further, so nothing changes.
func (s *server) authorized(w http.ResponseWriter, r *http.Request) bool {
	h := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(h) > len(prefix) && strings.EqualFold(h[:len(prefix)], prefix) {
		// Compare digests so that neither the token's bytes nor its length
		// show in the time taken.
		sum := sha256.Sum256([]byte(strings.TrimSpace(h[len(prefix):])))
		if subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) == 1 {
			return true
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="das-admin", error="invalid_token"`)
		s.log.Warn("admin: bad token", slog.String("remote", r.RemoteAddr), slog.String("method", r.Method), slog.String("path", r.URL.Path))
		writeError(w, &APIError{Status: http.StatusUnauthorized, Code: CodeNotAuthorized, Message: "the bearer token is not this das's admin token (see --admin-token-file or DAS_ADMIN_TOKEN)"})
		return false
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="das-admin"`)
	s.log.Warn("admin: no token", slog.String("remote", r.RemoteAddr), slog.String("method", r.Method), slog.String("path", r.URL.Path))
	writeError(w, &APIError{Status: http.StatusUnauthorized, Code: CodeNotAuthorized, Message: "missing \"Authorization: Bearer TOKEN\" (the token is in <data-dir>/admin.token, --admin-token-file or DAS_ADMIN_TOKEN)"})
	return false
}

func (s *server) start(w http.ResponseWriter, r *http.Request) {
	var req StartRequest
	if !decode(w, r, &req) {
		return
	}
	switch req.Mode {
	case "", ModeAsync, ModeSync:
	default:
		writeError(w, &APIError{Status: 400, Code: CodeInvalidParameterValue, Field: "Mode", Message: fmt.Sprintf("%q is not async or sync", req.Mode)})
		return
	}
	if err := checkKeyID(req.KmsKeyId); err != nil {
		writeError(w, &APIError{Status: 400, Code: CodeInvalidParameterValue, Field: "KmsKeyId", Message: err.Error()})
		return
	}
	st, err := s.ctl.StartActivityStream(r.Context(), req)
	s.log.Info("admin: start-activity-stream", slog.String("remote", r.RemoteAddr), slog.String("mode", req.Mode),
		slog.String("kms_key_id", req.KmsKeyId), slog.Bool("apply_immediately", req.ApplyImmediately), slog.String("status", st.Status), errAttr(err))
	s.answer(w, st, err, "start")
}

func (s *server) stop(w http.ResponseWriter, r *http.Request) {
	var req StopRequest
	if !decode(w, r, &req) {
		return
	}
	st, err := s.ctl.StopActivityStream(r.Context(), req)
	s.log.Info("admin: stop-activity-stream", slog.String("remote", r.RemoteAddr),
		slog.Bool("apply_immediately", req.ApplyImmediately), slog.String("status", st.Status), errAttr(err))
	s.answer(w, st, err, "stop")
}

func (s *server) answer(w http.ResponseWriter, st StreamStatus, err error, verb string) {
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, st)
	case errors.Is(err, ErrNoChange):
		// RDS answers InvalidDBClusterStateFault here; das answers what the
		// caller wanted to know: the stream is in that state, nothing changed.
		if st.Note == "" {
			st.Note = fmt.Sprintf("The stream is already %s; nothing changed.", st.Status)
		}
		writeJSON(w, http.StatusOK, st)
	case errors.Is(err, ErrConflict):
		writeError(w, &APIError{Status: http.StatusConflict, Code: CodeInvalidState, Message: err.Error()})
	case errors.Is(err, ErrInvalid):
		writeError(w, &APIError{Status: http.StatusBadRequest, Code: CodeInvalidParameterValue, Message: err.Error()})
	default:
		writeError(w, &APIError{Status: http.StatusInternalServerError, Code: CodeInternalFailure, Message: verb + ": " + err.Error()})
	}
}

func (s *server) describe(w http.ResponseWriter, r *http.Request) {
	list, err := s.ctl.DescribeActivityStreams(r.Context())
	if err != nil {
		writeError(w, &APIError{Status: http.StatusInternalServerError, Code: CodeInternalFailure, Message: "describe: " + err.Error()})
		return
	}
	if list == nil {
		list = []StreamStatus{}
	}
	writeJSON(w, http.StatusOK, DescribeResponse{ActivityStreams: list})
}

func (s *server) events(w http.ResponseWriter, r *http.Request) {
	var since uint64
	if v := r.URL.Query().Get("since"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, &APIError{Status: 400, Code: CodeInvalidParameterValue, Field: "since", Message: fmt.Sprintf("%q is not an event seq (a whole number, 0 for all)", v)})
			return
		}
		since = n
	}
	resp := EventsResponse{Events: []events.Event{}}
	if s.ev != nil {
		if evs := s.ev.Since(since); len(evs) > 0 {
			resp.Events = evs
			resp.Truncated = evs[0].Seq > since+1
		}
		resp.LastSeq = s.ev.LastSeq()
	}
	writeJSON(w, http.StatusOK, resp)
}

// decode reads a JSON object into v; an empty body leaves v zero. On error
// it answers 400 naming the field at fault.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, &APIError{Status: http.StatusRequestEntityTooLarge, Code: CodeMalformedInput, Message: fmt.Sprintf("body over %d bytes", maxBody)})
		return false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return true
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		writeError(w, &APIError{Status: http.StatusUnsupportedMediaType, Code: CodeMalformedInput, Message: fmt.Sprintf("Content-Type %q: send application/json", ct)})
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("data after the JSON object")
	}
	if err == nil {
		return true
	}
	e := &APIError{Status: http.StatusBadRequest, Code: CodeMalformedInput, Message: "body is not a JSON object: " + err.Error()}
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		e.Code, e.Field = CodeInvalidParameterValue, te.Field
		e.Message = fmt.Sprintf("a JSON %s where a %s belongs", te.Value, jsonKind(te.Type.Kind().String()))
		if te.Field == "" { // the body itself is not an object
			e.Code, e.Message = CodeMalformedInput, fmt.Sprintf("body is a JSON %s; send an object", te.Value)
		}
	case errors.As(err, &se):
		e.Message = fmt.Sprintf("body is not valid JSON at byte %d: %v", se.Offset, se)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		e.Code, e.Field, e.Message = CodeUnknownParameter, name, "not a parameter of this operation"+knownFields(v)
	}
	writeError(w, e)
	return false
}

func jsonKind(k string) string {
	switch k {
	case "bool":
		return "boolean"
	case "string":
		return "string"
	}
	return k
}

func knownFields(v any) string {
	switch v.(type) {
	case *StartRequest:
		return " (parameters: Mode, KmsKeyId, ApplyImmediately)"
	case *StopRequest:
		return " (parameters: ApplyImmediately)"
	}
	return ""
}

// checkKeyID accepts what KMS accepts as a key id (id, ARN, alias) in shape
// only; whether the key exists is for the stream's start to find out.
func checkKeyID(id string) error {
	if len(id) > 2048 {
		return fmt.Errorf("%d characters; KMS key ids are at most 2048", len(id))
	}
	for _, r := range id {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("%q holds a space or control character; write a key id, alias/NAME or ARN", id)
		}
	}
	return nil
}

func errAttr(err error) slog.Attr {
	if err == nil {
		return slog.Attr{}
	}
	return slog.String("error", err.Error())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"Error":{"Code":"InternalFailure","Message":"encoding the answer failed"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, e *APIError) {
	writeJSON(w, e.Status, ErrorBody{Error: *e})
}
