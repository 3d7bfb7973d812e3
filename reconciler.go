package paymux

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ReconcileOptions configures Reconcile. Zero values mean:
//
//	OlderThan     5 min: payments untouched for this long are checked
//	Limit         100 payments and 100 stale claims per call
//	Rate          5 Syncs per second per provider, burst 5
//
// Reconcile Syncs every payment that is still unknown, pending or waiting
// for the buyer after OlderThan, and resolves idempotency claims whose holder
// died mid-call, so no payment stays unknown for ever.
type ReconcileOptions struct {
	OlderThan time.Duration
	Limit     int
	Rate      rate.Limit
	Burst     int
}

// ReconcileReport says what one Reconcile pass did.
type ReconcileReport struct {
	Checked  int
	Resolved int // left unknown/pending for a settled state
	Claims   int // abandoned claims finished
	Errors   int
}

// Reconciler runs Reconcile passes with per-provider rate limits that
// persist across passes, and keeps the totals of its passes (Totals).
type Reconciler struct {
	o        *Orchestrator
	opts     ReconcileOptions
	limiters map[string]*rate.Limiter

	mu    sync.Mutex
	total ReconcileReport
}

// NewReconciler builds a reconciler. Call Reconcile from a cron, or Run for a
// background loop.
func (o *Orchestrator) NewReconciler(opts ReconcileOptions) *Reconciler {
	if opts.OlderThan <= 0 {
		opts.OlderThan = 5 * time.Minute
	}
	if opts.Limit <= 0 {
		opts.Limit = 100
	}
	if opts.Rate <= 0 {
		opts.Rate = 5
	}
	if opts.Burst <= 0 {
		opts.Burst = 5
	}
	r := &Reconciler{o: o, opts: opts, limiters: map[string]*rate.Limiter{}}
	for name := range o.providers {
		r.limiters[name] = rate.NewLimiter(opts.Rate, opts.Burst)
	}
	return r
}

// Run reconciles every interval until ctx ends.
func (r *Reconciler) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := r.Reconcile(ctx); err != nil && ctx.Err() == nil {
			r.o.log.Warn("paymux: reconcile pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Totals adds up what every pass so far did, including the part of a pass
// that ended in an error: for metrics, and for reports such as the surge's.
func (r *Reconciler) Totals() ReconcileReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// Reconcile makes one pass.
func (r *Reconciler) Reconcile(ctx context.Context) (rep ReconcileReport, err error) {
	defer func() {
		r.mu.Lock()
		r.total.Checked += rep.Checked
		r.total.Resolved += rep.Resolved
		r.total.Claims += rep.Claims
		r.total.Errors += rep.Errors
		r.mu.Unlock()
	}()
	o := r.o
	before := o.now().Add(-r.opts.OlderThan)
	claims, err := o.cfg.Store.ListStaleClaims(ctx, o.now(), r.opts.Limit)
	if err != nil {
		return rep, storeErr("list stale claims", err)
	}
	for _, rec := range claims {
		if err := r.wait(ctx, rec.Payment); err != nil {
			return rep, err
		}
		if err := r.resolveClaim(ctx, rec); err != nil {
			rep.Errors++
			o.log.Warn("paymux: resolving abandoned claim failed", "key", rec.Key, "err", err)
			continue
		}
		rep.Claims++
	}
	pays, err := o.cfg.Store.ListUnsettledPayments(ctx, before, r.opts.Limit)
	if err != nil {
		return rep, storeErr("list unsettled payments", err)
	}
	for _, p := range pays {
		if err := r.wait(ctx, p); err != nil {
			return rep, err
		}
		rep.Checked++
		np, err := o.Sync(ctx, p.ID)
		if err != nil {
			rep.Errors++
			o.log.Info("paymux: reconcile sync failed", "payment", p.ID, "err", err)
			continue
		}
		if np.Status != p.Status {
			rep.Resolved++
		}
	}
	return rep, nil
}

func (r *Reconciler) wait(ctx context.Context, p *Payment) error {
	if p == nil {
		return nil
	}
	if lim := r.limiters[p.Provider]; lim != nil {
		return lim.Wait(ctx)
	}
	return nil
}

// resolveClaim finishes a claim whose holder died: it takes the claim over,
// asks the provider about the attempt that was in flight, and records the
// answer. If the provider never saw it, the key is freed for the shop's retry.
func (r *Reconciler) resolveClaim(ctx context.Context, rec *IdempotencyRecord) error {
	o := r.o
	snap := rec.Payment
	if snap == nil {
		return errors.New("abandoned claim has no snapshot")
	}
	cr, err := o.claim(ctx, rec.Key, rec.Fingerprint, snap)
	if err != nil {
		if errors.Is(err, ErrInProgress) {
			return nil // someone else is on it
		}
		return err
	}
	if !cr.claimed {
		return nil // completed meanwhile
	}
	p := cr.rec.Payment.Clone()
	if !strings.HasPrefix(rec.Key, nsAuthorize) {
		// A capture, refund or void whose holder died: the payment itself is
		// recorded; bring it up to date and free the key, whose retry reuses
		// the same provider key.
		o.release(ctx, rec.Key, cr.token)
		_, err := o.Sync(ctx, p.ID)
		return err
	}
	idx := len(p.Attempts) - 1
	if idx < 0 || p.Attempts[idx].Outcome != OutcomePending {
		o.release(ctx, rec.Key, cr.token)
		return nil
	}
	a := p.Attempts[idx]
	rp := o.providers[a.Provider]
	if rp == nil {
		p.Status = StatusUnknown
		_, err := o.finish(ctx, rec.Key, cr.token, p, nil)
		return err
	}
	res, lerr := o.lookupAttempt(ctx, rp, p, a)
	switch {
	case lerr == nil:
		p.Attempts[idx].Outcome = OutcomeSucceeded
		applyProviderPayment(p, res)
	case KindOf(lerr) == KindNotFound && allEarlierAttemptsDefinitive(p):
		o.release(ctx, rec.Key, cr.token)
		return nil
	default:
		p.Attempts[idx].Outcome = OutcomeUnknown
		p.Status = StatusUnknown
		p.FailureKind = KindOutcomeUnknown
	}
	_, err = o.finish(ctx, rec.Key, cr.token, p, nil)
	return err
}

func allEarlierAttemptsDefinitive(p *Payment) bool {
	for _, a := range p.Attempts[:len(p.Attempts)-1] {
		if a.Outcome != OutcomeFailed {
			return false
		}
	}
	return true
}
