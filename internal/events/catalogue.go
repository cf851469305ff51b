// Package events is das's counterpart of RDS Events: a catalogue of events
// with stable ids and fixed message texts, and a Bus that logs each event,
// keeps a bounded history for the admin API and POSTs it to webhooks.
//
// An id and its message never change once released: operators match on them
// (as they match RDS-EVENT-0179 "Database Activity Streams is started on your
// database cluster."). Details that vary (a reason, a failure class, counts)
// travel in the event's attributes, whose keys are listed per event.
package events

// Event ids. The numbering leaves room in each group; never reuse an id.
const (
	StreamStarting = "DAS-EVENT-0001"
	StreamStarted  = "DAS-EVENT-0002"
	StreamStopping = "DAS-EVENT-0003"
	StreamStopped  = "DAS-EVENT-0004"

	KMSUnreachable = "DAS-EVENT-0010"
	KMSReachable   = "DAS-EVENT-0011"

	LossWindowStart = "DAS-EVENT-0020"
	LossWindowEnd   = "DAS-EVENT-0021"

	SinkUnreachable = "DAS-EVENT-0030"
	SinkRecovered   = "DAS-EVENT-0031"

	FailClosedEngaged  = "DAS-EVENT-0040"
	FailClosedReleased = "DAS-EVENT-0041"

	DataKeyRotated = "DAS-EVENT-0050"

	AuditLogLost     = "DAS-EVENT-0060"
	AuditLineSkipped = "DAS-EVENT-0061"

	SpoolEngaged = "DAS-EVENT-0070"
	SpoolDrained = "DAS-EVENT-0071"
)

// Severity of an event; it picks the slog level the event is logged at.
type Severity string

const (
	Info    Severity = "info"
	Warning Severity = "warning"
	Error   Severity = "error"
)

// Def is one catalogue entry.
type Def struct {
	ID       string
	Category string // RDS-style category: notification, availability, failure, ...
	Severity Severity
	Message  string
	// Attrs lists the attribute keys the event carries, with their meaning.
	Attrs []Attr
	// Note says when the event is raised, for the docs.
	Note string
}

// Attr documents one attribute key.
type Attr struct{ Key, Doc string }

// Well-known attribute keys.
const (
	AttrReason     = "reason"
	AttrMode       = "mode"
	AttrKMSKeyID   = "kms_key_id"
	AttrSink       = "sink"
	AttrClass      = "class"
	AttrEndpoint   = "endpoint"
	AttrError      = "error"
	AttrSince      = "since"
	AttrDuration   = "duration"
	AttrMissed     = "missed"
	AttrQueued     = "queued"
	AttrPolicy     = "policy"
	AttrRefused    = "refused"
	AttrKeyAge     = "key_age"
	AttrKeyUses    = "key_uses"
	AttrFile       = "file"
	AttrLostBytes  = "lost_bytes"
	AttrOffset     = "offset"
	AttrSpooled    = "spooled"
	AttrSpoolBytes = "spool_bytes"
)

// Reasons a stream stops (AttrReason of StreamStopped).
const (
	ReasonRequested      = "requested"       // stop-activity-stream
	ReasonShutdown       = "shutdown"        // das serve is exiting
	ReasonKMSUnreachable = "kms-unreachable" // past --kms-retry-window
	ReasonStartFailed    = "start-failed"    // the stream never reached started
)

// KMS failure classes (AttrClass of KMSUnreachable); the same words as
// internal/kms's ClassifyError.
var KMSClasses = []string{"dns", "connect", "tls", "throttled", "http-status", "access-denied", "key-disabled", "key-not-found", "other"}

var catalogue = []Def{
	{ID: StreamStarting, Category: "notification", Severity: Info,
		Message: "Database Activity Stream is starting.",
		Attrs:   []Attr{{AttrMode, "async or sync"}, {AttrKMSKeyID, "the KMS key the stream seals under"}, {AttrSink, "where records go"}},
		Note:    "start-activity-stream was accepted, or das serve starts a configured stream."},
	{ID: StreamStarted, Category: "notification", Severity: Info,
		Message: "Database Activity Stream is started.",
		Attrs:   []Attr{{AttrMode, "async or sync"}, {AttrKMSKeyID, "the KMS key the stream seals under"}, {AttrSink, "where records go"}},
		Note:    "The first data key was obtained and the sink accepts records (like RDS-EVENT-0179)."},
	{ID: StreamStopping, Category: "notification", Severity: Info,
		Message: "Database Activity Stream is stopping.",
		Attrs:   []Attr{{AttrReason, "why: requested, shutdown, kms-unreachable, start-failed"}},
		Note:    "Queued records are being flushed."},
	{ID: StreamStopped, Category: "notification", Severity: Warning,
		Message: "Database Activity Stream is stopped.",
		Attrs:   []Attr{{AttrReason, "why: requested, shutdown, kms-unreachable, start-failed"}, {AttrError, "the last error, when the reason is a failure"}},
		Note:    "Like RDS-EVENT-0180. The proxy keeps relaying unless the policy is fail_closed."},

	{ID: KMSUnreachable, Category: "availability", Severity: Error,
		Message: "The activity stream cannot reach its KMS key.",
		Attrs:   []Attr{{AttrClass, "dns, connect, tls, throttled, http-status, access-denied, key-disabled, key-not-found or other"}, {AttrKMSKeyID, "the key"}, {AttrEndpoint, "the KMS endpoint URL"}, {AttrError, "the failure, without secrets"}},
		Note:    "A KMS call failed; retries continue within --kms-retry-window while cached data keys last (modelled on RDS-EVENT-0418)."},
	{ID: KMSReachable, Category: "availability", Severity: Info,
		Message: "The activity stream can reach its KMS key again.",
		Attrs:   []Attr{{AttrKMSKeyID, "the key"}, {AttrDuration, "how long KMS was unreachable"}},
		Note:    "The health probe got an answer after KMSUnreachable (modelled on RDS-EVENT-0420)."},

	{ID: LossWindowStart, Category: "failure", Severity: Error,
		Message: "Activity records may have been lost: the window starts.",
		Attrs:   []Attr{{AttrMode, "async or sync"}, {AttrReason, "queue-full, durability-timeout, kms-unreachable, sink-unreachable"}, {AttrQueued, "events queued, not yet durable, at the start"}},
		Note:    "Async: the queue overflowed, or a record could not be sealed or made durable. Sync: an event was not durable within sync_timeout and its session went on (the event stays queued and may still become durable), or sync events filled the queue (twice queue_events) and the next one was refused."},
	{ID: LossWindowEnd, Category: "failure", Severity: Warning,
		Message: "Activity records may have been lost: the window ends.",
		Attrs:   []Attr{{AttrSince, "when the window started (RFC 3339)"}, {AttrDuration, "the window's length"}, {AttrMissed, "events not recorded in the window"}},
		Note:    "No event was lost for 2 s and the sink takes records. missed counts events dropped or not durable in time during the window (like server_aurora_das_messages_missed)."},

	{ID: SinkUnreachable, Category: "availability", Severity: Error,
		Message: "The activity stream cannot write to its sink.",
		Attrs:   []Attr{{AttrSink, "the sink"}, {AttrError, "the failure"}},
		Note:    "No record was acknowledged by the sink for 5 s (a write or fsync failing, brokers unreachable); records wait in the bounded queue."},
	{ID: SinkRecovered, Category: "availability", Severity: Info,
		Message: "The activity stream can write to its sink again.",
		Attrs:   []Attr{{AttrSink, "the sink"}, {AttrDuration, "how long the sink was failing"}},
		Note:    "The first write after SinkUnreachable succeeded."},

	{ID: FailClosedEngaged, Category: "availability", Severity: Error,
		Message: "The activity stream is not recording; new database sessions are refused.",
		Attrs:   []Attr{{AttrPolicy, "fail_closed"}, {AttrReason, "why the stream is not recording"}},
		Note:    "Only with policy fail_closed, when the stream leaves started."},
	{ID: FailClosedReleased, Category: "availability", Severity: Info,
		Message: "The activity stream is recording again; new database sessions are accepted.",
		Attrs:   []Attr{{AttrPolicy, "fail_closed"}, {AttrRefused, "sessions refused while engaged"}, {AttrDuration, "how long sessions were refused"}},
		Note:    "The stream is started again."},

	{ID: DataKeyRotated, Category: "notification", Severity: Info,
		Message: "The activity stream's data key was rotated.",
		Attrs:   []Attr{{AttrKMSKeyID, "the KMS key of the new data key"}, {AttrKeyUses, "records sealed under the retired key"}, {AttrKeyAge, "the retired key's age"}},
		Note:    "A new data key was generated (data_key_max_uses or data_key_max_age). Never carries key material."},

	{ID: AuditLogLost, Category: "failure", Severity: Error,
		Message: "An audit log file was rotated away before it was read; its unread bytes are lost.",
		Attrs:   []Attr{{AttrFile, "the audit log file"}, {AttrLostBytes, "bytes never read"}},
		Note:    "Audit-log capture only (not the proxy)."},
	{ID: AuditLineSkipped, Category: "failure", Severity: Warning,
		Message: "An audit log line could not be parsed and was skipped.",
		Attrs:   []Attr{{AttrFile, "the audit log file"}, {AttrOffset, "the line's byte offset"}, {AttrError, "why it did not parse"}},
		Note:    "Audit-log capture only. The line's text is not included: it may hold secrets."},

	{ID: SpoolEngaged, Category: "availability", Severity: Warning,
		Message: "KMS is unreachable; activity is spooled locally until it answers again.",
		Attrs:   []Attr{{AttrKMSKeyID, "the key"}, {AttrClass, "the KMS failure class"}},
		Note:    "Only with spool_on_kms_outage: records are sealed under the last valid data key into a bounded local spool."},
	{ID: SpoolDrained, Category: "availability", Severity: Info,
		Message: "The local spool was drained into the sink.",
		Attrs:   []Attr{{AttrSpooled, "records drained"}, {AttrSpoolBytes, "bytes drained"}, {AttrDuration, "how long the spool was in use"}},
		Note:    "KMS answered again and every spooled record reached the sink, in order."},
}

var byID = func() map[string]*Def {
	m := make(map[string]*Def, len(catalogue))
	for i := range catalogue {
		m[catalogue[i].ID] = &catalogue[i]
	}
	return m
}()

// Catalogue returns every event definition, in id order.
func Catalogue() []Def {
	out := make([]Def, len(catalogue))
	copy(out, catalogue)
	return out
}

// Lookup returns the definition of id.
func Lookup(id string) (Def, bool) {
	d, ok := byID[id]
	if !ok {
		return Def{}, false
	}
	return *d, true
}
