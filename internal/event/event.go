package event

import (
	"time"
)

// Version is the DAS record version whose fields Event carries (1.2 adds
// endTime and transactionId, as on Aurora MySQL).
const Version = "1.2"

// PayloadType is the "type" of the decrypted payload object.
const PayloadType = "DatabaseActivityMonitoringRecord"

// Event types.
const (
	TypeRecord    = "record"
	TypeHeartbeat = "heartbeat"
)

// Classes: MAIN is the statement itself, AUX an object it touched.
const (
	ClassMain = "MAIN"
	ClassAux  = "AUX"
)

// Commands. MAIN events carry the first group, AUX events the second.
// Aurora spells the user change CHANGEUSER; MariaDB's server_audit writes
// CHANGE_USER, which readers of its files map to CommandChangeUser.
const (
	CommandConnect       = "CONNECT"
	CommandDisconnect    = "DISCONNECT"
	CommandFailedConnect = "FAILED_CONNECT"
	CommandChangeUser    = "CHANGEUSER"
	CommandQuery         = "QUERY"

	CommandRead   = "READ"
	CommandWrite  = "WRITE"
	CommandCreate = "CREATE"
	CommandAlter  = "ALTER"
	CommandRename = "RENAME"
	CommandDrop   = "DROP"
)

// Field values das fills by default.
const (
	DBProtocolMySQL    = "MySQL"
	ServerTypeMySQL    = "MySQL"
	DefaultServiceName = "das"
	NetProtocolTCP     = "TCP"
	NetProtocolSocket  = "SOCKET"
	ObjectTypeTable    = "TABLE"
)

// Event is one item of databaseActivityEventList in its Aurora MySQL form.
// Field comments give the JSON name where it is not the obvious one.
type Event struct {
	Class             string
	ClientApplication *string // null when nil, as on every Aurora MySQL record
	Command           string
	CommandText       string
	DatabaseName      string
	DBProtocol        string
	DBUserName        string
	EndTime           Time
	ErrorMessage      string
	ExitCode          string // a string on the wire: "0", an error code, or "" (AUX)
	LogTime           Time
	NetProtocol       string
	ObjectName        string
	ObjectType        string
	ParamList         []string // null when nil
	PID               int      // "pid"
	RemoteHost        string
	RemotePort        string // a string on the wire
	RowCount          int64
	ServerHost        string
	ServerType        string
	ServerVersion     string
	ServiceName       string
	SessionID         string // "sessionId", a string on the wire
	StartTime         Time
	StatementID       int64  // "statementId"
	SubstatementID    int    // "substatementId"
	TransactionID     string // "transactionId", a string on the wire
	Type              string // TypeRecord or TypeHeartbeat

	// Extra holds fields this model does not know (other producers, newer
	// DAS versions), so that a decode/encode round trip keeps them. Keys that
	// name a known field are ignored when encoding.
	Extra Fields
}

// New returns a MAIN record stamped now (logTime, startTime and endTime),
// with the defaults das writes on every event.
func New(now time.Time) Event {
	t := Time{now}
	return Event{
		Class:          ClassMain,
		DBProtocol:     DBProtocolMySQL,
		EndTime:        t,
		ExitCode:       "0",
		LogTime:        t,
		NetProtocol:    NetProtocolTCP,
		ObjectType:     ObjectTypeTable,
		ServerType:     ServerTypeMySQL,
		ServiceName:    DefaultServiceName,
		StartTime:      t,
		SubstatementID: 1,
		TransactionID:  "0",
		Type:           TypeRecord,
	}
}

// Heartbeat returns the event das puts on an idle stream so that consumers
// can tell "nothing happened" from "the stream is dead".
//
// AWS documents only that heartbeats are databaseActivityEventList items with
// "type":"heartbeat" and that consumers skip them; their other contents are
// undocumented and no public sample shows one. We therefore emit every field
// of a record (typed consumers such as AWS's Java sample parse it without
// special cases), with the three times set to now, the server identity filled
// in, and everything that describes a statement empty: class, command,
// commandText, objectType and exitCode are "", the ids 0. An empty class keeps
// heartbeats out of consumers that filter on MAIN/AUX without checking type.
func Heartbeat(now time.Time, serverHost, serverVersion, serviceName string) Event {
	t := Time{now}
	return Event{
		DBProtocol:    DBProtocolMySQL,
		EndTime:       t,
		LogTime:       t,
		NetProtocol:   NetProtocolTCP,
		ServerHost:    serverHost,
		ServerType:    ServerTypeMySQL,
		ServerVersion: serverVersion,
		ServiceName:   serviceName,
		StartTime:     t,
		TransactionID: "0",
		Type:          TypeHeartbeat,
	}
}

// IsHeartbeat reports whether e is a heartbeat, which consumers skip.
func (e *Event) IsHeartbeat() bool { return e.Type == TypeHeartbeat }

// Payload is the decrypted, decompressed content of one DAS record: the
// databaseActivityEvents object.
type Payload struct {
	Type       string  // PayloadType
	ClusterID  string  // "clusterId"
	InstanceID string  // "instanceId"
	Events     []Event // "databaseActivityEventList"; nil encodes as []

	// Extra holds unknown fields, kept across a round trip.
	Extra Fields
}
