package mysql

import "strconv"

// Capability holds the capability flags. The lower 32 bits are the MySQL
// flags; MariaDB's extended capabilities (sent in otherwise reserved bytes
// when CLIENT_MYSQL is clear) are kept in the upper 32 bits, as MariaDB does.
type Capability uint64

// Capability flags.
const (
	ClientLongPassword               Capability = 1 << 0 // also CLIENT_MYSQL: clear from MariaDB servers
	ClientFoundRows                  Capability = 1 << 1
	ClientLongFlag                   Capability = 1 << 2
	ClientConnectWithDB              Capability = 1 << 3
	ClientNoSchema                   Capability = 1 << 4
	ClientCompress                   Capability = 1 << 5
	ClientODBC                       Capability = 1 << 6
	ClientLocalFiles                 Capability = 1 << 7
	ClientIgnoreSpace                Capability = 1 << 8
	ClientProtocol41                 Capability = 1 << 9
	ClientInteractive                Capability = 1 << 10
	ClientSSL                        Capability = 1 << 11
	ClientIgnoreSigpipe              Capability = 1 << 12
	ClientTransactions               Capability = 1 << 13
	ClientReserved                   Capability = 1 << 14
	ClientSecureConnection           Capability = 1 << 15
	ClientMultiStatements            Capability = 1 << 16
	ClientMultiResults               Capability = 1 << 17
	ClientPSMultiResults             Capability = 1 << 18
	ClientPluginAuth                 Capability = 1 << 19
	ClientConnectAttrs               Capability = 1 << 20
	ClientPluginAuthLenencClientData Capability = 1 << 21
	ClientCanHandleExpiredPasswords  Capability = 1 << 22
	ClientSessionTrack               Capability = 1 << 23
	ClientDeprecateEOF               Capability = 1 << 24
	ClientOptionalResultsetMetadata  Capability = 1 << 25
	ClientZstdCompressionAlgorithm   Capability = 1 << 26
	ClientQueryAttributes            Capability = 1 << 27
	ClientMultiFactorAuthentication  Capability = 1 << 28
	ClientCapabilityExtension        Capability = 1 << 29
	ClientSSLVerifyServerCert        Capability = 1 << 30
	ClientRememberOptions            Capability = 1 << 31
	ClientMySQL                                 = ClientLongPassword
	MariaDBClientProgress            Capability = 1 << 32
	MariaDBClientComMulti            Capability = 1 << 33
	MariaDBClientStmtBulkOperations  Capability = 1 << 34
	MariaDBClientExtendedMetadata    Capability = 1 << 35
	MariaDBClientCacheMetadata       Capability = 1 << 36
	MariaDBClientBulkUnitResults     Capability = 1 << 37
)

// Has reports whether all flags in f are set.
func (c Capability) Has(f Capability) bool { return c&f == f }

// Server status flags (OK, EOF).
const (
	StatusInTrans            uint16 = 0x0001
	StatusAutocommit         uint16 = 0x0002
	StatusMoreResultsExists  uint16 = 0x0008
	StatusNoGoodIndexUsed    uint16 = 0x0010
	StatusNoIndexUsed        uint16 = 0x0020
	StatusCursorExists       uint16 = 0x0040
	StatusLastRowSent        uint16 = 0x0080
	StatusDBDropped          uint16 = 0x0100
	StatusNoBackslashEscapes uint16 = 0x0200
	StatusMetadataChanged    uint16 = 0x0400
	StatusQueryWasSlow       uint16 = 0x0800
	StatusPSOutParams        uint16 = 0x1000
	StatusInTransReadonly    uint16 = 0x2000
	StatusSessionStateChange uint16 = 0x4000
)

// CommandCode is the first byte of a command packet.
type CommandCode byte

// Command bytes.
const (
	ComSleep                           CommandCode = 0x00
	ComQuit                            CommandCode = 0x01
	ComInitDB                          CommandCode = 0x02
	ComQuery                           CommandCode = 0x03
	ComFieldList                       CommandCode = 0x04
	ComCreateDB                        CommandCode = 0x05
	ComDropDB                          CommandCode = 0x06
	ComRefresh                         CommandCode = 0x07
	ComShutdown                        CommandCode = 0x08
	ComStatistics                      CommandCode = 0x09
	ComProcessInfo                     CommandCode = 0x0a
	ComConnect                         CommandCode = 0x0b
	ComProcessKill                     CommandCode = 0x0c
	ComDebug                           CommandCode = 0x0d
	ComPing                            CommandCode = 0x0e
	ComTime                            CommandCode = 0x0f
	ComDelayedInsert                   CommandCode = 0x10
	ComChangeUser                      CommandCode = 0x11
	ComBinlogDump                      CommandCode = 0x12
	ComTableDump                       CommandCode = 0x13
	ComConnectOut                      CommandCode = 0x14
	ComRegisterSlave                   CommandCode = 0x15
	ComStmtPrepare                     CommandCode = 0x16
	ComStmtExecute                     CommandCode = 0x17
	ComStmtSendLongData                CommandCode = 0x18
	ComStmtClose                       CommandCode = 0x19
	ComStmtReset                       CommandCode = 0x1a
	ComSetOption                       CommandCode = 0x1b
	ComStmtFetch                       CommandCode = 0x1c
	ComDaemon                          CommandCode = 0x1d
	ComBinlogDumpGTID                  CommandCode = 0x1e
	ComResetConnection                 CommandCode = 0x1f
	ComClone                           CommandCode = 0x20
	ComSubscribeGroupReplicationStream CommandCode = 0x21
	ComStmtBulkExecute                 CommandCode = 0xfa // MariaDB
)

var commandNames = [...]string{
	"COM_SLEEP", "COM_QUIT", "COM_INIT_DB", "COM_QUERY", "COM_FIELD_LIST",
	"COM_CREATE_DB", "COM_DROP_DB", "COM_REFRESH", "COM_SHUTDOWN", "COM_STATISTICS",
	"COM_PROCESS_INFO", "COM_CONNECT", "COM_PROCESS_KILL", "COM_DEBUG", "COM_PING",
	"COM_TIME", "COM_DELAYED_INSERT", "COM_CHANGE_USER", "COM_BINLOG_DUMP", "COM_TABLE_DUMP",
	"COM_CONNECT_OUT", "COM_REGISTER_SLAVE", "COM_STMT_PREPARE", "COM_STMT_EXECUTE",
	"COM_STMT_SEND_LONG_DATA", "COM_STMT_CLOSE", "COM_STMT_RESET", "COM_SET_OPTION",
	"COM_STMT_FETCH", "COM_DAEMON", "COM_BINLOG_DUMP_GTID", "COM_RESET_CONNECTION",
	"COM_CLONE", "COM_SUBSCRIBE_GROUP_REPLICATION_STREAM",
}

func (c CommandCode) String() string {
	if int(c) < len(commandNames) {
		return commandNames[c]
	}
	if c == ComStmtBulkExecute {
		return "COM_STMT_BULK_EXECUTE"
	}
	return "COM_0x" + strconv.FormatUint(uint64(c), 16)
}

// FieldType is a MYSQL_TYPE_* column or parameter type.
type FieldType byte

// Field types.
const (
	TypeDecimal    FieldType = 0x00
	TypeTiny       FieldType = 0x01
	TypeShort      FieldType = 0x02
	TypeLong       FieldType = 0x03
	TypeFloat      FieldType = 0x04
	TypeDouble     FieldType = 0x05
	TypeNull       FieldType = 0x06
	TypeTimestamp  FieldType = 0x07
	TypeLongLong   FieldType = 0x08
	TypeInt24      FieldType = 0x09
	TypeDate       FieldType = 0x0a
	TypeTime       FieldType = 0x0b
	TypeDateTime   FieldType = 0x0c
	TypeYear       FieldType = 0x0d
	TypeNewDate    FieldType = 0x0e
	TypeVarchar    FieldType = 0x0f
	TypeBit        FieldType = 0x10
	TypeTimestamp2 FieldType = 0x11
	TypeDateTime2  FieldType = 0x12
	TypeTime2      FieldType = 0x13
	TypeVector     FieldType = 0xf2 // MySQL 9
	TypeInvalid    FieldType = 0xf3
	TypeBool       FieldType = 0xf4
	TypeJSON       FieldType = 0xf5
	TypeNewDecimal FieldType = 0xf6
	TypeEnum       FieldType = 0xf7
	TypeSet        FieldType = 0xf8
	TypeTinyBlob   FieldType = 0xf9
	TypeMediumBlob FieldType = 0xfa
	TypeLongBlob   FieldType = 0xfb
	TypeBlob       FieldType = 0xfc
	TypeVarString  FieldType = 0xfd
	TypeString     FieldType = 0xfe
	TypeGeometry   FieldType = 0xff
)

var typeNames = map[FieldType]string{
	TypeDecimal: "DECIMAL", TypeTiny: "TINY", TypeShort: "SHORT", TypeLong: "LONG",
	TypeFloat: "FLOAT", TypeDouble: "DOUBLE", TypeNull: "NULL", TypeTimestamp: "TIMESTAMP",
	TypeLongLong: "LONGLONG", TypeInt24: "INT24", TypeDate: "DATE", TypeTime: "TIME",
	TypeDateTime: "DATETIME", TypeYear: "YEAR", TypeNewDate: "NEWDATE", TypeVarchar: "VARCHAR",
	TypeBit: "BIT", TypeTimestamp2: "TIMESTAMP2", TypeDateTime2: "DATETIME2", TypeTime2: "TIME2",
	TypeVector: "VECTOR", TypeInvalid: "INVALID", TypeBool: "BOOL", TypeJSON: "JSON",
	TypeNewDecimal: "NEWDECIMAL", TypeEnum: "ENUM", TypeSet: "SET", TypeTinyBlob: "TINY_BLOB",
	TypeMediumBlob: "MEDIUM_BLOB", TypeLongBlob: "LONG_BLOB", TypeBlob: "BLOB",
	TypeVarString: "VAR_STRING", TypeString: "STRING", TypeGeometry: "GEOMETRY",
}

func (t FieldType) String() string {
	if n, ok := typeNames[t]; ok {
		return "MYSQL_TYPE_" + n
	}
	return "MYSQL_TYPE_0x" + strconv.FormatUint(uint64(t), 16)
}

// Cursor types and flags of COM_STMT_EXECUTE.
const (
	CursorTypeNoCursor      byte = 0x00
	CursorTypeReadOnly      byte = 0x01
	CursorTypeForUpdate     byte = 0x02
	CursorTypeScrollable    byte = 0x04
	ParameterCountAvailable byte = 0x08 // MySQL 8: parameter_count is sent
	cursorMask                   = CursorTypeReadOnly | CursorTypeForUpdate | CursorTypeScrollable
)

// Packet header bytes of generic responses.
const (
	headerOK          = 0x00
	headerAuthMore    = 0x01
	headerAuthNext    = 0x02 // MySQL multi-factor: AuthNextFactor
	headerLocalInfile = 0xfb
	headerEOF         = 0xfe
	headerERR         = 0xff
)
