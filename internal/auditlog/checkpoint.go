package auditlog

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/das-mysql/das/internal/event"
)

// Checkpoint is the durable position of a Tailer: the file (device and
// inode), the offset just after the last acknowledged line, and a digest of
// that line to tell the same file from a new one that reused the inode.
type Checkpoint struct {
	Dev, Inode     uint64
	Born           int64 // the file's birth time (ns), 0 where the file system has none
	Offset         int64
	LastLineDigest string // "crc32c:<line length>:<hex>" of the line ending at Offset; "" at 0
}

// Position is where a line ends in a file: Offset is just after its newline,
// where the next line starts. The file is its device, inode and birth time:
// server_audit deletes the oldest rotation and creates a new file at once,
// which on ext4 gets the inode just freed, so dev:inode alone names several
// files over time.
type Position struct {
	Dev, Inode uint64
	Born       int64 // birth time in ns; 0 where the file system has none
	Offset     int64
}

// String is the Extra "dasAuditPos" form: "<dev>:<inode>:<born>:<offset>".
func (p Position) String() string {
	return string(p.append(make([]byte, 0, 64)))
}

// appendJSON appends the position as a JSON string: its digits and colons
// need no escaping.
func (p Position) appendJSON(b []byte) []byte {
	b = append(b, '"')
	b = p.append(b)
	return append(b, '"')
}

func (p Position) append(b []byte) []byte {
	b = strconv.AppendUint(b, p.Dev, 10)
	b = append(b, ':')
	b = strconv.AppendUint(b, p.Inode, 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, p.Born, 10)
	b = append(b, ':')
	return strconv.AppendInt(b, p.Offset, 10)
}

// ParsePosition parses Position.String's form.
func ParsePosition(s string) (Position, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 4 {
		return Position{}, fmt.Errorf("auditlog: position %q: want dev:inode:born:offset", s)
	}
	dev, err1 := strconv.ParseUint(parts[0], 10, 64)
	ino, err2 := strconv.ParseUint(parts[1], 10, 64)
	born, err3 := strconv.ParseInt(parts[2], 10, 64)
	off, err4 := strconv.ParseInt(parts[3], 10, 64)
	if err := errors.Join(err1, err2, err3, err4); err != nil || off < 0 {
		return Position{}, fmt.Errorf("auditlog: position %q: want dev:inode:born:offset", s)
	}
	return Position{Dev: dev, Inode: ino, Born: born, Offset: off}, nil
}

func (p Position) file() fileID { return fileID{dev: p.Dev, ino: p.Inode, born: p.Born} }

// FileOf is the identity a dasAuditPos gives the file at path (device,
// inode, birth time), at offset 0: which file a delivered line came from.
func FileOf(path string) (Position, error) {
	id, _, _, err := lstatID(path)
	if err != nil {
		return Position{}, err
	}
	return Position{Dev: id.dev, Inode: id.ino, Born: id.born}, nil
}

// PositionOf returns the source position of an event from a Tailer (Extra
// "dasAuditPos"), for recovering DurableFloor from a stream.
func PositionOf(e *event.Event) (Position, bool) {
	raw := e.Extra.Get("dasAuditPos")
	if raw == nil {
		return Position{}, false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return Position{}, false
	}
	p, err := ParsePosition(s)
	return p, err == nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func lineDigest(n int64, crc uint32) string {
	return "crc32c:" + strconv.FormatInt(n, 10) + ":" + fmt.Sprintf("%08x", crc)
}

func parseDigest(s string) (n int64, crc uint32, ok bool) {
	rest, found := strings.CutPrefix(s, "crc32c:")
	if !found {
		return 0, 0, false
	}
	ls, hs, found := strings.Cut(rest, ":")
	if !found {
		return 0, 0, false
	}
	n, err := strconv.ParseInt(ls, 10, 64)
	if err != nil || n <= 0 {
		return 0, 0, false
	}
	c, err := strconv.ParseUint(hs, 16, 32)
	if err != nil {
		return 0, 0, false
	}
	return n, uint32(c), true
}

// matches reports whether f holds, just before cp.Offset, the line cp's
// digest names.
func (cp Checkpoint) matches(f io.ReaderAt, size int64) bool {
	if cp.Offset > size {
		return false
	}
	if cp.Offset == 0 {
		return cp.LastLineDigest == ""
	}
	n, want, ok := parseDigest(cp.LastLineDigest)
	if !ok || n > cp.Offset {
		return false
	}
	var crc uint32
	buf := make([]byte, min(n, 1<<20))
	for off := cp.Offset - n; off < cp.Offset; {
		k := min(int64(len(buf)), cp.Offset-off)
		if _, err := f.ReadAt(buf[:k], off); err != nil {
			return false
		}
		crc = crc32.Update(crc, castagnoli, buf[:k])
		off += k
	}
	return crc == want
}

// checkpointFile names the state file of one log path inside dir.
func checkpointFile(dir, path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(dir, "auditlog-"+hex.EncodeToString(sum[:8])+".checkpoint")
}

type checkpointJSON struct {
	Path           string `json:"path"`
	Dev            uint64 `json:"dev"`
	Inode          uint64 `json:"inode"`
	Born           int64  `json:"born"`
	Offset         int64  `json:"offset"`
	LastLineDigest string `json:"lastLineDigest"`
}

// loadCheckpoint reads the state file; ok is false when there is none.
func loadCheckpoint(file string) (cp Checkpoint, ok bool, err error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return cp, false, nil
	}
	if err != nil {
		return cp, false, fmt.Errorf("auditlog: read checkpoint: %w", err)
	}
	var j checkpointJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return cp, false, fmt.Errorf("auditlog: checkpoint %s: %w", file, err)
	}
	return Checkpoint{Dev: j.Dev, Inode: j.Inode, Born: j.Born, Offset: j.Offset, LastLineDigest: j.LastLineDigest}, true, nil
}

// saveCheckpoint replaces the state file atomically and durably: a temporary
// file written and synced, renamed over the old one, and the directory synced
// so that the rename survives a crash.
func saveCheckpoint(file, path string, cp Checkpoint) (err error) {
	b, _ := json.Marshal(checkpointJSON{Path: path, Dev: cp.Dev, Inode: cp.Inode, Born: cp.Born, Offset: cp.Offset, LastLineDigest: cp.LastLineDigest})
	b = append(b, '\n')
	dir := filepath.Dir(file)
	tmp, err := os.CreateTemp(dir, ".checkpoint-*")
	if err != nil {
		return fmt.Errorf("auditlog: save checkpoint: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("auditlog: save checkpoint: %w", err)
	}
	if _, err = tmp.Write(b); err != nil {
		return fmt.Errorf("auditlog: save checkpoint %s: %w", tmp.Name(), err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("auditlog: save checkpoint: sync %s: %w", tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("auditlog: save checkpoint: %w", err)
	}
	if err = os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("auditlog: save checkpoint: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("auditlog: save checkpoint: open dir: %w", err)
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return fmt.Errorf("auditlog: save checkpoint: sync dir %s: %w", dir, err)
	}
	return nil
}
