package paymux

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Subscriber receives applied events. p is the payment after the event was
// applied, or nil for an event whose payment paymux never knew. Return an
// error to have the delivery retried.
//
// Delivery is at least once: an event is delivered again if the subscriber
// fails, times out, or the process dies before the delivery is recorded, so a
// subscriber must be idempotent by (ev.Provider, ev.ID). After MaxAttempts
// failures the delivery is parked as dead for an operator (GetDelivery shows
// its last error).
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
//	Timeout       30 s per subscriber call
type DispatcherOptions struct {
	Subscriber   Subscriber
	MaxAttempts  int
	BaseDelay    time.Duration
	MaxDelay     time.Duration
	Lease        time.Duration
	Batch        int
	PollInterval time.Duration
	Timeout      time.Duration
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
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	d := &Dispatcher{o: o, opts: opts, wake: make(chan struct{}, 1)}
	o.dispatcher.CompareAndSwap(nil, d)
	return d, nil
}

// DeliveryID is the outbox id of an event.
func DeliveryID(provider, eventID string) string { return provider + "/" + eventID }

func (d *Dispatcher) enqueue(ctx context.Context, ev *Event, paymentID string) error {
	now := d.o.now()
	e := *ev
	e.Raw = nil // the subscriber gets the normalised event; raw bodies stay out of the store
	err := d.o.cfg.Store.EnqueueDelivery(ctx, &Delivery{
		ID: DeliveryID(ev.Provider, ev.ID), Event: e, PaymentID: paymentID,
		State: DeliveryPending, NextAttemptAt: now, CreatedAt: now,
	})
	if err != nil {
		return storeErr("enqueue delivery", err)
	}
	select {
	case d.wake <- struct{}{}:
	default:
	}
	return nil
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
		}
	}
}

// DispatchDue delivers one batch of due events and returns how many it
// handled.
func (d *Dispatcher) DispatchDue(ctx context.Context) (int, error) {
	st := d.o.cfg.Store
	now := d.o.now()
	batch, err := st.ClaimDueDeliveries(ctx, now, d.opts.Lease, d.opts.Batch)
	if err != nil {
		return 0, storeErr("claim deliveries", err)
	}
	for _, del := range batch {
		if err := d.deliver(ctx, del); err != nil {
			return 0, err
		}
	}
	return len(batch), nil
}

func (d *Dispatcher) deliver(ctx context.Context, del *Delivery) error {
	st := d.o.cfg.Store
	var p *Payment
	if del.PaymentID != "" {
		var err error
		if p, err = st.GetPayment(ctx, del.PaymentID); err != nil && !errors.Is(err, ErrNotFound) {
			return storeErr("load payment", err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
	serr := callSubscriber(cctx, d.opts.Subscriber, del.Event, p)
	cancel()
	if serr == nil {
		return storeErr("complete delivery", st.CompleteDelivery(ctx, del.ID))
	}
	if ctx.Err() != nil {
		return ctx.Err() // shutting down: the lease brings it back
	}
	msg := Redact(serr.Error())
	if del.Attempts+1 >= d.opts.MaxAttempts {
		d.o.log.Error("paymux: delivery dead-lettered", "delivery", del.ID, "attempts", del.Attempts+1, "err", msg)
		return storeErr("dead-letter delivery", st.DeadLetterDelivery(ctx, del.ID, msg))
	}
	return storeErr("retry delivery", st.RetryDelivery(ctx, del.ID, d.o.now().Add(d.backoff(del.Attempts+1)), msg))
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
