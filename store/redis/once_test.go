package redisstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/internal/testproxy"
	redisstore "github.com/paymux/paymux/store/redis"
)

// proxiedClient is a client with go-redis's default retries that reaches
// the test server through p.
func proxiedClient(t *testing.T, direct *redis.Client, p *testproxy.Proxy) *redis.Client {
	o := *direct.Options()
	o.Addr = p.Addr()
	o.MaxRetries = 3 // go-redis's default, spelled out
	o.MinRetryBackoff, o.MaxRetryBackoff = time.Millisecond, 2*time.Millisecond
	c := redis.NewClient(&o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Without the store's guard, go-redis runs a command twice when the reply
// to its first run is lost. This shows that the proxy provokes exactly the
// failure the store must survive.
func TestGoRedisRetryRunsAScriptTwice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := client(t)
	key := prefix(t, c) + ":counter"
	p := testproxy.Start(t, c.Options().Addr)
	pc := proxiedClient(t, c, p)
	p.LoseReplyAfter(key)
	n, err := pc.Eval(ctx, "return redis.call('INCR', KEYS[1])", []string{key}).Int64()
	if err != nil || n != 2 || p.Marked() != 2 {
		t.Fatalf("go-redis sent INCR %d times (reply %d, err %v); this test expects its retry to run it twice", p.Marked(), n, err)
	}
}

// Each store operation that writes reaches Redis at most once: when the
// reply is lost, the caller is told the outcome is unknown, and what the
// one run did is in Redis.
func TestWritesReachRedisAtMostOnce(t *testing.T) {
	t.Parallel()
	c := client(t)
	cutter := testproxy.Start(t, c.Options().Addr)
	proxied := proxiedClient(t, c, cutter)

	pay := func() *paymux.Payment {
		return &paymux.Payment{ID: "pay_1", IdempotencyKey: "k", Provider: "sim", ProviderRef: "ref_1",
			Status: paymux.StatusAuthorized, Amount: paymux.Money{Amount: 1500, Currency: "EUR"}}
	}
	claim := func(ctx context.Context, st *redisstore.Store) error {
		_, ok, err := st.ClaimIdempotency(ctx, paymux.ClaimParams{Key: "k", Fingerprint: "fp", Token: "t1", Lease: time.Minute, Payment: pay()})
		if err == nil && !ok {
			err = errors.New("claim not taken")
		}
		return err
	}
	claimEvent := func(ctx context.Context, st *redisstore.Store) error {
		_, err := st.ClaimEvent(ctx, "sim", "evt_1", time.Minute)
		return err
	}
	delivery := func() *paymux.Delivery {
		return &paymux.Delivery{ID: "sim/evt_1", Event: paymux.Event{Provider: "sim", ID: "evt_1"}, PaymentID: "pay_1", NextAttemptAt: time.Now().Add(-time.Second)}
	}
	enqueue := func(ctx context.Context, st *redisstore.Store) error { return st.EnqueueDelivery(ctx, delivery()) }
	lease := func(ctx context.Context, st *redisstore.Store) error {
		ds, err := st.ClaimDueDeliveries(ctx, time.Now(), time.Minute, 10)
		if err == nil && len(ds) != 1 {
			err = errors.New("no delivery leased")
		}
		return err
	}
	none := func(context.Context, *redisstore.Store) error { return nil }

	cases := []struct {
		name  string
		setup func(context.Context, *redisstore.Store) error
		write func(context.Context, *redisstore.Store) error
		// after checks, on a direct connection, that the one run happened.
		after func(context.Context, *redisstore.Store) error
	}{
		{"ClaimIdempotency", none, claim, func(ctx context.Context, st *redisstore.Store) error {
			rec, err := st.GetIdempotency(ctx, "k")
			if err == nil && (rec.Token != "t1" || rec.State != paymux.ClaimInFlight) {
				err = errors.New("claim not recorded")
			}
			return err
		}},
		{"CheckpointIdempotency", claim, func(ctx context.Context, st *redisstore.Store) error {
			p := pay()
			p.Status = paymux.StatusPending
			return st.CheckpointIdempotency(ctx, "k", "t1", p, time.Minute)
		}, func(ctx context.Context, st *redisstore.Store) error {
			rec, err := st.GetIdempotency(ctx, "k")
			if err == nil && (rec.Payment == nil || rec.Payment.Status != paymux.StatusPending) {
				err = errors.New("checkpoint not recorded")
			}
			return err
		}},
		{"CompleteIdempotency", claim, func(ctx context.Context, st *redisstore.Store) error {
			return st.CompleteIdempotency(ctx, "k", "t1", pay())
		}, func(ctx context.Context, st *redisstore.Store) error {
			rec, err := st.GetIdempotency(ctx, "k")
			if err == nil && rec.State != paymux.ClaimCompleted {
				err = errors.New("completion not recorded")
			}
			if p, perr := st.GetPayment(ctx, "pay_1"); perr != nil || p.Version != 1 {
				return errors.Join(err, perr, errors.New("payment not saved exactly once"))
			}
			return err
		}},
		{"ReleaseIdempotency", claim, func(ctx context.Context, st *redisstore.Store) error {
			return st.ReleaseIdempotency(ctx, "k", "t1")
		}, func(ctx context.Context, st *redisstore.Store) error {
			if _, err := st.GetIdempotency(ctx, "k"); !errors.Is(err, paymux.ErrNotFound) {
				return errors.Join(errors.New("claim not released"), err)
			}
			return nil
		}},
		{"SavePayment", none, func(ctx context.Context, st *redisstore.Store) error {
			return st.SavePayment(ctx, pay(), 0)
		}, func(ctx context.Context, st *redisstore.Store) error {
			p, err := st.GetPayment(ctx, "pay_1")
			if err == nil && p.Version != 1 {
				err = errors.New("payment not saved exactly once")
			}
			return err
		}},
		{"ClaimEvent", none, claimEvent, func(ctx context.Context, st *redisstore.Store) error {
			if c, err := st.ClaimEvent(ctx, "sim", "evt_1", time.Minute); err != nil || c != paymux.EventBusy {
				return errors.Join(errors.New("event claim not recorded"), err)
			}
			return nil
		}},
		{"ClaimEventForPayment", func(ctx context.Context, st *redisstore.Store) error {
			return st.SavePayment(ctx, pay(), 0)
		}, func(ctx context.Context, st *redisstore.Store) error {
			_, _, err := st.ClaimEventForPayment(ctx, "sim", "evt_1", time.Minute, "ref_1")
			return err
		}, func(ctx context.Context, st *redisstore.Store) error {
			if c, err := st.ClaimEvent(ctx, "sim", "evt_1", time.Minute); err != nil || c != paymux.EventBusy {
				return errors.Join(errors.New("event claim not recorded"), err)
			}
			return nil
		}},
		{"ReleaseEvent", claimEvent, func(ctx context.Context, st *redisstore.Store) error {
			return st.ReleaseEvent(ctx, "sim", "evt_1")
		}, func(ctx context.Context, st *redisstore.Store) error {
			if c, err := st.ClaimEvent(ctx, "sim", "evt_1", time.Minute); err != nil || c != paymux.EventClaimed {
				return errors.Join(errors.New("event not released"), err)
			}
			return nil
		}},
		{"EnqueueDelivery", none, enqueue, func(ctx context.Context, st *redisstore.Store) error {
			_, err := st.GetDelivery(ctx, "sim/evt_1")
			return err
		}},
		{"CompleteEventWithDelivery", claimEvent, func(ctx context.Context, st *redisstore.Store) error {
			return st.CompleteEventWithDelivery(ctx, "sim", "evt_1", time.Hour, delivery())
		}, func(ctx context.Context, st *redisstore.Store) error {
			if c, err := st.ClaimEvent(ctx, "sim", "evt_1", time.Minute); err != nil || c != paymux.EventDuplicate {
				return errors.Join(errors.New("event not marked processed"), err)
			}
			_, err := st.GetDelivery(ctx, "sim/evt_1")
			return err
		}},
		{"ClaimDueDeliveries", enqueue, lease, func(ctx context.Context, st *redisstore.Store) error {
			// Leased once, by the lost call: nothing is due now.
			ds, err := st.ClaimDueDeliveries(ctx, time.Now(), time.Minute, 10)
			if err == nil && len(ds) != 0 {
				err = errors.New("the delivery was not leased")
			}
			return err
		}},
		{"RetryDelivery", func(ctx context.Context, st *redisstore.Store) error {
			return errors.Join(enqueue(ctx, st), lease(ctx, st))
		}, func(ctx context.Context, st *redisstore.Store) error {
			return st.RetryDelivery(ctx, "sim/evt_1", time.Now().Add(time.Hour), "503")
		}, func(ctx context.Context, st *redisstore.Store) error {
			d, err := st.GetDelivery(ctx, "sim/evt_1")
			if err == nil && d.Attempts != 1 {
				err = errors.New("the attempt was not counted exactly once")
			}
			return err
		}},
		{"CompleteDeliveries", func(ctx context.Context, st *redisstore.Store) error {
			return errors.Join(enqueue(ctx, st), lease(ctx, st))
		}, func(ctx context.Context, st *redisstore.Store) error {
			return st.CompleteDeliveries(ctx, []string{"sim/evt_1"})
		}, func(ctx context.Context, st *redisstore.Store) error {
			d, err := st.GetDelivery(ctx, "sim/evt_1")
			if err == nil && d.State != paymux.DeliveryDelivered {
				err = errors.New("the delivery was not marked delivered")
			}
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			// A first run on other keys loads the scripts, so the cut run
			// is the script itself and not its NOSCRIPT answer.
			warm := redisstore.New(c, redisstore.Options{Prefix: prefix(t, c)})
			if err := errors.Join(tc.setup(ctx, warm), tc.write(ctx, warm)); err != nil {
				t.Fatalf("without faults: %v", err)
			}
			pfx := prefix(t, c)
			direct := redisstore.New(c, redisstore.Options{Prefix: pfx})
			if err := tc.setup(ctx, direct); err != nil {
				t.Fatal(err)
			}
			cutter.LoseReplyAfter(pfx)
			err := tc.write(ctx, redisstore.New(proxied, redisstore.Options{Prefix: pfx}))
			var unknown *redisstore.OutcomeUnknownError
			if !errors.As(err, &unknown) {
				t.Errorf("a lost reply gave %v; want an OutcomeUnknownError", err)
			}
			if n := cutter.Marked(); n != 1 {
				t.Errorf("the write reached Redis %d times; want once", n)
			}
			if err := tc.after(ctx, direct); err != nil {
				t.Errorf("after the lost reply: %v", err)
			}
		})
	}
}

// A breaker lock whose SET NX reply was lost is still this store's: the
// resent SET NX finds its token, and the store must not report the lock
// as held by another instance until its TTL ends.
func TestBreakerLockSurvivesALostReply(t *testing.T) {
	t.Parallel()
	c := client(t)
	cutter := testproxy.Start(t, c.Options().Addr)
	pfx := prefix(t, c)
	b := redisstore.NewBreakerStore(proxiedClient(t, c, cutter), redisstore.BreakerOptions{Prefix: pfx, LocalWait: 50 * time.Millisecond})
	cutter.LoseReplyAfter(pfx + ":cb:stripe")
	if err := b.Lock("stripe"); err != nil {
		t.Fatalf("Lock after a lost reply: %v", err)
	}
	if err := b.Unlock("stripe"); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	if err := b.Lock("stripe"); err != nil {
		t.Fatalf("Lock after Unlock: %v", err)
	}
	_ = b.Unlock("stripe")
}

// A store that waits for replicas, on a server without enough of them,
// reports each write as of unknown outcome (ErrNotReplicated), never as
// done: a failover could lose it. The write itself did run on the master.
func TestMinReplicasWithoutReplicasFailsClosed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := client(t)
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(info, "connected_slaves:0") {
		t.Skip("the test server has replicas; this test needs one without")
	}
	p := prefix(t, c)
	st := redisstore.New(c, redisstore.Options{Prefix: p, MinReplicas: 1, ReplicaWait: 20 * time.Millisecond})
	_, _, err = st.ClaimIdempotency(ctx, paymux.ClaimParams{Key: "k", Fingerprint: "fp", Token: "t1", Lease: time.Minute})
	var unknown *redisstore.OutcomeUnknownError
	if !errors.As(err, &unknown) || !errors.Is(err, redisstore.ErrNotReplicated) {
		t.Fatalf("claim with no replica to confirm it: %v; want an OutcomeUnknownError wrapping ErrNotReplicated", err)
	}
	if err := st.CompleteEvent(ctx, "sim", "evt_1", time.Hour); !errors.Is(err, redisstore.ErrNotReplicated) {
		t.Fatalf("CompleteEvent with no replica to confirm it: %v", err)
	}
	plain := redisstore.New(c, redisstore.Options{Prefix: p})
	if rec, err := plain.GetIdempotency(ctx, "k"); err != nil || rec.Token != "t1" {
		t.Fatalf("the claim ran on the master: %+v, %v", rec, err)
	}
}
