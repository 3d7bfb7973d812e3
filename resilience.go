package paymux

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/sony/gobreaker/v2"
)

// BreakerSettings configures the circuit breaker paymux keeps per provider.
// The zero value of each field means its default.
type BreakerSettings struct {
	// ConsecutiveFailures trips the breaker (default 5). Under concurrent
	// load partial failures come in runs: when one call in five fails, a
	// run of five comes about once in 4,000 calls, and an open breaker then
	// refuses the four calls in five that would have succeeded. For a
	// provider that takes hundreds of calls a second, set it higher (the
	// reference platform uses 20) and let FailureRatio catch a provider
	// that fails most of its calls.
	ConsecutiveFailures uint32
	// FailureRatio trips the breaker when at least MinRequests calls in the
	// rolling Window failed at this ratio (default 0: off).
	FailureRatio float64
	// MinRequests is the sample size FailureRatio needs (default 20).
	MinRequests uint32
	// Window is the rolling window of counts (default 60 s, in 6 buckets).
	Window time.Duration
	// OpenTimeout is how long the breaker stays open before letting a probe
	// through (default 30 s).
	OpenTimeout time.Duration
	// HalfOpenRequests is how many probes may pass while half-open (default 1).
	HalfOpenRequests uint32
	// SharedRefresh is how long an instance trusts its copy of a shared
	// breaker's state (Config.BreakerStore) before reading it again
	// (default 250 ms): another instance's trip is seen within it.
	SharedRefresh time.Duration
}

// RetrySettings configures retries of one attempt on one provider with the
// same provider idempotency key. The zero value of each field means its
// default.
type RetrySettings struct {
	// MaxRetries after the first call (default 2; negative: none).
	MaxRetries int
	// InitialInterval between calls (default 50 ms), growing by Multiplier
	// (default 2) up to MaxInterval (default 1 s), each randomised by
	// RandomizationFactor (default 0.5).
	InitialInterval     time.Duration
	MaxInterval         time.Duration
	Multiplier          float64
	RandomizationFactor float64
}

// breakerFailure reports whether an error counts against a provider's health.
// Declines and request errors are the buyer's or the shop's, not the
// provider's, so they never trip a breaker.
func breakerFailure(err error) bool {
	switch KindOf(err) {
	case KindUnavailable, KindOutcomeUnknown, KindRateLimited, KindAuthentication:
		return !errors.Is(err, context.Canceled)
	}
	return false
}

// providerBreaker is the circuit breaker around one provider.
type providerBreaker interface {
	// Call runs fn unless the breaker is open.
	Call(fn func() (*ProviderPayment, error)) (*ProviderPayment, error)
	// Open reports whether calls are being refused.
	Open() bool
	State() gobreaker.State
}

func gobreakerSettings(name string, s BreakerSettings, logger *slog.Logger) gobreaker.Settings {
	consecutive := s.ConsecutiveFailures
	if consecutive == 0 {
		consecutive = 5
	}
	minReq := s.MinRequests
	if minReq == 0 {
		minReq = 20
	}
	window := s.Window
	if window <= 0 {
		window = time.Minute
	}
	timeout := s.OpenTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ratio := s.FailureRatio
	return gobreaker.Settings{
		Name:         name,
		MaxRequests:  max(s.HalfOpenRequests, 1),
		Interval:     window,
		BucketPeriod: window / 6,
		Timeout:      timeout,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			if c.ConsecutiveFailures >= consecutive {
				return true
			}
			return ratio > 0 && c.Requests >= minReq && float64(c.TotalFailures) >= ratio*float64(c.Requests)
		},
		OnStateChange: func(name string, from, to gobreaker.State) {
			logger.Warn("paymux: circuit breaker changed state", "provider", name, "from", from.String(), "to", to.String())
		},
		IsSuccessful: func(err error) bool { return err == nil },
		IsExcluded:   func(err error) bool { return err != nil && !breakerFailure(err) },
	}
}

type localBreaker struct {
	cb *gobreaker.CircuitBreaker[*ProviderPayment]
}

func (b localBreaker) Call(fn func() (*ProviderPayment, error)) (*ProviderPayment, error) {
	return b.cb.Execute(fn)
}
func (b localBreaker) Open() bool             { return b.cb.State() == gobreaker.StateOpen }
func (b localBreaker) State() gobreaker.State { return b.cb.State() }

// sharedBreaker keeps breaker state in a gobreaker.SharedDataStore so that
// every instance of the shop sees the same state.
//
// gobreaker's distributed Execute holds the fleet-wide lock for the whole
// provider call and costs four store round trips per call, which would line
// every payment to a provider up behind one lock. Instead, the state is read
// without the lock (a plain GetData, cached for refresh) and an outcome is
// recorded under the lock only when it can change something: a failure, or a
// success while failures are counted or the breaker is not closed. With the
// default consecutive-failures rule a success with no failures counted changes
// nothing, so the happy path costs no breaker round trips most of the time.
type sharedBreaker struct {
	dcb     *gobreaker.DistributedCircuitBreaker[*ProviderPayment]
	store   gobreaker.SharedDataStore
	key     string
	ratio   bool // FailureRatio is on: every success counts
	refresh time.Duration
	clock   func() time.Time
	logger  *slog.Logger

	mu       sync.Mutex // serialises this process's writes to the shared state
	cacheMu  sync.Mutex
	cached   gobreaker.SharedState
	cachedAt time.Time
}

// shared returns the shared state, from the cache when it is fresh.
func (b *sharedBreaker) shared() gobreaker.SharedState {
	now := b.clock()
	b.cacheMu.Lock()
	if !b.cachedAt.IsZero() && now.Sub(b.cachedAt) < b.refresh {
		st := b.cached
		b.cacheMu.Unlock()
		return st
	}
	b.cacheMu.Unlock()
	var st gobreaker.SharedState
	data, err := b.store.GetData(b.key)
	if err == nil && len(data) > 0 {
		err = json.Unmarshal(data, &st)
	}
	if err != nil {
		// The shared store is down: let calls through; the idempotency
		// store, not the breaker, protects the money.
		b.logger.Warn("paymux: shared breaker state unavailable", "provider", b.dcb.Name(), "err", err)
		st = gobreaker.SharedState{State: gobreaker.StateClosed}
	}
	b.cacheMu.Lock()
	b.cached, b.cachedAt = st, now
	b.cacheMu.Unlock()
	return st
}

func (b *sharedBreaker) forget() {
	b.cacheMu.Lock()
	b.cachedAt = time.Time{}
	b.cacheMu.Unlock()
}

// State computes the state as gobreaker would, without taking the lock: an
// open breaker whose timeout has passed is half-open.
func (b *sharedBreaker) State() gobreaker.State {
	st := b.shared()
	if st.State == gobreaker.StateOpen && !b.clock().Before(st.Expiry) {
		return gobreaker.StateHalfOpen
	}
	return st.State
}

func (b *sharedBreaker) Open() bool { return b.State() == gobreaker.StateOpen }

func (b *sharedBreaker) Call(fn func() (*ProviderPayment, error)) (*ProviderPayment, error) {
	st := b.shared()
	state := st.State
	if state == gobreaker.StateOpen && !b.clock().Before(st.Expiry) {
		state = gobreaker.StateHalfOpen
	}
	if state == gobreaker.StateOpen {
		return nil, gobreaker.ErrOpenState
	}
	res, err := fn()
	switch {
	case err != nil && !breakerFailure(err):
		return res, err // a decline: the provider is healthy; nothing to count
	case err == nil && state == gobreaker.StateClosed && st.Counts.ConsecutiveFailures == 0 && !b.ratio:
		return res, err // nothing this success could change
	}
	b.mu.Lock()
	_, recErr := b.dcb.Execute(func() (*ProviderPayment, error) { return res, err })
	b.mu.Unlock()
	b.forget()
	if recErr != nil && recErr != err && !errors.Is(recErr, gobreaker.ErrOpenState) && !errors.Is(recErr, gobreaker.ErrTooManyRequests) {
		b.logger.Warn("paymux: recording shared breaker outcome failed", "provider", b.dcb.Name(), "err", recErr)
	}
	return res, err
}

func newBreaker(name string, s BreakerSettings, store gobreaker.SharedDataStore, clock func() time.Time, logger *slog.Logger) (providerBreaker, error) {
	st := gobreakerSettings(name, s, logger)
	if store == nil {
		return localBreaker{gobreaker.NewCircuitBreaker[*ProviderPayment](st)}, nil
	}
	dcb, err := gobreaker.NewDistributedCircuitBreaker[*ProviderPayment](store, st)
	if err != nil {
		return nil, err
	}
	refresh := s.SharedRefresh
	if refresh <= 0 {
		refresh = 250 * time.Millisecond
	}
	// gobreaker keeps the shared state under this key (its sharedStateKey).
	return &sharedBreaker{dcb: dcb, store: store, key: "gobreaker:state:" + name, ratio: s.FailureRatio > 0,
		refresh: refresh, clock: clock, logger: logger}, nil
}

// breakerError turns gobreaker's refusals into Unavailable: the call was
// never made, so failing over is safe.
func breakerError(provider string, op Operation, err error) error {
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return &ProviderError{Provider: provider, Operation: op, Kind: KindUnavailable, Code: "breaker_open", Message: "circuit breaker open", Err: err}
	}
	return err
}

func (s RetrySettings) backoff(ctx context.Context) backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 50 * time.Millisecond
	if s.InitialInterval > 0 {
		b.InitialInterval = s.InitialInterval
	}
	b.MaxInterval = time.Second
	if s.MaxInterval > 0 {
		b.MaxInterval = s.MaxInterval
	}
	if s.Multiplier > 0 {
		b.Multiplier = s.Multiplier
	}
	if s.RandomizationFactor > 0 {
		b.RandomizationFactor = s.RandomizationFactor
	}
	b.MaxElapsedTime = 0 // bounded by MaxRetries and ctx instead
	b.Reset()
	retries := s.MaxRetries
	if retries == 0 {
		retries = 2
	}
	if retries < 0 {
		retries = 0
	}
	return backoff.WithContext(backoff.WithMaxRetries(b, uint64(retries)), ctx)
}

// classify decides what a failed call means: the table row for its code
// (shop overrides first, then the provider's table), else the default for its
// kind.
func (o *Orchestrator) classify(provider string, op Operation, err error) Classification {
	var pe *ProviderError
	if !errors.As(err, &pe) {
		return Classification{Kind: KindOutcomeUnknown, Decision: DecisionStop}
	}
	for _, code := range [2]string{pe.Code, pe.DeclineCode} {
		if code == "" {
			continue
		}
		if c, ok := o.cfg.DecisionOverrides.Lookup(provider, op, code); ok {
			return c
		}
		if p := o.providers[provider]; p != nil {
			if c, ok := p.table.Lookup(provider, op, code); ok {
				return c
			}
		}
	}
	return Classification{Kind: pe.Kind, Decision: DefaultDecision(pe.Kind)}
}

// callProvider is retry(breaker(call)) for one attempt on one provider. The
// same provider idempotency key is used on every retry, so the provider
// de-duplicates them. It returns the last error with its classification.
func (o *Orchestrator) callProvider(ctx context.Context, p *registeredProvider, op Operation, call func(context.Context) (*ProviderPayment, error)) (*ProviderPayment, Classification, error) {
	var (
		res *ProviderPayment
		cls Classification
	)
	operation := func() error {
		var err error
		res, err = p.breaker.Call(func() (*ProviderPayment, error) {
			cctx, cancel := context.WithTimeout(ctx, o.cfg.CallTimeout)
			defer cancel()
			return call(cctx)
		})
		if err == nil {
			return nil
		}
		err = breakerError(p.name, op, err)
		cls = o.classify(p.name, op, err)
		if cls.Decision == DecisionRetry && ctx.Err() == nil {
			return err
		}
		return backoff.Permanent(err)
	}
	// The first call runs without building a backoff: the happy path pays
	// for no retry machinery.
	err := operation()
	var perm *backoff.PermanentError
	var b backoff.BackOff
	for err != nil && !errors.As(err, &perm) {
		if b == nil {
			b = o.cfg.Retry.backoff(ctx)
		}
		wait := b.NextBackOff()
		if wait == backoff.Stop {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			err = backoff.Permanent(err)
			continue
		case <-t.C:
		}
		err = operation()
	}
	if err != nil {
		if errors.As(err, &perm) {
			err = perm.Err
		}
		if cls.Kind == KindNone {
			cls = o.classify(p.name, op, err)
		}
		if cls.Decision == DecisionRetry {
			// Retries ran out. Only kinds that prove nothing was processed
			// may move on to another provider.
			if cls.Kind == KindUnavailable || cls.Kind == KindRateLimited {
				cls.Decision = DecisionFailover
			} else {
				cls.Decision = DecisionStop
			}
		}
		return nil, cls, err
	}
	return res, Classification{}, nil
}
