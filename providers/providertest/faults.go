package providertest

import (
	"math/rand/v2"
	"sync"
	"time"
)

// FaultPlan says which faults a fake provider injects. Every fake server
// (sim, stripetest, paypaltest, adyentest, braintreetest, worldpaytest)
// consults one Faults value per request, so tests and the surge tool's chaos
// mode drive them all the same way.
type FaultPlan struct {
	// Outage: refuse every request before processing it (connection
	// refused or the provider's documented "not processed" 503). Money never
	// moves, so failover is safe.
	Outage bool
	// RateLimit: answer every mutating request with the provider's 429 before
	// processing it.
	RateLimit bool
	// ServerErrorRate: the share (0..1) of mutating requests answered with a
	// 5xx of unknown effect. The fake does NOT process them, but the client
	// cannot know that.
	ServerErrorRate float64
	// TimeoutAfterCommitRate: the share (0..1) of mutating requests the fake
	// processes (money moves) and then answers by cutting the connection, so
	// the client sees the outcome as unknown.
	TimeoutAfterCommitRate float64
	// TimeoutAfterCommitNext: the next n mutating requests time out after
	// commit, whatever the rate says. Deterministic, for tests.
	TimeoutAfterCommitNext int
	// Latency is added to every request.
	Latency time.Duration
}

// Fault is the fault chosen for one request.
type Fault int

const (
	FaultNone Fault = iota
	FaultOutage
	FaultRateLimit
	FaultServerError
	FaultTimeoutAfterCommit
)

// Faults is a concurrency-safe FaultPlan. The zero value injects nothing.
type Faults struct {
	mu   sync.Mutex
	plan FaultPlan
}

// Set replaces the plan.
func (f *Faults) Set(p FaultPlan) {
	f.mu.Lock()
	f.plan = p
	f.mu.Unlock()
}

// Update changes the plan under the lock.
func (f *Faults) Update(fn func(*FaultPlan)) {
	f.mu.Lock()
	fn(&f.plan)
	f.mu.Unlock()
}

// Plan returns the current plan.
func (f *Faults) Plan() FaultPlan {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.plan
}

// Next picks the fault for one request and returns the latency to add.
// mutating is false for reads (lookups), which only suffer outages and
// latency.
func (f *Faults) Next(mutating bool) (Fault, time.Duration) {
	if f == nil {
		return FaultNone, 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p := &f.plan
	switch {
	case p.Outage:
		return FaultOutage, p.Latency
	case !mutating:
		return FaultNone, p.Latency
	case p.RateLimit:
		return FaultRateLimit, p.Latency
	case p.TimeoutAfterCommitNext > 0:
		p.TimeoutAfterCommitNext--
		return FaultTimeoutAfterCommit, p.Latency
	case p.TimeoutAfterCommitRate > 0 && rand.Float64() < p.TimeoutAfterCommitRate:
		return FaultTimeoutAfterCommit, p.Latency
	case p.ServerErrorRate > 0 && rand.Float64() < p.ServerErrorRate:
		return FaultServerError, p.Latency
	}
	return FaultNone, p.Latency
}
