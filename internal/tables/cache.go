package tables

import (
	"sync"
)

// Cache remembers the tables of statements by their shape: the text with
// its literals replaced by placeholders. Applications repeat a few shapes
// with different values, and a parse costs 5–15 µs against ~100 ns for a
// lookup; prepared statements repeat their exact text. It is safe for
// concurrent use.
type Cache struct {
	mu      sync.Mutex
	m       map[string]entry
	scratch []byte
	max     int
}

type entry struct {
	acc  []Access
	scan bool // the shape does not parse, nor did the text first seen with it
}

// maxShape is the longest shape kept: longer statements (bulk inserts)
// rarely repeat, and would make the cache's memory follow the traffic.
const maxShape = 4 << 10

// MaxParse is the longest statement parsed at all. Parsing costs about a
// microsecond per 100 bytes on the session's thread; a longer statement
// is scanned (Scan, ~2 ns a byte) instead.
const MaxParse = 256 << 10

// NewCache returns a cache of at most entries shapes; when full it starts
// over, which keeps it simple and bounded.
func NewCache(entries int) *Cache {
	return &Cache{m: make(map[string]entry), max: max(entries, 1)}
}

// Of returns the tables sql touches: the package's Of through the cache,
// and Scan's answer for a statement the grammar does not parse or one
// over MaxParse, with scanned true. The returned slice is shared: callers
// must not modify it.
func (c *Cache) Of(sql string) (acc []Access, scanned bool) {
	if len(sql) > MaxParse {
		return Scan(sql), true
	}
	if len(sql) > 4*maxShape {
		// Its shape would rarely be short enough to keep: parse it without
		// scanning it under the lock the sessions share.
		if acc, err := Of(sql); err == nil {
			return acc, false
		}
		return Scan(sql), true
	}
	c.mu.Lock()
	c.scratch = shape(c.scratch[:0], sql)
	if e, ok := c.m[string(c.scratch)]; ok {
		c.mu.Unlock()
		if e.scan {
			return Scan(sql), true
		}
		return e.acc, false
	}
	var key string
	if len(c.scratch) <= maxShape {
		key = string(c.scratch)
	}
	c.mu.Unlock()

	// The shape parses to the same tables as the text: placeholders stand
	// only where literals were. Where a literal is required (VARCHAR(10)),
	// the shape does not parse, and the text itself is parsed; its tables
	// are then not kept for the shape, which stands for other texts too.
	var err error = errUnparsable
	if key != "" {
		acc, err = Of(key)
	}
	shapeParsed := err == nil
	if err != nil {
		acc, err = Of(sql)
	}
	if scanned = err != nil; scanned {
		acc = Scan(sql)
	}
	if key != "" && (shapeParsed || scanned) {
		e := entry{acc: acc, scan: scanned}
		if scanned {
			e.acc = nil // each text is scanned: Scan is cheaper than a parse
		}
		c.mu.Lock()
		if len(c.m) >= c.max {
			clear(c.m)
		}
		c.m[key] = e
		c.mu.Unlock()
	}
	return acc, scanned
}

type parseError string

func (e parseError) Error() string { return string(e) }

const errUnparsable = parseError("tables: statement does not parse")

// shape appends sql to dst with each single-quoted string and each number
// replaced by '?'. Identifiers (also backquoted ones), double-quoted text
// (an identifier under ANSI_QUOTES) and comments are kept as they are, so
// that a shape names the same tables as its statement.
func shape(dst []byte, sql string) []byte {
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == '\'':
			j := i + 1
			for j < len(sql) {
				if sql[j] == '\\' {
					j += 2
					continue
				}
				if sql[j] == '\'' {
					if j+1 < len(sql) && sql[j+1] == '\'' {
						j += 2
						continue
					}
					break
				}
				j++
			}
			dst = append(dst, '?')
			i = min(j+1, len(sql))
		case c == '`' || c == '"':
			j := i + 1
			for j < len(sql) && sql[j] != c {
				j++
			}
			j = min(j+1, len(sql))
			dst = append(dst, sql[i:j]...)
			i = j
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			j := i + 2
			for j+1 < len(sql) && (sql[j] != '*' || sql[j+1] != '/') {
				j++
			}
			j = min(j+2, len(sql))
			dst = append(dst, sql[i:j]...)
			i = j
		case c == '#' || c == '-' && i+2 < len(sql) && sql[i+1] == '-' && (sql[i+2] == ' ' || sql[i+2] == '\t'):
			j := i
			for j < len(sql) && sql[j] != '\n' {
				j++
			}
			dst = append(dst, sql[i:j]...)
			i = j
		case c >= '0' && c <= '9' && (i == 0 || !identByte(sql[i-1]) && sql[i-1] != '.'):
			j := i
			for j < len(sql) && (identByte(sql[j]) || sql[j] == '.') {
				j++
			}
			if numeric(sql[i:j]) {
				dst = append(dst, '?')
			} else {
				// A name that begins with a digit (2024_orders): kept, or
				// every such table would share one shape and its tables.
				dst = append(dst, sql[i:j]...)
			}
			i = j
		case identByte(c):
			// A whole word, so that digits inside it stay.
			j := i
			for j < len(sql) && identByte(sql[j]) {
				j++
			}
			dst = append(dst, sql[i:j]...)
			i = j
		default:
			dst = append(dst, c)
			i++
		}
	}
	return dst
}

// numeric reports whether w, a run of word characters and dots that begins
// with a digit, is a number: 12, 1.5, 1e3, 1.5E (its exponent's sign and
// digits follow), 0x1F, 0b101. Anything else there is a name.
func numeric(w string) bool {
	if len(w) > 2 && w[0] == '0' && (w[1] == 'x' || w[1] == 'X' || w[1] == 'b' || w[1] == 'B') {
		for i := 2; i < len(w); i++ {
			c := w[i]
			hex := c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
			if w[1] == 'b' || w[1] == 'B' {
				hex = c == '0' || c == '1'
			}
			if !hex {
				return false
			}
		}
		return true
	}
	dot, exp := false, false
	for i := 0; i < len(w); i++ {
		switch c := w[i]; {
		case c >= '0' && c <= '9':
		case c == '.' && !dot && !exp:
			dot = true
		case (c == 'e' || c == 'E') && !exp:
			exp = true
		default:
			return false
		}
	}
	return true
}

func identByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '$' || c >= 0x80
}
