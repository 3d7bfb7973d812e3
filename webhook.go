package paymux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// MaxWebhookBody is the largest webhook body paymux reads (1 MiB).
const MaxWebhookBody = 1 << 20

// WebhookOptions configures the webhook handler. Zero values mean:
//
//	MaxBodyBytes      1 MiB
//	EventLease        30 s: how long a crashed handler holds an event
//	EventTTL          30 days: how long a processed event id is remembered
//	OrphanAfter       1 h: see below
//	Dispatcher        nil: events are applied but nobody is notified
//	UnverifiedAsHint  false: an unverifiable request is refused and nothing else
//	HintRate          1 Sync per second per provider, burst 5
//
// An event for a payment paymux does not know (yet) is answered with 503, so
// the provider redelivers it: the usual cause is a webhook that overtook the
// authorisation's own store write by milliseconds, and the provider's retry
// queue is a durable place to keep it that costs the happy path nothing. An
// event still unknown OrphanAfter after it occurred is acknowledged and
// handed to the dispatcher with no payment, so a payment made outside paymux
// cannot block a provider's queue for days.
type WebhookOptions struct {
	MaxBodyBytes int64
	EventLease   time.Duration
	EventTTL     time.Duration
	OrphanAfter  time.Duration
	Dispatcher   *Dispatcher
	// UnverifiedAsHint treats a request that fails verification as a hint
	// that something changed: if the provider can name the payment without
	// trusting the body (WebhookHinter), that payment is Synced from the
	// provider, rate-limited per provider. The request is still refused and
	// its content never applied.
	UnverifiedAsHint bool
	HintRate         rate.Limit
	HintBurst        int
}

// WebhookHinter is the optional interface of providers that can point at a
// payment from an unverified webhook, for WebhookOptions.UnverifiedAsHint.
// The returned reference is only ever used to ask the provider itself.
type WebhookHinter interface {
	HintReference(header http.Header, body []byte) (ref string, ok bool)
}

// ErrPaymentUnknown is returned (and answered with 503) for a verified event
// whose payment paymux does not know yet.
var ErrPaymentUnknown = errors.New("paymux: event for an unknown payment")

// ErrEventBusy is answered with 503 when another handler is processing the
// same event right now.
var ErrEventBusy = errors.New("paymux: event is being processed elsewhere")

// WebhookHandler serves provider webhooks. Mount it at a path ending in the
// provider's name, for example:
//
//	mux.Handle("POST /webhooks/{provider}", o.WebhookHandler(opts))
type WebhookHandler struct {
	o     *Orchestrator
	opts  WebhookOptions
	mu    sync.Mutex
	hints map[string]*rate.Limiter
}

// WebhookHandler returns the webhook http.Handler.
func (o *Orchestrator) WebhookHandler(opts WebhookOptions) *WebhookHandler {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = MaxWebhookBody
	}
	if opts.EventLease <= 0 {
		opts.EventLease = 30 * time.Second
	}
	if opts.EventTTL <= 0 {
		opts.EventTTL = DefaultEventTTL
	}
	if opts.OrphanAfter <= 0 {
		opts.OrphanAfter = time.Hour
	}
	if opts.HintRate <= 0 {
		opts.HintRate = 1
	}
	if opts.HintBurst <= 0 {
		opts.HintBurst = 5
	}
	return &WebhookHandler{o: o, opts: opts, hints: map[string]*rate.Limiter{}}
}

// WebhookStatus maps a webhook error to the HTTP status paymux answers with.
// Verification failures are 401, so they never look like success; failures
// paymux must retry are 503, so the provider redelivers.
func WebhookStatus(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrWebhookTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrUnknownProvider):
		return http.StatusNotFound
	case errors.Is(err, ErrWebhookNotSigned), errors.Is(err, ErrWebhookBadSignature), errors.Is(err, ErrWebhookTooOld):
		return http.StatusUnauthorized
	case errors.Is(err, ErrWebhookMalformed):
		return http.StatusBadRequest
	}
	return http.StatusServiceUnavailable
}

func (h *WebhookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("provider")
	if name == "" {
		name = r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	}
	body, err := readLimited(r.Body, h.opts.MaxBodyBytes)
	if err == nil {
		err = h.Ingest(r.Context(), name, r.Header, body)
	}
	status := WebhookStatus(err)
	if err != nil {
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "30")
		}
		h.o.log.Warn("paymux: webhook refused", "provider", name, "status", status, "err", err)
		// The named error only: never the body, never a secret.
		http.Error(w, webhookErrorText(err), status)
		return
	}
	if rp := h.o.providers[name]; rp != nil {
		if ack, ok := rp.p.(WebhookResponder); ok {
			ct, b := ack.WebhookAck()
			w.Header().Set("Content-Type", ct)
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(b)
			return
		}
	}
	w.WriteHeader(http.StatusOK)
}

func webhookErrorText(err error) string {
	for _, s := range []error{ErrWebhookTooLarge, ErrUnknownProvider, ErrWebhookNotSigned, ErrWebhookBadSignature, ErrWebhookTooOld, ErrWebhookMalformed, ErrPaymentUnknown, ErrEventBusy, ErrStoreUnavailable} {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	return "paymux: webhook not processed"
}

func readLimited(r io.Reader, limit int64) ([]byte, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: empty body", ErrWebhookMalformed)
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading body: %v", ErrWebhookMalformed, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrWebhookTooLarge, limit)
	}
	return b, nil
}

// Ingest runs the pipeline for one webhook request body: verify, normalise,
// de-duplicate, apply, enqueue for the subscriber. It returns nil only when
// every event in the body is durably applied (or was already), which is when
// the provider may be told so.
func (h *WebhookHandler) Ingest(ctx context.Context, provider string, header http.Header, body []byte) error {
	if int64(len(body)) > h.opts.MaxBodyBytes {
		return fmt.Errorf("%w: more than %d bytes", ErrWebhookTooLarge, h.opts.MaxBodyBytes)
	}
	rp := h.o.providers[provider]
	if rp == nil {
		return fmt.Errorf("%w: %q", ErrUnknownProvider, provider)
	}
	parser, ok := rp.p.(WebhookParser)
	if !ok {
		return fmt.Errorf("%w: %q takes no webhooks", ErrUnknownProvider, provider)
	}
	events, err := parser.ParseWebhook(ctx, header, body)
	if err != nil {
		if h.opts.UnverifiedAsHint && isVerificationError(err) {
			h.hint(rp, header, body)
		}
		if !isVerificationError(err) && !errors.Is(err, ErrWebhookMalformed) {
			err = fmt.Errorf("%w: %w", ErrWebhookMalformed, err)
		}
		return err
	}
	for i := range events {
		ev := &events[i]
		if ev.Provider == "" {
			ev.Provider = provider
		}
		if ev.ID == "" {
			return fmt.Errorf("%w: event without an id", ErrWebhookMalformed)
		}
		if err := h.ingestEvent(ctx, ev); err != nil {
			return err
		}
	}
	return nil
}

func isVerificationError(err error) bool {
	return errors.Is(err, ErrWebhookNotSigned) || errors.Is(err, ErrWebhookBadSignature) || errors.Is(err, ErrWebhookTooOld)
}

func (h *WebhookHandler) ingestEvent(ctx context.Context, ev *Event) error {
	if h.completeUnchanged(ctx, ev) {
		return nil
	}
	st := h.o.cfg.Store
	var claim EventClaim
	var first *Payment // the event's payment, when the claim read it too
	var err error
	if c, ok := st.(EventPaymentClaimer); ok && ev.ProviderRef != "" {
		claim, first, err = c.ClaimEventForPayment(ctx, ev.Provider, ev.ID, h.opts.EventLease, ev.ProviderRef)
	} else {
		claim, err = st.ClaimEvent(ctx, ev.Provider, ev.ID, h.opts.EventLease)
	}
	if err != nil {
		return storeErr("claim event", err)
	}
	switch claim {
	case EventDuplicate:
		return nil
	case EventBusy:
		return fmt.Errorf("%w: %s/%s", ErrEventBusy, ev.Provider, ev.ID)
	}
	p, err := h.apply(ctx, ev, first)
	if err != nil {
		h.release(ctx, ev)
		return err
	}
	return h.complete(ctx, ev, p)
}

// completeUnchanged finishes, in one store round trip, the usual webhook
// that confirms what this process just recorded: its payment is one the
// orchestrator remembers (recentPayments), applying the event to it
// changes nothing, and the store marks the event processed and enqueues
// its delivery only if the payment is still at that version and the event
// is new. It reports whether it did; if not, nothing was written (or the
// answer was lost after both were), and the usual path decides, finding a
// processed event a duplicate.
func (h *WebhookHandler) completeUnchanged(ctx context.Context, ev *Event) bool {
	d := h.opts.Dispatcher
	uc, ok := h.o.cfg.Store.(UnchangedEventCompleter)
	if !ok || d == nil || ev.ProviderRef == "" {
		return false
	}
	p := h.o.recent.lookup(ev.Provider, ev.ProviderRef)
	if p == nil || applyEvent(p, ev) {
		return false
	}
	done, err := uc.CompleteUnchangedEvent(ctx, ev.Provider, ev.ID, h.opts.EventTTL, d.newDelivery(ev, p.ID), p.ID, p.Version)
	if err != nil || !done {
		return false
	}
	d.notify()
	return true
}

// release forgets this handler's claim on ev after a failure, so the
// provider's redelivery is processed at once instead of after the lease.
// A processed event stays processed, so releasing after a step whose answer
// was lost but which did commit changes nothing.
func (h *WebhookHandler) release(ctx context.Context, ev *Event) {
	if err := h.o.cfg.Store.ReleaseEvent(context.WithoutCancel(ctx), ev.Provider, ev.ID); err != nil {
		h.o.log.Warn("paymux: could not release event claim; it expires with its lease", "event", ev.ID, "err", err)
	}
}

// apply applies ev to its payment and returns the payment, or nil for an
// event about no payment paymux knows that may be acknowledged anyway.
func (h *WebhookHandler) apply(ctx context.Context, ev *Event, first *Payment) (*Payment, error) {
	p, err := h.o.applyEventTo(ctx, ev, first)
	if errors.Is(err, ErrPaymentUnknown) && (ev.Type == EventOther || ev.ProviderRef == "" && ev.PaymentKey == "") {
		// Verified, but about no payment (a customer or report event):
		// nothing to apply and nothing to wait for.
		return nil, nil
	}
	if errors.Is(err, ErrPaymentUnknown) && !ev.OccurredAt.IsZero() && h.o.now().Sub(ev.OccurredAt) > h.opts.OrphanAfter {
		h.o.log.Warn("paymux: acknowledging event for a payment paymux never knew", "provider", ev.Provider, "event", ev.ID)
		return nil, nil
	}
	return p, err
}

// complete enqueues the applied event's delivery, when there is a
// dispatcher, and marks the event processed. The event is never marked
// before its delivery is stored: a processed event is not redelivered by
// the provider, so its delivery would be lost.
//
// With a store that implements EventCompleter both happen in one round
// trip; otherwise the delivery is enqueued first and the event marked
// after, in two.
func (h *WebhookHandler) complete(ctx context.Context, ev *Event, p *Payment) error {
	st := h.o.cfg.Store
	d := h.opts.Dispatcher
	if d != nil {
		paymentID := ""
		if p != nil {
			paymentID = p.ID
		}
		if ec, ok := st.(EventCompleter); ok {
			if err := ec.CompleteEventWithDelivery(ctx, ev.Provider, ev.ID, h.opts.EventTTL, d.newDelivery(ev, paymentID)); err != nil {
				// Neither happened (or the answer was lost after both did,
				// which the release cannot undo): the redelivery re-applies,
				// which changes nothing, and enqueues.
				h.release(ctx, ev)
				return storeErr("complete event with delivery", err)
			}
			d.notify()
			return nil
		}
		if err := d.enqueue(ctx, ev, paymentID); err != nil {
			h.release(ctx, ev)
			return err
		}
	}
	if err := st.CompleteEvent(ctx, ev.Provider, ev.ID, h.opts.EventTTL); err != nil {
		// Applied and enqueued, but not marked: a redelivery re-applies,
		// which changes nothing, and re-enqueues, which is a no-op.
		return storeErr("complete event", err)
	}
	return nil
}

func (h *WebhookHandler) hint(rp *registeredProvider, header http.Header, body []byte) {
	hinter, ok := rp.p.(WebhookHinter)
	if !ok {
		return
	}
	h.mu.Lock()
	lim := h.hints[rp.name]
	if lim == nil {
		lim = rate.NewLimiter(h.opts.HintRate, h.opts.HintBurst)
		h.hints[rp.name] = lim
	}
	h.mu.Unlock()
	if !lim.Allow() {
		return
	}
	ref, ok := hinter.HintReference(header, body)
	if !ok || ref == "" {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), h.o.cfg.CallTimeout)
		defer cancel()
		p, err := h.o.cfg.Store.GetPaymentByProviderRef(ctx, rp.name, ref)
		if err != nil {
			return // only payments paymux knows are synced
		}
		if _, err := h.o.Sync(ctx, p.ID); err != nil {
			h.o.log.Info("paymux: sync after unverified webhook failed", "payment", p.ID, "err", err)
		}
	}()
}

// ApplyEvent applies a verified event to its payment with compare-and-set:
// the status only moves forward and amounts only grow (invariant 4), so a
// late, repeated or reordered event changes nothing it should not. It
// returns ErrPaymentUnknown when no payment matches.
func (o *Orchestrator) ApplyEvent(ctx context.Context, ev *Event) (*Payment, error) {
	return o.applyEventTo(ctx, ev, nil)
}

// applyEventTo is ApplyEvent starting from first, the event's payment as
// just read with the event's claim, when not nil; a retry reads it again.
func (o *Orchestrator) applyEventTo(ctx context.Context, ev *Event, first *Payment) (*Payment, error) {
	st := o.cfg.Store
	for tries := 0; ; tries++ {
		p, err := first, error(nil)
		first = nil // a retry after a conflict reads the payment again
		if p == nil {
			p, err = o.paymentForEvent(ctx, ev)
		}
		if err != nil {
			return nil, err
		}
		before := p.Version
		if !applyEvent(p, ev) {
			return p, nil
		}
		p.UpdatedAt = o.now()
		err = st.SavePayment(ctx, p, before)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, ErrVersionConflict) || tries >= 16 {
			return nil, storeErr("apply event", err)
		}
	}
}

func (o *Orchestrator) paymentForEvent(ctx context.Context, ev *Event) (*Payment, error) {
	st := o.cfg.Store
	if ev.ProviderRef != "" {
		p, err := st.GetPaymentByProviderRef(ctx, ev.Provider, ev.ProviderRef)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return nil, storeErr("find payment", err)
		}
	}
	if ev.PaymentKey != "" {
		p, err := st.GetPayment(ctx, PaymentID(ev.PaymentKey))
		if err == nil && (p.Provider == ev.Provider || p.ProviderRef == "") {
			return p, nil
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, storeErr("find payment", err)
		}
	}
	return nil, fmt.Errorf("%w: %s %s", ErrPaymentUnknown, ev.Provider, ev.ProviderRef)
}

// applyEvent moves p by ev and reports whether anything changed.
func applyEvent(p *Payment, ev *Event) bool {
	before := struct {
		s       Status
		a, c, r int64
		ref     string
		refunds int
	}{p.Status, p.Authorized, p.Captured, p.Refunded, p.ProviderRef, len(p.Refunds)}
	amount := ev.Amount.Amount
	if ev.Amount.Currency != "" && ev.Amount.Currency != p.Amount.Currency {
		amount = 0 // never mix currencies; the status still moves
	}
	if p.ProviderRef == "" && ev.ProviderRef != "" && ev.Provider == p.Provider {
		p.ProviderRef = ev.ProviderRef
	}
	move := func(to Status) {
		if p.Status.CanTransition(to) {
			p.Status = to
		}
	}
	switch ev.Type {
	case EventAuthorized:
		if !ev.Success {
			move(StatusFailed)
			break
		}
		move(StatusAuthorized)
		if p.Status == StatusAuthorized || p.Status == StatusCaptured || p.Status == StatusRefunded {
			p.Authorized = max(p.Authorized, orAmount(amount, p.Amount.Amount))
		}
	case EventCaptured:
		if !ev.Success {
			break
		}
		move(StatusCaptured)
		if p.Status == StatusCaptured || p.Status == StatusRefunded {
			p.Captured = max(p.Captured, orAmount(amount, p.Amount.Amount))
		}
	case EventRefunded:
		if !ev.Success {
			break
		}
		move(StatusRefunded)
		if p.Status != StatusRefunded {
			break
		}
		if ev.RefundRef == "" {
			// A running total (Stripe's amount_refunded, the sim's).
			p.Refunded = max(p.Refunded, orAmount(amount, p.Captured))
			break
		}
		// One refund's own amount: count each refund once, sum them.
		seen := false
		var sum int64
		for _, r := range p.Refunds {
			seen = seen || r.Reference == ev.RefundRef
			sum += r.Amount
		}
		if !seen && amount > 0 {
			p.Refunds = append(p.Refunds, Refund{Key: "event:" + ev.ID, Reference: ev.RefundRef, Amount: amount, Status: "succeeded"})
			sum += amount
		}
		p.Refunded = max(p.Refunded, sum)
	case EventFailed:
		if ev.ProviderRef != "" && p.ProviderRef != "" && ev.ProviderRef != p.ProviderRef {
			// The failure of an earlier attempt (before a failover or a 3-D
			// Secure step-up) says nothing about the current one.
			break
		}
		if p.Status == StatusPending || p.Status == StatusUnknown || p.Status == StatusRequiresAction {
			move(StatusFailed)
			if ev.Code != "" {
				p.FailureCode = ev.Code
			}
		}
	case EventVoided:
		if ev.Success {
			move(StatusVoided)
		}
	case EventActionRequired:
		move(StatusRequiresAction)
	}
	if p.Status != StatusFailed && p.Status != StatusUnknown && before.s == StatusUnknown {
		p.FailureKind, p.FailureCode = KindNone, ""
	}
	// Keep refunded <= captured <= authorised, whatever order events came in.
	p.Captured = max(p.Captured, p.Refunded)
	p.Authorized = max(p.Authorized, p.Captured)
	return before.s != p.Status || before.a != p.Authorized || before.c != p.Captured || before.r != p.Refunded || before.ref != p.ProviderRef || before.refunds != len(p.Refunds)
}

func orAmount(a, fallback int64) int64 {
	if a > 0 {
		return a
	}
	return fallback
}
