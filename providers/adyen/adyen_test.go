package adyen_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/adyen"
	"github.com/paymux/paymux/providers/adyen/adyentest"
)

const (
	testAPIKey  = paymux.Secret("AQE_test_api_key_do_not_log_0123456789")
	testHMACKey = paymux.Secret(adyentest.DefaultHMACKey)
)

// bundle is what setup gives a test besides the provider.
type bundle struct {
	srv *httptest.Server
	mu  sync.Mutex
	// last request the server saw
	header http.Header
	body   []byte
	path   string
}

func (b *bundle) last() (string, http.Header, []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.path, b.header, b.body
}

// setup starts a server answering every call with handler and an adapter
// pointed at it.
func setup(t *testing.T, handler http.HandlerFunc, mod ...func(*adyen.Config)) (*adyen.Provider, *bundle) {
	t.Helper()
	b := &bundle{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.header, b.body, b.path = r.Header.Clone(), body, r.URL.Path
		b.mu.Unlock()
		handler(w, r)
	}))
	t.Cleanup(b.srv.Close)
	cfg := adyen.Config{APIKey: testAPIKey, MerchantAccount: "PaymuxTestMerchant", HMACKey: testHMACKey, BaseURL: b.srv.URL + "/v71"}
	for _, m := range mod {
		m(&cfg)
	}
	p, err := adyen.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p, b
}

func authReq(capture paymux.CaptureMode) *paymux.AuthorizeRequest {
	return &paymux.AuthorizeRequest{
		PaymentID: "pay_1", PaymentKey: "order-1001", ProviderKey: "pmx_key_1",
		Amount: paymux.NewMoney(1000, "EUR"), Method: adyentest.Method(""), Country: "NL", Capture: capture,
		Customer:  paymux.Customer{ID: "cus_1", Email: "buyer@example.com", IP: "203.0.113.7"},
		ReturnURL: "https://shop.example/return",
	}
}

// recorded is one file in testdata/adyen/responses.
type recorded struct {
	Description string            `json:"description"`
	Operation   string            `json:"operation"`
	Capture     string            `json:"capture"`
	Status      int               `json:"status"`
	Headers     map[string]string `json:"headers"`
	Body        json.RawMessage   `json:"body"`
	Want        struct {
		Status          string `json:"status"`
		Reference       string `json:"reference"`
		RefundReference string `json:"refund_reference"`
		Authorized      int64  `json:"authorized"`
		Captured        int64  `json:"captured"`
		NextAction      string `json:"next_action"`
		RedirectURL     string `json:"redirect_url"`
		Kind            string `json:"kind"`
		Code            string `json:"code"`
		DeclineCode     string `json:"decline_code"`
		Decision        string `json:"decision"`
	} `json:"want"`
}

// classify does what the orchestrator does with an error: the table row for
// Code, then for DeclineCode, else the kind's default.
func classify(p *adyen.Provider, pe *paymux.ProviderError) paymux.Classification {
	for _, c := range []string{pe.Code, pe.DeclineCode} {
		if row, ok := p.DecisionTable().Lookup(p.Name(), pe.Operation, c); ok {
			return row
		}
	}
	return paymux.Classification{Kind: pe.Kind, Decision: paymux.DefaultDecision(pe.Kind)}
}

// TestRecordedResponses replays each recorded answer and checks the status,
// the error kind and codes, and the decision the table leads to.
func TestRecordedResponses(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/adyen/responses/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no recorded responses: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".json"), func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var rec recorded
			if err := json.Unmarshal(raw, &rec); err != nil {
				t.Fatal(err)
			}
			body := []byte(rec.Body)
			var s string
			if json.Unmarshal(rec.Body, &s) == nil {
				body = []byte(s) // a non-JSON body, stored as a string
			}
			p, _ := setup(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range rec.Headers {
					w.Header().Set(k, v)
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(rec.Status)
				_, _ = w.Write(body)
			})
			ctx := context.Background()
			var res *paymux.ProviderPayment
			switch rec.Operation {
			case "authorize":
				res, err = p.Authorize(ctx, authReq(paymux.CaptureMode(rec.Capture)))
			case "capture":
				res, err = p.Capture(ctx, &paymux.CaptureRequest{Reference: "PSP0000000000001", ProviderKey: "k", Amount: paymux.NewMoney(500, "EUR")})
			case "refund":
				res, err = p.Refund(ctx, &paymux.RefundRequest{Reference: "PSP0000000000001", ProviderKey: "k", Amount: paymux.NewMoney(500, "EUR")})
			case "void":
				res, err = p.Void(ctx, &paymux.VoidRequest{Reference: "PSP0000000000001", ProviderKey: "k"})
			default:
				t.Fatalf("unknown operation %q", rec.Operation)
			}
			w := rec.Want
			if w.Kind == "" {
				if err != nil {
					t.Fatalf("%s: %v", rec.Description, err)
				}
				if string(res.Status) != w.Status {
					t.Errorf("status %s, want %s", res.Status, w.Status)
				}
				if w.Reference != "" && res.Reference != w.Reference {
					t.Errorf("reference %q, want %q", res.Reference, w.Reference)
				}
				if w.RefundReference != "" && res.RefundReference != w.RefundReference {
					t.Errorf("refund reference %q, want %q", res.RefundReference, w.RefundReference)
				}
				if w.Authorized != 0 && res.Authorized != w.Authorized {
					t.Errorf("authorized %d, want %d", res.Authorized, w.Authorized)
				}
				if w.Captured != 0 && res.Captured != w.Captured {
					t.Errorf("captured %d, want %d", res.Captured, w.Captured)
				}
				if w.NextAction != "" {
					if res.NextAction == nil || res.NextAction.Type != w.NextAction || res.NextAction.RedirectURL != w.RedirectURL {
						t.Errorf("next action %+v, want %s %q", res.NextAction, w.NextAction, w.RedirectURL)
					}
				}
				return
			}
			var pe *paymux.ProviderError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v (%T), want a *paymux.ProviderError", err, err)
			}
			if pe.Kind.String() != w.Kind || pe.Code != w.Code || pe.DeclineCode != w.DeclineCode {
				t.Errorf("got kind %s code %q decline %q, want %s %q %q", pe.Kind, pe.Code, pe.DeclineCode, w.Kind, w.Code, w.DeclineCode)
			}
			if got := classify(p, pe).Decision.String(); got != w.Decision {
				t.Errorf("decision %s, want %s", got, w.Decision)
			}
			if strings.Contains(err.Error(), testAPIKey.Reveal()) {
				t.Error("the API key is in the error")
			}
		})
	}
}

// TestRequestShape checks what goes on the wire: auth, idempotency key,
// merchant reference and the capture and 3-D Secure switches.
func TestRequestShape(t *testing.T) {
	t.Parallel()
	p, b := setup(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"pspReference":"PSP1","resultCode":"Authorised"}`)
	})
	ctx := context.Background()
	check := func(capture paymux.CaptureMode, threeDS bool, want map[string]any) {
		t.Helper()
		req := authReq(capture)
		req.ThreeDS = threeDS
		if _, err := p.Authorize(ctx, req); err != nil {
			t.Fatal(err)
		}
		path, h, body := b.last()
		if path != "/v71/payments" {
			t.Errorf("path %q", path)
		}
		if h.Get("X-API-Key") != testAPIKey.Reveal() || h.Get("Idempotency-Key") != "pmx_key_1" || h.Get("Content-Type") != "application/json" {
			t.Errorf("headers: X-API-Key set=%v Idempotency-Key=%q Content-Type=%q", h.Get("X-API-Key") != "", h.Get("Idempotency-Key"), h.Get("Content-Type"))
		}
		var got map[string]any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		for k, v := range want {
			if fmt.Sprint(got[k]) != fmt.Sprint(v) {
				t.Errorf("%s = %v, want %v (body %s)", k, got[k], v, body)
			}
		}
	}
	check(paymux.CaptureAutomatic, false, map[string]any{
		"reference": "order-1001", "merchantAccount": "PaymuxTestMerchant", "captureDelayHours": 0,
		"amount": map[string]any{"currency": "EUR", "value": 1000}, "returnUrl": "https://shop.example/return",
		"additionalData": nil, "authenticationData": nil, "metadata": map[string]any{"paymuxPaymentId": "pay_1"},
	})
	check(paymux.CaptureManual, true, map[string]any{
		"captureDelayHours": nil, "additionalData": map[string]any{"manualCapture": "true"},
		"authenticationData": map[string]any{"attemptAuthentication": "always"},
	})

	if _, err := p.Capture(ctx, &paymux.CaptureRequest{Reference: "PSP/1", ProviderKey: "pmx_cap", Amount: paymux.NewMoney(5, "EUR")}); err == nil {
		t.Error("capture against a stub that answers a payment succeeded")
	}
	path, h, _ := b.last()
	if path != "/v71/payments/PSP%2F1/captures" && path != "/v71/payments/PSP/1/captures" {
		t.Errorf("capture path %q", path)
	}
	if h.Get("Idempotency-Key") != "pmx_cap" {
		t.Errorf("capture Idempotency-Key %q", h.Get("Idempotency-Key"))
	}
}

func TestStoredPaymentMethod(t *testing.T) {
	t.Parallel()
	p, b := setup(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"pspReference":"PSP1","resultCode":"Authorised"}`)
	})
	req := authReq(paymux.CaptureAutomatic)
	req.Method = paymux.PaymentMethod{Type: paymux.MethodCard, Token: "8315000000000001x"}
	if _, err := p.Authorize(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	_, _, body := b.last()
	for _, want := range []string{`"storedPaymentMethodId":"8315000000000001x"`, `"shopperInteraction":"ContAuth"`, `"recurringProcessingModel":"CardOnFile"`, `"shopperReference":"cus_1"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("body lacks %s: %s", want, body)
		}
	}
	req.Customer.ID = ""
	_, err := p.Authorize(context.Background(), req)
	if paymux.KindOf(err) != paymux.KindInvalidRequest {
		t.Errorf("stored method without a shopper: %v", err)
	}
}

// TestCardDataRefused: invariant 6, no card data through paymux.
func TestCardDataRefused(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	p, _ := setup(t, func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
	for _, tok := range []string{
		"4111111111111111",
		`{"type":"scheme","number":"4111111111111111","expiryMonth":"03","expiryYear":"2030","cvc":"737"}`,
		`{"type":"scheme","encryptedCardNumber":"test_4111111111111111","encryptedSecurityCode":"test_737"}`,
	} {
		req := authReq(paymux.CaptureAutomatic)
		req.Method.Token = tok
		_, err := p.Authorize(context.Background(), req)
		if !errors.Is(err, paymux.ErrCardData) || paymux.KindOf(err) != paymux.KindInvalidRequest {
			t.Errorf("token %.12s...: %v", tok, err)
		}
		if err != nil && strings.Contains(err.Error(), "4111111111111111") {
			t.Error("the card number is in the error")
		}
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("%d calls reached Adyen with card data", n)
	}
}

// TestTransportFailures is invariant 2 at the adapter: Unavailable only when
// nothing can have reached Adyen.
func TestTransportFailures(t *testing.T) {
	t.Parallel()
	t.Run("ConnectionRefused", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		p, _ := setup(t, nil, func(c *adyen.Config) { c.BaseURL = "http://" + addr + "/v71" })
		_, err = p.Authorize(context.Background(), authReq(paymux.CaptureAutomatic))
		wantKind(t, p, err, paymux.KindUnavailable, adyen.CodeConnect, paymux.DecisionFailover)
	})
	t.Run("ResetAfterSend", func(t *testing.T) {
		t.Parallel()
		p, _ := setup(t, func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		})
		_, err := p.Authorize(context.Background(), authReq(paymux.CaptureAutomatic))
		wantKind(t, p, err, paymux.KindOutcomeUnknown, adyen.CodeNetwork, paymux.DecisionRetry)
	})
	t.Run("Timeout", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		p, _ := setup(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		defer close(release)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := p.Authorize(ctx, authReq(paymux.CaptureAutomatic))
		wantKind(t, p, err, paymux.KindOutcomeUnknown, adyen.CodeTimeout, paymux.DecisionRetry)
	})
	t.Run("TruncatedBody", func(t *testing.T) {
		t.Parallel()
		p, _ := setup(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			_, _ = io.WriteString(w, `{"pspReference":"PSP1","resultCode":"Auth`)
		})
		_, err := p.Authorize(context.Background(), authReq(paymux.CaptureAutomatic))
		if paymux.KindOf(err) != paymux.KindOutcomeUnknown {
			t.Fatalf("truncated 200: %v", err)
		}
	})
}

func wantKind(t *testing.T, p *adyen.Provider, err error, kind paymux.Kind, code string, d paymux.Decision) {
	t.Helper()
	var pe *paymux.ProviderError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a ProviderError", err)
	}
	if pe.Kind != kind || pe.Code != code {
		t.Fatalf("got %s/%s (%v), want %s/%s", pe.Kind, pe.Code, err, kind, code)
	}
	if got := classify(p, pe).Decision; got != d {
		t.Errorf("decision %s, want %s", got, d)
	}
}

func TestLookupWithoutSource(t *testing.T) {
	t.Parallel()
	p, _ := setup(t, func(w http.ResponseWriter, r *http.Request) { t.Error("Lookup called Adyen") })
	_, err := p.Lookup(context.Background(), &paymux.LookupRequest{Reference: "PSP1", PaymentKey: "order-1001"})
	if !errors.Is(err, paymux.ErrUnimplemented) || paymux.KindOf(err) != paymux.KindUnimplemented {
		t.Fatalf("Lookup: %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	for _, cfg := range []adyen.Config{
		{MerchantAccount: "m"},
		{APIKey: testAPIKey},
		{APIKey: testAPIKey, MerchantAccount: "m", HMACKey: "not-hex-secret-value"},
	} {
		_, err := adyen.New(cfg)
		if err == nil {
			t.Errorf("New(%+v) accepted", cfg)
			continue
		}
		if strings.Contains(err.Error(), "not-hex-secret-value") || strings.Contains(err.Error(), testAPIKey.Reveal()) {
			t.Errorf("secret in error %q", err)
		}
	}
	p, err := adyen.New(adyen.Config{APIKey: testAPIKey, MerchantAccount: "m"})
	if err != nil || p.Name() != "adyen" {
		t.Fatalf("defaults: %v %v", p, err)
	}
	if s := fmt.Sprintf("%+v %#v", adyen.Config{APIKey: testAPIKey, HMACKey: testHMACKey}, adyen.Config{APIKey: testAPIKey}); strings.Contains(s, testAPIKey.Reveal()) || strings.Contains(s, testHMACKey.Reveal()) {
		t.Errorf("Config prints a secret: %s", s)
	}
	if adyen.LiveBaseURL("1797a841fbb37ca7-AdyenDemo") != "https://1797a841fbb37ca7-AdyenDemo-checkout-live.adyenpayments.com/checkout/v71" {
		t.Error("live URL")
	}
}

// TestMetadataFitsAdyenLimits: metadata over Adyen's limits (20 entries,
// 20-character keys, 80-character values) would fail the payment with 422.
func TestMetadataFitsAdyenLimits(t *testing.T) {
	t.Parallel()
	p, b := setup(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"pspReference":"PSP1","resultCode":"Authorised"}`)
	})
	req := authReq(paymux.CaptureAutomatic)
	req.Customer.ID = "c1" // too short for shopperReference: left out
	req.Metadata = map[string]string{"a_key_longer_than_twenty": "x", "a_long": strings.Repeat("v", 200)}
	for i := 0; i < 30; i++ {
		req.Metadata[fmt.Sprintf("k%02d", i)] = "v"
	}
	if _, err := p.Authorize(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	_, _, body := b.last()
	var got struct {
		Metadata         map[string]string `json:"metadata"`
		ShopperReference *string           `json:"shopperReference"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Metadata) != 20 || got.Metadata["paymuxPaymentId"] != "pay_1" || len(got.Metadata["a_long"]) != 80 {
		t.Errorf("metadata: %d entries, id %q, long %d", len(got.Metadata), got.Metadata["paymuxPaymentId"], len(got.Metadata["a_long"]))
	}
	for k := range got.Metadata {
		if len(k) > 20 {
			t.Errorf("key %q over 20 characters", k)
		}
	}
	if got.ShopperReference != nil {
		t.Errorf("shopperReference %q sent", *got.ShopperReference)
	}
}
