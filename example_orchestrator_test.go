package paymux_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/sim"
	"github.com/paymux/paymux/store/memory"
)

// A shop authorises an order, captures part of it at shipping and refunds
// part of the capture. The order id is the idempotency key: however often the
// checkout is retried, the buyer is charged once.
func Example() {
	ctx := context.Background()
	orch, err := paymux.New(paymux.Config{
		Providers: []paymux.Provider{sim.New(sim.Config{Name: "sim"})},
		Store:     memory.New(memory.Options{}),
	})
	if err != nil {
		panic(err)
	}
	p, err := orch.Authorize(ctx, paymux.PaymentRequest{
		IdempotencyKey: "order-1001",
		Amount:         paymux.NewMoney(4999, "EUR"),
		Method:         paymux.PaymentMethod{Type: paymux.MethodCard, Token: sim.TokenApprove},
		Country:        "DE",
		Capture:        paymux.CaptureManual,
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(p.Status, paymux.NewMoney(p.Authorized, p.Amount.Currency))

	// The same request again is a replay, not a second charge.
	again, _ := orch.Authorize(ctx, paymux.PaymentRequest{
		IdempotencyKey: "order-1001", Amount: paymux.NewMoney(4999, "EUR"),
		Method: paymux.PaymentMethod{Type: paymux.MethodCard, Token: sim.TokenApprove}, Country: "DE", Capture: paymux.CaptureManual,
	})
	fmt.Println("same payment:", again.ID == p.ID)

	p, _ = orch.Capture(ctx, p.ID, paymux.CaptureParams{Key: "ship-1", Amount: 2999})
	fmt.Println(p.Status, paymux.NewMoney(p.Captured, p.Amount.Currency))

	p, _ = orch.Refund(ctx, p.ID, paymux.RefundParams{Key: "rma-7", Amount: 1000})
	fmt.Println(p.Status, paymux.NewMoney(p.Refunded, p.Amount.Currency))
	// Output:
	// authorized 49.99 EUR
	// same payment: true
	// captured 29.99 EUR
	// refunded 10.00 EUR
}

// Declines and lost outcomes are errors you can test for; the payment comes
// back with them.
func ExampleOrchestrator_Authorize_errors() {
	ctx := context.Background()
	orch, _ := paymux.New(paymux.Config{
		Providers: []paymux.Provider{sim.New(sim.Config{Name: "sim"})},
		Store:     memory.New(memory.Options{}),
	})
	card := func(key, token string) paymux.PaymentRequest {
		return paymux.PaymentRequest{IdempotencyKey: key, Amount: paymux.NewMoney(1500, "USD"), Country: "US",
			Method: paymux.PaymentMethod{Type: paymux.MethodCard, Token: token}}
	}
	p, err := orch.Authorize(ctx, card("order-1", sim.TokenHardDecline))
	var pe *paymux.ProviderError
	if errors.Is(err, paymux.ErrDeclined) && errors.As(err, &pe) {
		fmt.Println(p.Status, pe.Kind, pe.DeclineCode)
	}
	_, err = orch.Authorize(ctx, card("order-2", "4242424242424242"))
	fmt.Println(errors.Is(err, paymux.ErrCardData))
	// Output:
	// failed hard_decline stolen_card
	// true
}
