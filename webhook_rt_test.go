package paymux_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/sim"
	"github.com/paymux/paymux/store/memory"
)

// The webhook path with the optional store capabilities (one round trip to
// enqueue the delivery and complete the event) and without them (a store
// that has only paymux.Store).

// callStore is the memory store, counting the calls of the webhook path and
// failing the ones a test asks to. It keeps the memory store's optional
// capabilities; wrap it in plainStore to hide them.
type callStore struct {
	*memory.Store
	mu    sync.Mutex
	calls map[string]int
	// fault, when set, is asked before each counted call: fail before
	// doing it, or after (the store did it but the answer was lost).
	fault func(op string) (before, after bool)
}

func newCallStore(opts memory.Options) *callStore {
	return &callStore{Store: memory.New(opts), calls: map[string]int{}}
}

var errInjected = errors.New("injected: connection reset by peer")

// call counts op and runs do unless the fault says otherwise.
func (s *callStore) call(op string, do func() error) error {
	s.mu.Lock()
	s.calls[op]++
	fault := s.fault
	s.mu.Unlock()
	var before, after bool
	if fault != nil {
		before, after = fault(op)
	}
	if before {
		return errInjected
	}
	if err := do(); err != nil {
		return err
	}
	if after {
		return errInjected
	}
	return nil
}

func (s *callStore) count(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

func (s *callStore) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = map[string]int{}
}

func (s *callStore) setFault(f func(op string) (before, after bool)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

func (s *callStore) ClaimEvent(ctx context.Context, provider, id string, lease time.Duration) (c paymux.EventClaim, err error) {
	err = s.call("ClaimEvent", func() (err error) { c, err = s.Store.ClaimEvent(ctx, provider, id, lease); return err })
	return c, err
}

func (s *callStore) CompleteEvent(ctx context.Context, provider, id string, ttl time.Duration) error {
	return s.call("CompleteEvent", func() error { return s.Store.CompleteEvent(ctx, provider, id, ttl) })
}

func (s *callStore) ReleaseEvent(ctx context.Context, provider, id string) error {
	return s.call("ReleaseEvent", func() error { return s.Store.ReleaseEvent(ctx, provider, id) })
}

func (s *callStore) EnqueueDelivery(ctx context.Context, d *paymux.Delivery) error {
	return s.call("EnqueueDelivery", func() error { return s.Store.EnqueueDelivery(ctx, d) })
}

func (s *callStore) CompleteEventWithDelivery(ctx context.Context, provider, id string, ttl time.Duration, d *paymux.Delivery) error {
	return s.call("CompleteEventWithDelivery", func() error {
		return s.Store.CompleteEventWithDelivery(ctx, provider, id, ttl, d)
	})
}

func (s *callStore) GetPaymentByProviderRef(ctx context.Context, provider, ref string) (p *paymux.Payment, err error) {
	err = s.call("GetPaymentByProviderRef", func() (err error) { p, err = s.Store.GetPaymentByProviderRef(ctx, provider, ref); return err })
	return p, err
}

func (s *callStore) SavePayment(ctx context.Context, p *paymux.Payment, expected int64) error {
	return s.call("SavePayment", func() error { return s.Store.SavePayment(ctx, p, expected) })
}

func (s *callStore) GetPayment(ctx context.Context, id string) (p *paymux.Payment, err error) {
	err = s.call("GetPayment", func() (err error) { p, err = s.Store.GetPayment(ctx, id); return err })
	return p, err
}

func (s *callStore) GetPayments(ctx context.Context, ids []string) (m map[string]*paymux.Payment, err error) {
	err = s.call("GetPayments", func() (err error) { m, err = s.Store.GetPayments(ctx, ids); return err })
	return m, err
}

func (s *callStore) ClaimDueDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) (ds []*paymux.Delivery, err error) {
	err = s.call("ClaimDueDeliveries", func() (err error) { ds, err = s.Store.ClaimDueDeliveries(ctx, now, lease, limit); return err })
	return ds, err
}

func (s *callStore) CompleteDelivery(ctx context.Context, id string) error {
	return s.call("CompleteDelivery", func() error { return s.Store.CompleteDelivery(ctx, id) })
}

func (s *callStore) CompleteDeliveries(ctx context.Context, ids []string) error {
	return s.call("CompleteDeliveries", func() error { return s.Store.CompleteDeliveries(ctx, ids) })
}

var (
	_ paymux.EventCompleter    = (*callStore)(nil)
	_ paymux.DeliveryCompleter = (*callStore)(nil)
	_ paymux.PaymentsGetter    = (*callStore)(nil)
)

// plainStore has only the methods of paymux.Store, as a third-party store
// without the optional capabilities.
type plainStore struct{ paymux.Store }

// webhookRTBundle is what setupWebhookRT builds.
type webhookRTBundle struct {
	st   *callStore
	o    *paymux.Orchestrator
	disp *paymux.Dispatcher
	h    *paymux.WebhookHandler
	subs *deliveries
}

// setupWebhookRT builds an orchestrator with one sim provider "a" on a
// callStore, given to it plain (capabilities hidden) when plain is set.
func setupWebhookRT(t *testing.T, plain bool) *webhookRTBundle {
	t.Helper()
	b := &webhookRTBundle{st: newCallStore(memory.Options{}), subs: &deliveries{seen: map[string]int{}}}
	var st paymux.Store = b.st
	if plain {
		st = plainStore{b.st}
	}
	var err error
	b.o, err = paymux.New(paymux.Config{Providers: []paymux.Provider{sim.New(sim.Config{Name: "a", WebhookSecret: simSecret})}, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if b.disp, err = b.o.NewDispatcher(paymux.DispatcherOptions{Subscriber: b.subs.subscriber}); err != nil {
		t.Fatal(err)
	}
	b.h = b.o.WebhookHandler(paymux.WebhookOptions{Dispatcher: b.disp})
	return b
}

// authorized authorises a payment for manual capture.
func (b *webhookRTBundle) authorized(t *testing.T, key string) *paymux.Payment {
	t.Helper()
	req := cardRequest(key, sim.TokenApprove)
	req.Capture = paymux.CaptureManual
	p, err := b.o.Authorize(context.Background(), req)
	if err != nil || p.Status != paymux.StatusAuthorized {
		t.Fatalf("Authorize %s: %v %v", key, p, err)
	}
	return p
}

func (b *webhookRTBundle) dispatchAll(t *testing.T) int {
	t.Helper()
	total := 0
	for {
		n, err := b.disp.DispatchDue(context.Background())
		if err != nil {
			t.Fatalf("DispatchDue: %v", err)
		}
		if n == 0 {
			return total
		}
		total += n
	}
}

func eventProcessed(t *testing.T, st paymux.Store, provider, id string) bool {
	t.Helper()
	// Claim and release again: only looks, for an event nobody holds.
	c, err := st.ClaimEvent(context.Background(), provider, id, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if c == paymux.EventClaimed {
		if err := st.ReleaseEvent(context.Background(), provider, id); err != nil {
			t.Fatal(err)
		}
	}
	return c == paymux.EventDuplicate
}

// A webhook event becomes exactly one delivery, however often it is
// redelivered, and with the capability it costs one combined call instead
// of an enqueue and a completion.
func TestWebhookRTEventBecomesExactlyOneDelivery(t *testing.T) {
	t.Parallel()
	for _, plain := range []bool{false, true} {
		t.Run(fmt.Sprintf("plain=%v", plain), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := setupWebhookRT(t, plain)
			p := b.authorized(t, "rt-once")
			body, hdr := webhookBody("ev-once", paymux.EventCaptured, p, p.Amount.Amount, true, time.Now())
			b.st.reset()
			if err := b.h.Ingest(ctx, "a", hdr, body); err != nil {
				t.Fatal(err)
			}
			wantCalls := map[string]int{"ClaimEvent": 1, "GetPaymentByProviderRef": 1, "SavePayment": 1,
				"CompleteEventWithDelivery": 1, "EnqueueDelivery": 0, "CompleteEvent": 0, "ReleaseEvent": 0}
			if plain {
				wantCalls["CompleteEventWithDelivery"], wantCalls["EnqueueDelivery"], wantCalls["CompleteEvent"] = 0, 1, 1
			}
			for op, n := range wantCalls {
				if got := b.st.count(op); got != n {
					t.Errorf("%s called %d times for one event, want %d", op, got, n)
				}
			}
			// Redelivered, also concurrently: acknowledged, not enqueued again.
			var wg sync.WaitGroup
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := b.h.Ingest(ctx, "a", hdr, body); err != nil && !errors.Is(err, paymux.ErrEventBusy) {
						t.Errorf("redelivery: %v", err)
					}
				}()
			}
			wg.Wait()
			if got := b.st.count("CompleteEventWithDelivery") + b.st.count("EnqueueDelivery"); got != 1 {
				t.Fatalf("the event was enqueued %d times", got)
			}
			d, err := b.st.GetDelivery(ctx, paymux.DeliveryID("a", "ev-once"))
			if err != nil || d.State != paymux.DeliveryPending || d.PaymentID != p.ID || d.Event.Raw != nil {
				t.Fatalf("delivery %+v, %v", d, err)
			}
			if !eventProcessed(t, b.st, "a", "ev-once") {
				t.Fatal("event not marked processed")
			}
			if n := b.dispatchAll(t); n != 1 {
				t.Fatalf("dispatched %d, want 1", n)
			}
			if b.subs.seen[p.ID+"/ev-once"] != 1 {
				t.Fatalf("subscriber saw %v", b.subs.seen)
			}
		})
	}
}

// Without a dispatcher nothing is enqueued and the plain CompleteEvent
// marks the event.
func TestWebhookRTWithoutDispatcherOnlyCompletes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupWebhookRT(t, false)
	h := b.o.WebhookHandler(paymux.WebhookOptions{})
	p := b.authorized(t, "rt-nodisp")
	body, hdr := webhookBody("ev-nodisp", paymux.EventCaptured, p, p.Amount.Amount, true, time.Now())
	b.st.reset()
	if err := h.Ingest(ctx, "a", hdr, body); err != nil {
		t.Fatal(err)
	}
	if b.st.count("CompleteEvent") != 1 || b.st.count("CompleteEventWithDelivery") != 0 || b.st.count("EnqueueDelivery") != 0 {
		t.Fatalf("calls %v", b.st.calls)
	}
	if _, err := b.st.GetDelivery(ctx, paymux.DeliveryID("a", "ev-nodisp")); !errors.Is(err, paymux.ErrNotFound) {
		t.Fatalf("a delivery was enqueued without a dispatcher: %v", err)
	}
}

// A failed CompleteEventWithDelivery leaves the event claimable (the claim
// is released, nothing is marked) and enqueues nothing; the provider's
// redelivery then enqueues the delivery once. When the store did the work
// but the answer was lost, the redelivery is a duplicate and the one
// delivery stays one.
func TestWebhookRTCombinedFailureLeavesEventReclaimable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupWebhookRT(t, false)
	p := b.authorized(t, "rt-fail")
	body, hdr := webhookBody("ev-fail", paymux.EventCaptured, p, p.Amount.Amount, true, time.Now())
	id := paymux.DeliveryID("a", "ev-fail")

	b.st.setFault(func(op string) (bool, bool) { return op == "CompleteEventWithDelivery", false })
	err := b.h.Ingest(ctx, "a", hdr, body)
	if !errors.Is(err, paymux.ErrStoreUnavailable) || paymux.WebhookStatus(err) != http.StatusServiceUnavailable {
		t.Fatalf("failed completion answered %v (status %d), want 503", err, paymux.WebhookStatus(err))
	}
	if _, err := b.st.GetDelivery(ctx, id); !errors.Is(err, paymux.ErrNotFound) {
		t.Fatalf("delivery stored by a failed completion: %v", err)
	}
	if c, err := b.st.Store.ClaimEvent(ctx, "a", "ev-fail", time.Minute); err != nil || c != paymux.EventClaimed {
		t.Fatalf("after a failed completion the event claims as %v (%v), want claimable", c, err)
	}
	if err := b.st.Store.ReleaseEvent(ctx, "a", "ev-fail"); err != nil {
		t.Fatal(err)
	}

	b.st.setFault(nil)
	if err := b.h.Ingest(ctx, "a", hdr, body); err != nil {
		t.Fatalf("redelivery: %v", err)
	}
	if n := b.dispatchAll(t); n != 1 {
		t.Fatalf("dispatched %d, want 1", n)
	}

	// The answer of a completion that happened is lost.
	p2 := b.authorized(t, "rt-lost")
	body2, hdr2 := webhookBody("ev-lost", paymux.EventCaptured, p2, p2.Amount.Amount, true, time.Now())
	b.st.setFault(func(op string) (bool, bool) { return false, op == "CompleteEventWithDelivery" })
	if err := b.h.Ingest(ctx, "a", hdr2, body2); paymux.WebhookStatus(err) != http.StatusServiceUnavailable {
		t.Fatalf("lost answer: %v", err)
	}
	b.st.setFault(nil)
	if err := b.h.Ingest(ctx, "a", hdr2, body2); err != nil {
		t.Fatalf("redelivery after a lost answer: %v", err)
	}
	if n := b.dispatchAll(t); n != 1 {
		t.Fatalf("dispatched %d after a lost answer, want 1", n)
	}
	if b.subs.seen[p2.ID+"/ev-lost"] != 1 {
		t.Fatalf("subscriber saw %v", b.subs.seen)
	}
}

// The property behind the combined call: an event is never marked
// processed without its delivery, whatever fails. Every store call of the
// webhook path fails at random, before or after doing its work; after every
// attempt no processed event may lack its delivery, and once the faults
// stop, redelivering every event until it is acknowledged leaves exactly
// one delivery per event, delivered.
func TestWebhookRTEventNeverProcessedWithoutItsDelivery(t *testing.T) {
	t.Parallel()
	for _, plain := range []bool{false, true} {
		t.Run(fmt.Sprintf("plain=%v", plain), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := setupWebhookRT(t, plain)
			type hook struct {
				id   string
				body []byte
				hdr  http.Header
			}
			var hooks []hook
			for i := range 30 {
				p := b.authorized(t, fmt.Sprintf("rt-prop-%d", i))
				for j, typ := range []paymux.EventType{paymux.EventCaptured, paymux.EventRefunded} {
					id := fmt.Sprintf("ev-prop-%d-%d", i, j)
					body, hdr := webhookBody(id, typ, p, 100*int64(j+1), true, time.Now())
					hooks = append(hooks, hook{id, body, hdr})
				}
			}
			rnd := rand.New(rand.NewPCG(1, uint64(len(hooks))))
			var mu sync.Mutex
			faults := func(op string) (before, after bool) {
				mu.Lock()
				defer mu.Unlock()
				if op == "ClaimEvent" && rnd.IntN(4) > 0 {
					return false, false // most claims pass, or little else would run
				}
				switch r := rnd.IntN(10); {
				case r < 2:
					return true, false
				case r < 4:
					return false, true
				}
				return false, false
			}
			for round := range 4 {
				b.st.setFault(faults)
				for _, i := range rnd.Perm(len(hooks)) {
					w := hooks[i]
					err := b.h.Ingest(ctx, "a", w.hdr, w.body)
					if err != nil && paymux.WebhookStatus(err) != http.StatusServiceUnavailable {
						t.Fatalf("round %d, %s: %v", round, w.id, err)
					}
				}
				b.st.setFault(nil)
				for _, w := range hooks {
					if !eventProcessed(t, b.st.Store, "a", w.id) {
						continue
					}
					if _, err := b.st.GetDelivery(ctx, paymux.DeliveryID("a", w.id)); err != nil {
						t.Fatalf("round %d: event %s is processed but its delivery is %v", round, w.id, err)
					}
				}
			}

			// The faults stop; the provider redelivers until acknowledged.
			b.st.setFault(nil)
			for _, w := range hooks {
				for tries := 0; ; tries++ {
					err := b.h.Ingest(ctx, "a", w.hdr, w.body)
					if err == nil {
						break
					}
					if !errors.Is(err, paymux.ErrEventBusy) || tries > 0 {
						t.Fatalf("%s after the faults: %v", w.id, err)
					}
					// A claim whose holder's release failed: it ends with
					// its lease; the test does not wait for it.
					if err := b.st.Store.ReleaseEvent(ctx, "a", w.id); err != nil {
						t.Fatal(err)
					}
				}
			}
			if n := b.dispatchAll(t); n != len(hooks) {
				t.Fatalf("dispatched %d, want one per event: %d", n, len(hooks))
			}
			for _, w := range hooks {
				d, err := b.st.GetDelivery(ctx, paymux.DeliveryID("a", w.id))
				if err != nil || d.State != paymux.DeliveryDelivered {
					t.Fatalf("%s: delivery %+v, %v", w.id, d, err)
				}
			}
		})
	}
}
