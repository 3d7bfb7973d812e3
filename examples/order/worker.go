package order

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/paymux/paymux"
)

// errRetry asks the queue to deliver the order again later.
var errRetry = errors.New("order: retry later")

// pay is the queue handler: it pays one order through paymux, with the order
// id as the idempotency key, so redeliveries and other instances can never
// charge it twice.
func (s *Service) pay(ctx context.Context, orderID string) error {
	// The order is read, not written, before paying: it stays "queued" until
	// the payment's result is written once by applyPayment. (A "processing"
	// write here was a compare-and-set round trip per order whose only use
	// was to keep the expiry sweep off an order being paid; the paying set
	// below does that in this process, and applyPayment voids a payment that
	// lands on an order another instance expired.) A redelivery or another
	// instance replays Authorize, which is idempotent by order id.
	s.paying.Store(orderID, struct{}{}) // before the read, so the sweep cannot slip in between
	defer s.paying.Delete(orderID)
	// The order checkout placed stays in s.placed while this worker pays
	// it, so that a long poll answers from it too; s.publish takes it out
	// before any change is published (see orderNow).
	o, ok := s.placed.peek(orderID, s.now())
	defer s.placed.drop(orderID)
	var err error
	if !ok {
		o, err = s.cfg.Store.GetOrder(ctx, orderID)
	}
	if errors.Is(err, ErrNotFound) {
		s.attempts.Delete(orderID)
		return nil // nothing to pay
	}
	if err != nil {
		return fmt.Errorf("%w: %v", errRetry, err)
	}
	if o.Status != StatusQueued && o.Status != StatusProcessing {
		s.attempts.Delete(orderID)
		return nil // settled already (a redelivery)
	}
	attempts := 1
	if v, ok := s.attempts.Load(orderID); ok {
		attempts = v.(int) + 1
	}
	s.attempts.Store(orderID, attempts)
	done := func() { s.attempts.Delete(orderID) }
	req := paymux.PaymentRequest{
		IdempotencyKey: o.ID,
		Amount:         o.Amount,
		Method:         o.Method,
		Country:        o.Country,
		Campaign:       o.Campaign,
		Capture:        paymux.CaptureManual, // capture on fulfilment
		Customer:       paymux.Customer{ID: o.UserID, Email: o.Email},
		Metadata:       map[string]string{"order_id": o.ID},
		ReturnURL:      s.cfg.ReturnURL + "?order=" + o.ID,
	}
	p, err := s.cfg.Orchestrator.Authorize(ctx, req)
	if p != nil {
		if _, aerr := s.applyPayment(ctx, o.ID, p, o); aerr != nil {
			return fmt.Errorf("%w: %v", errRetry, aerr)
		}
		done()
		return nil
	}
	// No payment record: nothing moved. Retry what may pass later; fail what
	// never will.
	switch {
	case errors.Is(err, paymux.ErrInProgress), errors.Is(err, paymux.ErrStoreUnavailable),
		errors.Is(err, paymux.ErrAllProvidersFailed), errors.Is(err, context.DeadlineExceeded):
		if attempts >= s.cfg.MaxPayAttempts {
			done()
			return s.fail(ctx, o.ID, "payment could not be attempted: "+err.Error())
		}
		s.cfg.Logger.Info("order: payment will be retried", "order", o.ID, "attempt", attempts, "err", err)
		return fmt.Errorf("%w: %v", errRetry, err)
	default:
		done()
		return s.fail(ctx, o.ID, err.Error())
	}
}

// fail marks an order failed and returns its stock.
func (s *Service) fail(ctx context.Context, orderID, reason string) error {
	o, err := s.cfg.Store.UpdateOrder(ctx, orderID, func(o *Order) bool {
		if !o.Status.CanMove(StatusFailed) || o.Status == StatusFailed {
			return false
		}
		o.Status, o.FailureReason, o.UpdatedAt = StatusFailed, paymux.Redact(reason), s.now()
		o.Method.Token = ""
		return true
	})
	if err != nil {
		return fmt.Errorf("%w: %v", errRetry, err)
	}
	if o.Status == StatusFailed {
		if err := s.cfg.Store.Release(ctx, orderID); err != nil {
			return fmt.Errorf("%w: %v", errRetry, err)
		}
	}
	s.publish(o)
	return nil
}

// orderStatusOf maps a payment's status to its order's.
func orderStatusOf(p *paymux.Payment) Status {
	switch p.Status {
	case paymux.StatusAuthorized:
		return StatusPaid
	case paymux.StatusCaptured:
		return StatusCaptured
	case paymux.StatusRefunded:
		return StatusRefunded
	case paymux.StatusFailed:
		return StatusFailed
	case paymux.StatusVoided:
		return StatusCancelled
	case paymux.StatusRequiresAction:
		return StatusRequiresAction
	}
	return StatusPaymentPending
}

// applyPayment moves an order to match its payment, forward only, and
// settles its stock: a paid order's reservation is committed, a failed one's
// released. Worker results and webhooks both come through here, in any
// order. read, when not nil, is the order as the caller just read it (its
// version is compared when saving), which saves a read.
func (s *Service) applyPayment(ctx context.Context, orderID string, p *paymux.Payment, read *Order) (*Order, error) {
	// The status change and the stock settlement below are two writes. A
	// caller's cancellation (the dispatcher stopping at shutdown) between
	// them would leave a paid order's stock held rather than sold until the
	// event is retried, so once begun, the pair runs to the end.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	next := orderStatusOf(p)
	// move applies the payment to o; moved says whether o's status changed.
	move := func(o *Order) (changed, moved bool) {
		if o.PaymentID == "" {
			o.PaymentID, changed = p.ID, true
		}
		if o.Provider != p.Provider {
			o.Provider, changed = p.Provider, true
		}
		if o.Status != next && o.Status.CanMove(next) {
			o.Status, changed, moved = next, true, true
			switch next {
			case StatusRequiresAction:
				if p.NextAction != nil {
					o.NextActionURL = p.NextAction.RedirectURL
				}
			case StatusFailed:
				o.FailureReason = "payment failed"
				if p.FailureCode != "" {
					o.FailureReason += ": " + p.FailureCode
				}
			}
			if next.rank() >= StatusPaid.rank() {
				o.Method.Token = "" // no longer needed; do not keep it
			}
		}
		if changed {
			o.UpdatedAt = s.now()
		}
		return changed, moved
	}
	// The worker's result and the provider's webhook both report the same
	// payment: whichever comes second changes nothing, and costs one read.
	o := read
	if o == nil {
		var err error
		if o, err = s.cfg.Store.GetOrder(ctx, orderID); err != nil {
			return nil, err
		}
	}
	probe := *o
	changed, moved := move(&probe)
	if !changed {
		if next == StatusPaid && (o.Status == StatusExpired || o.Status == StatusFailed || o.Status == StatusCancelled) {
			// Authorised after the order ended (another instance expired it
			// while this one was paying): give the hold back. Idempotent by key.
			s.cfg.Logger.Warn("order: authorised after the order ended; voiding", "order", orderID, "status", o.Status)
			if _, verr := s.cfg.Orchestrator.Void(ctx, p.ID, paymux.VoidParams{Key: "ended-" + orderID}); verr != nil {
				return nil, verr
			}
		}
		return o, nil
	}
	if moved && soldStatus(probe.Status) {
		// Stock is committed before or with the order saying paid, so a
		// paid order's stock is always sold, whatever stops this call after
		// the commit; the retry commits again (idempotent). Calls that find
		// the order paid already therefore have nothing to settle.
		if cs, ok := s.cfg.Store.(commitSaver); ok {
			// Both in one step, the usual case. A conflict (the order moved
			// since it was read), a reservation that is not held, or a store
			// that cannot do both at once goes the step-by-step way below.
			err := cs.commitAndSave(ctx, &probe, o.Version, o.Status)
			if err == nil {
				probe.Version = o.Version + 1
				s.settled.put(settledCopy(&probe), s.now())
				s.publish(&probe)
				return &probe, nil
			}
			if !errors.Is(err, ErrConflict) && !errors.Is(err, ErrNotFound) && !errors.Is(err, errStepByStep) {
				return nil, err
			}
		}
		if read != nil {
			// The caller's copy may be stale (another instance expired the
			// order meanwhile): decide again on a fresh read before any
			// stock moves.
			return s.applyPayment(ctx, orderID, p, nil)
		}
		if err := s.settleStock(ctx, &probe, p); err != nil {
			return nil, err
		}
	}
	moved = false
	var err error
	o, err = updateOrderFrom(ctx, s.cfg.Store, o, func(o *Order) bool {
		c, m := move(o) // runs again on a compare-and-set conflict
		moved = m
		return c
	})
	if err != nil {
		return nil, err
	}
	if !moved {
		return o, nil
	}
	if soldStatus(o.Status) {
		s.settled.put(settledCopy(o), s.now())
	} else {
		// A failed or cancelled order's stock goes back. Should this keep
		// failing, the expiry sweep releases it (expireReservations).
		var serr error
		for try := 0; try < 3; try++ {
			if serr = s.settleStock(ctx, o, p); serr == nil {
				break
			}
			select {
			case <-ctx.Done():
				return nil, serr
			case <-time.After(time.Duration(100<<try) * time.Millisecond):
			}
		}
		if serr != nil {
			return nil, serr
		}
	}
	s.publish(o)
	return o, nil
}

// reports says whether applying p to an order that this process saved as o
// would change nothing, whatever happened to the order since: o is sold
// (paid, captured or refunded: statuses that only move forward and never
// back to failed, expired or cancelled) by this same payment, and p
// reports no later status. The webhook that follows a worker's result is
// then answered without reading the order back.
func reports(o *Order, p *paymux.Payment) bool {
	next := orderStatusOf(p)
	return soldStatus(o.Status) && o.PaymentID == p.ID && o.Provider == p.Provider &&
		next.rank() <= o.Status.rank()
}

// settledCopy keeps of o what reports reads, so that Service.settled can
// hold a drop's worth of orders for as long as their webhooks may trail.
func settledCopy(o *Order) *Order {
	return &Order{ID: o.ID, Status: o.Status, PaymentID: o.PaymentID, Provider: o.Provider}
}

// soldStatus reports whether an order in st has taken its stock for good.
func soldStatus(st Status) bool {
	return st == StatusPaid || st == StatusCaptured || st == StatusRefunded
}

// settleStock commits a paid order's reservation or releases a failed one's.
// Both store operations are idempotent.
func (s *Service) settleStock(ctx context.Context, o *Order, p *paymux.Payment) error {
	orderID := o.ID
	switch {
	case soldStatus(o.Status):
		if err := s.cfg.Store.Commit(ctx, orderID); err != nil {
			if !errors.Is(err, ErrNotFound) {
				return err
			}
			// The reservation was released (it expired before the money
			// moved). Take the stock again, or give the money back.
			if rerr := s.cfg.Store.Reserve(ctx, orderID+"/late", o.Items, s.now().Add(time.Hour)); rerr == nil {
				_ = s.cfg.Store.Commit(ctx, orderID+"/late")
			} else if o.Status == StatusPaid {
				s.cfg.Logger.Warn("order: paid after its stock was released; voiding", "order", orderID)
				if _, verr := s.cfg.Orchestrator.Void(ctx, p.ID, paymux.VoidParams{Key: "oversold-" + orderID}); verr != nil {
					return verr
				}
			}
		}
	case o.Status == StatusFailed || o.Status == StatusCancelled:
		if err := s.cfg.Store.Release(ctx, orderID); err != nil {
			return err
		}
	}
	return nil
}

// OnPaymentEvent is the paymux webhook subscriber: a verified provider event
// moves the order of its payment. It is idempotent, as at-least-once
// delivery needs. An event that changes nothing (the worker recorded the
// payment first, the usual case) costs one order read and no write.
func (s *Service) OnPaymentEvent(ctx context.Context, ev paymux.Event, p *paymux.Payment) error {
	if p == nil {
		return nil // a payment this shop never made
	}
	if o, ok := s.settled.take(p.IdempotencyKey); ok && reports(o, p) {
		return nil
	}
	_, err := s.applyPayment(ctx, p.IdempotencyKey, p, nil)
	if errors.Is(err, ErrNotFound) {
		return nil // not an order of this shop
	}
	return err
}

// busy reports whether one of this process's workers is paying the order.
func (s *Service) busy(id string) bool {
	_, ok := s.paying.Load(id)
	return ok
}

// sweep recovers work after a crash and returns expired stock.
func (s *Service) sweep(ctx context.Context) {
	s.recoverQueued(ctx, time.Time{}) // everything left from a previous run
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.placed.expire(s.now())
		s.settled.expire(s.now())
		s.recoverQueued(ctx, s.now().Add(-2*time.Minute))
		s.settlePending(ctx)
		s.expireReservations(ctx)
	}
}

// recoverQueued re-publishes orders stuck in queued or processing since
// before the given time (zero: since before now).
func (s *Service) recoverQueued(ctx context.Context, before time.Time) {
	if before.IsZero() {
		before = s.now()
	}
	for _, st := range []Status{StatusQueued, StatusProcessing} {
		orders, err := s.cfg.Store.OrdersInStatus(ctx, st, before, 1000)
		if err != nil {
			s.cfg.Logger.Warn("order: recovery listing failed", "err", err)
			return
		}
		for _, o := range orders {
			if err := s.cfg.Queue.Publish(ctx, o.ID); err != nil {
				return
			}
		}
	}
}

// expireReservations returns the stock of orders nobody paid in time. An
// order whose payment may still be moving keeps its stock.
func (s *Service) expireReservations(ctx context.Context) {
	ids, err := s.cfg.Store.ExpiredReservations(ctx, s.now(), 500)
	if err != nil {
		return
	}
	for _, id := range ids {
		o, err := s.cfg.Store.GetOrder(ctx, id)
		if errors.Is(err, ErrNotFound) {
			_ = s.cfg.Store.Release(ctx, id) // reserved, but the order was never written
			continue
		}
		if err != nil {
			continue
		}
		switch o.Status {
		case StatusQueued:
			// Only a queued order can expire: a worker that picks it up
			// later sees "expired" and does nothing. One this process is
			// paying right now is left alone; the payment settles it.
			if s.busy(id) {
				continue
			}
			o, err = s.cfg.Store.UpdateOrder(ctx, id, func(o *Order) bool {
				if o.Status != StatusQueued {
					return false
				}
				o.Status, o.FailureReason, o.UpdatedAt = StatusExpired, "not paid in time", s.now()
				o.Method.Token = ""
				return true
			})
			if err == nil && o.Status == StatusExpired {
				_ = s.cfg.Store.Release(ctx, id)
				s.publish(o)
			}
		case StatusRequiresAction:
			// The buyer never finished 3-D Secure: cancel the authorisation,
			// then return the stock.
			if o.PaymentID != "" {
				if p, err := s.cfg.Orchestrator.Void(ctx, o.PaymentID, paymux.VoidParams{Key: "expire-" + id}); err == nil {
					_, _ = s.applyPayment(ctx, id, p, nil)
				}
			}
		case StatusPaid, StatusCaptured, StatusRefunded:
			_ = s.cfg.Store.Commit(ctx, id)
		case StatusFailed, StatusExpired, StatusCancelled:
			_ = s.cfg.Store.Release(ctx, id)
		}
		// processing and payment_pending keep their stock until the payment
		// settles (the paymux reconciler makes sure it does).
	}
}

// broker fans order updates out to SSE streams in this process.
type broker struct {
	mu   sync.Mutex
	subs map[string]map[chan *Order]struct{}
}

func newBroker() *broker { return &broker{subs: map[string]map[chan *Order]struct{}{}} }

func (b *broker) subscribe(id string) (chan *Order, func()) {
	ch := make(chan *Order, 8)
	b.mu.Lock()
	if b.subs[id] == nil {
		b.subs[id] = map[chan *Order]struct{}{}
	}
	b.subs[id][ch] = struct{}{}
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		delete(b.subs[id], ch)
		if len(b.subs[id]) == 0 {
			delete(b.subs, id)
		}
		b.mu.Unlock()
	}
}

// publish tells this process's waiters that o changed. It first takes o
// out of s.placed, whose copy is now out of date, so that a waiter who
// read that copy subscribed before this publish and receives it.
func (s *Service) publish(o *Order) {
	s.placed.drop(o.ID)
	s.broker.publish(o)
}

func (b *broker) publish(o *Order) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs[o.ID] {
		select {
		case ch <- o:
		default: // a slow reader catches up from the poll
		}
	}
}

// settlePending catches up orders whose payment settled without a word to
// this service (a lost event): it reads each waiting order's payment and
// applies it. The reconciler settles the payment; this moves the order.
func (s *Service) settlePending(ctx context.Context) {
	orders, err := s.cfg.Store.OrdersInStatus(ctx, StatusPaymentPending, s.now().Add(-10*time.Second), 200)
	if err != nil {
		return
	}
	for _, o := range orders {
		if o.PaymentID == "" {
			continue
		}
		p, err := s.cfg.Orchestrator.Get(ctx, o.PaymentID)
		if err != nil || orderStatusOf(p) == StatusPaymentPending {
			continue
		}
		_, _ = s.applyPayment(ctx, o.ID, p, o)
	}
}
