package storetest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paymux/paymux"
)

func (s *suite) eventTests() []test {
	return []test{
		{"ClaimCompleteDuplicate", s.testEventLifecycle},
		{"ReleaseAllowsRedelivery", s.testEventRelease},
		{"ExpiredLeaseReclaimed", s.testEventLeaseExpiry},
		{"CompletedEventForgottenAfterTTL", s.testEventTTL},
		{"ConcurrentClaimsOneWinner", s.testEventRace},
	}
}

func (s *suite) claimEvent(t *testing.T, st paymux.Store, provider, id string, lease time.Duration, want paymux.EventClaim) {
	t.Helper()
	got, err := st.ClaimEvent(ctx(t), provider, id, lease)
	noErr(t, "ClaimEvent", err)
	if got != want {
		t.Fatalf("ClaimEvent(%s, %s) = %v, want %v", provider, id, got, want)
	}
}

func (s *suite) testEventLifecycle(t *testing.T) {
	st := s.h.New(t)
	id := uid("evt")
	s.claimEvent(t, st, "sim", id, time.Minute, paymux.EventClaimed)
	s.claimEvent(t, st, "sim", id, time.Minute, paymux.EventBusy)
	// Event ids are per provider.
	s.claimEvent(t, st, "other", id, time.Minute, paymux.EventClaimed)

	noErr(t, "CompleteEvent", st.CompleteEvent(ctx(t), "sim", id, time.Hour))
	s.claimEvent(t, st, "sim", id, time.Minute, paymux.EventDuplicate)
	s.claimEvent(t, st, "sim", id, time.Minute, paymux.EventDuplicate)
	// Releasing a processed event does not make it new again.
	noErr(t, "ReleaseEvent of a completed event", st.ReleaseEvent(ctx(t), "sim", id))
	s.claimEvent(t, st, "sim", id, time.Minute, paymux.EventDuplicate)
	s.claimEvent(t, st, "other", id, time.Minute, paymux.EventBusy)
}

func (s *suite) testEventRelease(t *testing.T) {
	st := s.h.New(t)
	id := uid("evt")
	s.claimEvent(t, st, "sim", id, time.Minute, paymux.EventClaimed)
	noErr(t, "ReleaseEvent", st.ReleaseEvent(ctx(t), "sim", id))
	s.claimEvent(t, st, "sim", id, time.Minute, paymux.EventClaimed)
	// Releasing an event nobody holds is harmless.
	noErr(t, "ReleaseEvent of an unknown event", st.ReleaseEvent(ctx(t), "sim", uid("evt")))
}

func (s *suite) testEventLeaseExpiry(t *testing.T) {
	st := s.h.New(t)
	id := uid("evt")
	lease := s.h.lease()
	start := time.Now()
	s.claimEvent(t, st, "sim", id, lease, paymux.EventClaimed)
	if time.Since(start) < lease/2 {
		s.claimEvent(t, st, "sim", id, time.Minute, paymux.EventBusy)
	}
	waitPast(start.Add(lease))
	eventually(t, 2*time.Second, "expired event lease is claimable", func() bool {
		c, err := st.ClaimEvent(ctx(t), "sim", id, time.Minute)
		noErr(t, "ClaimEvent", err)
		return c == paymux.EventClaimed
	})
	s.claimEvent(t, st, "sim", id, time.Minute, paymux.EventBusy)
}

func (s *suite) testEventTTL(t *testing.T) {
	st := s.h.New(t)
	id := uid("evt")
	ttl := 2 * s.h.lease()
	s.claimEvent(t, st, "sim", id, time.Minute, paymux.EventClaimed)
	start := time.Now()
	noErr(t, "CompleteEvent", st.CompleteEvent(ctx(t), "sim", id, ttl))
	waitPast(start.Add(ttl))
	eventually(t, 2*time.Second, "completed event is forgotten after its ttl", func() bool {
		c, err := st.ClaimEvent(ctx(t), "sim", id, time.Minute)
		noErr(t, "ClaimEvent", err)
		return c == paymux.EventClaimed
	})
}

func (s *suite) testEventRace(t *testing.T) {
	st := s.h.New(t)
	id := uid("evt")
	n := s.h.concurrency()
	var claimed, busy atomic.Int32
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			c, err := st.ClaimEvent(ctx(t), "sim", id, time.Minute)
			if err != nil {
				t.Errorf("ClaimEvent: %v", err)
				return
			}
			switch c {
			case paymux.EventClaimed:
				claimed.Add(1)
			case paymux.EventBusy:
				busy.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if claimed.Load() != 1 || busy.Load() != int32(n-1) {
		t.Fatalf("%d concurrent claims: %d claimed, %d busy; want 1 and %d", n, claimed.Load(), busy.Load(), n-1)
	}
}
