package stripe_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/providertest"
	"github.com/paymux/paymux/providers/stripe"
	"github.com/paymux/paymux/providers/stripe/stripetest"
)

type bundle struct {
	srv    *stripetest.Server
	faults *providertest.Faults
	seq    atomic.Int64
}

// setup starts a fake and an adapter pointed at it.
func setup(t *testing.T, mods ...func(*stripe.Config)) (*stripe.Provider, *bundle) {
	t.Helper()
	b := &bundle{faults: &providertest.Faults{}}
	b.srv = stripetest.NewServer(stripetest.Options{Faults: b.faults})
	t.Cleanup(b.srv.Close)
	cfg := stripe.Config{
		SecretKey:     stripetest.DefaultSecretKey,
		WebhookSecret: stripetest.DefaultWebhookSecret,
		BaseURL:       b.srv.URL,
		HTTPClient:    b.srv.Client(),
		Logger:        slog.New(slog.DiscardHandler),
	}
	for _, m := range mods {
		m(&cfg)
	}
	p, err := stripe.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p, b
}

// request builds an authorisation with fresh keys.
func (b *bundle) request(t *testing.T, pm string, amount int64, capture paymux.CaptureMode) *paymux.AuthorizeRequest {
	n := b.seq.Add(1)
	key := fmt.Sprintf("%s-order-%d", t.Name(), n)
	return &paymux.AuthorizeRequest{
		PaymentID: paymux.PaymentID(key), PaymentKey: key, ProviderKey: key + "/stripe/authorize/1",
		Amount: paymux.NewMoney(amount, "EUR"), Method: paymux.PaymentMethod{Type: paymux.MethodCard, Token: pm},
		Country: "DE", Capture: capture,
	}
}

func kindOf(t *testing.T, err error) *paymux.ProviderError {
	t.Helper()
	var pe *paymux.ProviderError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *paymux.ProviderError", err, err)
	}
	return pe
}

// decide is what the orchestrator does with an error: table row for Code,
// then DeclineCode, else the kind's default.
func decide(p *stripe.Provider, op paymux.Operation, pe *paymux.ProviderError) paymux.Classification {
	for _, c := range []string{pe.Code, pe.DeclineCode} {
		if row, ok := p.DecisionTable().Lookup(p.Name(), op, c); ok {
			return row
		}
	}
	return paymux.Classification{Kind: pe.Kind, Decision: paymux.DefaultDecision(pe.Kind)}
}

func TestAuthorizeAutomaticCapture(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	ctx := context.Background()
	req := b.request(t, "pm_card_visa", 2500, paymux.CaptureAutomatic)
	req.Metadata = map[string]string{"campaign": "drop-7", "a][amount": "1", stripe.MetadataPaymentKey: "spoofed"}
	res, err := p.Authorize(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != paymux.StatusCaptured || res.Captured != 2500 || res.Amount != paymux.NewMoney(2500, "EUR") {
		t.Fatalf("got %+v", res)
	}
	pi := b.srv.PaymentIntent(res.Reference)
	md := pi["metadata"].(map[string]string)
	if md[stripe.MetadataPaymentKey] != req.PaymentKey || md[stripe.MetadataPaymentID] != req.PaymentID || md[stripe.MetadataProviderKey] != req.ProviderKey {
		t.Fatalf("metadata %v", md)
	}
	if md["campaign"] != "drop-7" || len(md) != 4 {
		t.Fatalf("shop metadata %v", md)
	}
	// A retry of the same attempt replays Stripe's saved answer.
	again, err := p.Authorize(ctx, req)
	if err != nil || again.Reference != res.Reference {
		t.Fatalf("retry: %+v, %v", again, err)
	}
	if n := b.srv.Charges(req.PaymentKey); n != 1 {
		t.Fatalf("charges = %d, want 1", n)
	}
}

func TestManualCapturePartialAndSeveralRefunds(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	ctx := context.Background()
	req := b.request(t, "pm_card_mastercard", 1000, paymux.CaptureManual)
	res, err := p.Authorize(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != paymux.StatusAuthorized || res.Authorized != 1000 {
		t.Fatalf("authorize: %+v", res)
	}
	ref := res.Reference
	res, err = p.Capture(ctx, &paymux.CaptureRequest{Reference: ref, ProviderKey: req.PaymentKey + "/capture/1", Amount: paymux.NewMoney(600, "EUR")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != paymux.StatusCaptured || res.Captured != 600 {
		t.Fatalf("capture: %+v", res)
	}
	for i, amount := range []int64{200, 100} {
		rr, err := p.Refund(ctx, &paymux.RefundRequest{Reference: ref, ProviderKey: fmt.Sprintf("%s/refund/%d", req.PaymentKey, i),
			Amount: paymux.NewMoney(amount, "EUR"), Reason: "requested_by_customer"})
		if err != nil {
			t.Fatal(err)
		}
		if rr.RefundReference == "" || rr.Status != paymux.StatusRefunded || rr.Refunds[0].Amount != amount {
			t.Fatalf("refund: %+v", rr)
		}
	}
	// More than what is left is refused, and says so.
	_, err = p.Refund(ctx, &paymux.RefundRequest{Reference: ref, ProviderKey: req.PaymentKey + "/refund/9", Amount: paymux.NewMoney(400, "EUR"), Reason: "shop reason"})
	if pe := kindOf(t, err); pe.Kind != paymux.KindInvalidRequest || pe.Code != "amount_too_large" {
		t.Fatalf("over-refund: %v", err)
	}
	got, err := p.Lookup(ctx, &paymux.LookupRequest{Reference: ref})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != paymux.StatusRefunded || got.Captured != 600 || got.Refunded != 300 || len(got.Refunds) != 2 {
		t.Fatalf("lookup: %+v", got)
	}
	// A second capture after a partial one: Stripe released the rest.
	_, err = p.Capture(ctx, &paymux.CaptureRequest{Reference: ref, ProviderKey: req.PaymentKey + "/capture/2", Amount: paymux.NewMoney(100, "EUR")})
	if pe := kindOf(t, err); pe.Kind != paymux.KindConflict {
		t.Fatalf("second capture: %v", err)
	}
	if n := b.srv.Charges(req.PaymentKey); n != 1 {
		t.Fatalf("charges = %d", n)
	}
}

func TestVoid(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	ctx := context.Background()
	res, err := p.Authorize(ctx, b.request(t, "pm_card_visa", 700, paymux.CaptureManual))
	if err != nil {
		t.Fatal(err)
	}
	v, err := p.Void(ctx, &paymux.VoidRequest{Reference: res.Reference, ProviderKey: "void-1"})
	if err != nil || v.Status != paymux.StatusVoided {
		t.Fatalf("void: %+v %v", v, err)
	}
	_, err = p.Capture(ctx, &paymux.CaptureRequest{Reference: res.Reference, ProviderKey: "cap-after-void", Amount: paymux.NewMoney(700, "EUR")})
	if pe := kindOf(t, err); pe.Kind != paymux.KindConflict || pe.Code != "payment_intent_unexpected_state" {
		t.Fatalf("capture after void: %v", err)
	}
}

func TestDeclines(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	cases := []struct {
		pm       string
		kind     paymux.Kind
		code     string
		decline  string
		decision paymux.Decision
	}{
		{"pm_card_chargeDeclined", paymux.KindHardDecline, "card_declined", "generic_decline", paymux.DecisionStop},
		{"pm_card_visa_chargeDeclinedInsufficientFunds", paymux.KindSoftDecline, "card_declined", "insufficient_funds", paymux.DecisionStop},
		{"pm_card_chargeDeclinedStolenCard", paymux.KindHardDecline, "card_declined", "stolen_card", paymux.DecisionStop},
		{"pm_card_chargeDeclinedIncorrectNumber", paymux.KindHardDecline, "incorrect_number", "", paymux.DecisionStop},
		{"pm_card_chargeDeclinedExpiredCard", paymux.KindHardDecline, "expired_card", "", paymux.DecisionStop},
		{"pm_card_chargeDeclinedProcessingError", paymux.KindSoftDecline, "processing_error", "", paymux.DecisionFailover},
		{"pm_card_chargeDeclinedIssuerNotAvailable", paymux.KindSoftDecline, "card_declined", "issuer_not_available", paymux.DecisionFailover},
		{"pm_card_chargeDeclinedTryAgainLater", paymux.KindSoftDecline, "try_again_later", "try_again_later", paymux.DecisionFailover},
		{"pm_card_chargeDeclinedAuthenticationRequired", paymux.KindActionRequired, "card_declined", "authentication_required", paymux.DecisionStepUp},
	}
	for _, c := range cases {
		t.Run(c.pm, func(t *testing.T) {
			t.Parallel()
			req := b.request(t, c.pm, 1500, paymux.CaptureAutomatic)
			_, err := p.Authorize(context.Background(), req)
			pe := kindOf(t, err)
			if pe.Kind != c.kind || pe.Code != c.code || pe.DeclineCode != c.decline || pe.HTTPStatus != http.StatusPaymentRequired {
				t.Fatalf("got %s kind=%v code=%q decline=%q status=%d", pe, pe.Kind, pe.Code, pe.DeclineCode, pe.HTTPStatus)
			}
			if got := decide(p, paymux.OpAuthorize, pe); got.Kind != c.kind || got.Decision != c.decision {
				t.Fatalf("decision %v/%v, want %v/%v", got.Kind, got.Decision, c.kind, c.decision)
			}
			if !errors.Is(err, paymux.ErrDeclined) && c.kind != paymux.KindActionRequired {
				t.Fatal("a decline must match paymux.ErrDeclined")
			}
			if n := b.srv.Charges(req.PaymentKey); n != 0 {
				t.Fatalf("a decline moved money %d times", n)
			}
		})
	}
}

func TestThreeDSecure(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	ctx := context.Background()

	t.Run("redirect", func(t *testing.T) {
		req := b.request(t, "pm_card_authenticationRequired", 4200, paymux.CaptureAutomatic)
		req.ReturnURL = "https://shop.example/return"
		res, err := p.Authorize(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != paymux.StatusRequiresAction || res.NextAction == nil || res.NextAction.Type != "redirect" ||
			!strings.HasPrefix(res.NextAction.RedirectURL, b.srv.URL+"/3ds/") {
			t.Fatalf("got %+v %+v", res, res.NextAction)
		}
		if n := b.srv.Charges(req.PaymentKey); n != 0 {
			t.Fatalf("charged before authentication: %d", n)
		}
		// The buyer follows the redirect and passes the challenge.
		noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		hr, err := noFollow.Get(res.NextAction.RedirectURL)
		if err != nil {
			t.Fatal(err)
		}
		hr.Body.Close()
		if hr.StatusCode != http.StatusFound || !strings.HasPrefix(hr.Header.Get("Location"), req.ReturnURL) {
			t.Fatalf("challenge answered %d %q", hr.StatusCode, hr.Header.Get("Location"))
		}
		got, err := p.Lookup(ctx, &paymux.LookupRequest{Reference: res.Reference})
		if err != nil || got.Status != paymux.StatusCaptured || got.Captured != 4200 {
			t.Fatalf("after challenge: %+v %v", got, err)
		}
	})
	t.Run("use_stripe_sdk", func(t *testing.T) {
		req := b.request(t, "pm_card_threeDSecure2Required", 4200, paymux.CaptureManual)
		res, err := p.Authorize(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if res.NextAction == nil || res.NextAction.Type != "three_ds" || res.NextAction.RedirectURL == "" {
			t.Fatalf("next action %+v", res.NextAction)
		}
		if err := b.srv.FailAction(res.Reference); err != nil {
			t.Fatal(err)
		}
		got, err := p.Lookup(ctx, &paymux.LookupRequest{Reference: res.Reference})
		if err != nil || got.Status != paymux.StatusFailed || got.DeclineCode != "payment_intent_authentication_failure" {
			t.Fatalf("after failed challenge: %+v %v", got, err)
		}
	})
	t.Run("step_up", func(t *testing.T) {
		req := b.request(t, "pm_card_chargeDeclinedAuthenticationRequired", 900, paymux.CaptureAutomatic)
		_, err := p.Authorize(ctx, req)
		pe := kindOf(t, err)
		if decide(p, paymux.OpAuthorize, pe).Decision != paymux.DecisionStepUp {
			t.Fatalf("want step up, got %v", pe)
		}
		// The orchestrator's next attempt asks for 3-D Secure with a new key.
		req.ThreeDS = true
		req.ProviderKey = strings.TrimSuffix(req.ProviderKey, "/1") + "/2"
		res, err := p.Authorize(ctx, req)
		if err != nil || res.Status != paymux.StatusRequiresAction {
			t.Fatalf("step-up attempt: %+v %v", res, err)
		}
		if err := b.srv.CompleteAction(res.Reference); err != nil {
			t.Fatal(err)
		}
		got, err := p.Lookup(ctx, &paymux.LookupRequest{PaymentKey: req.PaymentKey})
		if err != nil || got.Reference != res.Reference || got.Status != paymux.StatusCaptured {
			t.Fatalf("lookup by key picks the attempt that went furthest: %+v %v", got, err)
		}
	})
}

func TestLookupByKeys(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	ctx := context.Background()
	req := b.request(t, "pm_card_visa", 1234, paymux.CaptureManual)
	req.PaymentKey = `order 'quoted' \ key`
	res, err := p.Authorize(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	for _, lr := range []paymux.LookupRequest{{ProviderKey: req.ProviderKey}, {PaymentKey: req.PaymentKey}, {ProviderKey: req.ProviderKey, PaymentKey: req.PaymentKey}} {
		got, err := p.Lookup(ctx, &lr)
		if err != nil || got.Reference != res.Reference || got.Status != paymux.StatusAuthorized {
			t.Fatalf("lookup %+v: %+v %v", lr, got, err)
		}
	}
	_, err = p.Lookup(ctx, &paymux.LookupRequest{PaymentKey: "never-sent"})
	if pe := kindOf(t, err); pe.Kind != paymux.KindNotFound {
		t.Fatalf("unknown key: %v", err)
	}
	_, err = p.Lookup(ctx, &paymux.LookupRequest{Reference: "pi_missing"})
	if pe := kindOf(t, err); pe.Kind != paymux.KindNotFound {
		t.Fatalf("unknown id: %v", err)
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("outage_refuses_before_sending", func(t *testing.T) {
		t.Parallel()
		p, b := setup(t)
		b.faults.Set(providertest.FaultPlan{Outage: true})
		req := b.request(t, "pm_card_visa", 100, paymux.CaptureAutomatic)
		_, err := p.Authorize(ctx, req)
		pe := kindOf(t, err)
		var op *net.OpError
		if pe.Kind != paymux.KindUnavailable || !errors.As(err, &op) || op.Op != "dial" {
			t.Fatalf("got %v", err)
		}
		if decide(p, paymux.OpAuthorize, pe).Decision != paymux.DecisionFailover {
			t.Fatal("an outage must fail over")
		}
		if b.srv.Requests() != 0 || b.srv.Charges(req.PaymentKey) != 0 {
			t.Fatal("the request reached the fake")
		}
	})
	t.Run("rate_limit", func(t *testing.T) {
		t.Parallel()
		p, b := setup(t)
		b.faults.Set(providertest.FaultPlan{RateLimit: true})
		req := b.request(t, "pm_card_visa", 100, paymux.CaptureAutomatic)
		_, err := p.Authorize(ctx, req)
		pe := kindOf(t, err)
		if pe.Kind != paymux.KindRateLimited || decide(p, paymux.OpAuthorize, pe).Decision != paymux.DecisionRetry {
			t.Fatalf("got %v", err)
		}
		b.faults.Set(providertest.FaultPlan{})
		if _, err := p.Authorize(ctx, req); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("server_error_is_unknown_and_retried_with_the_same_key", func(t *testing.T) {
		t.Parallel()
		p, b := setup(t)
		b.faults.Set(providertest.FaultPlan{ServerErrorRate: 1})
		req := b.request(t, "pm_card_visa", 100, paymux.CaptureAutomatic)
		_, err := p.Authorize(ctx, req)
		pe := kindOf(t, err)
		if pe.Kind != paymux.KindOutcomeUnknown || pe.HTTPStatus != 500 {
			t.Fatalf("got %v", err)
		}
		b.faults.Set(providertest.FaultPlan{})
		if _, err := p.Authorize(ctx, req); err != nil {
			t.Fatal(err)
		}
		if n := b.srv.Charges(req.PaymentKey); n != 1 {
			t.Fatalf("charges %d", n)
		}
	})
	t.Run("timeout_after_commit", func(t *testing.T) {
		t.Parallel()
		p, b := setup(t)
		req := b.request(t, "pm_card_visa", 100, paymux.CaptureAutomatic)
		// Warm a keep-alive connection: net/http resends an idempotent
		// POST on a reused connection only before a response started.
		if _, err := p.Lookup(ctx, &paymux.LookupRequest{Reference: "pi_warm"}); err == nil {
			t.Fatal("pi_warm exists")
		}
		b.faults.Set(providertest.FaultPlan{TimeoutAfterCommitNext: 1})
		_, err := p.Authorize(ctx, req)
		pe := kindOf(t, err)
		if pe.Kind != paymux.KindOutcomeUnknown || decide(p, paymux.OpAuthorize, pe).Decision == paymux.DecisionFailover {
			t.Fatalf("got %v", err)
		}
		if n := b.srv.Charges(req.PaymentKey); n != 1 {
			t.Fatalf("the fake should have committed: %d", n)
		}
		// Reconcile by key, then retry the attempt: Stripe replays.
		got, err := p.Lookup(ctx, &paymux.LookupRequest{ProviderKey: req.ProviderKey, PaymentKey: req.PaymentKey})
		if err != nil || got.Status != paymux.StatusCaptured {
			t.Fatalf("lookup: %+v %v", got, err)
		}
		again, err := p.Authorize(ctx, req)
		if err != nil || again.Reference != got.Reference || b.srv.Charges(req.PaymentKey) != 1 {
			t.Fatalf("retry: %+v %v", again, err)
		}
	})
	t.Run("idempotency_mismatch", func(t *testing.T) {
		t.Parallel()
		p, b := setup(t)
		req := b.request(t, "pm_card_visa", 100, paymux.CaptureAutomatic)
		if _, err := p.Authorize(ctx, req); err != nil {
			t.Fatal(err)
		}
		req.Amount.Amount = 200
		_, err := p.Authorize(ctx, req)
		pe := kindOf(t, err)
		if pe.Kind != paymux.KindConflict || pe.Code != stripe.CodeIdempotencyError || decide(p, paymux.OpAuthorize, pe).Decision != paymux.DecisionStop {
			t.Fatalf("got %v", err)
		}
	})
}

func TestConnectionErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	newProvider := func(t *testing.T, url string) *stripe.Provider {
		p, err := stripe.New(stripe.Config{SecretKey: "sk_test_x", BaseURL: url, HTTPClient: &http.Client{Timeout: 2 * time.Second},
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	req := &paymux.AuthorizeRequest{PaymentKey: "k", ProviderKey: "k/1", Amount: paymux.NewMoney(100, "EUR"),
		Method: paymux.PaymentMethod{Type: paymux.MethodCard, Token: "pm_card_visa"}}

	t.Run("refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		_, err = newProvider(t, "http://"+addr).Authorize(ctx, req)
		var op *net.OpError
		if pe := kindOf(t, err); pe.Kind != paymux.KindUnavailable || pe.Code != stripe.CodeConnectionRefused || !errors.As(err, &op) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("closed_after_reading", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				buf := make([]byte, 4096)
				_, _ = c.Read(buf) // the request arrived ...
				c.Close()          // ... and the answer never comes
			}
		}()
		_, err = newProvider(t, "http://"+ln.Addr().String()).Authorize(ctx, req)
		if pe := kindOf(t, err); pe.Kind != paymux.KindOutcomeUnknown || pe.Code != stripe.CodeConnectionLost {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("time_out", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		hold := make(chan struct{})
		defer close(hold)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			<-hold
			c.Close()
		}()
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err = newProvider(t, "http://"+ln.Addr().String()).Authorize(cctx, req)
		if pe := kindOf(t, err); pe.Kind != paymux.KindOutcomeUnknown {
			t.Fatalf("got %v", err)
		}
	})
}

func TestSecretsStayHidden(t *testing.T) {
	t.Parallel()
	const key = "sk_test_51SuperSecretValue0123456789"
	srv := stripetest.NewServer(stripetest.Options{SecretKey: "sk_test_other"})
	defer srv.Close()
	cfg := stripe.Config{SecretKey: key, WebhookSecret: "whsec_VerySecret0123456789", BaseURL: srv.URL, HTTPClient: srv.Client(),
		Logger: slog.New(slog.DiscardHandler)}
	for _, s := range []string{fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg)} {
		if strings.Contains(s, "SuperSecret") || strings.Contains(s, "VerySecret") {
			t.Fatalf("config prints a secret: %s", s)
		}
	}
	p, err := stripe.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Authorize(context.Background(), &paymux.AuthorizeRequest{PaymentKey: "k", ProviderKey: "k/1",
		Amount: paymux.NewMoney(100, "EUR"), Method: paymux.PaymentMethod{Type: paymux.MethodCard, Token: "pm_card_visa"}})
	pe := kindOf(t, err)
	if pe.Kind != paymux.KindAuthentication || decide(p, paymux.OpAuthorize, pe).Decision != paymux.DecisionFailover {
		t.Fatalf("got %v", err)
	}
	if strings.Contains(err.Error(), "SuperSecret") || strings.Contains(err.Error(), "0123456789") {
		t.Fatalf("error leaks the key: %v", err)
	}
}

func TestRefusesCardNumbersAndBadAmounts(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	ctx := context.Background()
	req := b.request(t, "4242 4242 4242 4242", 100, paymux.CaptureAutomatic)
	if _, err := p.Authorize(ctx, req); kindOf(t, err).Kind != paymux.KindInvalidRequest {
		t.Fatalf("card number accepted: %v", err)
	}
	req = b.request(t, "pm_card_visa", 1005, paymux.CaptureAutomatic)
	req.Amount.Currency = "KWD" // Stripe wants the last of three digits to be 0
	if _, err := p.Authorize(ctx, req); kindOf(t, err).Kind != paymux.KindInvalidRequest {
		t.Fatalf("KWD 1.005 accepted: %v", err)
	}
	if b.srv.Requests() != 0 {
		t.Fatal("refused requests were sent")
	}
}

func TestCurrencyUnits(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	ctx := context.Background()
	for _, c := range []struct {
		cur          paymux.Currency
		amount, wire int64
	}{{"JPY", 500, 500}, {"ISK", 500, 50000}, {"KWD", 1230, 1230}, {"USD", 1999, 1999}} {
		req := b.request(t, "pm_card_visa", c.amount, paymux.CaptureAutomatic)
		req.Amount.Currency = c.cur
		res, err := p.Authorize(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if got := b.srv.PaymentIntent(res.Reference)["amount"].(int64); got != c.wire {
			t.Errorf("%s: sent %d, want %d", c.cur, got, c.wire)
		}
		if res.Amount.Amount != c.amount || res.Captured != c.amount {
			t.Errorf("%s: read back %+v", c.cur, res)
		}
	}
}

// TestLookupScanBound: when search misses, Lookup scans recent intents; a
// scan cut short by its page bound cannot prove absence.
func TestLookupScanBound(t *testing.T) {
	t.Parallel()
	p, b := setup(t, func(c *stripe.Config) { c.LookupListPages = 1 })
	ctx := context.Background()
	for i := 0; i < 101; i++ {
		if _, err := p.Authorize(ctx, b.request(t, "pm_card_visa", 100, paymux.CaptureManual)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := p.Lookup(ctx, &paymux.LookupRequest{ProviderKey: "lost-attempt"})
	if pe := kindOf(t, err); pe.Kind != paymux.KindOutcomeUnknown || pe.Code != "lookup_incomplete" {
		t.Fatalf("bounded scan: %v", err)
	}
	// An attempt younger than every intent there: the scan is short and complete.
	_, err = p.Lookup(ctx, &paymux.LookupRequest{ProviderKey: "lost-attempt", AttemptStartedAt: time.Now().Add(time.Hour)})
	if pe := kindOf(t, err); pe.Kind != paymux.KindNotFound {
		t.Fatalf("scan since the attempt: %v", err)
	}
}
