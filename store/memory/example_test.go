package memory_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/store/memory"
)

// A claim, a duplicate that finds it in flight, and a completion that saves
// the payment with compare-and-set.
func Example() {
	ctx := context.Background()
	st := memory.New(memory.Options{})

	claim := paymux.ClaimParams{Key: "order-42", Fingerprint: "fp", Token: "t1", Lease: time.Minute}
	_, claimed, _ := st.ClaimIdempotency(ctx, claim)
	fmt.Println("first claim:", claimed)

	dup := claim
	dup.Token = "t2"
	rec, claimed, _ := st.ClaimIdempotency(ctx, dup)
	fmt.Println("duplicate claim:", claimed, rec.State)

	p := &paymux.Payment{ID: "pay_1", IdempotencyKey: "order-42", Status: paymux.StatusAuthorized, Amount: paymux.NewMoney(1299, "EUR")}
	_ = st.CompleteIdempotency(ctx, "order-42", "t1", p)
	fmt.Println("version:", p.Version)

	stale := p.Clone()
	stale.Version = 0
	err := st.SavePayment(ctx, stale, 0)
	fmt.Println("second insert conflicts:", errors.Is(err, paymux.ErrVersionConflict))
	// Output:
	// first claim: true
	// duplicate claim: false in_flight
	// version: 1
	// second insert conflicts: true
}
