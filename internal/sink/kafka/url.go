package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// PasswordEnv names the environment variable that holds the SASL password.
// Passwords never travel in URLs, flags or logs.
const PasswordEnv = "DAS_KAFKA_PASSWORD"

// SASL mechanisms.
const (
	MechanismPlain       = "plain"
	MechanismSCRAMSHA256 = "scram-sha-256"
	MechanismSCRAMSHA512 = "scram-sha-512"
)

// SASL holds SASL credentials. Mechanism "" disables SASL.
type SASL struct {
	Mechanism string
	User      string
	Password  string
}

// String never shows the password.
func (s SASL) String() string {
	if s.Mechanism == "" {
		return "none"
	}
	return s.Mechanism + " user=" + s.User
}

// GoString keeps %#v from printing the password too.
func (s SASL) GoString() string { return "kafka.SASL{" + s.String() + "}" }

func (s SASL) validate() error {
	switch s.Mechanism {
	case "":
		return nil
	case MechanismPlain, MechanismSCRAMSHA256, MechanismSCRAMSHA512:
	default:
		return fmt.Errorf("kafka: sasl mechanism %q is not one of plain, scram-sha-256, scram-sha-512", s.Mechanism)
	}
	if s.User == "" {
		return fmt.Errorf("kafka: sasl=%s needs user=", s.Mechanism)
	}
	if s.Password == "" {
		return fmt.Errorf("kafka: sasl=%s needs the password in %s", s.Mechanism, PasswordEnv)
	}
	return nil
}

// urlParts is what sink and reader URLs share.
type urlParts struct {
	brokers []string
	topic   string
	tls     *tls.Config
	sasl    SASL
	q       url.Values
}

// parseCommon parses kafka://host[:port][,host[:port]...]/topic?... and the
// parameters shared by sinks and readers; it consumes those parameters from
// q so that callers can reject the ones left over. Errors name the part of
// the URL that is wrong and never echo the URL (it may hold a secret).
func parseCommon(s string, getenv func(string) string) (urlParts, error) {
	var p urlParts
	rest, ok := strings.CutPrefix(s, "kafka://")
	if !ok {
		return p, errors.New(`kafka: URL must start with "kafka://"`)
	}
	hosts, path, _ := strings.Cut(rest, "/")
	path, rawQuery, _ := strings.Cut(path, "?")
	if strings.Contains(hosts, "@") {
		return p, fmt.Errorf("kafka: URL must not hold credentials; use user= and %s", PasswordEnv)
	}
	if hosts == "" {
		return p, errors.New("kafka: URL names no broker (kafka://host:port/topic)")
	}
	for h := range strings.SplitSeq(hosts, ",") {
		if h == "" {
			return p, errors.New("kafka: empty broker in the broker list")
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			// No port: Kafka's default.
			if strings.Contains(h, ":") && !strings.HasPrefix(h, "[") {
				return p, fmt.Errorf("kafka: broker %q: %v", h, err)
			}
			host, port = strings.Trim(h, "[]"), "9092"
		}
		if host == "" {
			return p, fmt.Errorf("kafka: broker %q has no host", h)
		}
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			return p, fmt.Errorf("kafka: broker %q: port %q is not a number in 1..65535", h, port)
		}
		p.brokers = append(p.brokers, net.JoinHostPort(host, port))
	}
	topic, err := url.PathUnescape(path)
	if err != nil {
		return p, fmt.Errorf("kafka: topic: %v", err)
	}
	if err := validTopic(topic); err != nil {
		return p, err
	}
	p.topic = topic
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return p, fmt.Errorf("kafka: URL query: %v", err)
	}
	if q.Has("password") {
		return p, fmt.Errorf("kafka: the password must not be in the URL; set %s", PasswordEnv)
	}
	tlsOn, err := boolParam(q, "tls", false)
	if err != nil {
		return p, err
	}
	ca, serverName := take(q, "tls_ca"), take(q, "tls_server_name")
	if ca != "" || serverName != "" {
		tlsOn = true
	}
	if tlsOn {
		c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
		if ca != "" {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return p, fmt.Errorf("kafka: tls_ca: %w", err)
			}
			c.RootCAs = x509.NewCertPool()
			if !c.RootCAs.AppendCertsFromPEM(pem) {
				return p, fmt.Errorf("kafka: tls_ca: %s holds no PEM certificate", ca)
			}
		}
		p.tls = c
	}
	p.sasl = SASL{Mechanism: strings.ToLower(take(q, "sasl")), User: take(q, "user")}
	if p.sasl.Mechanism != "" {
		p.sasl.Password = getenv(PasswordEnv)
	} else if p.sasl.User != "" {
		return p, errors.New("kafka: user= without sasl= (plain, scram-sha-256 or scram-sha-512)")
	}
	if err := p.sasl.validate(); err != nil {
		return p, err
	}
	p.q = q
	return p, nil
}

// validTopic applies Kafka's topic name rules, so a typo fails here and not
// at the broker.
func validTopic(t string) error {
	if t == "" {
		return errors.New("kafka: URL names no topic (kafka://host:port/topic)")
	}
	if len(t) > 249 {
		return fmt.Errorf("kafka: topic name is %d characters, Kafka allows 249", len(t))
	}
	if t == "." || t == ".." {
		return fmt.Errorf("kafka: topic %q is not allowed", t)
	}
	for _, c := range t {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("kafka: topic %q: character %q is not allowed (letters, digits, '.', '_', '-')", t, c)
		}
	}
	return nil
}

func take(q url.Values, k string) string {
	v := q.Get(k)
	q.Del(k)
	return v
}

func boolParam(q url.Values, k string, def bool) (bool, error) {
	if !q.Has(k) {
		return def, nil
	}
	v := take(q, k)
	if v == "" {
		return true, nil // ?follow alone means true
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("kafka: %s=%q is not true or false", k, v)
	}
	return b, nil
}

func durationParam(q url.Values, k string, def time.Duration) (time.Duration, error) {
	if !q.Has(k) {
		return def, nil
	}
	v := take(q, k)
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("kafka: %s=%q is not a duration such as 5ms", k, v)
	}
	return d, nil
}

func intParam(q url.Values, k string, def int) (int, error) {
	if !q.Has(k) {
		return def, nil
	}
	v := take(q, k)
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("kafka: %s=%q is not a non-negative integer", k, v)
	}
	return n, nil
}

func leftover(q url.Values) error {
	for k := range q {
		return fmt.Errorf("kafka: unknown URL parameter %q", k)
	}
	return nil
}

// ParseURL parses a sink URL:
//
//	kafka://broker1:9092,broker2:9092/topic?tls=true&sasl=scram-sha-512&user=u
//
// Parameters: tls, tls_ca (PEM file), tls_server_name, sasl (plain,
// scram-sha-256, scram-sha-512), user, sync, linger (e.g. 5ms),
// max_buffered_bytes, create_topic, partitions, delivery_timeout. The SASL
// password comes from DAS_KAFKA_PASSWORD. StreamID and Logger are left for
// the caller.
func ParseURL(s string) (Options, error) { return parseURL(s, os.Getenv) }

func parseURL(s string, getenv func(string) string) (Options, error) {
	p, err := parseCommon(s, getenv)
	if err != nil {
		return Options{}, err
	}
	o := Options{Brokers: p.brokers, Topic: p.topic, TLS: p.tls, SASL: p.sasl}
	if o.Sync, err = boolParam(p.q, "sync", false); err != nil {
		return Options{}, err
	}
	if o.Linger, err = durationParam(p.q, "linger", 0); err != nil {
		return Options{}, err
	}
	if o.MaxBufferedBytes, err = intParam(p.q, "max_buffered_bytes", 0); err != nil {
		return Options{}, err
	}
	if o.CreateTopic, err = boolParam(p.q, "create_topic", true); err != nil {
		return Options{}, err
	}
	parts, err := intParam(p.q, "partitions", 0)
	if err != nil {
		return Options{}, err
	}
	o.Partitions = int32(parts)
	if o.DeliveryTimeout, err = durationParam(p.q, "delivery_timeout", 0); err != nil {
		return Options{}, err
	}
	return o, leftover(p.q)
}

// ParseReaderURL parses a reader URL: the sink URL's brokers, topic, tls and
// sasl parameters, plus group (consumer group), start (earliest, latest, or
// partition:offset[,partition:offset...]) and follow.
func ParseReaderURL(s string) (ReaderOptions, error) { return parseReaderURL(s, os.Getenv) }

func parseReaderURL(s string, getenv func(string) string) (ReaderOptions, error) {
	p, err := parseCommon(s, getenv)
	if err != nil {
		return ReaderOptions{}, err
	}
	o := ReaderOptions{Brokers: p.brokers, Topic: p.topic, TLS: p.tls, SASL: p.sasl, Group: take(p.q, "group"), Start: take(p.q, "start")}
	if o.Follow, err = boolParam(p.q, "follow", false); err != nil {
		return ReaderOptions{}, err
	}
	if _, err := parseStart(o.Start); err != nil {
		return ReaderOptions{}, err
	}
	return o, leftover(p.q)
}
