package paymux

import "sync"

// DefaultRecentPayments is how many payments an Orchestrator remembers
// after recording them, for Config.RecentPayments.
const DefaultRecentPayments = 16384

// recentPayments remembers the payments this process recorded last, by
// provider reference, so that the webhook confirming one can be finished
// without reading it (WebhookHandler.completeUnchanged). A remembered
// payment is only a guess of what is stored: the store checks its version
// in the same step as it marks the event processed, and a stale guess just
// takes the usual path. The oldest entry makes room for the newest, so
// memory stays bounded whatever the webhooks do.
type recentPayments struct {
	mu   sync.Mutex
	byID map[recentKey]*Payment
	ring []recentKey // insertion order; ring[next] is the oldest once full
	next int
}

type recentKey struct{ provider, ref string }

func newRecentPayments(size int) *recentPayments {
	if size <= 0 {
		return nil
	}
	return &recentPayments{byID: make(map[recentKey]*Payment, size), ring: make([]recentKey, 0, size)}
}

// remember keeps a copy of p, which must carry its stored version.
func (r *recentPayments) remember(p *Payment) {
	if r == nil || p.ProviderRef == "" || p.Provider == "" {
		return
	}
	k := recentKey{p.Provider, p.ProviderRef}
	c := p.Clone()
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byID[k]; ok {
		r.byID[k] = c // newer version, same place in the ring
		return
	}
	if len(r.ring) < cap(r.ring) {
		r.ring = append(r.ring, k)
	} else {
		delete(r.byID, r.ring[r.next])
		r.ring[r.next] = k
		r.next = (r.next + 1) % len(r.ring)
	}
	r.byID[k] = c
}

// lookup returns a copy of the payment remembered for provider's ref, for
// the caller to change, or nil.
func (r *recentPayments) lookup(provider, ref string) *Payment {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	p := r.byID[recentKey{provider, ref}]
	r.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.Clone()
}
