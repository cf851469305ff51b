package kms

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrClosed is returned by Acquire after Close.
var ErrClosed = errors.New("kms: key cache closed")

// KeyCache hands the sealer a data key that is reused for a bounded number of
// acquisitions and a bounded time, the way DAS rotates data keys: fewer KMS
// calls than one key per record, and a bounded blast radius per key.
type KeyCache struct {
	p       Provider
	encCtx  map[string]string
	maxUses int
	maxAge  time.Duration
	now     func() time.Time

	mu        sync.Mutex
	cur       *cachedKey
	flight    *keyFlight              // the GenerateDataKey in progress, if any
	held      map[*cachedKey]struct{} // retired keys still under lease
	closed    bool
	generated uint64
	acquired  uint64

	graceMax  int // WithGrace: extra acquisitions of the last key while KMS fails
	graceUsed int
	onGrace   func(err error, served int)
}

type cachedKey struct {
	key     DataKey
	gen     uint64
	born    time.Time
	uses    int
	refs    int
	retired bool
}

type keyFlight struct {
	done chan struct{}
	err  error
}

// KeyCacheOption configures a KeyCache.
type KeyCacheOption func(*KeyCache)

// WithGrace keeps the last valid data key in service past its limits while
// KMS cannot make a new one, for at most maxExtraUses more acquisitions: the
// spool_on_kms_outage option, which keeps a stream recording through a KMS
// outage instead of stopping. onGrace is told when the grace period starts
// (with the KMS error) and when a new key ends it (err nil, with the number of
// acquisitions it served).
func WithGrace(maxExtraUses int, onGrace func(err error, served int)) KeyCacheOption {
	return func(c *KeyCache) { c.graceMax, c.onGrace = maxExtraUses, onGrace }
}

// WithClock replaces time.Now, for tests of maxAge.
func WithClock(now func() time.Time) KeyCacheOption {
	return func(c *KeyCache) { c.now = now }
}

// NewKeyCache returns a cache of data keys from p under encCtx. A key is
// replaced once it has served maxUses acquisitions or is older than maxAge;
// zero (or less) means no limit on that dimension.
func NewKeyCache(p Provider, encCtx map[string]string, maxUses int, maxAge time.Duration, opts ...KeyCacheOption) *KeyCache {
	c := &KeyCache{
		p:       p,
		encCtx:  copyContext(encCtx),
		maxUses: maxUses,
		maxAge:  maxAge,
		now:     time.Now,
		held:    make(map[*cachedKey]struct{}),
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Lease is one use of a data key. Its plaintext stays valid until Release;
// callers must not modify it or keep it past Release.
type Lease struct {
	c        *KeyCache
	k        *cachedKey
	released bool // guarded by c.mu
}

// Plaintext is the 32-byte data key. It is shared with other leases: read only.
func (l *Lease) Plaintext() []byte { return l.k.key.Plaintext }

// Ciphertext is the data key wrapped by the provider: the record's "key" field.
func (l *Lease) Ciphertext() []byte { return l.k.key.Ciphertext }

// KeyID is the master key that wrapped this data key.
func (l *Lease) KeyID() string { return l.k.key.KeyID }

// Generation numbers the keys of this cache from 1, so a change of key is visible.
func (l *Lease) Generation() uint64 { return l.k.gen }

// Release ends the lease. Once a retired key's last lease is released, its
// plaintext is zeroed. Releasing twice is a no-op.
func (l *Lease) Release() {
	c := l.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if l.released {
		return
	}
	l.released = true
	k := l.k
	k.refs--
	if k.retired && k.refs == 0 {
		zero(k.key.Plaintext)
		delete(c.held, k)
	}
}

// Acquire returns a lease on the current data key, generating a new key first
// when the current one is used up or too old. Only one GenerateDataKey runs at
// a time; concurrent callers wait for it and share its result or its error.
func (c *KeyCache) Acquire(ctx context.Context) (*Lease, error) {
	c.mu.Lock()
	for {
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		if k := c.cur; k != nil && c.fresh(k) {
			k.uses++
			k.refs++
			c.acquired++
			c.mu.Unlock()
			return &Lease{c: c, k: k}, nil
		}
		if f := c.flight; f != nil {
			c.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return nil, fmt.Errorf("kms: %s: acquire data key: %w", c.p.Name(), ctx.Err())
			}
			// The generator's own cancellation is not ours: try again then.
			if f.err != nil && !isContextErr(f.err) {
				return nil, f.err
			}
			c.mu.Lock()
			continue
		}
		f := &keyFlight{done: make(chan struct{})}
		c.flight = f
		c.mu.Unlock()

		dk, err := c.p.GenerateDataKey(ctx, c.encCtx)

		c.mu.Lock()
		c.flight = nil
		if err != nil {
			f.err = fmt.Errorf("kms: %s: acquire data key: %w", c.p.Name(), err)
			close(f.done)
			if k := c.cur; k != nil && c.graceUsed < c.graceMax && !c.closed {
				c.graceUsed++
				k.uses++
				k.refs++
				c.acquired++
				first := c.graceUsed == 1
				c.mu.Unlock()
				if first && c.onGrace != nil {
					c.onGrace(f.err, 0)
				}
				return &Lease{c: c, k: k}, nil
			}
			c.mu.Unlock()
			return nil, f.err
		}
		if c.graceUsed > 0 {
			served := c.graceUsed
			c.graceUsed = 0
			if c.onGrace != nil {
				defer c.onGrace(nil, served)
			}
		}
		c.generated++
		if c.closed {
			zero(dk.Plaintext)
			close(f.done)
			continue // reports ErrClosed
		}
		c.retire(c.cur)
		c.cur = &cachedKey{key: dk, gen: c.generated, born: c.now()}
		close(f.done)
	}
}

func (c *KeyCache) fresh(k *cachedKey) bool {
	if c.maxUses > 0 && k.uses >= c.maxUses {
		return false
	}
	if c.maxAge > 0 && c.now().Sub(k.born) >= c.maxAge {
		return false
	}
	return true
}

// retire takes k out of service: zeroed now if unleased, else at its last Release.
func (c *KeyCache) retire(k *cachedKey) {
	if k == nil {
		return
	}
	k.retired = true
	if k.refs == 0 {
		zero(k.key.Plaintext)
	} else {
		c.held[k] = struct{}{}
	}
}

// Close stops the cache. Keys not under lease are zeroed at once; a key still
// under lease is zeroed at its last Release rather than under a sealer that is
// using it, which would silently seal records with a zero key.
func (c *KeyCache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	c.retire(c.cur)
	c.cur = nil
	return nil
}

// KeyCacheStats are the cache's counters.
type KeyCacheStats struct {
	Generated  uint64 // data keys generated (GenerateDataKey successes)
	Generation uint64 // generation of the current key (0: none yet)
	Acquired   uint64 // leases handed out
	Held       int    // retired keys still under lease (not yet zeroed)
}

// Stats returns a snapshot of the counters.
func (c *KeyCache) Stats() KeyCacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := KeyCacheStats{Generated: c.generated, Acquired: c.acquired, Held: len(c.held)}
	if c.cur != nil {
		s.Generation = c.cur.gen
	}
	return s
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
