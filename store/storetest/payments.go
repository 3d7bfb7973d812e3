package storetest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paymux/paymux"
)

func (s *suite) paymentTests() []test {
	return []test{
		{"SaveInsertAndGet", s.testSaveInsert},
		{"SaveCompareAndSet", s.testSaveCAS},
		{"SaveConcurrentCASOneWinnerPerVersion", s.testSaveConcurrentCAS},
		{"SaveConcurrentIncrementsLoseNothing", s.testSaveConcurrentIncrements},
		{"ReturnedPaymentsAreCopies", s.testPaymentCopies},
		{"GetByProviderRef", s.testGetByProviderRef},
		{"ListUnsettledPayments", s.testListUnsettled},
	}
}

func (s *suite) testSaveInsert(t *testing.T) {
	st := s.h.New(t)
	_, err := st.GetPayment(ctx(t), uid("missing"))
	wantErr(t, "GetPayment of a missing id", err, paymux.ErrNotFound)

	p := newPayment(uid("key"))
	noErr(t, "SavePayment", st.SavePayment(ctx(t), p, 0))
	if p.Version != 1 {
		t.Fatalf("Version after insert = %d, want 1", p.Version)
	}
	got, err := st.GetPayment(ctx(t), p.ID)
	noErr(t, "GetPayment", err)
	samePayment(t, "inserted payment", got, p)

	// A minimal payment (nil maps and slices) round-trips too.
	m := &paymux.Payment{ID: uid("pay"), Status: paymux.StatusAuthorized, Amount: paymux.NewMoney(5, "JPY")}
	noErr(t, "SavePayment minimal", st.SavePayment(ctx(t), m, 0))
	got, err = st.GetPayment(ctx(t), m.ID)
	noErr(t, "GetPayment minimal", err)
	samePayment(t, "minimal payment", got, m)
}

func (s *suite) testSaveCAS(t *testing.T) {
	st := s.h.New(t)
	p := newPayment(uid("key"))
	noErr(t, "insert", st.SavePayment(ctx(t), p, 0))

	dup := newPayment(p.IdempotencyKey)
	dup.ID = p.ID
	dup.Status = paymux.StatusFailed
	wantErr(t, "second insert", st.SavePayment(ctx(t), dup, 0), paymux.ErrVersionConflict)
	if dup.Version != 0 {
		t.Fatalf("a refused insert set the caller's version to %d", dup.Version)
	}

	upd := p.Clone()
	upd.Status = paymux.StatusAuthorized
	noErr(t, "update", st.SavePayment(ctx(t), upd, 1))
	if upd.Version != 2 {
		t.Fatalf("Version after update = %d, want 2", upd.Version)
	}

	stale := p.Clone() // still version 1
	stale.Status = paymux.StatusFailed
	wantErr(t, "stale update", st.SavePayment(ctx(t), stale, 1), paymux.ErrVersionConflict)
	wantErr(t, "update from the future", st.SavePayment(ctx(t), stale, 7), paymux.ErrVersionConflict)
	if stale.Version != 1 {
		t.Fatalf("a refused update changed the caller's version to %d", stale.Version)
	}
	got, err := st.GetPayment(ctx(t), p.ID)
	noErr(t, "GetPayment", err)
	samePayment(t, "payment after refused updates", got, upd)

	// Updating a payment that does not exist is a conflict, not an insert.
	ghost := newPayment(uid("key"))
	wantErr(t, "update of a missing payment", st.SavePayment(ctx(t), ghost, 1), paymux.ErrVersionConflict)
	_, err = st.GetPayment(ctx(t), ghost.ID)
	wantErr(t, "GetPayment of the ghost", err, paymux.ErrNotFound)
}

func (s *suite) testSaveConcurrentCAS(t *testing.T) {
	st := s.h.New(t)
	p := newPayment(uid("key"))
	n := s.h.concurrency()

	for version := int64(0); version < 3; version++ {
		var wins atomic.Int32
		var winner atomic.Int64
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := p.Clone()
				c.Captured = int64(i)
				<-start
				err := st.SavePayment(ctx(t), c, version)
				switch {
				case err == nil:
					wins.Add(1)
					winner.Store(int64(i))
				case !isConflict(err):
					t.Errorf("SavePayment: %v", err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("version %d: %d concurrent saves won, want exactly 1", version, wins.Load())
		}
		got, err := st.GetPayment(ctx(t), p.ID)
		noErr(t, "GetPayment", err)
		if got.Version != version+1 || got.Captured != winner.Load() {
			t.Fatalf("version %d: stored version %d captured %d, want %d and the winner's %d", version, got.Version, got.Captured, version+1, winner.Load())
		}
	}
}

func (s *suite) testSaveConcurrentIncrements(t *testing.T) {
	st := s.h.New(t)
	p := newPayment(uid("key"))
	noErr(t, "insert", st.SavePayment(ctx(t), p, 0))
	n := min(s.h.concurrency(), 16)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				cur, err := st.GetPayment(ctx(t), p.ID)
				if err != nil {
					t.Errorf("GetPayment: %v", err)
					return
				}
				cur.Captured++
				err = st.SavePayment(ctx(t), cur, cur.Version)
				if err == nil {
					return
				}
				if !isConflict(err) {
					t.Errorf("SavePayment: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got, err := st.GetPayment(ctx(t), p.ID)
	noErr(t, "GetPayment", err)
	if got.Captured != int64(n) || got.Version != int64(n)+1 {
		t.Fatalf("after %d CAS increments: captured %d version %d", n, got.Captured, got.Version)
	}
}

func (s *suite) testPaymentCopies(t *testing.T) {
	st := s.h.New(t)
	p := newPayment(uid("key"))
	want := p.Clone()
	noErr(t, "insert", st.SavePayment(ctx(t), p, 0))
	want.Version = 1

	// The caller's payment is not aliased.
	p.Metadata["order"] = "mutated"
	p.Attempts[0].Outcome = "mutated"
	p.Refunds[0].Amount = 99
	p.Operations[0] = "mutated"
	p.NextAction.RedirectURL = "mutated"
	got, err := st.GetPayment(ctx(t), p.ID)
	noErr(t, "GetPayment", err)
	samePayment(t, "after mutating the saved payment", got, want)

	// Nor is the returned one.
	got.Metadata["order"] = "mutated"
	got.Attempts[0].Outcome = "mutated"
	got.Refunds[0].Amount = 99
	got.Operations[0] = "mutated"
	got.NextAction.RedirectURL = "mutated"
	got.Status = paymux.StatusCaptured
	got.Attempts = append(got.Attempts, paymux.Attempt{Number: 9})
	again, err := st.GetPayment(ctx(t), p.ID)
	noErr(t, "GetPayment", err)
	samePayment(t, "after mutating the returned payment", again, want)

	list, err := st.ListUnsettledPayments(ctx(t), now().Add(time.Hour), 10)
	noErr(t, "ListUnsettledPayments", err)
	if len(list) != 1 {
		t.Fatalf("ListUnsettledPayments = %d payments, want 1", len(list))
	}
	list[0].Metadata["order"] = "mutated"
	list[0].Attempts[0].Outcome = "mutated"
	again, _ = st.GetPayment(ctx(t), p.ID)
	samePayment(t, "after mutating a listed payment", again, want)
}

func (s *suite) testGetByProviderRef(t *testing.T) {
	st := s.h.New(t)
	p := newPayment(uid("key"))
	noErr(t, "insert without a reference", st.SavePayment(ctx(t), p, 0))
	_, err := st.GetPaymentByProviderRef(ctx(t), "sim", "")
	wantErr(t, "empty reference", err, paymux.ErrNotFound)

	ref1 := uid("ref")
	p.ProviderRef = ref1
	noErr(t, "save with reference", st.SavePayment(ctx(t), p, p.Version))
	got, err := st.GetPaymentByProviderRef(ctx(t), "sim", ref1)
	noErr(t, "GetPaymentByProviderRef", err)
	samePayment(t, "by reference", got, p)
	_, err = st.GetPaymentByProviderRef(ctx(t), "other-provider", ref1)
	wantErr(t, "same reference at another provider", err, paymux.ErrNotFound)
	_, err = st.GetPaymentByProviderRef(ctx(t), "sim", uid("ref"))
	wantErr(t, "unknown reference", err, paymux.ErrNotFound)

	// The provider assigns a new reference (a PayPal order becomes a capture):
	// the index follows and the old reference no longer finds the payment.
	ref2 := uid("ref")
	p.ProviderRef = ref2
	p.Status = paymux.StatusAuthorized
	noErr(t, "save with a new reference", st.SavePayment(ctx(t), p, p.Version))
	got, err = st.GetPaymentByProviderRef(ctx(t), "sim", ref2)
	noErr(t, "GetPaymentByProviderRef new", err)
	samePayment(t, "by new reference", got, p)
	_, err = st.GetPaymentByProviderRef(ctx(t), "sim", ref1)
	wantErr(t, "old reference", err, paymux.ErrNotFound)

	// A failover moves the payment to another provider with its own ref.
	p.Provider = "other"
	noErr(t, "save with a new provider", st.SavePayment(ctx(t), p, p.Version))
	_, err = st.GetPaymentByProviderRef(ctx(t), "sim", ref2)
	wantErr(t, "old provider", err, paymux.ErrNotFound)
	got, err = st.GetPaymentByProviderRef(ctx(t), "other", ref2)
	noErr(t, "GetPaymentByProviderRef other", err)
	samePayment(t, "by new provider", got, p)

	// A refused save does not index its reference.
	stale := p.Clone()
	stale.ProviderRef = uid("ref")
	wantErr(t, "stale save", st.SavePayment(ctx(t), stale, 1), paymux.ErrVersionConflict)
	_, err = st.GetPaymentByProviderRef(ctx(t), "other", stale.ProviderRef)
	wantErr(t, "reference of a refused save", err, paymux.ErrNotFound)
}

func (s *suite) testListUnsettled(t *testing.T) {
	st := s.h.New(t)
	base := now().Add(-time.Hour)
	save := func(status paymux.Status, age time.Duration) *paymux.Payment {
		p := newPayment(uid("key"))
		p.Status = status
		p.UpdatedAt = base.Add(age)
		noErr(t, "insert", st.SavePayment(ctx(t), p, 0))
		return p
	}
	a := save(paymux.StatusPending, 3*time.Minute)
	b := save(paymux.StatusUnknown, 1*time.Minute)
	c := save(paymux.StatusRequiresAction, 2*time.Minute)
	save(paymux.StatusAuthorized, 0)
	save(paymux.StatusFailed, 0)
	save(paymux.StatusCaptured, 0)
	save(paymux.StatusVoided, 0)
	save(paymux.StatusRefunded, 0)
	save(paymux.StatusPending, 10*time.Minute) // too recent

	ids := func(list []*paymux.Payment) []string {
		var out []string
		for _, p := range list {
			out = append(out, p.ID)
		}
		return out
	}
	check := func(what string, before time.Time, limit int, want ...*paymux.Payment) {
		t.Helper()
		list, err := st.ListUnsettledPayments(ctx(t), before, limit)
		noErr(t, what, err)
		got := ids(list)
		var w []string
		for _, p := range want {
			w = append(w, p.ID)
		}
		if len(got) != len(w) {
			t.Fatalf("%s: got %v, want %v", what, got, w)
		}
		for i := range got {
			if got[i] != w[i] {
				t.Fatalf("%s: got %v, want %v (oldest first)", what, got, w)
			}
		}
		for i, p := range list {
			samePayment(t, what, p, want[i])
		}
	}
	check("all unsettled", base.Add(5*time.Minute), 10, b, c, a)
	check("limit", base.Add(5*time.Minute), 2, b, c)
	check("strictly before", base.Add(1*time.Minute), 10)
	check("before the second", base.Add(2*time.Minute+time.Millisecond), 10, b, c)

	// Settling a payment takes it off the list; touching one moves it.
	b.Status = paymux.StatusAuthorized
	noErr(t, "settle", st.SavePayment(ctx(t), b, b.Version))
	c.UpdatedAt = base.Add(4 * time.Minute)
	noErr(t, "touch", st.SavePayment(ctx(t), c, c.Version))
	check("after settling and touching", base.Add(5*time.Minute), 10, a, c)

	// Payments saved through CompleteIdempotency are listed the same way.
	p := claimParams(uid("key"), time.Minute)
	s.claim(t, st, p)
	d := p.Payment.Clone()
	d.Status = paymux.StatusUnknown
	d.UpdatedAt = base
	noErr(t, "complete", st.CompleteIdempotency(ctx(t), p.Key, p.Token, d))
	check("after complete", base.Add(5*time.Minute), 10, d, a, c)
}

func isConflict(err error) bool {
	return err != nil && errorsIs(err, paymux.ErrVersionConflict)
}
