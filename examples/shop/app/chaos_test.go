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
