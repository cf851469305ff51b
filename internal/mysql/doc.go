// Package mysql is the MySQL/MariaDB client/server protocol knowledge that the
// das proxy needs: framing, handshake and command parsing, and a per-session
// state machine that classifies every server packet by the state of the
// exchange rather than by its first byte.
//
// It does no networking and never changes bytes unless asked to (SetCapabilities).
// Parsers work on []byte without copying where they can: fields of type
// []byte alias the payload passed in and are valid only until that buffer is
// reused. Values that outlive a packet (prepared statement text, handshake
// fields) are copied.
package mysql

import "errors"

// Sentinel errors. Every error returned by this package that is caused by the
// bytes on the wire wraps one of these.
var (
	// ErrMalformed: a packet does not follow the protocol (truncated, bad
	// length, unexpected value). The session should be closed.
	ErrMalformed = errors.New("malformed packet")
	// ErrPacketTooLarge: a packet is longer than the configured maximum.
	ErrPacketTooLarge = errors.New("packet too large")
	// ErrSequence: a frame carries the wrong sequence id.
	ErrSequence = errors.New("wrong sequence id")
	// ErrUnexpected: a packet arrived when the exchange does not allow one
	// (a server packet with no command in flight, a command while the
	// client must send file contents, ...).
	ErrUnexpected = errors.New("unexpected packet")
)
