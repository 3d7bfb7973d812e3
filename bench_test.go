package paymux_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/sim"
	"github.com/paymux/paymux/store/memory"
)

// BenchmarkAuthorize measures the orchestrator's overhead per authorisation:
// memory store, sim provider, a fresh idempotency key per iteration. Compare
// with BenchmarkSimAuthorizeDirect, the same provider call made directly.
func BenchmarkAuthorize(b *testing.B) {
	ctx := context.Background()
	o, err := paymux.New(paymux.Config{
		Providers: []paymux.Provider{sim.New(sim.Config{Name: "a"}), sim.New(sim.Config{Name: "b"})},
		Store:     memory.New(memory.Options{}),
	})
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]string, b.N)
	for i := range keys {
		keys[i] = "bench-order-" + strconv.Itoa(i)
	}
	req := cardRequest("", sim.TokenApprove)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req.IdempotencyKey = keys[i]
		if _, err := o.Authorize(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthorizeParallel is BenchmarkAuthorize from 64 goroutines.
func BenchmarkAuthorizeParallel(b *testing.B) {
	ctx := context.Background()
	o, err := paymux.New(paymux.Config{
		Providers: []paymux.Provider{sim.New(sim.Config{Name: "a"})},
		Store:     memory.New(memory.Options{}),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(32) // 2 cores x 32 = 64 goroutines
	var seq atomicCounter
	b.RunParallel(func(pb *testing.PB) {
		req := cardRequest("", sim.TokenApprove)
		for pb.Next() {
			req.IdempotencyKey = "par-" + strconv.FormatInt(seq.next(), 10)
			if _, err := o.Authorize(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSimAuthorizeDirect is the baseline: the sim provider called
// without the orchestrator.
func BenchmarkSimAuthorizeDirect(b *testing.B) {
	ctx := context.Background()
	s := sim.New(sim.Config{Name: "a"})
	keys := make([]string, b.N)
	for i := range keys {
		keys[i] = "direct-" + strconv.Itoa(i)
	}
	req := &paymux.AuthorizeRequest{Amount: paymux.NewMoney(4999, "EUR"), Method: paymux.PaymentMethod{Type: paymux.MethodCard, Token: sim.TokenApprove}, Country: "DE", Capture: paymux.CaptureAutomatic}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req.PaymentKey = keys[i]
		req.ProviderKey = keys[i]
		req.PaymentID = keys[i]
		if _, err := s.Authorize(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

type atomicCounter struct{ n atomic.Int64 }

func (c *atomicCounter) next() int64 { return c.n.Add(1) }
