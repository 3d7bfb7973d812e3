package sim_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/sim"
)

// BenchmarkAuthorizeDirect is the baseline of the orchestrator overhead
// benchmark: one approved authorisation made directly on the sim, with a
// fresh payment key and provider key per call, as the orchestrator would.
func BenchmarkAuthorizeDirect(b *testing.B) {
	p := sim.New(sim.Config{})
	ctx := context.Background()
	keys := make([]string, b.N)
	for i := range keys {
		keys[i] = "order-" + strconv.Itoa(i)
	}
	req := paymux.AuthorizeRequest{
		Amount:  paymux.NewMoney(4999, "EUR"),
		Method:  paymux.PaymentMethod{Type: paymux.MethodCard, Token: sim.TokenApprove},
		Country: "DE",
		Capture: paymux.CaptureAutomatic,
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := req
		r.PaymentKey, r.ProviderKey = keys[i], keys[i]
		if _, err := p.Authorize(ctx, &r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthorizeDirectParallel is the same from every CPU at once, to
// show the cost of the sim's single lock.
func BenchmarkAuthorizeDirectParallel(b *testing.B) {
	p := sim.New(sim.Config{})
	ctx := context.Background()
	var seq atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := "order-" + strconv.FormatInt(seq.Add(1), 10)
			r := paymux.AuthorizeRequest{
				PaymentKey: k, ProviderKey: k,
				Amount: paymux.NewMoney(4999, "EUR"),
				Method: paymux.PaymentMethod{Type: paymux.MethodCard, Token: sim.TokenApprove},
			}
			if _, err := p.Authorize(ctx, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
