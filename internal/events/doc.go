package events

import (
	"bytes"
	"fmt"
	"strings"
)

// Markdown renders the catalogue as docs/EVENTS.md. A test keeps the file
// equal to it, so the doc cannot drift from the code.
func Markdown() []byte {
	var b bytes.Buffer
	b.WriteString(`# Events

<!-- Generated from internal/events/catalogue.go by
     go test ./internal/events -run TestEventsDoc -update
     Do not edit by hand. -->

das raises events the way RDS raises RDS Events: each has a stable id and a
fixed message, so that alerts can match on either. What varies (a reason, a
failure class, a count) is in the event's attributes. An id is never reused
and a message never changes once released; new events get new ids.

Every event is

- logged through das's JSON log (level from the severity below), with
  ` + "`event_id`, `event_seq`, `stream` and `attrs`" + `;
- kept in a bounded history that the admin API serves:
  ` + "`GET /v1/events?since=SEQ`" + ` (bearer token; see ` + "`das describe-activity-streams`" + `);
- POSTed as JSON to each configured webhook, with retries and exponential
  backoff. Each webhook has its own bounded queue and sender: one that is
  down delays no other, keeps events in order, and drops its oldest queued
  event (counted) when its queue is full.

A webhook receives one event per request:

` + "```json" + `
{"seq":42,"id":"DAS-EVENT-0004","time":"2025-01-02T03:04:05.123Z",
 "stream":"cluster-ABCDEFGHIJKLMNOPQRSTUVWXYZ","message":"Database Activity Stream is stopped.",
 "attrs":{"reason":"kms-unreachable","error":"dial tcp 10.0.0.5:443: connect: connection refused"}}
` + "```" + `

with headers ` + "`Content-Type: application/json`, `X-Das-Event-Id`, `X-Das-Event-Seq`" + `
(to deduplicate a retried delivery) and, when a webhook token is configured,
` + "`Authorization: Bearer TOKEN`" + `. A 2xx answer is a delivery; a network error,
408, 429 (honouring Retry-After) or 5xx is retried; any other status is not.
` + "`seq`" + ` counts from 1 each time das starts.

## Catalogue

| id | category | severity | message |
|---|---|---|---|
`)
	for _, d := range catalogue {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", d.ID, d.Category, d.Severity, d.Message)
	}
	for _, d := range catalogue {
		fmt.Fprintf(&b, "\n### %s\n\n%s\n\n%s\n", d.ID, d.Message, d.Note)
		if len(d.Attrs) > 0 {
			b.WriteString("\n| attribute | meaning |\n|---|---|\n")
			for _, a := range d.Attrs {
				fmt.Fprintf(&b, "| `%s` | %s |\n", a.Key, strings.ReplaceAll(a.Doc, "|", "\\|"))
			}
		}
	}
	b.WriteString(`
## Stop reasons

| reason | meaning |
|---|---|
| ` + "`" + ReasonRequested + "`" + ` | stop-activity-stream was called |
| ` + "`" + ReasonShutdown + "`" + ` | das serve is exiting |
| ` + "`" + ReasonKMSUnreachable + "`" + ` | KMS did not answer within --kms-retry-window; the DAS-EVENT-0010 before it says which failure |
| ` + "`" + ReasonStartFailed + "`" + ` | the stream never reached started (the error attribute says why) |

## KMS failure classes

The ` + "`class`" + ` attribute of DAS-EVENT-0010 and DAS-EVENT-0070: ` + "`" + strings.Join(KMSClasses, "`, `") + "`" + `.
`)
	return b.Bytes()
}
