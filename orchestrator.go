package paymux

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Config configures an Orchestrator. Zero values mean:
//
//	Providers          required, at least one; names must be unique
//	Store              required (store/memory for tests)
//	Router             nil: Routes, else one rule trying Providers in order
//	Routes             nil: see Router
//	Logger             slog.Default()
//	Clock              time.Now
//	Breaker            see BreakerSettings
//	BreakerStore       nil: breaker state is per process
//	Retry              see RetrySettings
//	CallTimeout        20 s per provider call
//	ClaimLease         2 min: how long a crashed request holds its key
//	IdempotencyTTL     24 h
//	MaxAttempts        4 provider attempts per payment
//	DecisionOverrides  nil: the providers' own tables decide
//	Risk               nil: no risk check
//	Observer           nil: no observer
//	RecentPayments     DefaultRecentPayments; negative: none
type Config struct {
	Providers []Provider
	Store     Store
	Router    *Router
	Routes    []Rule
	Logger    *slog.Logger
	Clock     func() time.Time
	Breaker   BreakerSettings
	// BreakerStore shares breaker state across instances (for example
	// store/redis's breaker store), so one instance's failures open the
	// breaker for all.
	BreakerStore      gobreaker.SharedDataStore
	Retry             RetrySettings
	CallTimeout       time.Duration
	ClaimLease        time.Duration
	IdempotencyTTL    time.Duration
	MaxAttempts       int
	DecisionOverrides DecisionTable
	Risk              RiskCheck
	Observer          Observer
	// RecentPayments is how many of the payments it recorded last the
	// orchestrator remembers (a copy each, so about a kilobyte apiece),
	// when its store implements UnchangedEventCompleter: the webhook that
	// confirms one of them, changing nothing, is then finished in one
	// store round trip instead of two.
	RecentPayments int
}

// RiskCheck runs before a payment is routed. It may refuse the payment or
// ask for 3-D Secure.
type RiskCheck func(ctx context.Context, req *PaymentRequest) (RiskDecision, error)

// RiskDecision is a RiskCheck's verdict.
type RiskDecision struct {
	Refuse         bool
	Reason         string
	RequireThreeDS bool
}

// Observer sees every provider attempt and every finished operation, for
// metrics and traces. Calls are synchronous: keep them fast.
type Observer interface {
	ObserveAttempt(ctx context.Context, p *Payment, a Attempt)
	ObservePayment(ctx context.Context, op Operation, p *Payment, err error)
}

type registeredProvider struct {
	name    string
	p       Provider
	caps    Capabilities
	table   DecisionTable
	breaker providerBreaker
}

// Orchestrator routes payments to providers. It is safe for concurrent use;
// several processes may share one Store.
type Orchestrator struct {
	cfg       Config
	providers map[string]*registeredProvider
	router    *Router
	log       *slog.Logger
	// dispatcher, when set (by the first NewDispatcher), also hears the
	// status changes Sync makes, so a subscriber learns of a payment the
	// reconciler settled even when no webhook will ever come.
	dispatcher atomic.Pointer[Dispatcher]
	recent     *recentPayments
}

// New checks cfg and builds an Orchestrator.
func New(cfg Config) (*Orchestrator, error) {
	if cfg.Store == nil {
		return nil, errors.New("paymux: Config.Store is required")
	}
	if len(cfg.Providers) == 0 {
		return nil, errors.New("paymux: Config.Providers is empty")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 20 * time.Second
	}
	if cfg.ClaimLease <= 0 {
		cfg.ClaimLease = 2 * time.Minute
	}
	if cfg.IdempotencyTTL <= 0 {
		cfg.IdempotencyTTL = DefaultIdempotencyTTL
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 4
	}
	if cfg.RecentPayments == 0 {
		cfg.RecentPayments = DefaultRecentPayments
	}
	o := &Orchestrator{cfg: cfg, providers: make(map[string]*registeredProvider, len(cfg.Providers)), log: cfg.Logger}
	if uc, ok := cfg.Store.(UnchangedEventCompleter); ok && uc.CompletesUnchangedEvents() {
		// Only a store that can use them is worth the copies.
		o.recent = newRecentPayments(cfg.RecentPayments)
	}
	names := make([]string, 0, len(cfg.Providers))
	for _, p := range cfg.Providers {
		if p == nil {
			return nil, errors.New("paymux: nil provider")
		}
		name := p.Name()
		if name == "" || o.providers[name] != nil {
			return nil, fmt.Errorf("paymux: provider name %q is empty or used twice", name)
		}
		rp := &registeredProvider{name: name, p: p, caps: p.Capabilities()}
		if dt, ok := p.(DecisionTabler); ok {
			rp.table = dt.DecisionTable()
		}
		br, err := newBreaker(name, cfg.Breaker, cfg.BreakerStore, time.Now, cfg.Logger)
		if err != nil {
			return nil, fmt.Errorf("paymux: breaker for %s: %w", name, err)
		}
		rp.breaker = br
		o.providers[name] = rp
		names = append(names, name)
	}
	switch {
	case cfg.Router != nil:
		o.router = cfg.Router
	case cfg.Routes != nil:
		r, err := NewRouter(cfg.Routes, names...)
		if err != nil {
			return nil, err
		}
		o.router = r
	default:
		targets := make([]Target, 0, 1)
		targets = append(targets, Target{Provider: names[0]})
		r, err := NewRouter([]Rule{{Name: "default", Primaries: targets, Fallbacks: names[1:]}}, names...)
		if err != nil {
			return nil, err
		}
		o.router = r
	}
	return o, nil
}

// Router returns the router, so that routes can be swapped at run time.
func (o *Orchestrator) Router() *Router { return o.router }

// Provider returns the provider registered under name.
func (o *Orchestrator) Provider(name string) (Provider, bool) {
	rp, ok := o.providers[name]
	if !ok {
		return nil, false
	}
	return rp.p, true
}

// ProviderNames returns the registered provider names, sorted.
func (o *Orchestrator) ProviderNames() []string {
	names := make([]string, 0, len(o.providers))
	for n := range o.providers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// BreakerState returns the state of the provider's circuit breaker:
// "closed", "half-open" or "open".
func (o *Orchestrator) BreakerState(provider string) string {
	rp, ok := o.providers[provider]
	if !ok {
		return ""
	}
	return rp.breaker.State().String()
}

// Store returns the store the orchestrator uses.
func (o *Orchestrator) Store() Store { return o.cfg.Store }

func (o *Orchestrator) now() time.Time { return o.cfg.Clock() }

func (o *Orchestrator) validate(req *PaymentRequest) error {
	if req.IdempotencyKey == "" || len(req.IdempotencyKey) > 255 {
		return fmt.Errorf("%w: idempotency key must be 1 to 255 characters", ErrInvalidRequest)
	}
	req.Amount.Currency = Currency(strings.ToUpper(string(req.Amount.Currency)))
	if err := req.Amount.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	if req.Method.Token == "" {
		return fmt.Errorf("%w: payment method token is empty", ErrInvalidRequest)
	}
	if LooksLikeCardNumber(req.Method.Token) {
		return fmt.Errorf("%w: %w: use a provider token, never a card number", ErrInvalidRequest, ErrCardData)
	}
	for k, v := range req.Metadata {
		if LooksLikeCardNumber(v) {
			return fmt.Errorf("%w: %w: in metadata %q", ErrInvalidRequest, ErrCardData, k)
		}
	}
	if LooksLikeCardNumber(req.IdempotencyKey) || LooksLikeCardNumber(req.Customer.ID) {
		return fmt.Errorf("%w: %w", ErrInvalidRequest, ErrCardData)
	}
	if req.Method.Type == "" {
		req.Method.Type = MethodCard
	}
	if req.Country != "" {
		req.Country = strings.ToUpper(req.Country)
		if len(req.Country) != 2 {
			return fmt.Errorf("%w: country must be ISO 3166-1 alpha-2, got %q", ErrInvalidRequest, req.Country)
		}
	}
	switch req.Capture {
	case "", CaptureAutomatic, CaptureManual:
	default:
		return fmt.Errorf("%w: unknown capture mode %q", ErrInvalidRequest, req.Capture)
	}
	return nil
}

func captureMode(c CaptureMode) CaptureMode {
	if c == "" {
		return CaptureAutomatic
	}
	return c
}

// candidates filters a route to the providers that can serve req.
func (o *Orchestrator) candidates(route Route, req *PaymentRequest) []*registeredProvider {
	out := make([]*registeredProvider, 0, len(route.Providers))
	for _, name := range route.Providers {
		rp := o.providers[name]
		if rp == nil || !rp.caps.Supports(req.Amount.Currency, req.Country, req.Method.Type) {
			continue
		}
		if captureMode(req.Capture) == CaptureManual && !rp.caps.ManualCapture {
			continue
		}
		out = append(out, rp)
	}
	return out
}

// Authorize charges (CaptureAutomatic) or authorises (CaptureManual) a
// payment, at most once per idempotency key.
//
// The returned payment is set whenever a payment record exists, also with an
// error: a decline returns the failed payment and an error matching
// ErrDeclined; a lost outcome returns the unknown payment and an error
// matching ErrOutcomeUnknown. Replays of a finished key return the payment as
// it is now and the original error.
func (o *Orchestrator) Authorize(ctx context.Context, req PaymentRequest) (*Payment, error) {
	p, err := o.authorize(ctx, &req)
	if o.cfg.Observer != nil && p != nil {
		o.cfg.Observer.ObservePayment(ctx, OpAuthorize, p, err)
	}
	return p, err
}

func (o *Orchestrator) authorize(ctx context.Context, req *PaymentRequest) (*Payment, error) {
	if err := o.validate(req); err != nil {
		return nil, err
	}
	route, err := o.router.Route(req)
	if err != nil {
		return nil, err
	}
	cands := o.candidates(route, req)
	if len(cands) == 0 {
		return nil, fmt.Errorf("%w: no provider of rule %q can serve %s %s", ErrNoRoute, route.Rule, req.Amount.Currency, req.Method.Type)
	}
	first := 0
	for i, rp := range cands {
		if !rp.breaker.Open() {
			first = i
			break
		}
	}
	now := o.now()
	p := &Payment{
		ID:             PaymentID(req.IdempotencyKey),
		IdempotencyKey: req.IdempotencyKey,
		Provider:       cands[first].name,
		Status:         StatusPending,
		Amount:         req.Amount,
		Capture:        captureMode(req.Capture),
		Method:         req.Method.Type,
		Country:        req.Country,
		Campaign:       req.Campaign,
		Metadata:       req.Metadata,
		CreatedAt:      now,
		UpdatedAt:      now,
	}
	p.Attempts = append(make([]Attempt, 0, 2), Attempt{
		Number: 1, Provider: cands[first].name, Operation: OpAuthorize,
		ProviderKey: ProviderKey(req.IdempotencyKey, cands[first].name, OpAuthorize, 1),
		Outcome:     OutcomePending, StartedAt: now,
	})
	key := nsAuthorize + req.IdempotencyKey
	cr, err := o.claim(ctx, key, Fingerprint(req), p)
	if err != nil {
		return nil, err
	}
	if !cr.claimed {
		return o.replay(ctx, cr.rec)
	}
	if cr.rec.TakenOver && cr.rec.Payment != nil {
		return o.recoverAuthorize(ctx, req, key, cr.token, cr.rec.Payment.Clone(), cands)
	}

	threeDS := false
	if o.cfg.Risk != nil {
		d, err := o.cfg.Risk(ctx, req)
		if err != nil {
			o.release(ctx, key, cr.token)
			return nil, fmt.Errorf("paymux: risk check: %w", err)
		}
		if d.Refuse {
			p.Status = StatusFailed
			p.FailureCode = "risk_refused"
			p.Attempts = p.Attempts[:0]
			return o.finish(ctx, key, cr.token, p, fmt.Errorf("%w: %s", ErrRiskRefused, d.Reason))
		}
		threeDS = d.RequireThreeDS
	}
	return o.runAttempts(ctx, req, key, cr.token, p, cands[first:], threeDS)
}

// runAttempts is the attempt loop: next-provider(retry(breaker(call))). The
// last attempt in p.Attempts, if pending, is the one to make first; its key
// is already saved.
func (o *Orchestrator) runAttempts(ctx context.Context, req *PaymentRequest, key, token string, p *Payment, cands []*registeredProvider, threeDS bool) (*Payment, error) {
	var lastErr error
	for i := 0; i < len(cands); i++ {
		rp := cands[i]
		idx := len(p.Attempts) - 1
		if idx < 0 || p.Attempts[idx].Outcome != OutcomePending || p.Attempts[idx].Provider != rp.name {
			if rp.breaker.Open() {
				lastErr = breakerError(rp.name, OpAuthorize, gobreaker.ErrOpenState)
				continue
			}
			if len(p.Attempts) >= o.cfg.MaxAttempts {
				break
			}
			// Save the attempt and its provider key before the call.
			n := len(p.Attempts) + 1
			p.Provider = rp.name
			p.Attempts = append(p.Attempts, Attempt{
				Number: n, Provider: rp.name, Operation: OpAuthorize,
				ProviderKey: ProviderKey(req.IdempotencyKey, rp.name, OpAuthorize, n),
				Outcome:     OutcomePending, StartedAt: o.now(),
			})
			if err := o.cfg.Store.CheckpointIdempotency(ctx, key, token, p, o.cfg.ClaimLease); err != nil {
				// Without the saved key there is no call. The claim stays in
				// flight; its recovery reconciles the earlier attempts.
				return nil, storeErr("checkpoint", err)
			}
			idx = len(p.Attempts) - 1
		}
		a := &p.Attempts[idx]
		areq := &AuthorizeRequest{
			PaymentID: p.ID, PaymentKey: req.IdempotencyKey, ProviderKey: a.ProviderKey,
			Amount: req.Amount, Method: req.Method, Country: req.Country, Capture: captureMode(req.Capture),
			Customer: req.Customer, Metadata: req.Metadata, ReturnURL: req.ReturnURL, ThreeDS: threeDS,
		}
		start := time.Now()
		res, cls, err := o.callProvider(ctx, rp, OpAuthorize, func(cctx context.Context) (*ProviderPayment, error) {
			return rp.p.Authorize(cctx, areq)
		})
		a = &p.Attempts[idx]
		a.Latency = time.Since(start)
		if err == nil {
			a.Outcome = OutcomeSucceeded
			if res.Status == StatusRequiresAction {
				a.Outcome = OutcomeActionRequired
			}
			o.observeAttempt(ctx, p, *a)
			applyProviderPayment(p, res)
			if p.Status == StatusPending {
				// The provider accepted the request but has not decided yet
				// (asynchronous methods): webhooks or Sync will tell.
				p.Status = StatusPending
			}
			return o.finish(ctx, key, token, p, nil)
		}
		lastErr = err
		a.Kind, a.Decision = cls.Kind, cls.Decision
		a.Code = errorCode(err)
		var pe *ProviderError
		if errors.As(err, &pe) && pe.Reference != "" {
			p.ProviderRef = pe.Reference
		}
		switch {
		case cls.Kind == KindOutcomeUnknown || cls.Kind == KindConflict || !failoverSafe(cls.Kind) && cls.Decision == DecisionFailover:
			// Money may have moved: stop here and reconcile with this
			// provider before anything else is tried (invariant 2). An
			// idempotency conflict counts too: a payment may already exist
			// under the key.
			a.Outcome = OutcomeUnknown
			o.observeAttempt(ctx, p, *a)
			p.Status = StatusUnknown
			p.FailureKind, p.FailureCode = KindOutcomeUnknown, a.Code
			o.log.Warn("paymux: payment outcome unknown", "payment", p.ID, "provider", rp.name, "code", a.Code)
			return o.finish(ctx, key, token, p, err)
		case cls.Decision == DecisionStepUp && !threeDS:
			// Authenticate with the same provider; a new attempt number gives
			// a new key, since providers replay a cached decline.
			a.Outcome = OutcomeActionRequired
			o.observeAttempt(ctx, p, *a)
			threeDS = true
			i--
			continue
		case cls.Decision == DecisionFailover:
			a.Outcome = OutcomeFailed
			o.observeAttempt(ctx, p, *a)
			o.log.Info("paymux: failing over", "payment", p.ID, "provider", rp.name, "kind", cls.Kind.String(), "code", a.Code)
			continue
		default:
			a.Outcome = OutcomeFailed
			o.observeAttempt(ctx, p, *a)
			p.Status = StatusFailed
			p.FailureKind, p.FailureCode = cls.Kind, a.Code
			return o.finish(ctx, key, token, p, err)
		}
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("%w: every provider's breaker is open", ErrUnavailable)
	}
	if nothingReachedAnIssuer(p) {
		// No provider processed anything: free the key so the shop can
		// retry the same order later.
		o.release(ctx, key, token)
		return nil, fmt.Errorf("%w: %w", ErrAllProvidersFailed, lastErr)
	}
	p.Status = StatusFailed
	p.FailureKind, p.FailureCode = KindOf(lastErr), errorCode(lastErr)
	return o.finish(ctx, key, token, p, fmt.Errorf("%w: %w", ErrAllProvidersFailed, lastErr))
}

func nothingReachedAnIssuer(p *Payment) bool {
	for _, a := range p.Attempts {
		switch a.Kind {
		case KindUnavailable, KindRateLimited, KindAuthentication:
		default:
			return false
		}
		if a.Outcome != OutcomeFailed {
			return false
		}
	}
	return true
}

// recoverAuthorize finishes a request whose holder crashed or hung: it asks
// the provider about the attempt that was in flight before anything else.
func (o *Orchestrator) recoverAuthorize(ctx context.Context, req *PaymentRequest, key, token string, p *Payment, cands []*registeredProvider) (*Payment, error) {
	o.log.Warn("paymux: recovering an abandoned authorisation", "payment", p.ID)
	idx := len(p.Attempts) - 1
	if idx < 0 || p.Attempts[idx].Outcome != OutcomePending {
		return o.runAttempts(ctx, req, key, token, p, cands, false)
	}
	a := p.Attempts[idx]
	rp := o.providers[a.Provider]
	if rp == nil {
		p.Status = StatusUnknown
		return o.finish(ctx, key, token, p, fmt.Errorf("%w: provider %q is no longer configured", ErrOutcomeUnknown, a.Provider))
	}
	res, err := o.lookupAttempt(ctx, rp, p, a)
	switch {
	case err == nil:
		p.Attempts[idx].Outcome = OutcomeSucceeded
		applyProviderPayment(p, res)
		return o.finish(ctx, key, token, p, paymentError(p))
	case KindOf(err) == KindNotFound:
		// The provider never saw it. Make the same attempt again with the
		// same key: should the lost call still arrive, the provider
		// de-duplicates the two.
		for i, c := range cands {
			if c.name == a.Provider {
				return o.runAttempts(ctx, req, key, token, p, cands[i:], false)
			}
		}
		return o.runAttempts(ctx, req, key, token, p, []*registeredProvider{rp}, false)
	default:
		p.Attempts[idx].Outcome = OutcomeUnknown
		p.Status = StatusUnknown
		p.FailureKind = KindOutcomeUnknown
		return o.finish(ctx, key, token, p, fmt.Errorf("%w: lookup during recovery: %w", ErrOutcomeUnknown, err))
	}
}

// finish completes the claim with the payment, in one store call.
func (o *Orchestrator) finish(ctx context.Context, key, token string, p *Payment, callErr error) (*Payment, error) {
	p.UpdatedAt = o.now()
	if err := o.cfg.Store.CompleteIdempotency(ctx, key, token, p); err != nil {
		// The provider call happened but is not recorded. The claim stays in
		// flight with the attempt's key, so the next request for this key
		// (after the lease) reconciles with the provider instead of charging.
		o.log.Error("paymux: could not record payment result", "payment", p.ID, "status", string(p.Status), "err", err)
		return p, errors.Join(storeErr("complete", err), callErr)
	}
	o.recent.remember(p)
	return p, callErr
}

func (o *Orchestrator) release(ctx context.Context, key, token string) {
	if err := o.cfg.Store.ReleaseIdempotency(ctx, key, token); err != nil {
		o.log.Warn("paymux: could not release idempotency claim; it expires with its lease", "err", err)
	}
}

func (o *Orchestrator) observeAttempt(ctx context.Context, p *Payment, a Attempt) {
	if o.cfg.Observer != nil {
		o.cfg.Observer.ObserveAttempt(ctx, p, a)
	}
}

func errorCode(err error) string {
	var pe *ProviderError
	if errors.As(err, &pe) {
		if pe.DeclineCode != "" {
			return pe.DeclineCode
		}
		return pe.Code
	}
	return ""
}

// applyProviderPayment merges a provider's view into p. Amounts only grow and
// the status only moves forward (invariant 4).
func applyProviderPayment(p *Payment, res *ProviderPayment) {
	if res == nil {
		return
	}
	if res.Reference != "" {
		p.ProviderRef = res.Reference
	}
	if res.Status != "" && p.Status.CanTransition(res.Status) {
		p.Status = res.Status
	}
	p.Authorized = max(p.Authorized, res.Authorized)
	p.Captured = max(p.Captured, res.Captured)
	p.Refunded = max(p.Refunded, res.Refunded)
	switch p.Status {
	case StatusAuthorized:
		if p.Authorized == 0 {
			p.Authorized = p.Amount.Amount
		}
	case StatusCaptured:
		if p.Authorized == 0 {
			p.Authorized = p.Amount.Amount
		}
		if p.Captured == 0 {
			p.Captured = p.Authorized
		}
	}
	// A refund proves a capture and a capture an authorisation, whatever
	// order the news arrived in: keep refunded <= captured <= authorised.
	p.Captured = max(p.Captured, p.Refunded)
	p.Authorized = max(p.Authorized, p.Captured)
	if res.NextAction != nil {
		na := *res.NextAction
		p.NextAction = &na
	} else if p.Status != StatusRequiresAction {
		p.NextAction = nil
	}
	if p.Status == StatusFailed && res.DeclineCode != "" {
		p.FailureCode = res.DeclineCode
	}
}

// Get returns the payment with id, or an error matching ErrNotFound.
func (o *Orchestrator) Get(ctx context.Context, id string) (*Payment, error) {
	p, err := o.cfg.Store.GetPayment(ctx, id)
	return p, storeErr("get", err)
}

// GetByKey returns the payment created by the authorisation with this
// idempotency key.
func (o *Orchestrator) GetByKey(ctx context.Context, idempotencyKey string) (*Payment, error) {
	return o.Get(ctx, PaymentID(idempotencyKey))
}

// CaptureParams are the inputs of Capture.
type CaptureParams struct {
	// Key makes the capture idempotent: the same key captures once.
	Key string
	// Amount in minor units; 0 captures everything not yet captured.
	Amount int64
	// Final releases the rest of the authorisation after this capture.
	Final bool
}

// RefundParams are the inputs of Refund.
type RefundParams struct {
	// Key makes the refund idempotent: the same key refunds once.
	Key string
	// Amount in minor units; 0 refunds everything not yet refunded.
	Amount int64
	Reason string
}

// VoidParams are the inputs of Void.
type VoidParams struct {
	// Key makes the void idempotent.
	Key string
}

// Capture captures an authorized payment, fully or partly, at the provider
// that authorised it.
func (o *Orchestrator) Capture(ctx context.Context, paymentID string, params CaptureParams) (*Payment, error) {
	return o.followUp(ctx, paymentID, OpCapture, nsCapture, params.Key, func(p *Payment, rp *registeredProvider) (int64, error) {
		if p.Status != StatusAuthorized && !(p.Status == StatusCaptured && rp.caps.PartialCapture && p.Captured < p.Authorized) {
			return 0, fmt.Errorf("%w: cannot capture a %s payment", ErrInvalidState, p.Status)
		}
		remaining := p.Authorized - p.Captured
		amount := params.Amount
		if amount == 0 {
			amount = remaining
		}
		if amount <= 0 || amount > remaining {
			return 0, fmt.Errorf("%w: capture %d of %d remaining", ErrAmountExceeded, amount, remaining)
		}
		if amount < remaining && !rp.caps.PartialCapture {
			return 0, fmt.Errorf("%w: %s does not support partial capture", ErrUnimplemented, rp.name)
		}
		return amount, nil
	}, func(ctx context.Context, p *Payment, rp *registeredProvider, amount int64, pkey string) (*ProviderPayment, error) {
		return rp.p.Capture(ctx, &CaptureRequest{PaymentID: p.ID, Reference: p.ProviderRef, ProviderKey: pkey, Amount: Money{amount, p.Amount.Currency}, Final: params.Final})
	}, func(p *Payment, res *ProviderPayment, amount int64, opKey, pkey string) {
		captured := p.Captured + amount
		applyProviderPayment(p, res)
		p.Captured = max(p.Captured, captured)
		if p.Status.CanTransition(StatusCaptured) {
			p.Status = StatusCaptured
		}
	})
}

// Refund refunds a captured payment, fully or partly; several refunds may
// follow one another up to the captured amount.
func (o *Orchestrator) Refund(ctx context.Context, paymentID string, params RefundParams) (*Payment, error) {
	return o.followUp(ctx, paymentID, OpRefund, nsRefund, params.Key, func(p *Payment, rp *registeredProvider) (int64, error) {
		if p.Status != StatusCaptured && p.Status != StatusRefunded {
			return 0, fmt.Errorf("%w: cannot refund a %s payment", ErrInvalidState, p.Status)
		}
		remaining := p.Captured - p.Refunded
		amount := params.Amount
		if amount == 0 {
			amount = remaining
		}
		if amount <= 0 || amount > remaining {
			return 0, fmt.Errorf("%w: refund %d of %d remaining", ErrAmountExceeded, amount, remaining)
		}
		if amount < p.Captured && !rp.caps.PartialRefund {
			return 0, fmt.Errorf("%w: %s does not support partial refunds", ErrUnimplemented, rp.name)
		}
		if p.Refunded > 0 && !rp.caps.MultipleRefund {
			return 0, fmt.Errorf("%w: %s does not support several refunds", ErrUnimplemented, rp.name)
		}
		return amount, nil
	}, func(ctx context.Context, p *Payment, rp *registeredProvider, amount int64, pkey string) (*ProviderPayment, error) {
		return rp.p.Refund(ctx, &RefundRequest{PaymentID: p.ID, Reference: p.ProviderRef, ProviderKey: pkey, Amount: Money{amount, p.Amount.Currency}, Reason: params.Reason})
	}, func(p *Payment, res *ProviderPayment, amount int64, opKey, pkey string) {
		ref := ""
		if res != nil {
			ref = res.RefundReference
		}
		p.Refunds = append(p.Refunds, Refund{Key: params.Key, Reference: ref, Amount: amount, Status: "succeeded", ProviderKey: pkey})
		var total int64
		for _, r := range p.Refunds {
			total += r.Amount
		}
		p.Refunded = min(max(p.Refunded, total), p.Captured)
		if p.Status.CanTransition(StatusRefunded) {
			p.Status = StatusRefunded
		}
	})
}

// Void cancels an authorisation that was not captured.
func (o *Orchestrator) Void(ctx context.Context, paymentID string, params VoidParams) (*Payment, error) {
	return o.followUp(ctx, paymentID, OpVoid, nsVoid, params.Key, func(p *Payment, rp *registeredProvider) (int64, error) {
		if p.Status != StatusAuthorized && p.Status != StatusRequiresAction {
			return 0, fmt.Errorf("%w: cannot void a %s payment", ErrInvalidState, p.Status)
		}
		return 0, nil
	}, func(ctx context.Context, p *Payment, rp *registeredProvider, _ int64, pkey string) (*ProviderPayment, error) {
		return rp.p.Void(ctx, &VoidRequest{PaymentID: p.ID, Reference: p.ProviderRef, ProviderKey: pkey})
	}, func(p *Payment, res *ProviderPayment, _ int64, _, _ string) {
		applyProviderPayment(p, res)
		if p.Status.CanTransition(StatusVoided) {
			p.Status = StatusVoided
		}
	})
}

// followUp runs capture, refund and void: one provider (the one holding the
// payment), its own idempotency key, retries of the same provider key only.
func (o *Orchestrator) followUp(
	ctx context.Context, paymentID string, op Operation, ns, callerKey string,
	check func(*Payment, *registeredProvider) (int64, error),
	call func(context.Context, *Payment, *registeredProvider, int64, string) (*ProviderPayment, error),
	apply func(p *Payment, res *ProviderPayment, amount int64, opKey, providerKey string),
) (p *Payment, err error) {
	defer func() {
		if o.cfg.Observer != nil && p != nil {
			o.cfg.Observer.ObservePayment(ctx, op, p, err)
		}
	}()
	if callerKey == "" {
		return nil, fmt.Errorf("%w: %s needs an idempotency key", ErrInvalidRequest, op)
	}
	p, err = o.cfg.Store.GetPayment(ctx, paymentID)
	if err != nil {
		return nil, storeErr(string(op), err)
	}
	opKey := ns + p.ID + "/" + callerKey
	if slices.Contains(p.Operations, opKey) {
		return p, nil
	}
	rp := o.providers[p.Provider]
	if rp == nil {
		return p, fmt.Errorf("%w: provider %q is not configured", ErrUnknownProvider, p.Provider)
	}
	amount, err := check(p, rp)
	if err != nil {
		return p, err
	}
	cr, err := o.claim(ctx, opKey, opFingerprint(string(op), p.ID, fmt.Sprint(amount)), p)
	if err != nil {
		return p, err
	}
	if !cr.claimed {
		cur, gerr := o.cfg.Store.GetPayment(ctx, p.ID)
		if gerr != nil {
			return p, storeErr("replay", gerr)
		}
		return cur, nil
	}
	// One provider key per (payment, operation, caller key): a retry after an
	// unknown outcome sends the same key, and the provider de-duplicates.
	pkey := ProviderKey(p.IdempotencyKey+"/"+callerKey, p.Provider, op, 1)
	res, cls, err := o.callProvider(ctx, rp, op, func(cctx context.Context) (*ProviderPayment, error) {
		return call(cctx, p, rp, amount, pkey)
	})
	if err != nil {
		// Nothing to record: a definitive failure changed nothing, and after
		// an unknown outcome the same caller key retries with the same
		// provider key. Free the key either way.
		o.release(ctx, opKey, cr.token)
		if cls.Kind == KindOutcomeUnknown {
			o.log.Warn("paymux: outcome unknown; retry with the same key", "payment", p.ID, "operation", string(op))
		}
		return p, err
	}
	for tries := 0; ; tries++ {
		apply(p, res, amount, opKey, pkey)
		p.Operations = append(p.Operations, opKey)
		p.UpdatedAt = o.now()
		err = o.cfg.Store.CompleteIdempotency(ctx, opKey, cr.token, p)
		if !errors.Is(err, ErrVersionConflict) || tries >= 8 {
			break
		}
		// A webhook moved the payment meanwhile: merge into the new version.
		cur, gerr := o.cfg.Store.GetPayment(ctx, p.ID)
		if gerr != nil {
			err = gerr
			break
		}
		p = cur
	}
	if err != nil {
		o.log.Error("paymux: could not record operation result", "payment", p.ID, "operation", string(op), "err", err)
		return p, storeErr(string(op), err)
	}
	o.recent.remember(p)
	return p, nil
}

// Sync asks the payment's provider for the truth and applies it. It resolves
// payments whose outcome is unknown, and pending ones whose webhooks are
// late.
func (o *Orchestrator) Sync(ctx context.Context, paymentID string) (*Payment, error) {
	p, err := o.cfg.Store.GetPayment(ctx, paymentID)
	if err != nil {
		return nil, storeErr("sync", err)
	}
	rp := o.providers[p.Provider]
	if rp == nil {
		return p, fmt.Errorf("%w: provider %q is not configured", ErrUnknownProvider, p.Provider)
	}
	lreq := &LookupRequest{PaymentID: p.ID, Reference: p.ProviderRef, PaymentKey: p.IdempotencyKey, Amount: p.Amount}
	for i := len(p.Attempts) - 1; i >= 0; i-- {
		if a := p.Attempts[i]; a.Operation == OpAuthorize && a.Provider == p.Provider {
			lreq.ProviderKey, lreq.AttemptStartedAt = a.ProviderKey, a.StartedAt
			break
		}
	}
	res, _, err := o.callProvider(ctx, rp, OpLookup, func(cctx context.Context) (*ProviderPayment, error) {
		return rp.p.Lookup(cctx, lreq)
	})
	notFound := err != nil && KindOf(err) == KindNotFound
	if err != nil && !notFound {
		return p, err
	}
	statusBefore := p.Status
	for tries := 0; ; tries++ {
		before := p.Version
		if notFound {
			// The provider is certain it never took the payment.
			if p.Status != StatusUnknown && p.Status != StatusPending {
				return p, err
			}
			p.Status = StatusFailed
			p.FailureKind, p.FailureCode = KindNotFound, "not_found_at_provider"
		} else {
			applyProviderPayment(p, res)
			for i := range p.Attempts {
				if p.Attempts[i].Outcome == OutcomeUnknown && p.Attempts[i].Provider == p.Provider {
					p.Attempts[i].Outcome = OutcomeSucceeded
				}
			}
			if p.Status != StatusUnknown && p.Status != StatusFailed {
				p.FailureKind, p.FailureCode = KindNone, ""
			}
		}
		p.UpdatedAt = o.now()
		serr := o.cfg.Store.SavePayment(ctx, p, before)
		if serr == nil {
			o.announceSync(ctx, p, statusBefore)
			return p, nil
		}
		if !errors.Is(serr, ErrVersionConflict) || tries >= 8 {
			return p, storeErr("sync", serr)
		}
		if p, serr = o.cfg.Store.GetPayment(ctx, paymentID); serr != nil {
			return nil, storeErr("sync", serr)
		}
	}
}

// announceSync hands a status change made by Sync to the dispatcher as an
// event, as a webhook would have been: the subscriber (an order service)
// must hear of a payment the reconciler settled, or the order waits for a
// webhook that never comes. The event id names the payment and its version,
// so a repeated Sync of the same change is one delivery.
func (o *Orchestrator) announceSync(ctx context.Context, p *Payment, before Status) {
	d := o.dispatcher.Load()
	if d == nil || p.Status == before {
		return
	}
	typ := EventOther
	switch p.Status {
	case StatusAuthorized:
		typ = EventAuthorized
	case StatusCaptured:
		typ = EventCaptured
	case StatusRefunded:
		typ = EventRefunded
	case StatusFailed:
		typ = EventFailed
	case StatusVoided:
		typ = EventVoided
	case StatusRequiresAction:
		typ = EventActionRequired
	}
	ev := &Event{
		Provider: p.Provider, ID: fmt.Sprintf("sync/%s/%d", p.ID, p.Version), Type: typ,
		ProviderRef: p.ProviderRef, PaymentKey: p.IdempotencyKey, Amount: p.Amount,
		Success: p.Status != StatusFailed, Code: p.FailureCode, OccurredAt: p.UpdatedAt,
	}
	if err := d.enqueue(ctx, ev, p.ID); err != nil {
		o.log.Warn("paymux: could not announce a synced payment; the subscriber hears of it by webhook or the next change", "payment", p.ID, "err", err)
	}
}

// lookupAttempt asks the provider what became of an authorisation attempt
// whose answer was lost, by reference when known, else by the attempt's
// provider key and the paymux key.
func (o *Orchestrator) lookupAttempt(ctx context.Context, rp *registeredProvider, p *Payment, a Attempt) (*ProviderPayment, error) {
	res, _, err := o.callProvider(ctx, rp, OpLookup, func(cctx context.Context) (*ProviderPayment, error) {
		return rp.p.Lookup(cctx, &LookupRequest{PaymentID: p.ID, Reference: p.ProviderRef, ProviderKey: a.ProviderKey,
			PaymentKey: p.IdempotencyKey, Amount: p.Amount, AttemptStartedAt: a.StartedAt})
	})
	return res, err
}
