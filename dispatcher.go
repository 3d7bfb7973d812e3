package paymux

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Subscriber receives applied events. p is the payment as stored when the
// delivery's batch was read (so after the event was applied), or nil for an
// event whose payment paymux never knew. Return an error to have the
// delivery retried.
//
// Delivery is at least once: an event is delivered again if the subscriber
// fails, times out, or the process dies before the delivery is recorded, so a
// subscriber must be idempotent by (ev.Provider, ev.ID). After MaxAttempts
// failures the delivery is parked as dead for an operator (GetDelivery shows
// its last error).
//
// A subscriber is called from up to DispatcherOptions.Concurrency goroutines
// at once, for different payments. Deliveries of one payment are never
// concurrent: within a batch they are made one after another, in the order
// the outbox returned them (oldest first).
type Subscriber func(ctx context.Context, ev Event, p *Payment) error

// DispatcherOptions configures a Dispatcher. Zero values mean:
//
//	Subscriber    required
//	MaxAttempts   10, then the delivery is dead-lettered
//	BaseDelay     1 s, doubling per attempt with full jitter
//	MaxDelay      10 min
//	Lease         1 min: how long a worker holds a delivery
//	Batch         64 deliveries per poll
//	PollInterval  1 s (Run wakes at once when the webhook handler enqueues)
//	Gather        20 ms: after such a wake, how long Run lets the enqueues
//	              right behind it land before it claims a batch; negative
//	              claims at once
//	Timeout       30 s per subscriber call
//	Concurrency   8 subscriber calls at once, for different payments; 1 makes
//	              every delivery of a batch wait for the one before
//
// A batch's successful deliveries are recorded together when the batch ends
// (one round trip with a store that implements DeliveryCompleter). A crash
// mid-batch therefore redelivers what the batch had delivered so far, and a
// batch that outlives Lease may have its delivered entries claimed again by
// another dispatcher: keep (Batch / Concurrency) subscriber calls well
// within Lease.
type DispatcherOptions struct {
	Subscriber   Subscriber
	MaxAttempts  int
	BaseDelay    time.Duration
	MaxDelay     time.Duration
	Lease        time.Duration
	Batch        int
	PollInterval time.Duration
	// Gather trades a little delivery latency for store round trips. A
	// busy shop's webhooks arrive a few milliseconds apart, and a batch
	// costs about three round trips (claim, read the payments, record
	// the deliveries) whatever its size: claimed at once, each webhook
	// is a batch of its own.
	Gather      time.Duration
	Timeout     time.Duration
	Concurrency int
}

// Dispatcher delivers events from the store's outbox to the shop's
// subscriber.
type Dispatcher struct {
	o    *Orchestrator
	opts DispatcherOptions
	wake chan struct{}
}

// NewDispatcher builds a dispatcher. Run it with Run, or call DispatchDue
// from a cron. The first dispatcher of an orchestrator also receives the
// status changes Sync and the Reconciler make, as events whose ids start with
// "sync/", so the subscriber hears of payments no webhook will settle.
func (o *Orchestrator) NewDispatcher(opts DispatcherOptions) (*Dispatcher, error) {
	if opts.Subscriber == nil {
		return nil, errors.New("paymux: DispatcherOptions.Subscriber is required")
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 10
	}
	if opts.BaseDelay <= 0 {
		opts.BaseDelay = time.Second
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = 10 * time.Minute
	}
	if opts.Lease <= 0 {
		opts.Lease = time.Minute
	}
	if opts.Batch <= 0 {
		opts.Batch = 64
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	switch {
	case opts.Gather == 0:
		opts.Gather = 20 * time.Millisecond
	case opts.Gather < 0:
		opts.Gather = 0
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	d := &Dispatcher{o: o, opts: opts, wake: make(chan struct{}, 1)}
	o.dispatcher.CompareAndSwap(nil, d)
	return d, nil
}

// DeliveryID is the outbox id of an event.
func DeliveryID(provider, eventID string) string { return provider + "/" + eventID }

// newDelivery is the outbox entry of an applied event.
func (d *Dispatcher) newDelivery(ev *Event, paymentID string) *Delivery {
	now := d.o.now()
	e := *ev
	e.Raw = nil // the subscriber gets the normalised event; raw bodies stay out of the store
	return &Delivery{
		ID: DeliveryID(ev.Provider, ev.ID), Event: e, PaymentID: paymentID,
		State: DeliveryPending, NextAttemptAt: now, CreatedAt: now,
	}
}

func (d *Dispatcher) enqueue(ctx context.Context, ev *Event, paymentID string) error {
	if err := d.o.cfg.Store.EnqueueDelivery(ctx, d.newDelivery(ev, paymentID)); err != nil {
		return storeErr("enqueue delivery", err)
	}
	d.notify()
	return nil
}

// notify wakes Run after an enqueue.
func (d *Dispatcher) notify() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers due events until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) error {
	t := time.NewTicker(d.opts.PollInterval)
	defer t.Stop()
	for {
		for {
			n, err := d.DispatchDue(ctx)
			if err != nil {
				d.o.log.Warn("paymux: dispatching events failed", "err", err)
				break
			}
			if n < d.opts.Batch {
				break
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-d.wake:
			if err := d.gather(ctx); err != nil {
				return err
			}
		}
	}
}

// gather waits opts.Gather after a wake, then takes back the wake that
// the enqueues during the wait left: the batch about to be claimed holds
// them.
func (d *Dispatcher) gather(ctx context.Context) error {
	if d.opts.Gather <= 0 {
		return nil
	}
	timer := time.NewTimer(d.opts.Gather)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
	}
	select {
	case <-d.wake:
	default:
	}
	return nil
}

// DispatchDue delivers one batch of due events and returns how many it
// handled.
//
// The batch costs few store round trips whatever its size when the store
// implements the optional PaymentsGetter and DeliveryCompleter: one to claim
// it, one to read its payments, one to record its successful deliveries
// (failed ones are recorded one by one, as they carry their own error and
// next attempt). Deliveries run Concurrency at a time, those of one payment
// one after another in the batch's order.
func (d *Dispatcher) DispatchDue(ctx context.Context) (int, error) {
	st := d.o.cfg.Store
	now := d.o.now()
	batch, err := st.ClaimDueDeliveries(ctx, now, d.opts.Lease, d.opts.Batch)
	if err != nil {
		return 0, storeErr("claim deliveries", err)
	}
	if len(batch) == 0 {
		return 0, nil
	}
	payments, err := d.loadPayments(ctx, batch)
	if err != nil {
		// Nothing was delivered; the lease brings the batch back.
		return 0, err
	}
	groups := groupDeliveries(batch)

	var (
		mu        sync.Mutex
		delivered = make([]string, 0, len(batch))
		firstErr  error
		next      int
	)
	// take hands out the next group, or nil when there is none left or a
	// store error stopped the batch.
	take := func() []*Delivery {
		mu.Lock()
		defer mu.Unlock()
		if firstErr != nil || next == len(groups) {
			return nil
		}
		g := groups[next]
		next++
		return g
	}
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	work := func() {
		for g := take(); g != nil; g = take() {
			for i, del := range g {
				p := payments[del.PaymentID]
				if i < len(g)-1 {
					p = p.Clone() // every call gets a payment of its own
				}
				ok, err := d.deliver(ctx, del, p)
				if err != nil {
					fail(err)
					break
				}
				if ok {
					mu.Lock()
					delivered = append(delivered, del.ID)
					mu.Unlock()
				}
			}
		}
	}
	workers := min(d.opts.Concurrency, len(groups))
	var wg sync.WaitGroup
	for range workers - 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work()
		}()
	}
	work()
	wg.Wait()

	// Recorded even when the batch stopped on an error or ctx ended (a
	// shutdown), so that what was delivered is not delivered again. A crash
	// before this line delivers it again after the lease: at least once,
	// never lost.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.opts.Timeout)
	err = d.completeDeliveries(cctx, delivered)
	cancel()
	if err != nil && firstErr == nil {
		firstErr = err
	}
	if firstErr != nil {
		return 0, firstErr
	}
	return len(batch), nil
}

// loadPayments reads the payments of a batch: in one round trip when the
// store implements PaymentsGetter, else one GetPayment per distinct
// payment. A payment that no longer exists is left out; its deliveries get
// nil.
func (d *Dispatcher) loadPayments(ctx context.Context, batch []*Delivery) (map[string]*Payment, error) {
	ids := make([]string, 0, len(batch))
	seen := make(map[string]bool, len(batch))
	for _, del := range batch {
		if del.PaymentID != "" && !seen[del.PaymentID] {
			seen[del.PaymentID] = true
			ids = append(ids, del.PaymentID)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	st := d.o.cfg.Store
	if pg, ok := st.(PaymentsGetter); ok {
		m, err := pg.GetPayments(ctx, ids)
		if err != nil {
			return nil, storeErr("load payments", err)
		}
		return m, nil
	}
	m := make(map[string]*Payment, len(ids))
	for _, id := range ids {
		p, err := st.GetPayment(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, storeErr("load payment", err)
		}
		m[id] = p
	}
	return m, nil
}

// groupDeliveries splits a batch into groups that may run concurrently:
// one per payment, in the batch's order. Deliveries without a payment are
// grouped by the provider reference their event names, or stand alone.
func groupDeliveries(batch []*Delivery) [][]*Delivery {
	index := make(map[string]int, len(batch))
	groups := make([][]*Delivery, 0, len(batch))
	for _, del := range batch {
		key := "p:" + del.PaymentID
		if del.PaymentID == "" {
			key = "d:" + del.ID
			if del.Event.ProviderRef != "" {
				key = "r:" + del.Event.Provider + "/" + del.Event.ProviderRef
			}
		}
		i, ok := index[key]
		if !ok {
			i = len(groups)
			index[key] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], del)
	}
	return groups
}

// completeDeliveries records successful deliveries: in one round trip when
// the store implements DeliveryCompleter, else one CompleteDelivery each.
func (d *Dispatcher) completeDeliveries(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	st := d.o.cfg.Store
	if dc, ok := st.(DeliveryCompleter); ok {
		return storeErr("complete deliveries", dc.CompleteDeliveries(ctx, ids))
	}
	var first error
	for _, id := range ids {
		err := st.CompleteDelivery(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // purged since it was claimed: nothing left to mark
		}
		if err != nil && first == nil {
			first = storeErr("complete delivery", err)
		}
	}
	return first
}

// deliver hands one delivery to the subscriber. It reports whether the
// subscriber took it, in which case the caller records it delivered; a
// failure is recorded here, as a retry or a dead letter. err is a store
// error, or ctx's when it ended.
func (d *Dispatcher) deliver(ctx context.Context, del *Delivery, p *Payment) (delivered bool, err error) {
	st := d.o.cfg.Store
	cctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
	serr := callSubscriber(cctx, d.opts.Subscriber, del.Event, p)
	cancel()
	if serr == nil {
		return true, nil
	}
	if ctx.Err() != nil {
		return false, ctx.Err() // shutting down: the lease brings it back
	}
	msg := Redact(serr.Error())
	if del.Attempts+1 >= d.opts.MaxAttempts {
		d.o.log.Error("paymux: delivery dead-lettered", "delivery", del.ID, "attempts", del.Attempts+1, "err", msg)
		return false, storeErr("dead-letter delivery", st.DeadLetterDelivery(ctx, del.ID, msg))
	}
	return false, storeErr("retry delivery", st.RetryDelivery(ctx, del.ID, d.o.now().Add(d.backoff(del.Attempts+1)), msg))
}

// backoff is exponential with full jitter.
func (d *Dispatcher) backoff(attempt int) time.Duration {
	ceiling := d.opts.BaseDelay << min(attempt-1, 30)
	if ceiling <= 0 || ceiling > d.opts.MaxDelay {
		ceiling = d.opts.MaxDelay
	}
	return ceiling/2 + rand.N(ceiling/2+1)
}

func callSubscriber(ctx context.Context, s Subscriber, ev Event, p *Payment) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("paymux: subscriber panicked: %v", r)
		}
	}()
	return s(ctx, ev, p)
}
