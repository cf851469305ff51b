package mysql

import (
	"encoding/binary"
	"math"
	"strconv"
)

// Param is one decoded parameter of COM_STMT_EXECUTE, or one query
// attribute of COM_QUERY / COM_STMT_EXECUTE.
type Param struct {
	Type     FieldType
	Unsigned bool
	Name     string // query attribute name; empty for positional parameters
	Null     bool
	// Value is the value as text: integers and floats in decimal, dates as
	// YYYY-MM-DD[ HH:MM:SS[.ffffff]], times as [-]HH:MM:SS[.ffffff], and
	// strings, decimals, JSON, BIT and blobs as their bytes.
	Value     string
	LongData  bool // the value was sent with COM_STMT_SEND_LONG_DATA
	Truncated bool // long data exceeded the session's limit and was cut
}

// ChangeUser is the body of COM_CHANGE_USER.
type ChangeUser struct {
	User         string
	AuthResponse []byte
	Database     string
	Charset      uint16
	AuthPlugin   string
	Attrs        map[string]string
}

// Command is a decoded client command. Only the fields of its Code are set.
// []byte fields alias the payload.
type Command struct {
	Code CommandCode
	// Query is the SQL text of COM_QUERY and COM_STMT_PREPARE.
	Query []byte
	// Attrs are the query attributes of COM_QUERY, and the parameters of
	// COM_STMT_EXECUTE beyond the statement's own.
	Attrs []Param
	// Schema is the argument of COM_INIT_DB, COM_CREATE_DB, COM_DROP_DB.
	Schema []byte
	// StmtID identifies the statement of COM_STMT_*.
	StmtID uint32
	// Flags of COM_STMT_EXECUTE: cursor type (CursorType*) and
	// ParameterCountAvailable.
	Flags      byte
	Iterations uint32
	// NewParamsBound: COM_STMT_EXECUTE carried parameter types.
	NewParamsBound bool
	// ParamsDecoded: Params holds the statement's parameters. False for a
	// COM_STMT_EXECUTE parsed without its statement (ParseCommand).
	ParamsDecoded bool
	Params        []Param
	// ParamID and Data: COM_STMT_SEND_LONG_DATA.
	ParamID uint16
	Data    []byte
	// NumRows: COM_STMT_FETCH.
	NumRows uint32
	// Table and Wildcard: COM_FIELD_LIST.
	Table, Wildcard []byte
	// ConnectionID: COM_PROCESS_KILL.
	ConnectionID uint32
	// Option: COM_SET_OPTION (0 multi-statements on, 1 off); COM_REFRESH and
	// COM_SHUTDOWN sub-command.
	Option     uint16
	ChangeUser *ChangeUser
	// Stmt is the prepared statement a COM_STMT_* command refers to, when
	// the Session knows it.
	Stmt *Stmt
}

// Cursor reports whether a COM_STMT_EXECUTE asks for a cursor.
func (c *Command) Cursor() bool { return c.Flags&cursorMask != 0 }

// ParseCommand decodes a command packet. caps are the capabilities agreed
// for the session (they decide query attributes and COM_CHANGE_USER's
// layout). COM_STMT_EXECUTE parameters need the statement: this decodes only
// its header; use ParseStmtExecute or Session.ClientCommand for the rest.
func ParseCommand(payload []byte, caps Capability) (Command, error) {
	var c Command
	if len(payload) == 0 {
		return c, errEmptyCommand
	}
	c.Code = CommandCode(payload[0])
	d := decoder{b: payload, off: 1, what: c.Code.String()}
	var err error
	switch c.Code {
	case ComQuery:
		if caps&ClientQueryAttributes != 0 {
			if c.Attrs, err = parseQueryAttrs(&d); err != nil {
				return c, err
			}
		}
		c.Query = d.rest()
	case ComStmtPrepare:
		c.Query = d.rest()
	case ComInitDB, ComCreateDB, ComDropDB:
		c.Schema = d.rest()
	case ComFieldList:
		if c.Table, err = d.nulString("table"); err != nil {
			c.Table, err = d.rest(), nil // some clients omit the NUL
		}
		c.Wildcard = d.rest()
	case ComProcessKill:
		c.ConnectionID, err = d.u32("connection id")
	case ComSetOption:
		c.Option, err = d.u16("option")
	case ComRefresh:
		var o byte
		o, err = d.u8("sub-command")
		c.Option = uint16(o)
	case ComShutdown:
		if d.left() > 0 {
			o, _ := d.u8("shutdown type")
			c.Option = uint16(o)
		}
	case ComStmtExecute:
		err = parseExecuteHeader(&d, &c)
	case ComStmtSendLongData:
		if c.StmtID, err = d.u32("statement id"); err != nil {
			return c, err
		}
		if c.ParamID, err = d.u16("parameter id"); err != nil {
			return c, err
		}
		c.Data = d.rest()
	case ComStmtClose, ComStmtReset:
		c.StmtID, err = d.u32("statement id")
	case ComStmtFetch:
		if c.StmtID, err = d.u32("statement id"); err != nil {
			return c, err
		}
		c.NumRows, err = d.u32("number of rows")
	case ComStmtBulkExecute:
		c.StmtID, err = d.u32("statement id")
	case ComChangeUser:
		c.ChangeUser, err = parseChangeUser(&d, caps)
	}
	return c, err
}

var errEmptyCommand = &emptyCommandError{}

type emptyCommandError struct{}

func (*emptyCommandError) Error() string {
	return "mysql: command: empty packet: " + ErrMalformed.Error()
}
func (*emptyCommandError) Unwrap() error { return ErrMalformed }

func parseExecuteHeader(d *decoder, c *Command) error {
	var err error
	if c.StmtID, err = d.u32("statement id"); err != nil {
		return err
	}
	if c.Flags, err = d.u8("flags"); err != nil {
		return err
	}
	c.Iterations, err = d.u32("iteration count")
	return err
}

func parseChangeUser(d *decoder, caps Capability) (*ChangeUser, error) {
	cu := &ChangeUser{}
	user, err := d.nulString("user")
	if err != nil {
		return nil, err
	}
	cu.User = string(user)
	var auth []byte
	if caps&ClientSecureConnection != 0 {
		var n byte
		if n, err = d.u8("auth response length"); err == nil {
			auth, err = d.bytes(uint64(n), "auth response")
		}
	} else {
		auth, err = d.nulString("auth response")
	}
	if err != nil {
		return nil, err
	}
	cu.AuthResponse = append([]byte(nil), auth...)
	if d.left() == 0 {
		return cu, nil
	}
	db, err := d.nulString("database")
	if err != nil {
		return nil, err
	}
	cu.Database = string(db)
	if d.left() == 0 {
		return cu, nil
	}
	if cu.Charset, err = d.u16("character set"); err != nil {
		return nil, err
	}
	if caps&ClientPluginAuth != 0 && d.left() > 0 {
		name, err := d.nulString("auth plugin name")
		if err != nil {
			return nil, err
		}
		cu.AuthPlugin = string(name)
	}
	if caps&ClientConnectAttrs != 0 && d.left() > 0 {
		if cu.Attrs, err = parseAttrs(d); err != nil {
			return nil, err
		}
	}
	return cu, nil
}

// parseQueryAttrs decodes the query attributes that precede the query text
// of COM_QUERY under CLIENT_QUERY_ATTRIBUTES.
func parseQueryAttrs(d *decoder) ([]Param, error) {
	n, err := d.lenencInt("parameter count")
	if err != nil {
		return nil, err
	}
	if _, err := d.lenencInt("parameter set count"); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	if n > uint64(d.left()) { // each attribute takes at least 2 type bytes
		return nil, d.malformed("parameter count %d exceeds the packet", n)
	}
	nullmap, err := d.bytes((n+7)/8, "null bitmap")
	if err != nil {
		return nil, err
	}
	bound, err := d.u8("new params bind flag")
	if err != nil {
		return nil, err
	}
	if bound != 1 {
		return nil, d.malformed("query attributes without types (new params bind flag %d)", bound)
	}
	attrs := make([]Param, n)
	for i := range attrs {
		t, err := d.u16("parameter type")
		if err != nil {
			return nil, err
		}
		attrs[i].Type, attrs[i].Unsigned = FieldType(t), t&0x8000 != 0
		name, err := d.lenencBytes("parameter name")
		if err != nil {
			return nil, err
		}
		attrs[i].Name = string(name)
	}
	for i := range attrs {
		if nullmap[i/8]&(1<<(i%8)) != 0 {
			attrs[i].Null = true
			continue
		}
		if err := decodeBinaryValue(d, &attrs[i]); err != nil {
			return nil, err
		}
	}
	return attrs, nil
}

// Stmt is what a session remembers about a prepared statement.
type Stmt struct {
	ID         uint32
	Query      string
	NumParams  uint16
	NumColumns uint16
	// ParamTypes are the types bound by the last COM_STMT_EXECUTE that sent
	// them (type | unsigned flag << 8), nil before the first.
	ParamTypes []uint16
	// longData holds COM_STMT_SEND_LONG_DATA chunks per parameter until the
	// next execute or reset.
	longData map[uint16]*longValue
}

type longValue struct {
	data      []byte
	truncated bool
}

// ParseStmtExecute decodes COM_STMT_EXECUTE with its parameters. The
// statement supplies the parameter count and the types bound by an earlier
// execute (types are sent only when the new-params-bound flag is 1); when the
// packet carries types, they are stored into st. Parameters whose value was
// sent with COM_STMT_SEND_LONG_DATA take it from st.
func ParseStmtExecute(payload []byte, caps Capability, st *Stmt) (Command, error) {
	var c Command
	if len(payload) == 0 || CommandCode(payload[0]) != ComStmtExecute {
		return c, (&decoder{b: payload, what: "COM_STMT_EXECUTE"}).malformed("not a COM_STMT_EXECUTE packet")
	}
	c.Code = ComStmtExecute
	d := decoder{b: payload, off: 1, what: "COM_STMT_EXECUTE"}
	if err := parseExecuteHeader(&d, &c); err != nil {
		return c, err
	}
	c.Stmt = st
	numParams := uint64(st.NumParams)
	total := numParams
	qa := caps&ClientQueryAttributes != 0
	if numParams == 0 && !(qa && c.Flags&ParameterCountAvailable != 0) {
		c.ParamsDecoded = true
		return c, nil
	}
	if qa {
		n, err := d.lenencInt("parameter count")
		if err != nil {
			return c, err
		}
		if n < numParams {
			return c, d.malformed("parameter count %d < %d parameters of statement %d", n, numParams, st.ID)
		}
		total = n
	}
	if total == 0 {
		c.ParamsDecoded = true
		return c, nil
	}
	if total > uint64(len(payload)) { // a parameter takes at least one bitmap bit and two type bytes
		return c, d.malformed("parameter count %d exceeds the packet", total)
	}
	nullmap, err := d.bytes((total+7)/8, "null bitmap")
	if err != nil {
		return c, err
	}
	bound, err := d.u8("new params bound flag")
	if err != nil {
		return c, err
	}
	params := make([]Param, total)
	if bound == 1 {
		c.NewParamsBound = true
		if cap(st.ParamTypes) >= int(total) {
			st.ParamTypes = st.ParamTypes[:total]
		} else {
			st.ParamTypes = make([]uint16, total)
		}
		for i := range params {
			t, err := d.u16("parameter type")
			if err != nil {
				return c, err
			}
			st.ParamTypes[i] = t
			if qa {
				name, err := d.lenencBytes("parameter name")
				if err != nil {
					return c, err
				}
				if len(name) > 0 {
					params[i].Name = string(name)
				}
			}
		}
	} else if len(st.ParamTypes) < int(total) {
		return c, d.malformed("statement %d: parameter types were never bound", st.ID)
	}
	for i := range params {
		t := st.ParamTypes[i]
		p := &params[i]
		p.Type, p.Unsigned = FieldType(t), t&0x8000 != 0
		if lv := st.longData[uint16(i)]; lv != nil && uint64(i) < numParams {
			p.LongData, p.Truncated = true, lv.truncated
			p.Value = string(lv.data)
			continue
		}
		if nullmap[i/8]&(1<<(i%8)) != 0 || p.Type == TypeNull {
			p.Null = true
			continue
		}
		if err := decodeBinaryValue(&d, p); err != nil {
			return c, err
		}
	}
	c.Params = params[:numParams:numParams]
	if total > numParams {
		c.Attrs = params[numParams:]
	}
	c.ParamsDecoded = true
	return c, nil
}

// decodeBinaryValue reads one value of the binary protocol and renders it.
func decodeBinaryValue(d *decoder, p *Param) error {
	var scratch [64]byte
	b := scratch[:0]
	switch p.Type {
	case TypeTiny:
		v, err := d.u8("TINY value")
		if err != nil {
			return err
		}
		if p.Unsigned {
			b = strconv.AppendUint(b, uint64(v), 10)
		} else {
			b = strconv.AppendInt(b, int64(int8(v)), 10)
		}
	case TypeShort, TypeYear:
		v, err := d.u16("SHORT value")
		if err != nil {
			return err
		}
		if p.Unsigned || p.Type == TypeYear {
			b = strconv.AppendUint(b, uint64(v), 10)
		} else {
			b = strconv.AppendInt(b, int64(int16(v)), 10)
		}
	case TypeLong, TypeInt24:
		v, err := d.u32("LONG value")
		if err != nil {
			return err
		}
		if p.Unsigned {
			b = strconv.AppendUint(b, uint64(v), 10)
		} else {
			b = strconv.AppendInt(b, int64(int32(v)), 10)
		}
	case TypeLongLong:
		v, err := d.u64("LONGLONG value")
		if err != nil {
			return err
		}
		if p.Unsigned {
			b = strconv.AppendUint(b, v, 10)
		} else {
			b = strconv.AppendInt(b, int64(v), 10)
		}
	case TypeFloat:
		v, err := d.u32("FLOAT value")
		if err != nil {
			return err
		}
		b = strconv.AppendFloat(b, float64(math.Float32frombits(v)), 'g', -1, 32)
	case TypeDouble:
		v, err := d.u64("DOUBLE value")
		if err != nil {
			return err
		}
		b = strconv.AppendFloat(b, math.Float64frombits(v), 'g', -1, 64)
	case TypeDate, TypeNewDate, TypeDateTime, TypeTimestamp, TypeDateTime2, TypeTimestamp2:
		n, err := d.u8("date length")
		if err != nil {
			return err
		}
		v, err := d.bytes(uint64(n), "date value")
		if err != nil {
			return err
		}
		if b, err = appendDateTime(b, v, p.Type == TypeDate || p.Type == TypeNewDate); err != nil {
			return d.malformed("%v", err)
		}
	case TypeTime, TypeTime2:
		n, err := d.u8("time length")
		if err != nil {
			return err
		}
		v, err := d.bytes(uint64(n), "time value")
		if err != nil {
			return err
		}
		if b, err = appendTime(b, v); err != nil {
			return d.malformed("%v", err)
		}
	case TypeNull:
		p.Null = true
		return nil
	case TypeDecimal, TypeNewDecimal, TypeVarchar, TypeBit, TypeJSON, TypeEnum, TypeSet,
		TypeTinyBlob, TypeMediumBlob, TypeLongBlob, TypeBlob, TypeVarString, TypeString,
		TypeGeometry, TypeVector, TypeBool, TypeInvalid:
		v, err := d.lenencBytes("string value")
		if err != nil {
			return err
		}
		p.Value = string(v)
		return nil
	default:
		return d.malformed("unknown parameter type 0x%02x", byte(p.Type))
	}
	p.Value = string(b)
	return nil
}

// appendDateTime renders a binary DATE/DATETIME/TIMESTAMP of 0, 4, 7, 11 or
// (MySQL 8 with a time zone) 13 bytes.
func appendDateTime(b, v []byte, dateOnly bool) ([]byte, error) {
	var year, month, day, hour, minute, second int
	var micro uint32
	switch len(v) {
	case 0:
	case 4, 7, 11, 13:
		year = int(binary.LittleEndian.Uint16(v))
		month, day = int(v[2]), int(v[3])
		if len(v) >= 7 {
			hour, minute, second = int(v[4]), int(v[5]), int(v[6])
		}
		if len(v) >= 11 {
			micro = binary.LittleEndian.Uint32(v[7:])
		}
	default:
		return b, errLength("date", len(v))
	}
	b = appendPad(b, year, 4)
	b = append(b, '-')
	b = appendPad(b, month, 2)
	b = append(b, '-')
	b = appendPad(b, day, 2)
	if dateOnly {
		return b, nil
	}
	b = append(b, ' ')
	b = appendPad(b, hour, 2)
	b = append(b, ':')
	b = appendPad(b, minute, 2)
	b = append(b, ':')
	b = appendPad(b, second, 2)
	if len(v) >= 11 {
		b = append(b, '.')
		b = appendPad(b, int(micro), 6)
	}
	if len(v) == 13 {
		tz := int(int16(binary.LittleEndian.Uint16(v[11:])))
		if tz < 0 {
			b = append(b, '-')
			tz = -tz
		} else {
			b = append(b, '+')
		}
		b = appendPad(b, tz/60, 2)
		b = append(b, ':')
		b = appendPad(b, tz%60, 2)
	}
	return b, nil
}

// appendTime renders a binary TIME of 0, 8 or 12 bytes.
func appendTime(b, v []byte) ([]byte, error) {
	if len(v) == 0 {
		return append(b, "00:00:00"...), nil
	}
	if len(v) != 8 && len(v) != 12 {
		return b, errLength("time", len(v))
	}
	if v[0] == 1 {
		b = append(b, '-')
	}
	days := uint64(binary.LittleEndian.Uint32(v[1:]))
	hours := days*24 + uint64(v[5])
	if hours < 10 {
		b = append(b, '0')
	}
	b = strconv.AppendUint(b, hours, 10)
	b = append(b, ':')
	b = appendPad(b, int(v[6]), 2)
	b = append(b, ':')
	b = appendPad(b, int(v[7]), 2)
	if len(v) == 12 {
		b = append(b, '.')
		b = appendPad(b, int(binary.LittleEndian.Uint32(v[8:])), 6)
	}
	return b, nil
}

func appendPad(b []byte, v, width int) []byte {
	var tmp [20]byte
	s := strconv.AppendInt(tmp[:0], int64(v), 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

type lengthError struct {
	what string
	n    int
}

func (e lengthError) Error() string {
	return "invalid " + e.what + " length " + strconv.Itoa(e.n)
}

func errLength(what string, n int) error { return lengthError{what, n} }
