package integration

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/internal/testproxy"
	"github.com/paymux/paymux/providers/sim"
	redisstore "github.com/paymux/paymux/store/redis"
	sqlstore "github.com/paymux/paymux/store/sql"
)

// The fail-closed test: a TCP proxy between the orchestrator and its store
// is cut while authorisations run. No provider call may be made without a
// claim, callers must get ErrStoreUnavailable, and once the proxy is back
// the retried keys complete with exactly one charge each.

func TestFailClosedRedis(t *testing.T) {
	t.Parallel()
	direct := redisClient(t)
	prefix := redisPrefix(t, direct)
	proxy := testproxy.Start(t, redisOptions(t).Addr)
	opts := redisOptions(t)
	opts.Addr = proxy.Addr()
	opts.DialTimeout = 500 * time.Millisecond
	opts.DialerRetries = 1 // fail fast while the proxy is down
	opts.MaxRetries = 1
	opts.ReadTimeout = time.Second
	opts.WriteTimeout = time.Second
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	runFailClosed(t, proxy, redisstore.New(c, redisstore.Options{Prefix: prefix}))
}

func TestFailClosedPostgres(t *testing.T) {
	t.Parallel()
	direct := sqlDB(t, sqlstore.Postgres, nil)
	_, prefix := sqlStore(t, direct, sqlstore.Postgres)
	dsn, envVar := serverDSN(sqlstore.Postgres)
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		t.Skipf("the proxy needs %s as a postgres:// URL", envVar)
	}
	target := u.Host
	if _, _, err := net.SplitHostPort(target); err != nil {
		target = net.JoinHostPort(target, "5432")
	}
	proxy := testproxy.Start(t, target)
	u.Host = proxy.Addr()
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	db, err := sqlstore.OpenDB(sqlstore.Postgres, u.String())
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(16)
	t.Cleanup(func() { _ = db.Close() })
	st, err := sqlstore.New(db, sqlstore.Options{Dialect: sqlstore.Postgres, TablePrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	runFailClosed(t, proxy, st)
}

func runFailClosed(t *testing.T, proxy *testproxy.Proxy, st paymux.Store) {
	provider := newCountingSim(sim.Config{})
	o, err := paymux.New(paymux.Config{
		Providers:  []paymux.Provider{provider},
		Store:      st,
		Logger:     slog.New(slog.DiscardHandler),
		ClaimLease: time.Second, // a claim whose completion was cut is taken over soon
	})
	if err != nil {
		t.Fatal(err)
	}
	run := randomName("")
	keyA := func(i int) string { return fmt.Sprintf("fc-%s-a%d", run, i) }
	keyB := func(i int) string { return fmt.Sprintf("fc-%s-b%d", run, i) }
	const nA, nB, cutAfter = 150, 40, 50

	authorize := func(k string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := o.Authorize(ctx, cardRequest(k))
		return err
	}
	// checkDown asserts that an error is the store's, not anything else.
	var wrongErrs atomic.Int64
	checkDown := func(k string, err error) {
		if !errors.Is(err, paymux.ErrStoreUnavailable) {
			if wrongErrs.Add(1) <= 5 {
				t.Errorf("key %s: got %v, want ErrStoreUnavailable", k, err)
			}
		}
	}

	// Phase 1: authorisations run; the proxy is cut after cutAfter of them
	// have answered.
	var answered, okBeforeCut atomic.Int64
	var cutOnce sync.Once
	var mu sync.Mutex
	done := map[string]bool{}
	keys := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range keys {
				k := keyA(i)
				err := authorize(k)
				if err == nil {
					okBeforeCut.Add(1)
					mu.Lock()
					done[k] = true
					mu.Unlock()
				} else {
					checkDown(k, err)
				}
				if answered.Add(1) == cutAfter {
					cutOnce.Do(proxy.Cut)
				}
			}
		}()
	}
	for i := 0; i < nA; i++ {
		keys <- i
	}
	close(keys)
	wg.Wait()
	callsAtCut := provider.Calls()
	t.Logf("phase 1 (cut after %d answers): %d of %d completed, %d provider calls", cutAfter, okBeforeCut.Load(), nA, callsAtCut)
	if okBeforeCut.Load() == nA {
		t.Fatal("the cut came too late: every request completed")
	}

	// Phase 2: the store is down. New keys and retries of failed ones must
	// fail closed without calling the provider.
	var downErrs int
	for i := 0; i < nB; i++ {
		err := authorize(keyB(i))
		checkDown(keyB(i), err)
		downErrs++
	}
	for i := 0; i < nA; i++ {
		if !done[keyA(i)] {
			checkDown(keyA(i), authorize(keyA(i)))
			downErrs++
		}
	}
	if got := provider.Calls(); got != callsAtCut {
		t.Errorf("%d provider calls while the store was down, want 0", got-callsAtCut)
	}
	t.Logf("phase 2 (store down): %d requests, all refused, %d provider calls", downErrs, provider.Calls()-callsAtCut)

	// Restore. Every key the provider charged must have a claim record:
	// no charge without a claim.
	proxy.Restore(t)
	all := make([]string, 0, nA+nB)
	for i := 0; i < nA; i++ {
		all = append(all, keyA(i))
	}
	for i := 0; i < nB; i++ {
		all = append(all, keyB(i))
	}
	ctx := context.Background()
	charged, claimed := 0, 0
	for _, k := range all {
		n := provider.Charges(k)
		charged += n
		_, err := getIdempotencyRetry(ctx, st, "authorize/"+k)
		switch {
		case err == nil:
			claimed++
		case errors.Is(err, paymux.ErrNotFound):
			if n > 0 {
				t.Errorf("key %s: %d charges but no claim record", k, n)
			}
		default:
			t.Fatalf("store after restore: %v", err)
		}
	}
	if charged > claimed {
		t.Errorf("%d charges but only %d claimed or completed keys", charged, claimed)
	}
	t.Logf("after restore: %d charges, %d keys claimed or completed", charged, claimed)

	// Phase 3: retry every key until it completes; claims cut between claim
	// and completion are taken over once their 1 s lease ends.
	deadline := time.Now().Add(30 * time.Second)
	retries := 0
	for _, k := range all {
		for !done[k] {
			err := authorize(k)
			switch {
			case err == nil:
				done[k] = true
			case errors.Is(err, paymux.ErrInProgress), errors.Is(err, paymux.ErrStoreUnavailable):
				if time.Now().After(deadline) {
					t.Fatalf("key %s did not complete after the restore: %v", k, err)
				}
				retries++
				time.Sleep(100 * time.Millisecond)
			default:
				t.Fatalf("key %s after the restore: %v", k, err)
			}
		}
	}
	t.Logf("phase 3 (restored): every key completed after %d retries", retries)

	for _, k := range all {
		if n := provider.Charges(k); n != 1 {
			t.Errorf("key %s: %d charges, want 1", k, n)
		}
		p, err := st.GetPayment(ctx, paymux.PaymentID(k))
		if err != nil || p.Status != paymux.StatusCaptured {
			t.Errorf("key %s: %v %v", k, p, err)
		}
	}
	if got := provider.TotalCharges(); got != nA+nB {
		t.Errorf("provider total %d charges, want %d", got, nA+nB)
	}
}

// getIdempotencyRetry reads a record, retrying while the store's
// connections recover from the cut.
func getIdempotencyRetry(ctx context.Context, st paymux.Store, key string) (*paymux.IdempotencyRecord, error) {
	var err error
	for try := 0; try < 20; try++ {
		var rec *paymux.IdempotencyRecord
		rec, err = st.GetIdempotency(ctx, key)
		if err == nil || errors.Is(err, paymux.ErrNotFound) {
			return rec, err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, err
}
