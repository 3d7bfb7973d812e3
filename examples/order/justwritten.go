package order

import (
	"sync"
	"time"
)

// justWritten holds orders this process has just written, for the next
// step in this process, so that it need not read them back: checkout hands
// a placed order to the worker that pays it (Service.placed), and the
// worker hands a paid order to the webhook that reports the same payment a
// moment later (Service.settled). One store round trip less per order for
// each.
//
// It is only a shortcut. A step that runs elsewhere, or again, reads the
// store as before, and an entry nobody took is dropped after its ttl.
// Neither use can act on a stale entry: see Service.pay and
// Service.OnPaymentEvent.
type justWritten struct {
	mu      sync.Mutex
	orders  map[string]handedOver
	maxSize int
	ttl     time.Duration
}

type handedOver struct {
	order *Order
	at    time.Time
}

const (
	justWrittenSize = 50_000 // about one drop's queue; beyond it workers read

	// placedTTL: a worker takes a placed order within seconds, unless
	// the queue lives elsewhere.
	placedTTL = time.Minute
	// settledTTL is longer because a provider's webhooks can trail the
	// payments by minutes under load: a 50,000-buyer drop on PostgreSQL
	// ended with a backlog of more than a minute of webhooks, and with
	// a one-minute ttl each late webhook read its order back (about 5 %
	// of that run's CPU). A stale entry is harmless here (see reports),
	// so only memory bounds it: justWrittenSize small entries (settledCopy).
	settledTTL = 15 * time.Minute
)

func newJustWritten(maxSize int, ttl time.Duration) *justWritten {
	return &justWritten{orders: map[string]handedOver{}, maxSize: maxSize, ttl: ttl}
}

// put leaves o for the next step; a copy, so the caller may go on with o.
func (h *justWritten) put(o *Order, now time.Time) {
	cp := *o
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.orders) < h.maxSize {
		h.orders[o.ID] = handedOver{order: &cp, at: now}
	}
}

// take returns the order left for id, once.
func (h *justWritten) take(id string) (*Order, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.orders[id]
	if ok {
		delete(h.orders, id)
	}
	return e.order, ok
}

// peek returns a copy of the order left for id and leaves it there. An
// order whose reservation has run out by now is not returned: from then on
// an expiry sweep, in any instance, may change it without this process
// knowing, so callers read the store.
func (h *justWritten) peek(id string, now time.Time) (*Order, bool) {
	h.mu.Lock()
	e, ok := h.orders[id]
	h.mu.Unlock()
	if !ok || (!e.order.ReservedUntil.IsZero() && !now.Before(e.order.ReservedUntil)) {
		return nil, false
	}
	cp := *e.order
	return &cp, true
}

// has reports whether peek would return an order for id.
func (h *justWritten) has(id string, now time.Time) bool {
	_, ok := h.peek(id, now)
	return ok
}

// drop forgets the order left for id (the next step will not come).
func (h *justWritten) drop(id string) {
	h.mu.Lock()
	delete(h.orders, id)
	h.mu.Unlock()
}

// expire forgets what nobody took within the ttl: orders whose next step
// ran in another instance, or never came.
func (h *justWritten) expire(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, e := range h.orders {
		if now.Sub(e.at) > h.ttl {
			delete(h.orders, id)
		}
	}
}
