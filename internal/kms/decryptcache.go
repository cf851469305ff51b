package kms

import (
	"bytes"
	"container/list"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
)

// DecryptCache remembers unwrapped data keys for consumers: a stream reuses
// each data key for many records, so most records need no KMS call. It is a
// fixed-size LRU keyed by ciphertext and encryption context; errors are not
// cached, and concurrent misses on one key share a single Decrypt call.
type DecryptCache struct {
	p    Provider
	size int

	mu      sync.Mutex
	lru     *list.List // of *decryptEntry, most recent first
	entries map[string]*list.Element
	flights map[string]*decryptFlight
	hits    uint64
	misses  uint64
}

type decryptEntry struct {
	key       string
	plaintext []byte // owned by the cache; callers get copies
}

type decryptFlight struct {
	done chan struct{}
	err  error
}

// NewDecryptCache returns a cache holding up to size data keys (at least 1).
func NewDecryptCache(p Provider, size int) *DecryptCache {
	if size < 1 {
		size = 1
	}
	return &DecryptCache{
		p:       p,
		size:    size,
		lru:     list.New(),
		entries: make(map[string]*list.Element),
		flights: make(map[string]*decryptFlight),
	}
}

// Decrypt returns the plaintext of ciphertext under encCtx, from the cache or
// from the provider. The result is the caller's own copy: it may zero it.
func (c *DecryptCache) Decrypt(ctx context.Context, ciphertext []byte, encCtx map[string]string) ([]byte, error) {
	key := decryptKey(ciphertext, encCtx)
	c.mu.Lock()
	for {
		if el, ok := c.entries[key]; ok {
			c.lru.MoveToFront(el)
			c.hits++
			pt := bytes.Clone(el.Value.(*decryptEntry).plaintext)
			c.mu.Unlock()
			return pt, nil
		}
		f, ok := c.flights[key]
		if !ok {
			break
		}
		c.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("kms: %s: decrypt: %w", c.p.Name(), ctx.Err())
		}
		// Share the flight's error, unless it was the other caller's cancellation.
		if f.err != nil && !isContextErr(f.err) {
			return nil, f.err
		}
		// On success the key is now cached (unless already evicted: then we decrypt).
		c.mu.Lock()
	}
	c.misses++
	f := &decryptFlight{done: make(chan struct{})}
	c.flights[key] = f
	c.mu.Unlock()

	pt, err := c.p.Decrypt(ctx, ciphertext, encCtx)

	c.mu.Lock()
	delete(c.flights, key)
	var out []byte
	if err != nil {
		f.err = err
	} else {
		out = bytes.Clone(pt)
		c.insert(key, pt)
	}
	close(f.done)
	c.mu.Unlock()
	return out, err
}

func (c *DecryptCache) insert(key string, pt []byte) {
	c.entries[key] = c.lru.PushFront(&decryptEntry{key: key, plaintext: pt})
	for c.lru.Len() > c.size {
		el := c.lru.Back()
		e := c.lru.Remove(el).(*decryptEntry)
		delete(c.entries, e.key)
		zero(e.plaintext)
	}
}

// decryptKey is the cache key: length-prefixed ciphertext, then the canonical context.
func decryptKey(ciphertext []byte, encCtx map[string]string) string {
	cc := canonicalContext(encCtx)
	b := make([]byte, 0, 4+len(ciphertext)+len(cc))
	b = binary.BigEndian.AppendUint32(b, uint32(len(ciphertext)))
	b = append(b, ciphertext...)
	return string(append(b, cc...))
}

// DecryptCacheStats are the cache's counters.
type DecryptCacheStats struct {
	Hits, Misses uint64
	Len          int
}

// Stats returns a snapshot of the counters.
func (c *DecryptCache) Stats() DecryptCacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return DecryptCacheStats{Hits: c.hits, Misses: c.misses, Len: c.lru.Len()}
}

// Close zeroes and drops every cached key. The cache stays usable.
func (c *DecryptCache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for el := c.lru.Front(); el != nil; el = el.Next() {
		zero(el.Value.(*decryptEntry).plaintext)
	}
	c.lru.Init()
	clear(c.entries)
	return nil
}
