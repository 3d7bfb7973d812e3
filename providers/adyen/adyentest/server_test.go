package adyentest_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/adyen"
	"github.com/paymux/paymux/providers/adyen/adyentest"
	"github.com/paymux/paymux/providers/providertest"
)

// sink collects the events the adapter parses from the fake's webhooks.
type sink struct {
	mu     sync.Mutex
	events []paymux.Event
	errs   []error
	got    chan struct{}
}

type bundle struct {
	srv    *adyentest.Server
	faults *providertest.Faults
	sink   *sink
}

func setup(t *testing.T, opts adyentest.Options) (*adyen.Provider, *bundle) {
	t.Helper()
	b := &bundle{faults: &providertest.Faults{}, sink: &sink{got: make(chan struct{}, 64)}}
	var p *adyen.Provider
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		events, err := p.ParseWebhook(r.Context(), r.Header, body)
		b.sink.mu.Lock()
		b.sink.events = append(b.sink.events, events...)
		if err != nil {
			b.sink.errs = append(b.sink.errs, err)
		}
		b.sink.mu.Unlock()
		b.sink.got <- struct{}{}
		if err != nil {
			http.Error(w, "refused", http.StatusUnauthorized)
			return
		}
		ct, ack := p.WebhookAck()
		w.Header().Set("Content-Type", ct)
		_, _ = w.Write(ack)
	}))
	t.Cleanup(hook.Close)
	opts.Faults = b.faults
	opts.WebhookURL = hook.URL
	b.srv = adyentest.NewServer(opts)
	t.Cleanup(b.srv.Close)
	o := b.srv.Options()
	var err error
	p, err = adyen.New(adyen.Config{
		APIKey: paymux.Secret(o.APIKey), MerchantAccount: o.MerchantAccount, HMACKey: paymux.Secret(o.HMACKey),
		BaseURL: b.srv.URL, Lookup: b.srv.Lookup,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, b
}

// wait returns once n webhooks arrived.
func (s *sink) wait(t *testing.T, n int) []paymux.Event {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-s.got:
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of %d webhooks arrived", i, n)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) > 0 {
		t.Fatalf("webhooks refused: %v", s.errs)
	}
	return append([]paymux.Event(nil), s.events...)
}

func request(key string, m paymux.PaymentMethod, capture paymux.CaptureMode) *paymux.AuthorizeRequest {
	return &paymux.AuthorizeRequest{
		PaymentID: paymux.PaymentID(key), PaymentKey: key, ProviderKey: paymux.ProviderKey(key, "adyen", paymux.OpAuthorize, 1),
		Amount: paymux.NewMoney(1000, "EUR"), Method: m, Capture: capture, ReturnURL: "https://shop.example/return",
	}
}

// TestSignedWebhooksReachTheSink: every state change sends a notification
// the adapter verifies, maps and acknowledges with [accepted].
func TestSignedWebhooksReachTheSink(t *testing.T) {
	t.Parallel()
	p, b := setup(t, adyentest.Options{})
	ctx := context.Background()
	req := request("order-wh", adyentest.Method(""), paymux.CaptureManual)
	auth, err := p.Authorize(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Capture(ctx, &paymux.CaptureRequest{Reference: auth.Reference, ProviderKey: "cap-1", Amount: paymux.NewMoney(400, "EUR")}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Refund(ctx, &paymux.RefundRequest{Reference: auth.Reference, ProviderKey: "ref-1", Amount: paymux.NewMoney(100, "EUR")}); err != nil {
		t.Fatal(err)
	}
	events := b.sink.wait(t, 3)
	want := map[paymux.EventType]int64{paymux.EventAuthorized: 1000, paymux.EventCaptured: 400, paymux.EventRefunded: 100}
	for _, ev := range events {
		if amt, ok := want[ev.Type]; !ok || ev.Amount.Amount != amt || ev.ProviderRef != auth.Reference || !ev.Success {
			t.Errorf("unexpected event %+v", ev)
		}
		delete(want, ev.Type)
	}
	if len(want) != 0 {
		t.Errorf("missing events %v", want)
	}
	b.srv.WaitWebhooks()
	for _, n := range b.srv.Notifications() {
		if n.Err != nil || n.Status != http.StatusOK {
			t.Errorf("delivery %s: %d %v", n.Item.EventCode, n.Status, n.Err)
		}
	}
}

// TestAsyncModificationRefusal: by default the fake behaves as Adyen does:
// an impossible capture is "received" and then refused by webhook.
func TestAsyncModificationRefusal(t *testing.T) {
	t.Parallel()
	p, b := setup(t, adyentest.Options{})
	ctx := context.Background()
	auth, err := p.Authorize(ctx, request("order-async", adyentest.Method(""), paymux.CaptureManual))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Capture(ctx, &paymux.CaptureRequest{Reference: auth.Reference, ProviderKey: "cap-big", Amount: paymux.NewMoney(5000, "EUR")}); err != nil {
		t.Fatalf("Adyen accepts the request itself: %v", err)
	}
	events := b.sink.wait(t, 2)
	var failed bool
	for _, ev := range events {
		if ev.Type == paymux.EventCaptureFailed && !ev.Success && ev.ProviderRef == auth.Reference {
			failed = true
		}
	}
	if !failed {
		t.Fatalf("no CAPTURE success=false among %+v", events)
	}
	if pay, _ := b.srv.Payment(auth.Reference); pay.Captured != 0 {
		t.Fatalf("captured %d", pay.Captured)
	}
}

// TestServerErrorIsStoredForTheKey: Adyen keeps a non-transient error as the
// key's result; a transient one is not kept, so the retry is processed.
func TestServerErrorIsStoredForTheKey(t *testing.T) {
	t.Parallel()
	p, b := setup(t, adyentest.Options{})
	ctx := context.Background()
	req := request("order-500", adyentest.Method(""), paymux.CaptureAutomatic)
	b.faults.Set(providertest.FaultPlan{ServerErrorRate: 1})
	_, err := p.Authorize(ctx, req)
	b.faults.Set(providertest.FaultPlan{})
	if paymux.KindOf(err) != paymux.KindOutcomeUnknown {
		t.Fatalf("5xx: %v", err)
	}
	if _, err := p.Authorize(ctx, req); paymux.KindOf(err) != paymux.KindOutcomeUnknown {
		t.Fatalf("retry with the same key: %v, want the stored 500", err)
	}
	if n := b.srv.Charges(req.PaymentKey); n != 0 {
		t.Fatalf("charges %d", n)
	}

	req2 := request("order-transient", adyentest.Method(""), paymux.CaptureAutomatic)
	b.faults.Set(providertest.FaultPlan{Outage: true})
	_, err = p.Authorize(ctx, req2)
	b.faults.Set(providertest.FaultPlan{})
	var pe *paymux.ProviderError
	var api *adyen.APIError
	if !errors.As(err, &pe) || pe.Kind != paymux.KindUnavailable || !errors.As(err, &api) || !api.Transient {
		t.Fatalf("outage: %v", err)
	}
	if res, err := p.Authorize(ctx, req2); err != nil || res.Status != paymux.StatusCaptured {
		t.Fatalf("retry after a transient error: %v %v", res, err)
	}
}

// TestTestTriggers: Adyen's documented holder names and acquirer response
// codes, and the fake's 3-D Secure names.
func TestTestTriggers(t *testing.T) {
	t.Parallel()
	p, b := setup(t, adyentest.Options{})
	ctx := context.Background()
	for _, c := range []struct {
		holder string
		kind   paymux.Kind
		code   string
	}{
		{"DECLINED", paymux.KindSoftDecline, "refusal:2"},
		{"CARD_EXPIRED", paymux.KindHardDecline, "refusal:6"},
		{"FRAUD", paymux.KindHardDecline, "refusal:20"},
		{"NOT_3D_AUTHENTICATED", paymux.KindActionRequired, "refusal:11"},
		{"ERROR", paymux.KindSoftDecline, "refusal:4"},
		{"FRAUD_CANCELLED", paymux.KindHardDecline, "refusal:22"},
	} {
		_, err := p.Authorize(ctx, request("order-"+c.holder, adyentest.Method(c.holder), paymux.CaptureAutomatic))
		var pe *paymux.ProviderError
		if !errors.As(err, &pe) || pe.Kind != c.kind || pe.DeclineCode != c.code {
			t.Errorf("%s: %v", c.holder, err)
		}
	}
	res, err := p.Authorize(ctx, request("order-pending", adyentest.Method("PENDING"), paymux.CaptureAutomatic))
	if err != nil || res.Status != paymux.StatusPending {
		t.Errorf("PENDING: %v %v", res, err)
	}
	res, err = p.Authorize(ctx, request("order-redirect", adyentest.Method(adyentest.HolderRedirect), paymux.CaptureAutomatic))
	if err != nil || res.Status != paymux.StatusRequiresAction || res.NextAction.Type != "redirect" || res.NextAction.RedirectURL == "" {
		t.Fatalf("redirect: %+v %v", res, err)
	}
	// Opening the redirect plays the shopper.
	resp, err := http.Get(res.NextAction.RedirectURL)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("redirect page: %v %v", resp, err)
	}
	resp.Body.Close()
	if n := b.srv.Charges("order-redirect"); n != 1 {
		t.Fatalf("charges after the redirect: %d", n)
	}
	req := request("order-3ds", adyentest.Method(""), paymux.CaptureAutomatic)
	req.ThreeDS = true
	if res, err := p.Authorize(ctx, req); err != nil || res.NextAction == nil || res.NextAction.Type != "three_ds" {
		t.Fatalf("ThreeDS requested: %+v %v", res, err)
	}
	bad := request("order-pan", paymux.PaymentMethod{Type: paymux.MethodCard, Token: `{"type":"scheme","encryptedCardNumber":"test_4111111111111111"}`}, paymux.CaptureAutomatic)
	if _, err := p.Authorize(ctx, bad); paymux.KindOf(err) != paymux.KindInvalidRequest {
		t.Fatalf("plain test card number reached the fake: %v", err)
	}
	b.sink.wait(t, 7) // 6 refusals and the redirect's authorisation
}

func TestWrongAPIKey(t *testing.T) {
	t.Parallel()
	srv := adyentest.NewServer(adyentest.Options{})
	t.Cleanup(srv.Close)
	p, err := adyen.New(adyen.Config{APIKey: "wrong", MerchantAccount: srv.Options().MerchantAccount, BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Authorize(context.Background(), request("order-auth", adyentest.Method(""), paymux.CaptureAutomatic))
	if paymux.KindOf(err) != paymux.KindAuthentication {
		t.Fatalf("wrong key: %v", err)
	}
}
