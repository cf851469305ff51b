package kafka

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	env := func(pw string) func(string) string {
		return func(k string) string {
			if k == PasswordEnv {
				return pw
			}
			return ""
		}
	}
	for _, tc := range []struct {
		url, pw string
		check   func(Options) string
		want    string
		err     string
	}{
		{url: "kafka://b1:9092,b2:9093/das-audit", check: func(o Options) string {
			return fmt.Sprintln(o.Brokers, o.Topic, o.TLS == nil, o.SASL.Mechanism == "", o.CreateTopic, o.Sync)
		}, want: "[b1:9092 b2:9093] das-audit true true true false"},
		{url: "kafka://b1/t", check: func(o Options) string { return fmt.Sprintln(o.Brokers) }, want: "[b1:9092]"},
		{url: "kafka://[::1]:9092/t?sync=true&linger=2ms&max_buffered_bytes=1048576&create_topic=false&partitions=6&delivery_timeout=1m",
			check: func(o Options) string {
				return fmt.Sprintln(o.Brokers, o.Sync, o.Linger, o.MaxBufferedBytes, o.CreateTopic, o.Partitions, o.DeliveryTimeout)
			}, want: "[[::1]:9092] true 2ms 1048576 false 6 1m0s"},
		{url: "kafka://b1:9092/t?tls=true&sasl=SCRAM-SHA-512&user=das", pw: "s3cret", check: func(o Options) string {
			return fmt.Sprintln(o.TLS != nil, o.SASL.Mechanism, o.SASL.User, o.SASL.Password == "s3cret", o.SASL.String(), fmt.Sprintf("%v %+v %#v", o.SASL, o.SASL, o.SASL))
		}, want: "true scram-sha-512 das true scram-sha-512 user=das scram-sha-512 user=das scram-sha-512 user=das kafka.SASL{scram-sha-512 user=das}"},
		{url: "kafka://b1:9092/t?tls_server_name=kafka.internal", check: func(o Options) string { return fmt.Sprintln(o.TLS != nil, o.TLS.ServerName) }, want: "true kafka.internal"},
		{url: "http://b1/t", err: `must start with "kafka://"`},
		{url: "kafka:///t", err: "names no broker"},
		{url: "kafka://b1:9092/", err: "names no topic"},
		{url: "kafka://b1:9092,,b2/t", err: "empty broker"},
		{url: "kafka://b1:99999/t", err: `port "99999"`},
		{url: "kafka://b1:x/t", err: `port "x"`},
		{url: "kafka://b1/bad topic", err: "not allowed"},
		{url: "kafka://u:hunter2@b1/t", err: "must not hold credentials"},
		{url: "kafka://b1/t?password=hunter2", err: "DAS_KAFKA_PASSWORD"},
		{url: "kafka://b1/t?sasl=plain&user=u", err: "needs the password in DAS_KAFKA_PASSWORD"},
		{url: "kafka://b1/t?sasl=plain", pw: "x", err: "needs user="},
		{url: "kafka://b1/t?sasl=gssapi&user=u", pw: "x", err: `"gssapi" is not one of`},
		{url: "kafka://b1/t?user=u", err: "user= without sasl="},
		{url: "kafka://b1/t?tls=maybe", err: `tls="maybe" is not true or false`},
		{url: "kafka://b1/t?linger=fast", err: `linger="fast" is not a duration`},
		{url: "kafka://b1/t?max_buffered_bytes=-1", err: `max_buffered_bytes="-1"`},
		{url: "kafka://b1/t?tls_ca=/nonexistent/ca.pem", err: "tls_ca"},
		{url: "kafka://b1/t?acks=1", err: `unknown URL parameter "acks"`},
		{url: "kafka://b1/t?group=g", err: `unknown URL parameter "group"`},
	} {
		t.Run(tc.url, func(t *testing.T) {
			o, err := parseURL(tc.url, env(tc.pw))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(tc.check(o)); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestParseReaderURL(t *testing.T) {
	o, err := parseReaderURL("kafka://b1:9092/das?group=siem&start=latest&follow", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if o.Group != "siem" || o.Start != "latest" || !o.Follow || o.Topic != "das" {
		t.Fatalf("%+v", o)
	}
	o, err = parseReaderURL("kafka://b1/das?start=0:10,3:7", func(string) string { return "" })
	if err != nil || o.Start != "0:10,3:7" {
		t.Fatalf("%+v %v", o, err)
	}
	for url, want := range map[string]string{
		"kafka://b1/das?start=yesterday": "want earliest, latest or partition:offset",
		"kafka://b1/das?start=0:1,0:2":   "names partition 0 twice",
		"kafka://b1/das?follow=often":    `follow="often"`,
		"kafka://b1/das?linger=5ms":      `unknown URL parameter "linger"`,
	} {
		if _, err := parseReaderURL(url, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", url, err, want)
		}
	}
}
