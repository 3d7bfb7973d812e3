package surge

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/paymux/paymux/examples/internal/testenv"
)

// setup returns a short drop's config: bcrypt at its minimum cost (the
// production cost is the drop tool's default; here it would only slow the
// sign-ins down) and a plot in the test's temp dir.
func setup(t *testing.T, orders int) Config {
	t.Helper()
	return Config{
		Orders: orders / raceScale, Window: 2 * time.Second, Accounts: 40 / raceScale, BcryptCost: bcrypt.MinCost,
		Concurrency: 128, Store: "memory", PlotPath: filepath.Join(t.TempDir(), "surge.svg"),
	}
}

// on points cfg at the named store; for a server, the test one, which
// skips the test without it (or fails it under PAYMUX_REQUIRE_SERVICES=1).
func on(t *testing.T, store string, cfg Config) Config {
	t.Helper()
	cfg.Store = store
	switch store {
	case "postgres":
		testenv.Postgres(t)
		cfg.PostgresDSN = testenv.PostgresDSN()
		cfg.MaxDBConns = 8 // other packages' tests share the server's 100 connections
	case "redis":
		testenv.Redis(t)
		cfg.RedisURL = testenv.RedisURL()
	case "redis-cluster":
		testenv.RedisCluster(t)
		addrs := testenv.RedisClusterAddrs()
		cfg.RedisURL = "redis://" + addrs[0] + "?" + url.Values{"addr": addrs[1:]}.Encode()
	case "redis-sentinel":
		testenv.RedisSentinel(t) // also: no failover until the test ends
		cfg.RedisURL = testenv.RedisSentinelURL()
	}
	return cfg
}

func play(t *testing.T, cfg Config) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var out bytes.Buffer
	rep.WriteText(&out)
	t.Log("\n" + out.String())
	if err := rep.Check(); err != nil {
		t.Fatalf("invariants broken: %v", err)
	}
	if rep.Ordered == 0 || rep.Statuses["paid"] == 0 {
		t.Fatalf("nothing was paid: %v", rep.Statuses)
	}
	if rep.Statuses["sold_out"] == 0 {
		t.Errorf("the limited product never sold out: the sold-out path was not exercised")
	}
	svg, err := os.ReadFile(cfg.PlotPath)
	if err != nil || !strings.HasPrefix(string(svg), "<svg") {
		t.Errorf("plot not written: %v", err)
	}
	return rep
}

func TestPlainDrop(t *testing.T) {
	t.Parallel()
	cfg := setup(t, 3000)
	cfg.Profile = ProfileSpike
	rep := play(t, cfg)
	if rep.DoubleClicks == 0 || rep.TimeoutRetries == 0 || rep.Reconnects == 0 || rep.SignedIn == 0 {
		t.Errorf("a buyer behaviour was not exercised: %+v", rep)
	}
}

func TestPlainDropSQLite(t *testing.T) {
	t.Parallel()
	play(t, on(t, "sqlite", setup(t, 1000)))
}

// The PostgreSQL drop runs checkout and the payment's writes through
// sqlstore's shared-commit pipelines: sold-out checkouts, double-clicks and
// the checkout that loses the last units to another between its check and
// its take all share commits with other buyers' writes.
func TestPlainDropPostgres(t *testing.T) {
	t.Parallel()
	play(t, on(t, "postgres", setup(t, 1000)))
}

func TestPlainDropRedis(t *testing.T) {
	t.Parallel()
	play(t, on(t, "redis", setup(t, 1000)))
}

func TestChaosDrop(t *testing.T) {
	t.Parallel()
	chaos(t, setup(t, 2000))
}

func TestChaosDropSQLite(t *testing.T) {
	t.Parallel()
	chaos(t, on(t, "sqlite", setup(t, 1000)))
}

// The chaos drop on Redis: the store cut lands on scripts that paymux's
// store sends at most once.
func TestChaosDropRedis(t *testing.T) {
	t.Parallel()
	chaos(t, on(t, "redis", setup(t, 1000)))
}

// The chaos drop on PostgreSQL: the store cut lands on statements waiting
// in, or sent in, shared-commit pipelines.
func TestChaosDropPostgres(t *testing.T) {
	t.Parallel()
	chaos(t, on(t, "postgres", setup(t, 1000)))
}

func chaos(t *testing.T, cfg Config) {
	t.Helper()
	cfg.Chaos = true
	cfg.Window = 4 * time.Second
	// The reconciler settles unknown outcomes of payments older than 30 s,
	// every 5 s: give it that long.
	cfg.FinalDeadline = 50 * time.Second
	rep := play(t, cfg)
	if rep.Chaos == nil || rep.Chaos.BreakerOpenAfter < 0 {
		t.Errorf("sim-a's breaker never opened during its outage")
	}
	if rep.PaidOnFallback == 0 {
		t.Errorf("no payment went to the fallback during sim-a's outage")
	}
	// A 5xx of unknown effect that the sim did not process sends no
	// webhook: only the reconciler settles its payment, and the report
	// says how many it did (a short drop may see few such 5xx, or none,
	// so the count itself is not asserted).
	if rep.Reconciled == nil {
		t.Errorf("an in-process chaos report has no reconciler totals")
	}
}

func TestArrivals(t *testing.T) {
	t.Parallel()
	for _, p := range []Profile{ProfileRamp, ProfileSpike} {
		a := arrivals(p, 1000, 10*time.Second)
		for i := 1; i < len(a); i++ {
			if a[i] < a[i-1] || a[i] > 10*time.Second {
				t.Fatalf("%s: arrival %d at %s after %s", p, i, a[i], a[i-1])
			}
		}
	}
	// The spike puts most buyers in a tenth of the window.
	a := arrivals(ProfileSpike, 1000, 10*time.Second)
	in := 0
	for _, d := range a {
		if d >= 3*time.Second && d <= 4*time.Second {
			in++
		}
	}
	if in < 750 {
		t.Errorf("spike: %d of 1000 buyers in the spike", in)
	}
}

// On a Redis Cluster the order service settles a paid order step by step
// (its commit-and-save script would cross slots), and paymux's store
// completes a webhook's event and its delivery in two round trips: the
// drop checks that both keep the three zeros.
func TestPlainDropRedisCluster(t *testing.T) {
	t.Parallel()
	play(t, on(t, "redis-cluster", setup(t, 1000)))
}

// On Sentinel the platform's paymux store waits for a replica on every
// write (MinReplicas 1): the drop checks that the three zeros hold with it.
func TestPlainDropRedisSentinel(t *testing.T) {
	t.Parallel()
	play(t, on(t, "redis-sentinel", setup(t, 1000)))
}

// A buyer who waits for a free slot is late, not fast: the wait counts from
// its scheduled arrival, so a stall that holds every slot shows in the
// report instead of vanishing from it (coordinated omission).
func TestQueuedBuyersCountFromTheirArrival(t *testing.T) {
	t.Parallel()
	open := time.Now()
	at := func(d time.Duration) time.Time { return open.Add(d) }
	rep := &Report{Statuses: map[string]int{}, Errors: map[string]int{}}
	rep.addResults(open, []result{
		// On time: started when it arrived, final 100 ms later.
		{arrival: at(0), start: at(0), end: at(100 * time.Millisecond), told: true, outcome: "paid"},
		// Arrived at 1 s, found every slot taken, started at 4 s.
		{arrival: at(time.Second), start: at(4 * time.Second), end: at(4*time.Second + 100*time.Millisecond), told: true, outcome: "paid"},
	})
	if rep.EndToEnd.Max != 100*time.Millisecond {
		t.Errorf("end-to-end max %s, want 100ms: it counts from the start", rep.EndToEnd.Max)
	}
	if rep.Queued.N != 2 || rep.Queued.Max != 3*time.Second {
		t.Errorf("queued %+v, want 2 buyers, max 3s", rep.Queued)
	}
	if rep.ArrivalToFinal.Max != 3*time.Second+100*time.Millisecond {
		t.Errorf("arrival to final max %s, want 3.1s", rep.ArrivalToFinal.Max)
	}
}
