package stripe_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/stripe"
	"github.com/paymux/paymux/providers/stripe/stripetest"
)

// Example authorises, partly captures and refunds a payment at the fake
// Stripe API, then shows how a decline is classified.
func Example() {
	srv := stripetest.NewServer(stripetest.Options{})
	defer srv.Close()

	p, err := stripe.New(stripe.Config{
		SecretKey:     stripetest.DefaultSecretKey,
		WebhookSecret: stripetest.DefaultWebhookSecret,
		BaseURL:       srv.URL,
		HTTPClient:    srv.Client(),
		Logger:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()

	auth, err := p.Authorize(ctx, &paymux.AuthorizeRequest{
		PaymentID:   paymux.PaymentID("order-1001"),
		PaymentKey:  "order-1001",
		ProviderKey: "order-1001/stripe/authorize/1",
		Amount:      paymux.NewMoney(4999, "EUR"),
		Method:      paymux.PaymentMethod{Type: paymux.MethodCard, Token: "pm_card_visa"},
		Capture:     paymux.CaptureManual,
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("authorize:", auth.Status, paymux.Money{Amount: auth.Authorized, Currency: "EUR"})

	capt, err := p.Capture(ctx, &paymux.CaptureRequest{Reference: auth.Reference, ProviderKey: "order-1001/stripe/capture/1",
		Amount: paymux.NewMoney(3999, "EUR")})
	if err != nil {
		panic(err)
	}
	fmt.Println("capture:", capt.Status, paymux.Money{Amount: capt.Captured, Currency: "EUR"})

	if _, err := p.Refund(ctx, &paymux.RefundRequest{Reference: auth.Reference, ProviderKey: "order-1001/stripe/refund/1",
		Amount: paymux.NewMoney(1000, "EUR")}); err != nil {
		panic(err)
	}
	got, err := p.Lookup(ctx, &paymux.LookupRequest{PaymentKey: "order-1001"})
	if err != nil {
		panic(err)
	}
	fmt.Println("lookup by key:", got.Status, "refunded", paymux.Money{Amount: got.Refunded, Currency: "EUR"})

	_, err = p.Authorize(ctx, &paymux.AuthorizeRequest{
		PaymentKey: "order-1002", ProviderKey: "order-1002/stripe/authorize/1",
		Amount: paymux.NewMoney(4999, "EUR"),
		Method: paymux.PaymentMethod{Type: paymux.MethodCard, Token: "pm_card_chargeDeclinedInsufficientFunds"},
	})
	var pe *paymux.ProviderError
	if errors.As(err, &pe) {
		row, _ := p.DecisionTable().Lookup(p.Name(), paymux.OpAuthorize, pe.DeclineCode)
		fmt.Println("decline:", pe.Kind, pe.DeclineCode, "->", row.Decision)
	}
	fmt.Println("charges for order-1001:", srv.Charges("order-1001"))
	// Output:
	// authorize: authorized 49.99 EUR
	// capture: captured 39.99 EUR
	// lookup by key: refunded refunded 10.00 EUR
	// decline: soft_decline insufficient_funds -> stop
	// charges for order-1001: 1
}
