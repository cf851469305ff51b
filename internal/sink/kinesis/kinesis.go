// Package kinesis writes a das stream's sealed records to an Amazon Kinesis
// data stream, the way AWS's Database Activity Streams deliver theirs, and
// reads them back.
//
// Records are put with the stream id as partition key, so one stream's
// records land on one shard, in order, through one PutRecords call in flight
// at a time. When Kinesis fails some records of a call (throttling), it may
// have accepted later ones of the same call: the failed ones are re-sent before
// anything newer, so a record can land at most one call (500 records) ahead of
// a predecessor. The Reader puts such records back in dasSeq order and drops
// the exact duplicates that retried calls leave.
//
// Kinesis cannot be read backwards, so a restarted writer finds the end of
// its chain through a stream tag, "das-tip/<stream id>", that holds the shard
// and Kinesis sequence number of a recent record of the chain (updated at
// most every TipInterval while writing, and on Close). Open reads forward from
// there, through any shards split or merged from that one, to the newest
// record: a bounded read of what was written since the tag's last update. A
// stream without the tag has never carried the chain; the tag is created
// (as "pending/<unix ms>") before the chain's first record is sent.
//
// Sink.Newest reads the chain's newest records back for a restarted das
// (the audit tailers' floor): from a few seconds before the arrival time of
// the newest record Open found (AT_TIMESTAMP on its shard), since the tag
// may name a record later than some of those wanted.
package kinesis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Kinesis limits (https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html).
const (
	MaxRecordBytes = 1 << 20 // data + partition key of one record
	MaxCallBytes   = 5 << 20 // data + partition keys of one PutRecords call
	MaxCallRecords = 500
)

// DefaultStreamPrefix is how AWS names a DAS stream: the prefix and the
// resource id of the cluster or instance.
const DefaultStreamPrefix = "aws-rds-das-"

var streamNameRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)

// Options configure a Sink.
type Options struct {
	// Stream is the Kinesis stream name; empty means DefaultStreamPrefix+StreamID.
	Stream string
	// StreamID is the das stream written (the dasStreamId of its records) and
	// the partition key.
	StreamID string
	// Region and Endpoint select the Kinesis API; empty uses the SDK's chain.
	Region, Endpoint string
	// NoCreate forbids creating a missing stream (kinesis://...?create=false).
	// The zero value creates it, as DAS users expect the stream to exist.
	NoCreate bool
	// Shards of a stream that Open creates (default 1).
	Shards int
	// MaxBufferedRecords bounds the records queued and in flight; AppendAsync
	// blocks beyond it, which is the pipeline's backpressure (default 10000).
	MaxBufferedRecords int
	// TipInterval is how often the chain's tip tag is refreshed while writing
	// (default 5s). Kinesis allows 5 tag operations per second per account.
	TipInterval time.Duration
	// CloseTimeout bounds how long Close keeps delivering queued records
	// (default 30s).
	CloseTimeout time.Duration
	Logger       *slog.Logger
	// MaxAttempts bounds the SDK's own retries per call (default 3); the sink
	// retries on top of that with its own backoff.
	MaxAttempts int
}

// ParseURL parses "kinesis://stream-name?region=R&endpoint=URL&create=false&shards=N".
// An empty stream name ("kinesis://") means the default, DAS's
// "aws-rds-das-<stream id>".
func ParseURL(s string) (Options, error) {
	var o Options
	u, q, err := parseURL(s)
	if err != nil {
		return o, err
	}
	o.Stream = u
	for k, vs := range q {
		v := vs[len(vs)-1]
		switch k {
		case "region":
			o.Region = v
		case "endpoint":
			o.Endpoint = v
		case "create":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return o, fmt.Errorf("kinesis: %s: create=%q is not true or false", s, v)
			}
			o.NoCreate = !b
		case "shards":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return o, fmt.Errorf("kinesis: %s: shards=%q is not a positive number", s, v)
			}
			o.Shards = n
		default:
			return o, fmt.Errorf("kinesis: %s: unknown setting %q (known: region, endpoint, create, shards)", s, k)
		}
	}
	return o, nil
}

// parseURL checks the scheme, the stream name and the endpoint.
func parseURL(s string) (stream string, q url.Values, err error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", nil, fmt.Errorf("kinesis: %q is not a URL: %w", s, err)
	}
	if u.Scheme != "kinesis" {
		return "", nil, fmt.Errorf("kinesis: %s: scheme is %q, want kinesis://stream-name", s, u.Scheme)
	}
	if u.User != nil || u.Port() != "" || u.Fragment != "" {
		return "", nil, fmt.Errorf("kinesis: %s: want kinesis://stream-name?region=R&endpoint=URL", s)
	}
	stream = u.Host
	if p := strings.TrimPrefix(u.Path, "/"); p != "" {
		if stream != "" {
			return "", nil, fmt.Errorf("kinesis: %s: a stream name has no '/'", s)
		}
		stream = p
	}
	if stream != "" && !streamNameRE.MatchString(stream) {
		return "", nil, fmt.Errorf("kinesis: %s: stream name %q: want 1 to 128 of a-z A-Z 0-9 _ . -", s, stream)
	}
	q = u.Query()
	if e := q.Get("endpoint"); e != "" {
		if err := checkEndpoint(e); err != nil {
			return "", nil, fmt.Errorf("kinesis: %s: %w", s, err)
		}
	}
	return stream, q, nil
}

func checkEndpoint(e string) error {
	eu, err := url.Parse(e)
	if err != nil || (eu.Scheme != "http" && eu.Scheme != "https") || eu.Host == "" {
		return fmt.Errorf("endpoint %q: want http(s)://host[:port]", e)
	}
	return nil
}

// streamName applies the default name and checks it.
func streamName(stream, streamID string) (string, error) {
	if stream == "" {
		if streamID == "" {
			return "", errors.New("kinesis: no stream name and no stream id to name it after")
		}
		stream = DefaultStreamPrefix + streamID
	}
	if !streamNameRE.MatchString(stream) {
		return "", fmt.Errorf("kinesis: stream name %q: want 1 to 128 of a-z A-Z 0-9 _ . -", stream)
	}
	return stream, nil
}

// newClient builds a Kinesis client from the SDK's standard chain.
func newClient(ctx context.Context, region, endpoint string, maxAttempts int) (*kinesis.Client, error) {
	var opts []func(*config.LoadOptions) error
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	if maxAttempts <= 0 {
		maxAttempts = 3
	}
	opts = append(opts, config.WithRetryMaxAttempts(maxAttempts))
	if endpoint != "" {
		if err := checkEndpoint(endpoint); err != nil {
			return nil, fmt.Errorf("kinesis: %w", err)
		}
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("kinesis: AWS config: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("kinesis: no AWS region (set region= in the URL or AWS_REGION)")
	}
	return kinesis.NewFromConfig(cfg, func(o *kinesis.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	}), nil
}

// waitActive waits until the stream accepts records (ACTIVE, or UPDATING
// during a reshard) and returns its summary.
func waitActive(ctx context.Context, c *kinesis.Client, stream string) (*types.StreamDescriptionSummary, error) {
	delay := 50 * time.Millisecond
	for {
		out, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
		if err != nil {
			return nil, describeErr(c, stream, err)
		}
		s := out.StreamDescriptionSummary
		switch s.StreamStatus {
		case types.StreamStatusActive, types.StreamStatusUpdating:
			return s, nil
		case types.StreamStatusDeleting:
			return nil, fmt.Errorf("kinesis: stream %s is being deleted", stream)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("kinesis: stream %s is %s, not ACTIVE: %w", stream, s.StreamStatus, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// ErrStreamNotFound reports a stream that does not exist (or was deleted).
var ErrStreamNotFound = errors.New("stream not found")

// describeErr says what a failed call on the stream means: the stream is
// missing, or nothing answered at the endpoint, or the API's own error.
func describeErr(c *kinesis.Client, stream string, err error) error {
	var nf *types.ResourceNotFoundException
	if errors.As(err, &nf) {
		return fmt.Errorf("kinesis: stream %s: %w (%s)", stream, ErrStreamNotFound, aws.ToString(nf.Message))
	}
	var send *smithyhttp.RequestSendError
	if errors.As(err, &send) {
		return fmt.Errorf("kinesis: stream %s: no Kinesis API answered at %s: %w", stream, endpointOf(c), err)
	}
	return fmt.Errorf("kinesis: stream %s: %w", stream, err)
}

// endpointOf names where c sends its calls.
func endpointOf(c *kinesis.Client) string {
	o := c.Options()
	if e := aws.ToString(o.BaseEndpoint); e != "" {
		return e
	}
	return "the Kinesis endpoint of region " + o.Region
}

// listShards lists every shard of the stream, closed ones included.
func listShards(ctx context.Context, c *kinesis.Client, stream string) ([]types.Shard, error) {
	var shards []types.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for {
		out, err := c.ListShards(ctx, in)
		if err != nil {
			return nil, describeErr(c, stream, err)
		}
		shards = append(shards, out.Shards...)
		if out.NextToken == nil {
			return shards, nil
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}
