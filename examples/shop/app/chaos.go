package app

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/paymux/paymux"
)

// errStoreCut is what a cut store answers: like a dead connection.
var errStoreCut = errors.New("store connection cut (chaos)")

// errReplyLost is what a call in flight when the cut began answers: it
// reached the store, and what it wrote stays written.
var errReplyLost = fmt.Errorf("%w after the call was sent; its reply is lost", errStoreCut)

// CuttableStore wraps paymux's store so that chaos can cut the connection
// the way a network does: while cut, every call fails, and a call that was
// in flight when the cut began has done its work in the store but its
// caller hears only the failure.
type CuttableStore struct {
	paymux.Store
	cut  atomic.Bool
	cuts atomic.Uint64 // cuts begun so far
	lost atomic.Int64  // replies lost to a cut
}

// LostReplies is how many calls did their work in the store but lost
// their replies to a cut.
func (c *CuttableStore) LostReplies() int64 { return c.lost.Load() }

// Cut fails every call until Restore, and loses the replies of calls in
// flight.
func (c *CuttableStore) Cut() {
	c.cuts.Add(1)
	c.cut.Store(true)
}

// Restore ends a Cut.
func (c *CuttableStore) Restore() { c.cut.Store(false) }

// CutFor cuts the store for d, in the background.
func (c *CuttableStore) CutFor(d time.Duration) {
	c.Cut()
	time.AfterFunc(d, c.Restore)
}

// call runs f unless the store is cut; if a cut begins while f runs, its
// result is lost.
func call[T any](c *CuttableStore, f func() (T, error)) (T, error) {
	var zero T
	before := c.cuts.Load()
	if c.cut.Load() {
		return zero, errStoreCut
	}
	v, err := f()
	if c.cuts.Load() != before {
		c.lost.Add(1)
		return zero, errReplyLost
	}
	return v, err
}

func callErr(c *CuttableStore, f func() error) error {
	_, err := call(c, func() (struct{}, error) { return struct{}{}, f() })
	return err
}

var (
	_ paymux.EventCompleter          = (*CuttableStore)(nil)
	_ paymux.EventPaymentClaimer     = (*CuttableStore)(nil)
	_ paymux.UnchangedEventCompleter = (*CuttableStore)(nil)
	_ paymux.DeliveryCompleter       = (*CuttableStore)(nil)
	_ paymux.PaymentsGetter          = (*CuttableStore)(nil)
)

func (c *CuttableStore) ClaimIdempotency(ctx context.Context, p paymux.ClaimParams) (*paymux.IdempotencyRecord, bool, error) {
	type claim struct {
		rec *paymux.IdempotencyRecord
		ok  bool
	}
	r, err := call(c, func() (claim, error) {
		rec, ok, err := c.Store.ClaimIdempotency(ctx, p)
		return claim{rec, ok}, err
	})
	return r.rec, r.ok, err
}

func (c *CuttableStore) CheckpointIdempotency(ctx context.Context, key, token string, p *paymux.Payment, lease time.Duration) error {
	return callErr(c, func() error { return c.Store.CheckpointIdempotency(ctx, key, token, p, lease) })
}

func (c *CuttableStore) CompleteIdempotency(ctx context.Context, key, token string, p *paymux.Payment) error {
	return callErr(c, func() error { return c.Store.CompleteIdempotency(ctx, key, token, p) })
}

func (c *CuttableStore) ReleaseIdempotency(ctx context.Context, key, token string) error {
	return callErr(c, func() error { return c.Store.ReleaseIdempotency(ctx, key, token) })
}

func (c *CuttableStore) GetIdempotency(ctx context.Context, key string) (*paymux.IdempotencyRecord, error) {
	return call(c, func() (*paymux.IdempotencyRecord, error) { return c.Store.GetIdempotency(ctx, key) })
}

func (c *CuttableStore) ListStaleClaims(ctx context.Context, before time.Time, limit int) ([]*paymux.IdempotencyRecord, error) {
	return call(c, func() ([]*paymux.IdempotencyRecord, error) { return c.Store.ListStaleClaims(ctx, before, limit) })
}

func (c *CuttableStore) GetPayment(ctx context.Context, id string) (*paymux.Payment, error) {
	return call(c, func() (*paymux.Payment, error) { return c.Store.GetPayment(ctx, id) })
}

func (c *CuttableStore) GetPaymentByProviderRef(ctx context.Context, provider, ref string) (*paymux.Payment, error) {
	return call(c, func() (*paymux.Payment, error) { return c.Store.GetPaymentByProviderRef(ctx, provider, ref) })
}

func (c *CuttableStore) SavePayment(ctx context.Context, p *paymux.Payment, expected int64) error {
	return callErr(c, func() error { return c.Store.SavePayment(ctx, p, expected) })
}

func (c *CuttableStore) ListUnsettledPayments(ctx context.Context, before time.Time, limit int) ([]*paymux.Payment, error) {
	return call(c, func() ([]*paymux.Payment, error) { return c.Store.ListUnsettledPayments(ctx, before, limit) })
}

func (c *CuttableStore) ClaimEvent(ctx context.Context, provider, id string, lease time.Duration) (paymux.EventClaim, error) {
	return call(c, func() (paymux.EventClaim, error) { return c.Store.ClaimEvent(ctx, provider, id, lease) })
}

func (c *CuttableStore) CompleteEvent(ctx context.Context, provider, id string, ttl time.Duration) error {
	return callErr(c, func() error { return c.Store.CompleteEvent(ctx, provider, id, ttl) })
}

func (c *CuttableStore) ReleaseEvent(ctx context.Context, provider, id string) error {
	return callErr(c, func() error { return c.Store.ReleaseEvent(ctx, provider, id) })
}

func (c *CuttableStore) EnqueueDelivery(ctx context.Context, d *paymux.Delivery) error {
	return callErr(c, func() error { return c.Store.EnqueueDelivery(ctx, d) })
}

func (c *CuttableStore) ClaimDueDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*paymux.Delivery, error) {
	return call(c, func() ([]*paymux.Delivery, error) { return c.Store.ClaimDueDeliveries(ctx, now, lease, limit) })
}

func (c *CuttableStore) CompleteDelivery(ctx context.Context, id string) error {
	return callErr(c, func() error { return c.Store.CompleteDelivery(ctx, id) })
}

func (c *CuttableStore) RetryDelivery(ctx context.Context, id string, next time.Time, lastErr string) error {
	return callErr(c, func() error { return c.Store.RetryDelivery(ctx, id, next, lastErr) })
}

func (c *CuttableStore) DeadLetterDelivery(ctx context.Context, id string, lastErr string) error {
	return callErr(c, func() error { return c.Store.DeadLetterDelivery(ctx, id, lastErr) })
}

func (c *CuttableStore) GetDelivery(ctx context.Context, id string) (*paymux.Delivery, error) {
	return call(c, func() (*paymux.Delivery, error) { return c.Store.GetDelivery(ctx, id) })
}

func (c *CuttableStore) ClaimEventForPayment(ctx context.Context, provider, eventID string, lease time.Duration, providerRef string) (paymux.EventClaim, *paymux.Payment, error) {
	type claim struct {
		claim paymux.EventClaim
		p     *paymux.Payment
	}
	r, err := call(c, func() (claim, error) {
		if pc, ok := c.Store.(paymux.EventPaymentClaimer); ok {
			ec, p, err := pc.ClaimEventForPayment(ctx, provider, eventID, lease, providerRef)
			return claim{ec, p}, err
		}
		ec, err := c.Store.ClaimEvent(ctx, provider, eventID, lease)
		return claim{claim: ec}, err // the caller reads the payment
	})
	return r.claim, r.p, err
}

func (c *CuttableStore) CompletesUnchangedEvents() bool {
	uc, ok := c.Store.(paymux.UnchangedEventCompleter)
	return ok && uc.CompletesUnchangedEvents()
}

func (c *CuttableStore) CompleteUnchangedEvent(ctx context.Context, provider, eventID string, ttl time.Duration, d *paymux.Delivery, paymentID string, version int64) (bool, error) {
	uc, ok := c.Store.(paymux.UnchangedEventCompleter)
	if !ok {
		return false, nil // the caller goes the usual way
	}
	return call(c, func() (bool, error) {
		return uc.CompleteUnchangedEvent(ctx, provider, eventID, ttl, d, paymentID, version)
	})
}

func (c *CuttableStore) CompleteEventWithDelivery(ctx context.Context, provider, eventID string, ttl time.Duration, d *paymux.Delivery) error {
	return callErr(c, func() error {
		if ec, ok := c.Store.(paymux.EventCompleter); ok {
			return ec.CompleteEventWithDelivery(ctx, provider, eventID, ttl, d)
		}
		// The delivery first: the event is never marked without it.
		if err := c.Store.EnqueueDelivery(ctx, d); err != nil {
			return err
		}
		return c.Store.CompleteEvent(ctx, provider, eventID, ttl)
	})
}

func (c *CuttableStore) CompleteDeliveries(ctx context.Context, ids []string) error {
	return callErr(c, func() error {
		if dc, ok := c.Store.(paymux.DeliveryCompleter); ok {
			return dc.CompleteDeliveries(ctx, ids)
		}
		for _, id := range ids {
			if err := c.Store.CompleteDelivery(ctx, id); err != nil && !errors.Is(err, paymux.ErrNotFound) {
				return err
			}
		}
		return nil
	})
}

func (c *CuttableStore) GetPayments(ctx context.Context, ids []string) (map[string]*paymux.Payment, error) {
	return call(c, func() (map[string]*paymux.Payment, error) {
		if pg, ok := c.Store.(paymux.PaymentsGetter); ok {
			return pg.GetPayments(ctx, ids)
		}
		out := make(map[string]*paymux.Payment, len(ids))
		for _, id := range ids {
			p, err := c.Store.GetPayment(ctx, id)
			if errors.Is(err, paymux.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			out[id] = p
		}
		return out, nil
	})
}
