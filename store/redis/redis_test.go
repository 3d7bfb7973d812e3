package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"

	"github.com/paymux/paymux"
	redisstore "github.com/paymux/paymux/store/redis"
)

func setup(t *testing.T) (*redisstore.Store, *redis.Client, string) {
	t.Helper()
	c := client(t)
	p := prefix(t, c)
	return redisstore.New(c, redisstore.Options{Prefix: p}), c, p
}

func authorize(t testing.TB, st *redisstore.Store, key string) {
	t.Helper()
	ctx := context.Background()
	p := &paymux.Payment{ID: "pay-" + key, IdempotencyKey: key, Provider: "sim", Status: paymux.StatusPending, Amount: paymux.NewMoney(100, "EUR")}
	if _, claimed, err := st.ClaimIdempotency(ctx, paymux.ClaimParams{Key: key, Fingerprint: "fp", Token: "tok", Lease: time.Minute, Payment: p}); err != nil || !claimed {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	p.Status = paymux.StatusAuthorized
	p.ProviderRef = "ref-" + key
	if err := st.CompleteIdempotency(ctx, key, "tok", p); err != nil {
		t.Fatalf("complete: %v", err)
	}
}

// The happy path of an authorisation (claim, then complete with the
// payment insert) costs two round trips once the scripts are cached.
func TestRoundTripsPerAuthorisation(t *testing.T) {
	t.Parallel()
	st, c, _ := setup(t)
	hook := &redisstore.CountingHook{}
	c.AddHook(hook)
	authorize(t, st, "warm-up") // loads the scripts on a fresh server
	hook.Reset()
	authorize(t, st, "order-1")
	if n := hook.RoundTrips(); n != 2 {
		t.Fatalf("happy-path authorisation took %d round trips, want 2", n)
	}
}

// Every key an authorisation writes carries the store's hash tag, so the
// multi-key scripts work on Redis Cluster; event keys are single-key and
// untagged so they spread.
func TestKeysShareHashTag(t *testing.T) {
	t.Parallel()
	st, c, p := setup(t)
	ctx := context.Background()
	authorize(t, st, "order-1")
	if err := st.EnqueueDelivery(ctx, &paymux.Delivery{ID: "d1", NextAttemptAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	keys, err := c.Keys(ctx, "*"+p+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 5 {
		t.Fatalf("only %d keys written: %v", len(keys), keys)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "{"+p+"}:") {
			t.Errorf("key %q is outside the hash tag {%s}", k, p)
		}
	}
	if _, err := st.ClaimEvent(ctx, "sim", "evt_1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.Exists(ctx, p+":e:3:sim:evt_1").Result(); n != 1 {
		t.Fatal("event key not where expected")
	}
}

// A store that cannot reach Redis returns an error that is none of the
// store sentinels, so the orchestrator fails closed.
func TestUnreachableServerIsNotASentinel(t *testing.T) {
	t.Parallel()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	st := redisstore.New(c, redisstore.Options{})
	_, _, err := st.ClaimIdempotency(context.Background(), paymux.ClaimParams{Key: "k", Fingerprint: "f", Token: "t", Lease: time.Second})
	if err == nil {
		t.Fatal("claim succeeded without a server")
	}
	for _, s := range []error{paymux.ErrNotFound, paymux.ErrVersionConflict, paymux.ErrClaimLost} {
		if errors.Is(err, s) {
			t.Fatalf("unreachable server reported as %v", s)
		}
	}
}

func TestBreakerStoreLock(t *testing.T) {
	t.Parallel()
	c := client(t)
	p := prefix(t, c)
	a := redisstore.NewBreakerStore(c, redisstore.BreakerOptions{Prefix: p, LockTTL: 100 * time.Millisecond, LocalWait: 50 * time.Millisecond})
	b := redisstore.NewBreakerStore(c, redisstore.BreakerOptions{Prefix: p})

	if err := a.Lock("m"); err != nil {
		t.Fatal(err)
	}
	if err := b.Lock("m"); !errors.Is(err, redisstore.ErrLocked) {
		t.Fatalf("second instance locked a held lock: %v", err)
	}
	if err := a.Lock("m"); !errors.Is(err, redisstore.ErrLocked) {
		t.Fatalf("same instance locked a held lock: %v", err)
	}
	if err := a.Unlock("m"); err != nil {
		t.Fatal(err)
	}
	if err := a.Unlock("m"); !errors.Is(err, redisstore.ErrNotLocked) {
		t.Fatalf("double unlock: %v", err)
	}
	if err := b.Lock("m"); err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	if err := b.Unlock("m"); err != nil {
		t.Fatal(err)
	}

	// A holder that dies loses the lock after LockTTL, and its late Unlock
	// does not free the new holder's lock.
	if err := a.Lock("n"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for b.Lock("n") != nil {
		if time.Now().After(deadline) {
			t.Fatal("lock never expired")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := a.Unlock("n"); err != nil {
		t.Fatal(err)
	}
	c2 := redisstore.NewBreakerStore(c, redisstore.BreakerOptions{Prefix: p})
	if err := c2.Lock("n"); !errors.Is(err, redisstore.ErrLocked) {
		t.Fatalf("a stale unlock freed another instance's lock: %v", err)
	}
	_ = b.Unlock("n")

	// Goroutines of one process queue locally instead of failing.
	var wg sync.WaitGroup
	var mu sync.Mutex
	counter := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Lock("q"); err != nil {
				t.Errorf("Lock: %v", err)
				return
			}
			mu.Lock()
			counter++
			mu.Unlock()
			if err := b.Unlock("q"); err != nil {
				t.Errorf("Unlock: %v", err)
			}
		}()
	}
	wg.Wait()
	if counter != 8 {
		t.Fatalf("%d of 8 goroutines got the lock", counter)
	}
}

// Two distributed breakers, as in two instances of a shop, share their
// state through Redis: when one trips, the other sees it open and does not
// call the provider.
func TestBreakerStoreSharesState(t *testing.T) {
	t.Parallel()
	c1 := client(t)
	c2 := client(t) // another connection pool, as another process would have
	breakersShareState(t, c1, c2, prefix(t, c1))
}

// breakersShareState trips a breaker on c1 and checks that one on c2, with
// the same prefix, sees it open and does not call the provider.
func breakersShareState(t *testing.T, c1, c2 redis.UniversalClient, p string) {
	t.Helper()
	settings := gobreaker.Settings{
		Name:        "sim",
		Timeout:     time.Minute,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 3 },
	}
	a, err := gobreaker.NewDistributedCircuitBreaker[int](redisstore.NewBreakerStore(c1, redisstore.BreakerOptions{Prefix: p}), settings)
	if err != nil {
		t.Fatal(err)
	}
	b, err := gobreaker.NewDistributedCircuitBreaker[int](redisstore.NewBreakerStore(c2, redisstore.BreakerOptions{Prefix: p}), settings)
	if err != nil {
		t.Fatal(err)
	}
	fail := errors.New("provider down")
	for range 3 {
		if _, err := a.Execute(func() (int, error) { return 0, fail }); !errors.Is(err, fail) {
			t.Fatalf("Execute: %v", err)
		}
	}
	if st, err := a.State(); err != nil || st != gobreaker.StateOpen {
		t.Fatalf("instance A: state %v, err %v; want open", st, err)
	}
	if st, err := b.State(); err != nil || st != gobreaker.StateOpen {
		t.Fatalf("instance B: state %v, err %v; want open", st, err)
	}
	called := false
	_, err = b.Execute(func() (int, error) { called = true; return 1, nil })
	if !errors.Is(err, gobreaker.ErrOpenState) || called {
		t.Fatalf("instance B called the provider through an open breaker: err %v, called %v", err, called)
	}
}

// On a client that routes keys by slot (Cluster, Ring) the event key and the
// outbox may live on different servers, so CompleteEventWithDelivery
// enqueues first and marks the event after: two round trips instead of one,
// and still never a processed event without its delivery. A one-shard Ring
// takes that path against the test server.
func TestCompleteEventWithDeliveryOnAShardedClient(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := client(t)
	p := prefix(t, c)
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"one": c.Options().Addr}, DB: c.Options().DB,
		Username: c.Options().Username, Password: c.Options().Password})
	defer ring.Close()
	hook := &redisstore.CountingHook{}
	ring.AddHook(hook)
	st := redisstore.New(ring, redisstore.Options{Prefix: p})
	for i := range 2 { // the first loads the scripts
		id := fmt.Sprintf("evt_%d", i)
		d := &paymux.Delivery{ID: "sim/" + id, Event: paymux.Event{Provider: "sim", ID: id}, NextAttemptAt: time.Now()}
		if c, err := st.ClaimEvent(ctx, "sim", id, time.Minute); err != nil || c != paymux.EventClaimed {
			t.Fatalf("ClaimEvent: %v %v", c, err)
		}
		hook.Reset()
		if err := st.CompleteEventWithDelivery(ctx, "sim", id, time.Hour, d); err != nil {
			t.Fatal(err)
		}
		if n := hook.RoundTrips(); i == 1 && n != 2 {
			t.Fatalf("CompleteEventWithDelivery on a Ring took %d round trips, want 2", n)
		}
		if c, err := st.ClaimEvent(ctx, "sim", id, time.Minute); err != nil || c != paymux.EventDuplicate {
			t.Fatalf("event after CompleteEventWithDelivery: %v %v", c, err)
		}
		if got, err := st.GetDelivery(ctx, d.ID); err != nil || got.State != paymux.DeliveryPending {
			t.Fatalf("delivery after CompleteEventWithDelivery: %+v %v", got, err)
		}
	}
	// The single-server client does it in one.
	st1 := redisstore.New(c, redisstore.Options{Prefix: p})
	hook1 := &redisstore.CountingHook{}
	c.AddHook(hook1)
	for i := range 2 {
		id := fmt.Sprintf("evt_one_%d", i)
		hook1.Reset()
		d := &paymux.Delivery{ID: "sim/" + id, Event: paymux.Event{Provider: "sim", ID: id}, NextAttemptAt: time.Now()}
		if err := st1.CompleteEventWithDelivery(ctx, "sim", id, time.Hour, d); err != nil {
			t.Fatal(err)
		}
		if n := hook1.RoundTrips(); i == 1 && n != 1 {
			t.Fatalf("CompleteEventWithDelivery on a Client took %d round trips, want 1", n)
		}
	}
}
