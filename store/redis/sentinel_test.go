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

	"github.com/paymux/paymux"
	redisstore "github.com/paymux/paymux/store/redis"
	"github.com/paymux/paymux/store/storetest"
)

// The tests in this file run against a real Sentinel setup
// (scripts/redis-sentinel.sh): a master, its replica and three sentinels.
// TestSentinelFailover moves the master to the other node, so none of them
// calls t.Parallel: they run one after the other, before the package's
// parallel tests, and the others never see the master change under them.
// The failover client is a *redis.Client, so prefix's cleanup works on it
// and reaches whichever node is the master when the test ends.

func TestSentinelConformance(t *testing.T) {
	c := sentinelClient(t)
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) paymux.Store {
			return redisstore.New(c, redisstore.Options{Prefix: prefix(t, c)})
		},
	})
}

// A store that waits for its replica (MinReplicas) still behaves as a
// store in every respect.
func TestSentinelConformanceWaitingForTheReplica(t *testing.T) {
	c := sentinelClient(t)
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) paymux.Store {
			return redisstore.New(c, redisstore.Options{Prefix: prefix(t, c), MinReplicas: 1})
		},
	})
}

// Two instances' breakers share their state through the master the
// sentinels name, each with its own failover client.
func TestSentinelBreakerStoreSharesState(t *testing.T) {
	c1 := sentinelClient(t)
	c2 := sentinelClient(t)
	breakersShareState(t, c1, c2, prefix(t, c1))
}

// claimAttempt is one claim sent while the master moved, and what the
// store answered.
type claimAttempt struct {
	key     string
	claimed bool
	err     error
}

// A forced failover, with a store in use. What was written and replicated
// (WAIT) before is on the new master; the same Store value keeps working
// once the client has followed the sentinels; and a claim sent while the
// master moved, whatever it was told, left either its own record or
// nothing, and retrying it converges on holding the claim. It leaves the
// old master back as the new one's replica, so the setup is healthy again.
func TestSentinelFailover(t *testing.T) {
	c := sentinelClient(t)
	holdSentinelExclusively(t)
	p := prefix(t, c)
	st := redisstore.New(c, redisstore.Options{Prefix: p})
	ctx := context.Background()
	addrs := sentinelAddrs()
	start := time.Now()

	oldMaster, err := sentinelHealthy(ctx, addrs)
	if err != nil {
		t.Fatal(err)
	}
	authorize(t, st, "before")
	saved := &paymux.Payment{ID: "pay-saved", IdempotencyKey: "saved", Provider: "sim", ProviderRef: "ref-saved",
		Status: paymux.StatusPending, Amount: paymux.NewMoney(250, "EUR")}
	if err := st.SavePayment(ctx, saved, 0); err != nil {
		t.Fatal(err)
	}
	// Replication is asynchronous: only what the replica has acknowledged
	// can be expected to survive its promotion. WAIT counts the writes of
	// its own connection, and the store's may have used others from the
	// pool; a write on WAIT's connection, after them in the one replication
	// stream, stands for them all.
	var wait *redis.IntCmd
	if _, err := c.Pipelined(ctx, func(pl redis.Pipeliner) error {
		pl.Set(ctx, p+":replicated", "1", 0)
		wait = redis.NewIntCmd(ctx, "wait", 1, 1000)
		_ = pl.Process(ctx, wait)
		return nil
	}); err != nil || wait.Val() < 1 {
		t.Fatalf("WAIT 1 1000 on %s: %d replicas, %v", oldMaster, wait.Val(), err)
	}

	// Claims keep going out while the master moves: some reach the old
	// master, some lose their connection when the client drops it, some
	// find no master for a moment.
	// A second writer, on a store that waits for the replica
	// (MinReplicas), claims other keys beside it.
	var (
		mu             sync.Mutex
		attempts       []claimAttempt
		waitedAttempts []claimAttempt
		stop           = make(chan struct{})
		wg             sync.WaitGroup
	)
	writer := func(st *redisstore.Store, name string, into *[]claimAttempt) {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			key := fmt.Sprintf("%s-%d", name, i)
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, claimed, err := st.ClaimIdempotency(cctx, claimParams(key))
			cancel()
			mu.Lock()
			*into = append(*into, claimAttempt{key, claimed, err})
			mu.Unlock()
		}
	}
	waited := redisstore.New(c, redisstore.Options{Prefix: p, MinReplicas: 1, ReplicaWait: 500 * time.Millisecond})
	wg.Add(2)
	go writer(st, "during", &attempts)
	go writer(waited, "waited", &waitedAttempts)
	stopWriter := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopWriter)

	forceFailover(t, addrs)
	// Whatever happens below, the next test (or the next -count) needs the
	// old master back as a replica; registered after prefix's cleanup, so
	// it runs before the keys are swept from the new master.
	t.Cleanup(func() {
		stopWriter()
		if err := waitRejoined(oldMaster, 20*time.Second); err != nil {
			t.Errorf("setup not healthy after the failover: %v; run `bash scripts/redis-sentinel.sh`", err)
		}
	})
	newMaster := waitNewMaster(t, addrs, oldMaster, 30*time.Second)
	t.Logf("failover %s -> %s after %v", oldMaster, newMaster, time.Since(start).Round(time.Millisecond))

	// The client learns of the new master from the sentinel it listens to,
	// a moment after the sentinels agree; a write in that moment would
	// still go to the old master, and be lost with it like the writer's.
	// It drops its connections to the old master before it dials the new
	// one, so once a command through it reaches the new master, they all do.
	waitClientOn(t, c, newMaster, 10*time.Second)

	// Until it has reconnected a write may fail, but it must say so.
	var after *paymux.Payment
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		key := fmt.Sprintf("after-%d", i)
		params := claimParams(key)
		rec, claimed, err := st.ClaimIdempotency(ctx, params)
		if err == nil && claimed {
			after = params.Payment
			after.Status, after.ProviderRef = paymux.StatusAuthorized, "ref-"+key
			if err = st.CompleteIdempotency(ctx, key, "tok-"+key, after); err == nil {
				break
			}
		} else if err == nil {
			t.Fatalf("claim of the fresh key %s after the failover: not claimed, held by %+v", key, rec)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store still fails 10 s after the failover: %v", err)
		}
		t.Logf("write after the failover: %v", err)
		time.Sleep(100 * time.Millisecond)
	}
	stopWriter()
	t.Logf("client writing to the new master %v after the failover began", time.Since(start).Round(time.Millisecond))

	// (a) What was replicated before is on the promoted replica: read
	// through a client of that node alone, so no stale connection to the
	// old master could answer.
	direct := redis.NewClient(&redis.Options{Addr: newMaster})
	defer direct.Close()
	for name, s := range map[string]*redisstore.Store{"the new master": redisstore.New(direct, redisstore.Options{Prefix: p}), "the store": st} {
		if rec, err := s.GetIdempotency(ctx, "before"); err != nil || rec.State != paymux.ClaimCompleted {
			t.Errorf("%s: record written before the failover: %+v, %v; want completed", name, rec, err)
		}
		if got, err := s.GetPaymentByProviderRef(ctx, "sim", "ref-before"); err != nil || got.Status != paymux.StatusAuthorized {
			t.Errorf("%s: payment written before the failover: %+v, %v", name, got, err)
		}
		if got, err := s.GetPayment(ctx, saved.ID); err != nil || got.Version != saved.Version {
			t.Errorf("%s: saved payment: %+v, %v; want version %d", name, got, err, saved.Version)
		}
	}

	// (b) The same Store value keeps working: a save on the replicated
	// version, a new authorisation, reads of what it wrote.
	saved.Status = paymux.StatusAuthorized
	if err := st.SavePayment(ctx, saved, saved.Version); err != nil {
		t.Fatalf("SavePayment after the failover: %v", err)
	}
	authorize(t, st, "after")
	if got, err := st.GetPayment(ctx, after.ID); err != nil || got.Status != paymux.StatusAuthorized {
		t.Fatalf("payment completed after the failover: %+v, %v", got, err)
	}

	// (c) Each claim sent while the master moved, answered or not: its key
	// holds its own claim or nothing, never someone else's or a half
	// record, and the same request sent again ends up holding the claim
	// and completes it.
	var unknown, failed, lost int
	for _, a := range attempts {
		var ou *redisstore.OutcomeUnknownError
		switch {
		case errors.As(a.err, &ou):
			unknown++
		case a.err != nil:
			failed++
		case !a.claimed:
			t.Errorf("claim of the fresh key %s during the failover answered not claimed", a.key)
		}
		rec, err := st.GetIdempotency(ctx, a.key)
		switch {
		case errors.Is(err, paymux.ErrNotFound):
			if a.err == nil {
				// Acknowledged by the old master in the moment before the
				// client dropped it, after the replica had been promoted:
				// asynchronous replication loses that, as documented for
				// Sentinel. Counted, not failed.
				lost++
			}
		case err != nil:
			t.Fatalf("GetIdempotency(%s): %v", a.key, err)
		case rec.Fingerprint != "fp" || rec.Token != "tok-"+a.key || rec.State != paymux.ClaimInFlight || rec.PaymentID != "pay-"+a.key:
			t.Errorf("claim %s (sent with %v): record %+v is not the claim's own", a.key, a.err, rec)
		}
		params := claimParams(a.key)
		again, claimed, err := st.ClaimIdempotency(ctx, params)
		if err != nil {
			t.Errorf("claim %s sent again: %v", a.key, err)
			continue
		}
		if !claimed && (again.Token != "tok-"+a.key || again.State != paymux.ClaimInFlight) {
			t.Errorf("claim %s sent again: not claimed and held by %+v", a.key, again)
			continue
		}
		pay := params.Payment
		pay.Status, pay.ProviderRef = paymux.StatusAuthorized, "ref-"+a.key
		if err := st.CompleteIdempotency(ctx, a.key, "tok-"+a.key, pay); err != nil {
			t.Errorf("completing claim %s after sending it again: %v", a.key, err)
		}
	}
	t.Logf("%d claims during the failover: %d outcome unknown, %d other errors, %d acknowledged but lost with the old master",
		len(attempts), unknown, failed, lost)

	// With MinReplicas, nothing the store acknowledged is lost: a claim the
	// old master took after the promotion had no replica to confirm it and
	// was reported as of unknown outcome instead.
	var notReplicated, waitedLost int
	for _, a := range waitedAttempts {
		if errors.Is(a.err, redisstore.ErrNotReplicated) {
			notReplicated++
		}
		if a.err != nil || !a.claimed {
			continue
		}
		if _, err := st.GetIdempotency(ctx, a.key); errors.Is(err, paymux.ErrNotFound) {
			waitedLost++
			t.Errorf("claim %s, acknowledged by a store with MinReplicas 1, is lost after the failover", a.key)
		} else if err != nil {
			t.Fatalf("GetIdempotency(%s): %v", a.key, err)
		}
	}
	t.Logf("%d claims with MinReplicas 1: %d not replicated in time (outcome unknown), %d acknowledged but lost",
		len(waitedAttempts), notReplicated, waitedLost)

	// Once the old master is back as a replica, what was written after the
	// failover is still there: the client did not keep writing to the old
	// master, whose data the resync throws away.
	if err := waitRejoined(oldMaster, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if got, err := st.GetPayment(ctx, after.ID); err != nil || got.Status != paymux.StatusAuthorized {
		t.Fatalf("payment completed after the failover, once the old master rejoined: %+v, %v", got, err)
	}
	if got, err := st.GetPayment(ctx, saved.ID); err != nil || got.Version != saved.Version {
		t.Fatalf("payment saved after the failover, once the old master rejoined: %+v, %v", got, err)
	}
	t.Logf("old master %s rejoined as a replica %v after the failover began", oldMaster, time.Since(start).Round(time.Millisecond))
}

// claimParams is the one request the failover test sends for key, the same
// each time it is sent: fingerprint, token and payment.
func claimParams(key string) paymux.ClaimParams {
	return paymux.ClaimParams{Key: key, Fingerprint: "fp", Token: "tok-" + key, Lease: time.Minute,
		Payment: &paymux.Payment{ID: "pay-" + key, IdempotencyKey: key, Provider: "sim",
			Status: paymux.StatusPending, Amount: paymux.NewMoney(100, "EUR")}}
}

// forceFailover asks a sentinel for a failover. Right after an earlier one
// (the previous -count) the sentinels may not count the old master as a
// good replica yet (NOGOODSLAVE), or still finish that one (INPROG).
func forceFailover(t *testing.T, addrs []string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		s := redis.NewSentinelClient(&redis.Options{Addr: addrs[i%len(addrs)]})
		err := s.Failover(context.Background(), sentinelMaster).Err()
		_ = s.Close()
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), "NOGOODSLAVE") && !strings.Contains(err.Error(), "INPROG") || time.Now().After(deadline) {
			t.Fatalf("SENTINEL FAILOVER %s: %v", sentinelMaster, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitNewMaster waits until every sentinel names a master other than old.
// A sentinel may accept SENTINEL FAILOVER and still not start one, as when
// an earlier failover of the master (a previous run's, seconds ago) is
// within its failover-timeout: while old is still named, it asks again
// every few seconds.
func waitNewMaster(t *testing.T, addrs []string, old string, limit time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(limit)
	asked := time.Now()
	for {
		named := map[string]bool{}
		for _, a := range addrs {
			s := redis.NewSentinelClient(&redis.Options{Addr: a})
			if hp, err := s.GetMasterAddrByName(context.Background(), sentinelMaster).Result(); err == nil {
				named[hp[0]+":"+hp[1]] = true
			}
			_ = s.Close()
		}
		if len(named) == 1 && !named[old] {
			for m := range named {
				return m
			}
		}
		if len(named) == 1 && named[old] && time.Since(asked) > 6*time.Second {
			t.Logf("no failover %v after asking; asking again", time.Since(asked).Round(time.Millisecond))
			forceFailover(t, addrs)
			asked = time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("sentinels name %v %v after SENTINEL FAILOVER, want one master other than %s", named, limit, old)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitClientOn waits until c's commands reach the server at addr.
func waitClientOn(t *testing.T, c *redis.Client, addr string, limit time.Duration) {
	t.Helper()
	_, port, _ := strings.Cut(addr, ":")
	deadline := time.Now().Add(limit)
	for {
		info, err := c.Info(context.Background(), "server").Result()
		if err == nil && strings.Contains(info, "\r\ntcp_port:"+port+"\r\n") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the failover client does not reach the new master %s after %v: %v", addr, limit, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitRejoined waits until the setup is healthy with old as the replica:
// the sentinels have turned it into one (some 10 s after the failover, as
// Sentinel gives a master that came back time to learn of the new one) and
// it streams from the new master.
func waitRejoined(old string, limit time.Duration) error {
	ctx := context.Background()
	addrs := sentinelAddrs()
	o := redis.NewClient(&redis.Options{Addr: old})
	defer o.Close()
	deadline := time.Now().Add(limit)
	for {
		err := func() error {
			master, err := sentinelHealthy(ctx, addrs)
			if err != nil {
				return err
			}
			info, err := replication(ctx, o)
			if err != nil {
				return err
			}
			if info["role"] != "slave" || info["master_host"]+":"+info["master_port"] != master || info["master_link_status"] != "up" {
				return fmt.Errorf("%s: role %s of %s:%s, link %s", old, info["role"], info["master_host"], info["master_port"], info["master_link_status"])
			}
			return nil
		}()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", limit, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
