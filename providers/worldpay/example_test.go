package worldpay_test

import (
	"context"
	"fmt"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/worldpay"
	"github.com/paymux/paymux/providers/worldpay/worldpaytest"
)

// Authorise a payment for later capture, capture part of it by following
// Worldpay's partiallySettlePayment action, then refund some.
func Example() {
	fake := worldpaytest.NewServer(worldpaytest.Options{})
	defer fake.Close()

	wp, err := worldpay.New(worldpay.Config{
		Username: "user", Password: "pass", Entity: "default",
		BaseURL: fake.URL(), HTTPClient: fake.Client(),
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	pay, err := wp.Authorize(ctx, &paymux.AuthorizeRequest{
		PaymentKey:  "order-1001",
		ProviderKey: paymux.ProviderKey("order-1001", wp.Name(), paymux.OpAuthorize, 1),
		Amount:      paymux.NewMoney(2500, "GBP"),
		// A Checkout session href; "#name" carries the cardholder name.
		Method:  paymux.PaymentMethod{Type: paymux.MethodCard, Token: fake.SessionHref("Jane Doe")},
		Capture: paymux.CaptureManual,
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("authorise:", pay.Status, pay.Authorized)

	capt, err := wp.Capture(ctx, &paymux.CaptureRequest{Reference: pay.Reference, ProviderKey: "order-1001/capture", Amount: paymux.NewMoney(2000, "GBP")})
	if err != nil {
		panic(err)
	}
	fmt.Println("capture:", capt.Status, capt.Captured)

	ref, err := wp.Refund(ctx, &paymux.RefundRequest{Reference: pay.Reference, ProviderKey: "order-1001/refund", Amount: paymux.NewMoney(500, "GBP")})
	if err != nil {
		panic(err)
	}
	fmt.Println("refund:", ref.Status, ref.Refunded)
	fmt.Println("charges at Worldpay:", fake.Charges(pay.Reference))
	// Output:
	// authorise: authorized 2500
	// capture: captured 2000
	// refund: refunded 500
	// charges at Worldpay: 1
}

// A refusal is a *paymux.ProviderError; the decision table says what to do.
func Example_refusal() {
	fake := worldpaytest.NewServer(worldpaytest.Options{})
	defer fake.Close()
	wp, _ := worldpay.New(worldpay.Config{Username: "user", Password: "pass", Entity: "default", BaseURL: fake.URL(), HTTPClient: fake.Client()})

	_, err := wp.Authorize(context.Background(), &paymux.AuthorizeRequest{
		ProviderKey: paymux.ProviderKey("order-1002", wp.Name(), paymux.OpAuthorize, 1),
		Amount:      paymux.NewMoney(1000, "GBP"),
		Method:      paymux.PaymentMethod{Type: paymux.MethodCard, Token: fake.SessionHref(worldpaytest.NameIssuerUnavailable)},
	})
	fmt.Println(err)
	row, _ := wp.DecisionTable().Lookup(wp.Name(), paymux.OpAuthorize, "91")
	fmt.Println(row.Kind, row.Decision)
	// Output:
	// paymux: worldpay authorize: soft_decline (refused/91): Issuer unavailable
	// soft_decline failover
}

// Verify an event the way Worldpay signs it.
func ExampleProvider_ParseWebhook() {
	wp, _ := worldpay.New(worldpay.Config{Username: "user", Password: "pass", Entity: "default",
		EventSecrets: map[string]paymux.Secret{"1": "shared-secret"}})
	body := []byte(`{"eventId":"e-1","eventTimestamp":"2026-01-02T10:00:00.000","eventDetails":{"classification":"payment","transactionReference":"pmx_abc","type":"sentForSettlement","amount":{"value":2000,"currencyCode":"GBP"}}}`)
	h := map[string][]string{worldpay.SignatureHeader: {worldpay.Sign("1", "shared-secret", body, worldpay.EncodingHex)}}

	evs, err := wp.ParseWebhook(context.Background(), h, body)
	if err != nil {
		panic(err)
	}
	fmt.Println(evs[0].Type, evs[0].ProviderRef, evs[0].Amount)
	// Output: captured pmx_abc 20.00 GBP
}
