package app

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/providertest"
	"github.com/paymux/paymux/providers/sim"
	"github.com/paymux/paymux/store/memory"
)

// The platform's breaker rides out a burst in which some calls fail, even in
// runs, and still opens when a provider is down or fails most calls.
func TestBreakerRidesOutPartialFailuresAndOpensOnAnOutage(t *testing.T) {
	for _, tc := range []struct {
		name     string
		faults   func(call int) providertest.FaultPlan
		calls    int
		openedBy int // the call after which the breaker must be open; 0: never open
	}{
		{"one call in five fails, in runs of ten", fiveXX(func(i int) bool { return i%50 < 10 }), 1000, 0},
		{"one call in five fails, one at a time", fiveXX(func(i int) bool { return i%5 == 0 }), 1000, 0},
		{"the provider is down", func(int) providertest.FaultPlan { return providertest.FaultPlan{Outage: true} }, 40, int(Breaker.ConsecutiveFailures)},
		{"three calls in five fail", fiveXX(func(i int) bool { return i%5 < 3 }), 200, int(Breaker.MinRequests)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			p := sim.New(sim.Config{Name: "sim-b", WebhookSecret: "simsec_test", Faults: &providertest.Faults{}})
			o, err := paymux.New(paymux.Config{Providers: []paymux.Provider{p}, Store: memory.New(memory.Options{}),
				Logger: slog.New(slog.DiscardHandler), Breaker: Breaker, Retry: paymux.RetrySettings{MaxRetries: -1}})
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.calls {
				p.Faults().Set(tc.faults(i))
				_, _ = o.Authorize(ctx, paymux.PaymentRequest{
					IdempotencyKey: fmt.Sprintf("%s-%d", t.Name(), i),
					Amount:         paymux.NewMoney(1000, "EUR"),
					Method:         paymux.PaymentMethod{Type: paymux.MethodCard, Token: sim.TokenApprove},
					Country:        "DE",
				})
				open := o.BreakerState("sim-b") == "open"
				switch {
				case open && (tc.openedBy == 0 || i+1 < tc.openedBy):
					t.Fatalf("breaker open after %d calls", i+1)
				case open:
					return
				}
			}
			if tc.openedBy != 0 {
				t.Fatalf("breaker still %s after %d calls", o.BreakerState("sim-b"), tc.calls)
			}
		})
	}
}

// fiveXX answers call i with a 5xx of unknown effect when fails(i) is true.
func fiveXX(fails func(call int) bool) func(int) providertest.FaultPlan {
	return func(i int) providertest.FaultPlan {
		if fails(i) {
			return providertest.FaultPlan{ServerErrorRate: 1}
		}
		return providertest.FaultPlan{}
	}
}
