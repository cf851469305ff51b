package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/das-mysql/das/internal/streamlog"
	"github.com/das-mysql/das/pkg/dasrecord"
)

// chainCheck follows a stream's records and collects every break: missing
// sequence numbers, duplicates or reordering, records whose digest does not
// match their successor's dasPrev, records of another stream, and (when it
// can decrypt) records that are not authentic or whose outer fields were
// moved.
type chainCheck struct {
	streamID         string
	first, last      uint64
	records, events  int
	prevLine         []byte
	prevSeq          uint64
	havePrev         bool
	breaks           []string
	retiredBeforeOne bool
	others           int // records of other streams in a shared topic
	tornTail         string
}

func (v *chainCheck) fail(format string, a ...any) {
	v.breaks = append(v.breaks, fmt.Sprintf(format, a...))
}

func (v *chainCheck) add(where string, line []byte, r *dasrecord.Record) {
	if v.streamID == "" {
		v.streamID = r.StreamID
	}
	switch {
	case r.StreamID == "":
		v.fail("%s: record has no dasStreamId (not written by das)", where)
		return
	case r.StreamID != v.streamID:
		v.fail("%s: record of another stream %q (this stream is %q)", where, r.StreamID, v.streamID)
		return
	}
	if v.records == 0 {
		v.first = r.Seq
		if r.Seq != 1 {
			v.retiredBeforeOne = true
		} else if r.Prev != "" {
			v.fail("seq 1: first record names a predecessor %s", r.Prev)
		}
	}
	if v.havePrev {
		want := v.prevSeq + 1
		switch {
		case r.Seq > want:
			if r.Seq-1 == want {
				v.fail("missing seq %d", want)
			} else {
				v.fail("missing seq %d..%d (%d records)", want, r.Seq-1, r.Seq-want)
			}
		case r.Seq < want:
			v.fail("%s: seq %d after seq %d: duplicated or reordered", where, r.Seq, v.prevSeq)
		default:
			if d := dasrecord.DigestOf(v.prevLine).String(); d != r.Prev {
				v.fail("seq %d altered: its digest %s does not match seq %d's dasPrev %s", v.prevSeq, short(d), r.Seq, short(r.Prev))
			}
		}
	}
	v.records++
	v.prevLine = append(v.prevLine[:0], line...)
	if !v.havePrev || r.Seq > v.prevSeq {
		v.prevSeq = r.Seq
	}
	v.havePrev = true
	v.last = v.prevSeq
}

func short(h string) string {
	if len(h) > 16 {
		return h[:16] + "…"
	}
	if h == "" {
		return `""`
	}
	return h
}

func runVerify(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs, cf := flagSet("verify", stderr)
	from := fs.String("from", "", "data dir, stream log dir, a file of records, or kinesis://stream?region=R&endpoint=URL (default: the data dir)")
	chainOnly := fs.Bool("chain-only", false, "check sequence and digests only, without KMS (cannot prove the newest record authentic)")
	c, err := parse(fs, cf, args)
	if err != nil {
		return err
	}
	// A Kafka topic or Kinesis stream may carry several das streams: check
	// the one of this data dir (or --stream-id), and pass over the others.
	shared := strings.HasPrefix(*from, "kafka://") || strings.HasPrefix(*from, "kinesis://")
	if shared && c.StreamID == "" {
		_ = c.ResolveStreamID(false)
	}
	src, err := openSource(ctx, &c, cf, *from, streamlog.Start, false)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	defer src.close()
	var dec *dasrecord.Decrypter
	if !*chainOnly {
		if dec, err = openDecrypter(ctx, c); err != nil {
			return &exitError{code: 1, err: fmt.Errorf("%w (or use --chain-only)", err)}
		}
	}
	v := &chainCheck{streamID: c.StreamID}
	for {
		line, where, err := src.next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, streamlog.ErrTornTail) {
			v.tornTail = err.Error()
			break
		}
		if err != nil {
			v.fail("%v", err)
			if errors.Is(err, streamlog.ErrGap) {
				continue
			}
			break
		}
		rec, err := dasrecord.Parse(line)
		if err != nil {
			v.fail("%s: corrupted: %v", where, err)
			continue
		}
		if pos, ok := src.(interface{ seqAt() uint64 }); ok && rec.Seq != pos.seqAt() {
			// The log's position and the record disagree: lines were added,
			// removed or moved inside a segment.
			where = fmt.Sprintf("record at log position %s claims seq %d", where, rec.Seq)
		}
		if shared && v.streamID != "" && rec.StreamID != v.streamID {
			v.others++
			continue
		}
		v.add(where, line, rec)
		if dec != nil {
			o, err := dec.Open(ctx, rec)
			if err != nil {
				v.fail("%s: not authentic: %v", where, err)
				continue
			}
			v.events += len(o.Payload.Events)
		}
	}
	what := "chain checked"
	if dec != nil {
		what = fmt.Sprintf("%d events, every record decrypted and authenticated", v.events)
	}
	note := ""
	if v.retiredBeforeOne {
		note += fmt.Sprintf("; records before seq %d retired by retention", v.first)
	}
	if v.others > 0 {
		note += fmt.Sprintf("; %d records of other streams passed over", v.others)
	}
	if v.tornTail != "" {
		note += "; an uncommitted tail is not counted (" + v.tornTail + ")"
	}
	if len(v.breaks) > 0 {
		fmt.Fprintf(stdout, "BROKEN: stream %s: %s\n", v.streamID, strings.Join(v.breaks, "; "))
		return &exitError{code: 1}
	}
	if v.records == 0 {
		fmt.Fprintf(stdout, "intact: stream %s is empty%s\n", c.StreamID, note)
		return nil
	}
	fmt.Fprintf(stdout, "intact: stream %s, seq %d..%d (%d records, %s)%s\n", v.streamID, v.first, v.last, v.records, what, note)
	return nil
}
