package stripe_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/providertest"
	"github.com/paymux/paymux/providers/stripe"
	"github.com/paymux/paymux/providers/stripe/stripetest"
	"github.com/paymux/paymux/store/memory"
)

type account struct {
	p      *stripe.Provider
	srv    *stripetest.Server
	faults *providertest.Faults
}

// twoAccounts builds an orchestrator over two Stripe accounts ("stripe" then
// "stripe-b" as fallback), each on its own fake, with a memory store.
func twoAccounts(t *testing.T, sink func(name string, h http.Header, body []byte)) (*paymux.Orchestrator, *account, *account) {
	t.Helper()
	mk := func(name string) *account {
		a := &account{faults: &providertest.Faults{}}
		opts := stripetest.Options{Faults: a.faults}
		if sink != nil {
			opts.WebhookSink = func(h http.Header, b []byte) { sink(name, h, b) }
		}
		a.srv = stripetest.NewServer(opts)
		t.Cleanup(a.srv.Close)
		p, err := stripe.New(stripe.Config{Name: name, SecretKey: stripetest.DefaultSecretKey, WebhookSecret: stripetest.DefaultWebhookSecret,
			BaseURL: a.srv.URL, HTTPClient: a.srv.Client(), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		a.p = p
		return a
	}
	a, b := mk("stripe"), mk("stripe-b")
	o, err := paymux.New(paymux.Config{
		Providers: []paymux.Provider{a.p, b.p},
		Store:     memory.New(memory.Options{}),
		Logger:    slog.New(slog.DiscardHandler),
		Retry:     paymux.RetrySettings{MaxRetries: 2, InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	return o, a, b
}

func payReq(key, pm string) paymux.PaymentRequest {
	return paymux.PaymentRequest{IdempotencyKey: key, Amount: paymux.NewMoney(2500, "EUR"), Country: "DE",
		Method: paymux.PaymentMethod{Type: paymux.MethodCard, Token: pm}, ReturnURL: "https://shop.example/return"}
}

// Invariant 2: an outage is refused before sending, so failing over is
// safe; a soft decline cascades; insufficient funds does not.
func TestOrchestratorFailover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	o, a, b := twoAccounts(t, nil)
	a.faults.Set(providertest.FaultPlan{Outage: true})
	pay, err := o.Authorize(ctx, payReq("order-outage", "pm_card_visa"))
	if err != nil || pay.Provider != "stripe-b" || pay.Status != paymux.StatusCaptured {
		t.Fatalf("outage: %+v %v", pay, err)
	}
	if a.srv.TotalCharges() != 0 || b.srv.Charges("order-outage") != 1 {
		t.Fatal("outage: wrong charges")
	}

	o, a, b = twoAccounts(t, nil)
	pay, err = o.Authorize(ctx, payReq("order-soft", "pm_card_chargeDeclinedProcessingError"))
	// The same test card declines at both accounts; both were tried.
	if !errors.Is(err, paymux.ErrDeclined) || len(pay.Attempts) != 2 {
		t.Fatalf("soft decline: %+v %v", pay, err)
	}

	o, a, b = twoAccounts(t, nil)
	pay, err = o.Authorize(ctx, payReq("order-funds", "pm_card_chargeDeclinedInsufficientFunds"))
	if !errors.Is(err, paymux.ErrDeclined) || len(pay.Attempts) != 1 || b.srv.Requests() != 0 {
		t.Fatalf("insufficient funds cascaded: %+v %v", pay, err)
	}
}

// Invariants 1 and 2: the answer is lost after Stripe committed. The
// orchestrator retries the same attempt with the same Idempotency-Key and
// Stripe replays it; if the answer stays lost, the payment is unknown, the
// second account is never tried, and Sync finds the one charge by key.
func TestOrchestratorTimeoutAfterCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	o, a, b := twoAccounts(t, nil)
	a.faults.Set(providertest.FaultPlan{TimeoutAfterCommitNext: 1})
	pay, err := o.Authorize(ctx, payReq("order-replayed", "pm_card_visa"))
	if err != nil || pay.Status != paymux.StatusCaptured || pay.Provider != "stripe" {
		t.Fatalf("retry with the same key: %+v %v", pay, err)
	}
	if a.srv.Charges("order-replayed") != 1 || b.srv.TotalCharges() != 0 {
		t.Fatal("charged twice")
	}

	o, a, b = twoAccounts(t, nil)
	a.faults.Set(providertest.FaultPlan{TimeoutAfterCommitNext: 100})
	pay, err = o.Authorize(ctx, payReq("order-lost", "pm_card_visa"))
	if !errors.Is(err, paymux.ErrOutcomeUnknown) || pay == nil || pay.Status != paymux.StatusUnknown {
		t.Fatalf("authorize: %+v %v", pay, err)
	}
	if b.srv.TotalCharges() != 0 {
		t.Fatal("failed over after an unknown outcome")
	}
	a.faults.Set(providertest.FaultPlan{})
	pay, err = o.Sync(ctx, pay.ID)
	if err != nil || pay.Status != paymux.StatusCaptured || pay.ProviderRef == "" {
		t.Fatalf("sync: %+v %v", pay, err)
	}
	if a.srv.Charges("order-lost") != 1 {
		t.Fatalf("charges %d", a.srv.Charges("order-lost"))
	}
}

// Step-up on authentication_required, then the webhook of the finished
// challenge captures the payment through the webhook pipeline.
func TestOrchestratorStepUpAndWebhook(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var h *paymux.WebhookHandler
	type hook struct {
		name string
		h    http.Header
		body []byte
	}
	hooks := make(chan hook, 64)
	o, a, _ := twoAccounts(t, func(name string, hd http.Header, body []byte) { hooks <- hook{name, hd, body} })
	h = o.WebhookHandler(paymux.WebhookOptions{})

	pay, err := o.Authorize(ctx, payReq("order-3ds", "pm_card_chargeDeclinedAuthenticationRequired"))
	if err != nil || pay.Status != paymux.StatusRequiresAction || pay.NextAction == nil || pay.NextAction.RedirectURL == "" {
		t.Fatalf("step up: %+v %v", pay, err)
	}
	if err := a.srv.CompleteAction(pay.ProviderRef); err != nil {
		t.Fatal(err)
	}
	if err := a.srv.FlushWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
	close(hooks)
	for d := range hooks {
		if err := h.Ingest(ctx, d.name, d.h, d.body); err != nil && !errors.Is(err, paymux.ErrPaymentUnknown) {
			t.Fatalf("ingest: %v", err)
		}
	}
	got, err := o.Get(ctx, pay.ID)
	if err != nil || got.Status != paymux.StatusCaptured || got.Captured != 2500 {
		t.Fatalf("after the webhook: %+v %v", got, err)
	}
	if a.srv.Charges("order-3ds") != 1 {
		t.Fatal("charges")
	}
}
