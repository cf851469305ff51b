package mysql

import "fmt"

// LoginEventKind says what a packet of the connection phase was.
type LoginEventKind uint8

const (
	LoginNone       LoginEventKind = iota // nothing to report (plugin data)
	LoginGreeting                         // server greeting parsed: Login.Greeting
	LoginSSLRequest                       // client asked for TLS: switch both sides to TLS now
	LoginResponse                         // handshake response parsed: Login.Response
	LoginAuthSwitch                       // server switched the client to Plugin
	LoginSucceeded                        // OK: the session is in the command phase
	LoginFailed                           // ERR: Err holds the server's code and message
)

// LoginEvent is the outcome of one connection-phase packet.
type LoginEvent struct {
	Kind   LoginEventKind
	Auth   AuthPacket // the decoded server packet in the authentication exchange
	Plugin string     // the authentication plugin in use after this packet
	Err    ERR        // LoginFailed
}

type loginState uint8

const (
	lsGreeting loginState = iota
	lsResponse
	lsAuth
	lsDone
	lsFailed
)

// Login follows the connection phase: greeting, optional SSLRequest (after
// which the caller switches to TLS), handshake response, then any
// authentication exchange (auth switch, more data, caching_sha2_password fast
// and full authentication with or without the RSA key exchange, MariaDB
// ed25519 and parsec, MySQL multi-factor) until OK or ERR. It only observes.
type Login struct {
	Greeting *Handshake
	Response *HandshakeResponse
	// TLS: the client sent an SSLRequest.
	TLS bool
	// Plugin is the authentication plugin currently in use.
	Plugin string

	state      loginState
	clientNext bool
}

// NewLogin returns a Login waiting for the server greeting.
func NewLogin() *Login { return &Login{} }

// Done reports whether the connection phase ended (success or failure).
func (l *Login) Done() bool { return l.state >= lsDone }

// Succeeded reports whether the login ended with OK.
func (l *Login) Succeeded() bool { return l.state == lsDone }

// Capabilities returns the capabilities both sides agreed on.
func (l *Login) Capabilities() Capability {
	if l.Greeting == nil || l.Response == nil {
		return 0
	}
	return l.Greeting.Capabilities & l.Response.Capabilities
}

// Session returns a command-phase Session for the agreed capabilities.
func (l *Login) Session() *Session { return NewSession(l.Capabilities()) }

// ServerPacket consumes one server packet of the connection phase.
func (l *Login) ServerPacket(payload []byte) (LoginEvent, error) {
	switch l.state {
	case lsGreeting:
		if IsERR(payload) {
			// Refused before the handshake (too many connections, host
			// blocked): no SQL state.
			e, err := ParseERR(payload, 0)
			if err != nil {
				return LoginEvent{}, err
			}
			l.state = lsFailed
			return LoginEvent{Kind: LoginFailed, Err: e}, nil
		}
		h, err := ParseHandshakeV10(payload)
		if err != nil {
			return LoginEvent{}, err
		}
		l.Greeting, l.Plugin, l.state = h, h.AuthPlugin, lsResponse
		return LoginEvent{Kind: LoginGreeting, Plugin: l.Plugin}, nil
	case lsAuth:
		a, err := ParseAuthPacket(payload, l.Capabilities())
		if err != nil {
			return LoginEvent{}, err
		}
		ev := LoginEvent{Auth: a}
		l.clientNext = a.ClientNext
		switch a.Kind {
		case AuthOK:
			l.state, ev.Kind = lsDone, LoginSucceeded
		case AuthFailed:
			l.state, ev.Kind, ev.Err = lsFailed, LoginFailed, a.Err
		case AuthSwitch, AuthNextFactor:
			l.Plugin, ev.Kind = a.Plugin, LoginAuthSwitch
		}
		ev.Plugin = l.Plugin
		return ev, nil
	case lsResponse:
		if IsERR(payload) {
			// The server may refuse before reading the response.
			e, err := ParseERR(payload, l.Greeting.Capabilities)
			if err != nil {
				return LoginEvent{}, err
			}
			l.state = lsFailed
			return LoginEvent{Kind: LoginFailed, Err: e, Plugin: l.Plugin}, nil
		}
	}
	return LoginEvent{}, fmt.Errorf("mysql: login: server packet (header 0x%02x) in state %d: %w", first(payload), l.state, ErrUnexpected)
}

// ClientPacket consumes one client packet of the connection phase.
func (l *Login) ClientPacket(payload []byte) (LoginEvent, error) {
	switch l.state {
	case lsResponse:
		if IsSSLRequest(payload) {
			if l.TLS {
				return LoginEvent{}, fmt.Errorf("mysql: login: second SSLRequest: %w", ErrUnexpected)
			}
			l.TLS = true
			return LoginEvent{Kind: LoginSSLRequest, Plugin: l.Plugin}, nil
		}
		r, err := ParseHandshakeResponse(payload)
		if err != nil {
			return LoginEvent{}, err
		}
		l.Response, l.state = r, lsAuth
		if r.AuthPlugin != "" {
			l.Plugin = r.AuthPlugin
		}
		return LoginEvent{Kind: LoginResponse, Plugin: l.Plugin}, nil
	case lsAuth:
		l.clientNext = false
		return LoginEvent{Plugin: l.Plugin}, nil
	}
	return LoginEvent{}, fmt.Errorf("mysql: login: client packet in state %d: %w", l.state, ErrUnexpected)
}

// ClientNext reports whether, in the authentication exchange, the last
// server packet expects an answer from the client.
func (l *Login) ClientNext() bool { return l.state == lsAuth && l.clientNext }
