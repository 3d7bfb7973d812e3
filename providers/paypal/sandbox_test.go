//go:build sandbox

package paypal_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/paypal"
)

// TestSandbox runs against the real PayPal sandbox:
//
//	PAYPAL_CLIENT_ID=... PAYPAL_CLIENT_SECRET=... go test -tags sandbox -run TestSandbox ./providers/paypal/
//
// A buyer must approve an order in a browser, so the unattended part covers
// token, create, lookup and PayPal-Request-Id replay, and negative testing
// through the mock header is exercised by the decision-table tests offline.
func TestSandbox(t *testing.T) {
	id, secret := os.Getenv("PAYPAL_CLIENT_ID"), os.Getenv("PAYPAL_CLIENT_SECRET")
	if id == "" || secret == "" {
		t.Skip("set PAYPAL_CLIENT_ID and PAYPAL_CLIENT_SECRET to run against the PayPal sandbox")
	}
	p, err := paypal.New(paypal.Config{ClientID: id, ClientSecret: paymux.Secret(secret), BaseURL: paypal.BaseURLSandbox})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	key := "paymux-sandbox-" + time.Now().UTC().Format("20060102T150405.000000000")
	for _, mode := range []paymux.CaptureMode{paymux.CaptureAutomatic, paymux.CaptureManual} {
		req := &paymux.AuthorizeRequest{
			PaymentKey: key + string(mode), ProviderKey: paymux.ProviderKey(key+string(mode), "paypal", paymux.OpAuthorize, 1),
			Amount: paymux.NewMoney(1000, "USD"), Method: paymux.PaymentMethod{Type: paymux.MethodPayPal, Token: paypal.CheckoutToken},
			Capture: mode, ReturnURL: "https://example.com/return",
		}
		res, err := p.Authorize(ctx, req)
		if err != nil {
			t.Fatalf("%s: create order: %v", mode, err)
		}
		if res.Status != paymux.StatusRequiresAction || res.NextAction == nil || res.NextAction.RedirectURL == "" {
			t.Fatalf("%s: %+v", mode, res)
		}
		again, err := p.Authorize(ctx, req)
		if err != nil || again.Reference != res.Reference {
			t.Fatalf("%s: replay with the same PayPal-Request-Id: %+v %v", mode, again, err)
		}
		got, err := p.Lookup(ctx, &paymux.LookupRequest{Reference: res.Reference})
		if err != nil || got.Status != paymux.StatusRequiresAction {
			t.Fatalf("%s: lookup: %+v %v", mode, got, err)
		}
		t.Logf("%s: approve at %s", mode, res.NextAction.RedirectURL)
	}
	_, err = p.Lookup(ctx, &paymux.LookupRequest{Reference: "0NOTANORDER00000"})
	if paymux.KindOf(err) != paymux.KindNotFound {
		t.Fatalf("unknown order: %v", err)
	}
}
