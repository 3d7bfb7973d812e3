//go:build sandbox

package stripe_test

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/providertest"
	"github.com/paymux/paymux/providers/stripe"
)

// sandboxProvider returns an adapter on Stripe's test mode, or skips.
func sandboxProvider(t *testing.T) *stripe.Provider {
	t.Helper()
	key := os.Getenv("STRIPE_SECRET_KEY")
	if key == "" {
		t.Skip("STRIPE_SECRET_KEY is not set")
	}
	if len(key) < 8 || (key[:8] != "sk_test_" && key[:8] != "rk_test_") {
		t.Fatal("STRIPE_SECRET_KEY must be a test-mode key (sk_test_ or rk_test_)")
	}
	p, err := stripe.New(stripe.Config{
		SecretKey:     paymux.Secret(key),
		WebhookSecret: "whsec_sandbox_local", // webhooks are signed locally below
		HTTPClient:    &http.Client{Timeout: 60 * time.Second},
		Logger:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSandboxConformance runs the conformance suite against Stripe's test
// mode: the documented test PaymentMethods, real idempotency, real
// search/list lookups. Fault injection and charge counting need the fake
// and are skipped; so is completing 3-D Secure, which needs a browser.
func TestSandboxConformance(t *testing.T) {
	p := sandboxProvider(t)
	providertest.Run(t, providertest.Harness{Serial: true, New: func(t *testing.T) *providertest.Fixture {
		return &providertest.Fixture{
			Provider:          p,
			Currency:          "EUR",
			Country:           "DE",
			Approve:           paymux.PaymentMethod{Type: paymux.MethodCard, Token: "pm_card_visa"},
			HardDecline:       paymux.PaymentMethod{Type: paymux.MethodCard, Token: "pm_card_visa_chargeDeclinedStolenCard"},
			SoftDecline:       paymux.PaymentMethod{Type: paymux.MethodCard, Token: "pm_card_chargeDeclinedProcessingError"},
			InsufficientFunds: paymux.PaymentMethod{Type: paymux.MethodCard, Token: "pm_card_visa_chargeDeclinedInsufficientFunds"},
			ThreeDS:           paymux.PaymentMethod{Type: paymux.MethodCard, Token: "pm_card_authenticationRequired"},
			UnknownReference:  "pi_3DoesNotExist0000000000",
			Caps: providertest.Caps{
				ManualCapture: true, PartialCapture: true, PartialRefund: true, MultipleRefund: true, Void: true,
				LookupByKey: true, IdempotentKeys: true, IdempotencyConflict: true,
			},
		}
	}})
}

// TestSandboxStepUp: a decline that asks for authentication becomes a
// 3-D Secure challenge when asked for.
func TestSandboxStepUp(t *testing.T) {
	p := sandboxProvider(t)
	key := "sandbox-stepup-" + time.Now().Format("20060102150405.000")
	res, err := p.Authorize(context.Background(), &paymux.AuthorizeRequest{
		PaymentKey: key, PaymentID: paymux.PaymentID(key), ProviderKey: key + "/1",
		Amount: paymux.NewMoney(1000, "EUR"), Method: paymux.PaymentMethod{Type: paymux.MethodCard, Token: "pm_card_threeDSecureOptional"},
		ThreeDS: true, ReturnURL: "https://shop.example/return",
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != paymux.StatusRequiresAction || res.NextAction == nil || res.NextAction.RedirectURL == "" {
		t.Fatalf("request_three_d_secure=any gave %+v", res)
	}
}
