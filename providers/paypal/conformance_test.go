package paypal_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/paypal"
	"github.com/paymux/paymux/providers/paypal/paypaltest"
	"github.com/paymux/paymux/providers/providertest"
)

// setup starts a fake and an adapter wired to it.
func setup(t *testing.T, mod ...func(*paypal.Config)) (*paypal.Provider, *paypaltest.Server) {
	t.Helper()
	srv := paypaltest.NewServer(paypaltest.Options{})
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	opts := srv.Options()
	cfg := paypal.Config{
		ClientID: opts.ClientID, ClientSecret: paymux.Secret(opts.ClientSecret), WebhookID: opts.WebhookID,
		BaseURL: srv.URL, HTTPClient: srv.Client(), CertHosts: []string{u.Hostname()},
	}
	for _, m := range mod {
		m(&cfg)
	}
	p, err := paypal.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p, srv
}

func TestConformance(t *testing.T) {
	t.Parallel()
	providertest.Run(t, providertest.Harness{New: func(t *testing.T) *providertest.Fixture {
		p, srv := setup(t)
		const amount = 1000
		declining := func(code string) paymux.PaymentMethod {
			// An order the buyer approved in the browser with a funding
			// source that PayPal will decline.
			id := srv.NewOrder(paypaltest.OrderParams{
				Amount: paymux.NewMoney(amount, "EUR"), Approved: true, Funding: paypaltest.Funding{Decline: code},
			})
			return paymux.PaymentMethod{Type: paymux.MethodPayPal, Token: id}
		}
		return &providertest.Fixture{
			Provider:    p,
			Currency:    "EUR",
			Country:     "DE",
			Amount:      amount,
			Approve:     paymux.PaymentMethod{Type: paymux.MethodPayPal, Token: paypal.CheckoutToken},
			HardDecline: declining("TRANSACTION_REFUSED"),
			SoftDecline: declining("INSTRUMENT_DECLINED"),
			CompleteAction: func(ctx context.Context, ref string) error {
				return srv.CompleteAction(ctx, ref)
			},
			Faults:  srv.Faults,
			Charges: srv.Charges,
			SignWebhook: func(t *testing.T, ev providertest.WebhookEvent) (http.Header, []byte) {
				body := srv.WebhookBody(ev.ID, ev.Type, ev.ProviderRef, ev.PaymentKey, ev.Amount)
				return srv.SignWebhook(body, ev.At), body
			},
			SignWebhookWrongSecret: func(t *testing.T, ev providertest.WebhookEvent) (http.Header, []byte) {
				body := srv.WebhookBody(ev.ID, ev.Type, ev.ProviderRef, ev.PaymentKey, ev.Amount)
				return srv.SignWebhookWrongKey(body, ev.At), body
			},
			UnknownReference: "8AB12345CD678901E",
			Caps: providertest.Caps{
				ManualCapture: true, PartialCapture: true, PartialRefund: true, MultipleRefund: true, Void: true,
				RequiresApproval: true, IdempotentKeys: true, WebhookTimestamps: true,
			},
		}
	}})
}
