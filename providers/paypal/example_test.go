package paypal_test

import (
	"context"
	"fmt"
	"net/url"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/paypal"
	"github.com/paymux/paymux/providers/paypal/paypaltest"
)

// A PayPal checkout against the fake: create the order, let the buyer
// approve it, then Lookup authorises it; capture part and refund some.
func Example() {
	srv := paypaltest.NewServer(paypaltest.Options{})
	defer srv.Close()
	host, _ := url.Parse(srv.URL)
	p, err := paypal.New(paypal.Config{
		ClientID: "test-client", ClientSecret: "test-secret", WebhookID: "WH-PAYPALTEST",
		BaseURL: srv.URL, HTTPClient: srv.Client(), CertHosts: []string{host.Hostname()},
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	amount := paymux.NewMoney(4200, "EUR")
	res, err := p.Authorize(ctx, &paymux.AuthorizeRequest{
		PaymentKey: "order-1001", ProviderKey: "pmx_order-1001_1", Amount: amount,
		Method:  paymux.PaymentMethod{Type: paymux.MethodPayPal, Token: paypal.CheckoutToken},
		Capture: paymux.CaptureManual, ReturnURL: "https://shop.example/return",
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Status, res.NextAction.Type)

	_ = srv.CompleteAction(ctx, res.Reference) // the buyer approves on PayPal
	res, _ = p.Lookup(ctx, &paymux.LookupRequest{Reference: res.Reference})
	fmt.Println(res.Status, res.Authorized)

	res, _ = p.Capture(ctx, &paymux.CaptureRequest{Reference: res.Reference, ProviderKey: "pmx_cap_1", Amount: paymux.NewMoney(3000, "EUR"), Final: true})
	fmt.Println(res.Status, res.Captured)

	res, _ = p.Refund(ctx, &paymux.RefundRequest{Reference: res.Reference, ProviderKey: "pmx_ref_1", Amount: paymux.NewMoney(1000, "EUR")})
	fmt.Println(res.Status, res.Refunded, srv.Charges("order-1001"))
	// Output:
	// requires_action approve
	// authorized 4200
	// captured 3000
	// refunded 1000 1
}
