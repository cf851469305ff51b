package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Client calls the admin API.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// NewClient returns a client of the API at addr: HOST:PORT (plain HTTP,
// as das serve listens) or a URL. hc may be nil.
func NewClient(addr, token string, hc *http.Client) *Client {
	base := strings.TrimRight(addr, "/")
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		base = "http://" + base
	}
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{base: base, token: token, hc: hc}
}

// StartActivityStream calls POST /v1/activity-stream/start.
func (c *Client) StartActivityStream(ctx context.Context, r StartRequest) (StreamStatus, error) {
	var st StreamStatus
	return st, c.do(ctx, http.MethodPost, "/v1/activity-stream/start", r, &st)
}

// StopActivityStream calls POST /v1/activity-stream/stop.
func (c *Client) StopActivityStream(ctx context.Context, r StopRequest) (StreamStatus, error) {
	var st StreamStatus
	return st, c.do(ctx, http.MethodPost, "/v1/activity-stream/stop", r, &st)
}

// DescribeActivityStreams calls GET /v1/activity-streams.
func (c *Client) DescribeActivityStreams(ctx context.Context) ([]StreamStatus, error) {
	var resp DescribeResponse
	err := c.do(ctx, http.MethodGet, "/v1/activity-streams", nil, &resp)
	return resp.ActivityStreams, err
}

// Events calls GET /v1/events?since=since.
func (c *Client) Events(ctx context.Context, since uint64) (EventsResponse, error) {
	var resp EventsResponse
	err := c.do(ctx, http.MethodGet, "/v1/events?since="+strconv.FormatUint(since, 10), nil, &resp)
	return resp, err
}

// do makes one call; an API error is returned as *APIError.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("admin API %s: %w", c.base, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("admin API %s: connection refused: is das serve running, with its admin API on this address (--admin-listen)?", c.base)
		}
		return fmt.Errorf("admin API %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("admin API %s%s: reading the answer: %w", c.base, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var eb ErrorBody
		if json.Unmarshal(b, &eb) == nil && eb.Error.Code != "" {
			eb.Error.Status = resp.StatusCode
			return &eb.Error
		}
		return &APIError{Status: resp.StatusCode, Code: strconv.Itoa(resp.StatusCode), Message: strings.TrimSpace(string(b))}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("admin API %s%s: the answer is not what das serve sends: %w", c.base, path, err)
	}
	return nil
}
