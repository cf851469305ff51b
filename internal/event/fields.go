package event

import (
	"encoding/json"
	"slices"
	"strings"
)

// Field is one JSON member of an event or payload that the model does not
// know: another producer's, a newer DAS version's, or one of das's own
// ("dasSource", "dasAuditPos", ...).
type Field struct {
	Key   string
	Value json.RawMessage
}

// Fields are the extra members of an event, in any order; the encoder
// writes them sorted by key. A slice rather than a map: das adds one to
// three to every event it captures, and a map costs two allocations and
// a hash per key on that path.
type Fields []Field

// Get returns the value of key, nil when absent.
func (f Fields) Get(key string) json.RawMessage {
	for i := len(f) - 1; i >= 0; i-- {
		if f[i].Key == key {
			return f[i].Value
		}
	}
	return nil
}

// Has reports whether key is present.
func (f Fields) Has(key string) bool {
	for i := range f {
		if f[i].Key == key {
			return true
		}
	}
	return false
}

// With returns f with key set to v, in a new slice: f may be shared (the
// proxy puts one Fields on every event it makes), so it is never written.
func (f Fields) With(key string, v json.RawMessage) Fields {
	out := make(Fields, 0, len(f)+1)
	for _, x := range f {
		if x.Key != key {
			out = append(out, x)
		}
	}
	return append(out, Field{Key: key, Value: v})
}

// set sets key in place, for decoders that own f.
func (f *Fields) set(key string, v json.RawMessage) {
	for i := range *f {
		if (*f)[i].Key == key {
			(*f)[i].Value = v
			return
		}
	}
	*f = append(*f, Field{Key: key, Value: v})
}

// sort orders f by key: decoders fill it from a map, in random order.
func (f Fields) sort() {
	slices.SortFunc(f, func(a, b Field) int { return strings.Compare(a.Key, b.Key) })
}
