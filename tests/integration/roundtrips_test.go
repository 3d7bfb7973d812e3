package integration

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/sim"
	sqlstore "github.com/paymux/paymux/store/sql"
)

// maxRoundTrips is DESIGN.md's target per happy-path authorisation: the
// claim and the completion. Only Redis and PostgreSQL are held to it;
// MySQL and SQLite complete in a transaction, so their figures are reported.
var maxRoundTrips = map[string]int64{"redis": 2, "postgres": 2}

func newSimOrchestrator(tb testing.TB, st paymux.Store) *paymux.Orchestrator {
	tb.Helper()
	o, err := paymux.New(paymux.Config{
		Providers: []paymux.Provider{sim.New(sim.Config{})},
		Store:     st,
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return o
}

func mustAuthorize(tb testing.TB, o *paymux.Orchestrator, key string) {
	p, err := o.Authorize(context.Background(), cardRequest(key))
	if err != nil {
		tb.Fatalf("Authorize %s: %v", key, err)
	}
	if p.Status != paymux.StatusCaptured {
		tb.Fatalf("Authorize %s: status %s", key, p.Status)
	}
}

// Store round trips per happy-path authorisation, through the orchestrator.
func TestRoundTripsPerAuthorization(t *testing.T) {
	t.Parallel()
	for _, name := range storeNames[1:] {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := newCountedStore(t, name)
			o := newSimOrchestrator(t, st)
			run := randomName("")
			for i := range 3 { // load scripts, prepare statements, fill the pool
				mustAuthorize(t, o, fmt.Sprintf("rt-%s-warm-%d", run, i))
			}
			const n = 20
			worst := int64(0)
			total := int64(0)
			for i := range n {
				before := st.roundTrips()
				var counts sqlstore.Counts
				if st.counts != nil {
					counts = st.counts()
				}
				mustAuthorize(t, o, fmt.Sprintf("rt-%s-%d", run, i))
				got := st.roundTrips() - before
				if i == 0 && st.counts != nil {
					t.Logf("%s: first measured authorisation: %+v", name, st.counts().Sub(counts))
				}
				total += got
				worst = max(worst, got)
			}
			t.Logf("%s: %.2f round trips per authorisation (worst %d, over %d)", name, float64(total)/n, worst, n)
			if limit, ok := maxRoundTrips[name]; ok && worst > limit {
				t.Errorf("%s: an authorisation took %d round trips, want at most %d", name, worst, limit)
			}
		})
	}
}

// BenchmarkAuthorizeStore is one happy-path authorisation (sim provider)
// per op, one goroutine at a time. roundtrips/op counts store round trips.
func BenchmarkAuthorizeStore(b *testing.B) {
	for _, name := range storeNames {
		b.Run(name, func(b *testing.B) {
			st := newCountedStore(b, name)
			o := newSimOrchestrator(b, st)
			run := randomName("")
			mustAuthorize(b, o, "bench-"+run+"-warm")
			var before int64
			if st.roundTrips != nil {
				before = st.roundTrips()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				mustAuthorize(b, o, fmt.Sprintf("bench-%s-%d", run, i))
			}
			b.StopTimer()
			if st.roundTrips != nil {
				b.ReportMetric(float64(st.roundTrips()-before)/float64(b.N), "roundtrips/op")
			}
		})
	}
}

// BenchmarkAuthorizeStoreParallel runs authorisations from 64 goroutines
// and reports the throughput.
func BenchmarkAuthorizeStoreParallel(b *testing.B) {
	const goroutines = 64
	for _, name := range storeNames {
		b.Run(name, func(b *testing.B) {
			st := newCountedStore(b, name)
			o := newSimOrchestrator(b, st)
			run := randomName("")
			mustAuthorize(b, o, "pbench-"+run+"-warm")
			var seq atomic.Int64
			procs := runtime.GOMAXPROCS(0)
			b.SetParallelism((goroutines + procs - 1) / procs)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					mustAuthorize(b, o, fmt.Sprintf("pbench-%s-%d", run, seq.Add(1)))
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "auth/s")
		})
	}
}

// maxWebhookRoundTrips is the target per verified webhook event that moves
// its payment: claim the event, find the payment, save it, and enqueue the
// delivery together with completing the event. Redis and PostgreSQL claim
// the event and find the payment in one script or statement
// (paymux.EventPaymentClaimer). maxDispatchRoundTrips is
// the target per dispatched batch, however many deliveries it holds: claim
// the batch, read its payments, complete the delivered entries. Only Redis
// and PostgreSQL are held to them; MySQL and SQLite use transactions, so
// their figures are reported.
//
// maxConfirmRoundTrips is the limit for a webhook that confirms a payment
// this process just recorded (paymux.UnchangedEventCompleter): one
// statement or script on PostgreSQL and Redis; on SQLite and MySQL one
// transaction of two inserts (BEGIN, two statements, COMMIT), which MySQL
// opens with a locking read of the payment, and whose statements its
// driver prepares first. The usual way costs 6 and 10.
var (
	maxWebhookRoundTrips  = map[string]int64{"redis": 3, "postgres": 3}
	maxDispatchRoundTrips = map[string]int64{"redis": 3, "postgres": 3}
	maxConfirmRoundTrips  = map[string]int64{"redis": 1, "postgres": 1, "sqlite": 4, "mysql": 8}
)

// Store round trips per webhook event and per delivery, through the webhook
// handler and the dispatcher. The orchestrator gets the store itself, not
// the counting wrapper, so that it finds the store's optional capabilities.
func TestRoundTripsPerWebhookEvent(t *testing.T) {
	t.Parallel()
	const secret = paymux.Secret("whsec_roundtrips")
	for _, name := range storeNames[1:] {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := newCountedStore(t, name)
			o, err := paymux.New(paymux.Config{
				Providers: []paymux.Provider{sim.New(sim.Config{WebhookSecret: secret})},
				Store:     st.Store,
				Logger:    slog.New(slog.DiscardHandler),
			})
			if err != nil {
				t.Fatal(err)
			}
			var delivered atomic.Int64
			disp, err := o.NewDispatcher(paymux.DispatcherOptions{
				Subscriber: func(context.Context, paymux.Event, *paymux.Payment) error { delivered.Add(1); return nil },
			})
			if err != nil {
				t.Fatal(err)
			}
			h := o.WebhookHandler(paymux.WebhookOptions{Dispatcher: disp})
			run := randomName("")
			// signed authorises a payment for manual capture and returns a
			// signed webhook of typ for it: "captured" moves its status,
			// "authorized" confirms it and changes nothing.
			signed := func(typ paymux.EventType) func(i string) ([]byte, http.Header) {
				return func(i string) ([]byte, http.Header) {
					i = string(typ) + "-" + i // a key and an event id of its own
					req := cardRequest("rtw-" + run + "-" + i)
					req.Capture = paymux.CaptureManual
					p, err := o.Authorize(ctx, req)
					if err != nil || p.Status != paymux.StatusAuthorized {
						t.Fatalf("Authorize: %v %v", p, err)
					}
					body := sim.EncodeWebhook(sim.WebhookPayload{
						ID: "evt_" + run + "_" + i, Type: typ, Created: time.Now().Unix(),
						Reference: p.ProviderRef, PaymentKey: p.IdempotencyKey, Amount: p.Amount.Amount,
						Currency: p.Amount.Currency, Success: true,
					})
					return body, sim.SignWebhook(secret, body, time.Now())
				}
			}
			capture, confirm := signed(paymux.EventCaptured), signed(paymux.EventAuthorized)
			dispatchAll := func() int {
				total := 0
				for {
					n, err := disp.DispatchDue(ctx)
					if err != nil {
						t.Fatalf("DispatchDue: %v", err)
					}
					total += n
					if n == 0 {
						return total
					}
				}
			}
			// Warm up: load scripts, prepare statements, fill the pool. Each
			// path runs once, or its first run counts a script's load (a
			// fresh Redis answers NOSCRIPT to the first EVALSHA) or a
			// statement's preparation.
			for i := range 3 {
				for _, webhook := range []func(string) ([]byte, http.Header){capture, confirm} {
					body, hdr := webhook(fmt.Sprintf("warm-%d", i))
					if err := h.Ingest(ctx, sim.DefaultName, hdr, body); err != nil {
						t.Fatalf("Ingest: %v", err)
					}
				}
			}
			dispatchAll()

			const n = 20
			type webhook struct {
				body []byte
				hdr  http.Header
			}
			hooks := make([]webhook, n)
			for i := range hooks {
				hooks[i].body, hooks[i].hdr = capture(strconv.Itoa(i))
			}
			worst, total := int64(0), int64(0)
			for _, w := range hooks {
				before := st.roundTrips()
				if err := h.Ingest(ctx, sim.DefaultName, w.hdr, w.body); err != nil {
					t.Fatalf("Ingest: %v", err)
				}
				got := st.roundTrips() - before
				total += got
				worst = max(worst, got)
			}
			t.Logf("%s: %.2f round trips per webhook event (worst %d, over %d)", name, float64(total)/n, worst, n)
			if limit, ok := maxWebhookRoundTrips[name]; ok && worst > limit {
				t.Errorf("%s: a webhook event took %d round trips, want at most %d", name, worst, limit)
			}
			// A duplicate costs the claim only. On Redis that is one script;
			// the SQL claim tries the insert and the re-take before it reads
			// the processed row, so it is reported.
			before := st.roundTrips()
			if err := h.Ingest(ctx, sim.DefaultName, hooks[0].hdr, hooks[0].body); err != nil {
				t.Fatalf("Ingest duplicate: %v", err)
			}
			dup := st.roundTrips() - before
			t.Logf("%s: %d round trips for a duplicate webhook event", name, dup)
			if name == "redis" && dup != 1 {
				t.Errorf("%s: a duplicate webhook took %d round trips, want 1", name, dup)
			}

			delivered.Store(0)
			before = st.roundTrips()
			if got := dispatchAll(); got != n {
				t.Fatalf("dispatched %d, want %d", got, n)
			}
			batchTrips := st.roundTrips() - before
			if delivered.Load() != n {
				t.Fatalf("subscriber saw %d deliveries, want %d", delivered.Load(), n)
			}
			// One batch of n, then an empty claim that ends the loop.
			perBatch := batchTrips - 1
			t.Logf("%s: %d round trips for a batch of %d deliveries (%.2f per delivery), plus 1 for the empty poll",
				name, perBatch, n, float64(perBatch)/n)
			if limit, ok := maxDispatchRoundTrips[name]; ok && perBatch > limit {
				t.Errorf("%s: a batch of %d deliveries took %d round trips, want at most %d", name, n, perBatch, limit)
			}

			// The webhook that confirms a payment this process just
			// recorded changes nothing: with a store that can finish it in
			// one step (paymux.UnchangedEventCompleter), one round trip.
			body, hdr := confirm("confirm")
			before = st.roundTrips()
			if err := h.Ingest(ctx, sim.DefaultName, hdr, body); err != nil {
				t.Fatalf("Ingest confirmation: %v", err)
			}
			confirmTrips := st.roundTrips() - before
			t.Logf("%s: %d round trips for a webhook that confirms a payment just recorded", name, confirmTrips)
			if limit := maxConfirmRoundTrips[name]; confirmTrips > limit {
				t.Errorf("%s: a confirming webhook took %d round trips, want at most %d", name, confirmTrips, limit)
			}
			if got := dispatchAll(); got != 1 {
				t.Fatalf("dispatched %d after the confirmation, want 1", got)
			}
		})
	}
}

// BenchmarkWebhookEventStore is one verified webhook event that moves its
// payment (a refund's running total grows), plus its share of dispatching:
// every 64 events the dispatcher delivers a batch. One goroutine, so ns/op
// is the latency the store adds. roundtrips/op counts store round trips.
func BenchmarkWebhookEventStore(b *testing.B) {
	const secret = paymux.Secret("whsec_bench")
	const pool = 64
	for _, name := range storeNames {
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			st := newCountedStore(b, name)
			o, err := paymux.New(paymux.Config{
				Providers: []paymux.Provider{sim.New(sim.Config{WebhookSecret: secret})},
				Store:     st.Store,
				Logger:    slog.New(slog.DiscardHandler),
			})
			if err != nil {
				b.Fatal(err)
			}
			disp, err := o.NewDispatcher(paymux.DispatcherOptions{
				Subscriber: func(context.Context, paymux.Event, *paymux.Payment) error { return nil },
				Batch:      pool,
			})
			if err != nil {
				b.Fatal(err)
			}
			h := o.WebhookHandler(paymux.WebhookOptions{Dispatcher: disp})
			run := randomName("")
			pays := make([]*paymux.Payment, pool)
			for i := range pays {
				if pays[i], err = o.Authorize(ctx, cardRequest(fmt.Sprintf("wbench-%s-%d", run, i))); err != nil {
					b.Fatal(err)
				}
			}
			// Event i refunds a running total of i/pool+1 of payment i%pool,
			// more than the payment's last event did, so it moves it.
			ingest := func(i int) {
				p := pays[i%pool]
				body := sim.EncodeWebhook(sim.WebhookPayload{
					ID: fmt.Sprintf("evt_%s_%d", run, i), Type: paymux.EventRefunded, Created: time.Now().Unix(),
					Reference: p.ProviderRef, PaymentKey: p.IdempotencyKey, Amount: int64(i/pool)%p.Amount.Amount + 1,
					Currency: p.Amount.Currency, Success: true,
				})
				if err := h.Ingest(ctx, sim.DefaultName, sim.SignWebhook(secret, body, time.Now()), body); err != nil {
					b.Fatalf("Ingest: %v", err)
				}
				if (i+1)%pool == 0 {
					if _, err := disp.DispatchDue(ctx); err != nil {
						b.Fatalf("DispatchDue: %v", err)
					}
				}
			}
			for i := range pool { // warm up: scripts, statements, pool
				ingest(i)
			}
			var before int64
			if st.roundTrips != nil {
				before = st.roundTrips()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ingest(pool + i)
			}
			b.StopTimer()
			if st.roundTrips != nil {
				b.ReportMetric(float64(st.roundTrips()-before)/float64(b.N), "roundtrips/op")
			}
		})
	}
}
