// Package sim is an in-process, stateful simulated payment provider. It
// implements paymux.Provider, paymux.WebhookParser and paymux.DecisionTabler
// without any network, so that the orchestrator's own tests, the examples and
// demos run offline, and so that several instances ("sim-a", "sim-b") can
// stand in for different providers.
//
// # Test tokens
//
// Like a real provider's test cards, the PaymentMethod token decides what
// happens:
//
//	sim_ok                     approved (captured, or authorized with manual capture)
//	sim_decline_hard           hard decline, decline code stolen_card
//	sim_decline_insufficient   soft decline, insufficient_funds: the decision table says stop (no cascade)
//	sim_decline_soft           soft decline, issuer_unavailable: the decision table says fail over
//	sim_3ds                    requires_action with a redirect; approved at once when ThreeDS is requested
//	sim_3ds_challenge          requires_action with a redirect, even when ThreeDS is requested
//	sim_decline_auth_required  ActionRequired error (authentication_required) unless ThreeDS is requested,
//	                           then requires_action: the orchestrator's step-up path
//	sim_error_<kind>           a ProviderError of that Kind (sim_error_unavailable, sim_error_outcome_unknown, ...),
//	                           returned without processing anything
//
// Any other token that starts with "sim_" is refused as an invalid request;
// any token that does not is approved, so demos can use arbitrary tokens.
// Buyer action is completed with CompleteAction (or refused with FailAction).
//
// # Idempotency
//
// ProviderKey is honoured the way Stripe honours Idempotency-Key: the same key
// with the same parameters replays the first result (success or decline)
// without moving money again; the same key with different parameters is a
// KindConflict error. Requests that were refused before processing (invalid,
// outage, rate limit, not found) leave no record, so a retry with the same key
// is processed normally.
//
// # Faults
//
// Every call consults a *providertest.Faults: outages and rate limits refuse
// before processing (KindUnavailable, KindRateLimited), server errors answer
// KindOutcomeUnknown without processing, and time-out-after-commit processes
// the request and then answers KindOutcomeUnknown. A call whose context ends
// during injected latency is processed too (the provider got the request) and
// answers KindOutcomeUnknown, as a client time-out would.
//
// # Webhooks
//
// With Config.OnEvent set, every state change (authorized, captured, refunded,
// voided, failed, action_required) is sent as a JSON body signed in the
// Sim-Signature header, "t=<unix>,v1=<hex HMAC-SHA256 of t.body>". ParseWebhook
// verifies it with a 5-minute tolerance. Amounts of captured and refunded
// events are the payment's running totals, like Stripe's amount_captured and
// amount_refunded.
package sim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/providertest"
)

// Test tokens. See the package documentation.
const (
	TokenApprove                = "sim_ok"
	TokenHardDecline            = "sim_decline_hard"
	TokenInsufficientFunds      = "sim_decline_insufficient"
	TokenSoftDecline            = "sim_decline_soft"
	TokenThreeDS                = "sim_3ds"
	TokenThreeDSChallenge       = "sim_3ds_challenge"
	TokenAuthenticationRequired = "sim_decline_auth_required"
	// TokenErrorPrefix followed by a Kind's name (paymux.Kind.String) injects
	// that Kind; see TokenError.
	TokenErrorPrefix = "sim_error_"
)

// TokenError returns the token that makes Authorize fail with kind, for
// example TokenError(paymux.KindUnavailable) == "sim_error_unavailable".
func TokenError(kind paymux.Kind) string { return TokenErrorPrefix + kind.String() }

// Error and decline codes the sim returns in ProviderError.Code and
// ProviderError.DeclineCode. DecisionTable classifies them.
const (
	CodeCardDeclined           = "card_declined" // Code of every decline; DeclineCode says why
	DeclineStolenCard          = "stolen_card"
	DeclineInsufficientFunds   = "insufficient_funds"
	DeclineIssuerUnavailable   = "issuer_unavailable"
	DeclineAuthenticationFail  = "authentication_failed" // FailAction
	CodeAuthenticationRequired = "authentication_required"
	CodeIdempotencyConflict    = "idempotency_conflict"
	CodeServiceUnavailable     = "service_unavailable" // outage fault
	CodeRateLimited            = "rate_limited"        // rate-limit fault
	CodeServerError            = "server_error"        // 5xx fault, not processed
	CodeTimeout                = "timeout"             // time-out-after-commit fault, processed
	CodeNotSent                = "request_not_sent"    // context ended before the call
	CodeNotFound               = "resource_missing"
	CodeInvalidState           = "invalid_state"
	CodeAmountTooLarge         = "amount_too_large"
	CodeInvalidAmount          = "invalid_amount"
	CodeInvalidToken           = "invalid_token"
	CodeUnsupported            = "unsupported"
)

// DefaultName is the provider name when Config.Name is empty.
const DefaultName = "sim"

// Config configures a simulated provider. The zero value is usable:
//
//	Name              "sim"
//	Capabilities      zero: every currency, country and method, and every optional feature
//	WebhookSecret     "": webhooks are sent unsigned and ParseWebhook refuses everything
//	WebhookTolerance  5 minutes
//	Clock             time.Now
//	Faults            a fresh *providertest.Faults, reachable with Provider.Faults
//	Latency           none
//	LatencyJitter     none
//	ActionURL         "https://sim.paymux.invalid/3ds/"
//	OnEvent           nil: no webhooks are sent
type Config struct {
	Name          string
	Capabilities  paymux.Capabilities
	WebhookSecret paymux.Secret
	// WebhookTolerance is how far a webhook's signed timestamp may be from
	// the clock.
	WebhookTolerance time.Duration
	Clock            func() time.Time
	// Faults is consulted once per call; share one between sims (and other
	// fakes) to drive them together.
	Faults *providertest.Faults
	// Latency is added to every call, on top of the fault plan's latency.
	Latency time.Duration
	// LatencyJitter adds a uniformly random extra in [0, LatencyJitter).
	LatencyJitter time.Duration
	// ActionURL prefixes the payment reference in NextAction.RedirectURL.
	ActionURL string
	// OnEvent receives every webhook the sim sends, signed, after the state
	// change and outside the sim's lock, on the goroutine of the call that
	// caused it. Do not block in it: hand the webhook to a goroutine that
	// delivers it (and redelivers on a 5xx, as providers do).
	OnEvent func(header http.Header, body []byte)
}

// Provider is a simulated payment provider. It is safe for concurrent use.
type Provider struct {
	cfg    Config
	caps   paymux.Capabilities
	faults *providertest.Faults
	clock  func() time.Time
	// instance makes references unique across sims and restarts, so a
	// persistent store never sees the same reference twice.
	instance string

	mu  sync.Mutex
	seq uint64
	// payments holds every payment, indexed by the number at the end of
	// its reference: cheaper than hashing the reference.
	payments     []*payment
	keys         map[string]*keyRecord // by provider idempotency key
	byPaymentKey map[string]*payment   // the latest payment of each paymux key
	total        int
}

var (
	_ paymux.Provider       = (*Provider)(nil)
	_ paymux.WebhookParser  = (*Provider)(nil)
	_ paymux.DecisionTabler = (*Provider)(nil)
	_ paymux.WebhookHinter  = (*Provider)(nil)
)

// payment is the sim's record of one payment.
type payment struct {
	ref         string
	paymentKey  string
	amount      paymux.Money
	capture     paymux.CaptureMode
	status      paymux.Status
	authorized  int64
	captured    int64
	refunded    int64
	final       bool // no further capture
	declineCode string
	refunds     []paymux.ProviderRefund
	next        *paymux.NextAction
	updated     time.Time
	// charged: this payment moved money (was authorised).
	charged bool
	// prev is the previous payment of the same paymux key.
	prev *payment
	// initStatus, initNext and created are the state Authorize answered
	// with, which a replay of its key answers again.
	initStatus paymux.Status
	initNext   *paymux.NextAction
	created    time.Time
	// auth is the key record of the Authorize call, kept inline so that an
	// authorisation costs one allocation for its state.
	auth keyRecord
}

// fingerprint is the parameters a provider key was first used with.
type fingerprint struct {
	op         paymux.Operation
	ref        string
	token      string
	method     paymux.MethodType
	paymentKey string
	amount     int64
	currency   paymux.Currency
	capture    paymux.CaptureMode
	threeDS    bool
	final      bool
}

// keyRecord is the saved result of the first request with a provider key.
type keyRecord struct {
	fp  fingerprint
	pay *payment
	// snap is the result to replay; nil for an Authorize, whose result is
	// the payment's initial state.
	snap *paymux.ProviderPayment
	err  *paymux.ProviderError
}

// New returns a simulated provider.
func New(cfg Config) *Provider {
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.WebhookTolerance <= 0 {
		cfg.WebhookTolerance = DefaultTolerance
	}
	if cfg.ActionURL == "" {
		cfg.ActionURL = "https://sim.paymux.invalid/3ds/"
	}
	p := &Provider{
		cfg:          cfg,
		caps:         cfg.Capabilities,
		faults:       cfg.Faults,
		clock:        cfg.Clock,
		keys:         make(map[string]*keyRecord),
		byPaymentKey: make(map[string]*payment),
	}
	if capsZero(p.caps) {
		p.caps = paymux.Capabilities{ManualCapture: true, PartialCapture: true, PartialRefund: true, MultipleRefund: true, Void: true}
	}
	if p.faults == nil {
		p.faults = &providertest.Faults{}
	}
	if p.clock == nil {
		p.clock = time.Now
	}
	var b [5]byte
	_, _ = rand.Read(b[:])
	p.instance = hex.EncodeToString(b[:])
	return p
}

func capsZero(c paymux.Capabilities) bool {
	return len(c.Currencies) == 0 && len(c.Countries) == 0 && len(c.Methods) == 0 &&
		!c.ManualCapture && !c.PartialCapture && !c.PartialRefund && !c.MultipleRefund && !c.Void
}

// Name implements paymux.Provider.
func (p *Provider) Name() string { return p.cfg.Name }

// Capabilities implements paymux.Provider.
func (p *Provider) Capabilities() paymux.Capabilities { return p.caps }

// Faults returns the fault plan the sim consults, to inject faults in tests.
func (p *Provider) Faults() *providertest.Faults { return p.faults }

// Charges reports how many payments moved money (were authorised) for the
// paymux key, whatever happened to them later. Invariant tests assert it is
// at most one.
func (p *Provider) Charges(paymentKey string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for pay := p.byPaymentKey[paymentKey]; pay != nil; pay = pay.prev {
		if pay.charged {
			n++
		}
	}
	return n
}

// TotalCharges reports how many payments moved money in all.
func (p *Provider) TotalCharges() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total
}

// DecisionTable implements paymux.DecisionTabler: what each sim code means
// and whether the orchestrator may cascade on it.
func (p *Provider) DecisionTable() paymux.DecisionTable {
	n := p.cfg.Name
	row := func(code string, k paymux.Kind, d paymux.Decision) (paymux.DecisionKey, paymux.Classification) {
		return paymux.DecisionKey{Provider: n, Code: code}, paymux.Classification{Kind: k, Decision: d}
	}
	t := paymux.DecisionTable{}
	for _, r := range []struct {
		code string
		k    paymux.Kind
		d    paymux.Decision
	}{
		{DeclineStolenCard, paymux.KindHardDecline, paymux.DecisionStop},
		// Another acquirer will not find money that is not there.
		{DeclineInsufficientFunds, paymux.KindSoftDecline, paymux.DecisionStop},
		{DeclineIssuerUnavailable, paymux.KindSoftDecline, paymux.DecisionFailover},
		{DeclineAuthenticationFail, paymux.KindHardDecline, paymux.DecisionStop},
		{CodeAuthenticationRequired, paymux.KindActionRequired, paymux.DecisionStepUp},
		{CodeServiceUnavailable, paymux.KindUnavailable, paymux.DecisionFailover},
		{CodeNotSent, paymux.KindUnavailable, paymux.DecisionFailover},
		{CodeRateLimited, paymux.KindRateLimited, paymux.DecisionFailover},
		{CodeServerError, paymux.KindOutcomeUnknown, paymux.DecisionStop},
		{CodeTimeout, paymux.KindOutcomeUnknown, paymux.DecisionStop},
		{CodeIdempotencyConflict, paymux.KindConflict, paymux.DecisionStop},
		{CodeNotFound, paymux.KindNotFound, paymux.DecisionStop},
		{CodeInvalidState, paymux.KindConflict, paymux.DecisionStop},
		{CodeAmountTooLarge, paymux.KindInvalidRequest, paymux.DecisionStop},
		{CodeInvalidAmount, paymux.KindInvalidRequest, paymux.DecisionStop},
		{CodeInvalidToken, paymux.KindInvalidRequest, paymux.DecisionStop},
		{CodeUnsupported, paymux.KindInvalidRequest, paymux.DecisionStop},
	} {
		k, v := row(r.code, r.k, r.d)
		t[k] = v
	}
	return t
}

// --- errors -----------------------------------------------------------------

func (p *Provider) perr(op paymux.Operation, kind paymux.Kind, code string, status int, msg string) *paymux.ProviderError {
	return &paymux.ProviderError{Provider: p.cfg.Name, Operation: op, Kind: kind, Code: code, HTTPStatus: status, Message: msg}
}

func (p *Provider) decline(op paymux.Operation, kind paymux.Kind, declineCode string) *paymux.ProviderError {
	return &paymux.ProviderError{Provider: p.cfg.Name, Operation: op, Kind: kind, Code: CodeCardDeclined, DeclineCode: declineCode, HTTPStatus: 402, Message: "your card was declined"}
}

func (p *Provider) invalid(op paymux.Operation, code, msg string) *paymux.ProviderError {
	return p.perr(op, paymux.KindInvalidRequest, code, 400, msg)
}

func (p *Provider) notFound(op paymux.Operation) *paymux.ProviderError {
	return p.perr(op, paymux.KindNotFound, CodeNotFound, 404, "no such payment")
}

func (p *Provider) badState(op paymux.Operation, st paymux.Status) *paymux.ProviderError {
	return p.perr(op, paymux.KindConflict, CodeInvalidState, 409, "payment is "+string(st))
}

var kindStatus = map[paymux.Kind]int{
	paymux.KindInvalidRequest: 400, paymux.KindAuthentication: 401, paymux.KindHardDecline: 402,
	paymux.KindSoftDecline: 402, paymux.KindActionRequired: 402, paymux.KindRateLimited: 429,
	paymux.KindUnavailable: 503, paymux.KindOutcomeUnknown: 500, paymux.KindNotFound: 404,
	paymux.KindConflict: 409, paymux.KindUnimplemented: 501,
}

// --- the call frame ----------------------------------------------------------

// events holds the webhooks one call causes (at most two: authorized and
// captured), by value so that the hot path does not allocate for them.
type events struct {
	n  int
	ev [2]eventData
}

type eventData struct {
	typ     paymux.EventType
	ref     string
	key     string
	amount  paymux.Money
	success bool
	code    string
	status  paymux.Status
}

func (e *events) add(typ paymux.EventType, pay *payment, amount int64, success bool, code string) {
	if e.n < len(e.ev) {
		e.ev[e.n] = eventData{typ: typ, ref: pay.ref, key: pay.paymentKey, amount: paymux.Money{Amount: amount, Currency: pay.amount.Currency}, success: success, code: code, status: pay.status}
		e.n++
	}
}

// call runs one mutating operation: faults, latency, then fn under the lock,
// then the webhooks outside it. fn returns the result to give the caller
// (which is also what a replay of its key gives).
//
// The events come back by value: a pointer passed into fn would escape and
// cost an allocation per call.
func (p *Provider) call(ctx context.Context, op paymux.Operation, fn func(now time.Time) (*paymux.ProviderPayment, *paymux.ProviderError, events)) (*paymux.ProviderPayment, error) {
	if err := ctx.Err(); err != nil {
		// Nothing was sent: certainly not processed.
		return nil, &paymux.ProviderError{Provider: p.cfg.Name, Operation: op, Kind: paymux.KindUnavailable, Code: CodeNotSent, Message: "context ended before the request was sent", Err: err}
	}
	fault, lat := p.faults.Next(true)
	switch fault {
	case providertest.FaultOutage:
		return nil, p.perr(op, paymux.KindUnavailable, CodeServiceUnavailable, 503, "service unavailable; the request was not processed")
	case providertest.FaultRateLimit:
		return nil, p.perr(op, paymux.KindRateLimited, CodeRateLimited, 429, "too many requests")
	case providertest.FaultServerError:
		// The sim did not process it, but a client cannot know that.
		return nil, p.perr(op, paymux.KindOutcomeUnknown, CodeServerError, 500, "internal server error")
	}
	timedOut := p.wait(ctx, lat+p.latency())
	p.mu.Lock()
	res, perr, ev := fn(p.clock())
	p.mu.Unlock()
	p.emit(&ev)
	if fault == providertest.FaultTimeoutAfterCommit || timedOut {
		var cause error
		if timedOut {
			cause = ctx.Err()
		}
		return nil, &paymux.ProviderError{Provider: p.cfg.Name, Operation: op, Kind: paymux.KindOutcomeUnknown, Code: CodeTimeout, Message: "timed out waiting for the response", Err: cause}
	}
	if perr != nil {
		return nil, perr
	}
	return res, nil
}

// withEvents adapts a call body that adds events through a pointer. Only the
// follow-up calls use it; the pointer escapes, which they can afford.
func withEvents(fn func(now time.Time, ev *events) (*paymux.ProviderPayment, *paymux.ProviderError)) func(time.Time) (*paymux.ProviderPayment, *paymux.ProviderError, events) {
	return func(now time.Time) (*paymux.ProviderPayment, *paymux.ProviderError, events) {
		var ev events
		res, err := fn(now, &ev)
		return res, err, ev
	}
}

func (p *Provider) latency() time.Duration {
	d := p.cfg.Latency
	if p.cfg.LatencyJitter > 0 {
		d += mrand.N(p.cfg.LatencyJitter)
	}
	return d
}

// wait sleeps for d or until ctx ends, and reports whether ctx ended first.
func (p *Provider) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return false
	case <-ctx.Done():
		return true
	}
}

// replay gives the saved result of a provider key, or a conflict when the
// key comes back with different parameters. ok is false when the key is new.
func (p *Provider) replay(op paymux.Operation, key string, fp *fingerprint) (*paymux.ProviderPayment, *paymux.ProviderError, bool) {
	if key == "" {
		return nil, nil, false
	}
	rec, ok := p.keys[key]
	if !ok {
		return nil, nil, false
	}
	if rec.fp != *fp {
		return nil, p.perr(op, paymux.KindConflict, CodeIdempotencyConflict, 400, "idempotency key reused with different parameters"), true
	}
	if rec.err != nil {
		e := *rec.err
		return nil, &e, true
	}
	if rec.snap == nil {
		return rec.pay.initialResult(), nil, true
	}
	return cloneResult(rec.snap), nil, true
}

// remember saves the first result of a follow-up call's provider key.
func (p *Provider) remember(key string, fp *fingerprint, pay *payment, res *paymux.ProviderPayment) {
	if key == "" {
		return
	}
	p.keys[key] = &keyRecord{fp: *fp, pay: pay, snap: cloneResult(res)}
}

// initialResult is what Authorize answered for pay.
func (pay *payment) initialResult() *paymux.ProviderPayment {
	r := &paymux.ProviderPayment{Reference: pay.ref, Status: pay.initStatus, Amount: pay.amount, UpdatedAt: pay.created}
	switch pay.initStatus {
	case paymux.StatusCaptured:
		r.Captured = pay.amount.Amount
		r.Authorized = pay.amount.Amount
	case paymux.StatusAuthorized:
		r.Authorized = pay.amount.Amount
	case paymux.StatusFailed:
		r.DeclineCode = pay.declineCode
	}
	if pay.initNext != nil {
		na := *pay.initNext
		r.NextAction = &na
	}
	return r
}

func cloneResult(r *paymux.ProviderPayment) *paymux.ProviderPayment {
	c := *r
	if r.NextAction != nil {
		na := *r.NextAction
		c.NextAction = &na
	}
	if len(r.Refunds) > 0 {
		c.Refunds = append([]paymux.ProviderRefund(nil), r.Refunds...)
	}
	return &c
}

func (pay *payment) result() *paymux.ProviderPayment {
	r := &paymux.ProviderPayment{
		Reference: pay.ref, Status: pay.status, Amount: pay.amount,
		Authorized: pay.authorized, Captured: pay.captured, Refunded: pay.refunded,
		DeclineCode: pay.declineCode, UpdatedAt: pay.updated,
	}
	if pay.next != nil {
		na := *pay.next
		r.NextAction = &na
	}
	if len(pay.refunds) > 0 {
		r.Refunds = append([]paymux.ProviderRefund(nil), pay.refunds...)
	}
	return r
}

// paymentPrefix starts every payment reference.
const paymentPrefix = "simpay_"

// newRef returns the reference of the next payment: paymentPrefix, the
// instance, "_" and the payment's index in p.payments.
func (p *Provider) newRef() string {
	var buf [64]byte
	b := append(buf[:0], paymentPrefix...)
	b = append(b, p.instance...)
	b = append(b, '_')
	b = strconv.AppendInt(b, int64(len(p.payments)), 10)
	return string(b)
}

// payment finds a payment by reference; p.mu is held.
func (p *Provider) payment(ref string) *payment {
	head := len(paymentPrefix) + len(p.instance) + 1
	if len(ref) <= head || len(ref) > head+19 || ref[:len(paymentPrefix)] != paymentPrefix ||
		ref[len(paymentPrefix):head-1] != p.instance || ref[head-1] != '_' {
		return nil
	}
	i, err := strconv.ParseUint(ref[head:], 10, 63)
	if err != nil || i >= uint64(len(p.payments)) {
		return nil
	}
	pay := p.payments[i]
	if pay.ref != ref {
		// "01" and "1" parse alike; only the exact reference is ours.
		return nil
	}
	return pay
}

func (p *Provider) newID(prefix string) string {
	p.seq++
	var buf [64]byte
	b := append(buf[:0], prefix...)
	b = append(b, p.instance...)
	b = append(b, '_')
	b = strconv.AppendUint(b, p.seq, 10)
	return string(b)
}

// --- Authorize -----------------------------------------------------------------

// Authorize implements paymux.Provider.
func (p *Provider) Authorize(ctx context.Context, req *paymux.AuthorizeRequest) (*paymux.ProviderPayment, error) {
	if req == nil {
		return nil, p.invalid(paymux.OpAuthorize, CodeUnsupported, "nil request")
	}
	return p.call(ctx, paymux.OpAuthorize, func(now time.Time) (*paymux.ProviderPayment, *paymux.ProviderError, events) {
		var ev events
		res, err := p.authorize(now, req, &ev)
		return res, err, ev
	})
}

func (p *Provider) authorize(now time.Time, req *paymux.AuthorizeRequest, ev *events) (*paymux.ProviderPayment, *paymux.ProviderError) {
	const op = paymux.OpAuthorize
	capture := req.Capture
	if capture == "" {
		capture = paymux.CaptureAutomatic
	}
	fp := fingerprint{
		op: op, token: req.Method.Token, method: req.Method.Type, paymentKey: req.PaymentKey,
		amount: req.Amount.Amount, currency: req.Amount.Currency, capture: capture, threeDS: req.ThreeDS,
	}
	if res, err, ok := p.replay(op, req.ProviderKey, &fp); ok {
		return res, err
	}
	if perr := p.validateAuthorize(req, capture); perr != nil {
		return nil, perr
	}
	tok := req.Method.Token
	var (
		perr     *paymux.ProviderError
		approve  bool
		action   bool
		declined string
	)
	switch tok {
	case TokenApprove:
		approve = true
	case TokenHardDecline:
		perr, declined = p.decline(op, paymux.KindHardDecline, DeclineStolenCard), DeclineStolenCard
	case TokenInsufficientFunds:
		perr, declined = p.decline(op, paymux.KindSoftDecline, DeclineInsufficientFunds), DeclineInsufficientFunds
	case TokenSoftDecline:
		perr, declined = p.decline(op, paymux.KindSoftDecline, DeclineIssuerUnavailable), DeclineIssuerUnavailable
	case TokenThreeDS:
		approve, action = req.ThreeDS, !req.ThreeDS
	case TokenThreeDSChallenge:
		action = true
	case TokenAuthenticationRequired:
		if req.ThreeDS {
			action = true
		} else {
			perr = &paymux.ProviderError{Provider: p.cfg.Name, Operation: op, Kind: paymux.KindActionRequired, Code: CodeAuthenticationRequired, DeclineCode: CodeAuthenticationRequired, HTTPStatus: 402, Message: "the card requires authentication"}
			declined = CodeAuthenticationRequired
		}
	default:
		if strings.HasPrefix(tok, TokenErrorPrefix) {
			kind, err := paymux.ParseKind(tok[len(TokenErrorPrefix):])
			if err != nil || kind == paymux.KindNone {
				return nil, p.invalid(op, CodeInvalidToken, "unknown sim test token")
			}
			// Injected: nothing is processed and nothing is remembered.
			return nil, p.perr(op, kind, kind.String(), kindStatus[kind], "injected by test token")
		}
		if strings.HasPrefix(tok, "sim_") {
			return nil, p.invalid(op, CodeInvalidToken, "unknown sim test token")
		}
		approve = true
	}

	pay := &payment{
		ref: p.newRef(), paymentKey: req.PaymentKey, amount: req.Amount,
		capture: capture, updated: now,
	}
	switch {
	case approve:
		p.approve(pay, ev)
	case action:
		pay.status = paymux.StatusRequiresAction
		pay.next = &paymux.NextAction{Type: "redirect", RedirectURL: p.cfg.ActionURL + pay.ref}
		if p.cfg.OnEvent != nil {
			ev.add(paymux.EventActionRequired, pay, pay.amount.Amount, true, "")
		}
	default:
		pay.status = paymux.StatusFailed
		pay.declineCode = declined
		if p.cfg.OnEvent != nil {
			ev.add(paymux.EventFailed, pay, pay.amount.Amount, false, declined)
		}
	}
	pay.initStatus, pay.initNext, pay.created = pay.status, pay.next, now
	p.payments = append(p.payments, pay)
	pay.prev = p.byPaymentKey[req.PaymentKey]
	p.byPaymentKey[req.PaymentKey] = pay
	if approve {
		pay.charged = true
		p.total++
	}
	if req.ProviderKey != "" {
		// Declines are remembered and replayed too, as providers do.
		pay.auth = keyRecord{fp: fp, pay: pay, err: perr}
		p.keys[req.ProviderKey] = &pay.auth
	}
	if perr != nil {
		return nil, perr
	}
	return pay.result(), nil
}

// approve moves pay to authorized or captured; the caller counts the charge.
func (p *Provider) approve(pay *payment, ev *events) {
	pay.next = nil
	pay.authorized = pay.amount.Amount
	pay.status = paymux.StatusAuthorized
	if pay.capture == paymux.CaptureAutomatic {
		pay.status = paymux.StatusCaptured
		pay.captured = pay.amount.Amount
		pay.final = true
	}
	if p.cfg.OnEvent != nil {
		ev.add(paymux.EventAuthorized, pay, pay.authorized, true, "")
		if pay.captured > 0 {
			ev.add(paymux.EventCaptured, pay, pay.captured, true, "")
		}
	}
}

func (p *Provider) validateAuthorize(req *paymux.AuthorizeRequest, capture paymux.CaptureMode) *paymux.ProviderError {
	const op = paymux.OpAuthorize
	if err := req.Amount.Validate(); err != nil {
		return p.invalid(op, CodeInvalidAmount, err.Error())
	}
	if req.Method.Token == "" {
		return p.invalid(op, CodeInvalidToken, "missing payment method token")
	}
	if paymux.LooksLikeCardNumber(req.Method.Token) {
		// Never echo it.
		return p.invalid(op, CodeInvalidToken, "raw card numbers are not accepted")
	}
	if !p.caps.Supports(req.Amount.Currency, req.Country, req.Method.Type) {
		return p.invalid(op, CodeUnsupported, "currency, country or method not supported")
	}
	switch capture {
	case paymux.CaptureAutomatic:
	case paymux.CaptureManual:
		if !p.caps.ManualCapture {
			return p.invalid(op, CodeUnsupported, "manual capture not supported")
		}
	default:
		return p.invalid(op, CodeUnsupported, "unknown capture mode")
	}
	return nil
}

// CompleteAction completes the buyer's action (a 3-D Secure challenge) on a
// payment that requires it: the payment is authorised, and captured when it
// was created with automatic capture. Completing it again is a no-op.
func (p *Provider) CompleteAction(ctx context.Context, ref string) error {
	return p.finishAction(ctx, ref, true)
}

// FailAction records that the buyer failed or abandoned the action: the
// payment fails with decline code authentication_failed.
func (p *Provider) FailAction(ctx context.Context, ref string) error {
	return p.finishAction(ctx, ref, false)
}

func (p *Provider) finishAction(ctx context.Context, ref string, ok bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var ev events
	p.mu.Lock()
	pay := p.payment(ref)
	var err error
	switch {
	case pay == nil:
		err = p.notFound(paymux.OpAuthorize)
	case pay.status == paymux.StatusRequiresAction && ok:
		pay.updated = p.clock()
		p.approve(pay, &ev)
		pay.charged = true
		p.total++
	case pay.status == paymux.StatusRequiresAction:
		pay.updated = p.clock()
		pay.next = nil
		pay.status = paymux.StatusFailed
		pay.declineCode = DeclineAuthenticationFail
		if p.cfg.OnEvent != nil {
			ev.add(paymux.EventFailed, pay, pay.amount.Amount, false, DeclineAuthenticationFail)
		}
	case ok && (pay.status == paymux.StatusAuthorized || pay.status == paymux.StatusCaptured || pay.status == paymux.StatusRefunded):
	case !ok && pay.status == paymux.StatusFailed:
	default:
		err = p.badState(paymux.OpAuthorize, pay.status)
	}
	p.mu.Unlock()
	p.emit(&ev)
	return err
}

// --- Capture, Refund, Void ------------------------------------------------------

// Capture implements paymux.Provider. Amount 0 captures the rest. Several
// partial captures may follow one another until one is Final or the
// authorisation is used up.
func (p *Provider) Capture(ctx context.Context, req *paymux.CaptureRequest) (*paymux.ProviderPayment, error) {
	if req == nil {
		return nil, p.invalid(paymux.OpCapture, CodeUnsupported, "nil request")
	}
	return p.call(ctx, paymux.OpCapture, withEvents(func(now time.Time, ev *events) (*paymux.ProviderPayment, *paymux.ProviderError) {
		const op = paymux.OpCapture
		fp := fingerprint{op: op, ref: req.Reference, amount: req.Amount.Amount, currency: req.Amount.Currency, final: req.Final}
		if res, err, ok := p.replay(op, req.ProviderKey, &fp); ok {
			return res, err
		}
		pay := p.payment(req.Reference)
		if pay == nil {
			return nil, p.notFound(op)
		}
		if pay.status != paymux.StatusAuthorized && (pay.status != paymux.StatusCaptured || pay.final) {
			return nil, p.badState(op, pay.status)
		}
		if req.Amount.Currency != "" && req.Amount.Currency != pay.amount.Currency {
			return nil, p.invalid(op, CodeInvalidAmount, "currency differs from the payment's")
		}
		remaining := pay.authorized - pay.captured
		amount := req.Amount.Amount
		if amount == 0 {
			amount = remaining
		}
		switch {
		case amount < 0:
			return nil, p.invalid(op, CodeInvalidAmount, "amount must be positive")
		case amount > remaining:
			return nil, p.invalid(op, CodeAmountTooLarge, "amount exceeds what is left to capture")
		case (amount < remaining || pay.captured > 0) && !p.caps.PartialCapture:
			return nil, p.invalid(op, CodeUnsupported, "partial capture not supported")
		}
		pay.captured += amount
		pay.status = paymux.StatusCaptured
		pay.final = req.Final || pay.captured == pay.authorized
		pay.updated = now
		if p.cfg.OnEvent != nil {
			ev.add(paymux.EventCaptured, pay, pay.captured, true, "")
		}
		res := pay.result()
		p.remember(req.ProviderKey, &fp, pay, res)
		return res, nil
	}))
}

// Refund implements paymux.Provider. Amount 0 refunds the rest. Any refund
// moves the status to refunded; Refunded says how much.
func (p *Provider) Refund(ctx context.Context, req *paymux.RefundRequest) (*paymux.ProviderPayment, error) {
	if req == nil {
		return nil, p.invalid(paymux.OpRefund, CodeUnsupported, "nil request")
	}
	return p.call(ctx, paymux.OpRefund, withEvents(func(now time.Time, ev *events) (*paymux.ProviderPayment, *paymux.ProviderError) {
		const op = paymux.OpRefund
		fp := fingerprint{op: op, ref: req.Reference, amount: req.Amount.Amount, currency: req.Amount.Currency}
		if res, err, ok := p.replay(op, req.ProviderKey, &fp); ok {
			return res, err
		}
		pay := p.payment(req.Reference)
		if pay == nil {
			return nil, p.notFound(op)
		}
		if pay.status != paymux.StatusCaptured && pay.status != paymux.StatusRefunded {
			return nil, p.badState(op, pay.status)
		}
		if req.Amount.Currency != "" && req.Amount.Currency != pay.amount.Currency {
			return nil, p.invalid(op, CodeInvalidAmount, "currency differs from the payment's")
		}
		remaining := pay.captured - pay.refunded
		amount := req.Amount.Amount
		if amount == 0 {
			amount = remaining
		}
		switch {
		case amount <= 0 && remaining == 0:
			return nil, p.badState(op, pay.status)
		case amount < 0:
			return nil, p.invalid(op, CodeInvalidAmount, "amount must be positive")
		case amount > remaining:
			return nil, p.invalid(op, CodeAmountTooLarge, "amount exceeds what is left to refund")
		case amount < pay.captured && !p.caps.PartialRefund:
			return nil, p.invalid(op, CodeUnsupported, "partial refund not supported")
		case pay.refunded > 0 && !p.caps.MultipleRefund:
			return nil, p.invalid(op, CodeUnsupported, "several refunds not supported")
		}
		rref := p.newID("simre_")
		pay.refunds = append(pay.refunds, paymux.ProviderRefund{Reference: rref, Amount: amount, Status: "succeeded"})
		pay.refunded += amount
		pay.status = paymux.StatusRefunded
		pay.updated = now
		if p.cfg.OnEvent != nil {
			ev.add(paymux.EventRefunded, pay, pay.refunded, true, "")
		}
		res := pay.result()
		res.RefundReference = rref
		p.remember(req.ProviderKey, &fp, pay, res)
		return res, nil
	}))
}

// Void implements paymux.Provider: it cancels an authorisation with nothing
// captured, or a payment still waiting for the buyer.
func (p *Provider) Void(ctx context.Context, req *paymux.VoidRequest) (*paymux.ProviderPayment, error) {
	if req == nil {
		return nil, p.invalid(paymux.OpVoid, CodeUnsupported, "nil request")
	}
	return p.call(ctx, paymux.OpVoid, withEvents(func(now time.Time, ev *events) (*paymux.ProviderPayment, *paymux.ProviderError) {
		const op = paymux.OpVoid
		fp := fingerprint{op: op, ref: req.Reference}
		if res, err, ok := p.replay(op, req.ProviderKey, &fp); ok {
			return res, err
		}
		if !p.caps.Void {
			return nil, p.perr(op, paymux.KindUnimplemented, CodeUnsupported, 501, "void not supported")
		}
		pay := p.payment(req.Reference)
		if pay == nil {
			return nil, p.notFound(op)
		}
		if pay.status != paymux.StatusAuthorized && pay.status != paymux.StatusRequiresAction {
			return nil, p.badState(op, pay.status)
		}
		pay.status = paymux.StatusVoided
		pay.next = nil
		pay.final = true
		pay.updated = now
		if p.cfg.OnEvent != nil {
			ev.add(paymux.EventVoided, pay, pay.amount.Amount, true, "")
		}
		res := pay.result()
		p.remember(req.ProviderKey, &fp, pay, res)
		return res, nil
	}))
}

// --- Lookup ----------------------------------------------------------------------

// Lookup implements paymux.Provider. It finds a payment by Reference, else by
// the ProviderKey of the call that created it, else by PaymentKey (preferring
// the latest payment that was not declined). It answers KindNotFound only
// when none of them matches; outages answer KindUnavailable.
func (p *Provider) Lookup(ctx context.Context, req *paymux.LookupRequest) (*paymux.ProviderPayment, error) {
	const op = paymux.OpLookup
	if req == nil {
		return nil, p.invalid(op, CodeUnsupported, "nil request")
	}
	if err := ctx.Err(); err != nil {
		return nil, &paymux.ProviderError{Provider: p.cfg.Name, Operation: op, Kind: paymux.KindUnavailable, Code: CodeNotSent, Message: "context ended before the request was sent", Err: err}
	}
	fault, lat := p.faults.Next(false)
	if fault == providertest.FaultOutage {
		return nil, p.perr(op, paymux.KindUnavailable, CodeServiceUnavailable, 503, "service unavailable")
	}
	if p.wait(ctx, lat+p.latency()) {
		// A read has no effect, so a time-out only means "ask again".
		return nil, &paymux.ProviderError{Provider: p.cfg.Name, Operation: op, Kind: paymux.KindUnavailable, Code: CodeTimeout, Message: "timed out waiting for the response", Err: ctx.Err()}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if pay := p.find(req); pay != nil {
		return pay.result(), nil
	}
	return nil, p.notFound(op)
}

func (p *Provider) find(req *paymux.LookupRequest) *payment {
	if req.Reference != "" {
		if pay := p.payment(req.Reference); pay != nil {
			return pay
		}
	}
	if req.ProviderKey != "" {
		if rec := p.keys[req.ProviderKey]; rec != nil && rec.fp.op == paymux.OpAuthorize {
			return rec.pay
		}
	}
	if req.PaymentKey != "" {
		latest := p.byPaymentKey[req.PaymentKey]
		for pay := latest; pay != nil; pay = pay.prev {
			if pay.status != paymux.StatusFailed {
				return pay
			}
		}
		return latest
	}
	return nil
}
