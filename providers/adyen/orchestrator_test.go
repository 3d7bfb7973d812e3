package adyen_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/adyen"
	"github.com/paymux/paymux/providers/adyen/adyentest"
	"github.com/paymux/paymux/providers/providertest"
	sqlstore "github.com/paymux/paymux/store/sql"
)

// e2e is the orchestrator wired to the adapter and the fake, with the fake's
// webhooks going to the orchestrator's webhook handler.
type e2e struct {
	orch   *paymux.Orchestrator
	srv    *adyentest.Server
	faults *providertest.Faults
}

func setupE2E(t *testing.T, retries int) *e2e {
	t.Helper()
	st, err := sqlstore.Open(sqlstore.SQLite, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	e := &e2e{faults: &providertest.Faults{}}
	var handler http.Handler = http.NotFoundHandler()
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(hook.Close)
	e.srv = adyentest.NewServer(adyentest.Options{Faults: e.faults, WebhookURL: hook.URL + "/webhooks/adyen"})
	t.Cleanup(e.srv.Close)
	o := e.srv.Options()
	p, err := adyen.New(adyen.Config{APIKey: paymux.Secret(o.APIKey), MerchantAccount: o.MerchantAccount, HMACKey: paymux.Secret(o.HMACKey), BaseURL: e.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	e.orch, err = paymux.New(paymux.Config{
		Providers: []paymux.Provider{p},
		Store:     st,
		Logger:    slog.New(slog.DiscardHandler),
		Retry:     paymux.RetrySettings{MaxRetries: retries, InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/{provider}", e.orch.WebhookHandler(paymux.WebhookOptions{}))
	handler = mux
	return e
}

func payment(key string) paymux.PaymentRequest {
	return paymux.PaymentRequest{
		IdempotencyKey: key, Amount: paymux.NewMoney(4999, "EUR"), Method: adyentest.Method(""),
		Country: "NL", ReturnURL: "https://shop.example/return",
	}
}

// TestTimeoutAfterCommitRetriesTheSameKey: Adyen processed the
// authorisation but the answer was lost. The table's "retry" row sends the
// same Idempotency-Key again; Adyen answers from its store. One charge.
func TestTimeoutAfterCommitRetriesTheSameKey(t *testing.T) {
	t.Parallel()
	e := setupE2E(t, 2)
	e.faults.Set(providertest.FaultPlan{TimeoutAfterCommitNext: 1})
	p, err := e.orch.Authorize(context.Background(), payment("order-timeout"))
	if err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	if p.Status != paymux.StatusCaptured || e.srv.Charges("order-timeout") != 1 {
		t.Fatalf("status %s, charges %d", p.Status, e.srv.Charges("order-timeout"))
	}
}

// TestUnknownOutcomeSettledByWebhook: without retries the payment is
// unknown; Sync cannot ask Adyen (no lookup), and the AUTHORISATION webhook,
// matched by the merchant reference, settles it. Still one charge.
func TestUnknownOutcomeSettledByWebhook(t *testing.T) {
	t.Parallel()
	e := setupE2E(t, -1)
	ctx := context.Background()
	e.faults.Set(providertest.FaultPlan{TimeoutAfterCommitNext: 1})
	p, err := e.orch.Authorize(ctx, payment("order-unknown"))
	if !errors.Is(err, paymux.ErrOutcomeUnknown) || p == nil || p.Status != paymux.StatusUnknown {
		t.Fatalf("Authorize: %v, %+v", err, p)
	}
	if _, err := e.orch.Sync(ctx, p.ID); !errors.Is(err, paymux.ErrUnimplemented) {
		t.Fatalf("Sync: %v, want Unimplemented", err)
	}
	// The webhook may have raced the store write (answered 503, as Adyen
	// would retry); deliver it again as Adyen's retry queue does.
	e.srv.WaitWebhooks()
	if n := e.srv.RedeliverFailed(); n != 0 {
		t.Fatalf("%d deliveries still failing", n)
	}
	got, err := e.orch.Get(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != paymux.StatusCaptured && got.Status != paymux.StatusAuthorized {
		t.Fatalf("after the webhook: %s", got.Status)
	}
	if got.ProviderRef == "" || e.srv.Charges("order-unknown") != 1 {
		t.Fatalf("reference %q, charges %d", got.ProviderRef, e.srv.Charges("order-unknown"))
	}
}

// TestOutageIsNotACharge: Transient-Error answers are Unavailable; nothing
// moved and the failure is clean.
func TestOutageIsNotACharge(t *testing.T) {
	t.Parallel()
	e := setupE2E(t, 1)
	e.faults.Set(providertest.FaultPlan{Outage: true})
	_, err := e.orch.Authorize(context.Background(), payment("order-outage"))
	if !errors.Is(err, paymux.ErrUnavailable) {
		t.Fatalf("Authorize during an outage: %v", err)
	}
	if n := e.srv.Charges("order-outage"); n != 0 {
		t.Fatalf("charges %d", n)
	}
}
