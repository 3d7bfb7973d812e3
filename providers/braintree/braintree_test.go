package braintree_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/braintree"
	"github.com/paymux/paymux/providers/braintree/braintreetest"
	"github.com/paymux/paymux/providers/providertest"
)

type bundle struct {
	srv *braintreetest.Server
	log *strings.Builder
}

func setup(t *testing.T) (*braintree.Provider, *bundle) {
	t.Helper()
	return setupWith(t, braintreetest.Options{})
}

func setupWith(t *testing.T, opts braintreetest.Options) (*braintree.Provider, *bundle) {
	t.Helper()
	srv := braintreetest.NewServer(opts)
	t.Cleanup(srv.Close)
	logs := &strings.Builder{}
	var mu sync.Mutex
	p, err := braintree.New(braintree.Config{
		MerchantID: "test_merchant",
		PublicKey:  srv.PublicKey(),
		PrivateKey: paymux.Secret(srv.PrivateKey()),
		BaseURL:    srv.URL(),
		HTTPClient: srv.Client(),
		Logger:     slog.New(slog.NewTextHandler(lockedWriter{&mu, logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Clock:      func() time.Time { return time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, &bundle{srv: srv, log: logs}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func authReq(key string, capture paymux.CaptureMode, nonce string, amount int64) *paymux.AuthorizeRequest {
	return &paymux.AuthorizeRequest{
		PaymentID: paymux.PaymentID(key), PaymentKey: key,
		ProviderKey: paymux.ProviderKey(key, "braintree", paymux.OpAuthorize, 1),
		Amount:      paymux.NewMoney(amount, "USD"), Capture: capture,
		Method: paymux.PaymentMethod{Type: paymux.MethodCard, Token: nonce},
	}
}

func authorize(t *testing.T, p *braintree.Provider, key string, capture paymux.CaptureMode, nonce string, amount int64) *paymux.ProviderPayment {
	t.Helper()
	res, err := p.Authorize(context.Background(), authReq(key, capture, nonce, amount))
	if err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	return res
}

func kindOf(t *testing.T, err error) *paymux.ProviderError {
	t.Helper()
	var pe *paymux.ProviderError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v is not a *paymux.ProviderError", err)
	}
	return pe
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	if _, err := braintree.New(braintree.Config{PublicKey: "pub"}); err == nil {
		t.Error("New without a private key succeeded")
	}
	if _, err := braintree.New(braintree.Config{PublicKey: "pub", PrivateKey: "x", MerchantAccounts: map[paymux.Currency]string{"XXX": "a"}}); err == nil {
		t.Error("New with an unknown currency succeeded")
	}
	p, err := braintree.New(braintree.Config{PublicKey: "pub", PrivateKey: "x", MerchantAccounts: map[paymux.Currency]string{"EUR": "acct_eur"}})
	if err != nil {
		t.Fatal(err)
	}
	caps := p.Capabilities()
	if p.Name() != "braintree" || !caps.Supports("EUR", "DE", paymux.MethodCard) || caps.Supports("USD", "US", paymux.MethodCard) {
		t.Errorf("name %q caps %+v", p.Name(), caps)
	}
}

func TestAmountsAndDeclines(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		nonce   string
		amount  int64
		kind    paymux.Kind
		code    string
		decline string
	}{
		{"insufficient funds 2001.00", "fake-valid-nonce", 200100, paymux.KindSoftDecline, "processor_declined", "2001"},
		{"expired card 2004.00", "fake-valid-nonce", 200400, paymux.KindHardDecline, "processor_declined", "2004"},
		{"network 3000.00", "fake-valid-nonce", 300000, paymux.KindSoftDecline, "failed", ""},
		{"processor declined nonce", "fake-processor-declined-visa-nonce", 1000, paymux.KindSoftDecline, "processor_declined", "2000"},
		{"fraud nonce", "fake-gateway-rejected-fraud-nonce", 1000, paymux.KindHardDecline, "gateway_rejected:fraud", ""},
		{"luhn invalid nonce", "fake-luhn-invalid-nonce", 1000, paymux.KindInvalidRequest, "VALIDATION", "81715"},
		{"3DS failed nonce", "fake-three-d-secure-visa-failed-authentication-nonce", 1000, paymux.KindActionRequired, "gateway_rejected:three_d_secure", ""},
		{"unknown nonce", "tokencc_not_a_fake", 1000, paymux.KindInvalidRequest, "VALIDATION", "91565"},
		{"card number as token", "4111 1111 1111 1111", 1000, paymux.KindInvalidRequest, "client_validation", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, b := setup(t)
			key := "order-" + strings.ReplaceAll(tt.name, " ", "-")
			_, err := p.Authorize(context.Background(), authReq(key, paymux.CaptureAutomatic, tt.nonce, tt.amount))
			pe := kindOf(t, err)
			if pe.Kind != tt.kind || pe.Code != tt.code || pe.DeclineCode != tt.decline {
				t.Fatalf("kind %s code %q/%q, want %s %q/%q (%v)", pe.Kind, pe.Code, pe.DeclineCode, tt.kind, tt.code, tt.decline, err)
			}
			if n := b.srv.ChargesFunc(ownsOrder(key)); n != 0 {
				t.Errorf("%d charges after a decline", n)
			}
			if strings.Contains(err.Error(), "4111") {
				t.Errorf("card number in error: %v", err)
			}
		})
	}
}

// TestThreeDSecure: Braintree authenticates in the browser. With ThreeDS
// requested, a nonce without authentication is refused as action required;
// an authenticated nonce goes through.
func TestThreeDSecure(t *testing.T) {
	t.Parallel()
	p, _ := setup(t)
	req := authReq("order-3ds", paymux.CaptureAutomatic, "fake-valid-nonce", 1000)
	req.ThreeDS = true
	_, err := p.Authorize(context.Background(), req)
	if pe := kindOf(t, err); pe.Kind != paymux.KindActionRequired || !errors.Is(err, paymux.ErrActionRequired) {
		t.Fatalf("3DS required, plain nonce: %v", err)
	}
	req = authReq("order-3ds-ok", paymux.CaptureAutomatic, "fake-three-d-secure-visa-full-authentication-nonce", 1000)
	req.ThreeDS = true
	res, err := p.Authorize(context.Background(), req)
	if err != nil || res.Status != paymux.StatusCaptured {
		t.Fatalf("authenticated nonce: %+v %v", res, err)
	}
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	ctx := context.Background()
	auth := authorize(t, p, "order-life", paymux.CaptureManual, "fake-valid-nonce", 5000)
	if auth.Status != paymux.StatusAuthorized || auth.Authorized != 5000 || auth.Captured != 0 {
		t.Fatalf("authorize: %+v", auth)
	}
	capKey := paymux.ProviderKey("order-life/cap", "braintree", paymux.OpCapture, 1)
	res, err := p.Capture(ctx, &paymux.CaptureRequest{Reference: auth.Reference, ProviderKey: capKey, Amount: paymux.NewMoney(3000, "USD")})
	if err != nil || res.Status != paymux.StatusCaptured || res.Captured != 3000 || res.Authorized != 5000 {
		t.Fatalf("partial capture: %+v %v", res, err)
	}
	r1, err := p.Refund(ctx, &paymux.RefundRequest{Reference: auth.Reference, ProviderKey: "pmx_r1", Amount: paymux.NewMoney(1000, "USD")})
	if err != nil || r1.RefundReference == "" || r1.Refunds[0].Amount != 1000 {
		t.Fatalf("refund: %+v %v", r1, err)
	}
	_, err = p.Refund(ctx, &paymux.RefundRequest{Reference: auth.Reference, ProviderKey: "pmx_r2", Amount: paymux.NewMoney(2001, "USD")})
	if pe := kindOf(t, err); pe.Kind != paymux.KindConflict || pe.DeclineCode != "91521" {
		t.Fatalf("over-refund: %v", err)
	}
	tx, _ := b.srv.Transaction(auth.Reference)
	if tx.Refunded != 1000 {
		t.Fatalf("fake refunded %d", tx.Refunded)
	}
	_, err = p.Void(ctx, &paymux.VoidRequest{Reference: auth.Reference})
	if pe := kindOf(t, err); pe.Kind != paymux.KindConflict {
		t.Fatalf("void of a settled transaction: %v", err)
	}
	if n := b.srv.Charges("order-life#" + paymux.ProviderKey("order-life", "braintree", paymux.OpAuthorize, 1)); n != 1 {
		t.Fatalf("charges %d", n)
	}
}

func TestVoidTwiceIsSuccess(t *testing.T) {
	t.Parallel()
	p, _ := setup(t)
	auth := authorize(t, p, "order-void", paymux.CaptureManual, "fake-valid-nonce", 1000)
	for i := 0; i < 2; i++ {
		res, err := p.Void(context.Background(), &paymux.VoidRequest{Reference: auth.Reference, ProviderKey: "pmx_v"})
		if err != nil || res.Status != paymux.StatusVoided {
			t.Fatalf("void %d: %+v %v", i+1, res, err)
		}
	}
}

func TestRefundBeforeSettlementIsConflict(t *testing.T) {
	t.Parallel()
	p, b := setupWith(t, braintreetest.Options{HoldSettlement: true})
	pay := authorize(t, p, "order-hold", paymux.CaptureAutomatic, "fake-valid-nonce", 1000)
	_, err := p.Refund(context.Background(), &paymux.RefundRequest{Reference: pay.Reference, ProviderKey: "pmx_h", Amount: paymux.NewMoney(1000, "USD")})
	if pe := kindOf(t, err); pe.Kind != paymux.KindConflict || pe.DeclineCode != "91506" {
		t.Fatalf("refund before settlement: %v", err)
	}
	if !b.srv.Settle(pay.Reference) {
		t.Fatal("Settle")
	}
	if _, err := p.Refund(context.Background(), &paymux.RefundRequest{Reference: pay.Reference, ProviderKey: "pmx_h", Amount: paymux.NewMoney(1000, "USD")}); err != nil {
		t.Fatalf("refund after settlement: %v", err)
	}
}

// TestLookupPrefersTheApprovedAttempt: a decline, then a second attempt of
// the same payment that went through; Lookup by the paymux key finds the
// one that moved money, Lookup by the first attempt's key finds the decline.
func TestLookupPrefersTheApprovedAttempt(t *testing.T) {
	t.Parallel()
	p, _ := setup(t)
	ctx := context.Background()
	first := authReq("order-two", paymux.CaptureAutomatic, "fake-processor-declined-visa-nonce", 1000)
	if _, err := p.Authorize(ctx, first); err == nil {
		t.Fatal("decline expected")
	}
	second := authReq("order-two", paymux.CaptureAutomatic, "fake-valid-nonce", 1000)
	second.ProviderKey = paymux.ProviderKey("order-two", "braintree", paymux.OpAuthorize, 2)
	ok, err := p.Authorize(ctx, second)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Lookup(ctx, &paymux.LookupRequest{PaymentKey: "order-two"})
	if err != nil || got.Reference != ok.Reference || got.Status != paymux.StatusCaptured {
		t.Fatalf("by payment key: %+v %v", got, err)
	}
	got, err = p.Lookup(ctx, &paymux.LookupRequest{ProviderKey: first.ProviderKey})
	if err != nil || got.Status != paymux.StatusFailed || got.DeclineCode != "2000" {
		t.Fatalf("by first attempt's key: %+v %v", got, err)
	}
	// A key that is a prefix of another is not confused with it.
	if _, err := p.Lookup(ctx, &paymux.LookupRequest{PaymentKey: "order-tw"}); !errors.Is(err, paymux.ErrNotFound) {
		t.Fatalf("prefix key: %v", err)
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		plan    providertest.FaultPlan
		kind    paymux.Kind
		charges int
	}{
		{providertest.FaultPlan{Outage: true}, paymux.KindUnavailable, 0},
		{providertest.FaultPlan{RateLimit: true}, paymux.KindRateLimited, 0},
		{providertest.FaultPlan{ServerErrorRate: 1}, paymux.KindOutcomeUnknown, 0},
		{providertest.FaultPlan{TimeoutAfterCommitNext: 1}, paymux.KindOutcomeUnknown, 1},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			p, b := setup(t)
			key := fmt.Sprintf("order-fault-%d", i)
			b.srv.Faults().Set(tt.plan)
			_, err := p.Authorize(context.Background(), authReq(key, paymux.CaptureAutomatic, "fake-valid-nonce", 1000))
			b.srv.Faults().Set(providertest.FaultPlan{})
			if pe := kindOf(t, err); pe.Kind != tt.kind {
				t.Fatalf("kind %s, want %s (%v)", pe.Kind, tt.kind, err)
			}
			if n := b.srv.ChargesFunc(ownsOrder(key)); n != tt.charges {
				t.Fatalf("charges %d, want %d", n, tt.charges)
			}
			// The same attempt again, with the same apiRequestKey: one charge.
			if _, err := p.Authorize(context.Background(), authReq(key, paymux.CaptureAutomatic, "fake-valid-nonce", 1000)); err != nil {
				t.Fatal(err)
			}
			if n := b.srv.ChargesFunc(ownsOrder(key)); n != 1 {
				t.Fatalf("charges after retry %d", n)
			}
		})
	}
}

func TestLookupDuringOutageIsUnavailable(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	b.srv.Faults().Set(providertest.FaultPlan{Outage: true})
	_, err := p.Lookup(context.Background(), &paymux.LookupRequest{Reference: "tx1"})
	if !errors.Is(err, paymux.ErrUnavailable) {
		t.Fatalf("%v", err)
	}
}

func TestWrongCredentials(t *testing.T) {
	t.Parallel()
	srv := braintreetest.NewServer(braintreetest.Options{})
	t.Cleanup(srv.Close)
	const secret = "wrong_private_key_value"
	p, err := braintree.New(braintree.Config{PublicKey: srv.PublicKey(), PrivateKey: secret, BaseURL: srv.URL(), HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Authorize(context.Background(), authReq("order-cred", paymux.CaptureAutomatic, "fake-valid-nonce", 1000))
	if !errors.Is(err, paymux.ErrAuthentication) {
		t.Fatalf("%v", err)
	}
	if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%+v %#v", p, err), secret) {
		t.Fatal("private key leaked into an error or the provider's printed form")
	}
}

// TestSecretsStayOutOfLogs runs a full flow with debug logging and checks
// that neither key appears.
func TestSecretsStayOutOfLogs(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	authorize(t, p, "order-log", paymux.CaptureAutomatic, "fake-valid-nonce", 1000)
	_, _ = p.Authorize(context.Background(), authReq("order-log-2", paymux.CaptureAutomatic, "fake-processor-declined-visa-nonce", 1000))
	logs := b.log.String()
	if logs == "" {
		t.Fatal("no logs at debug level")
	}
	if strings.Contains(logs, b.srv.PrivateKey()) {
		t.Fatalf("private key in logs: %s", logs)
	}
}

// TestLongKeyFallsBackToBareOrderID: past Braintree's orderId limit the
// attempt key is left off, and Lookup by the paymux key still finds it.
func TestLongKeyFallsBackToBareOrderID(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	key := strings.Repeat("k", 240)
	pay := authorize(t, p, key, paymux.CaptureAutomatic, "fake-valid-nonce", 1000)
	if tx, _ := b.srv.Transaction(pay.Reference); tx.OrderID != key {
		t.Fatalf("orderId %q", tx.OrderID)
	}
	got, err := p.Lookup(context.Background(), &paymux.LookupRequest{PaymentKey: key})
	if err != nil || got.Reference != pay.Reference {
		t.Fatalf("%+v %v", got, err)
	}
}
