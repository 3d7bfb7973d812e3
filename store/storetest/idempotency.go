package storetest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paymux/paymux"
)

func (s *suite) idempotencyTests() []test {
	return []test{
		{"ClaimFresh", s.testClaimFresh},
		{"ClaimDuplicateInFlight", s.testClaimDuplicateInFlight},
		{"ClaimCompletedReplaysRecord", s.testClaimCompletedReplays},
		{"ClaimTakesOverExpiredLease", s.testClaimTakeover},
		{"ClaimNeverTakesOverWithOtherFingerprint", s.testClaimNoTakeoverOtherFingerprint},
		{"ClaimAfterRecordExpired", s.testClaimAfterTTL},
		{"ClaimOfExistingPaymentAfterExpiryReplays", s.testClaimExistingPaymentAfterTTL},
		{"ClaimRaceExactlyOneWinner", s.testClaimRace},
		{"TakeoverRaceExactlyOneWinner", s.testTakeoverRace},
		{"Checkpoint", s.testCheckpoint},
		{"CompleteInsertsPayment", s.testCompleteInsert},
		{"CompleteUpdatesPayment", s.testCompleteUpdate},
		{"CompleteWrongTokenChangesNothing", s.testCompleteWrongToken},
		{"CompleteVersionConflictChangesNothing", s.testCompleteVersionConflict},
		{"Release", s.testRelease},
		{"GetIdempotency", s.testGetIdempotency},
		{"ListStaleClaims", s.testListStaleClaims},
	}
}

// claimParams builds the params of a fresh claim with a snapshot.
func claimParams(key string, lease time.Duration) paymux.ClaimParams {
	return paymux.ClaimParams{
		Key:         key,
		Fingerprint: "fp-" + key,
		Token:       uid("tok"),
		Lease:       lease,
		TTL:         time.Hour,
		Payment:     newPayment(key),
	}
}

func (s *suite) claim(t *testing.T, st paymux.Store, p paymux.ClaimParams) *paymux.IdempotencyRecord {
	t.Helper()
	rec, claimed, err := st.ClaimIdempotency(ctx(t), p)
	noErr(t, "ClaimIdempotency", err)
	if !claimed {
		t.Fatalf("ClaimIdempotency(%q): not claimed, record %+v", p.Key, rec)
	}
	return rec
}

func (s *suite) testClaimFresh(t *testing.T) {
	st := s.h.New(t)
	p := claimParams(uid("key"), time.Minute)
	before := now().Add(-time.Millisecond)
	rec := s.claim(t, st, p)
	if rec == nil {
		t.Fatal("claimed with a nil record")
	}
	if rec.Key != p.Key || rec.Fingerprint != p.Fingerprint || rec.Token != p.Token {
		t.Fatalf("record = %+v, want key/fingerprint/token of %+v", rec, p)
	}
	if rec.State != paymux.ClaimInFlight || rec.TakenOver {
		t.Fatalf("state = %q, takenOver = %v; want in_flight, false", rec.State, rec.TakenOver)
	}
	if rec.PaymentID != p.Payment.ID {
		t.Fatalf("PaymentID = %q, want %q", rec.PaymentID, p.Payment.ID)
	}
	samePayment(t, "claim snapshot", rec.Payment, p.Payment)
	if rec.LeaseUntil.Before(before.Add(p.Lease)) || rec.LeaseUntil.After(now().Add(p.Lease+time.Second)) {
		t.Fatalf("LeaseUntil = %v, want about now+%v", rec.LeaseUntil, p.Lease)
	}
	if rec.ExpiresAt.Before(before.Add(p.TTL)) || rec.ExpiresAt.After(now().Add(p.TTL+time.Second)) {
		t.Fatalf("ExpiresAt = %v, want about now+%v", rec.ExpiresAt, p.TTL)
	}
	if rec.CreatedAt.IsZero() {
		t.Fatal("CreatedAt is zero")
	}

	// Neither the caller's snapshot nor the returned one aliases the store's.
	want := p.Payment.Clone()
	p.Payment.Metadata["order"] = "changed"
	p.Payment.Attempts[0].Outcome = "changed"
	rec.Payment.Metadata["order"] = "changed"
	rec.Payment.Attempts[0].Outcome = "changed"
	got, err := st.GetIdempotency(ctx(t), p.Key)
	noErr(t, "GetIdempotency", err)
	samePayment(t, "stored snapshot after the caller mutated its copies", got.Payment, want)

	// A claim without a snapshot is valid too (the orchestrator may not
	// have built the payment yet).
	q := claimParams(uid("key"), time.Minute)
	q.Payment = nil
	rec = s.claim(t, st, q)
	if rec.Payment != nil || rec.PaymentID != "" {
		t.Fatalf("claim without snapshot: Payment = %v, PaymentID = %q", rec.Payment, rec.PaymentID)
	}
}

func (s *suite) testClaimDuplicateInFlight(t *testing.T) {
	st := s.h.New(t)
	p := claimParams(uid("key"), time.Minute)
	first := s.claim(t, st, p)

	dup := p
	dup.Token = uid("tok")
	dup.Payment = newPayment(p.Key)
	rec, claimed, err := st.ClaimIdempotency(ctx(t), dup)
	noErr(t, "duplicate claim", err)
	if claimed {
		t.Fatal("a duplicate claimed a key that is in flight")
	}
	if rec == nil || rec.State != paymux.ClaimInFlight || rec.Fingerprint != p.Fingerprint || rec.TakenOver {
		t.Fatalf("duplicate got record %+v, want the in-flight one", rec)
	}
	if rec.Token != first.Token || rec.PaymentID != first.PaymentID {
		t.Fatalf("duplicate changed the record: %+v, first %+v", rec, first)
	}

	// The same key with another request: the existing fingerprint comes back
	// so the caller can say ErrIdempotencyMismatch.
	other := dup
	other.Fingerprint = "other"
	rec, claimed, err = st.ClaimIdempotency(ctx(t), other)
	noErr(t, "mismatched claim", err)
	if claimed || rec == nil || rec.Fingerprint != p.Fingerprint {
		t.Fatalf("mismatched claim: claimed = %v, record %+v", claimed, rec)
	}

	// The holder still holds it.
	pay := p.Payment.Clone()
	noErr(t, "holder completes", st.CompleteIdempotency(ctx(t), p.Key, p.Token, pay))
}

func (s *suite) testClaimCompletedReplays(t *testing.T) {
	st := s.h.New(t)
	p := claimParams(uid("key"), time.Minute)
	s.claim(t, st, p)
	pay := p.Payment.Clone()
	pay.Status = paymux.StatusAuthorized
	pay.Authorized = pay.Amount.Amount
	noErr(t, "CompleteIdempotency", st.CompleteIdempotency(ctx(t), p.Key, p.Token, pay))

	for _, fp := range []string{p.Fingerprint, "other"} {
		q := claimParams(p.Key, time.Minute)
		q.Fingerprint = fp
		rec, claimed, err := st.ClaimIdempotency(ctx(t), q)
		noErr(t, "replay claim", err)
		if claimed {
			t.Fatalf("fingerprint %q claimed a completed key", fp)
		}
		if rec.State != paymux.ClaimCompleted || rec.PaymentID != pay.ID || rec.Fingerprint != p.Fingerprint {
			t.Fatalf("replay record = %+v, want completed with payment %q", rec, pay.ID)
		}
		samePayment(t, "replayed snapshot", rec.Payment, pay)
		if rec.Payment.Version != 1 {
			t.Fatalf("replayed snapshot version = %d, want 1", rec.Payment.Version)
		}
	}
}

func (s *suite) testClaimTakeover(t *testing.T) {
	st := s.h.New(t)
	lease := s.h.lease()
	p := claimParams(uid("key"), lease)
	first := s.claim(t, st, p)

	// The holder saves the attempt it is about to make, then "crashes".
	snap := p.Payment.Clone()
	snap.Attempts = append(snap.Attempts, paymux.Attempt{Number: 2, Provider: "sim", Operation: paymux.OpAuthorize, ProviderKey: "pk-2", Outcome: paymux.OutcomePending, StartedAt: now()})
	noErr(t, "checkpoint", st.CheckpointIdempotency(ctx(t), p.Key, p.Token, snap, lease))
	rec, err := st.GetIdempotency(ctx(t), p.Key)
	noErr(t, "GetIdempotency", err)
	if rec.LeaseUntil.Before(first.LeaseUntil) {
		t.Fatalf("checkpoint moved the lease back: %v < %v", rec.LeaseUntil, first.LeaseUntil)
	}
	waitPast(rec.LeaseUntil)

	q := p
	q.Token = uid("tok")
	q.Lease = time.Minute
	q.Payment = newPayment(p.Key) // must not replace the snapshot
	rec, claimed, err := st.ClaimIdempotency(ctx(t), q)
	noErr(t, "takeover claim", err)
	if !claimed {
		t.Fatalf("expired lease with the same fingerprint not taken over: %+v", rec)
	}
	if !rec.TakenOver || rec.Token != q.Token || rec.State != paymux.ClaimInFlight {
		t.Fatalf("takeover record = %+v, want TakenOver, new token, in flight", rec)
	}
	if rec.PaymentID != p.Payment.ID {
		t.Fatalf("takeover PaymentID = %q, want the original %q", rec.PaymentID, p.Payment.ID)
	}
	samePayment(t, "takeover keeps the checkpointed snapshot", rec.Payment, snap)
	if !rec.LeaseUntil.After(now().Add(30 * time.Second)) {
		t.Fatalf("takeover lease = %v, want about now+1m", rec.LeaseUntil)
	}

	// While the new holder's lease runs, nobody else takes it over.
	r := q
	r.Token = uid("tok")
	if rec, claimed, err := st.ClaimIdempotency(ctx(t), r); err != nil || claimed || rec.Token != q.Token {
		t.Fatalf("claim during the new lease: claimed = %v, rec = %+v, err = %v", claimed, rec, err)
	}

	// The old holder lost the key for everything.
	wantErr(t, "old holder checkpoint", st.CheckpointIdempotency(ctx(t), p.Key, p.Token, snap, lease), paymux.ErrClaimLost)
	wantErr(t, "old holder complete", st.CompleteIdempotency(ctx(t), p.Key, p.Token, snap.Clone()), paymux.ErrClaimLost)
	wantErr(t, "old holder release", st.ReleaseIdempotency(ctx(t), p.Key, p.Token), paymux.ErrClaimLost)
	if _, err := st.GetPayment(ctx(t), snap.ID); err == nil {
		t.Fatal("the old holder's complete saved the payment")
	}

	// The new holder finishes.
	pay := rec.Payment.Clone()
	pay.Status = paymux.StatusAuthorized
	noErr(t, "new holder complete", st.CompleteIdempotency(ctx(t), p.Key, q.Token, pay))
	got, err := st.GetIdempotency(ctx(t), p.Key)
	noErr(t, "GetIdempotency", err)
	if got.State != paymux.ClaimCompleted {
		t.Fatalf("state after completion = %q", got.State)
	}
}

func (s *suite) testClaimNoTakeoverOtherFingerprint(t *testing.T) {
	st := s.h.New(t)
	p := claimParams(uid("key"), s.h.lease())
	first := s.claim(t, st, p)
	waitPast(first.LeaseUntil)

	q := claimParams(p.Key, time.Minute)
	q.Fingerprint = "a-different-request"
	rec, claimed, err := st.ClaimIdempotency(ctx(t), q)
	noErr(t, "claim", err)
	if claimed {
		t.Fatal("an expired lease was taken over by a different request")
	}
	if rec.Token != p.Token || rec.Fingerprint != p.Fingerprint || rec.TakenOver || rec.State != paymux.ClaimInFlight {
		t.Fatalf("record changed: %+v", rec)
	}
	samePayment(t, "snapshot unchanged", rec.Payment, p.Payment)
	// Nobody took it over, so the original holder may still finish.
	noErr(t, "original holder completes", st.CompleteIdempotency(ctx(t), p.Key, p.Token, p.Payment.Clone()))
}

func (s *suite) testClaimAfterTTL(t *testing.T) {
	st := s.h.New(t)
	lease := s.h.lease()
	p := claimParams(uid("key"), lease)
	// Long enough that the completion below never races the expiry: with
	// 2 leases (80 ms) a loaded CI machine running the suite in parallel
	// under -race once completed after it, and the claim was lost.
	p.TTL = 2*lease + time.Second
	first := s.claim(t, st, p)
	pay := p.Payment.Clone()
	noErr(t, "complete", st.CompleteIdempotency(ctx(t), p.Key, p.Token, pay))
	waitPast(first.ExpiresAt)
	eventually(t, 2*time.Second, "record expires", func() bool {
		_, err := st.GetIdempotency(ctx(t), p.Key)
		return err != nil
	})
	_, err := st.GetIdempotency(ctx(t), p.Key)
	wantErr(t, "GetIdempotency after expiry", err, paymux.ErrNotFound)

	// The same key for a new request (another payment) starts afresh.
	q := claimParams(p.Key, time.Minute)
	q.Fingerprint = "new-request"
	q.Payment.ID = uid("pay")
	rec := s.claim(t, st, q)
	if rec.TakenOver || rec.Fingerprint != "new-request" || rec.Token != q.Token {
		t.Fatalf("claim after expiry = %+v, want a fresh record", rec)
	}
	samePayment(t, "fresh snapshot", rec.Payment, q.Payment)
}

func (s *suite) testClaimRace(t *testing.T) {
	st := s.h.New(t)
	key := uid("key")
	n := s.h.concurrency()
	var wins atomic.Int32
	var winner atomic.Value
	errs := make(chan error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := claimParams(key, time.Minute)
			<-start
			rec, claimed, err := st.ClaimIdempotency(ctx(t), p)
			if err != nil {
				errs <- err
				return
			}
			if claimed {
				wins.Add(1)
				winner.Store(p.Token)
			} else if rec == nil || rec.State != paymux.ClaimInFlight {
				t.Errorf("loser got record %+v", rec)
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("ClaimIdempotency: %v", err)
	}
	if w := wins.Load(); w != 1 {
		t.Fatalf("%d goroutines claimed the same key, want exactly 1", w)
	}
	rec, err := st.GetIdempotency(ctx(t), key)
	noErr(t, "GetIdempotency", err)
	if rec.Token != winner.Load().(string) {
		t.Fatal("the stored token is not the winner's")
	}
}

func (s *suite) testTakeoverRace(t *testing.T) {
	st := s.h.New(t)
	p := claimParams(uid("key"), s.h.lease())
	first := s.claim(t, st, p)
	waitPast(first.LeaseUntil)

	n := s.h.concurrency()
	var wins, takeovers atomic.Int32
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q := p
			q.Token = uid("tok")
			q.Lease = time.Minute
			<-start
			rec, claimed, err := st.ClaimIdempotency(ctx(t), q)
			if err != nil {
				t.Errorf("ClaimIdempotency: %v", err)
				return
			}
			if claimed {
				wins.Add(1)
				if rec.TakenOver {
					takeovers.Add(1)
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	if wins.Load() != 1 || takeovers.Load() != 1 {
		t.Fatalf("takeover race: %d claimed (%d as takeover), want exactly 1", wins.Load(), takeovers.Load())
	}
}

func (s *suite) testCheckpoint(t *testing.T) {
	st := s.h.New(t)
	p := claimParams(uid("key"), s.h.lease())
	first := s.claim(t, st, p)

	snap := p.Payment.Clone()
	snap.Attempts[0].Outcome = paymux.OutcomeFailed
	snap.Attempts = append(snap.Attempts, paymux.Attempt{Number: 2, Provider: "other", Operation: paymux.OpAuthorize, ProviderKey: "pk-2", Outcome: paymux.OutcomePending, StartedAt: now()})
	noErr(t, "checkpoint", st.CheckpointIdempotency(ctx(t), p.Key, p.Token, snap, time.Minute))
	rec, err := st.GetIdempotency(ctx(t), p.Key)
	noErr(t, "GetIdempotency", err)
	samePayment(t, "checkpointed snapshot", rec.Payment, snap)
	if !rec.LeaseUntil.After(first.LeaseUntil) || rec.LeaseUntil.Before(now().Add(30*time.Second)) {
		t.Fatalf("checkpoint did not renew the lease: %v (was %v)", rec.LeaseUntil, first.LeaseUntil)
	}
	if rec.Token != p.Token || rec.State != paymux.ClaimInFlight || rec.Fingerprint != p.Fingerprint {
		t.Fatalf("checkpoint changed the claim: %+v", rec)
	}
	// The checkpointed snapshot is a copy.
	snap.Attempts[1].Outcome = "mutated"
	rec, _ = st.GetIdempotency(ctx(t), p.Key)
	if rec.Payment.Attempts[1].Outcome != paymux.OutcomePending {
		t.Fatal("mutating the checkpointed payment changed the store")
	}

	wantErr(t, "checkpoint with a wrong token", st.CheckpointIdempotency(ctx(t), p.Key, "not-the-token", snap, time.Minute), paymux.ErrClaimLost)
	wantErr(t, "checkpoint of a missing key", st.CheckpointIdempotency(ctx(t), uid("missing"), p.Token, snap, time.Minute), paymux.ErrClaimLost)
	rec, _ = st.GetIdempotency(ctx(t), p.Key)
	if rec.Payment.Attempts[1].Outcome != paymux.OutcomePending {
		t.Fatal("a refused checkpoint changed the snapshot")
	}

	noErr(t, "complete", st.CompleteIdempotency(ctx(t), p.Key, p.Token, snap.Clone()))
	wantErr(t, "checkpoint after completion", st.CheckpointIdempotency(ctx(t), p.Key, p.Token, snap, time.Minute), paymux.ErrClaimLost)
	rec, _ = st.GetIdempotency(ctx(t), p.Key)
	if rec.State != paymux.ClaimCompleted {
		t.Fatalf("checkpoint after completion changed the state to %q", rec.State)
	}
}

func (s *suite) testCompleteInsert(t *testing.T) {
	st := s.h.New(t)
	p := claimParams(uid("key"), time.Minute)
	s.claim(t, st, p)
	pay := p.Payment.Clone()
	pay.Status = paymux.StatusAuthorized
	pay.Authorized = pay.Amount.Amount
	pay.ProviderRef = uid("ref")
	noErr(t, "complete", st.CompleteIdempotency(ctx(t), p.Key, p.Token, pay))
	if pay.Version != 1 {
		t.Fatalf("Version after insert = %d, want 1", pay.Version)
	}
	got, err := st.GetPayment(ctx(t), pay.ID)
	noErr(t, "GetPayment", err)
	samePayment(t, "saved payment", got, pay)
	got, err = st.GetPaymentByProviderRef(ctx(t), "sim", pay.ProviderRef)
	noErr(t, "GetPaymentByProviderRef", err)
	samePayment(t, "payment by ref", got, pay)

	rec, err := st.GetIdempotency(ctx(t), p.Key)
	noErr(t, "GetIdempotency", err)
	if rec.State != paymux.ClaimCompleted || rec.PaymentID != pay.ID || rec.Fingerprint != p.Fingerprint {
		t.Fatalf("record after complete = %+v", rec)
	}
	samePayment(t, "completed snapshot", rec.Payment, pay)

	// The caller's payment is not aliased by the store.
	pay.Metadata["order"] = "mutated"
	got, _ = st.GetPayment(ctx(t), pay.ID)
	if got.Metadata["order"] != p.Key {
		t.Fatal("mutating the completed payment changed the store")
	}

	// Completing twice is refused: the claim is no longer in flight.
	again := got.Clone()
	wantErr(t, "second complete", st.CompleteIdempotency(ctx(t), p.Key, p.Token, again), paymux.ErrClaimLost)
	if again.Version != 1 {
		t.Fatalf("a refused complete bumped the caller's version to %d", again.Version)
	}
	got, _ = st.GetPayment(ctx(t), pay.ID)
	if got.Version != 1 {
		t.Fatalf("a refused complete changed the stored version to %d", got.Version)
	}
}

func (s *suite) testCompleteUpdate(t *testing.T) {
	st := s.h.New(t)
	// The capture path: the payment exists at version 1 and the operation's
	// own key completes it with CAS.
	pay := newPayment(uid("key"))
	pay.Status = paymux.StatusAuthorized
	noErr(t, "SavePayment", st.SavePayment(ctx(t), pay, 0))

	p := claimParams(uid("capture"), time.Minute)
	p.Payment = pay.Clone()
	s.claim(t, st, p)
	upd := pay.Clone()
	upd.Status = paymux.StatusCaptured
	upd.Captured = upd.Amount.Amount
	upd.Operations = append(upd.Operations, p.Key)
	noErr(t, "complete", st.CompleteIdempotency(ctx(t), p.Key, p.Token, upd))
	if upd.Version != 2 {
		t.Fatalf("Version after update = %d, want 2", upd.Version)
	}
	got, err := st.GetPayment(ctx(t), pay.ID)
	noErr(t, "GetPayment", err)
	samePayment(t, "updated payment", got, upd)
	rec, _ := st.GetIdempotency(ctx(t), p.Key)
	if rec.State != paymux.ClaimCompleted || rec.PaymentID != pay.ID || rec.Payment.Version != 2 {
		t.Fatalf("record after complete = %+v", rec)
	}
}

func (s *suite) testCompleteWrongToken(t *testing.T) {
	st := s.h.New(t)
	p := claimParams(uid("key"), time.Minute)
	s.claim(t, st, p)
	pay := p.Payment.Clone()
	pay.Status = paymux.StatusAuthorized
	pay.ProviderRef = uid("ref")
	wantErr(t, "complete with a wrong token", st.CompleteIdempotency(ctx(t), p.Key, "wrong", pay), paymux.ErrClaimLost)
	wantErr(t, "complete of a missing key", st.CompleteIdempotency(ctx(t), uid("missing"), p.Token, pay), paymux.ErrClaimLost)
	if pay.Version != 0 {
		t.Fatalf("a refused complete set the caller's version to %d", pay.Version)
	}
	_, err := st.GetPayment(ctx(t), pay.ID)
	wantErr(t, "payment after refused complete", err, paymux.ErrNotFound)
	_, err = st.GetPaymentByProviderRef(ctx(t), "sim", pay.ProviderRef)
	wantErr(t, "ref after refused complete", err, paymux.ErrNotFound)
	rec, err := st.GetIdempotency(ctx(t), p.Key)
	noErr(t, "GetIdempotency", err)
	if rec.State != paymux.ClaimInFlight || rec.Token != p.Token {
		t.Fatalf("record after refused complete = %+v", rec)
	}
	samePayment(t, "snapshot after refused complete", rec.Payment, p.Payment)
	if list, _ := st.ListUnsettledPayments(ctx(t), now().Add(time.Hour), 10); len(list) != 0 {
		t.Fatalf("a refused complete listed %d unsettled payments", len(list))
	}
}

func (s *suite) testCompleteVersionConflict(t *testing.T) {
	st := s.h.New(t)
	p := claimParams(uid("key"), time.Minute)
	s.claim(t, st, p)

	// A webhook saved the payment first.
	hook := p.Payment.Clone()
	hook.Status = paymux.StatusAuthorized
	noErr(t, "SavePayment", st.SavePayment(ctx(t), hook, 0))

	pay := p.Payment.Clone() // version 0: expects to insert
	pay.Status = paymux.StatusFailed
	wantErr(t, "complete on a moved payment", st.CompleteIdempotency(ctx(t), p.Key, p.Token, pay), paymux.ErrVersionConflict)
	if pay.Version != 0 {
		t.Fatalf("a conflicting complete set the caller's version to %d", pay.Version)
	}
	got, err := st.GetPayment(ctx(t), hook.ID)
	noErr(t, "GetPayment", err)
	samePayment(t, "payment after conflict", got, hook)
	rec, err := st.GetIdempotency(ctx(t), p.Key)
	noErr(t, "GetIdempotency", err)
	if rec.State != paymux.ClaimInFlight || rec.Token != p.Token {
		t.Fatalf("record after conflict = %+v, want still in flight", rec)
	}
	samePayment(t, "snapshot after conflict", rec.Payment, p.Payment)

	// Merging into the current version succeeds.
	got.Captured = 1
	noErr(t, "complete after merge", st.CompleteIdempotency(ctx(t), p.Key, p.Token, got))
	if got.Version != 2 {
		t.Fatalf("version after merge = %d, want 2", got.Version)
	}

	// A stale version on an existing payment conflicts as well.
	q := claimParams(uid("key"), time.Minute)
	s.claim(t, st, q)
	stale := got.Clone()
	stale.Version = 1
	wantErr(t, "complete with a stale version", st.CompleteIdempotency(ctx(t), q.Key, q.Token, stale), paymux.ErrVersionConflict)
	if stale.Version != 1 {
		t.Fatalf("a conflicting complete changed the caller's version to %d", stale.Version)
	}
}

func (s *suite) testRelease(t *testing.T) {
	st := s.h.New(t)
	p := claimParams(uid("key"), time.Minute)
	s.claim(t, st, p)
	wantErr(t, "release with a wrong token", st.ReleaseIdempotency(ctx(t), p.Key, "wrong"), paymux.ErrClaimLost)
	if _, err := st.GetIdempotency(ctx(t), p.Key); err != nil {
		t.Fatalf("a refused release removed the record: %v", err)
	}
	noErr(t, "release", st.ReleaseIdempotency(ctx(t), p.Key, p.Token))
	_, err := st.GetIdempotency(ctx(t), p.Key)
	wantErr(t, "GetIdempotency after release", err, paymux.ErrNotFound)
	wantErr(t, "release twice", st.ReleaseIdempotency(ctx(t), p.Key, p.Token), paymux.ErrClaimLost)

	// The key can be used again, even by another request.
	q := claimParams(p.Key, time.Minute)
	q.Fingerprint = "other"
	rec := s.claim(t, st, q)
	if rec.TakenOver {
		t.Fatal("a claim after release reports a takeover")
	}

	// A completed record cannot be released.
	noErr(t, "complete", st.CompleteIdempotency(ctx(t), q.Key, q.Token, q.Payment.Clone()))
	wantErr(t, "release after completion", st.ReleaseIdempotency(ctx(t), q.Key, q.Token), paymux.ErrClaimLost)
	rec, err = st.GetIdempotency(ctx(t), q.Key)
	noErr(t, "GetIdempotency", err)
	if rec.State != paymux.ClaimCompleted {
		t.Fatalf("release changed a completed record: %+v", rec)
	}
	// No stale claim is left behind by a released key.
	if list, err := st.ListStaleClaims(ctx(t), now().Add(time.Hour), 10); err != nil || len(list) != 0 {
		t.Fatalf("ListStaleClaims after release/complete = %d records, err %v", len(list), err)
	}
}

func (s *suite) testGetIdempotency(t *testing.T) {
	st := s.h.New(t)
	_, err := st.GetIdempotency(ctx(t), uid("missing"))
	wantErr(t, "GetIdempotency of a missing key", err, paymux.ErrNotFound)

	p := claimParams(uid("key"), time.Minute)
	claimed := s.claim(t, st, p)
	rec, err := st.GetIdempotency(ctx(t), p.Key)
	noErr(t, "GetIdempotency", err)
	if rec.Key != p.Key || rec.Token != p.Token || rec.Fingerprint != p.Fingerprint || rec.State != paymux.ClaimInFlight || rec.PaymentID != p.Payment.ID {
		t.Fatalf("GetIdempotency = %+v", rec)
	}
	if !rec.LeaseUntil.Equal(claimed.LeaseUntil) || !rec.ExpiresAt.Equal(claimed.ExpiresAt) {
		t.Fatalf("GetIdempotency times %v/%v differ from the claim's %v/%v", rec.LeaseUntil, rec.ExpiresAt, claimed.LeaseUntil, claimed.ExpiresAt)
	}
	rec.Payment.Status = paymux.StatusCaptured
	rec.Payment.Metadata["x"] = "y"
	again, _ := st.GetIdempotency(ctx(t), p.Key)
	samePayment(t, "record is a copy", again.Payment, p.Payment)
}

func (s *suite) testListStaleClaims(t *testing.T) {
	st := s.h.New(t)
	lease := s.h.lease()
	stale := map[string]bool{}
	var lastLease time.Time
	for range 3 {
		p := claimParams(uid("stale"), lease)
		rec := s.claim(t, st, p)
		stale[p.Key] = true
		lastLease = rec.LeaseUntil
	}
	// Not stale: a long lease, a completed record, a released one.
	s.claim(t, st, claimParams(uid("live"), time.Hour))
	done := claimParams(uid("done"), lease)
	s.claim(t, st, done)
	noErr(t, "complete", st.CompleteIdempotency(ctx(t), done.Key, done.Token, done.Payment.Clone()))
	rel := claimParams(uid("released"), lease)
	s.claim(t, st, rel)
	noErr(t, "release", st.ReleaseIdempotency(ctx(t), rel.Key, rel.Token))

	if list, err := st.ListStaleClaims(ctx(t), now().Add(-time.Second), 10); err != nil || len(list) != 0 {
		t.Fatalf("ListStaleClaims before any lease ended = %d records, err %v", len(list), err)
	}
	waitPast(lastLease)
	list, err := st.ListStaleClaims(ctx(t), now(), 10)
	noErr(t, "ListStaleClaims", err)
	if len(list) != len(stale) {
		t.Fatalf("ListStaleClaims = %d records, want %d", len(list), len(stale))
	}
	for _, rec := range list {
		if !stale[rec.Key] || rec.State != paymux.ClaimInFlight || rec.Payment == nil || rec.PaymentID == "" || rec.Fingerprint == "" {
			t.Fatalf("unexpected stale record %+v", rec)
		}
	}
	list, err = st.ListStaleClaims(ctx(t), now(), 2)
	noErr(t, "ListStaleClaims with limit", err)
	if len(list) != 2 {
		t.Fatalf("ListStaleClaims(limit 2) = %d records", len(list))
	}

	// Renewing a lease (checkpoint) takes a claim off the list; taking one
	// over does too.
	var keys []string
	for k := range stale {
		keys = append(keys, k)
	}
	rec, _ := st.GetIdempotency(ctx(t), keys[0])
	noErr(t, "checkpoint", st.CheckpointIdempotency(ctx(t), keys[0], rec.Token, rec.Payment, time.Hour))
	rec, _ = st.GetIdempotency(ctx(t), keys[1])
	q := paymux.ClaimParams{Key: keys[1], Fingerprint: rec.Fingerprint, Token: uid("tok"), Lease: time.Hour, TTL: time.Hour}
	s.claim(t, st, q)
	list, err = st.ListStaleClaims(ctx(t), now(), 10)
	noErr(t, "ListStaleClaims", err)
	if len(list) != 1 || list[0].Key != keys[2] {
		t.Fatalf("ListStaleClaims after renewals = %+v, want only %s", list, keys[2])
	}
}

// A new payment's key whose record expired after the payment was made must
// replay, not start a second payment: a retry a day later would charge again.
func (s *suite) testClaimExistingPaymentAfterTTL(t *testing.T) {
	st := s.h.New(t)
	lease := s.h.lease()
	p := claimParams(uid("key"), lease)
	// Long enough that the completion below never races the expiry: with
	// 2 leases (80 ms) a loaded CI machine running the suite in parallel
	// under -race once completed after it, and the claim was lost.
	p.TTL = 2*lease + time.Second
	first := s.claim(t, st, p)
	pay := p.Payment.Clone()
	pay.Status = paymux.StatusCaptured
	noErr(t, "complete", st.CompleteIdempotency(ctx(t), p.Key, p.Token, pay))
	waitPast(first.ExpiresAt)
	eventually(t, 2*time.Second, "record expires", func() bool {
		_, err := st.GetIdempotency(ctx(t), p.Key)
		return err != nil
	})
	q := claimParams(p.Key, time.Minute)
	q.Payment.ID = pay.ID // the same payment, still Version 0: the retry of a new payment
	rec, claimed, err := st.ClaimIdempotency(ctx(t), q)
	noErr(t, "ClaimIdempotency", err)
	if claimed || rec == nil || rec.State != paymux.ClaimCompleted || rec.PaymentID != pay.ID {
		t.Fatalf("claim of an existing payment after expiry = %+v claimed=%v, want a completed record naming %s", rec, claimed, pay.ID)
	}
	// A claim about the existing payment itself (a capture, Version > 0) is
	// not refused.
	got, err := st.GetPayment(ctx(t), pay.ID)
	noErr(t, "GetPayment", err)
	op := paymux.ClaimParams{Key: uid("capture"), Fingerprint: "fp", Token: uid("tok"), Lease: time.Minute, TTL: time.Hour, Payment: got}
	s.claim(t, st, op)
}
