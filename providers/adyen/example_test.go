package adyen_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/adyen"
	"github.com/paymux/paymux/providers/adyen/adyentest"
)

// Example authorises, captures part of and refunds a payment against the
// fake, then shows how a refusal reads.
func Example() {
	srv := adyentest.NewServer(adyentest.Options{})
	defer srv.Close()
	o := srv.Options()

	p, err := adyen.New(adyen.Config{
		APIKey:          paymux.Secret(o.APIKey),
		MerchantAccount: o.MerchantAccount,
		HMACKey:         paymux.Secret(o.HMACKey),
		BaseURL:         srv.URL, // omit for the test endpoint; set LivePrefix for live
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()

	auth, err := p.Authorize(ctx, &paymux.AuthorizeRequest{
		PaymentKey:  "order-1001", // becomes Adyen's merchant reference
		ProviderKey: paymux.ProviderKey("order-1001", "adyen", paymux.OpAuthorize, 1),
		Amount:      paymux.NewMoney(2500, "EUR"),
		// The paymentMethod object Adyen's card component produced.
		Method:    adyentest.Method(""),
		Capture:   paymux.CaptureManual,
		ReturnURL: "https://shop.example/return",
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("authorise:", auth.Status, auth.Authorized)

	captured, err := p.Capture(ctx, &paymux.CaptureRequest{Reference: auth.Reference, ProviderKey: "capture-1", Amount: paymux.NewMoney(2000, "EUR")})
	if err != nil {
		panic(err)
	}
	fmt.Println("capture:", captured.Status, captured.Captured)

	ref, err := p.Refund(ctx, &paymux.RefundRequest{Reference: auth.Reference, ProviderKey: "refund-1", Amount: paymux.NewMoney(500, "EUR")})
	if err != nil {
		panic(err)
	}
	fmt.Println("refund:", ref.Status, ref.Refunds[0].Amount)

	_, err = p.Authorize(ctx, &paymux.AuthorizeRequest{
		PaymentKey: "order-1002", ProviderKey: "attempt-1", Amount: paymux.NewMoney(2500, "EUR"),
		Method: adyentest.Method("NOT_ENOUGH_BALANCE"), ReturnURL: "https://shop.example/return",
	})
	var pe *paymux.ProviderError
	if errors.As(err, &pe) {
		row, _ := p.DecisionTable().Lookup("adyen", pe.Operation, pe.DeclineCode)
		fmt.Println("refused:", pe.Kind, pe.DeclineCode, row.Decision, errors.Is(err, paymux.ErrDeclined))
	}
	// Output:
	// authorise: authorized 2500
	// capture: captured 2000
	// refund: refunded 500
	// refused: soft_decline refusal:12 stop true
}

// ExampleProvider_ParseWebhook verifies a standard notification and answers
// it the way Adyen expects.
func ExampleProvider_ParseWebhook() {
	srv := adyentest.NewServer(adyentest.Options{})
	defer srv.Close()
	o := srv.Options()
	p, _ := adyen.New(adyen.Config{APIKey: paymux.Secret(o.APIKey), MerchantAccount: o.MerchantAccount, HMACKey: paymux.Secret(o.HMACKey)})

	header, body := srv.SignedItem(adyentest.Item{
		PSPReference: "DZ4DPSHB4WD2WN82", MerchantReference: "order-1001", EventCode: "AUTHORISATION",
		Currency: "EUR", Value: 2500, Success: true,
	})
	events, err := p.ParseWebhook(context.Background(), header, body)
	if err != nil {
		panic(err)
	}
	ev := events[0]
	fmt.Println(ev.Type, ev.ProviderRef, ev.PaymentKey, ev.Amount)

	_, err = p.ParseWebhook(context.Background(), http.Header{}, []byte(`{"live":"false","notificationItems":[{"NotificationRequestItem":{"pspReference":"X","eventCode":"AUTHORISATION","success":"true"}}]}`))
	fmt.Println(errors.Is(err, paymux.ErrWebhookNotSigned))

	_, ack := p.WebhookAck()
	fmt.Println(string(ack))
	// Output:
	// authorized DZ4DPSHB4WD2WN82 order-1001 25.00 EUR
	// true
	// [accepted]
}
