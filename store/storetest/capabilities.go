package storetest

import (
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paymux/paymux"
)

// The optional capabilities of store.go. A store that does not implement
// one skips its tests.

// capable returns a new store as the capability C, or skips the test when
// the store does not implement C.
func capable[C any](t *testing.T, s *suite) (paymux.Store, C) {
	t.Helper()
	st := s.h.New(t)
	c, ok := st.(C)
	if !ok {
		t.Skipf("%T does not implement %v", st, reflect.TypeFor[C]())
	}
	return st, c
}

func (s *suite) capabilityTests() []test {
	return []test{
		{"CompleteEventWithDeliveryEnqueuesAndCompletes", s.testCompleteEventWithDelivery},
		{"CompleteEventWithDeliveryKeepsAnExistingEntry", s.testCompleteEventWithDeliveryExisting},
		{"CompleteEventWithDeliveryTTL", s.testCompleteEventWithDeliveryTTL},
		{"CompleteEventWithDeliveryNeverMarksTheEventAlone", s.testCompleteEventWithDeliveryOrder},
		{"CompleteEventWithDeliveryConcurrentOneEntry", s.testCompleteEventWithDeliveryRace},
		{"CompleteDeliveries", s.testCompleteDeliveries},
		{"CompleteDeliveriesManyIDs", s.testCompleteDeliveriesMany},
		{"ClaimEventForPayment", s.testClaimEventForPayment},
		{"ClaimEventForPaymentConcurrentOneClaim", s.testClaimEventForPaymentRace},
		{"CompleteUnchangedEventWritesBoth", s.testCompleteUnchangedEvent},
		{"CompleteUnchangedEventWritesNothingOtherwise", s.testCompleteUnchangedEventRefuses},
		{"CompleteUnchangedEventConcurrentOneWinner", s.testCompleteUnchangedEventRace},
		{"GetPayments", s.testGetPayments},
		{"GetPaymentsManyIDs", s.testGetPaymentsMany},
	}
}

func (s *suite) testCompleteEventWithDelivery(t *testing.T) {
	st, ec := capable[paymux.EventCompleter](t, s)
	d := newDelivery(now())
	s.claimEvent(t, st, d.Event.Provider, d.Event.ID, time.Minute, paymux.EventClaimed)
	noErr(t, "CompleteEventWithDelivery", ec.CompleteEventWithDelivery(ctx(t), d.Event.Provider, d.Event.ID, time.Hour, d))

	// ReleaseEvent leaves a processed event processed, whichever call
	// processed it.
	noErr(t, "ReleaseEvent", st.ReleaseEvent(ctx(t), d.Event.Provider, d.Event.ID))
	s.processedWithDelivery(t, st, d)
	claimed, err := st.ClaimDueDeliveries(ctx(t), now().Add(time.Second), time.Minute, 10)
	noErr(t, "ClaimDueDeliveries", err)
	if len(claimed) != 1 || claimed[0].ID != d.ID {
		t.Fatalf("ClaimDueDeliveries = %v, want [%s]", ids(claimed), d.ID)
	}

	// An event nobody claimed first (a caller that skipped the claim) is
	// completed all the same.
	d2 := newDelivery(now())
	noErr(t, "CompleteEventWithDelivery unclaimed", ec.CompleteEventWithDelivery(ctx(t), d2.Event.Provider, d2.Event.ID, time.Hour, d2))
	s.claimEvent(t, st, d2.Event.Provider, d2.Event.ID, time.Minute, paymux.EventDuplicate)
	_, err = st.GetDelivery(ctx(t), d2.ID)
	noErr(t, "GetDelivery of the second", err)
}

// processedWithDelivery checks that d's event is processed and d stored,
// pending.
func (s *suite) processedWithDelivery(t *testing.T, st paymux.Store, d *paymux.Delivery) {
	t.Helper()
	s.claimEvent(t, st, d.Event.Provider, d.Event.ID, time.Minute, paymux.EventDuplicate)
	want := *d
	want.State = paymux.DeliveryPending
	got, err := st.GetDelivery(ctx(t), d.ID)
	noErr(t, "GetDelivery", err)
	sameDelivery(t, "enqueued with the event", got, &want)
}

// noDelivery checks that nothing was stored for d after a call that said it
// wrote nothing.
func noDelivery(t *testing.T, st paymux.Store, what string, d *paymux.Delivery) {
	t.Helper()
	if _, err := st.GetDelivery(ctx(t), d.ID); !errors.Is(err, paymux.ErrNotFound) {
		t.Fatalf("%s: the delivery was stored (err %v)", what, err)
	}
}

func (s *suite) testCompleteEventWithDeliveryExisting(t *testing.T) {
	st, ec := capable[paymux.EventCompleter](t, s)
	// A redelivered webhook after a crash between the enqueue and the
	// event's completion: the entry is there, maybe delivered already.
	pending := newDelivery(now())
	noErr(t, "EnqueueDelivery", st.EnqueueDelivery(ctx(t), pending))
	delivered := newDelivery(now())
	noErr(t, "EnqueueDelivery", st.EnqueueDelivery(ctx(t), delivered))
	noErr(t, "CompleteDelivery", st.CompleteDelivery(ctx(t), delivered.ID))

	for _, d := range []*paymux.Delivery{pending, delivered} {
		s.claimEvent(t, st, d.Event.Provider, d.Event.ID, time.Minute, paymux.EventClaimed)
		other := newDelivery(now().Add(time.Hour))
		other.ID = d.ID
		other.Attempts = 4
		noErr(t, "CompleteEventWithDelivery", ec.CompleteEventWithDelivery(ctx(t), d.Event.Provider, d.Event.ID, time.Hour, other))
		s.claimEvent(t, st, d.Event.Provider, d.Event.ID, time.Minute, paymux.EventDuplicate)
	}
	want := *pending
	want.State = paymux.DeliveryPending
	got, err := st.GetDelivery(ctx(t), pending.ID)
	noErr(t, "GetDelivery", err)
	sameDelivery(t, "existing pending entry", got, &want)
	got, err = st.GetDelivery(ctx(t), delivered.ID)
	noErr(t, "GetDelivery", err)
	if got.State != paymux.DeliveryDelivered || got.Attempts != 0 {
		t.Fatalf("CompleteEventWithDelivery changed a delivered entry: %+v", got)
	}
}

func (s *suite) testCompleteEventWithDeliveryTTL(t *testing.T) {
	st, ec := capable[paymux.EventCompleter](t, s)
	d := newDelivery(now())
	ttl := 2 * s.h.lease()
	s.claimEvent(t, st, "sim", d.Event.ID, time.Minute, paymux.EventClaimed)
	start := time.Now()
	noErr(t, "CompleteEventWithDelivery", ec.CompleteEventWithDelivery(ctx(t), "sim", d.Event.ID, ttl, d))
	if time.Since(start) < ttl/2 {
		s.claimEvent(t, st, "sim", d.Event.ID, time.Minute, paymux.EventDuplicate)
	}
	waitPast(start.Add(ttl))
	eventually(t, 2*time.Second, "completed event is forgotten after its ttl", func() bool {
		c, err := st.ClaimEvent(ctx(t), "sim", d.Event.ID, time.Minute)
		noErr(t, "ClaimEvent", err)
		return c == paymux.EventClaimed
	})

	// Zero means the store's default, which is long.
	d0 := newDelivery(now())
	noErr(t, "CompleteEventWithDelivery ttl 0", ec.CompleteEventWithDelivery(ctx(t), "sim", d0.Event.ID, 0, d0))
	s.claimEvent(t, st, "sim", d0.Event.ID, time.Minute, paymux.EventDuplicate)
}

// Observers racing the completion must never see the event processed while
// its delivery is missing: the provider stops redelivering a processed
// event, so its delivery would be lost.
func (s *suite) testCompleteEventWithDeliveryOrder(t *testing.T) {
	st, ec := capable[paymux.EventCompleter](t, s)
	const events = 16
	var wg sync.WaitGroup
	for range events {
		d := newDelivery(now())
		s.claimEvent(t, st, "sim", d.Event.ID, time.Hour, paymux.EventClaimed)
		done := make(chan struct{})
		wg.Add(2)
		go func() {
			defer wg.Done()
			defer close(done)
			if err := ec.CompleteEventWithDelivery(ctx(t), "sim", d.Event.ID, time.Hour, d); err != nil {
				t.Errorf("CompleteEventWithDelivery: %v", err)
			}
		}()
		go func() {
			defer wg.Done()
			for {
				// The claim is held for an hour, so this only looks.
				c, err := st.ClaimEvent(ctx(t), "sim", d.Event.ID, time.Hour)
				if err != nil {
					t.Errorf("ClaimEvent: %v", err)
					return
				}
				if c == paymux.EventClaimed {
					t.Errorf("event %s claimed twice within its lease", d.Event.ID)
					return
				}
				if c == paymux.EventDuplicate {
					if _, err := st.GetDelivery(ctx(t), d.ID); err != nil {
						t.Errorf("event %s is processed but its delivery is missing: %v", d.Event.ID, err)
					}
					return
				}
				select {
				case <-done:
					// Completed, yet not processed: a failure the writer
					// reports; stop looking.
					if c, _ := st.ClaimEvent(ctx(t), "sim", d.Event.ID, time.Hour); c != paymux.EventDuplicate {
						t.Errorf("event %s not processed after CompleteEventWithDelivery: %v", d.Event.ID, c)
					}
					return
				default:
				}
			}
		}()
	}
	wg.Wait()
}

func (s *suite) testCompleteEventWithDeliveryRace(t *testing.T) {
	st, ec := capable[paymux.EventCompleter](t, s)
	base := newDelivery(now())
	s.claimEvent(t, st, "sim", base.Event.ID, time.Minute, paymux.EventClaimed)
	n := s.h.concurrency()
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := newDelivery(now())
			d.ID = base.ID
			d.Attempts = i // which of them was stored
			<-start
			if err := ec.CompleteEventWithDelivery(ctx(t), "sim", base.Event.ID, time.Hour, d); err != nil {
				t.Errorf("CompleteEventWithDelivery: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	s.claimEvent(t, st, "sim", base.Event.ID, time.Minute, paymux.EventDuplicate)
	claimed, err := st.ClaimDueDeliveries(ctx(t), now().Add(time.Second), time.Minute, n+1)
	noErr(t, "ClaimDueDeliveries", err)
	if len(claimed) != 1 || claimed[0].ID != base.ID {
		t.Fatalf("after %d racing completions the outbox holds %v, want one entry %s", n, ids(claimed), base.ID)
	}
}

func (s *suite) testCompleteDeliveries(t *testing.T) {
	st, dc := capable[paymux.DeliveryCompleter](t, s)
	t0 := now()
	a, b, c, dead := newDelivery(t0), newDelivery(t0), newDelivery(t0), newDelivery(t0)
	for _, d := range []*paymux.Delivery{a, b, c, dead} {
		noErr(t, "EnqueueDelivery", st.EnqueueDelivery(ctx(t), d))
	}
	got, err := st.ClaimDueDeliveries(ctx(t), t0, time.Minute, 10)
	noErr(t, "ClaimDueDeliveries", err)
	if len(got) != 4 {
		t.Fatalf("claimed %v, want 4 entries", ids(got))
	}
	noErr(t, "DeadLetterDelivery", st.DeadLetterDelivery(ctx(t), dead.ID, "gave up"))

	noErr(t, "CompleteDeliveries of none", dc.CompleteDeliveries(ctx(t), nil))
	// Missing ids are skipped, not an error.
	noErr(t, "CompleteDeliveries", dc.CompleteDeliveries(ctx(t), []string{a.ID, uid("missing"), b.ID}))
	for _, d := range []*paymux.Delivery{a, b} {
		cur, err := st.GetDelivery(ctx(t), d.ID)
		noErr(t, "GetDelivery", err)
		if cur.State != paymux.DeliveryDelivered || cur.Attempts != 0 {
			t.Fatalf("after CompleteDeliveries: %+v", cur)
		}
	}
	cur, err := st.GetDelivery(ctx(t), c.ID)
	noErr(t, "GetDelivery", err)
	if cur.State != paymux.DeliveryPending {
		t.Fatalf("an entry not listed changed to %q", cur.State)
	}
	cur, err = st.GetDelivery(ctx(t), dead.ID)
	noErr(t, "GetDelivery", err)
	if cur.State != paymux.DeliveryDead {
		t.Fatalf("an entry not listed changed to %q", cur.State)
	}
	// Completing again changes nothing and is no error.
	noErr(t, "CompleteDeliveries again", dc.CompleteDeliveries(ctx(t), []string{a.ID, b.ID}))

	// After the lease only the entry left pending comes back, and a
	// delivered entry is not re-enqueued.
	noErr(t, "EnqueueDelivery of a delivered id", st.EnqueueDelivery(ctx(t), newDeliveryWithID(a.ID)))
	got, err = st.ClaimDueDeliveries(ctx(t), t0.Add(time.Hour), time.Minute, 10)
	noErr(t, "ClaimDueDeliveries after the lease", err)
	if len(got) != 1 || got[0].ID != c.ID {
		t.Fatalf("after the lease: %v, want only %s", ids(got), c.ID)
	}
}

// manyIDs is more ids than one statement or script of a store might take
// (the SQL store splits IN lists at 500).
const manyIDs = 600

func (s *suite) testCompleteDeliveriesMany(t *testing.T) {
	st, dc := capable[paymux.DeliveryCompleter](t, s)
	t0 := now()
	var all []string
	for range manyIDs {
		d := newDelivery(t0)
		noErr(t, "EnqueueDelivery", st.EnqueueDelivery(ctx(t), d))
		all = append(all, d.ID)
	}
	noErr(t, "CompleteDeliveries", dc.CompleteDeliveries(ctx(t), all))
	got, err := st.ClaimDueDeliveries(ctx(t), t0.Add(time.Hour), time.Minute, manyIDs)
	noErr(t, "ClaimDueDeliveries", err)
	if len(got) != 0 {
		t.Fatalf("%d of %d entries still pending after CompleteDeliveries", len(got), manyIDs)
	}
	for _, id := range []string{all[0], all[manyIDs/2], all[manyIDs-1]} {
		cur, err := st.GetDelivery(ctx(t), id)
		noErr(t, "GetDelivery", err)
		if cur.State != paymux.DeliveryDelivered {
			t.Fatalf("entry %s: state %q", id, cur.State)
		}
	}
}

func (s *suite) testGetPayments(t *testing.T) {
	st, pg := capable[paymux.PaymentsGetter](t, s)
	p1, p2 := newPayment(uid("key")), newPayment(uid("key"))
	noErr(t, "SavePayment", st.SavePayment(ctx(t), p1, 0))
	noErr(t, "SavePayment", st.SavePayment(ctx(t), p2, 0))
	upd := p2.Clone()
	upd.Status = paymux.StatusAuthorized
	noErr(t, "SavePayment update", st.SavePayment(ctx(t), upd, 1))

	got, err := pg.GetPayments(ctx(t), nil)
	noErr(t, "GetPayments of none", err)
	if len(got) != 0 {
		t.Fatalf("GetPayments(nil) = %v", got)
	}
	missing := uid("missing")
	got, err = pg.GetPayments(ctx(t), []string{p1.ID, missing, p2.ID})
	noErr(t, "GetPayments", err)
	if len(got) != 2 {
		t.Fatalf("GetPayments returned %d payments, want 2", len(got))
	}
	if _, ok := got[missing]; ok {
		t.Fatal("GetPayments returned an entry for a missing id")
	}
	samePayment(t, "first payment", got[p1.ID], p1)
	samePayment(t, "updated payment", got[p2.ID], upd)
	if got[p2.ID].Version != 2 {
		t.Fatalf("version = %d, want 2", got[p2.ID].Version)
	}

	// Returned payments are copies.
	got[p1.ID].Status = paymux.StatusFailed
	got[p1.ID].Metadata["order"] = "changed"
	again, err := pg.GetPayments(ctx(t), []string{p1.ID})
	noErr(t, "GetPayments again", err)
	samePayment(t, "after mutating the returned payment", again[p1.ID], p1)
}

func (s *suite) testGetPaymentsMany(t *testing.T) {
	st, pg := capable[paymux.PaymentsGetter](t, s)
	var all []string
	for i := range manyIDs {
		if i%3 == 2 {
			all = append(all, uid("missing"))
			continue
		}
		p := newPayment(uid("key"))
		noErr(t, "SavePayment", st.SavePayment(ctx(t), p, 0))
		all = append(all, p.ID)
	}
	got, err := pg.GetPayments(ctx(t), all)
	noErr(t, "GetPayments", err)
	if want := manyIDs - manyIDs/3; len(got) != want {
		t.Fatalf("GetPayments of %d ids returned %d payments, want %d", manyIDs, len(got), want)
	}
	for i, id := range all {
		if _, ok := got[id]; ok != (i%3 != 2) {
			t.Fatalf("id %d (%s): present %v", i, id, ok)
		}
	}
}

// ClaimEventForPayment claims as ClaimEvent does, and the payment it may
// return is the one GetPaymentByProviderRef returns, as a copy.
func (s *suite) testClaimEventForPayment(t *testing.T) {
	st, c := capable[paymux.EventPaymentClaimer](t, s)
	p := newPayment(uid("key"))
	p.ProviderRef = uid("ref")
	noErr(t, "SavePayment", st.SavePayment(ctx(t), p, 0))
	upd := p.Clone()
	upd.Status = paymux.StatusAuthorized
	noErr(t, "SavePayment update", st.SavePayment(ctx(t), upd, 1))

	id := uid("evt")
	claim, got, err := c.ClaimEventForPayment(ctx(t), p.Provider, id, time.Minute, p.ProviderRef)
	noErr(t, "ClaimEventForPayment", err)
	if claim != paymux.EventClaimed {
		t.Fatalf("first claim = %v, want claimed", claim)
	}
	if got != nil {
		samePayment(t, "payment read with the claim", got, upd)
		if got.Version != 2 {
			t.Fatalf("version = %d, want 2", got.Version)
		}
		got.Status = paymux.StatusFailed // the caller's copy
		again, err := st.GetPaymentByProviderRef(ctx(t), p.Provider, p.ProviderRef)
		noErr(t, "GetPaymentByProviderRef", err)
		samePayment(t, "stored payment after the caller changed its copy", again, upd)
	}
	// A second claim while the first is in flight is busy; once processed,
	// a duplicate; neither returns a payment.
	claim, got, err = c.ClaimEventForPayment(ctx(t), p.Provider, id, time.Minute, p.ProviderRef)
	noErr(t, "ClaimEventForPayment in flight", err)
	if claim != paymux.EventBusy || got != nil {
		t.Fatalf("claim in flight = %v, %v; want busy, no payment", claim, got)
	}
	noErr(t, "CompleteEvent", st.CompleteEvent(ctx(t), p.Provider, id, time.Hour))
	claim, got, err = c.ClaimEventForPayment(ctx(t), p.Provider, id, time.Minute, p.ProviderRef)
	noErr(t, "ClaimEventForPayment processed", err)
	if claim != paymux.EventDuplicate || got != nil {
		t.Fatalf("claim of a processed event = %v, %v; want duplicate, no payment", claim, got)
	}

	// A released claim is claimed again; an expired lease is retaken.
	id2 := uid("evt")
	s.claimEvent(t, st, p.Provider, id2, time.Minute, paymux.EventClaimed)
	noErr(t, "ReleaseEvent", st.ReleaseEvent(ctx(t), p.Provider, id2))
	if claim, _, err := c.ClaimEventForPayment(ctx(t), p.Provider, id2, time.Millisecond, p.ProviderRef); err != nil || claim != paymux.EventClaimed {
		t.Fatalf("claim after release = %v, %v; want claimed", claim, err)
	}
	time.Sleep(20 * time.Millisecond)
	if claim, _, err := c.ClaimEventForPayment(ctx(t), p.Provider, id2, time.Minute, p.ProviderRef); err != nil || claim != paymux.EventClaimed {
		t.Fatalf("claim after the lease ended = %v, %v; want claimed", claim, err)
	}

	// An event about a payment nobody stored is claimed, with no payment.
	claim, got, err = c.ClaimEventForPayment(ctx(t), p.Provider, uid("evt"), time.Minute, uid("ref"))
	noErr(t, "ClaimEventForPayment unknown payment", err)
	if claim != paymux.EventClaimed || got != nil {
		t.Fatalf("claim for an unknown payment = %v, %v; want claimed, no payment", claim, got)
	}
}

// Of many concurrent claims of one event, exactly one wins (invariant 5).
func (s *suite) testClaimEventForPaymentRace(t *testing.T) {
	st, c := capable[paymux.EventPaymentClaimer](t, s)
	p := newPayment(uid("key"))
	p.ProviderRef = uid("ref")
	noErr(t, "SavePayment", st.SavePayment(ctx(t), p, 0))
	id := uid("evt")
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			claim, _, err := c.ClaimEventForPayment(ctx(t), p.Provider, id, time.Minute, p.ProviderRef)
			if err != nil {
				t.Error(err)
				return
			}
			if claim == paymux.EventClaimed {
				mu.Lock()
				won++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d concurrent claims won, want 1", won)
	}
}

// unchangedCompleter returns a store whose CompleteUnchangedEvent takes
// the one-step path, with a payment saved at version 1 and a delivery for
// it. A store that says it never does (CompletesUnchangedEvents, which the
// interface allows) is checked to answer false and write nothing, and the
// test is skipped.
func (s *suite) unchangedCompleter(t *testing.T) (paymux.Store, paymux.UnchangedEventCompleter, *paymux.Payment, *paymux.Delivery) {
	t.Helper()
	st, uc := capable[paymux.UnchangedEventCompleter](t, s)
	p := newPayment(uid("key"))
	p.ProviderRef = uid("ref")
	noErr(t, "SavePayment", st.SavePayment(ctx(t), p, 0))
	d := newDelivery(now())
	d.PaymentID = p.ID
	if !uc.CompletesUnchangedEvents() {
		done, err := uc.CompleteUnchangedEvent(ctx(t), d.Event.Provider, d.Event.ID, time.Hour, d, p.ID, 1)
		noErr(t, "CompleteUnchangedEvent", err)
		if done {
			t.Fatal("CompletesUnchangedEvents says never, but CompleteUnchangedEvent completed an event")
		}
		noDelivery(t, st, "CompleteUnchangedEvent said false", d)
		t.Skipf("%T leaves every event to the usual path", st)
	}
	return st, uc, p, d
}

func (s *suite) testCompleteUnchangedEvent(t *testing.T) {
	st, uc, p, d := s.unchangedCompleter(t)
	done, err := uc.CompleteUnchangedEvent(ctx(t), d.Event.Provider, d.Event.ID, time.Hour, d, p.ID, 1)
	noErr(t, "CompleteUnchangedEvent", err)
	if !done {
		t.Fatal("a new event about a payment at the given version was not completed")
	}
	s.processedWithDelivery(t, st, d)
	// Done once: the same event again writes nothing more.
	done, err = uc.CompleteUnchangedEvent(ctx(t), d.Event.Provider, d.Event.ID, time.Hour, d, p.ID, 1)
	noErr(t, "CompleteUnchangedEvent again", err)
	if done {
		t.Fatal("a processed event was completed a second time")
	}
}

func (s *suite) testCompleteUnchangedEventRefuses(t *testing.T) {
	st, uc, p, _ := s.unchangedCompleter(t)
	upd := p.Clone()
	upd.Status = paymux.StatusAuthorized
	noErr(t, "SavePayment update", st.SavePayment(ctx(t), upd, 1)) // now at version 2

	refused := func(what string, d *paymux.Delivery, paymentID string, version int64) {
		t.Helper()
		done, err := uc.CompleteUnchangedEvent(ctx(t), d.Event.Provider, d.Event.ID, time.Hour, d, paymentID, version)
		noErr(t, "CompleteUnchangedEvent "+what, err)
		if done {
			t.Fatalf("%s: completed", what)
		}
		noDelivery(t, st, what, d)
	}
	stale := newDelivery(now())
	refused("payment moved on", stale, p.ID, 1)
	s.claimEvent(t, st, stale.Event.Provider, stale.Event.ID, time.Minute, paymux.EventClaimed) // still new

	refused("unknown payment", newDelivery(now()), uid("pay"), 1)

	inFlight := newDelivery(now())
	s.claimEvent(t, st, inFlight.Event.Provider, inFlight.Event.ID, time.Minute, paymux.EventClaimed)
	refused("event in flight", inFlight, p.ID, 2)
	s.claimEvent(t, st, inFlight.Event.Provider, inFlight.Event.ID, time.Minute, paymux.EventBusy) // the claim stands

	processed := newDelivery(now())
	noErr(t, "CompleteEvent", st.CompleteEvent(ctx(t), processed.Event.Provider, processed.Event.ID, time.Hour))
	refused("event processed", processed, p.ID, 2)
}

func (s *suite) testCompleteUnchangedEventRace(t *testing.T) {
	st, uc, p, d := s.unchangedCompleter(t)
	const n = 8
	var wg sync.WaitGroup
	var won atomic.Int32
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done, err := uc.CompleteUnchangedEvent(ctx(t), d.Event.Provider, d.Event.ID, time.Hour, d, p.ID, 1)
			if err != nil {
				t.Error(err)
			}
			if done {
				won.Add(1)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d of %d concurrent calls completed the event, want 1", won.Load(), n)
	}
	if _, err := st.GetDelivery(ctx(t), d.ID); err != nil {
		t.Fatalf("GetDelivery: %v", err)
	}
}
