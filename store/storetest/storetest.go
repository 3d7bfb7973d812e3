// Package storetest is the conformance suite every paymux.Store runs. A
// store's conformance_test.go calls Run with a Harness:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Harness{
//			New: func(t *testing.T) paymux.Store { return memory.New(memory.Options{}) },
//		})
//	}
//
// Besides what store.go documents, the suite pins down these details:
//   - ClaimIdempotency returns the existing record (with its fingerprint)
//     when it does not claim, so the caller can tell a replay, a request in
//     progress and a mismatch apart. A takeover keeps PaymentID and the
//     snapshot and sets TakenOver; a record past its TTL counts as absent.
//   - Checkpoint, Complete and Release answer ErrClaimLost for a missing
//     key, a wrong token or a completed record. A holder whose lease ended
//     but whom nobody took over still holds the key.
//   - On ErrClaimLost or ErrVersionConflict nothing changes, not even the
//     caller's p.Version.
//   - SavePayment with expectedVersion > 0 on a missing payment is
//     ErrVersionConflict. A changed ProviderRef or Provider un-indexes the
//     old reference; a refused save indexes nothing.
//   - ListUnsettledPayments compares UpdatedAt strictly before the bound.
//   - ReleaseEvent of a processed event keeps it processed.
//   - EnqueueDelivery of an existing id is a no-op whatever its state;
//     RetryDelivery and DeadLetterDelivery both add one to Attempts;
//     Complete/Retry/DeadLetter of a missing id are ErrNotFound.
//   - The optional capabilities (paymux.EventCompleter,
//     paymux.DeliveryCompleter, paymux.PaymentsGetter) are tested when the
//     store implements them and skipped otherwise.
//     CompleteEventWithDelivery keeps an existing entry as EnqueueDelivery
//     does, completes an event nobody claimed, and is never observed with
//     the event processed but its delivery missing. CompleteDeliveries and
//     GetPayments skip ids they do not know and take at least 600 ids at
//     once.
//   - Fixture times are UTC and millisecond precise, so SQL columns with
//     microsecond precision round-trip them.
//
// The suite uses the wall clock with short leases (tens of milliseconds) and
// polls rather than sleeping long, so stores whose expiry is decided by a
// server (Redis PX, SQL now()) are tested the same way as in-process ones.
package storetest

import (
	"testing"
	"time"

	"github.com/paymux/paymux"
)

// Harness builds stores for the suite.
type Harness struct {
	// New returns a fresh, empty store isolated from every other store New
	// returned (its own key prefix or schema). It registers its own cleanup
	// with t.Cleanup. Required.
	New func(t *testing.T) paymux.Store
	// Concurrency is how many goroutines race in the concurrency tests;
	// zero means 64.
	Concurrency int
	// Lease is the short lease used by the expiry tests; zero means 40 ms.
	// Stores with coarse timers may ask for more.
	Lease time.Duration
}

func (h Harness) concurrency() int {
	if h.Concurrency > 0 {
		return h.Concurrency
	}
	return 64
}

func (h Harness) lease() time.Duration {
	if h.Lease > 0 {
		return h.Lease
	}
	return 40 * time.Millisecond
}

// Run runs the whole suite. Every subtest gets its own store from h.New and
// runs in parallel with the others.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.New == nil {
		t.Fatal("storetest: Harness.New is nil")
	}
	s := &suite{h: h}
	groups := []struct {
		name  string
		tests []test
	}{
		{"Idempotency", s.idempotencyTests()},
		{"Payments", s.paymentTests()},
		{"Events", s.eventTests()},
		{"Outbox", s.outboxTests()},
		{"Capabilities", s.capabilityTests()},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.fn(t)
				})
			}
		})
	}
}

type test struct {
	name string
	fn   func(t *testing.T)
}

type suite struct {
	h Harness
}
