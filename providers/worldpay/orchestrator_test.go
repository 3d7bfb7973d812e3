package worldpay_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/providertest"
	"github.com/paymux/paymux/providers/worldpay"
	"github.com/paymux/paymux/providers/worldpay/worldpaytest"
	sqlstore "github.com/paymux/paymux/store/sql"
)

// Invariant 2 end to end: Worldpay processed the authorisation but the
// answer was lost. The orchestrator must not fail over to the second
// provider; the payment is unknown until Sync finds it through the
// recovery query, charged exactly once.
func TestOrchestratorTimeoutAfterCommitStopsAndSyncs(t *testing.T) {
	t.Parallel()
	st, err := sqlstore.Open(sqlstore.SQLite, filepath.Join(t.TempDir(), "paymux.db"))
	if err != nil {
		t.Skipf("sqlite store unavailable: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}

	newWP := func(name string) (*worldpay.Provider, *worldpaytest.Server, *providertest.Faults) {
		faults := &providertest.Faults{}
		fake := worldpaytest.NewServer(worldpaytest.Options{Faults: faults})
		t.Cleanup(fake.Close)
		p, err := worldpay.New(worldpay.Config{Name: name, Username: "user", Password: "pass", Entity: "default", BaseURL: fake.URL(), HTTPClient: fake.Client()})
		if err != nil {
			t.Fatal(err)
		}
		return p, fake, faults
	}
	a, fakeA, faultsA := newWP("worldpay")
	b, fakeB, _ := newWP("worldpay-b")
	o, err := paymux.New(paymux.Config{Providers: []paymux.Provider{a, b}, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	faultsA.Set(providertest.FaultPlan{TimeoutAfterCommitNext: 1})
	pay, err := o.Authorize(ctx, paymux.PaymentRequest{
		IdempotencyKey: "order-77",
		Amount:         paymux.NewMoney(4200, "GBP"),
		Method:         paymux.PaymentMethod{Type: paymux.MethodCard, Token: fakeA.SessionHref("Jane Doe")},
		Country:        "GB",
	})
	if !errors.Is(err, paymux.ErrOutcomeUnknown) || pay == nil || pay.Status != paymux.StatusUnknown {
		t.Fatalf("authorize: %+v, %v", pay, err)
	}
	if fakeB.TotalCharges() != 0 {
		t.Fatal("failed over after an unknown outcome: the buyer may be charged twice")
	}
	pay, err = o.Sync(ctx, pay.ID)
	if err != nil {
		t.Fatal(err)
	}
	if pay.Status != paymux.StatusCaptured || pay.ProviderRef == "" || fakeA.Charges(pay.ProviderRef) != 1 {
		t.Fatalf("after sync: %+v", pay)
	}
	if fakeA.TotalCharges() != 1 {
		t.Fatalf("charges at worldpay: %d", fakeA.TotalCharges())
	}
}
