package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Event is one raised event: what the history holds, what the admin API
// serves and what a webhook receives as its JSON body.
type Event struct {
	Seq     uint64            `json:"seq"`
	ID      string            `json:"id"`
	Time    time.Time         `json:"time"`
	Stream  string            `json:"stream,omitempty"`
	Message string            `json:"message"`
	Attrs   map[string]string `json:"attrs,omitempty"`
}

// Retry bounds webhook delivery: an event is tried at most MaxAttempts
// times, waiting Initial, 2*Initial, ... (at most Max) between attempts,
// each wait jittered into [d/2, d).
type Retry struct {
	MaxAttempts int           // default 5
	Initial     time.Duration // default 500ms
	Max         time.Duration // default 30s
}

// Options configure a Bus. The zero value is a bus with a default history
// and no webhooks that logs nowhere.
type Options struct {
	History  int      // events kept for Since; default 1000
	Webhooks []string // http:// or https:// URLs; anything else is an error from New
	Token    string   // optional: sent to webhooks as "Authorization: Bearer <Token>"
	Logger   *slog.Logger
	Client   *http.Client // default: a client with a 10s timeout
	Retry    Retry
	// Queue bounds each webhook's backlog; when it is full the oldest
	// undelivered event is dropped (and counted), so a webhook that is down
	// costs bounded memory and delays nothing else. Default 1024.
	Queue int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Bus raises events. Emit never blocks on a webhook.
type Bus struct {
	o      Options
	log    *slog.Logger
	client *http.Client

	mu      sync.Mutex
	seq     uint64
	ring    []Event // circular, len == o.History once full
	head    int     // index of the oldest event when full
	subs    map[chan Event]struct{}
	closed  bool
	hooks   []*webhook
	stopped chan struct{} // closed when Close gives up: aborts retries and requests
	wg      sync.WaitGroup
}

// New checks the options and starts one delivery goroutine per webhook.
func New(o Options) (*Bus, error) {
	if o.History <= 0 {
		o.History = 1000
	}
	if o.Queue <= 0 {
		o.Queue = 1024
	}
	if o.Retry.MaxAttempts <= 0 {
		o.Retry.MaxAttempts = 5
	}
	if o.Retry.Initial <= 0 {
		o.Retry.Initial = 500 * time.Millisecond
	}
	if o.Retry.Max <= 0 {
		o.Retry.Max = 30 * time.Second
	}
	if o.Retry.Max < o.Retry.Initial {
		o.Retry.Max = o.Retry.Initial
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	b := &Bus{o: o, log: o.Logger, client: o.Client, subs: map[chan Event]struct{}{}, stopped: make(chan struct{})}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.client == nil {
		b.client = &http.Client{Timeout: 10 * time.Second}
	}
	for _, raw := range o.Webhooks {
		u, err := ParseWebhook(raw)
		if err != nil {
			return nil, err
		}
		b.hooks = append(b.hooks, &webhook{url: u, wake: make(chan struct{}, 1)})
	}
	for _, h := range b.hooks {
		b.wg.Add(1)
		go b.deliver(h)
	}
	return b, nil
}

// ParseWebhook checks that raw is an absolute http(s) URL with a host. The
// error names the URL (without any password in it) and how to write one.
func ParseWebhook(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("events: webhook %q is not a URL: %v (write https://HOST/PATH)", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("events: webhook %q is not an http(s) URL (write https://HOST/PATH or http://127.0.0.1:PORT/PATH)", u.Redacted())
	}
	return u, nil
}

// Emit raises event id for stream with attrs (which Emit keeps; do not
// modify them afterwards). The message is the catalogue's; an id missing
// from the catalogue is a programming error, raised anyway with a message
// saying so rather than lost.
func (b *Bus) Emit(id, stream string, attrs map[string]string) Event {
	def, ok := byID[id]
	msg, level := "unknown event id (not in the catalogue)", slog.LevelError
	if ok {
		msg, level = def.Message, def.Severity.level()
	}
	b.mu.Lock()
	b.seq++
	ev := Event{Seq: b.seq, ID: id, Time: b.o.Now().UTC(), Stream: stream, Message: msg, Attrs: attrs}
	if len(b.ring) < b.o.History {
		b.ring = append(b.ring, ev)
	} else {
		b.ring[b.head] = ev
		b.head = (b.head + 1) % len(b.ring)
	}
	// Logged under the lock so that the log shows events in seq order.
	la := make([]any, 0, len(attrs))
	for k, v := range attrs {
		la = append(la, slog.String(k, v))
	}
	b.log.LogAttrs(context.Background(), level, msg,
		slog.String("event_id", id), slog.Uint64("event_seq", ev.Seq), slog.String("stream", stream),
		slog.Group("attrs", la...))
	if !b.closed {
		for _, h := range b.hooks {
			h.push(ev, b.o.Queue)
		}
	}
	for ch := range b.subs {
		select {
		case ch <- ev:
		default: // a slow subscriber misses events rather than stall the stream
		}
	}
	b.mu.Unlock()
	return ev
}

// Since returns the kept events with Seq > seq, oldest first. When the
// first returned Seq is above seq+1 the history no longer holds the ones
// in between.
func (b *Bus) Since(seq uint64) []Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.ring)
	var out []Event
	for i := 0; i < n; i++ {
		ev := b.ring[(b.head+i)%n]
		if ev.Seq > seq {
			out = append(out, ev)
		}
	}
	return out
}

// LastSeq is the seq of the latest event (0 before the first).
func (b *Bus) LastSeq() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seq
}

// Subscribe returns a channel receiving every event raised from now on,
// with room for buf; a subscriber that falls behind misses events. Call
// cancel when done.
func (b *Bus) Subscribe(buf int) (events <-chan Event, cancel func()) {
	ch := make(chan Event, max(buf, 1))
	b.mu.Lock()
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.subs, ch)
			b.mu.Unlock()
		})
	}
}

// WebhookStats counts one webhook's deliveries.
type WebhookStats struct {
	URL       string `json:"url"` // without any password
	Delivered uint64 `json:"delivered"`
	Failed    uint64 `json:"failed"`  // gave up after the retries or a permanent 4xx
	Dropped   uint64 `json:"dropped"` // pushed out of a full queue
	Queued    int    `json:"queued"`
}

// Stats returns each webhook's counters, in configuration order.
func (b *Bus) Stats() []WebhookStats {
	out := make([]WebhookStats, len(b.hooks))
	for i, h := range b.hooks {
		h.mu.Lock()
		q := len(h.queue)
		h.mu.Unlock()
		out[i] = WebhookStats{URL: h.url.Redacted(), Delivered: h.delivered.Load(), Failed: h.failed.Load(), Dropped: h.dropped.Load(), Queued: q}
	}
	return out
}

// Close stops taking events for webhooks and waits until the queued ones
// are delivered (or given up) or ctx is done; then it abandons the rest
// and returns ctx's error. Emit and Since keep working after Close.
func (b *Bus) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	for _, h := range b.hooks {
		h.close()
	}
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		close(b.stopped)
		<-done
		return fmt.Errorf("events: close: undelivered webhook events abandoned: %w", ctx.Err())
	}
}

type webhook struct {
	url  *url.URL
	wake chan struct{}

	mu     sync.Mutex
	queue  []Event
	closed bool

	delivered, failed, dropped atomic.Uint64
}

func (h *webhook) push(ev Event, limit int) {
	h.mu.Lock()
	if len(h.queue) >= limit {
		h.queue = h.queue[1:]
		h.dropped.Add(1)
	}
	h.queue = append(h.queue, ev)
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

func (h *webhook) close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// next waits for the oldest queued event; ok is false once the webhook is
// closed and drained.
func (h *webhook) next() (Event, bool) {
	for {
		h.mu.Lock()
		if len(h.queue) > 0 {
			ev := h.queue[0]
			h.queue[0] = Event{}
			h.queue = h.queue[1:]
			h.mu.Unlock()
			return ev, true
		}
		closed := h.closed
		h.mu.Unlock()
		if closed {
			return Event{}, false
		}
		<-h.wake
	}
}

// deliver sends h's events one at a time, so each webhook sees them in
// order; a webhook that is down holds up only its own queue.
func (b *Bus) deliver(h *webhook) {
	defer b.wg.Done()
	for {
		ev, ok := h.next()
		if !ok {
			return
		}
		select {
		case <-b.stopped:
			return
		default:
		}
		if err := b.send(h, ev); err != nil {
			h.failed.Add(1)
			b.log.Warn("events: webhook delivery failed", slog.String("webhook", h.url.Redacted()),
				slog.String("event_id", ev.ID), slog.Uint64("event_seq", ev.Seq), slog.String("error", err.Error()))
			continue
		}
		h.delivered.Add(1)
	}
}

// errPermanent marks a failure that a retry cannot fix.
var errPermanent = errors.New("the receiver refused the event")

func (b *Bus) send(h *webhook, ev Event) error {
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-b.stopped:
			cancel()
		case <-ctx.Done():
		}
	}()
	wait := b.o.Retry.Initial
	for attempt := 1; ; attempt++ {
		retryAfter, err := b.post(ctx, h, ev, body)
		if err == nil {
			return nil
		}
		if errors.Is(err, errPermanent) || attempt >= b.o.Retry.MaxAttempts || ctx.Err() != nil {
			return fmt.Errorf("attempt %d: %w", attempt, err)
		}
		d := wait/2 + rand.N(wait/2+1) // jitter so that many das instances do not retry in step
		if retryAfter > d {
			d = min(retryAfter, b.o.Retry.Max)
		}
		b.log.Debug("events: webhook retry", slog.String("webhook", h.url.Redacted()),
			slog.Uint64("event_seq", ev.Seq), slog.Int("attempt", attempt), slog.Duration("wait", d), slog.String("error", err.Error()))
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("attempt %d: %w (abandoned at close)", attempt, err)
		}
		wait = min(2*wait, b.o.Retry.Max)
	}
}

// post makes one attempt. Network errors, 408, 429 and 5xx are worth a
// retry; any other non-2xx status is the receiver refusing the event.
func (b *Bus) post(ctx context.Context, h *webhook, ev Event, body []byte) (retryAfter time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url.String(), bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errPermanent, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "das-events/1")
	// Receivers dedupe retried deliveries by these.
	req.Header.Set("X-Das-Event-Id", ev.ID)
	req.Header.Set("X-Das-Event-Seq", strconv.FormatUint(ev.Seq, 10))
	if b.o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+b.o.Token)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is already in the log line
		}
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return 0, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			retryAfter = time.Duration(s) * time.Second
		}
		return retryAfter, fmt.Errorf("HTTP %s", resp.Status)
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode >= 500:
		return 0, fmt.Errorf("HTTP %s", resp.Status)
	default:
		return 0, fmt.Errorf("HTTP %s, not retried: %w", resp.Status, errPermanent)
	}
}

func (s Severity) level() slog.Level {
	switch s {
	case Error:
		return slog.LevelError
	case Warning:
		return slog.LevelWarn
	}
	return slog.LevelInfo
}
