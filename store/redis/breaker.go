package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
)

// ErrLocked is returned by BreakerStore.Lock when another instance holds
// the lock; gobreaker waits and tries again.
var ErrLocked = errors.New("redisstore: breaker lock held elsewhere")

// ErrNotLocked is returned by BreakerStore.Unlock for a lock this store does
// not hold.
var ErrNotLocked = errors.New("redisstore: breaker lock not held")

// BreakerOptions configures a BreakerStore. The zero value is ready to use.
type BreakerOptions struct {
	// Prefix starts every key; "" means "paymux".
	Prefix string
	// LockTTL bounds how long a lock lives if its holder dies without
	// unlocking; zero means 10 s. gobreaker holds the lock while the
	// protected call runs, so it must exceed the longest provider call.
	LockTTL time.Duration
	// LocalWait bounds how long Lock waits for another goroutine of this
	// process holding the same lock; zero means 5 s.
	LocalWait time.Duration
	// DataTTL expires breaker state nobody has written for that long; zero
	// means never.
	DataTTL time.Duration
	// Timeout bounds each Redis call, since gobreaker's interface has no
	// context; zero means 2 s.
	Timeout time.Duration
}

// BreakerStore is a gobreaker.SharedDataStore on Redis, so that the
// breakers of several instances of a shop share their state: when one
// instance sees a provider fail, the others skip it too.
//
// Lock is a Redis lock (SET NX PX with a random owner token; Unlock deletes
// it only if the token still matches). Within one process, goroutines
// queue on a local lock first, so they hand over without gobreaker's
// 500 ms retry sleep; only instances in other processes see ErrLocked.
type BreakerStore struct {
	c    redis.UniversalClient
	opts BreakerOptions

	mu    sync.Mutex
	locks map[string]*localLock
}

type localLock struct {
	sem   chan struct{} // capacity 1: held while this process holds the lock
	token string        // owner token of the Redis lock; "" when not held
}

var _ gobreaker.SharedDataStore = (*BreakerStore)(nil)

// NewBreakerStore returns a BreakerStore using c.
func NewBreakerStore(c redis.UniversalClient, opts BreakerOptions) *BreakerStore {
	if opts.Prefix == "" {
		opts.Prefix = "paymux"
	}
	if opts.LockTTL <= 0 {
		opts.LockTTL = 10 * time.Second
	}
	if opts.LocalWait <= 0 {
		opts.LocalWait = 5 * time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	return &BreakerStore{c: c, opts: opts, locks: make(map[string]*localLock)}
}

func (b *BreakerStore) key(name string) string { return b.opts.Prefix + ":cb:" + name }

func (b *BreakerStore) local(name string) *localLock {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.locks[name]
	if l == nil {
		l = &localLock{sem: make(chan struct{}, 1)}
		b.locks[name] = l
	}
	return l
}

func (b *BreakerStore) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), b.opts.Timeout)
}

// Lock implements gobreaker.SharedDataStore.
func (b *BreakerStore) Lock(name string) error {
	l := b.local(name)
	t := time.NewTimer(b.opts.LocalWait)
	defer t.Stop()
	select {
	case l.sem <- struct{}{}:
	case <-t.C:
		return ErrLocked
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	token := hex.EncodeToString(raw[:])
	ctx, cancel := b.ctx()
	defer cancel()
	ok, err := b.c.SetNX(ctx, b.key(name), token, b.opts.LockTTL).Result()
	if !ok {
		// When the reply to SET NX is lost, go-redis sends it again, and
		// the second one finds this store's own token: look whose it is.
		if held, gerr := b.c.Get(ctx, b.key(name)).Result(); gerr == nil && held == token {
			ok, err = true, nil
		}
	}
	if err != nil || !ok {
		<-l.sem
		if err == nil {
			err = ErrLocked
		}
		return err
	}
	b.mu.Lock()
	l.token = token
	b.mu.Unlock()
	return nil
}

var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// Unlock implements gobreaker.SharedDataStore. It removes the Redis lock
// only if this store still owns it (its TTL may have ended and another
// instance taken it).
func (b *BreakerStore) Unlock(name string) error {
	l := b.local(name)
	b.mu.Lock()
	token := l.token
	l.token = ""
	b.mu.Unlock()
	if token == "" {
		return ErrNotLocked
	}
	defer func() { <-l.sem }()
	ctx, cancel := b.ctx()
	defer cancel()
	return unlockScript.Run(ctx, b.c, []string{b.key(name)}, token).Err()
}

// GetData implements gobreaker.SharedDataStore. Missing data is nil with no
// error, which gobreaker reads as "no shared state yet".
func (b *BreakerStore) GetData(name string) ([]byte, error) {
	ctx, cancel := b.ctx()
	defer cancel()
	v, err := b.c.Get(ctx, b.key(name)).Bytes()
	if isNil(err) {
		return nil, nil
	}
	return v, err
}

// SetData implements gobreaker.SharedDataStore.
func (b *BreakerStore) SetData(name string, data []byte) error {
	ctx, cancel := b.ctx()
	defer cancel()
	return b.c.Set(ctx, b.key(name), data, b.opts.DataTTL).Err()
}
