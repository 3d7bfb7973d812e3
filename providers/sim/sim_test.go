package sim_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/internal/testclock"
	"github.com/paymux/paymux/providers/providertest"
	"github.com/paymux/paymux/providers/sim"
)

// webhook is one webhook the sim sent.
type webhook struct {
	header http.Header
	body   []byte
}

type bundle struct {
	clock *testclock.Clock
	mu    sync.Mutex
	sent  []webhook
}

func (b *bundle) webhooks() []webhook {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]webhook(nil), b.sent...)
}

// setup returns a sim with a fake clock and a webhook recorder; opts adjust
// the config.
func setup(t *testing.T, opts ...func(*sim.Config)) (*sim.Provider, *bundle) {
	t.Helper()
	b := &bundle{clock: testclock.New(time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC))}
	cfg := sim.Config{
		WebhookSecret: testSecret,
		Clock:         b.clock.Now,
		OnEvent: func(h http.Header, body []byte) {
			b.mu.Lock()
			b.sent = append(b.sent, webhook{h, body})
			b.mu.Unlock()
		},
	}
	for _, o := range opts {
		o(&cfg)
	}
	return sim.New(cfg), b
}

var ctx = context.Background()

func authReq(key, token string, capture paymux.CaptureMode) *paymux.AuthorizeRequest {
	return &paymux.AuthorizeRequest{
		PaymentKey: key, ProviderKey: key + "-a1",
		Amount:  paymux.NewMoney(1000, "EUR"),
		Method:  paymux.PaymentMethod{Type: paymux.MethodCard, Token: token},
		Country: "DE", Capture: capture, ReturnURL: "https://shop.example/return",
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

func TestTestTokens(t *testing.T) {
	t.Parallel()
	tests := []struct {
		token   string
		capture paymux.CaptureMode
		threeDS bool
		status  paymux.Status // on success
		kind    paymux.Kind   // on failure
		decline string
		charges int
	}{
		{sim.TokenApprove, paymux.CaptureAutomatic, false, paymux.StatusCaptured, 0, "", 1},
		{sim.TokenApprove, paymux.CaptureManual, false, paymux.StatusAuthorized, 0, "", 1},
		{sim.TokenApprove, "", true, paymux.StatusCaptured, 0, "", 1},
		{"tok_anything", paymux.CaptureAutomatic, false, paymux.StatusCaptured, 0, "", 1},
		{sim.TokenHardDecline, paymux.CaptureAutomatic, false, "", paymux.KindHardDecline, sim.DeclineStolenCard, 0},
		{sim.TokenInsufficientFunds, paymux.CaptureAutomatic, false, "", paymux.KindSoftDecline, sim.DeclineInsufficientFunds, 0},
		{sim.TokenSoftDecline, paymux.CaptureAutomatic, false, "", paymux.KindSoftDecline, sim.DeclineIssuerUnavailable, 0},
		{sim.TokenThreeDS, paymux.CaptureAutomatic, false, paymux.StatusRequiresAction, 0, "", 0},
		{sim.TokenThreeDS, paymux.CaptureAutomatic, true, paymux.StatusCaptured, 0, "", 1},
		{sim.TokenThreeDS, paymux.CaptureManual, true, paymux.StatusAuthorized, 0, "", 1},
		{sim.TokenThreeDSChallenge, paymux.CaptureAutomatic, true, paymux.StatusRequiresAction, 0, "", 0},
		{sim.TokenAuthenticationRequired, paymux.CaptureAutomatic, false, "", paymux.KindActionRequired, sim.CodeAuthenticationRequired, 0},
		{sim.TokenAuthenticationRequired, paymux.CaptureAutomatic, true, paymux.StatusRequiresAction, 0, "", 0},
		{"sim_no_such_token", paymux.CaptureAutomatic, false, "", paymux.KindInvalidRequest, "", 0},
		{"sim_error_no_such_kind", paymux.CaptureAutomatic, false, "", paymux.KindInvalidRequest, "", 0},
	}
	for k := paymux.KindInvalidRequest; k <= paymux.KindUnimplemented; k++ {
		tests = append(tests, struct {
			token   string
			capture paymux.CaptureMode
			threeDS bool
			status  paymux.Status
			kind    paymux.Kind
			decline string
			charges int
		}{sim.TokenError(k), paymux.CaptureAutomatic, false, "", k, "", 0})
	}
	for i, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s/3ds=%v", tt.token, tt.capture, tt.threeDS), func(t *testing.T) {
			t.Parallel()
			p, _ := setup(t)
			req := authReq(fmt.Sprintf("order-%d", i), tt.token, tt.capture)
			req.ThreeDS = tt.threeDS
			res, err := p.Authorize(ctx, req)
			if tt.kind != 0 {
				pe := kindOf(t, err)
				if pe.Kind != tt.kind || pe.DeclineCode != tt.decline {
					t.Fatalf("got %s/%s, want %s/%s", pe.Kind, pe.DeclineCode, tt.kind, tt.decline)
				}
				if (tt.kind == paymux.KindHardDecline || tt.kind == paymux.KindSoftDecline) != errors.Is(err, paymux.ErrDeclined) {
					t.Errorf("errors.Is(%v, ErrDeclined) wrong", err)
				}
			} else {
				if err != nil {
					t.Fatalf("Authorize: %v", err)
				}
				if res.Status != tt.status {
					t.Fatalf("status %s, want %s", res.Status, tt.status)
				}
				if tt.status == paymux.StatusRequiresAction && (res.NextAction == nil || !strings.HasSuffix(res.NextAction.RedirectURL, res.Reference)) {
					t.Fatalf("NextAction = %+v", res.NextAction)
				}
			}
			if got := p.Charges(req.PaymentKey); got != tt.charges {
				t.Fatalf("Charges = %d, want %d", got, tt.charges)
			}
			if got := p.TotalCharges(); got != tt.charges {
				t.Fatalf("TotalCharges = %d, want %d", got, tt.charges)
			}
		})
	}
}

// An injected error processes nothing: the key stays free and Lookup finds
// nothing.
func TestInjectedErrorProcessesNothing(t *testing.T) {
	t.Parallel()
	p, _ := setup(t)
	req := authReq("order-1", sim.TokenError(paymux.KindOutcomeUnknown), "")
	_, err := p.Authorize(ctx, req)
	if !errors.Is(err, paymux.ErrOutcomeUnknown) {
		t.Fatalf("got %v", err)
	}
	_, err = p.Lookup(ctx, &paymux.LookupRequest{ProviderKey: req.ProviderKey, PaymentKey: req.PaymentKey})
	if !errors.Is(err, paymux.ErrNotFound) {
		t.Fatalf("Lookup after an injected error: %v", err)
	}
}

func TestCardNumberRefusedAndNotEchoed(t *testing.T) {
	t.Parallel()
	p, _ := setup(t)
	const pan = "4242 4242 4242 4242"
	_, err := p.Authorize(ctx, authReq("order-1", pan, ""))
	if kindOf(t, err).Kind != paymux.KindInvalidRequest {
		t.Fatalf("got %v", err)
	}
	if strings.Contains(err.Error(), "4242") {
		t.Fatalf("error echoes the card number: %v", err)
	}
}

func TestDecisionTable(t *testing.T) {
	t.Parallel()
	p, _ := setup(t, func(c *sim.Config) { c.Name = "sim-a" })
	table := p.DecisionTable()
	for code, want := range map[string]paymux.Decision{
		sim.DeclineStolenCard:          paymux.DecisionStop,
		sim.DeclineInsufficientFunds:   paymux.DecisionStop,
		sim.DeclineIssuerUnavailable:   paymux.DecisionFailover,
		sim.CodeAuthenticationRequired: paymux.DecisionStepUp,
		sim.CodeServiceUnavailable:     paymux.DecisionFailover,
		sim.CodeTimeout:                paymux.DecisionStop,
		sim.CodeServerError:            paymux.DecisionStop,
	} {
		c, ok := table.Lookup("sim-a", paymux.OpAuthorize, code)
		if !ok || c.Decision != want {
			t.Errorf("%s: %+v %v, want %s", code, c, ok, want)
		}
	}
	// Code of a decline is not in the table, so the decline code decides.
	if _, ok := table.Lookup("sim-a", paymux.OpAuthorize, sim.CodeCardDeclined); ok {
		t.Error("card_declined has a row; it would shadow the decline codes")
	}
	if _, ok := table.Lookup("sim", paymux.OpAuthorize, sim.DeclineStolenCard); ok {
		t.Error("rows are not keyed by the configured name")
	}
}

func TestIdempotency(t *testing.T) {
	t.Parallel()
	t.Run("DeclineReplayed", func(t *testing.T) {
		t.Parallel()
		p, _ := setup(t)
		req := authReq("order-1", sim.TokenHardDecline, "")
		_, err1 := p.Authorize(ctx, req)
		_, err2 := p.Authorize(ctx, req)
		if kindOf(t, err1).Kind != paymux.KindHardDecline || kindOf(t, err2).Kind != paymux.KindHardDecline {
			t.Fatalf("got %v then %v", err1, err2)
		}
		got, err := p.Lookup(ctx, &paymux.LookupRequest{ProviderKey: req.ProviderKey})
		if err != nil || got.Status != paymux.StatusFailed || got.DeclineCode != sim.DeclineStolenCard {
			t.Fatalf("Lookup of a declined attempt: %+v, %v", got, err)
		}
	})
	t.Run("ReplayIsTheFirstAnswer", func(t *testing.T) {
		t.Parallel()
		p, _ := setup(t)
		req := authReq("order-1", sim.TokenApprove, paymux.CaptureManual)
		first, _ := p.Authorize(ctx, req)
		if _, err := p.Capture(ctx, &paymux.CaptureRequest{Reference: first.Reference, ProviderKey: "cap-1", Amount: req.Amount}); err != nil {
			t.Fatal(err)
		}
		// Like Stripe, the replay answers what the first call answered.
		again, err := p.Authorize(ctx, req)
		if err != nil || again.Status != paymux.StatusAuthorized || again.Reference != first.Reference {
			t.Fatalf("replay: %+v, %v", again, err)
		}
		if p.Charges(req.PaymentKey) != 1 {
			t.Fatal("replay charged again")
		}
	})
	t.Run("ConflictOnOtherParams", func(t *testing.T) {
		t.Parallel()
		p, _ := setup(t)
		req := authReq("order-1", sim.TokenApprove, "")
		first, _ := p.Authorize(ctx, req)
		for name, change := range map[string]func(r *paymux.AuthorizeRequest){
			"amount":   func(r *paymux.AuthorizeRequest) { r.Amount.Amount++ },
			"currency": func(r *paymux.AuthorizeRequest) { r.Amount.Currency = "USD" },
			"token":    func(r *paymux.AuthorizeRequest) { r.Method.Token = "tok_other" },
			"capture":  func(r *paymux.AuthorizeRequest) { r.Capture = paymux.CaptureManual },
			"3ds":      func(r *paymux.AuthorizeRequest) { r.ThreeDS = true },
		} {
			r := *req
			change(&r)
			_, err := p.Authorize(ctx, &r)
			if pe := kindOf(t, err); pe.Kind != paymux.KindConflict || pe.Code != sim.CodeIdempotencyConflict {
				t.Errorf("%s changed: %v", name, err)
			}
		}
		// The key belongs to the authorisation, across operations too.
		_, err := p.Capture(ctx, &paymux.CaptureRequest{Reference: first.Reference, ProviderKey: req.ProviderKey})
		if kindOf(t, err).Kind != paymux.KindConflict {
			t.Errorf("capture with an authorisation's key: %v", err)
		}
		if p.TotalCharges() != 1 {
			t.Fatal("a conflicting request charged")
		}
	})
	t.Run("RefusedRequestLeavesKeyFree", func(t *testing.T) {
		t.Parallel()
		p, _ := setup(t)
		req := authReq("order-1", sim.TokenApprove, "")
		p.Faults().Set(providertest.FaultPlan{Outage: true})
		if _, err := p.Authorize(ctx, req); !errors.Is(err, paymux.ErrUnavailable) {
			t.Fatalf("outage: %v", err)
		}
		p.Faults().Set(providertest.FaultPlan{})
		if _, err := p.Authorize(ctx, req); err != nil {
			t.Fatalf("after the outage: %v", err)
		}
	})
}

// 64 goroutines racing one provider key cause exactly one charge.
func TestConcurrentSameKeyChargesOnce(t *testing.T) {
	t.Parallel()
	p, _ := setup(t)
	req := authReq("order-1", sim.TokenApprove, "")
	var wg sync.WaitGroup
	refs := make([]string, 64)
	for i := range refs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := *req
			res, err := p.Authorize(ctx, &r)
			if err != nil {
				t.Error(err)
				return
			}
			refs[i] = res.Reference
		}()
	}
	wg.Wait()
	for _, r := range refs {
		if r != refs[0] {
			t.Fatalf("two references for one key: %s, %s", refs[0], r)
		}
	}
	if n := p.Charges(req.PaymentKey); n != 1 {
		t.Fatalf("Charges = %d", n)
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	t.Run("ServerErrorProcessesNothing", func(t *testing.T) {
		t.Parallel()
		p, _ := setup(t)
		p.Faults().Set(providertest.FaultPlan{ServerErrorRate: 1})
		req := authReq("order-1", sim.TokenApprove, "")
		_, err := p.Authorize(ctx, req)
		if pe := kindOf(t, err); pe.Kind != paymux.KindOutcomeUnknown || pe.Code != sim.CodeServerError {
			t.Fatalf("got %v", err)
		}
		// Lookups still work during a 5xx storm, and prove nothing happened.
		_, err = p.Lookup(ctx, &paymux.LookupRequest{ProviderKey: req.ProviderKey, PaymentKey: req.PaymentKey})
		if !errors.Is(err, paymux.ErrNotFound) {
			t.Fatalf("Lookup: %v", err)
		}
	})
	t.Run("OutageRefusesLookups", func(t *testing.T) {
		t.Parallel()
		p, _ := setup(t)
		p.Faults().Set(providertest.FaultPlan{Outage: true})
		_, err := p.Lookup(ctx, &paymux.LookupRequest{Reference: "x"})
		if !errors.Is(err, paymux.ErrUnavailable) {
			t.Fatalf("Lookup during an outage: %v (NotFound would be a lie)", err)
		}
	})
	t.Run("ContextDoneBeforeCall", func(t *testing.T) {
		t.Parallel()
		p, _ := setup(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := p.Authorize(cctx, authReq("order-1", sim.TokenApprove, ""))
		if kindOf(t, err).Kind != paymux.KindUnavailable || !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v", err)
		}
		if p.TotalCharges() != 0 {
			t.Fatal("charged")
		}
	})
	t.Run("ClientTimeoutDuringLatencyStillCommits", func(t *testing.T) {
		t.Parallel()
		p, _ := setup(t, func(c *sim.Config) { c.Latency = time.Minute })
		cctx, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
		defer cancel()
		req := authReq("order-1", sim.TokenApprove, "")
		_, err := p.Authorize(cctx, req)
		if pe := kindOf(t, err); pe.Kind != paymux.KindOutcomeUnknown || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v", err)
		}
		if p.Charges(req.PaymentKey) != 1 {
			t.Fatal("the request reached the provider and must have been processed")
		}
	})
	t.Run("SharedFaultsDriveSeveralSims", func(t *testing.T) {
		t.Parallel()
		f := &providertest.Faults{}
		a := sim.New(sim.Config{Name: "sim-a", Faults: f})
		b := sim.New(sim.Config{Name: "sim-b", Faults: f})
		f.Set(providertest.FaultPlan{RateLimit: true})
		for _, p := range []*sim.Provider{a, b} {
			_, err := p.Authorize(ctx, authReq("order-1", sim.TokenApprove, ""))
			if pe := kindOf(t, err); pe.Kind != paymux.KindRateLimited || pe.Provider != p.Name() {
				t.Fatalf("%s: %v", p.Name(), err)
			}
		}
	})
}

func TestCaptureRules(t *testing.T) {
	t.Parallel()
	p, _ := setup(t)
	auth, _ := p.Authorize(ctx, authReq("order-1", sim.TokenApprove, paymux.CaptureManual))
	ref := auth.Reference
	capture := func(key string, amount int64, final bool) (*paymux.ProviderPayment, error) {
		return p.Capture(ctx, &paymux.CaptureRequest{Reference: ref, ProviderKey: key, Amount: paymux.NewMoney(amount, "EUR"), Final: final})
	}
	if _, err := capture("c0", 100, false); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Capture(ctx, &paymux.CaptureRequest{Reference: ref, ProviderKey: "cx", Amount: paymux.NewMoney(100, "USD")}); kindOf(t, err).Kind != paymux.KindInvalidRequest {
		t.Fatalf("capture in another currency: %v", err)
	}
	if _, err := capture("c1", 901, false); kindOf(t, err).Code != sim.CodeAmountTooLarge {
		t.Fatalf("over-capture: %v", err)
	}
	res, err := capture("c2", 200, true)
	if err != nil || res.Captured != 300 || res.Status != paymux.StatusCaptured {
		t.Fatalf("final capture: %+v, %v", res, err)
	}
	// After a final capture the rest of the authorisation is released.
	if _, err := capture("c3", 100, false); kindOf(t, err).Code != sim.CodeInvalidState {
		t.Fatalf("capture after the final one: %v", err)
	}
	if _, err := p.Void(ctx, &paymux.VoidRequest{Reference: ref, ProviderKey: "v1"}); kindOf(t, err).Kind != paymux.KindConflict {
		t.Fatalf("void after capture: %v", err)
	}
	if _, err := p.Capture(ctx, &paymux.CaptureRequest{Reference: "nope", ProviderKey: "c4"}); !errors.Is(err, paymux.ErrNotFound) {
		t.Fatalf("capture of an unknown reference: %v", err)
	}
	// Amount 0 captures the rest.
	auth2, _ := p.Authorize(ctx, authReq("order-2", sim.TokenApprove, paymux.CaptureManual))
	res, err = p.Capture(ctx, &paymux.CaptureRequest{Reference: auth2.Reference, ProviderKey: "c5"})
	if err != nil || res.Captured != 1000 {
		t.Fatalf("capture of the rest: %+v, %v", res, err)
	}
}

func TestRefundRules(t *testing.T) {
	t.Parallel()
	p, _ := setup(t)
	pay, _ := p.Authorize(ctx, authReq("order-1", sim.TokenApprove, ""))
	refund := func(key string, amount int64) (*paymux.ProviderPayment, error) {
		return p.Refund(ctx, &paymux.RefundRequest{Reference: pay.Reference, ProviderKey: key, Amount: paymux.NewMoney(amount, "EUR")})
	}
	r1, err := refund("r1", 400)
	if err != nil || r1.Refunded != 400 || r1.Status != paymux.StatusRefunded || r1.RefundReference == "" {
		t.Fatalf("first refund: %+v, %v", r1, err)
	}
	if _, err := refund("r2", 601); kindOf(t, err).Code != sim.CodeAmountTooLarge {
		t.Fatalf("over-refund: %v", err)
	}
	r3, err := refund("r3", 0)
	if err != nil || r3.Refunded != 1000 || len(r3.Refunds) != 2 || r3.RefundReference == r1.RefundReference {
		t.Fatalf("refund of the rest: %+v, %v", r3, err)
	}
	if _, err := refund("r4", 0); kindOf(t, err).Kind != paymux.KindConflict {
		t.Fatalf("refund of a fully refunded payment: %v", err)
	}
	// A retried refund replays its own answer.
	again, err := refund("r1", 400)
	if err != nil || again.RefundReference != r1.RefundReference || again.Refunded != 400 {
		t.Fatalf("replayed refund: %+v, %v", again, err)
	}
	auth, _ := p.Authorize(ctx, authReq("order-2", sim.TokenApprove, paymux.CaptureManual))
	if _, err := p.Refund(ctx, &paymux.RefundRequest{Reference: auth.Reference, ProviderKey: "r5", Amount: paymux.NewMoney(1, "EUR")}); kindOf(t, err).Kind != paymux.KindConflict {
		t.Fatalf("refund of an uncaptured payment: %v", err)
	}
}

func TestCapabilities(t *testing.T) {
	t.Parallel()
	p, _ := setup(t, func(c *sim.Config) {
		c.Capabilities = paymux.Capabilities{Currencies: []paymux.Currency{"USD"}}
	})
	if got := p.Capabilities(); got.ManualCapture || len(got.Currencies) != 1 {
		t.Fatalf("Capabilities = %+v", got)
	}
	if _, err := p.Authorize(ctx, authReq("order-1", sim.TokenApprove, "")); kindOf(t, err).Code != sim.CodeUnsupported {
		t.Fatalf("EUR at a USD-only sim: %v", err)
	}
	req := authReq("order-2", sim.TokenApprove, paymux.CaptureManual)
	req.Amount.Currency = "USD"
	if _, err := p.Authorize(ctx, req); kindOf(t, err).Code != sim.CodeUnsupported {
		t.Fatalf("manual capture without the capability: %v", err)
	}
	req = authReq("order-3", sim.TokenApprove, "")
	req.Amount.Currency = "USD"
	pay, err := p.Authorize(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Refund(ctx, &paymux.RefundRequest{Reference: pay.Reference, ProviderKey: "r1", Amount: paymux.NewMoney(1, "USD")}); kindOf(t, err).Code != sim.CodeUnsupported {
		t.Fatalf("partial refund without the capability: %v", err)
	}
	if _, err := p.Void(ctx, &paymux.VoidRequest{Reference: pay.Reference, ProviderKey: "v1"}); kindOf(t, err).Kind != paymux.KindUnimplemented {
		t.Fatalf("void without the capability: %v", err)
	}
	if d := sim.New(sim.Config{}).Capabilities(); !d.ManualCapture || !d.PartialCapture || !d.PartialRefund || !d.MultipleRefund || !d.Void {
		t.Fatalf("default capabilities: %+v", d)
	}
}

func TestBuyerAction(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	pay, _ := p.Authorize(ctx, authReq("order-1", sim.TokenThreeDS, paymux.CaptureManual))
	if err := p.CompleteAction(ctx, pay.Reference); err != nil {
		t.Fatal(err)
	}
	if err := p.CompleteAction(ctx, pay.Reference); err != nil {
		t.Fatalf("completing twice: %v", err)
	}
	got, _ := p.Lookup(ctx, &paymux.LookupRequest{Reference: pay.Reference})
	if got.Status != paymux.StatusAuthorized || got.NextAction != nil || p.Charges("order-1") != 1 {
		t.Fatalf("after CompleteAction: %+v", got)
	}
	if err := p.FailAction(ctx, pay.Reference); kindOf(t, err).Kind != paymux.KindConflict {
		t.Fatalf("FailAction after completion: %v", err)
	}

	pay2, _ := p.Authorize(ctx, authReq("order-2", sim.TokenThreeDSChallenge, ""))
	if err := p.FailAction(ctx, pay2.Reference); err != nil {
		t.Fatal(err)
	}
	got, _ = p.Lookup(ctx, &paymux.LookupRequest{PaymentKey: "order-2"})
	if got.Status != paymux.StatusFailed || got.DeclineCode != sim.DeclineAuthenticationFail || p.Charges("order-2") != 0 {
		t.Fatalf("after FailAction: %+v", got)
	}

	pay3, _ := p.Authorize(ctx, authReq("order-3", sim.TokenThreeDS, ""))
	if res, err := p.Void(ctx, &paymux.VoidRequest{Reference: pay3.Reference, ProviderKey: "v"}); err != nil || res.Status != paymux.StatusVoided {
		t.Fatalf("void while waiting for the buyer: %+v, %v", res, err)
	}
	if err := p.CompleteAction(ctx, pay3.Reference); kindOf(t, err).Kind != paymux.KindConflict {
		t.Fatalf("CompleteAction after void: %v", err)
	}
	if err := p.CompleteAction(ctx, "nope"); !errors.Is(err, paymux.ErrNotFound) {
		t.Fatalf("CompleteAction of an unknown reference: %v", err)
	}
	types := eventTypes(t, p, b.webhooks())
	want := "action_required authorized action_required failed action_required voided"
	if types != want {
		t.Fatalf("webhooks: %s, want %s", types, want)
	}
}

func TestLookupByPaymentKeyPrefersTheLatestLivePayment(t *testing.T) {
	t.Parallel()
	p, _ := setup(t)
	first := authReq("order-1", sim.TokenSoftDecline, "")
	_, _ = p.Authorize(ctx, first)
	second := authReq("order-1", sim.TokenApprove, "")
	second.ProviderKey = "order-1-a2"
	ok, _ := p.Authorize(ctx, second)
	third := authReq("order-1", sim.TokenHardDecline, "")
	third.ProviderKey = "order-1-a3"
	_, _ = p.Authorize(ctx, third)
	got, err := p.Lookup(ctx, &paymux.LookupRequest{PaymentKey: "order-1"})
	if err != nil || got.Reference != ok.Reference {
		t.Fatalf("Lookup by payment key: %+v, %v, want %s", got, err, ok.Reference)
	}
	got, _ = p.Lookup(ctx, &paymux.LookupRequest{ProviderKey: first.ProviderKey})
	if got.Status != paymux.StatusFailed {
		t.Fatalf("Lookup by the first key: %+v", got)
	}
	if p.Charges("order-1") != 1 {
		t.Fatal("Charges")
	}
}

func TestInstancesAreIndependent(t *testing.T) {
	t.Parallel()
	a := sim.New(sim.Config{Name: "sim-a"})
	b := sim.New(sim.Config{Name: "sim-b"})
	pa, _ := a.Authorize(ctx, authReq("order-1", sim.TokenApprove, ""))
	pb, _ := b.Authorize(ctx, authReq("order-1", sim.TokenApprove, ""))
	if pa.Reference == pb.Reference {
		t.Fatal("two sims issued the same reference")
	}
	if _, err := b.Lookup(ctx, &paymux.LookupRequest{Reference: pa.Reference}); !errors.Is(err, paymux.ErrNotFound) {
		t.Fatalf("sim-b knows sim-a's payment: %v", err)
	}
	if a.Name() != "sim-a" || sim.New(sim.Config{}).Name() != sim.DefaultName {
		t.Fatal("names")
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	t.Parallel()
	cfg := sim.Config{WebhookSecret: "simsec_do_not_print"}
	for _, s := range []string{fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg)} {
		if strings.Contains(s, "do_not_print") {
			t.Fatalf("secret printed: %s", s)
		}
	}
	p := sim.New(cfg)
	body := []byte(`{}`)
	_, err := p.ParseWebhook(ctx, sim.SignWebhook("simsec_other", body, time.Now()), body)
	if err == nil || strings.Contains(err.Error(), "do_not_print") {
		t.Fatalf("error: %v", err)
	}
}

func TestLookupOfForeignReferences(t *testing.T) {
	t.Parallel()
	p, _ := setup(t)
	pay, _ := p.Authorize(ctx, authReq("order-1", sim.TokenApprove, ""))
	ref := pay.Reference
	cut := strings.LastIndexByte(ref, '_')
	for _, bad := range []string{"", "simpay_", ref[:cut], ref[:cut+1], ref + "0", ref[:cut+1] + "00", ref[:cut+1] + "-0",
		ref[:cut+1] + "99999999999999999999999", "simpay_0000000000_0", "x" + ref[1:], strings.ToUpper(ref)} {
		if _, err := p.Lookup(ctx, &paymux.LookupRequest{Reference: bad}); !errors.Is(err, paymux.ErrNotFound) {
			t.Errorf("Lookup(%q): %v", bad, err)
		}
	}
	if got, err := p.Lookup(ctx, &paymux.LookupRequest{Reference: ref}); err != nil || got.Reference != ref {
		t.Fatalf("Lookup(%q): %+v, %v", ref, got, err)
	}
}

func TestLatency(t *testing.T) {
	t.Parallel()
	p, _ := setup(t, func(c *sim.Config) { c.Latency, c.LatencyJitter = 2*time.Millisecond, time.Millisecond })
	start := time.Now()
	if _, err := p.Authorize(ctx, authReq("order-1", sim.TokenApprove, "")); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 2*time.Millisecond {
		t.Fatalf("answered after %s, before the configured latency", d)
	}
}
