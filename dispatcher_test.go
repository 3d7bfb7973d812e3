package paymux_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/internal/testclock"
	"github.com/paymux/paymux/providers/sim"
	"github.com/paymux/paymux/store/memory"
)

// dispatcherBundle is what setupDispatcher builds.
type dispatcherBundle struct {
	clk *testclock.Clock
	st  *callStore
	o   *paymux.Orchestrator
}

// setupDispatcher builds an orchestrator on a callStore with an injected
// clock, given to it plain (capabilities hidden) when plain is set.
func setupDispatcher(t *testing.T, plain bool) *dispatcherBundle {
	t.Helper()
	b := &dispatcherBundle{clk: testclock.New(time.Now())}
	b.st = newCallStore(memory.Options{Clock: b.clk.Now})
	var st paymux.Store = b.st
	if plain {
		st = plainStore{b.st}
	}
	var err error
	b.o, err = paymux.New(paymux.Config{Providers: []paymux.Provider{sim.New(sim.Config{Name: "a", Clock: b.clk.Now})}, Store: st, Clock: b.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// payments authorises n payments.
func (b *dispatcherBundle) payments(t *testing.T, n int) []*paymux.Payment {
	t.Helper()
	out := make([]*paymux.Payment, n)
	for i := range out {
		p, err := b.o.Authorize(context.Background(), cardRequest(fmt.Sprintf("%s-%d", t.Name(), i), sim.TokenApprove))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = p
	}
	return out
}

// enqueue puts perPayment deliveries for each payment in the outbox, those
// of one payment next to each other, each due a millisecond after the one
// before, so that the outbox hands them out in that order. Event ids are
// "<payment index>/<k>".
func (b *dispatcherBundle) enqueue(t *testing.T, pays []*paymux.Payment, perPayment int) {
	t.Helper()
	t0 := b.clk.Now().Add(-time.Second)
	seq := 0
	for i, p := range pays {
		for k := range perPayment {
			seq++
			id := fmt.Sprintf("%d/%d", i, k)
			d := &paymux.Delivery{
				ID:            paymux.DeliveryID("a", id),
				Event:         paymux.Event{Provider: "a", ID: id, Type: paymux.EventCaptured, ProviderRef: p.ProviderRef},
				PaymentID:     p.ID,
				State:         paymux.DeliveryPending,
				NextAttemptAt: t0.Add(time.Duration(seq) * time.Millisecond),
				CreatedAt:     t0,
			}
			if err := b.st.Store.EnqueueDelivery(context.Background(), d); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// A batch reads its payments with one GetPayments and records its
// deliveries with one CompleteDeliveries; a store without them gets one
// GetPayment per payment (not per delivery) and one CompleteDelivery per
// delivery. Either way every delivery gets its own payment.
func TestDispatcherBatchUsesTheStoreCapabilities(t *testing.T) {
	t.Parallel()
	for _, plain := range []bool{false, true} {
		t.Run(fmt.Sprintf("plain=%v", plain), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := setupDispatcher(t, plain)
			pays := b.payments(t, 10)
			b.enqueue(t, pays, 2)
			var mu sync.Mutex
			got := map[string]*paymux.Payment{}
			d, err := b.o.NewDispatcher(paymux.DispatcherOptions{Subscriber: func(_ context.Context, ev paymux.Event, p *paymux.Payment) error {
				mu.Lock()
				defer mu.Unlock()
				got[ev.ID] = p
				return nil
			}})
			if err != nil {
				t.Fatal(err)
			}
			b.st.reset()
			n, err := d.DispatchDue(ctx)
			if err != nil || n != 20 {
				t.Fatalf("DispatchDue = %d, %v; want 20", n, err)
			}
			want := map[string]int{"GetPayments": 1, "CompleteDeliveries": 1, "GetPayment": 0, "CompleteDelivery": 0}
			if plain {
				want = map[string]int{"GetPayments": 0, "CompleteDeliveries": 0, "GetPayment": 10, "CompleteDelivery": 20}
			}
			for op, n := range want {
				if c := b.st.count(op); c != n {
					t.Errorf("%s called %d times for a batch of 20 deliveries of 10 payments, want %d", op, c, n)
				}
			}
			seen := map[*paymux.Payment]bool{}
			for i, p := range pays {
				for k := range 2 {
					gp := got[fmt.Sprintf("%d/%d", i, k)]
					if gp == nil || gp.ID != p.ID || gp.Status != p.Status {
						t.Fatalf("delivery %d/%d got payment %+v, want %s", i, k, gp, p.ID)
					}
					if seen[gp] {
						t.Fatalf("two deliveries share one *Payment")
					}
					seen[gp] = true
				}
			}
			if n, _ := d.DispatchDue(ctx); n != 0 {
				t.Fatalf("%d deliveries came back after they were recorded", n)
			}
		})
	}
}

// Deliveries run Concurrency at a time, but those of one payment one after
// another and in the outbox's order.
func TestDispatcherKeepsEachPaymentsOrder(t *testing.T) {
	t.Parallel()
	for _, conc := range []int{1, 4} {
		t.Run(fmt.Sprintf("concurrency=%d", conc), func(t *testing.T) {
			t.Parallel()
			b := setupDispatcher(t, false)
			pays := b.payments(t, 8)
			const perPayment = 5
			b.enqueue(t, pays, perPayment)
			var mu sync.Mutex
			inflight, maxInflight := 0, 0
			busy := map[string]bool{}
			order := map[string][]string{}
			d, err := b.o.NewDispatcher(paymux.DispatcherOptions{Concurrency: conc, Subscriber: func(_ context.Context, ev paymux.Event, p *paymux.Payment) error {
				mu.Lock()
				if busy[p.ID] {
					mu.Unlock()
					t.Errorf("two deliveries of payment %s at once", p.ID)
					return nil
				}
				busy[p.ID] = true
				inflight++
				maxInflight = max(maxInflight, inflight)
				order[p.ID] = append(order[p.ID], ev.ID)
				mu.Unlock()
				time.Sleep(2 * time.Millisecond) // long enough for the others to overlap
				mu.Lock()
				busy[p.ID] = false
				inflight--
				mu.Unlock()
				return nil
			}})
			if err != nil {
				t.Fatal(err)
			}
			if n, err := d.DispatchDue(context.Background()); err != nil || n != len(pays)*perPayment {
				t.Fatalf("DispatchDue = %d, %v", n, err)
			}
			for i, p := range pays {
				var want []string
				for k := range perPayment {
					want = append(want, fmt.Sprintf("%d/%d", i, k))
				}
				if fmt.Sprint(order[p.ID]) != fmt.Sprint(want) {
					t.Errorf("payment %d delivered in the order %v, want %v", i, order[p.ID], want)
				}
			}
			if maxInflight > conc {
				t.Errorf("%d deliveries at once, Concurrency is %d", maxInflight, conc)
			}
			if conc > 1 && maxInflight < 2 {
				t.Errorf("never more than one delivery at once with Concurrency %d", conc)
			}
		})
	}
}

// Failures in a batch are recorded as before, one by one: a retry with its
// error and next attempt, or a dead letter at MaxAttempts; the successes of
// the same batch are recorded delivered.
func TestDispatcherRecordsFailuresOfABatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupDispatcher(t, false)
	pays := b.payments(t, 4)
	b.enqueue(t, pays, 2)
	// Payment 1's deliveries fail; payment 2's first fails for the last time.
	d, err := b.o.NewDispatcher(paymux.DispatcherOptions{MaxAttempts: 2, BaseDelay: time.Minute, Subscriber: func(_ context.Context, ev paymux.Event, _ *paymux.Payment) error {
		if ev.ID == "1/0" || ev.ID == "1/1" || ev.ID == "2/0" {
			return errors.New("subscriber down")
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := d.DispatchDue(ctx); err != nil || n != 8 {
		t.Fatalf("DispatchDue = %d, %v", n, err)
	}
	state := func(id string) *paymux.Delivery {
		del, err := b.st.GetDelivery(ctx, paymux.DeliveryID("a", id))
		if err != nil {
			t.Fatal(err)
		}
		return del
	}
	for _, id := range []string{"0/0", "0/1", "2/1", "3/0", "3/1"} {
		if del := state(id); del.State != paymux.DeliveryDelivered || del.Attempts != 0 {
			t.Fatalf("%s: %+v, want delivered", id, del)
		}
	}
	for _, id := range []string{"1/0", "1/1", "2/0"} {
		del := state(id)
		if del.State != paymux.DeliveryPending || del.Attempts != 1 || del.LastError != "subscriber down" || !del.NextAttemptAt.After(b.clk.Now()) {
			t.Fatalf("%s: %+v, want a retry later", id, del)
		}
	}
	// The second failure is the last: dead letters; the rest succeed now.
	b.clk.Advance(time.Hour)
	d2, _ := b.o.NewDispatcher(paymux.DispatcherOptions{MaxAttempts: 2, Subscriber: func(_ context.Context, ev paymux.Event, _ *paymux.Payment) error {
		if ev.ID == "2/0" {
			return errors.New("still down")
		}
		return nil
	}})
	if n, err := d2.DispatchDue(ctx); err != nil || n != 3 {
		t.Fatalf("second DispatchDue = %d, %v", n, err)
	}
	if del := state("2/0"); del.State != paymux.DeliveryDead || del.Attempts != 2 || del.LastError != "still down" {
		t.Fatalf("2/0: %+v, want dead", del)
	}
	for _, id := range []string{"1/0", "1/1"} {
		if del := state(id); del.State != paymux.DeliveryDelivered {
			t.Fatalf("%s: %+v, want delivered", id, del)
		}
	}
}

// At least once: when the deliveries of a batch were made but recording
// them fails (or the process dies first), they come back after the lease
// and are delivered again; nothing is lost.
func TestDispatcherRedeliversWhenRecordingFails(t *testing.T) {
	t.Parallel()
	for _, plain := range []bool{false, true} {
		t.Run(fmt.Sprintf("plain=%v", plain), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := setupDispatcher(t, plain)
			pays := b.payments(t, 3)
			b.enqueue(t, pays, 2)
			subs := &deliveries{seen: map[string]int{}}
			d, err := b.o.NewDispatcher(paymux.DispatcherOptions{Subscriber: subs.subscriber, Lease: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			b.st.setFault(func(op string) (bool, bool) {
				return op == "CompleteDeliveries" || op == "CompleteDelivery", false
			})
			if _, err := d.DispatchDue(ctx); !errors.Is(err, paymux.ErrStoreUnavailable) {
				t.Fatalf("DispatchDue with a failing store: %v", err)
			}
			if total, _ := subs.count(); total != 6 {
				t.Fatalf("delivered %d, want 6", total)
			}
			b.st.setFault(nil)
			if n, _ := d.DispatchDue(ctx); n != 0 {
				t.Fatalf("%d deliveries came back within their lease", n)
			}
			b.clk.Advance(2 * time.Minute)
			if n, err := d.DispatchDue(ctx); err != nil || n != 6 {
				t.Fatalf("after the lease: %d, %v; want all 6 again", n, err)
			}
			if total, maxPer := subs.count(); total != 12 || maxPer != 2 {
				t.Fatalf("delivered %d (at most %d each), want every one twice", total, maxPer)
			}
			b.clk.Advance(2 * time.Minute)
			if n, _ := d.DispatchDue(ctx); n != 0 {
				t.Fatalf("%d deliveries came back after they were recorded", n)
			}
		})
	}
}

// A shutdown mid-batch records what was delivered before it, so only the
// deliveries it interrupted come back.
func TestDispatcherShutdownRecordsWhatWasDelivered(t *testing.T) {
	t.Parallel()
	b := setupDispatcher(t, false)
	pays := b.payments(t, 1)
	b.enqueue(t, pays, 5)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	d, err := b.o.NewDispatcher(paymux.DispatcherOptions{Subscriber: func(ctx context.Context, ev paymux.Event, _ *paymux.Payment) error {
		calls++
		if calls == 3 {
			cancel() // the process is told to stop
			return ctx.Err()
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.DispatchDue(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("DispatchDue during a shutdown: %v", err)
	}
	for k, want := range []paymux.DeliveryState{paymux.DeliveryDelivered, paymux.DeliveryDelivered, paymux.DeliveryPending, paymux.DeliveryPending, paymux.DeliveryPending} {
		del, err := b.st.GetDelivery(context.Background(), paymux.DeliveryID("a", fmt.Sprintf("0/%d", k)))
		if err != nil || del.State != want || del.Attempts != 0 {
			t.Fatalf("delivery 0/%d: %+v, %v; want %s and no attempt recorded", k, del, err, want)
		}
	}
}

// Run gives the webhooks right behind the one that woke it Gather to land,
// and claims them all as one batch: a burst costs one batch's round trips,
// not one batch's per webhook.
func TestDispatcherGathersABurstIntoOneBatch(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := newCallStore(memory.Options{})
	o, err := paymux.New(paymux.Config{Providers: []paymux.Provider{sim.New(sim.Config{Name: "a", WebhookSecret: simSecret})}, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	const burst = 10
	delivered := make(chan string, burst)
	d, err := o.NewDispatcher(paymux.DispatcherOptions{
		Subscriber: func(_ context.Context, ev paymux.Event, _ *paymux.Payment) error { delivered <- ev.ID; return nil },
		// Long enough for the whole burst on a loaded machine, and no
		// poll to claim on its own.
		Gather: time.Second, PollInterval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	h := o.WebhookHandler(paymux.WebhookOptions{Dispatcher: d})
	hooks := make([][2]any, burst)
	for i := range hooks {
		req := cardRequest(fmt.Sprintf("gather-%d", i), sim.TokenApprove)
		req.Capture = paymux.CaptureManual
		p, err := o.Authorize(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		body, hdr := webhookBody(fmt.Sprintf("evt_gather_%d", i), paymux.EventCaptured, p, p.Amount.Amount, true, time.Now())
		hooks[i] = [2]any{body, hdr}
	}
	go func() { _ = d.Run(ctx) }()
	// Run's first claim, at start, finds nothing.
	for st.count("ClaimDueDeliveries") == 0 {
		time.Sleep(time.Millisecond)
	}
	for _, hk := range hooks {
		if err := h.Ingest(ctx, "a", hk[1].(http.Header), hk[0].([]byte)); err != nil {
			t.Fatal(err)
		}
	}
	for range burst {
		select {
		case <-delivered:
		case <-time.After(30 * time.Second):
			t.Fatal("the burst was not delivered")
		}
	}
	// The batch records its deliveries after the subscriber calls return.
	for deadline := time.Now().Add(30 * time.Second); st.count("CompleteDeliveries") == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if n := st.count("ClaimDueDeliveries"); n != 2 {
		t.Errorf("%d claims for a burst of %d webhooks, want 2 (the empty one at start and one batch)", n, burst)
	}
	if n := st.count("CompleteDeliveries"); n != 1 {
		t.Errorf("the burst's deliveries were recorded in %d batches, want 1", n)
	}
}
