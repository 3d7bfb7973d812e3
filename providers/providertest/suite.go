package providertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paymux/paymux"
)

// Run runs the conformance suite against the adapter the harness builds. Each
// subtest gets a fresh fixture from h.New and skips itself when the fixture's
// Caps (or a missing optional field) say the feature is not there.
//
// An adapter's conformance_test.go is typically:
//
//	func TestConformance(t *testing.T) {
//		providertest.Run(t, providertest.Harness{New: func(t *testing.T) *providertest.Fixture {
//			srv := stripetest.NewServer(t)
//			p := stripe.New(stripe.Config{BaseURL: srv.URL, ...})
//			return &providertest.Fixture{Provider: p, Currency: "EUR", Country: "DE", ...}
//		}})
//	}
//
// The subtests, by name:
//
//	Authorize/{Automatic,Manual,HardDecline,SoftDecline,InsufficientFunds,ThreeDS}
//	Capture/{Full,Partial,OverAmount,Idempotent}
//	Refund/{Full,Partial,Multiple,OverAmount,Idempotent}
//	Void/{Authorized,ThenCapture}
//	Lookup/{ByReference,ByProviderKey,ByPaymentKey,NotFound}
//	Idempotency/{SameKeyChargesOnce,ConcurrentSameKey,DifferentParams}
//	Faults/{Outage,RateLimit,ServerError,TimeoutAfterCommit}
//	Webhook/{RoundTrip,TamperedBody,Unsigned,WrongSecret,TooOld}
//
// Where the suite checks what an operation did at the provider (a capture
// captured, a refused refund refunded nothing), it asks Fixture.State when
// set, else Provider.Lookup. Caps.NoLookup lets Lookup answer
// KindUnimplemented; Caps.AsyncModifications lets a capture, refund or void
// that must be refused be accepted and refused later, checked through that
// state; Caps.DerivedEventIDs matches webhook events without an event id.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.New == nil {
		t.Fatal("providertest: Harness.New is nil")
	}
	groups := []struct {
		name  string
		tests []subtest
	}{
		{"Authorize", []subtest{
			{"Automatic", testAuthorizeAutomatic},
			{"Manual", testAuthorizeManual},
			{"HardDecline", testHardDecline},
			{"SoftDecline", testSoftDecline},
			{"InsufficientFunds", testInsufficientFunds},
			{"ThreeDS", testThreeDS},
		}},
		{"Capture", []subtest{
			{"Full", testCaptureFull},
			{"Partial", testCapturePartial},
			{"OverAmount", testCaptureOverAmount},
			{"Idempotent", testCaptureIdempotent},
		}},
		{"Refund", []subtest{
			{"Full", testRefundFull},
			{"Partial", testRefundPartial},
			{"Multiple", testRefundMultiple},
			{"OverAmount", testRefundOverAmount},
			{"Idempotent", testRefundIdempotent},
		}},
		{"Void", []subtest{
			{"Authorized", testVoid},
			{"ThenCapture", testCaptureAfterVoid},
		}},
		{"Lookup", []subtest{
			{"ByReference", testLookupByReference},
			{"ByProviderKey", testLookupByProviderKey},
			{"ByPaymentKey", testLookupByPaymentKey},
			{"NotFound", testLookupNotFound},
		}},
		{"Idempotency", []subtest{
			{"SameKeyChargesOnce", testSameKeyChargesOnce},
			{"ConcurrentSameKey", testConcurrentSameKey},
			{"DifferentParams", testDifferentParams},
		}},
		{"Faults", []subtest{
			{"Outage", testOutage},
			{"RateLimit", testRateLimit},
			{"ServerError", testServerError},
			{"TimeoutAfterCommit", testTimeoutAfterCommit},
		}},
		{"Webhook", []subtest{
			{"RoundTrip", testWebhookRoundTrip},
			{"TamperedBody", testWebhookTampered},
			{"Unsigned", testWebhookUnsigned},
			{"WrongSecret", testWebhookWrongSecret},
			{"TooOld", testWebhookTooOld},
		}},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			if !h.Serial {
				t.Parallel()
			}
			for _, st := range g.tests {
				run := func(t *testing.T) {
					if !h.Serial {
						t.Parallel()
					}
					f := h.New(t)
					if f == nil || f.Provider == nil {
						t.Fatal("providertest: Harness.New returned no provider")
					}
					s := newSuite(t, f)
					st.fn(t, s)
				}
				t.Run(st.name, run)
			}
		})
	}
}

type subtest struct {
	name string
	fn   func(t *testing.T, s *suite)
}

// suite is one subtest's fixture with defaults filled in and helpers.
type suite struct {
	*Fixture
	ctx    context.Context
	amount int64
	name   string
	prefix string
}

func newSuite(t *testing.T, f *Fixture) *suite {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	s := &suite{Fixture: f, ctx: ctx, amount: f.Amount, name: f.Provider.Name()}
	if s.amount == 0 {
		s.amount = 1000
	}
	if s.Currency == "" {
		t.Fatal("providertest: Fixture.Currency is empty")
	}
	if f.Caps.NoLookup && f.Caps.LookupByKey {
		t.Fatal("providertest: Caps.NoLookup and Caps.LookupByKey contradict each other")
	}
	if f.Caps.AsyncModifications && f.Caps.NoLookup && f.State == nil {
		// A modification refused only later can be checked nowhere else.
		t.Fatal("providertest: Caps.AsyncModifications with Caps.NoLookup needs Fixture.State")
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	// Unique per subtest and per run, so a fake or sandbox shared between
	// runs never sees a key twice.
	s.prefix = "ptest-" + hex.EncodeToString(b[:]) + "-"
	return s
}

func (s *suite) money(amount int64) paymux.Money {
	return paymux.Money{Amount: amount, Currency: s.Currency}
}

// request builds the first authorisation attempt of a new payment.
func (s *suite) request(t *testing.T, m paymux.PaymentMethod, capture paymux.CaptureMode) *paymux.AuthorizeRequest {
	t.Helper()
	if m.Token == "" {
		t.Fatal("providertest: empty payment method in the fixture")
	}
	key := s.prefix + strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	if len(key) > 100 {
		key = key[:100]
	}
	return &paymux.AuthorizeRequest{
		PaymentID:   paymux.PaymentID(key),
		PaymentKey:  key,
		ProviderKey: paymux.ProviderKey(key, s.name, paymux.OpAuthorize, 1),
		Amount:      s.money(s.amount),
		Method:      m,
		Country:     s.Country,
		Capture:     capture,
		Customer:    paymux.Customer{ID: "cus_providertest", Email: "buyer@example.com", IP: "203.0.113.7"},
		Metadata:    map[string]string{"suite": "providertest"},
		ReturnURL:   "https://shop.example/return",
	}
}

func (s *suite) opKey(req *paymux.AuthorizeRequest, op paymux.Operation, n int) string {
	return paymux.ProviderKey(req.PaymentKey, s.name, op, n)
}

// authorizeOK authorises req and returns the payment once approved, passing
// through the buyer's approval for providers that always need one.
func (s *suite) authorizeOK(t *testing.T, req *paymux.AuthorizeRequest) *paymux.ProviderPayment {
	t.Helper()
	res, err := s.Provider.Authorize(s.ctx, req)
	if err != nil {
		t.Fatalf("Authorize(%s): %v", req.Method.Token, err)
	}
	if res == nil || res.Reference == "" {
		t.Fatalf("Authorize returned no reference: %+v", res)
	}
	if res.Status == paymux.StatusRequiresAction && s.Caps.RequiresApproval {
		if s.CompleteAction == nil {
			t.Fatal("providertest: Caps.RequiresApproval without CompleteAction")
		}
		if err := s.CompleteAction(s.ctx, res.Reference); err != nil {
			t.Fatalf("CompleteAction: %v", err)
		}
		res = s.afterAction(t, &paymux.LookupRequest{Reference: res.Reference, PaymentKey: req.PaymentKey, Amount: req.Amount})
	}
	want := paymux.StatusCaptured
	if req.Capture == paymux.CaptureManual {
		want = paymux.StatusAuthorized
	}
	if res.Status != want {
		t.Fatalf("Authorize(%s, capture %s): status %s, want %s", req.Method.Token, req.Capture, res.Status, want)
	}
	return res
}

func (s *suite) lookup(t *testing.T, req *paymux.LookupRequest) *paymux.ProviderPayment {
	t.Helper()
	res, err := s.Provider.Lookup(s.ctx, req)
	if err != nil {
		t.Fatalf("Lookup(%+v): %v", *req, err)
	}
	if res == nil {
		t.Fatal("Lookup returned nil without an error")
	}
	return res
}

// afterAction is how the orchestrator learns the outcome of a completed
// buyer action: Provider.Lookup, or, for providers without one, the
// provider's own record (Fixture.State), which a webhook would report.
func (s *suite) afterAction(t *testing.T, req *paymux.LookupRequest) *paymux.ProviderPayment {
	t.Helper()
	if s.Caps.NoLookup {
		return s.state(t, req)
	}
	return s.lookup(t, req)
}

// state is the provider's record of a payment, for the suite's own checks of
// what an operation did: Fixture.State when set, else Provider.Lookup. With
// neither (Caps.NoLookup without Fixture.State) the subtest skips here,
// after everything before it was checked.
func (s *suite) state(t *testing.T, req *paymux.LookupRequest) *paymux.ProviderPayment {
	t.Helper()
	switch {
	case s.State != nil:
		res, err := s.State(s.ctx, req)
		if err != nil {
			t.Fatalf("Fixture.State(%+v): %v", *req, err)
		}
		if res == nil {
			t.Fatal("Fixture.State returned nil without an error")
		}
		return res
	case s.Caps.NoLookup:
		t.Skip("no view of the provider's state (Caps.NoLookup without Fixture.State)")
		return nil
	}
	return s.lookup(t, req)
}

// stateAmount checks an amount from state. Fixture.State is the fake's
// ledger, which always knows its amounts, so 0 is checked too; a Lookup may
// leave an amount unreported (0).
func (s *suite) stateAmount(t *testing.T, what string, got, want int64) {
	t.Helper()
	if s.State != nil {
		if got != want {
			t.Errorf("%s = %d, want %d", what, got, want)
		}
		return
	}
	amountIs(t, what, got, want)
}

// refused checks the answer to a capture, refund or void that must not
// happen. A synchronous provider refuses it with InvalidRequest or Conflict.
// Under Caps.AsyncModifications the provider may answer "received" and
// refuse it later by webhook, so no error is accepted; the caller then
// checks through state that no money moved, which it does in either case.
func (s *suite) refused(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil && s.Caps.AsyncModifications {
		t.Logf("%s accepted for asynchronous processing; checking the provider's state instead", what)
		return
	}
	if err == nil {
		t.Fatalf("%s succeeded", what)
	}
	s.providerError(t, err, paymux.KindInvalidRequest, paymux.KindConflict)
}

func (s *suite) charges(t *testing.T, paymentKey string, want int) {
	t.Helper()
	if s.Charges == nil {
		return
	}
	if got := s.Charges(paymentKey); got != want {
		t.Fatalf("charges at the fake for %s: %d, want %d", paymentKey, got, want)
	}
}

// amountIs checks an amount the provider reported; 0 means "not reported".
func amountIs(t *testing.T, what string, got, want int64) {
	t.Helper()
	if got != 0 && got != want {
		t.Errorf("%s = %d, want %d", what, got, want)
	}
}

// providerError checks that err is a *paymux.ProviderError of kind from this
// provider, matching the kind's sentinel.
func (s *suite) providerError(t *testing.T, err error, kinds ...paymux.Kind) *paymux.ProviderError {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want kind %v", kinds)
	}
	var pe *paymux.ProviderError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *paymux.ProviderError", err, err)
	}
	if pe.Provider != s.name {
		t.Errorf("ProviderError.Provider = %q, want %q", pe.Provider, s.name)
	}
	for _, k := range kinds {
		if pe.Kind == k {
			return pe
		}
	}
	t.Fatalf("error kind %s (%v), want one of %v", pe.Kind, err, kinds)
	return nil
}

func (s *suite) needManual(t *testing.T) {
	t.Helper()
	if !s.Caps.ManualCapture {
		t.Skip("no manual capture (Caps.ManualCapture)")
	}
}

func (s *suite) needFaults(t *testing.T) {
	t.Helper()
	if s.Faults == nil {
		t.Skip("no fault injection (Fixture.Faults)")
	}
}

// --- Authorize ----------------------------------------------------------------

func testAuthorizeAutomatic(t *testing.T, s *suite) {
	req := s.request(t, s.Approve, paymux.CaptureAutomatic)
	res := s.authorizeOK(t, req)
	amountIs(t, "Captured", res.Captured, s.amount)
	if res.Amount.Amount != 0 && res.Amount != req.Amount {
		t.Errorf("Amount = %v, want %v", res.Amount, req.Amount)
	}
	s.charges(t, req.PaymentKey, 1)
}

func testAuthorizeManual(t *testing.T, s *suite) {
	s.needManual(t)
	req := s.request(t, s.Approve, paymux.CaptureManual)
	res := s.authorizeOK(t, req)
	amountIs(t, "Authorized", res.Authorized, s.amount)
	if res.Captured != 0 {
		t.Errorf("Captured = %d after a manual-capture authorisation", res.Captured)
	}
	s.charges(t, req.PaymentKey, 1)
}

func (s *suite) declined(t *testing.T, m paymux.PaymentMethod, kind paymux.Kind, sentinel error) *paymux.ProviderError {
	t.Helper()
	req := s.request(t, m, paymux.CaptureAutomatic)
	res, err := s.Provider.Authorize(s.ctx, req)
	if err == nil && res != nil && res.Status == paymux.StatusRequiresAction && s.Caps.RequiresApproval && s.CompleteAction != nil {
		// The decline comes when the approved order is confirmed.
		if cerr := s.CompleteAction(s.ctx, res.Reference); cerr != nil {
			err = cerr
		} else {
			_, err = s.Provider.Lookup(s.ctx, &paymux.LookupRequest{Reference: res.Reference, PaymentKey: req.PaymentKey})
		}
	}
	pe := s.providerError(t, err, kind)
	if !errors.Is(err, paymux.ErrDeclined) || !errors.Is(err, sentinel) {
		t.Errorf("errors.Is(err, ErrDeclined / %v) is false for %v", sentinel, err)
	}
	s.charges(t, req.PaymentKey, 0)
	return pe
}

func testHardDecline(t *testing.T, s *suite) {
	s.declined(t, s.HardDecline, paymux.KindHardDecline, paymux.ErrHardDecline)
}

func testSoftDecline(t *testing.T, s *suite) {
	pe := s.declined(t, s.SoftDecline, paymux.KindSoftDecline, paymux.ErrSoftDecline)
	if c, ok := s.classify(pe); ok {
		t.Logf("soft decline %s/%s: decision %s", pe.Code, pe.DeclineCode, c.Decision)
	}
}

func testInsufficientFunds(t *testing.T, s *suite) {
	if s.InsufficientFunds.Token == "" {
		t.Skip("no insufficient-funds test value (Fixture.InsufficientFunds)")
	}
	pe := s.declined(t, s.InsufficientFunds, paymux.KindSoftDecline, paymux.ErrSoftDecline)
	// Another acquirer will not find the money: the table must not cascade.
	if c, ok := s.classify(pe); ok && c.Decision == paymux.DecisionFailover {
		t.Errorf("decision table cascades on insufficient funds (%s/%s)", pe.Code, pe.DeclineCode)
	}
}

// classify looks the error's codes up in the provider's decision table the
// way the orchestrator does: Code first, then DeclineCode.
func (s *suite) classify(pe *paymux.ProviderError) (paymux.Classification, bool) {
	dt, ok := s.Provider.(paymux.DecisionTabler)
	if !ok {
		return paymux.Classification{}, false
	}
	table := dt.DecisionTable()
	for _, code := range []string{pe.Code, pe.DeclineCode} {
		if c, ok := table.Lookup(s.name, pe.Operation, code); ok {
			return c, true
		}
	}
	return paymux.Classification{}, false
}

func testThreeDS(t *testing.T, s *suite) {
	if s.ThreeDS.Token == "" {
		t.Skip("no 3-D Secure test value (Fixture.ThreeDS)")
	}
	req := s.request(t, s.ThreeDS, paymux.CaptureAutomatic)
	res, err := s.Provider.Authorize(s.ctx, req)
	if err != nil {
		t.Fatalf("Authorize(3-D Secure): %v", err)
	}
	if res.Status != paymux.StatusRequiresAction {
		t.Fatalf("status %s, want %s", res.Status, paymux.StatusRequiresAction)
	}
	if res.NextAction == nil || res.NextAction.RedirectURL == "" {
		t.Fatalf("requires_action without a NextAction redirect: %+v", res.NextAction)
	}
	if res.Reference == "" {
		t.Fatal("requires_action without a reference")
	}
	s.charges(t, req.PaymentKey, 0)
	if s.CompleteAction == nil {
		return
	}
	if err := s.CompleteAction(s.ctx, res.Reference); err != nil {
		t.Fatalf("CompleteAction: %v", err)
	}
	got := s.afterAction(t, &paymux.LookupRequest{Reference: res.Reference, PaymentKey: req.PaymentKey, Amount: req.Amount})
	if got.Status != paymux.StatusCaptured {
		t.Fatalf("after CompleteAction: status %s, want %s", got.Status, paymux.StatusCaptured)
	}
	s.charges(t, req.PaymentKey, 1)
}

// --- Capture --------------------------------------------------------------------

func (s *suite) authorized(t *testing.T) (*paymux.AuthorizeRequest, *paymux.ProviderPayment) {
	t.Helper()
	s.needManual(t)
	req := s.request(t, s.Approve, paymux.CaptureManual)
	return req, s.authorizeOK(t, req)
}

func (s *suite) capture(req *paymux.AuthorizeRequest, ref string, n int, amount int64, final bool) (*paymux.ProviderPayment, error) {
	return s.Provider.Capture(s.ctx, &paymux.CaptureRequest{
		PaymentID: req.PaymentID, Reference: ref, ProviderKey: s.opKey(req, paymux.OpCapture, n),
		Amount: s.money(amount), Final: final,
	})
}

func testCaptureFull(t *testing.T, s *suite) {
	req, auth := s.authorized(t)
	res, err := s.capture(req, auth.Reference, 1, s.amount, true)
	if err != nil {
		t.Fatalf("Capture: %v", err)
	}
	if res.Status != paymux.StatusCaptured {
		t.Fatalf("status %s, want captured", res.Status)
	}
	amountIs(t, "Captured", res.Captured, s.amount)
	got := s.state(t, &paymux.LookupRequest{Reference: auth.Reference})
	if got.Status != paymux.StatusCaptured {
		t.Fatalf("state after capture: status %s", got.Status)
	}
	s.stateAmount(t, "state Captured", got.Captured, s.amount)
	s.charges(t, req.PaymentKey, 1)
}

func testCapturePartial(t *testing.T, s *suite) {
	if !s.Caps.PartialCapture {
		t.Skip("no partial capture (Caps.PartialCapture)")
	}
	req, auth := s.authorized(t)
	part := s.amount / 2
	res, err := s.capture(req, auth.Reference, 1, part, true)
	if err != nil {
		t.Fatalf("Capture(%d of %d): %v", part, s.amount, err)
	}
	if res.Status != paymux.StatusCaptured {
		t.Fatalf("status %s, want captured", res.Status)
	}
	amountIs(t, "Captured", res.Captured, part)
	got := s.state(t, &paymux.LookupRequest{Reference: auth.Reference})
	s.stateAmount(t, "state Captured", got.Captured, part)
}

func testCaptureOverAmount(t *testing.T, s *suite) {
	req, auth := s.authorized(t)
	_, err := s.capture(req, auth.Reference, 1, s.amount+1, true)
	s.refused(t, fmt.Sprintf("Capture of %d on an authorisation of %d", s.amount+1, s.amount), err)
	got := s.state(t, &paymux.LookupRequest{Reference: auth.Reference})
	if got.Status != paymux.StatusAuthorized || got.Captured != 0 {
		t.Fatalf("after a refused capture: status %s, captured %d", got.Status, got.Captured)
	}
}

func testCaptureAfterVoid(t *testing.T, s *suite) {
	if !s.Caps.Void {
		t.Skip("no void (Caps.Void)")
	}
	req, auth := s.authorized(t)
	if _, err := s.Provider.Void(s.ctx, &paymux.VoidRequest{PaymentID: req.PaymentID, Reference: auth.Reference, ProviderKey: s.opKey(req, paymux.OpVoid, 1)}); err != nil {
		t.Fatalf("Void: %v", err)
	}
	_, err := s.capture(req, auth.Reference, 1, s.amount, true)
	s.refused(t, "Capture after Void", err)
	got := s.state(t, &paymux.LookupRequest{Reference: auth.Reference})
	if got.Status != paymux.StatusVoided || got.Captured != 0 {
		t.Fatalf("after a capture of a voided authorisation: status %s, captured %d", got.Status, got.Captured)
	}
	s.charges(t, req.PaymentKey, 1)
}

func testCaptureIdempotent(t *testing.T, s *suite) {
	if !s.Caps.IdempotentKeys {
		t.Skip("provider does not de-duplicate by key (Caps.IdempotentKeys)")
	}
	req, auth := s.authorized(t)
	part := s.amount
	if s.Caps.PartialCapture {
		// A partial amount makes a double capture visible.
		part = s.amount / 2
	}
	first, err := s.capture(req, auth.Reference, 1, part, false)
	if err != nil {
		t.Fatalf("Capture: %v", err)
	}
	second, err := s.capture(req, auth.Reference, 1, part, false)
	if err != nil {
		t.Fatalf("Capture retried with the same key: %v", err)
	}
	amountIs(t, "Captured (replay)", second.Captured, first.Captured)
	got := s.state(t, &paymux.LookupRequest{Reference: auth.Reference})
	s.stateAmount(t, "Captured after a retried capture", got.Captured, part)
}

// --- Refund -----------------------------------------------------------------------

func (s *suite) captured(t *testing.T) (*paymux.AuthorizeRequest, *paymux.ProviderPayment) {
	t.Helper()
	req := s.request(t, s.Approve, paymux.CaptureAutomatic)
	return req, s.authorizeOK(t, req)
}

func (s *suite) refund(req *paymux.AuthorizeRequest, ref string, n int, amount int64) (*paymux.ProviderPayment, error) {
	return s.Provider.Refund(s.ctx, &paymux.RefundRequest{
		PaymentID: req.PaymentID, Reference: ref, ProviderKey: s.opKey(req, paymux.OpRefund, n),
		Amount: s.money(amount), Reason: "requested_by_customer",
	})
}

func testRefundFull(t *testing.T, s *suite) {
	req, pay := s.captured(t)
	res, err := s.refund(req, pay.Reference, 1, s.amount)
	if err != nil {
		t.Fatalf("Refund: %v", err)
	}
	amountIs(t, "Refunded", res.Refunded, s.amount)
	if res.Status != paymux.StatusRefunded && res.Refunded != s.amount {
		t.Fatalf("after a full refund: status %s, refunded %d", res.Status, res.Refunded)
	}
	got := s.state(t, &paymux.LookupRequest{Reference: pay.Reference})
	s.stateAmount(t, "state Refunded after a full refund", got.Refunded, s.amount)
}

func testRefundPartial(t *testing.T, s *suite) {
	if !s.Caps.PartialRefund {
		t.Skip("no partial refund (Caps.PartialRefund)")
	}
	req, pay := s.captured(t)
	part := s.amount / 4
	res, err := s.refund(req, pay.Reference, 1, part)
	if err != nil {
		t.Fatalf("Refund(%d of %d): %v", part, s.amount, err)
	}
	amountIs(t, "Refunded", res.Refunded, part)
	if res.Status != paymux.StatusCaptured && res.Status != paymux.StatusRefunded {
		t.Fatalf("after a partial refund: status %s", res.Status)
	}
}

func testRefundMultiple(t *testing.T, s *suite) {
	if !s.Caps.PartialRefund || !s.Caps.MultipleRefund {
		t.Skip("no multiple partial refunds (Caps.PartialRefund, Caps.MultipleRefund)")
	}
	req, pay := s.captured(t)
	a, b := s.amount/4, s.amount/2
	if _, err := s.refund(req, pay.Reference, 1, a); err != nil {
		t.Fatalf("first refund: %v", err)
	}
	res, err := s.refund(req, pay.Reference, 2, b)
	if err != nil {
		t.Fatalf("second refund: %v", err)
	}
	amountIs(t, "Refunded after two refunds", res.Refunded, a+b)
	// More than what is left must be refused, and change nothing.
	left := s.amount - a - b
	_, err = s.refund(req, pay.Reference, 3, left+1)
	s.refused(t, fmt.Sprintf("Refund of %d with %d left", left+1, left), err)
	got := s.state(t, &paymux.LookupRequest{Reference: pay.Reference})
	s.stateAmount(t, "Refunded after a refused refund", got.Refunded, a+b)
	res, err = s.refund(req, pay.Reference, 4, left)
	if err != nil {
		t.Fatalf("refund of the rest: %v", err)
	}
	amountIs(t, "Refunded after refunding everything", res.Refunded, s.amount)
	got = s.state(t, &paymux.LookupRequest{Reference: pay.Reference})
	s.stateAmount(t, "state Refunded after refunding everything", got.Refunded, s.amount)
}

func testRefundOverAmount(t *testing.T, s *suite) {
	req, pay := s.captured(t)
	_, err := s.refund(req, pay.Reference, 1, s.amount+1)
	s.refused(t, fmt.Sprintf("Refund of %d of a payment of %d", s.amount+1, s.amount), err)
	got := s.state(t, &paymux.LookupRequest{Reference: pay.Reference})
	if got.Refunded != 0 {
		t.Fatalf("Refunded = %d after a refused refund", got.Refunded)
	}
}

func testRefundIdempotent(t *testing.T, s *suite) {
	if !s.Caps.IdempotentKeys || !s.Caps.PartialRefund {
		t.Skip("needs Caps.IdempotentKeys and Caps.PartialRefund")
	}
	req, pay := s.captured(t)
	part := s.amount / 4
	for i := 0; i < 2; i++ {
		if _, err := s.refund(req, pay.Reference, 1, part); err != nil {
			t.Fatalf("refund try %d with the same key: %v", i+1, err)
		}
	}
	got := s.state(t, &paymux.LookupRequest{Reference: pay.Reference})
	s.stateAmount(t, "Refunded after a retried refund", got.Refunded, part)
}

// --- Void ---------------------------------------------------------------------------

func testVoid(t *testing.T, s *suite) {
	if !s.Caps.Void {
		t.Skip("no void (Caps.Void)")
	}
	req, auth := s.authorized(t)
	res, err := s.Provider.Void(s.ctx, &paymux.VoidRequest{PaymentID: req.PaymentID, Reference: auth.Reference, ProviderKey: s.opKey(req, paymux.OpVoid, 1)})
	if err != nil {
		t.Fatalf("Void: %v", err)
	}
	if res.Status != paymux.StatusVoided {
		t.Fatalf("status %s, want voided", res.Status)
	}
	got := s.state(t, &paymux.LookupRequest{Reference: auth.Reference})
	if got.Status != paymux.StatusVoided {
		t.Fatalf("state after void: status %s", got.Status)
	}
}

// --- Lookup ---------------------------------------------------------------------------

// unimplemented reports whether err is the honest answer of a provider
// without a lookup (Caps.NoLookup): KindUnimplemented. Anything else from
// such a provider is checked like any Lookup answer; above all it must
// not be NotFound for a payment that exists, which would let paymux charge
// the buyer again elsewhere.
func (s *suite) unimplemented(t *testing.T, err error) bool {
	t.Helper()
	if !s.Caps.NoLookup || paymux.KindOf(err) != paymux.KindUnimplemented {
		return false
	}
	s.providerError(t, err, paymux.KindUnimplemented)
	if !errors.Is(err, paymux.ErrUnimplemented) {
		t.Errorf("errors.Is(err, ErrUnimplemented) is false for %v", err)
	}
	return true
}

func testLookupByReference(t *testing.T, s *suite) {
	req, pay := s.captured(t)
	lreq := &paymux.LookupRequest{PaymentID: req.PaymentID, Reference: pay.Reference}
	if s.Caps.NoLookup {
		if _, err := s.Provider.Lookup(s.ctx, lreq); s.unimplemented(t, err) {
			t.Logf("Lookup answers %s (Caps.NoLookup)", paymux.KindUnimplemented)
			return
		}
	}
	got := s.lookup(t, lreq)
	if got.Reference != pay.Reference || got.Status != paymux.StatusCaptured {
		t.Fatalf("Lookup: reference %q status %s, want %q captured", got.Reference, got.Status, pay.Reference)
	}
	amountIs(t, "Captured", got.Captured, s.amount)
}

func testLookupByProviderKey(t *testing.T, s *suite) {
	if !s.Caps.LookupByKey {
		t.Skip("no lookup by key (Caps.LookupByKey)")
	}
	req, pay := s.captured(t)
	got := s.lookup(t, &paymux.LookupRequest{PaymentID: req.PaymentID, ProviderKey: req.ProviderKey, Amount: req.Amount})
	if got.Reference != pay.Reference {
		t.Fatalf("Lookup by provider key: reference %q, want %q", got.Reference, pay.Reference)
	}
}

func testLookupByPaymentKey(t *testing.T, s *suite) {
	if !s.Caps.LookupByKey {
		t.Skip("no lookup by key (Caps.LookupByKey)")
	}
	req, pay := s.captured(t)
	got := s.lookup(t, &paymux.LookupRequest{PaymentID: req.PaymentID, PaymentKey: req.PaymentKey, Amount: req.Amount})
	if got.Reference != pay.Reference {
		t.Fatalf("Lookup by payment key: reference %q, want %q", got.Reference, pay.Reference)
	}
}

func testLookupNotFound(t *testing.T, s *suite) {
	ref := s.UnknownReference
	if ref == "" {
		ref = "does_not_exist_0000"
	}
	_, err := s.Provider.Lookup(s.ctx, &paymux.LookupRequest{Reference: ref})
	if s.unimplemented(t, err) {
		return
	}
	s.providerError(t, err, paymux.KindNotFound)
	if !errors.Is(err, paymux.ErrNotFound) {
		t.Errorf("errors.Is(err, ErrNotFound) is false for %v", err)
	}
	if s.Caps.LookupByKey {
		_, err := s.Provider.Lookup(s.ctx, &paymux.LookupRequest{ProviderKey: s.prefix + "no-such-key", PaymentKey: s.prefix + "no-such-payment"})
		s.providerError(t, err, paymux.KindNotFound)
	}
}

// --- Idempotency -----------------------------------------------------------------------

func (s *suite) needIdempotentKeys(t *testing.T) {
	t.Helper()
	if !s.Caps.IdempotentKeys {
		t.Skip("provider does not de-duplicate by key (Caps.IdempotentKeys)")
	}
}

func testSameKeyChargesOnce(t *testing.T, s *suite) {
	s.needIdempotentKeys(t)
	req := s.request(t, s.Approve, paymux.CaptureAutomatic)
	first := s.authorizeOK(t, req)
	again, err := s.Provider.Authorize(s.ctx, req)
	if err != nil {
		t.Fatalf("retry with the same provider key: %v", err)
	}
	if again.Reference != first.Reference {
		t.Fatalf("retry made a second payment: %q, then %q", first.Reference, again.Reference)
	}
	s.charges(t, req.PaymentKey, 1)
}

func testConcurrentSameKey(t *testing.T, s *suite) {
	s.needIdempotentKeys(t)
	if s.Caps.RequiresApproval {
		t.Skip("approval flow: covered by SameKeyChargesOnce")
	}
	req := s.request(t, s.Approve, paymux.CaptureAutomatic)
	const n = 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		refs = map[string]bool{}
		errs []error
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := *req
			res, err := s.Provider.Authorize(s.ctx, &r)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			refs[res.Reference] = true
		}()
	}
	wg.Wait()
	for _, err := range errs {
		// A provider may refuse a concurrent duplicate but must never
		// process it. Stripe answers 409 idempotency_key_in_use, which
		// adapters may read as OutcomeUnknown (the request holding the key
		// may still charge); the charge count below is what proves that
		// the duplicate itself moved no money.
		switch k := paymux.KindOf(err); k {
		case paymux.KindConflict, paymux.KindRateLimited, paymux.KindOutcomeUnknown:
		default:
			t.Errorf("concurrent duplicate: %v (kind %s)", err, k)
		}
	}
	if len(refs) != 1 {
		t.Fatalf("%d concurrent calls with one key made %d payments", n, len(refs))
	}
	s.charges(t, req.PaymentKey, 1)
	// A refused duplicate is retried with the same key: that retry must
	// find the one payment, not make another.
	again, err := s.Provider.Authorize(s.ctx, req)
	if err != nil {
		t.Fatalf("retry after the concurrent calls: %v", err)
	}
	if !refs[again.Reference] {
		t.Fatalf("retry after the concurrent calls made payment %q, not one of %v", again.Reference, refs)
	}
	s.charges(t, req.PaymentKey, 1)
}

func testDifferentParams(t *testing.T, s *suite) {
	s.needIdempotentKeys(t)
	req := s.request(t, s.Approve, paymux.CaptureAutomatic)
	first := s.authorizeOK(t, req)
	changed := *req
	changed.Amount = s.money(s.amount + 100)
	res, err := s.Provider.Authorize(s.ctx, &changed)
	switch {
	case s.Caps.IdempotencyConflict:
		s.providerError(t, err, paymux.KindConflict)
	case err == nil && res.Reference != first.Reference:
		t.Fatalf("same key, different amount: a second payment %q", res.Reference)
	}
	s.charges(t, req.PaymentKey, 1)
}

// --- Faults ---------------------------------------------------------------------------------

func testOutage(t *testing.T, s *suite) {
	s.needFaults(t)
	req := s.request(t, s.Approve, paymux.CaptureAutomatic)
	s.Faults.Set(FaultPlan{Outage: true})
	_, err := s.Provider.Authorize(s.ctx, req)
	s.providerError(t, err, paymux.KindUnavailable)
	if !errors.Is(err, paymux.ErrUnavailable) {
		t.Errorf("errors.Is(err, ErrUnavailable) is false for %v", err)
	}
	s.charges(t, req.PaymentKey, 0)
	s.Faults.Set(FaultPlan{})
	if s.Caps.LookupByKey {
		// Unavailable promises that nothing was processed.
		_, err := s.Provider.Lookup(s.ctx, &paymux.LookupRequest{ProviderKey: req.ProviderKey, PaymentKey: req.PaymentKey})
		s.providerError(t, err, paymux.KindNotFound)
	}
	// The same attempt after the outage goes through, once.
	s.authorizeOK(t, req)
	s.charges(t, req.PaymentKey, 1)
}

func testRateLimit(t *testing.T, s *suite) {
	s.needFaults(t)
	req := s.request(t, s.Approve, paymux.CaptureAutomatic)
	s.Faults.Set(FaultPlan{RateLimit: true})
	_, err := s.Provider.Authorize(s.ctx, req)
	s.Faults.Set(FaultPlan{})
	s.providerError(t, err, paymux.KindRateLimited)
	s.charges(t, req.PaymentKey, 0)
}

// testServerError: a 5xx of unknown effect must read as OutcomeUnknown, never
// Unavailable, even though this fake did not process it: the adapter cannot
// know that, and guessing wrong would let paymux charge elsewhere too.
func testServerError(t *testing.T, s *suite) {
	s.needFaults(t)
	req := s.request(t, s.Approve, paymux.CaptureAutomatic)
	s.Faults.Set(FaultPlan{ServerErrorRate: 1})
	_, err := s.Provider.Authorize(s.ctx, req)
	s.Faults.Set(FaultPlan{})
	s.providerError(t, err, paymux.KindOutcomeUnknown)
	s.charges(t, req.PaymentKey, 0)
}

// testTimeoutAfterCommit is the basis of invariant 2: the provider processed
// the request but the answer was lost, so the adapter must say
// OutcomeUnknown (never Unavailable), and Lookup must then find the charge.
func testTimeoutAfterCommit(t *testing.T, s *suite) {
	s.needFaults(t)
	if s.Caps.RequiresApproval {
		t.Skip("approval flow: the authorisation call moves no money")
	}
	req := s.request(t, s.Approve, paymux.CaptureAutomatic)
	s.Faults.Set(FaultPlan{TimeoutAfterCommitNext: 1})
	_, err := s.Provider.Authorize(s.ctx, req)
	s.Faults.Set(FaultPlan{})
	s.providerError(t, err, paymux.KindOutcomeUnknown)
	if !errors.Is(err, paymux.ErrOutcomeUnknown) {
		t.Errorf("errors.Is(err, ErrOutcomeUnknown) is false for %v", err)
	}
	s.charges(t, req.PaymentKey, 1)
	var ref string
	if s.Caps.LookupByKey {
		got := s.lookup(t, &paymux.LookupRequest{PaymentID: req.PaymentID, ProviderKey: req.ProviderKey, PaymentKey: req.PaymentKey, Amount: req.Amount})
		if got.Status != paymux.StatusCaptured {
			t.Fatalf("Lookup after time-out-after-commit: status %s, want captured", got.Status)
		}
		ref = got.Reference
	}
	if s.Caps.IdempotentKeys {
		res, err := s.Provider.Authorize(s.ctx, req)
		if err != nil {
			t.Fatalf("retry of the timed-out attempt: %v", err)
		}
		if ref != "" && res.Reference != ref {
			t.Fatalf("retry gave reference %q, Lookup %q", res.Reference, ref)
		}
		s.charges(t, req.PaymentKey, 1)
	}
}

// --- Webhooks ------------------------------------------------------------------------------------

func (s *suite) webhook(t *testing.T) (paymux.WebhookParser, WebhookEvent) {
	t.Helper()
	if s.SignWebhook == nil {
		t.Skip("no webhooks (Fixture.SignWebhook)")
	}
	wp, ok := s.Provider.(paymux.WebhookParser)
	if !ok {
		t.Fatal("Fixture.SignWebhook is set but the provider is not a paymux.WebhookParser")
	}
	req, pay := s.captured(t)
	return wp, WebhookEvent{
		ID: "evt_" + strings.TrimSuffix(s.prefix, "-"), Type: paymux.EventCaptured,
		ProviderRef: pay.Reference, PaymentKey: req.PaymentKey, Amount: req.Amount,
	}
}

func webhookErr(t *testing.T, err error, allowed ...error) {
	t.Helper()
	if err == nil {
		t.Fatal("ParseWebhook accepted it")
	}
	for _, a := range allowed {
		if errors.Is(err, a) {
			return
		}
	}
	t.Fatalf("ParseWebhook error %v wraps none of %v", err, allowed)
}

func testWebhookRoundTrip(t *testing.T, s *suite) {
	wp, ev := s.webhook(t)
	header, body := s.SignWebhook(t, ev)
	events, err := wp.ParseWebhook(s.ctx, header, body)
	if err != nil {
		t.Fatalf("ParseWebhook of a signed webhook: %v", err)
	}
	check := func(got paymux.Event) {
		t.Helper()
		if got.Type != ev.Type || got.ProviderRef != ev.ProviderRef {
			t.Fatalf("event %+v, want type %s reference %s", got, ev.Type, ev.ProviderRef)
		}
		if got.Provider != "" && got.Provider != s.name {
			t.Errorf("event provider %q, want %q", got.Provider, s.name)
		}
		amountIs(t, "event amount", got.Amount.Amount, ev.Amount.Amount)
	}
	for _, got := range events {
		if got.ID == ev.ID {
			check(got)
			return
		}
	}
	if !s.Caps.DerivedEventIDs {
		t.Fatalf("no event with id %q among %+v", ev.ID, events)
	}
	// The notification has no event id to carry ev.ID: the adapter derives
	// one, and paymux de-duplicates by it, so it must be there and must
	// not change when the same body is delivered again.
	var match []paymux.Event
	for _, got := range events {
		if got.Type == ev.Type && got.ProviderRef == ev.ProviderRef {
			match = append(match, got)
		}
	}
	if len(match) != 1 {
		t.Fatalf("%d events of type %s for reference %q among %+v, want 1", len(match), ev.Type, ev.ProviderRef, events)
	}
	got := match[0]
	check(got)
	if got.ID == "" {
		t.Fatalf("event without an id: %+v", got)
	}
	again, err := wp.ParseWebhook(s.ctx, header, body)
	if err != nil {
		t.Fatalf("ParseWebhook of the same webhook again: %v", err)
	}
	for _, e := range again {
		if e.Type == got.Type && e.ProviderRef == got.ProviderRef && e.ID != got.ID {
			t.Fatalf("the same webhook parsed twice gave ids %q and %q: a redelivery would be applied twice", got.ID, e.ID)
		}
	}
}

func testWebhookTampered(t *testing.T, s *suite) {
	wp, ev := s.webhook(t)
	header, body := s.SignWebhook(t, ev)
	tampered := bytes.Clone(body)
	if i := bytes.Index(tampered, []byte(ev.ProviderRef)); i >= 0 && len(ev.ProviderRef) > 0 {
		// Point the event at another payment: what an attacker would do.
		last := i + len(ev.ProviderRef) - 1
		tampered[last] ^= 0x01
	} else {
		tampered[len(tampered)/2] ^= 0x01
	}
	_, err := wp.ParseWebhook(s.ctx, header, tampered)
	webhookErr(t, err, paymux.ErrWebhookBadSignature, paymux.ErrWebhookMalformed)
}

// testWebhookUnsigned removes the signature in both ways that exist: through
// Fixture.UnsignedWebhook (a body without its signature, for providers that
// sign inside the body) and by stripping every header but Content-Type from
// a signed request (for providers that sign in a header). It skips only when
// neither removes anything.
func testWebhookUnsigned(t *testing.T, s *suite) {
	wp, ev := s.webhook(t)
	tested := false
	if s.UnsignedWebhook != nil {
		header, body := s.UnsignedWebhook(t, ev)
		_, err := wp.ParseWebhook(s.ctx, header, body)
		// The signature is simply absent, and the adapter can say so.
		webhookErr(t, err, paymux.ErrWebhookNotSigned)
		tested = true
	}
	header, body := s.SignWebhook(t, ev)
	// Keep only headers that carry no signature.
	bare := http.Header{}
	if ct := header.Get("Content-Type"); ct != "" {
		bare.Set("Content-Type", ct)
	}
	if len(header) > len(bare) {
		_, err := wp.ParseWebhook(s.ctx, bare, body)
		if err != nil && !errors.Is(err, paymux.ErrWebhookNotSigned) {
			// A provider that also signs in the body may see a bad
			// signature rather than none; header-signed ones should say
			// "not signed".
			t.Logf("webhook without its headers: %v (ErrWebhookNotSigned expected when the signature is a header)", err)
		}
		webhookErr(t, err, paymux.ErrWebhookNotSigned, paymux.ErrWebhookBadSignature, paymux.ErrWebhookMalformed)
		tested = true
	}
	if !tested {
		t.Skip("SignWebhook signs inside the body and there is no Fixture.UnsignedWebhook to remove it")
	}
}

func testWebhookWrongSecret(t *testing.T, s *suite) {
	if s.SignWebhookWrongSecret == nil {
		t.Skip("no Fixture.SignWebhookWrongSecret")
	}
	wp, ev := s.webhook(t)
	header, body := s.SignWebhookWrongSecret(t, ev)
	_, err := wp.ParseWebhook(s.ctx, header, body)
	webhookErr(t, err, paymux.ErrWebhookBadSignature)
}

func testWebhookTooOld(t *testing.T, s *suite) {
	if !s.Caps.WebhookTimestamps {
		t.Skip("no signed timestamps (Caps.WebhookTimestamps)")
	}
	wp, ev := s.webhook(t)
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	ev.At = now().Add(-time.Hour)
	header, body := s.SignWebhook(t, ev)
	_, err := wp.ParseWebhook(s.ctx, header, body)
	webhookErr(t, err, paymux.ErrWebhookTooOld)
}
