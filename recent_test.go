package paymux

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// The oldest remembered payment makes room for the newest, and a copy
// handed out is the caller's to change.
func TestRecentPaymentsAreBoundedAndCopied(t *testing.T) {
	r := newRecentPayments(2)
	for i := range 3 {
		r.remember(&Payment{ID: fmt.Sprint("pay_", i), Provider: "sim", ProviderRef: fmt.Sprint("ref_", i), Version: 1})
	}
	if r.lookup("sim", "ref_0") != nil {
		t.Fatal("the oldest payment was kept beyond the size")
	}
	p := r.lookup("sim", "ref_2")
	if p == nil || p.ID != "pay_2" {
		t.Fatalf("lookup(ref_2) = %+v", p)
	}
	p.Status = StatusCaptured
	if r.lookup("sim", "ref_2").Status == StatusCaptured {
		t.Fatal("a caller's change reached the remembered copy")
	}
	r.remember(&Payment{ID: "pay_2", Provider: "sim", ProviderRef: "ref_2", Version: 2})
	if got := r.lookup("sim", "ref_2"); got.Version != 2 {
		t.Fatalf("version after remembering it again = %d, want 2", got.Version)
	}
	if r.lookup("sim", "ref_1") == nil {
		t.Fatal("remembering a known payment again evicted another")
	}
	if newRecentPayments(-1).lookup("sim", "ref_2") != nil {
		t.Fatal("a disabled memory returned a payment")
	}
}

type neverStore struct{ Store }

func (neverStore) CompletesUnchangedEvents() bool { return false }
func (neverStore) CompleteUnchangedEvent(context.Context, string, string, time.Duration, *Delivery, string, int64) (bool, error) {
	return false, nil
}

type namedProvider struct{ Provider }

func (namedProvider) Name() string               { return "p" }
func (namedProvider) Capabilities() Capabilities { return Capabilities{} }

// A store that can never finish an event in one step costs no copies.
func TestNoRecentPaymentsForAStoreThatCannotUseThem(t *testing.T) {
	o, err := New(Config{Store: neverStore{}, Providers: []Provider{namedProvider{}}})
	if err != nil {
		t.Fatal(err)
	}
	if o.recent != nil {
		t.Fatal("the orchestrator keeps copies of payments for a store that cannot use them")
	}
}
