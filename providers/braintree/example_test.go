package braintree_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/braintree"
	"github.com/paymux/paymux/providers/braintree/braintreetest"
)

// Example authorises a card nonce against the fake Braintree GraphQL
// endpoint, captures part of it and refunds some of the capture. In
// production BaseURL is braintree.ProductionURL and the keys come from the
// Braintree Control Panel.
func Example() {
	fake := braintreetest.NewServer(braintreetest.Options{})
	defer fake.Close()

	p, err := braintree.New(braintree.Config{
		MerchantID: "test_merchant",
		PublicKey:  fake.PublicKey(),
		PrivateKey: paymux.Secret(fake.PrivateKey()),
		BaseURL:    fake.URL(),
		HTTPClient: fake.Client(),
		Logger:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	auth, err := p.Authorize(ctx, &paymux.AuthorizeRequest{
		PaymentKey:  "order-1001",
		ProviderKey: paymux.ProviderKey("order-1001", p.Name(), paymux.OpAuthorize, 1),
		Amount:      paymux.NewMoney(2500, "USD"),
		Method:      paymux.PaymentMethod{Type: paymux.MethodCard, Token: "fake-valid-nonce"},
		Capture:     paymux.CaptureManual,
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(auth.Status, auth.Authorized)

	captured, err := p.Capture(ctx, &paymux.CaptureRequest{
		Reference:   auth.Reference,
		ProviderKey: paymux.ProviderKey("order-1001/capture-1", p.Name(), paymux.OpCapture, 1),
		Amount:      paymux.NewMoney(2000, "USD"),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(captured.Status, captured.Captured)

	refund, err := p.Refund(ctx, &paymux.RefundRequest{
		Reference:   auth.Reference,
		ProviderKey: paymux.ProviderKey("order-1001/refund-1", p.Name(), paymux.OpRefund, 1),
		Amount:      paymux.NewMoney(500, "USD"),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(refund.Refunds[0].Amount)

	_, err = p.Authorize(ctx, &paymux.AuthorizeRequest{
		PaymentKey:  "order-1002",
		ProviderKey: paymux.ProviderKey("order-1002", p.Name(), paymux.OpAuthorize, 1),
		Amount:      paymux.NewMoney(200100, "USD"), // Braintree's test amount for 2001 Insufficient Funds
		Method:      paymux.PaymentMethod{Type: paymux.MethodCard, Token: "fake-valid-nonce"},
	})
	fmt.Println(paymux.KindOf(err), err)
	// Output:
	// authorized 2500
	// captured 2000
	// 500
	// soft_decline paymux: braintree authorize: soft_decline (processor_declined/2001): Processor Declined
}

// ExampleProvider_VerifyChallenge answers Braintree's webhook endpoint
// verification (the bt_challenge parameter).
func ExampleProvider_VerifyChallenge() {
	p, _ := braintree.New(braintree.Config{PublicKey: "integration_public_key", PrivateKey: "integration_private_key"})
	answer, err := p.VerifyChallenge("20f9f8ed05f77439fe955c977e4c8a53")
	fmt.Println(answer, err)
	// Output: integration_public_key|d9b899556c966b3f06945ec21311865d35df3ce4 <nil>
}
