package app

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/paymux/paymux"
)

// errStoreCut is what a cut store answers: like a dead connection.
var errStoreCut = errors.New("store connection cut (chaos)")

// CuttableStore wraps paymux's store so that chaos can cut the connection:
// while cut, every call fails the way a lost connection does.
type CuttableStore struct {
	paymux.Store
	cut atomic.Bool
}

// Cut fails every call until Restore.
func (c *CuttableStore) Cut() { c.cut.Store(true) }

// Restore ends a Cut.
func (c *CuttableStore) Restore() { c.cut.Store(false) }

// CutFor cuts the store for d, in the background.
func (c *CuttableStore) CutFor(d time.Duration) {
	c.Cut()
	time.AfterFunc(d, c.Restore)
}

func (c *CuttableStore) down() error {
	if c.cut.Load() {
		return errStoreCut
	}
	return nil
}

func (c *CuttableStore) ClaimIdempotency(ctx context.Context, p paymux.ClaimParams) (*paymux.IdempotencyRecord, bool, error) {
	if err := c.down(); err != nil {
		return nil, false, err
	}
	return c.Store.ClaimIdempotency(ctx, p)
}

func (c *CuttableStore) CheckpointIdempotency(ctx context.Context, key, token string, p *paymux.Payment, lease time.Duration) error {
	if err := c.down(); err != nil {
		return err
	}
	return c.Store.CheckpointIdempotency(ctx, key, token, p, lease)
}

func (c *CuttableStore) CompleteIdempotency(ctx context.Context, key, token string, p *paymux.Payment) error {
	if err := c.down(); err != nil {
		return err
	}
	return c.Store.CompleteIdempotency(ctx, key, token, p)
}

func (c *CuttableStore) ReleaseIdempotency(ctx context.Context, key, token string) error {
	if err := c.down(); err != nil {
		return err
	}
	return c.Store.ReleaseIdempotency(ctx, key, token)
}

func (c *CuttableStore) GetIdempotency(ctx context.Context, key string) (*paymux.IdempotencyRecord, error) {
	if err := c.down(); err != nil {
		return nil, err
	}
	return c.Store.GetIdempotency(ctx, key)
}

func (c *CuttableStore) GetPayment(ctx context.Context, id string) (*paymux.Payment, error) {
	if err := c.down(); err != nil {
		return nil, err
	}
	return c.Store.GetPayment(ctx, id)
}

func (c *CuttableStore) GetPaymentByProviderRef(ctx context.Context, provider, ref string) (*paymux.Payment, error) {
	if err := c.down(); err != nil {
		return nil, err
	}
	return c.Store.GetPaymentByProviderRef(ctx, provider, ref)
}

func (c *CuttableStore) SavePayment(ctx context.Context, p *paymux.Payment, expected int64) error {
	if err := c.down(); err != nil {
		return err
	}
	return c.Store.SavePayment(ctx, p, expected)
}

func (c *CuttableStore) ClaimEvent(ctx context.Context, provider, id string, lease time.Duration) (paymux.EventClaim, error) {
	if err := c.down(); err != nil {
		return 0, err
	}
	return c.Store.ClaimEvent(ctx, provider, id, lease)
}

func (c *CuttableStore) CompleteEvent(ctx context.Context, provider, id string, ttl time.Duration) error {
	if err := c.down(); err != nil {
		return err
	}
	return c.Store.CompleteEvent(ctx, provider, id, ttl)
}

func (c *CuttableStore) ReleaseEvent(ctx context.Context, provider, id string) error {
	if err := c.down(); err != nil {
		return err
	}
	return c.Store.ReleaseEvent(ctx, provider, id)
}

func (c *CuttableStore) EnqueueDelivery(ctx context.Context, d *paymux.Delivery) error {
	if err := c.down(); err != nil {
		return err
	}
	return c.Store.EnqueueDelivery(ctx, d)
}

func (c *CuttableStore) ClaimDueDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*paymux.Delivery, error) {
	if err := c.down(); err != nil {
		return nil, err
	}
	return c.Store.ClaimDueDeliveries(ctx, now, lease, limit)
}

// The store's optional one-round-trip capabilities pass through the cut, so
// that wrapping the store for chaos does not change how many round trips
// the platform makes; a store without one gets the step-by-step calls.
var (
	_ paymux.EventCompleter      = (*CuttableStore)(nil)
	_ paymux.EventPaymentClaimer = (*CuttableStore)(nil)
	_ paymux.DeliveryCompleter   = (*CuttableStore)(nil)
	_ paymux.PaymentsGetter      = (*CuttableStore)(nil)
)

func (c *CuttableStore) ClaimEventForPayment(ctx context.Context, provider, eventID string, lease time.Duration, providerRef string) (paymux.EventClaim, *paymux.Payment, error) {
	if err := c.down(); err != nil {
		return 0, nil, err
	}
	if pc, ok := c.Store.(paymux.EventPaymentClaimer); ok {
		return pc.ClaimEventForPayment(ctx, provider, eventID, lease, providerRef)
	}
	claim, err := c.Store.ClaimEvent(ctx, provider, eventID, lease)
	return claim, nil, err // the caller reads the payment
}

func (c *CuttableStore) CompleteEventWithDelivery(ctx context.Context, provider, eventID string, ttl time.Duration, d *paymux.Delivery) error {
	if err := c.down(); err != nil {
		return err
	}
	if ec, ok := c.Store.(paymux.EventCompleter); ok {
		return ec.CompleteEventWithDelivery(ctx, provider, eventID, ttl, d)
	}
	// The delivery first: the event is never marked without it.
	if err := c.Store.EnqueueDelivery(ctx, d); err != nil {
		return err
	}
	return c.Store.CompleteEvent(ctx, provider, eventID, ttl)
}

func (c *CuttableStore) CompleteDeliveries(ctx context.Context, ids []string) error {
	if err := c.down(); err != nil {
		return err
	}
	if dc, ok := c.Store.(paymux.DeliveryCompleter); ok {
		return dc.CompleteDeliveries(ctx, ids)
	}
	for _, id := range ids {
		if err := c.Store.CompleteDelivery(ctx, id); err != nil && !errors.Is(err, paymux.ErrNotFound) {
			return err
		}
	}
	return nil
}

func (c *CuttableStore) GetPayments(ctx context.Context, ids []string) (map[string]*paymux.Payment, error) {
	if err := c.down(); err != nil {
		return nil, err
	}
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
}
