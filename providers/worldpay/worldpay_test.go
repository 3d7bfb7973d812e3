package worldpay_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/providertest"
	"github.com/paymux/paymux/providers/worldpay"
	"github.com/paymux/paymux/providers/worldpay/worldpaytest"
)

type bundle struct {
	fake   *worldpaytest.Server
	faults *providertest.Faults
	cfg    worldpay.Config
}

func setup(t *testing.T, mod ...func(*worldpay.Config)) (*worldpay.Provider, *bundle) {
	t.Helper()
	faults := &providertest.Faults{}
	fake := worldpaytest.NewServer(worldpaytest.Options{Faults: faults})
	t.Cleanup(fake.Close)
	cfg := worldpay.Config{
		Username: "user", Password: "pass", Entity: "default",
		BaseURL: fake.URL(), HTTPClient: fake.Client(),
		EventSecrets:     map[string]paymux.Secret{"1": "worldpay-test-secret"},
		ThreeDSReturnURL: "https://shop.example/3ds",
	}
	for _, m := range mod {
		m(&cfg)
	}
	p, err := worldpay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p, &bundle{fake: fake, faults: faults, cfg: cfg}
}

var keyN atomic.Int64

func authReq(b *bundle, name string, amount int64, capture paymux.CaptureMode) *paymux.AuthorizeRequest {
	pk := fmt.Sprintf("order-%d-%d", time.Now().UnixNano(), keyN.Add(1))
	return &paymux.AuthorizeRequest{
		PaymentKey:  pk,
		ProviderKey: paymux.ProviderKey(pk, "worldpay", paymux.OpAuthorize, 1),
		Amount:      paymux.NewMoney(amount, "GBP"),
		Method:      paymux.PaymentMethod{Type: paymux.MethodCard, Token: b.fake.SessionHref(name)},
		Capture:     capture,
	}
}

func kindOf(t *testing.T, err error) paymux.Kind {
	t.Helper()
	var pe *paymux.ProviderError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *paymux.ProviderError", err, err)
	}
	return pe.Kind
}

func TestManualCaptureFollowsActionLinks(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	ctx := context.Background()
	req := authReq(b, worldpaytest.NameAuthorised, 1000, paymux.CaptureManual)
	res, err := p.Authorize(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != paymux.StatusAuthorized || res.Reference != req.ProviderKey || res.Authorized != 1000 {
		t.Fatalf("authorize: %+v", res)
	}
	cap1, err := p.Capture(ctx, &paymux.CaptureRequest{Reference: res.Reference, ProviderKey: "cap-1", Amount: paymux.NewMoney(400, "GBP")})
	if err != nil {
		t.Fatal(err)
	}
	if cap1.Status != paymux.StatusCaptured || cap1.Captured != 400 {
		t.Fatalf("partial capture: %+v", cap1)
	}
	if _, err := p.Capture(ctx, &paymux.CaptureRequest{Reference: res.Reference, ProviderKey: "cap-2", Amount: paymux.NewMoney(600, "GBP")}); err != nil {
		t.Fatal(err)
	}
	for i, amt := range []int64{300, 200} {
		r, err := p.Refund(ctx, &paymux.RefundRequest{Reference: res.Reference, ProviderKey: fmt.Sprintf("ref-%d", i), Amount: paymux.NewMoney(amt, "GBP")})
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != paymux.StatusRefunded || r.RefundReference == "" {
			t.Fatalf("refund: %+v", r)
		}
	}
	snap, _ := b.fake.Payment(req.ProviderKey)
	if snap.Captured != 1000 || snap.Refunds != 500 {
		t.Fatalf("fake state: %+v", snap)
	}
	if n := b.fake.Charges(req.ProviderKey); n != 1 {
		t.Fatalf("charges = %d", n)
	}
}

func TestAutomaticCaptureAndFullRefund(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	ctx := context.Background()
	req := authReq(b, "Jane Doe", 250, paymux.CaptureAutomatic)
	res, err := p.Authorize(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != paymux.StatusCaptured || res.Captured != 250 {
		t.Fatalf("authorize: %+v", res)
	}
	if _, err := p.Refund(ctx, &paymux.RefundRequest{Reference: res.Reference, ProviderKey: "r", Amount: paymux.NewMoney(250, "GBP")}); err != nil {
		t.Fatal(err)
	}
	snap, _ := b.fake.Payment(req.ProviderKey)
	if snap.Refunds != 250 {
		t.Fatalf("fake: %+v", snap)
	}
	// Nothing is left to refund: Worldpay offers no refund action.
	_, err = p.Refund(ctx, &paymux.RefundRequest{Reference: res.Reference, ProviderKey: "r2", Amount: paymux.NewMoney(1, "GBP")})
	if k := kindOf(t, err); k != paymux.KindConflict {
		t.Fatalf("kind = %v", k)
	}
}

func TestVoid(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	ctx := context.Background()
	res, err := p.Authorize(ctx, authReq(b, "", 500, paymux.CaptureManual))
	if err != nil {
		t.Fatal(err)
	}
	v, err := p.Void(ctx, &paymux.VoidRequest{Reference: res.Reference, ProviderKey: "v"})
	if err != nil || v.Status != paymux.StatusVoided {
		t.Fatalf("void: %+v %v", v, err)
	}
	_, err = p.Capture(ctx, &paymux.CaptureRequest{Reference: res.Reference, ProviderKey: "c", Amount: paymux.NewMoney(500, "GBP")})
	if k := kindOf(t, err); k != paymux.KindConflict {
		t.Fatalf("capture after void: %v", err)
	}
	l, err := p.Lookup(ctx, &paymux.LookupRequest{Reference: res.Reference})
	if err != nil || l.Status != paymux.StatusVoided {
		t.Fatalf("lookup: %+v %v", l, err)
	}
}

// A second adapter (another process, or after a restart) has no cached
// links: it finds them with the recovery query and follows them.
func TestFollowUpFromAnotherProcess(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	ctx := context.Background()
	res, err := p.Authorize(ctx, authReq(b, "", 900, paymux.CaptureManual))
	if err != nil {
		t.Fatal(err)
	}
	p2, err := worldpay.New(b.cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := p2.Capture(ctx, &paymux.CaptureRequest{Reference: res.Reference, ProviderKey: "c", Amount: paymux.NewMoney(300, "GBP")})
	if err != nil || c.Status != paymux.StatusCaptured {
		t.Fatalf("capture: %+v %v", c, err)
	}
	snap, _ := b.fake.Payment(res.Reference)
	if snap.Captured != 300 {
		t.Fatalf("fake: %+v", snap)
	}
}

func TestDeclinesUseTestValues(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	table := p.DecisionTable()
	for _, tc := range []struct {
		name     string
		kind     paymux.Kind
		decision paymux.Decision
	}{
		{worldpaytest.NameStolen, paymux.KindHardDecline, paymux.DecisionStop},
		{worldpaytest.NameRefused, paymux.KindHardDecline, paymux.DecisionStop},
		{worldpaytest.NameInsufficientFunds, paymux.KindSoftDecline, paymux.DecisionStop},
		{worldpaytest.NameIssuerUnavailable, paymux.KindSoftDecline, paymux.DecisionFailover},
	} {
		req := authReq(b, tc.name, 100, paymux.CaptureManual)
		_, err := p.Authorize(context.Background(), req)
		var pe *paymux.ProviderError
		if !errors.As(err, &pe) || pe.Kind != tc.kind {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !errors.Is(err, paymux.ErrDeclined) {
			t.Fatalf("%s: not ErrDeclined", tc.name)
		}
		c, ok := table.Lookup("worldpay", paymux.OpAuthorize, pe.DeclineCode)
		if !ok || c.Decision != tc.decision {
			t.Fatalf("%s: row %+v %v", tc.name, c, ok)
		}
		if b.fake.Charges(req.ProviderKey) != 0 {
			t.Fatalf("%s: a refusal moved money", tc.name)
		}
	}
}

func TestThreeDSRequiresAction(t *testing.T) {
	t.Parallel()
	p, b := setup(t, func(c *worldpay.Config) { c.ThreeDS = worldpay.ThreeDSAlways })
	ctx := context.Background()
	req := authReq(b, worldpaytest.NameThreeDSChallenge, 700, paymux.CaptureManual)
	res, err := p.Authorize(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != paymux.StatusRequiresAction || res.NextAction == nil || res.NextAction.Type != "three_ds" || res.NextAction.RedirectURL == "" {
		t.Fatalf("authorize: %+v", res)
	}
	if err := b.fake.CompleteThreeDS(res.Reference); err != nil {
		t.Fatal(err)
	}
	l, err := p.Lookup(ctx, &paymux.LookupRequest{Reference: res.Reference, Amount: req.Amount})
	if err != nil || l.Status != paymux.StatusAuthorized || l.Authorized != 700 {
		t.Fatalf("lookup: %+v %v", l, err)
	}
	// Frictionless cards authorise at once even with 3DS requested.
	res, err = p.Authorize(ctx, authReq(b, worldpaytest.NameAuthorised, 700, paymux.CaptureManual))
	if err != nil || res.Status != paymux.StatusAuthorized {
		t.Fatalf("frictionless: %+v %v", res, err)
	}
}

func TestThreeDSNeedsReturnURL(t *testing.T) {
	t.Parallel()
	p, b := setup(t, func(c *worldpay.Config) { c.ThreeDSReturnURL = "" })
	req := authReq(b, "", 100, paymux.CaptureManual)
	req.ThreeDS = true
	_, err := p.Authorize(context.Background(), req)
	if k := kindOf(t, err); k != paymux.KindInvalidRequest {
		t.Fatalf("kind %v", k)
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		plan providertest.FaultPlan
		kind paymux.Kind
	}{
		{"outage", providertest.FaultPlan{Outage: true}, paymux.KindUnavailable},
		{"rate limit", providertest.FaultPlan{RateLimit: true}, paymux.KindRateLimited},
		{"5xx", providertest.FaultPlan{ServerErrorRate: 1}, paymux.KindOutcomeUnknown},
		{"timeout after commit", providertest.FaultPlan{TimeoutAfterCommitNext: 1}, paymux.KindOutcomeUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, b := setup(t)
			b.faults.Set(tc.plan)
			req := authReq(b, "", 100, paymux.CaptureManual)
			_, err := p.Authorize(context.Background(), req)
			if k := kindOf(t, err); k != tc.kind {
				t.Fatalf("kind = %v, want %v (%v)", k, tc.kind, err)
			}
			c, _ := p.DecisionTable().Lookup("worldpay", paymux.OpAuthorize, errCode(err))
			if tc.kind == paymux.KindOutcomeUnknown && (c.Decision == paymux.DecisionRetry || c.Decision == paymux.DecisionFailover) {
				t.Fatalf("an unknown outcome must stop, table says %v", c.Decision)
			}
		})
	}
}

func errCode(err error) string {
	var pe *paymux.ProviderError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// After a time-out the payment is found with the documented recovery query
// by transactionReference, and it was charged exactly once.
func TestRecoveryAfterTimeoutFindsThePaymentOnce(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	ctx := context.Background()
	b.faults.Set(providertest.FaultPlan{TimeoutAfterCommitNext: 1})
	req := authReq(b, "", 1200, paymux.CaptureManual)
	if _, err := p.Authorize(ctx, req); paymux.KindOf(err) != paymux.KindOutcomeUnknown {
		t.Fatalf("want unknown, got %v", err)
	}
	l, err := p.Lookup(ctx, &paymux.LookupRequest{ProviderKey: req.ProviderKey, PaymentKey: req.PaymentKey, Amount: req.Amount})
	if err != nil || l.Status != paymux.StatusAuthorized || l.Reference != req.ProviderKey || l.Authorized != 1200 {
		t.Fatalf("lookup: %+v %v", l, err)
	}
	// Even a (not recommended) second POST with the same reference does not
	// charge twice at the fake.
	if _, err := p.Authorize(ctx, req); err != nil {
		t.Fatal(err)
	}
	if n := b.fake.Charges(req.ProviderKey); n != 1 {
		t.Fatalf("charges = %d", n)
	}
	// The links come from the recovery query: capture works.
	if _, err := p.Capture(ctx, &paymux.CaptureRequest{Reference: l.Reference, ProviderKey: "c", Amount: req.Amount}); err != nil {
		t.Fatal(err)
	}
}

func TestLookupNotFound(t *testing.T) {
	t.Parallel()
	p, _ := setup(t)
	_, err := p.Lookup(context.Background(), &paymux.LookupRequest{ProviderKey: "pmx_never_sent"})
	if k := kindOf(t, err); k != paymux.KindNotFound {
		t.Fatalf("kind %v", k)
	}
	_, err = p.Lookup(context.Background(), &paymux.LookupRequest{PaymentKey: "order-1"})
	if k := kindOf(t, err); k != paymux.KindNotFound {
		t.Fatalf("lookup by paymux key alone: %v", k)
	}
	_, err = p.Lookup(context.Background(), &paymux.LookupRequest{})
	if k := kindOf(t, err); k != paymux.KindInvalidRequest {
		t.Fatalf("lookup without keys: %v", k)
	}
}

func TestBadCredentialsNeverLeak(t *testing.T) {
	t.Parallel()
	p, b := setup(t, func(c *worldpay.Config) { c.Password = "s3cret-password" })
	_, err := p.Authorize(context.Background(), authReq(b, "", 100, paymux.CaptureManual))
	if k := kindOf(t, err); k != paymux.KindAuthentication {
		t.Fatalf("kind %v", k)
	}
	if strings.Contains(err.Error(), "s3cret") || strings.Contains(fmt.Sprintf("%+v %#v", b.cfg, b.cfg), "s3cret") {
		t.Fatal("secret leaked")
	}
}

func TestCardNumberRefused(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	req := authReq(b, "", 100, paymux.CaptureManual)
	req.Method.Token = "4444333322221111"
	_, err := p.Authorize(context.Background(), req)
	if k := kindOf(t, err); k != paymux.KindInvalidRequest {
		t.Fatalf("kind %v", k)
	}
	if b.fake.TotalCharges() != 0 {
		t.Fatal("charged")
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	for _, c := range []worldpay.Config{{}, {Username: "u", Password: "p"}, {Username: "u", Entity: "e"}} {
		if _, err := worldpay.New(c); err == nil {
			t.Fatalf("New(%+v) succeeded", c)
		}
	}
	p, err := worldpay.New(worldpay.Config{Username: "u", Password: "p", Entity: "e"})
	if err != nil || p.Name() != "worldpay" {
		t.Fatal(err)
	}
	caps := p.Capabilities()
	if !caps.PartialCapture || !caps.PartialRefund || !caps.MultipleRefund || !caps.Void || !caps.ManualCapture {
		t.Fatalf("caps %+v", caps)
	}
}

// A capture whose answer was lost is never sent again with the same key:
// Worldpay documents no de-duplication of settlements.
func TestFollowUpWithUnknownOutcomeIsNotResent(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	ctx := context.Background()
	res, err := p.Authorize(ctx, authReq(b, "", 1000, paymux.CaptureManual))
	if err != nil {
		t.Fatal(err)
	}
	b.faults.Set(providertest.FaultPlan{TimeoutAfterCommitNext: 1})
	creq := &paymux.CaptureRequest{Reference: res.Reference, ProviderKey: "cap-once", Amount: paymux.NewMoney(300, "GBP")}
	if _, err := p.Capture(ctx, creq); paymux.KindOf(err) != paymux.KindOutcomeUnknown {
		t.Fatalf("want unknown, got %v", err)
	}
	if _, err := p.Capture(ctx, creq); paymux.KindOf(err) != paymux.KindOutcomeUnknown || errCode(err) != "unknown_not_resent" {
		t.Fatalf("retry: %v", err)
	}
	snap, _ := b.fake.Payment(res.Reference)
	if snap.Captured != 300 {
		t.Fatalf("captured %d, want 300 exactly", snap.Captured)
	}
	l, err := p.Lookup(ctx, &paymux.LookupRequest{Reference: res.Reference, Amount: paymux.NewMoney(1000, "GBP")})
	if err != nil || l.Status != paymux.StatusCaptured {
		t.Fatalf("lookup: %+v %v", l, err)
	}
}
