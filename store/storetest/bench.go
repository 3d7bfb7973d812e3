package storetest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/paymux/paymux"
)

// BenchClaimComplete measures the happy path of one authorisation's store
// work: ClaimIdempotency of a fresh key, then CompleteIdempotency inserting
// the payment. Stores call it from their own Benchmark functions.
func BenchClaimComplete(b *testing.B, st paymux.Store) {
	ctx := context.Background()
	prefix := uid("bench")
	tmpl := newPayment(prefix)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		key := prefix + strconv.Itoa(i)
		p := tmpl.Clone()
		p.ID = key
		p.IdempotencyKey = key
		token := "tok" + key
		_, claimed, err := st.ClaimIdempotency(ctx, paymux.ClaimParams{
			Key: key, Fingerprint: "fp", Token: token, Lease: time.Minute, TTL: time.Hour, Payment: p,
		})
		if err != nil || !claimed {
			b.Fatalf("claim: claimed=%v err=%v", claimed, err)
		}
		p.Status = paymux.StatusAuthorized
		p.ProviderRef = "ref" + key
		if err := st.CompleteIdempotency(ctx, key, token, p); err != nil {
			b.Fatalf("complete: %v", err)
		}
	}
}

// BenchSavePayment measures a CAS update of one existing payment.
func BenchSavePayment(b *testing.B, st paymux.Store) {
	ctx := context.Background()
	p := newPayment(uid("bench"))
	p.ProviderRef = uid("ref")
	if err := st.SavePayment(ctx, p, 0); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p.Captured++
		if err := st.SavePayment(ctx, p, p.Version); err != nil {
			b.Fatal(err)
		}
	}
}
