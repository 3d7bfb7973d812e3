package order

import (
	"context"
	"testing"
	"time"

	"github.com/paymux/paymux"
)

func TestJustWritten(t *testing.T) {
	h := newJustWritten(2, time.Minute)
	now := time.Now()
	o := &Order{ID: "a", Status: StatusQueued, Version: 1}
	h.put(o, now)
	o.Status = StatusFailed // the caller goes on with its order: the worker's copy is unchanged
	h.put(&Order{ID: "b"}, now)
	h.put(&Order{ID: "c"}, now) // over the size: the worker reads this one
	if got, ok := h.take("a"); !ok || got.Status != StatusQueued {
		t.Fatalf("take(a) = %+v, %v; want the queued copy", got, ok)
	}
	if _, ok := h.take("a"); ok {
		t.Fatal("an order was handed over twice")
	}
	if _, ok := h.take("c"); ok {
		t.Fatal("an order beyond the size was kept")
	}
	h.drop("b")
	if _, ok := h.take("b"); ok {
		t.Fatal("a dropped order was handed over")
	}
	h.put(&Order{ID: "old"}, now.Add(-2*time.Minute))
	h.put(&Order{ID: "new"}, now)
	h.expire(now)
	if _, ok := h.take("old"); ok {
		t.Fatal("an order nobody took was kept past its ttl")
	}
	if _, ok := h.take("new"); !ok {
		t.Fatal("expire dropped a fresh order")
	}
}

// The webhook that follows a worker's result is skipped only when applying
// it could change nothing.
func TestReports(t *testing.T) {
	paid := &Order{ID: "o", Status: StatusPaid, PaymentID: "pay_1", Provider: "sim-a"}
	for _, c := range []struct {
		name  string
		o     *Order
		p     paymux.Payment
		skips bool
	}{
		{"same payment, same status", paid, paymux.Payment{ID: "pay_1", Provider: "sim-a", Status: paymux.StatusAuthorized}, true},
		{"an earlier status", paid, paymux.Payment{ID: "pay_1", Provider: "sim-a", Status: paymux.StatusPending}, true},
		{"captured since", paid, paymux.Payment{ID: "pay_1", Provider: "sim-a", Status: paymux.StatusCaptured}, false},
		{"refunded since", paid, paymux.Payment{ID: "pay_1", Provider: "sim-a", Status: paymux.StatusRefunded}, false},
		{"voided since", paid, paymux.Payment{ID: "pay_1", Provider: "sim-a", Status: paymux.StatusVoided}, false},
		{"another payment", paid, paymux.Payment{ID: "pay_2", Provider: "sim-a", Status: paymux.StatusAuthorized}, false},
		{"another provider", paid, paymux.Payment{ID: "pay_1", Provider: "sim-b", Status: paymux.StatusAuthorized}, false},
		{"not sold", &Order{ID: "o", Status: StatusRequiresAction, PaymentID: "pay_1", Provider: "sim-a"},
			paymux.Payment{ID: "pay_1", Provider: "sim-a", Status: paymux.StatusRequiresAction}, false},
	} {
		if got := reports(c.o, &c.p); got != c.skips {
			t.Errorf("%s: reports = %v, want %v", c.name, got, c.skips)
		}
	}
}

// Long polls answer from checkout's copy of a queued order only until the
// order changes: publishing a change takes the copy out first, so a poll
// that read it has subscribed before the change was published.
func TestPublishDropsCheckoutsCopy(t *testing.T) {
	s := &Service{broker: newBroker(), placed: newJustWritten(10, placedTTL)}
	s.placed.put(&Order{ID: "o", Status: StatusQueued, Version: 1}, time.Now())
	ch, unsubscribe := s.broker.subscribe("o")
	defer unsubscribe()
	s.publish(&Order{ID: "o", Status: StatusPaid, Version: 2})
	if o, ok := s.placed.peek("o", time.Now()); ok {
		t.Fatalf("after a change was published, long polls still answer from the copy: %s", o.Status)
	}
	if o := <-ch; o.Status != StatusPaid {
		t.Fatalf("published %s, want paid", o.Status)
	}
}

// Checkout's copy is not used once its reservation has run out: an expiry
// sweep in any instance may have changed the order since.
func TestJustWrittenNotPastTheReservation(t *testing.T) {
	h := newJustWritten(10, placedTTL)
	now := time.Now()
	h.put(&Order{ID: "o", Status: StatusQueued, ReservedUntil: now.Add(time.Minute)}, now)
	if _, ok := h.peek("o", now); !ok {
		t.Fatal("a fresh copy was not returned")
	}
	if _, ok := h.peek("o", now.Add(time.Minute)); ok {
		t.Fatal("a copy was returned after its reservation ran out")
	}
	if h.has("o", now.Add(2*time.Minute)) {
		t.Fatal("has reports a copy after its reservation ran out")
	}
}

// readCounter is a store that counts order reads.
type readCounter struct {
	Store
	reads int
}

func (c *readCounter) GetOrder(ctx context.Context, id string) (*Order, error) {
	c.reads++
	return c.Store.GetOrder(ctx, id)
}

// A webhook that trails its payment by minutes, as a provider's backlog
// does under load, still finds the worker's result and reads nothing.
func TestLateWebhookOfASettledOrderReadsNothing(t *testing.T) {
	store := &readCounter{Store: NewMemoryStore()}
	s := &Service{cfg: Config{Store: store}, broker: newBroker(), settled: newJustWritten(justWrittenSize, settledTTL)}
	paid := &Order{ID: "o", Status: StatusPaid, PaymentID: "pay_1", Provider: "sim-a", Email: "buyer@example.com"}
	t0 := time.Now()
	s.settled.put(settledCopy(paid), t0)
	s.settled.expire(t0.Add(5 * time.Minute)) // the sweep runs while the webhook waits at the provider
	p := &paymux.Payment{ID: "pay_1", IdempotencyKey: "o", Provider: "sim-a", Status: paymux.StatusAuthorized}
	if err := s.OnPaymentEvent(context.Background(), paymux.Event{}, p); err != nil {
		t.Fatal(err)
	}
	if store.reads != 0 {
		t.Fatalf("a webhook 5 minutes after its payment read the order %d times; want 0", store.reads)
	}
}
