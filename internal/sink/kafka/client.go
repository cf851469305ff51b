// Package kafka streams sealed DAS records to Apache Kafka and reads them
// back. The sink keys every record by its stream id, so that one stream's
// records stay in order in one partition, and produces with the idempotent
// producer (acks=all), so that broker-side retries never duplicate a record.
// A restarted writer finds its stream's newest record in the topic and
// continues the chain from it; Sink.Newest reads the stream's newest records
// back the same way (the audit tailers' floor). The reader drops the exact duplicates that a
// non-idempotent retry could still leave, so that they never look like breaks
// in the chain.
package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// connOpts are the client options that sinks and readers share.
func connOpts(brokers []string, tc *tls.Config, s SASL, log *slog.Logger) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ClientID("das"),
		kgo.WithLogger(slogger{log}),
		kgo.DialTimeout(5 * time.Second),
		kgo.RetryBackoffFn(backoff),
	}
	if tc != nil {
		opts = append(opts, kgo.DialTLSConfig(tc.Clone()))
	}
	switch s.Mechanism {
	case MechanismPlain:
		opts = append(opts, kgo.SASL(plain.Auth{User: s.User, Pass: s.Password}.AsMechanism()))
	case MechanismSCRAMSHA256:
		opts = append(opts, kgo.SASL(scram.Auth{User: s.User, Pass: s.Password}.AsSha256Mechanism()))
	case MechanismSCRAMSHA512:
		opts = append(opts, kgo.SASL(scram.Auth{User: s.User, Pass: s.Password}.AsSha512Mechanism()))
	}
	return opts
}

// backoff: exponential from 100ms to 2s; a restarted broker is back in
// seconds and the producer should notice soon after.
func backoff(tries int) time.Duration {
	d := 100 * time.Millisecond << min(tries, 5)
	return min(d, 2*time.Second)
}

// ping checks that some broker answers, naming the brokers when none does.
func ping(ctx context.Context, cl *kgo.Client, brokers []string, s SASL, tc *tls.Config) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	err := cl.Ping(ctx)
	if err == nil {
		return nil
	}
	err = explain(err)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		// Brokers drop the connection on a failed login or a protocol
		// mismatch rather than saying why.
		switch {
		case s.Mechanism != "":
			err = fmt.Errorf("the broker closed the connection: SASL authentication failed? (user %q, %s, %s), or TLS expected?: %w", s.User, s.Mechanism, PasswordEnv, err)
		case tc == nil:
			err = fmt.Errorf("the broker closed the connection: does it expect TLS (tls=true) or SASL?: %w", err)
		}
	}
	return fmt.Errorf("kafka: no broker answered at %s: %w", strings.Join(brokers, ","), err)
}

// explain adds the likely cause to errors whose text alone does not say it.
func explain(err error) error {
	var ne *net.OpError
	switch {
	case errors.Is(err, kerr.SaslAuthenticationFailed), errors.Is(err, kerr.IllegalSaslState), errors.Is(err, kerr.UnsupportedSaslMechanism):
		return fmt.Errorf("SASL authentication failed (user, mechanism, %s?): %w", PasswordEnv, err)
	case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.ClusterAuthorizationFailed):
		return fmt.Errorf("not authorized (ACLs): %w", err)
	case errors.As(err, &ne) && ne.Op == "dial":
		return fmt.Errorf("cannot connect (broker down or wrong address?): %w", err)
	}
	return err
}

// partitionFor is Kafka's default key partitioner (murmur2 of the key,
// positive, modulo the partition count), so that Java producers and this one
// agree on where a stream's records live.
func partitionFor(key []byte, n int) int {
	return int(murmur2(key)&0x7fffffff) % n
}

// murmur2 is the hash of Kafka's Java client (Utils.murmur2).
func murmur2(b []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(b))
	for ; len(b) >= 4; b = b[4:] {
		k := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// slogger adapts kgo's logger to slog. kgo's info level is chatty about
// every (re)connection; it goes to debug, warnings and errors stay.
type slogger struct{ l *slog.Logger }

func (s slogger) Level() kgo.LogLevel {
	ctx := context.Background()
	switch {
	case s.l.Enabled(ctx, slog.LevelDebug):
		return kgo.LogLevelInfo
	case s.l.Enabled(ctx, slog.LevelWarn):
		return kgo.LogLevelWarn
	default:
		return kgo.LogLevelError
	}
}

func (s slogger) Log(level kgo.LogLevel, msg string, kv ...any) {
	l := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		l = slog.LevelError
	case kgo.LogLevelWarn:
		l = slog.LevelWarn
	}
	s.l.Log(context.Background(), l, "kafka: "+msg, kv...)
}
