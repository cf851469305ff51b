package kms

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeProvider counts calls, can fail or block, and checks it never runs two
// GenerateDataKey calls at once.
type fakeProvider struct {
	mu        sync.Mutex
	keys      map[string][]byte // ciphertext -> plaintext copy
	genCalls  int
	decCalls  int
	fail      error
	gate      chan struct{} // when set, calls wait on it
	delay     time.Duration // GenerateDataKey takes this long
	inFlight  atomic.Int32
	maxFlight atomic.Int32
}

func newFake() *fakeProvider { return &fakeProvider{keys: make(map[string][]byte)} }

func (f *fakeProvider) Name() string { return "fake" }

func (f *fakeProvider) wait(ctx context.Context) error {
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if gate == nil {
		return nil
	}
	select {
	case <-gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fakeProvider) GenerateDataKey(ctx context.Context, encCtx map[string]string) (DataKey, error) {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		m := f.maxFlight.Load()
		if n <= m || f.maxFlight.CompareAndSwap(m, n) {
			break
		}
	}
	if err := f.wait(ctx); err != nil {
		return DataKey{}, err
	}
	time.Sleep(f.delay)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.genCalls++
	if f.fail != nil {
		return DataKey{}, f.fail
	}
	pt := make([]byte, 32)
	rand.Read(pt)
	ct := binary.BigEndian.AppendUint64([]byte("ct-"), uint64(f.genCalls))
	f.keys[string(ct)] = bytes.Clone(pt)
	return DataKey{Plaintext: pt, Ciphertext: ct, KeyID: "fake"}, nil
}

func (f *fakeProvider) Decrypt(ctx context.Context, ct []byte, encCtx map[string]string) ([]byte, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.decCalls++
	if f.fail != nil {
		return nil, f.fail
	}
	pt, ok := f.keys[string(ct)+"|"+encCtx["k"]]
	if !ok {
		return nil, errors.New("fake: unknown ciphertext")
	}
	return bytes.Clone(pt), nil
}

func (f *fakeProvider) calls() (gen, dec int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.genCalls, f.decCalls
}

func acquire(t *testing.T, c *KeyCache) *Lease {
	t.Helper()
	l, err := c.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func isZero(b []byte) bool { return len(b) > 0 && bytes.Equal(b, make([]byte, len(b))) }

func TestKeyCacheMaxUses(t *testing.T) {
	f := newFake()
	c := NewKeyCache(f, streamCtx, 3, 0)
	defer c.Close()
	var gens []uint64
	for range 7 {
		l := acquire(t, c)
		gens = append(gens, l.Generation())
		l.Release()
	}
	if want := []uint64{1, 1, 1, 2, 2, 2, 3}; fmt.Sprint(gens) != fmt.Sprint(want) {
		t.Errorf("generations %v, want %v", gens, want)
	}
	if s := c.Stats(); s.Generated != 3 || s.Generation != 3 || s.Acquired != 7 {
		t.Errorf("stats %+v, want 3 generated, generation 3, 7 acquired", s)
	}
	if gen, _ := f.calls(); gen != 3 {
		t.Errorf("%d GenerateDataKey calls, want 3", gen)
	}
}

func TestKeyCacheMaxAge(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewKeyCache(newFake(), streamCtx, 0, time.Minute, WithClock(func() time.Time { return now }))
	defer c.Close()
	steps := []struct {
		advance time.Duration
		gen     uint64
	}{
		{0, 1},
		{59 * time.Second, 1},
		{time.Second, 2}, // exactly maxAge old: replaced
		{30 * time.Second, 2},
		{2 * time.Hour, 3},
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		l := acquire(t, c)
		if l.Generation() != s.gen {
			t.Errorf("step %d (+%v): generation %d, want %d", i, s.advance, l.Generation(), s.gen)
		}
		l.Release()
	}
}

func TestKeyCacheZeroesRetiredKeys(t *testing.T) {
	c := NewKeyCache(newFake(), streamCtx, 2, 0)
	a := acquire(t, c) // gen 1, use 1
	b := acquire(t, c) // gen 1, use 2
	pt1 := a.Plaintext()
	if !bytes.Equal(a.Plaintext(), b.Plaintext()) || a.Generation() != b.Generation() {
		t.Fatal("two leases within maxUses got different keys")
	}
	n := acquire(t, c) // gen 2: gen 1 retired, still leased twice
	if n.Generation() != 2 {
		t.Fatalf("generation %d, want 2", n.Generation())
	}
	if isZero(pt1) {
		t.Fatal("retired key zeroed while leased")
	}
	if s := c.Stats(); s.Held != 1 {
		t.Errorf("Held = %d, want 1", s.Held)
	}
	a.Release()
	a.Release() // twice: must not drop b's reference
	if isZero(pt1) {
		t.Fatal("retired key zeroed while one lease remains")
	}
	b.Release()
	if !isZero(pt1) {
		t.Fatal("retired key not zeroed after its last release")
	}
	if s := c.Stats(); s.Held != 0 {
		t.Errorf("Held = %d, want 0", s.Held)
	}

	// A key retired with no lease outstanding is zeroed at once.
	pt2 := n.Plaintext()
	n.Release()
	m := acquire(t, c) // gen 2, use 2
	m.Release()
	if isZero(pt2) {
		t.Fatal("current key zeroed")
	}
	o := acquire(t, c) // gen 3
	if !isZero(pt2) {
		t.Fatal("unleased retired key not zeroed")
	}

	// Close: the leased current key is zeroed at release, not under the lease.
	pt3 := o.Plaintext()
	c.Close()
	if isZero(pt3) {
		t.Fatal("Close zeroed a key under lease")
	}
	o.Release()
	if !isZero(pt3) {
		t.Fatal("key not zeroed after Close and release")
	}
	if _, err := c.Acquire(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Acquire after Close: err = %v, want ErrClosed", err)
	}
}

func TestKeyCacheCloseZeroesIdleKey(t *testing.T) {
	c := NewKeyCache(newFake(), streamCtx, 10, 0)
	l := acquire(t, c)
	pt := l.Plaintext()
	l.Release()
	c.Close()
	if !isZero(pt) {
		t.Fatal("Close left the idle current key in memory")
	}
}

func TestKeyCacheErrors(t *testing.T) {
	f := newFake()
	boom := errors.New("kms down")
	f.fail = boom
	c := NewKeyCache(f, streamCtx, 0, 0)
	defer c.Close()
	_, err := c.Acquire(context.Background())
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the provider's error", err)
	}
	f.mu.Lock()
	f.fail = nil
	f.mu.Unlock()
	l, err := c.Acquire(context.Background())
	if err != nil {
		t.Fatalf("error was sticky: %v", err)
	}
	l.Release()
	if gen, _ := f.calls(); gen != 2 {
		t.Errorf("%d GenerateDataKey calls, want 2", gen)
	}
}

// Waiters share the one GenerateDataKey in flight, and a waiter's own
// cancellation frees it without disturbing the others.
func TestKeyCacheSingleFlight(t *testing.T) {
	f := newFake()
	f.gate = make(chan struct{})
	c := NewKeyCache(f, streamCtx, 0, 0)
	defer c.Close()

	const n = 8
	var wg sync.WaitGroup
	gens := make(chan uint64, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := c.Acquire(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			gens <- l.Generation()
			l.Release()
		}()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := c.Acquire(ctx)
		done <- err
	}()
	for f.inFlight.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled waiter: err = %v", err)
	}
	close(f.gate)
	wg.Wait()
	close(gens)
	for g := range gens {
		if g != 1 {
			t.Errorf("a waiter got generation %d, want 1", g)
		}
	}
	if gen, _ := f.calls(); gen != 1 {
		t.Errorf("%d GenerateDataKey calls, want 1", gen)
	}
}

// Run with -race. Every key serves exactly maxUses leases, never two
// generations at once, and no lease ever sees a zeroed key.
func TestKeyCacheConcurrent(t *testing.T) {
	f := newFake()
	f.delay = 100 * time.Microsecond // widen the window for a second generator
	const (
		workers = 16
		each    = 200
		maxUses = 10
	)
	c := NewKeyCache(f, streamCtx, maxUses, 0)
	defer c.Close()
	var mu sync.Mutex
	uses := map[uint64]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				l, err := c.Acquire(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				f.mu.Lock()
				want := f.keys[string(l.Ciphertext())]
				f.mu.Unlock()
				if !bytes.Equal(l.Plaintext(), want) {
					t.Error("lease plaintext does not match its ciphertext (zeroed under a lease?)")
				}
				mu.Lock()
				uses[l.Generation()]++
				mu.Unlock()
				l.Release()
			}
		}()
	}
	wg.Wait()
	total := workers * each
	if gen, _ := f.calls(); gen != total/maxUses {
		t.Errorf("%d GenerateDataKey calls, want %d", gen, total/maxUses)
	}
	for g, n := range uses {
		if n != maxUses {
			t.Errorf("generation %d served %d leases, want %d", g, n, maxUses)
		}
	}
	if m := f.maxFlight.Load(); m != 1 {
		t.Errorf("%d GenerateDataKey calls in flight at once, want 1", m)
	}
	if s := c.Stats(); s.Held != 0 || s.Acquired != uint64(total) {
		t.Errorf("stats %+v", s)
	}
}

// The cache works with a real provider: leases carry blobs that unwrap to their plaintext.
func TestKeyCacheWithLocal(t *testing.T) {
	l, _ := openTestLocal(t)
	c := NewKeyCache(l, streamCtx, 2, 0)
	defer c.Close()
	for range 3 {
		lease := acquire(t, c)
		pt, err := l.Decrypt(context.Background(), lease.Ciphertext(), streamCtx)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(pt, lease.Plaintext()) || lease.KeyID() != l.KeyID() {
			t.Fatal("lease does not match its blob")
		}
		lease.Release()
	}
}

// fake decrypt keys are "ciphertext|context value".
func (f *fakeProvider) add(ct, ctxValue string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	pt := make([]byte, 32)
	rand.Read(pt)
	f.keys[ct+"|"+ctxValue] = bytes.Clone(pt)
	return pt
}

func TestDecryptCache(t *testing.T) {
	ctx := context.Background()
	f := newFake()
	ka, kb, kc := f.add("a", "1"), f.add("b", "1"), f.add("c", "1")
	ka2 := f.add("a", "2")
	c := NewDecryptCache(f, 2)
	get := func(ct, v string, want []byte) []byte {
		t.Helper()
		pt, err := c.Decrypt(ctx, []byte(ct), map[string]string{"k": v})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(pt, want) {
			t.Fatalf("%s|%s: wrong plaintext", ct, v)
		}
		return pt
	}
	calls := func() int { _, d := f.calls(); return d }

	pt := get("a", "1", ka)
	clear(pt) // the caller owns its copy
	get("a", "1", ka)
	if calls() != 1 {
		t.Fatalf("%d provider calls after a hit, want 1", calls())
	}
	get("a", "2", ka2) // same ciphertext, other context: a different entry
	if calls() != 2 {
		t.Fatalf("context is not part of the cache key")
	}
	// LRU order: a|2 (newest), a|1. Touch a|1, add b: a|2 is evicted.
	c.mu.Lock()
	evicted := c.entries[decryptKey([]byte("a"), map[string]string{"k": "2"})].Value.(*decryptEntry).plaintext
	c.mu.Unlock()
	get("a", "1", ka)
	get("b", "1", kb)
	if !isZero(evicted) {
		t.Error("evicted plaintext not zeroed")
	}
	n := calls()
	get("a", "1", ka)
	get("b", "1", kb)
	if calls() != n {
		t.Error("recently used entries were evicted")
	}
	get("a", "2", ka2)
	if calls() != n+1 {
		t.Error("evicted entry was still served from the cache")
	}
	if s := c.Stats(); s.Len != 2 || s.Hits != 4 || s.Misses != 4 {
		t.Errorf("stats %+v, want len 2, 4 hits, 4 misses", s)
	}

	// Errors are not cached.
	boom := errors.New("kms down")
	f.mu.Lock()
	f.fail = boom
	f.mu.Unlock()
	if _, err := c.Decrypt(ctx, []byte("c"), map[string]string{"k": "1"}); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the provider's error", err)
	}
	f.mu.Lock()
	f.fail = nil
	f.mu.Unlock()
	get("c", "1", kc)

	c.mu.Lock()
	var held [][]byte
	for el := c.lru.Front(); el != nil; el = el.Next() {
		held = append(held, el.Value.(*decryptEntry).plaintext)
	}
	c.mu.Unlock()
	c.Close()
	for _, p := range held {
		if !isZero(p) {
			t.Error("Close left a key in memory")
		}
	}
	if c.Stats().Len != 0 {
		t.Error("Close left entries")
	}
}

func TestDecryptCacheConcurrentMisses(t *testing.T) {
	f := newFake()
	want := f.add("a", "1")
	f.gate = make(chan struct{})
	c := NewDecryptCache(f, 4)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pt, err := c.Decrypt(context.Background(), []byte("a"), map[string]string{"k": "1"})
			if err != nil || !bytes.Equal(pt, want) {
				t.Errorf("pt ok=%v err=%v", bytes.Equal(pt, want), err)
			}
		}()
	}
	time.Sleep(20 * time.Millisecond) // let them pile up on the gate
	close(f.gate)
	wg.Wait()
	if _, d := f.calls(); d != 1 {
		t.Errorf("%d Decrypt calls for one key, want 1", d)
	}
}

func BenchmarkKeyCacheAcquire(b *testing.B) {
	l, _ := openTestLocal(b)
	c := NewKeyCache(l, streamCtx, 1000, time.Hour)
	defer c.Close()
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			lease, err := c.Acquire(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			lease.Release()
		}
	})
}

func BenchmarkDecryptCacheHit(b *testing.B) {
	l, _ := openTestLocal(b)
	ctx := context.Background()
	dk, err := l.GenerateDataKey(ctx, streamCtx)
	if err != nil {
		b.Fatal(err)
	}
	c := NewDecryptCache(l, 64)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Decrypt(ctx, dk.Ciphertext, streamCtx); err != nil {
			b.Fatal(err)
		}
	}
}

// failingProvider fails GenerateDataKey while down is set.
type failingProvider struct {
	Provider
	mu   sync.Mutex
	down bool
}

func (f *failingProvider) GenerateDataKey(ctx context.Context, ec map[string]string) (DataKey, error) {
	f.mu.Lock()
	down := f.down
	f.mu.Unlock()
	if down {
		return DataKey{}, errors.New("dial tcp: connection refused")
	}
	return f.Provider.GenerateDataKey(ctx, ec)
}

func TestKeyCacheGrace(t *testing.T) {
	local, err := OpenLocal(filepath.Join(t.TempDir(), "k"))
	if err != nil {
		t.Fatal(err)
	}
	p := &failingProvider{Provider: local}
	var started, ended int
	var served int
	c := NewKeyCache(p, map[string]string{"a": "b"}, 1, 0, WithGrace(2, func(err error, n int) {
		if err != nil {
			started++
		} else {
			ended++
			served = n
		}
	}))
	defer c.Close()
	l, err := c.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	first := l.Generation()
	l.Release()
	p.mu.Lock()
	p.down = true
	p.mu.Unlock()
	for i := range 2 {
		l, err := c.Acquire(context.Background())
		if err != nil {
			t.Fatalf("grace acquisition %d: %v", i, err)
		}
		if l.Generation() != first {
			t.Fatal("grace must reuse the last valid key")
		}
		l.Release()
	}
	if _, err := c.Acquire(context.Background()); err == nil {
		t.Fatal("the grace period is not bounded")
	}
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
	l, err = c.Acquire(context.Background())
	if err != nil || l.Generation() == first {
		t.Fatalf("after KMS returns a new key must be made: %v", err)
	}
	l.Release()
	if started != 1 || ended != 1 || served != 2 {
		t.Fatalf("grace callbacks: started %d ended %d served %d", started, ended, served)
	}
}
