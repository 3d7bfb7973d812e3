// Package memory is an in-process paymux.Store: the default of tests,
// examples and single-process shops that accept losing state on restart.
//
// It keeps everything in maps behind one mutex. Stored payments are never
// mutated in place: each write stores a fresh clone, and each read returns a
// fresh clone, so callers can never alias the store's state. Expired
// idempotency records and events are dropped lazily when touched, and swept
// every few thousand writes so that an idle key does not live for ever.
package memory

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/paymux/paymux"
)

// Options configures a Store. The zero value is ready to use.
type Options struct {
	// Clock returns the current time; nil means time.Now. It decides lease
	// and TTL expiry, so tests can drive expiry without sleeping.
	Clock func() time.Time
	// SweepInterval is the least time between two sweeps of expired
	// records; zero means one minute. Sweeps run inside a write, so the
	// cost of scanning every record is paid once per interval, not per
	// write.
	SweepInterval time.Duration
}

// Store is an in-memory paymux.Store. Use New; the zero value is not usable.
type Store struct {
	clock         func() time.Time
	sweepInterval time.Duration

	mu         sync.Mutex
	lastSweep  time.Time
	idem       map[string]*paymux.IdempotencyRecord
	payments   map[string]*paymux.Payment
	refs       map[refKey]string
	unsettled  map[string]struct{}
	events     map[eventKey]eventRec
	deliveries map[string]*paymux.Delivery
	pending    map[string]struct{}
}

var (
	_ paymux.Store             = (*Store)(nil)
	_ paymux.EventCompleter    = (*Store)(nil)
	_ paymux.DeliveryCompleter = (*Store)(nil)
	_ paymux.PaymentsGetter    = (*Store)(nil)
)

type refKey struct{ provider, ref string }

type eventKey struct{ provider, id string }

// eventRec is an event claim (done false, until the lease end) or a
// processed event (done true, until its TTL ends).
type eventRec struct {
	done  bool
	until time.Time
}

// New returns an empty store.
func New(opts Options) *Store {
	s := &Store{
		clock:         opts.Clock,
		sweepInterval: opts.SweepInterval,
		idem:          make(map[string]*paymux.IdempotencyRecord),
		payments:      make(map[string]*paymux.Payment),
		refs:          make(map[refKey]string),
		unsettled:     make(map[string]struct{}),
		events:        make(map[eventKey]eventRec),
		deliveries:    make(map[string]*paymux.Delivery),
		pending:       make(map[string]struct{}),
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.sweepInterval <= 0 {
		s.sweepInterval = time.Minute
	}
	s.lastSweep = s.clock()
	return s
}

func (s *Store) now() time.Time { return s.clock() }

// wrote sweeps expired records when the sweep interval has passed. Callers
// hold mu.
func (s *Store) wrote(now time.Time) {
	if now.Sub(s.lastSweep) < s.sweepInterval {
		return
	}
	s.lastSweep = now
	for k, r := range s.idem {
		if !now.Before(r.ExpiresAt) {
			delete(s.idem, k)
		}
	}
	for k, e := range s.events {
		if !now.Before(e.until) {
			delete(s.events, k)
		}
	}
}

// liveRecord returns the unexpired record for key, dropping an expired one.
// Callers hold mu.
func (s *Store) liveRecord(key string, now time.Time) *paymux.IdempotencyRecord {
	r := s.idem[key]
	if r != nil && !now.Before(r.ExpiresAt) {
		delete(s.idem, key)
		return nil
	}
	return r
}

// copyRecord returns a copy of r the caller may keep and mutate.
func copyRecord(r *paymux.IdempotencyRecord) *paymux.IdempotencyRecord {
	c := *r
	c.Payment = r.Payment.Clone()
	return &c
}

// ClaimIdempotency implements paymux.IdempotencyStore.
func (s *Store) ClaimIdempotency(ctx context.Context, p paymux.ClaimParams) (*paymux.IdempotencyRecord, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	ttl := p.TTL
	if ttl <= 0 {
		ttl = paymux.DefaultIdempotencyTTL
	}
	// Clone outside the lock: most claims are fresh and need it.
	snap := p.Payment.Clone()

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	r := s.liveRecord(p.Key, now)
	switch {
	case r == nil && snap != nil && snap.Version == 0 && s.payments[snap.ID] != nil:
		// The payment exists though its key's record expired: replay it.
		return &paymux.IdempotencyRecord{Key: p.Key, Fingerprint: p.Fingerprint, State: paymux.ClaimCompleted, PaymentID: snap.ID, CreatedAt: now}, false, nil
	case r == nil:
		r = &paymux.IdempotencyRecord{
			Key:         p.Key,
			Fingerprint: p.Fingerprint,
			Token:       p.Token,
			State:       paymux.ClaimInFlight,
			Payment:     snap,
			LeaseUntil:  now.Add(p.Lease),
			ExpiresAt:   now.Add(ttl),
			CreatedAt:   now,
		}
		if snap != nil {
			r.PaymentID = snap.ID
		}
		s.idem[p.Key] = r
		s.wrote(now)
		// The caller's own snapshot is returned rather than a second clone:
		// it is not the store's copy, so the caller may still mutate it.
		out := *r
		out.Payment = p.Payment
		return &out, true, nil
	case r.State == paymux.ClaimInFlight && !now.Before(r.LeaseUntil) && r.Fingerprint == p.Fingerprint:
		// The holder's lease ended: it crashed or hung. Take over, keeping
		// its snapshot so the new holder knows which calls it may have made.
		// Records are only read under mu, so updating in place is safe.
		r.Token = p.Token
		r.LeaseUntil = now.Add(p.Lease)
		r.TakenOver = true
		s.wrote(now)
	default:
		return copyRecord(r), false, nil
	}
	return copyRecord(r), true, nil
}

// heldRecord returns the in-flight record key held by token, or ErrClaimLost.
// Callers hold mu.
func (s *Store) heldRecord(key, token string, now time.Time) (*paymux.IdempotencyRecord, error) {
	r := s.liveRecord(key, now)
	if r == nil || r.State != paymux.ClaimInFlight || r.Token != token {
		return nil, paymux.ErrClaimLost
	}
	return r, nil
}

// CheckpointIdempotency implements paymux.IdempotencyStore.
func (s *Store) CheckpointIdempotency(ctx context.Context, key, token string, p *paymux.Payment, lease time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	snap := p.Clone()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	r, err := s.heldRecord(key, token, now)
	if err != nil {
		return err
	}
	r.Payment = snap
	if snap != nil {
		r.PaymentID = snap.ID
	}
	r.LeaseUntil = now.Add(lease)
	return nil
}

// CompleteIdempotency implements paymux.IdempotencyStore.
func (s *Store) CompleteIdempotency(ctx context.Context, key, token string, p *paymux.Payment) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	stored := p.Clone()
	stored.Version++
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	r, err := s.heldRecord(key, token, now)
	if err != nil {
		return err
	}
	if err := s.putPayment(stored, p.Version); err != nil {
		return err
	}
	r.State = paymux.ClaimCompleted
	r.PaymentID = stored.ID
	// Stored payments are never mutated, so the record shares the clone.
	r.Payment = stored
	p.Version = stored.Version
	return nil
}

// ReleaseIdempotency implements paymux.IdempotencyStore.
func (s *Store) ReleaseIdempotency(ctx context.Context, key, token string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.heldRecord(key, token, s.now()); err != nil {
		return err
	}
	delete(s.idem, key)
	return nil
}

// GetIdempotency implements paymux.IdempotencyStore.
func (s *Store) GetIdempotency(ctx context.Context, key string) (*paymux.IdempotencyRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.liveRecord(key, s.now())
	if r == nil {
		return nil, paymux.ErrNotFound
	}
	return copyRecord(r), nil
}

// ListStaleClaims implements paymux.IdempotencyStore. It scans every record:
// the reconciler calls it rarely, and the memory store is not for millions.
func (s *Store) ListStaleClaims(ctx context.Context, leaseEndedBefore time.Time, limit int) ([]*paymux.IdempotencyRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var stale []*paymux.IdempotencyRecord
	for _, r := range s.idem {
		if r.State == paymux.ClaimInFlight && r.LeaseUntil.Before(leaseEndedBefore) && now.Before(r.ExpiresAt) {
			stale = append(stale, r)
		}
	}
	slices.SortFunc(stale, func(a, b *paymux.IdempotencyRecord) int {
		return cmp.Or(a.LeaseUntil.Compare(b.LeaseUntil), cmp.Compare(a.Key, b.Key))
	})
	stale = stale[:min(limit, len(stale))]
	out := make([]*paymux.IdempotencyRecord, len(stale))
	for i, r := range stale {
		out[i] = copyRecord(r)
	}
	return out, nil
}

// GetPayment implements paymux.PaymentStore.
func (s *Store) GetPayment(ctx context.Context, id string) (*paymux.Payment, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	p := s.payments[id]
	s.mu.Unlock()
	if p == nil {
		return nil, paymux.ErrNotFound
	}
	// Stored payments are immutable, so cloning outside the lock is safe.
	return p.Clone(), nil
}

// GetPaymentByProviderRef implements paymux.PaymentStore.
func (s *Store) GetPaymentByProviderRef(ctx context.Context, provider, ref string) (*paymux.Payment, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if ref == "" {
		return nil, paymux.ErrNotFound
	}
	s.mu.Lock()
	var p *paymux.Payment
	if id, ok := s.refs[refKey{provider, ref}]; ok {
		p = s.payments[id]
	}
	if p != nil && (p.Provider != provider || p.ProviderRef != ref) {
		p = nil // only if the index ever lagged behind a save
	}
	s.mu.Unlock()
	if p == nil {
		return nil, paymux.ErrNotFound
	}
	return p.Clone(), nil
}

// SavePayment implements paymux.PaymentStore.
func (s *Store) SavePayment(ctx context.Context, p *paymux.Payment, expectedVersion int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	stored := p.Clone()
	stored.Version = expectedVersion + 1
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.putPayment(stored, expectedVersion); err != nil {
		return err
	}
	p.Version = stored.Version
	return nil
}

// putPayment stores p (a clone the store now owns, already at its new
// version) if the stored version is expected, and keeps the indexes. Callers
// hold mu.
func (s *Store) putPayment(p *paymux.Payment, expected int64) error {
	old := s.payments[p.ID]
	if expected == 0 {
		if old != nil {
			return paymux.ErrVersionConflict
		}
	} else if old == nil || old.Version != expected {
		return paymux.ErrVersionConflict
	}
	s.payments[p.ID] = p
	if old != nil && old.ProviderRef != "" && (old.ProviderRef != p.ProviderRef || old.Provider != p.Provider) {
		k := refKey{old.Provider, old.ProviderRef}
		if s.refs[k] == p.ID {
			delete(s.refs, k)
		}
	}
	if p.ProviderRef != "" {
		s.refs[refKey{p.Provider, p.ProviderRef}] = p.ID
	}
	if unsettled(p.Status) {
		s.unsettled[p.ID] = struct{}{}
	} else {
		delete(s.unsettled, p.ID)
	}
	return nil
}

func unsettled(st paymux.Status) bool {
	return st == paymux.StatusPending || st == paymux.StatusUnknown || st == paymux.StatusRequiresAction
}

// GetPayments implements paymux.PaymentsGetter under one lock.
func (s *Store) GetPayments(ctx context.Context, ids []string) (map[string]*paymux.Payment, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	found := make([]*paymux.Payment, 0, len(ids))
	s.mu.Lock()
	for _, id := range ids {
		if p := s.payments[id]; p != nil {
			found = append(found, p)
		}
	}
	s.mu.Unlock()
	out := make(map[string]*paymux.Payment, len(found))
	for _, p := range found {
		out[p.ID] = p.Clone() // stored payments are immutable
	}
	return out, nil
}

// ListUnsettledPayments implements paymux.PaymentStore.
func (s *Store) ListUnsettledPayments(ctx context.Context, updatedBefore time.Time, limit int) ([]*paymux.Payment, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	s.mu.Lock()
	var list []*paymux.Payment
	for id := range s.unsettled {
		if p := s.payments[id]; p != nil && p.UpdatedAt.Before(updatedBefore) {
			list = append(list, p)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(list, func(a, b *paymux.Payment) int {
		return cmp.Or(a.UpdatedAt.Compare(b.UpdatedAt), cmp.Compare(a.ID, b.ID))
	})
	list = list[:min(limit, len(list))]
	for i, p := range list {
		list[i] = p.Clone()
	}
	return list, nil
}

// ClaimEvent implements paymux.EventStore.
func (s *Store) ClaimEvent(ctx context.Context, provider, eventID string, lease time.Duration) (paymux.EventClaim, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	k := eventKey{provider, eventID}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if e, ok := s.events[k]; ok && now.Before(e.until) {
		if e.done {
			return paymux.EventDuplicate, nil
		}
		return paymux.EventBusy, nil
	}
	s.events[k] = eventRec{until: now.Add(lease)}
	s.wrote(now)
	return paymux.EventClaimed, nil
}

// CompleteEvent implements paymux.EventStore.
func (s *Store) CompleteEvent(ctx context.Context, provider, eventID string, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ttl <= 0 {
		ttl = paymux.DefaultEventTTL
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.events[eventKey{provider, eventID}] = eventRec{done: true, until: now.Add(ttl)}
	s.wrote(now)
	return nil
}

// CompleteEventWithDelivery implements paymux.EventCompleter: the enqueue
// and the completion happen under one lock.
func (s *Store) CompleteEventWithDelivery(ctx context.Context, provider, eventID string, ttl time.Duration, d *paymux.Delivery) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ttl <= 0 {
		ttl = paymux.DefaultEventTTL
	}
	c := cloneDelivery(d)
	c.State = paymux.DeliveryPending
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.enqueueLocked(c, now)
	s.events[eventKey{provider, eventID}] = eventRec{done: true, until: now.Add(ttl)}
	s.wrote(now)
	return nil
}

// ReleaseEvent implements paymux.EventStore. A processed event stays
// processed: only an in-flight claim is forgotten.
func (s *Store) ReleaseEvent(ctx context.Context, provider, eventID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	k := eventKey{provider, eventID}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.events[k]; ok && !e.done {
		delete(s.events, k)
	}
	return nil
}

func cloneDelivery(d *paymux.Delivery) *paymux.Delivery {
	c := *d
	c.Event.Raw = append([]byte(nil), d.Event.Raw...)
	return &c
}

// EnqueueDelivery implements paymux.OutboxStore.
func (s *Store) EnqueueDelivery(ctx context.Context, d *paymux.Delivery) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := cloneDelivery(d)
	c.State = paymux.DeliveryPending
	s.mu.Lock()
	defer s.mu.Unlock()
	s.enqueueLocked(c, s.now())
	return nil
}

// enqueueLocked stores c (a clone the store now owns) unless an entry with
// its id exists. Callers hold mu.
func (s *Store) enqueueLocked(c *paymux.Delivery, now time.Time) {
	if _, ok := s.deliveries[c.ID]; ok {
		return
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now
	}
	s.deliveries[c.ID] = c
	s.pending[c.ID] = struct{}{}
}

// ClaimDueDeliveries implements paymux.OutboxStore.
func (s *Store) ClaimDueDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*paymux.Delivery, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var due []*paymux.Delivery
	for id := range s.pending {
		if d := s.deliveries[id]; !d.NextAttemptAt.After(now) {
			due = append(due, d)
		}
	}
	slices.SortFunc(due, func(a, b *paymux.Delivery) int {
		return cmp.Or(a.NextAttemptAt.Compare(b.NextAttemptAt), a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	due = due[:min(limit, len(due))]
	out := make([]*paymux.Delivery, len(due))
	for i, d := range due {
		d.NextAttemptAt = now.Add(lease)
		out[i] = cloneDelivery(d)
	}
	return out, nil
}

// update applies fn to the entry with id under the lock.
func (s *Store) update(ctx context.Context, id string, fn func(d *paymux.Delivery)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.deliveries[id]
	if d == nil {
		return paymux.ErrNotFound
	}
	fn(d)
	if d.State == paymux.DeliveryPending {
		s.pending[id] = struct{}{}
	} else {
		delete(s.pending, id)
	}
	return nil
}

// CompleteDelivery implements paymux.OutboxStore.
func (s *Store) CompleteDelivery(ctx context.Context, id string) error {
	return s.update(ctx, id, func(d *paymux.Delivery) { d.State = paymux.DeliveryDelivered })
}

// CompleteDeliveries implements paymux.DeliveryCompleter under one lock.
func (s *Store) CompleteDeliveries(ctx context.Context, ids []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if d := s.deliveries[id]; d != nil {
			d.State = paymux.DeliveryDelivered
			delete(s.pending, id)
		}
	}
	return nil
}

// RetryDelivery implements paymux.OutboxStore.
func (s *Store) RetryDelivery(ctx context.Context, id string, next time.Time, lastErr string) error {
	return s.update(ctx, id, func(d *paymux.Delivery) {
		d.Attempts++
		d.LastError = lastErr
		d.NextAttemptAt = next
	})
}

// DeadLetterDelivery implements paymux.OutboxStore.
func (s *Store) DeadLetterDelivery(ctx context.Context, id string, lastErr string) error {
	return s.update(ctx, id, func(d *paymux.Delivery) {
		d.Attempts++
		d.LastError = lastErr
		d.State = paymux.DeliveryDead
	})
}

// GetDelivery implements paymux.OutboxStore.
func (s *Store) GetDelivery(ctx context.Context, id string) (*paymux.Delivery, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.deliveries[id]
	if d == nil {
		return nil, paymux.ErrNotFound
	}
	return cloneDelivery(d), nil
}
