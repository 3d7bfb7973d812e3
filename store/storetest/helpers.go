package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/paymux/paymux"
)

func ctx(t *testing.T) context.Context { return t.Context() }

// uid returns a random id, so keys never collide even if a store under test
// leaks state between subtests.
func uid(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + "_" + hex.EncodeToString(b[:])
}

// now is the wall clock truncated to milliseconds and in UTC, so SQL stores
// with microsecond columns round-trip the fixtures exactly.
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// newPayment builds a payment with every kind of field set, so a store that
// drops or aliases one is caught by the comparisons.
func newPayment(key string) *paymux.Payment {
	t := now()
	return &paymux.Payment{
		ID:             uid("pay"),
		IdempotencyKey: key,
		Provider:       "sim",
		Status:         paymux.StatusPending,
		Amount:         paymux.NewMoney(1299, "EUR"),
		Capture:        paymux.CaptureManual,
		Method:         paymux.MethodCard,
		Country:        "DE",
		Campaign:       "drop",
		Metadata:       map[string]string{"order": key},
		NextAction:     &paymux.NextAction{Type: "redirect", RedirectURL: "https://example.test/3ds"},
		Attempts: []paymux.Attempt{{
			Number: 1, Provider: "sim", Operation: paymux.OpAuthorize,
			ProviderKey: key + "/sim/authorize/1", Outcome: paymux.OutcomePending, StartedAt: t,
		}},
		Refunds:    []paymux.Refund{{Key: "r1", Amount: 1, Status: "pending"}},
		Operations: []string{"op1"},
		CreatedAt:  t,
		UpdatedAt:  t,
	}
}

// samePayment compares payments by their JSON encoding: stores that
// serialise may change a time's location or monotonic reading, never its
// instant or any field.
func samePayment(t *testing.T, what string, got, want *paymux.Payment) {
	t.Helper()
	if got == nil || want == nil {
		if got != want {
			t.Fatalf("%s: got %v, want %v", what, got, want)
		}
		return
	}
	g, _ := json.Marshal(normalise(got))
	w, _ := json.Marshal(normalise(want))
	if string(g) != string(w) {
		t.Fatalf("%s: payment differs\n got: %s\nwant: %s", what, g, w)
	}
}

func normalise(p *paymux.Payment) *paymux.Payment {
	c := p.Clone()
	c.CreatedAt = c.CreatedAt.UTC()
	c.UpdatedAt = c.UpdatedAt.UTC()
	// Empty and nil collections mean the same thing to every caller.
	if len(c.Metadata) == 0 {
		c.Metadata = nil
	}
	if len(c.Attempts) == 0 {
		c.Attempts = nil
	}
	for i := range c.Attempts {
		c.Attempts[i].StartedAt = c.Attempts[i].StartedAt.UTC()
	}
	if len(c.Refunds) == 0 {
		c.Refunds = nil
	}
	if len(c.Operations) == 0 {
		c.Operations = nil
	}
	return c
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: err = %v, want %v", what, err, target)
	}
}

func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// waitPast blocks until the wall clock is past deadline plus a small margin
// for stores whose expiry is decided by a server clock.
func waitPast(deadline time.Time) {
	for {
		d := time.Until(deadline) + 5*time.Millisecond
		if d <= 0 {
			return
		}
		time.Sleep(min(d, 10*time.Millisecond))
	}
}

// eventually polls cond every few milliseconds until it holds or the
// timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: condition not met within %v", what, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
