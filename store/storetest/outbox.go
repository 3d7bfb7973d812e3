package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/paymux/paymux"
)

func (s *suite) outboxTests() []test {
	return []test{
		{"EnqueueIsIdempotent", s.testEnqueue},
		{"ClaimDueHonoursTimeAndLease", s.testClaimDue},
		{"CompleteRetryDeadLetter", s.testDeliveryOutcomes},
		{"ConcurrentClaimsTakeEachEntryOnce", s.testClaimDueRace},
	}
}

func newDelivery(next time.Time) *paymux.Delivery {
	id := uid("evt")
	return &paymux.Delivery{
		ID: "sim/" + id,
		Event: paymux.Event{
			Provider: "sim", ID: id, Type: paymux.EventCaptured, ProviderRef: uid("ref"),
			PaymentKey: "order-1", Amount: paymux.NewMoney(1299, "EUR"), Success: true,
			Code: "ok", OccurredAt: now(), Raw: []byte(`{"id":"` + id + `"}`),
		},
		PaymentID:     uid("pay"),
		NextAttemptAt: next,
		CreatedAt:     now(),
	}
}

func sameDelivery(t *testing.T, what string, got, want *paymux.Delivery) {
	t.Helper()
	if got.ID != want.ID || got.PaymentID != want.PaymentID || got.State != want.State ||
		got.Attempts != want.Attempts || got.LastError != want.LastError ||
		!got.NextAttemptAt.Equal(want.NextAttemptAt) || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Fatalf("%s: delivery = %+v, want %+v", what, got, want)
	}
	ge, we := got.Event, want.Event
	if ge.Provider != we.Provider || ge.ID != we.ID || ge.Type != we.Type || ge.ProviderRef != we.ProviderRef ||
		ge.PaymentKey != we.PaymentKey || ge.Amount != we.Amount || ge.Success != we.Success || ge.Code != we.Code ||
		!ge.OccurredAt.Equal(we.OccurredAt) || string(ge.Raw) != string(we.Raw) {
		t.Fatalf("%s: event = %+v, want %+v", what, ge, we)
	}
}

func (s *suite) testEnqueue(t *testing.T) {
	st := s.h.New(t)
	_, err := st.GetDelivery(ctx(t), uid("missing"))
	wantErr(t, "GetDelivery of a missing id", err, paymux.ErrNotFound)

	d := newDelivery(now())
	noErr(t, "EnqueueDelivery", st.EnqueueDelivery(ctx(t), d))
	want := *d
	want.State = paymux.DeliveryPending
	got, err := st.GetDelivery(ctx(t), d.ID)
	noErr(t, "GetDelivery", err)
	sameDelivery(t, "enqueued", got, &want)

	// Enqueueing the same id again (a webhook redelivered after a crash) is a
	// no-op, even with other content.
	again := newDelivery(now().Add(time.Hour))
	again.ID = d.ID
	again.Attempts = 5
	noErr(t, "EnqueueDelivery again", st.EnqueueDelivery(ctx(t), again))
	got, err = st.GetDelivery(ctx(t), d.ID)
	noErr(t, "GetDelivery", err)
	sameDelivery(t, "after second enqueue", got, &want)

	// Returned entries are copies.
	got.Event.Raw[0] = 'X'
	got.Attempts = 9
	got, _ = st.GetDelivery(ctx(t), d.ID)
	sameDelivery(t, "after mutating the returned entry", got, &want)

	// A delivered entry is not re-enqueued either.
	noErr(t, "CompleteDelivery", st.CompleteDelivery(ctx(t), d.ID))
	noErr(t, "EnqueueDelivery after delivery", st.EnqueueDelivery(ctx(t), newDeliveryWithID(d.ID)))
	got, _ = st.GetDelivery(ctx(t), d.ID)
	if got.State != paymux.DeliveryDelivered {
		t.Fatalf("re-enqueue reset a delivered entry to %q", got.State)
	}
}

func newDeliveryWithID(id string) *paymux.Delivery {
	d := newDelivery(now())
	d.ID = id
	return d
}

func ids(ds []*paymux.Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

func (s *suite) testClaimDue(t *testing.T) {
	st := s.h.New(t)
	t0 := now()
	d1 := newDelivery(t0.Add(-2 * time.Second))
	d2 := newDelivery(t0.Add(-1 * time.Second))
	d3 := newDelivery(t0.Add(time.Hour))
	// Enqueued out of order: claims come oldest first by NextAttemptAt.
	for _, d := range []*paymux.Delivery{d2, d3, d1} {
		noErr(t, "EnqueueDelivery", st.EnqueueDelivery(ctx(t), d))
	}
	lease := 10 * time.Minute

	got, err := st.ClaimDueDeliveries(ctx(t), t0, lease, 1)
	noErr(t, "ClaimDueDeliveries limit 1", err)
	if len(got) != 1 || got[0].ID != d1.ID {
		t.Fatalf("ClaimDueDeliveries(limit 1) = %v, want [%s]", ids(got), d1.ID)
	}
	if got[0].State != paymux.DeliveryPending || got[0].Event.ID != d1.Event.ID || string(got[0].Event.Raw) != string(d1.Event.Raw) {
		t.Fatalf("claimed entry = %+v", got[0])
	}
	got, err = st.ClaimDueDeliveries(ctx(t), t0, lease, 10)
	noErr(t, "ClaimDueDeliveries", err)
	if len(got) != 1 || got[0].ID != d2.ID {
		t.Fatalf("second claim = %v, want [%s]: d1 is leased, d3 not due", ids(got), d2.ID)
	}
	cur, err := st.GetDelivery(ctx(t), d2.ID)
	noErr(t, "GetDelivery", err)
	if !cur.NextAttemptAt.Equal(t0.Add(lease)) {
		t.Fatalf("claimed entry NextAttemptAt = %v, want now+lease %v", cur.NextAttemptAt, t0.Add(lease))
	}

	// Within the lease nothing comes back.
	got, err = st.ClaimDueDeliveries(ctx(t), t0.Add(lease-time.Second), lease, 10)
	noErr(t, "ClaimDueDeliveries within the lease", err)
	if len(got) != 0 {
		t.Fatalf("within the lease: %v, want none", ids(got))
	}
	// When the lease ends (the worker crashed) they come back, with d3 which
	// is now due.
	got, err = st.ClaimDueDeliveries(ctx(t), t0.Add(2*time.Hour), lease, 10)
	noErr(t, "ClaimDueDeliveries after the lease", err)
	if len(got) != 3 {
		t.Fatalf("after the lease: %v, want all three", ids(got))
	}
	seen := map[string]bool{}
	for _, d := range got {
		seen[d.ID] = true
	}
	if !seen[d1.ID] || !seen[d2.ID] || !seen[d3.ID] {
		t.Fatalf("after the lease: %v", ids(got))
	}
	// The wall clock does not matter, the given time does.
	got, _ = st.ClaimDueDeliveries(ctx(t), t0.Add(2*time.Hour), lease, 10)
	if len(got) != 0 {
		t.Fatalf("re-claimed leased entries: %v", ids(got))
	}
}

func (s *suite) testDeliveryOutcomes(t *testing.T) {
	st := s.h.New(t)
	t0 := now()
	ok := newDelivery(t0)
	retry := newDelivery(t0)
	dead := newDelivery(t0)
	for _, d := range []*paymux.Delivery{ok, retry, dead} {
		noErr(t, "EnqueueDelivery", st.EnqueueDelivery(ctx(t), d))
	}
	got, err := st.ClaimDueDeliveries(ctx(t), t0, time.Minute, 10)
	noErr(t, "ClaimDueDeliveries", err)
	if len(got) != 3 {
		t.Fatalf("claimed %d, want 3", len(got))
	}

	noErr(t, "CompleteDelivery", st.CompleteDelivery(ctx(t), ok.ID))
	d, err := st.GetDelivery(ctx(t), ok.ID)
	noErr(t, "GetDelivery", err)
	if d.State != paymux.DeliveryDelivered {
		t.Fatalf("completed state = %q", d.State)
	}

	next := t0.Add(30 * time.Minute)
	noErr(t, "RetryDelivery", st.RetryDelivery(ctx(t), retry.ID, next, "subscriber said 503"))
	d, err = st.GetDelivery(ctx(t), retry.ID)
	noErr(t, "GetDelivery", err)
	if d.State != paymux.DeliveryPending || d.Attempts != 1 || d.LastError != "subscriber said 503" || !d.NextAttemptAt.Equal(next) {
		t.Fatalf("after retry: %+v", d)
	}
	noErr(t, "RetryDelivery again", st.RetryDelivery(ctx(t), retry.ID, next, "again"))
	d, _ = st.GetDelivery(ctx(t), retry.ID)
	if d.Attempts != 2 || d.LastError != "again" {
		t.Fatalf("after second retry: %+v", d)
	}

	noErr(t, "DeadLetterDelivery", st.DeadLetterDelivery(ctx(t), dead.ID, "gave up"))
	d, err = st.GetDelivery(ctx(t), dead.ID)
	noErr(t, "GetDelivery", err)
	if d.State != paymux.DeliveryDead || d.Attempts != 1 || d.LastError != "gave up" {
		t.Fatalf("after dead letter: %+v", d)
	}

	// Only the retried entry ever comes back, and only when it is due.
	got, err = st.ClaimDueDeliveries(ctx(t), next.Add(-time.Second), time.Minute, 10)
	noErr(t, "ClaimDueDeliveries before next", err)
	if len(got) != 0 {
		t.Fatalf("before the retry time: %v", ids(got))
	}
	got, err = st.ClaimDueDeliveries(ctx(t), next.Add(24*time.Hour), time.Minute, 10)
	noErr(t, "ClaimDueDeliveries after next", err)
	if len(got) != 1 || got[0].ID != retry.ID || got[0].Attempts != 2 {
		t.Fatalf("after the retry time: %+v, want only %s", got, retry.ID)
	}

	missing := uid("missing")
	wantErr(t, "CompleteDelivery of a missing id", st.CompleteDelivery(ctx(t), missing), paymux.ErrNotFound)
	wantErr(t, "RetryDelivery of a missing id", st.RetryDelivery(ctx(t), missing, next, "x"), paymux.ErrNotFound)
	wantErr(t, "DeadLetterDelivery of a missing id", st.DeadLetterDelivery(ctx(t), missing, "x"), paymux.ErrNotFound)
}

func (s *suite) testClaimDueRace(t *testing.T) {
	st := s.h.New(t)
	t0 := now()
	const entries = 40
	for i := range entries {
		noErr(t, "EnqueueDelivery", st.EnqueueDelivery(ctx(t), newDelivery(t0.Add(-time.Duration(i)*time.Millisecond))))
	}
	workers := min(s.h.concurrency(), 8)
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			// Bounded, so a store that hands out leased entries again fails
			// instead of looping for ever.
			for range entries {
				got, err := st.ClaimDueDeliveries(ctx(t), t0, time.Hour, 3)
				if err != nil {
					t.Errorf("ClaimDueDeliveries: %v", err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, d := range got {
					seen[d.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(seen) != entries {
		t.Fatalf("workers claimed %d distinct entries, want %d", len(seen), entries)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("entry %s claimed %d times within its lease", id, n)
		}
	}
}
