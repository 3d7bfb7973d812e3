package app

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/store/memory"
)

// The chaos wrapper keeps the store's one-step capabilities, and a cut
// refuses them like every other call.
func TestCuttableStoreKeepsCapabilities(t *testing.T) {
	ctx := context.Background()
	c := &CuttableStore{Store: memory.New(memory.Options{})}
	if _, err := c.ClaimEvent(ctx, "sim", "ev1", time.Minute); err != nil {
		t.Fatal(err)
	}
	d := &paymux.Delivery{ID: paymux.DeliveryID("sim", "ev1"), State: paymux.DeliveryPending, NextAttemptAt: time.Now(), CreatedAt: time.Now()}
	c.Cut()
	if err := c.CompleteEventWithDelivery(ctx, "sim", "ev1", 0, d); !errors.Is(err, errStoreCut) {
		t.Fatalf("cut: %v, want errStoreCut", err)
	}
	if _, err := c.GetPayments(ctx, []string{"x"}); !errors.Is(err, errStoreCut) {
		t.Fatalf("cut GetPayments: %v", err)
	}
	c.Restore()
	if err := c.CompleteEventWithDelivery(ctx, "sim", "ev1", 0, d); err != nil {
		t.Fatal(err)
	}
	if claim, err := c.ClaimEvent(ctx, "sim", "ev1", time.Minute); err != nil || claim != paymux.EventDuplicate {
		t.Fatalf("event after completion: %v %v, want a duplicate", claim, err)
	}
	if _, err := c.GetDelivery(ctx, d.ID); err != nil {
		t.Fatalf("delivery not enqueued: %v", err)
	}
	if err := c.CompleteDeliveries(ctx, []string{d.ID, "absent"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.GetDelivery(ctx, d.ID); got.State != paymux.DeliveryDelivered {
		t.Fatalf("delivery state %v, want delivered", got.State)
	}
	if ps, err := c.GetPayments(ctx, []string{"absent"}); err != nil || len(ps) != 0 {
		t.Fatalf("GetPayments(absent) = %v, %v", ps, err)
	}
}

// cutMidCall is a store whose SavePayment lets a cut begin while it runs.
type cutMidCall struct {
	paymux.Store
	cut func()
}

func (s cutMidCall) SavePayment(ctx context.Context, p *paymux.Payment, expected int64) error {
	s.cut()
	return s.Store.SavePayment(ctx, p, expected)
}

// A call in flight when the cut begins does its work, and its caller hears
// only that the connection failed: the hard case for whoever retries.
func TestCutLosesTheReplyOfACallInFlight(t *testing.T) {
	ctx := context.Background()
	c := &CuttableStore{}
	c.Store = cutMidCall{Store: memory.New(memory.Options{}), cut: c.Cut}
	p := &paymux.Payment{ID: "pay_1", Status: paymux.StatusAuthorized}
	if err := c.SavePayment(ctx, p, 0); !errors.Is(err, errReplyLost) || !errors.Is(err, errStoreCut) {
		t.Fatalf("SavePayment in flight at the cut: %v, want errReplyLost", err)
	}
	if _, err := c.GetPayment(ctx, "pay_1"); !errors.Is(err, errStoreCut) || errors.Is(err, errReplyLost) {
		t.Fatalf("GetPayment during the cut: %v, want errStoreCut", err)
	}
	c.Restore()
	if got, err := c.GetPayment(ctx, "pay_1"); err != nil || got.Version != 1 {
		t.Fatalf("after the cut: %+v %v, want the payment the lost call saved", got, err)
	}
}
