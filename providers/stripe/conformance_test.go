package stripe_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/providertest"
	"github.com/paymux/paymux/providers/stripe"
	"github.com/paymux/paymux/providers/stripe/stripetest"
)

// stripeEvent maps a normalised event back to the Stripe event and object
// that would produce it.
func stripeEvent(ev providertest.WebhookEvent) (string, map[string]any) {
	amount := ev.Amount.Amount
	cur := strings.ToLower(string(ev.Amount.Currency))
	pi := map[string]any{"id": ev.ProviderRef, "object": "payment_intent", "amount": amount, "currency": cur,
		"metadata": map[string]string{stripe.MetadataPaymentKey: ev.PaymentKey}}
	switch ev.Type {
	case paymux.EventCaptured:
		pi["status"], pi["amount_received"] = "succeeded", amount
		return "payment_intent.succeeded", pi
	case paymux.EventAuthorized:
		pi["status"], pi["amount_capturable"] = "requires_capture", amount
		return "payment_intent.amount_capturable_updated", pi
	case paymux.EventFailed:
		pi["status"] = "requires_payment_method"
		return "payment_intent.payment_failed", pi
	case paymux.EventVoided:
		pi["status"] = "canceled"
		return "payment_intent.canceled", pi
	case paymux.EventActionRequired:
		pi["status"] = "requires_action"
		return "payment_intent.requires_action", pi
	case paymux.EventRefunded:
		return "charge.refunded", map[string]any{"id": "ch_conformance", "object": "charge", "amount": amount,
			"amount_refunded": amount, "currency": cur, "payment_intent": ev.ProviderRef, "metadata": pi["metadata"]}
	case paymux.EventDisputeOpened:
		return "charge.dispute.created", map[string]any{"id": "dp_conformance", "object": "dispute", "amount": amount,
			"currency": cur, "payment_intent": ev.ProviderRef, "charge": "ch_conformance"}
	}
	return "payment_intent.processing", pi
}

func TestConformance(t *testing.T) {
	providertest.Run(t, providertest.Harness{New: func(t *testing.T) *providertest.Fixture {
		faults := &providertest.Faults{}
		srv := stripetest.NewServer(stripetest.Options{Faults: faults})
		t.Cleanup(srv.Close)
		p, err := stripe.New(stripe.Config{
			SecretKey: stripetest.DefaultSecretKey, WebhookSecret: stripetest.DefaultWebhookSecret,
			BaseURL: srv.URL, HTTPClient: srv.Client(), Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		sign := func(secret string) func(t *testing.T, ev providertest.WebhookEvent) (http.Header, []byte) {
			return func(t *testing.T, ev providertest.WebhookEvent) (http.Header, []byte) {
				at := ev.At
				if at.IsZero() {
					at = time.Now()
				}
				typ, obj := stripeEvent(ev)
				body := stripetest.EventBody(ev.ID, typ, "", at, obj)
				h := http.Header{}
				h.Set(stripe.SignatureHeader, stripe.SignHeader(at, body, secret))
				h.Set("Content-Type", "application/json; charset=utf-8")
				return h, body
			}
		}
		return &providertest.Fixture{
			Provider:               p,
			Currency:               "EUR",
			Country:                "DE",
			Approve:                paymux.PaymentMethod{Type: paymux.MethodCard, Token: "pm_card_visa"},
			HardDecline:            paymux.PaymentMethod{Type: paymux.MethodCard, Token: "pm_card_chargeDeclinedStolenCard"},
			SoftDecline:            paymux.PaymentMethod{Type: paymux.MethodCard, Token: "pm_card_chargeDeclinedProcessingError"},
			InsufficientFunds:      paymux.PaymentMethod{Type: paymux.MethodCard, Token: "pm_card_chargeDeclinedInsufficientFunds"},
			ThreeDS:                paymux.PaymentMethod{Type: paymux.MethodCard, Token: "pm_card_authenticationRequired"},
			CompleteAction:         func(_ context.Context, ref string) error { return srv.CompleteAction(ref) },
			Faults:                 faults,
			Charges:                srv.Charges,
			SignWebhook:            sign(stripetest.DefaultWebhookSecret),
			SignWebhookWrongSecret: sign("whsec_not_the_endpoint_secret"),
			UnknownReference:       "pi_3DoesNotExist0000000000",
			Caps: providertest.Caps{
				ManualCapture: true, PartialCapture: true, PartialRefund: true, MultipleRefund: true, Void: true,
				LookupByKey: true, IdempotentKeys: true, IdempotencyConflict: true, WebhookTimestamps: true,
			},
		}
	}})
}
