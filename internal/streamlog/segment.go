package streamlog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Errors a caller can test with errors.Is.
var (
	// ErrTornTail: the newest segment ends in a line that is not (yet)
	// complete. A writer may still be writing it; it is never served.
	ErrTornTail = errors.New("streamlog: torn tail (not yet committed)")
	// ErrCorrupt: a segment holds bytes that cannot be a committed record: a
	// torn line in a sealed segment, an empty line, NUL bytes, a dasSeq that
	// disagrees with the line's position, or segments that overlap.
	ErrCorrupt = errors.New("streamlog: corrupt segment")
	// ErrGap: records are missing between two retained segments.
	ErrGap = errors.New("streamlog: gap in sequence")
	// ErrRetained: the records asked for were deleted by retention.
	ErrRetained = errors.New("streamlog: records no longer retained")
	// ErrClosed: the log is closed.
	ErrClosed = errors.New("streamlog: log closed")
)

// SegmentError names the segment file and byte offset where a problem is.
type SegmentError struct {
	File   string // base name, e.g. 00000000000000000042.log
	Offset int64  // byte offset of the line that is at fault
	Err    error  // ErrTornTail or ErrCorrupt (or an I/O error)
	Detail string
}

func (e *SegmentError) Error() string {
	return fmt.Sprintf("streamlog: segment %s offset %d: %s", e.File, e.Offset, e.Detail)
}

func (e *SegmentError) Unwrap() error { return e.Err }

// GapError reports records From..To (inclusive) that no segment holds.
// Retained tells a gap left by retention (the records were older than the
// oldest segment) from a hole between retained segments.
type GapError struct {
	From, To uint64
	Next     string // the segment found after the gap
	Retained bool
}

func (e *GapError) Error() string {
	if e.Retained {
		return fmt.Sprintf("streamlog: records %d..%d no longer retained (oldest segment is %s)", e.From, e.To, e.Next)
	}
	return fmt.Sprintf("streamlog: gap: records %d..%d missing before segment %s", e.From, e.To, e.Next)
}

func (e *GapError) Unwrap() error {
	if e.Retained {
		return ErrRetained
	}
	return ErrGap
}

const (
	segSuffix = ".log"
	segDigits = 20
	lockName  = "LOCK"
)

// segmentName is the file name of the segment whose first record is first.
func segmentName(first uint64) string {
	return fmt.Sprintf("%0*d%s", segDigits, first, segSuffix)
}

// parseSegmentName returns the first sequence of a segment file name.
func parseSegmentName(name string) (uint64, bool) {
	if len(name) != segDigits+len(segSuffix) || !strings.HasSuffix(name, segSuffix) {
		return 0, false
	}
	digits := name[:segDigits]
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	return n, err == nil
}

type segInfo struct {
	first uint64
	name  string
}

// listSegments returns the segments of dir, oldest first. Other files are ignored.
func listSegments(dir string) ([]segInfo, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("streamlog: list %s: %w", dir, err)
	}
	var segs []segInfo
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		if first, ok := parseSegmentName(e.Name()); ok {
			segs = append(segs, segInfo{first: first, name: e.Name()})
		}
	}
	slices.SortFunc(segs, func(a, b segInfo) int {
		switch {
		case a.first < b.first:
			return -1
		case a.first > b.first:
			return 1
		}
		return 0
	})
	return segs, nil
}

// syncDir makes the creation or removal of files in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

var seqKey = []byte(`"dasSeq"`)

// recordSeq finds `"dasSeq":<n>` in a record line without parsing its JSON:
// das writes the key near the end, after the base64 payload, so the search
// runs backwards. A key inside a JSON string has its quotes escaped and is
// skipped. ok is false when the line has no such key; valid is false when the
// key is there but its value is not an unsigned integer.
func recordSeq(line []byte) (seq uint64, ok, valid bool) {
	end := len(line)
	for {
		i := bytes.LastIndex(line[:end], seqKey)
		if i < 0 {
			return 0, false, false
		}
		if i > 0 && line[i-1] == '\\' {
			end = i
			continue
		}
		j := i + len(seqKey)
		for j < len(line) && isSpace(line[j]) {
			j++
		}
		if j >= len(line) || line[j] != ':' {
			// "dasSeq" as a value, not a key.
			end = i
			continue
		}
		j++
		for j < len(line) && isSpace(line[j]) {
			j++
		}
		k := j
		for k < len(line) && line[k] >= '0' && line[k] <= '9' {
			k++
		}
		if k == j || k-j > 20 {
			return 0, true, false
		}
		n, err := strconv.ParseUint(string(line[j:k]), 10, 64)
		if err != nil {
			return 0, true, false
		}
		return n, true, true
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// checkLine says what is wrong with a complete line (without its newline) at
// sequence seq, or "" when it may be served.
func checkLine(data []byte, seq uint64) string {
	if len(data) == 0 {
		return "empty line"
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return "NUL bytes in line (zero-filled after a crash?)"
	}
	if n, ok, valid := recordSeq(data); ok {
		if !valid {
			return fmt.Sprintf("malformed dasSeq value, position gives %d", seq)
		}
		if n != seq {
			return fmt.Sprintf("record says dasSeq %d, position gives %d", n, seq)
		}
	}
	return ""
}

func segPath(dir, name string) string { return filepath.Join(dir, name) }
