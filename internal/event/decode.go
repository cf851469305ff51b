package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// UnmarshalJSON decodes one databaseActivityEventList item from any DAS
// producer. It resets e first. It is lenient about wire types, because
// producers differ (Aurora PostgreSQL sends exitCode as a number or null,
// Oracle sessionId as a number, AWS's own samples read everything as
// strings): string fields accept strings, numbers, booleans and null (""),
// number fields accept numbers, numeric strings, "" and null (0), times
// accept "" and null (zero). Unknown fields are kept in Extra.
func (e *Event) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("event: decode event: %w", err)
	}
	if m == nil {
		return errors.New("event: decode event: not an object")
	}
	*e = Event{}
	for k, v := range m {
		if err := e.setField(k, v); err != nil {
			return fmt.Errorf("event: decode event: field %q: %w", k, err)
		}
	}
	e.Extra.sort()
	return nil
}

func (e *Event) setField(k string, v json.RawMessage) error {
	var err error
	switch k {
	case "class":
		e.Class, err = looseString(v)
	case "clientApplication":
		if isNull(v) {
			e.ClientApplication = nil
			return nil
		}
		var s string
		s, err = looseString(v)
		e.ClientApplication = &s
	case "command":
		e.Command, err = looseString(v)
	case "commandText":
		e.CommandText, err = looseString(v)
	case "databaseName":
		e.DatabaseName, err = looseString(v)
	case "dbProtocol":
		e.DBProtocol, err = looseString(v)
	case "dbUserName":
		e.DBUserName, err = looseString(v)
	case "endTime":
		err = e.EndTime.UnmarshalJSON(v)
	case "errorMessage":
		e.ErrorMessage, err = looseString(v)
	case "exitCode":
		e.ExitCode, err = looseString(v)
	case "logTime":
		err = e.LogTime.UnmarshalJSON(v)
	case "netProtocol":
		e.NetProtocol, err = looseString(v)
	case "objectName":
		e.ObjectName, err = looseString(v)
	case "objectType":
		e.ObjectType, err = looseString(v)
	case "paramList":
		e.ParamList, err = looseList(v)
	case "pid":
		var n int64
		n, err = looseInt(v)
		e.PID = int(n)
	case "remoteHost":
		e.RemoteHost, err = looseString(v)
	case "remotePort":
		e.RemotePort, err = looseString(v)
	case "rowCount":
		e.RowCount, err = looseInt(v)
	case "serverHost":
		e.ServerHost, err = looseString(v)
	case "serverType":
		e.ServerType, err = looseString(v)
	case "serverVersion":
		e.ServerVersion, err = looseString(v)
	case "serviceName":
		e.ServiceName, err = looseString(v)
	case "sessionId":
		e.SessionID, err = looseString(v)
	case "startTime":
		err = e.StartTime.UnmarshalJSON(v)
	case "statementId":
		e.StatementID, err = looseInt(v)
	case "substatementId":
		var n int64
		n, err = looseInt(v)
		e.SubstatementID = int(n)
	case "transactionId":
		e.TransactionID, err = looseString(v)
	case "type":
		e.Type, err = looseString(v)
	default:
		e.Extra.set(k, v)
	}
	return err
}

// UnmarshalJSON decodes a databaseActivityEvents object. It resets p first
// (reusing the capacity of p.Events); unknown fields are kept in Extra.
func (p *Payload) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("event: decode payload: %w", err)
	}
	if m == nil {
		return errors.New("event: decode payload: not an object")
	}
	events := p.Events[:0]
	*p = Payload{}
	for k, v := range m {
		var err error
		switch k {
		case "type":
			p.Type, err = looseString(v)
		case "clusterId":
			p.ClusterID, err = looseString(v)
		case "instanceId":
			p.InstanceID, err = looseString(v)
		case "databaseActivityEventList":
			if isNull(v) {
				break
			}
			var list []json.RawMessage
			if err = json.Unmarshal(v, &list); err != nil {
				break
			}
			for i, raw := range list {
				var ev Event
				if err = ev.UnmarshalJSON(raw); err != nil {
					err = fmt.Errorf("item %d: %w", i, err)
					break
				}
				events = append(events, ev)
			}
			if len(events) > 0 {
				p.Events = events
			}
		default:
			p.Extra.set(k, v)
		}
		if err != nil {
			return fmt.Errorf("event: decode payload: field %q: %w", k, err)
		}
	}
	p.Extra.sort()
	return nil
}

var errType = errors.New("unexpected JSON type")

func isNull(v []byte) bool { return string(bytes.TrimSpace(v)) == "null" }

// looseString reads a JSON value into a string field: strings as they are,
// numbers and booleans as their JSON text, null as "".
func looseString(v []byte) (string, error) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "", errType
	}
	switch c := v[0]; {
	case c == '"':
		return decodeString(v)
	case c == 'n':
		return "", nil
	case c == 't' || c == 'f' || c == '-' || (c >= '0' && c <= '9'):
		return string(v), nil
	}
	return "", errType
}

// looseInt reads a JSON number, a string holding one, "" or null. Integral
// floats (2830.0, 2.83e3) are accepted; fractions and overflow are errors.
func looseInt(v []byte) (int64, error) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return 0, errType
	}
	var s string
	switch c := v[0]; {
	case c == 'n':
		return 0, nil
	case c == '"':
		var err error
		if s, err = decodeString(v); err != nil {
			return 0, err
		}
		s = strings.TrimSpace(s)
		if s == "" {
			return 0, nil
		}
	case c == '-' || (c >= '0' && c <= '9'):
		s = string(v)
	default:
		return 0, errType
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("not a number: %q", s)
	}
	if f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, fmt.Errorf("not an integer: %q", s)
	}
	return int64(f), nil
}

// looseList reads paramList: null is nil, an array gives one string per item
// (each read like a string field), any other scalar a one-item list.
func looseList(v []byte) ([]string, error) {
	v = bytes.TrimSpace(v)
	if isNull(v) {
		return nil, nil
	}
	if len(v) == 0 || v[0] != '[' {
		s, err := looseString(v)
		if err != nil {
			return nil, err
		}
		return []string{s}, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(v, &items); err != nil {
		return nil, err
	}
	out := make([]string, len(items))
	for i, it := range items {
		s, err := looseString(it)
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", i, err)
		}
		out[i] = s
	}
	return out, nil
}

// decodeString decodes a JSON string literal. Literals without escapes and
// with valid UTF-8 (nearly all) are sliced without going through
// encoding/json; the rest get its exact semantics (invalid UTF-8 -> U+FFFD).
func decodeString(v []byte) (string, error) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", errType
	}
	inner := v[1 : len(v)-1]
	if bytes.IndexByte(inner, '\\') < 0 && bytes.IndexByte(inner, '"') < 0 && utf8.Valid(inner) && !hasControl(inner) {
		return string(inner), nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", err
	}
	return s, nil
}

func hasControl(b []byte) bool {
	for _, c := range b {
		if c < 0x20 {
			return true
		}
	}
	return false
}
