package integration

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/providertest"
	"github.com/paymux/paymux/providers/sim"
	redisstore "github.com/paymux/paymux/store/redis"
)

// instance is one shop instance: an orchestrator with its own Redis
// clients for the store and for the shared breaker, each counted.
type instance struct {
	o                  *paymux.Orchestrator
	storeRT, breakerRT *redisstore.CountingHook
}

func newInstance(t *testing.T, prefix string, shared bool, provs ...paymux.Provider) *instance {
	t.Helper()
	in := &instance{storeRT: &redisstore.CountingHook{}, breakerRT: &redisstore.CountingHook{}}
	sc := redisClient(t)
	sc.AddHook(in.storeRT)
	cfg := paymux.Config{
		Providers: provs, // routed in order: a, then b
		Store:     redisstore.New(sc, redisstore.Options{Prefix: prefix}),
		Logger:    slog.New(slog.DiscardHandler),
		Breaker:   paymux.BreakerSettings{ConsecutiveFailures: 3, OpenTimeout: time.Minute},
		Retry:     paymux.RetrySettings{MaxRetries: -1},
	}
	if shared {
		bc := redisClient(t)
		bc.AddHook(in.breakerRT)
		cfg.BreakerStore = redisstore.NewBreakerStore(bc, redisstore.BreakerOptions{Prefix: prefix})
	}
	o, err := paymux.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	in.o = o
	return in
}

// One instance sees provider a fail until its breaker opens; the other,
// sharing the breaker state through Redis, then skips a without calling it.
func TestSharedBreaker(t *testing.T) {
	t.Parallel()
	prefix := redisPrefix(t, redisClient(t))
	faults := &providertest.Faults{}
	a := newCountingSim(sim.Config{Name: "a", Faults: faults})
	b := newCountingSim(sim.Config{Name: "b"})
	one := newInstance(t, prefix, true, a, b)
	two := newInstance(t, prefix, true, a, b)
	ctx := context.Background()
	run := randomName("")
	authorize := func(in *instance, key string) *paymux.Payment {
		t.Helper()
		p, err := in.o.Authorize(ctx, cardRequest(key))
		if err != nil {
			t.Fatalf("Authorize %s: %v", key, err)
		}
		return p
	}

	// Cost of the shared breaker on the happy path (breaker closed).
	for i := range 3 {
		authorize(two, fmt.Sprintf("br-%s-warm-%d", run, i))
	}
	const n = 20
	two.storeRT.Reset()
	two.breakerRT.Reset()
	for i := range n {
		authorize(two, fmt.Sprintf("br-%s-cost-%d", run, i))
	}
	t.Logf("happy path with the shared breaker: %.2f store + %.2f breaker round trips per authorisation",
		float64(two.storeRT.RoundTrips())/n, float64(two.breakerRT.RoundTrips())/n)

	// Instance one sees a's outage until its breaker opens; each payment
	// fails over to b.
	faults.Set(providertest.FaultPlan{Outage: true})
	for i := 0; one.o.BreakerState("a") != "open"; i++ {
		if i == 10 {
			t.Fatalf("breaker of a still %s after %d failures", one.o.BreakerState("a"), i)
		}
		if p := authorize(one, fmt.Sprintf("br-%s-one-%d", run, i)); p.Provider != "b" {
			t.Fatalf("payment went to %s during a's outage", p.Provider)
		}
	}
	// Instance two trusts its copy of the shared state for
	// BreakerSettings.SharedRefresh (250 ms by default), so it sees the trip
	// within that time.
	deadline := time.Now().Add(2 * time.Second)
	for two.o.BreakerState("a") != "open" {
		if time.Now().After(deadline) {
			t.Fatalf("instance two sees a's breaker %s, want open", two.o.BreakerState("a"))
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Instance two skips a: no call reaches it.
	callsA := a.Calls()
	two.storeRT.Reset()
	two.breakerRT.Reset()
	for i := range n {
		p := authorize(two, fmt.Sprintf("br-%s-two-%d", run, i))
		if p.Provider != "b" || len(p.Attempts) != 1 {
			t.Fatalf("payment %+v: want one attempt, at b", p)
		}
	}
	if got := a.Calls(); got != callsA {
		t.Errorf("instance two called a %d times with a's breaker open, want 0", got-callsA)
	}
	t.Logf("a open: %.2f store + %.2f breaker round trips per authorisation (straight to b)",
		float64(two.storeRT.RoundTrips())/n, float64(two.breakerRT.RoundTrips())/n)

	// For comparison, the same instance without a shared breaker.
	faults.Set(providertest.FaultPlan{})
	local := newInstance(t, prefix, false, sim.New(sim.Config{Name: "a"}), sim.New(sim.Config{Name: "b"}))
	authorize(local, "br-"+run+"-local-warm")
	local.storeRT.Reset()
	for i := range n {
		authorize(local, fmt.Sprintf("br-%s-local-%d", run, i))
	}
	t.Logf("per-process breaker: %.2f store round trips per authorisation", float64(local.storeRT.RoundTrips())/n)
}

var _ redis.Hook = (*redisstore.CountingHook)(nil)

// BenchmarkAuthorizeBreaker compares happy-path authorisations on a Redis
// store with a per-process breaker and with the breaker shared through
// Redis, from 64 goroutines.
func BenchmarkAuthorizeBreaker(b *testing.B) {
	for _, shared := range []bool{false, true} {
		name := "local"
		if shared {
			name = "shared"
		}
		b.Run(name, func(b *testing.B) {
			c := redisClient(b)
			prefix := redisPrefix(b, c)
			cfg := paymux.Config{
				Providers: []paymux.Provider{sim.New(sim.Config{})},
				Store:     redisstore.New(c, redisstore.Options{Prefix: prefix}),
				Logger:    slog.New(slog.DiscardHandler),
			}
			if shared {
				cfg.BreakerStore = redisstore.NewBreakerStore(redisClient(b), redisstore.BreakerOptions{Prefix: prefix})
			}
			o, err := paymux.New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			run := randomName("")
			var seq atomic.Int64
			procs := runtime.GOMAXPROCS(0)
			b.SetParallelism((64 + procs - 1) / procs)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					mustAuthorize(b, o, fmt.Sprintf("brbench-%s-%d", run, seq.Add(1)))
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "auth/s")
		})
	}
}
