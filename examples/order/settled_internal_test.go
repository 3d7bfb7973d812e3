package order

import (
	"context"
	"fmt"
	"testing"

	"github.com/paymux/paymux"
)

// noCallStore fails the test on any call: what is under test must not touch
// the store.
type noCallStore struct {
	Store
	t *testing.T
}

func (s noCallStore) GetOrder(context.Context, string) (*Order, error) {
	s.t.Fatal("GetOrder called")
	return nil, nil
}

// The webhook for a payment this process has already recorded on its order
// costs no store call; a payment that says anything else is applied.
func TestSettledOrdersSkipOnlyTheSameState(t *testing.T) {
	s := &Service{cfg: Config{Store: noCallStore{t: t}}}
	o := &Order{ID: "ord_1", Status: StatusPaid, PaymentID: "pay_1", Provider: "sim-a"}
	s.seen.add(o)
	p := &paymux.Payment{ID: "pay_1", IdempotencyKey: "ord_1", Provider: "sim-a", Status: paymux.StatusAuthorized}
	if err := s.OnPaymentEvent(context.Background(), paymux.Event{}, p); err != nil {
		t.Fatal(err)
	}
	for _, other := range []*paymux.Payment{
		{ID: "pay_1", IdempotencyKey: "ord_1", Provider: "sim-a", Status: paymux.StatusCaptured},   // moves on
		{ID: "pay_1", IdempotencyKey: "ord_1", Provider: "sim-b", Status: paymux.StatusAuthorized}, // another provider
		{ID: "pay_2", IdempotencyKey: "ord_1", Provider: "sim-a", Status: paymux.StatusAuthorized}, // another payment
		{ID: "pay_9", IdempotencyKey: "ord_9", Provider: "sim-a", Status: paymux.StatusAuthorized}, // never seen
	} {
		if s.seen.has(other.IdempotencyKey, settledOf(other)) {
			t.Errorf("%+v would be skipped", other)
		}
	}
}

// The memory is bounded: two generations, the older dropped when the newer
// fills.
func TestSettledOrdersBounded(t *testing.T) {
	var m settledOrders
	for i := 0; i < 3*settledGeneration; i++ {
		m.add(&Order{ID: fmt.Sprint(i), Status: StatusPaid})
	}
	if n := len(m.cur) + len(m.before); n > 2*settledGeneration {
		t.Fatalf("%d entries kept, want at most %d", n, 2*settledGeneration)
	}
	if !m.has(fmt.Sprint(3*settledGeneration-1), settled{status: StatusPaid}) {
		t.Fatal("the newest entry is forgotten")
	}
	if m.has("0", settled{status: StatusPaid}) {
		t.Fatal("the oldest entry is still kept")
	}
}
