package sim_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/providertest"
	"github.com/paymux/paymux/providers/sim"
)

const testSecret = paymux.Secret("simsec_test_only")

func TestConformance(t *testing.T) {
	t.Parallel()
	providertest.Run(t, providertest.Harness{New: func(t *testing.T) *providertest.Fixture {
		p := sim.New(sim.Config{WebhookSecret: testSecret})
		sign := func(secret paymux.Secret) func(t *testing.T, ev providertest.WebhookEvent) (http.Header, []byte) {
			return func(t *testing.T, ev providertest.WebhookEvent) (http.Header, []byte) {
				at := ev.At
				if at.IsZero() {
					at = time.Now()
				}
				body := sim.EncodeWebhook(sim.WebhookPayload{
					ID: ev.ID, Type: ev.Type, Created: at.Unix(), Reference: ev.ProviderRef,
					PaymentKey: ev.PaymentKey, Amount: ev.Amount.Amount, Currency: ev.Amount.Currency, Success: true,
				})
				return sim.SignWebhook(secret, body, at), body
			}
		}
		return &providertest.Fixture{
			Provider:               p,
			Currency:               "EUR",
			Country:                "DE",
			Approve:                paymux.PaymentMethod{Type: paymux.MethodCard, Token: sim.TokenApprove},
			HardDecline:            paymux.PaymentMethod{Type: paymux.MethodCard, Token: sim.TokenHardDecline},
			SoftDecline:            paymux.PaymentMethod{Type: paymux.MethodCard, Token: sim.TokenSoftDecline},
			InsufficientFunds:      paymux.PaymentMethod{Type: paymux.MethodCard, Token: sim.TokenInsufficientFunds},
			ThreeDS:                paymux.PaymentMethod{Type: paymux.MethodCard, Token: sim.TokenThreeDS},
			CompleteAction:         p.CompleteAction,
			Faults:                 p.Faults(),
			Charges:                p.Charges,
			SignWebhook:            sign(testSecret),
			SignWebhookWrongSecret: sign("simsec_wrong"),
			Caps: providertest.Caps{
				ManualCapture: true, PartialCapture: true, PartialRefund: true, MultipleRefund: true,
				Void: true, LookupByKey: true, IdempotentKeys: true, IdempotencyConflict: true,
				WebhookTimestamps: true,
			},
		}
	}})
}
