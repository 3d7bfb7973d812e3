package paypal_test

import (
	"context"
	"errors"
	"testing"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/paypal"
	"github.com/paymux/paymux/providers/paypal/paypaltest"
	"github.com/paymux/paymux/providers/providertest"
)

// An order approved in the browser whose authorisation answer is lost: the
// outcome is unknown, and a retry with the same key charges once.
func TestApprovedOrderTimeoutAfterCommit(t *testing.T) {
	t.Parallel()
	p, srv := setup(t)
	ctx := context.Background()
	amt := paymux.NewMoney(2500, "USD")
	id := srv.NewOrder(paypaltest.OrderParams{Amount: amt, Approved: true, PaymentKey: "order-77"})
	req := &paymux.AuthorizeRequest{PaymentKey: "order-77", ProviderKey: "pmx_attempt1", Amount: amt,
		Method: paymux.PaymentMethod{Type: paymux.MethodPayPal, Token: id}}
	srv.Faults.Set(providertest.FaultPlan{TimeoutAfterCommitNext: 1})
	_, err := p.Authorize(ctx, req)
	if paymux.KindOf(err) != paymux.KindOutcomeUnknown {
		t.Fatalf("lost answer: %v, want outcome_unknown", err)
	}
	if n := srv.Charges("order-77"); n != 1 {
		t.Fatalf("charges %d", n)
	}
	res, err := p.Authorize(ctx, req)
	if err != nil || res.Status != paymux.StatusCaptured || res.Reference != id {
		t.Fatalf("retry: %+v %v", res, err)
	}
	// Lookup without a reference still finds it in this process.
	got, err := p.Lookup(ctx, &paymux.LookupRequest{ProviderKey: "pmx_attempt1"})
	if err != nil || got.Captured != 2500 {
		t.Fatalf("lookup by key: %+v %v", got, err)
	}
	if n := srv.Charges("order-77"); n != 1 {
		t.Fatalf("charges after retry %d", n)
	}
}

func TestServerErrorIsOutcomeUnknownAndOutageIsUnavailable(t *testing.T) {
	t.Parallel()
	p, srv := setup(t)
	ctx := context.Background()
	req := &paymux.AuthorizeRequest{PaymentKey: "k", ProviderKey: "pmx_k", Amount: paymux.NewMoney(100, "EUR"), Method: paymux.PaymentMethod{Type: paymux.MethodPayPal}}
	srv.Faults.Set(providertest.FaultPlan{ServerErrorRate: 1})
	if _, err := p.Authorize(ctx, req); paymux.KindOf(err) != paymux.KindOutcomeUnknown {
		t.Fatalf("5xx: %v", err)
	}
	srv.Faults.Set(providertest.FaultPlan{Outage: true})
	if _, err := p.Authorize(ctx, req); !errors.Is(err, paymux.ErrUnavailable) {
		t.Fatalf("outage: %v", err)
	}
}

func TestAuthenticationAndMockResponse(t *testing.T) {
	t.Parallel()
	_, srv := setup(t)
	bad, _ := paypal.New(paypal.Config{ClientID: "id", ClientSecret: "wrong-secret-xyz", BaseURL: srv.URL, HTTPClient: srv.Client()})
	_, err := bad.Authorize(context.Background(), &paymux.AuthorizeRequest{ProviderKey: "pmx_1", Amount: paymux.NewMoney(100, "EUR")})
	if !errors.Is(err, paymux.ErrAuthentication) {
		t.Fatalf("bad credentials: %v", err)
	}
	if e := err.Error(); contains(e, "wrong-secret-xyz") {
		t.Fatalf("secret leaked: %s", e)
	}
}

func TestAmountAndIntentMustMatchApprovedOrder(t *testing.T) {
	t.Parallel()
	p, srv := setup(t)
	id := srv.NewOrder(paypaltest.OrderParams{Amount: paymux.NewMoney(500, "EUR"), Approved: true})
	_, err := p.Authorize(context.Background(), &paymux.AuthorizeRequest{ProviderKey: "pmx_2", Amount: paymux.NewMoney(400, "EUR"),
		Method: paymux.PaymentMethod{Type: paymux.MethodPayPal, Token: id}})
	if !errors.Is(err, paymux.ErrInvalidRequest) {
		t.Fatalf("amount mismatch: %v", err)
	}
	if srv.Charges("") != 0 {
		t.Fatal("charged")
	}
}

func contains(s, sub string) bool {
	return len(sub) > 0 && len(s) >= len(sub) && (s == sub || indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}
