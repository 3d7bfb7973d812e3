package paypal_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/paypal"
)

// recorded is one PayPal answer in testdata/paypal/, with what it must mean.
type recorded struct {
	Status    int             `json:"status"`
	Body      json.RawMessage `json:"body"`
	RawBody   string          `json:"raw_body"`
	TokenCode int             `json:"token_status"`
	TokenBody json.RawMessage `json:"token_body"`
	Op        string          `json:"op"`
	Kind      string          `json:"kind"`
	Code      string          `json:"code"`
}

// replay serves the recorded answer for the call under test.
func replay(t *testing.T, rec recorded) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/v1/oauth2/token" {
			if rec.TokenCode != 0 {
				w.WriteHeader(rec.TokenCode)
				_, _ = w.Write(rec.TokenBody)
				return
			}
			_, _ = w.Write([]byte(`{"access_token":"A21AAtest","token_type":"Bearer","expires_in":32400}`))
			return
		}
		if r.Method == http.MethodPost && r.Header.Get("PayPal-Request-Id") == "" {
			t.Errorf("POST %s without PayPal-Request-Id", r.URL.Path)
		}
		if r.Method == http.MethodGet && rec.Op != "lookup" {
			// The order lookup before a capture: an authorised order.
			_, _ = w.Write([]byte(`{"id":"5O190127TN364715T","intent":"AUTHORIZE","status":"COMPLETED","purchase_units":[{"amount":{"currency_code":"USD","value":"10.00"},"payments":{"authorizations":[{"id":"0VF52814937998046","status":"CREATED","amount":{"currency_code":"USD","value":"10.00"}}]}}]}`))
			return
		}
		w.WriteHeader(rec.Status)
		if rec.RawBody != "" {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte(rec.RawBody))
			return
		}
		_, _ = w.Write(rec.Body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestDecisionTableRecordedResponses(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/paypal/*.json")
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
			srv := replay(t, rec)
			p, err := paypal.New(paypal.Config{ClientID: "id", ClientSecret: "s3cr3t-value", BaseURL: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			usd := paymux.NewMoney(1000, "USD")
			switch rec.Op {
			case "authorize":
				_, err = p.Authorize(ctx, &paymux.AuthorizeRequest{PaymentKey: "order-1", ProviderKey: "pmx_key1", Amount: usd, Method: paymux.PaymentMethod{Type: paymux.MethodPayPal}})
			case "capture":
				_, err = p.Capture(ctx, &paymux.CaptureRequest{Reference: "5O190127TN364715T", ProviderKey: "pmx_key2", Amount: usd})
			case "lookup":
				_, err = p.Lookup(ctx, &paymux.LookupRequest{Reference: "5O190127TN364715T"})
			}
			var pe *paymux.ProviderError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T) is not a ProviderError", err, err)
			}
			if pe.Kind.String() != rec.Kind || pe.Code != rec.Code {
				t.Fatalf("got kind %s code %s, want %s %s (%v)", pe.Kind, pe.Code, rec.Kind, rec.Code, err)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Fatalf("secret in error: %v", err)
			}
			// The table agrees with the adapter, so the orchestrator's
			// lookup by code decides the same way.
			if c, ok := p.DecisionTable().Lookup(p.Name(), pe.Operation, pe.Code); ok && c.Kind != pe.Kind {
				t.Errorf("table says %s for %s, adapter %s", c.Kind, pe.Code, pe.Kind)
			}
		})
	}
}

// A 5xx must never cascade, whatever a table row says.
func TestServerErrorsNeverFailOver(t *testing.T) {
	t.Parallel()
	p, _ := setup(t)
	for k, c := range p.DecisionTable() {
		if c.Kind == paymux.KindOutcomeUnknown && c.Decision == paymux.DecisionFailover {
			t.Errorf("row %v fails over on an unknown outcome", k)
		}
	}
	for _, code := range []string{"INTERNAL_SERVER_ERROR", "INTERNAL_SERVICE_ERROR", "SERVICE_UNAVAILABLE", paypal.CodeServerError, paypal.CodeNoResponse} {
		c, ok := p.DecisionTable().Lookup(p.Name(), paymux.OpAuthorize, code)
		if !ok || c.Kind != paymux.KindOutcomeUnknown || c.Decision != paymux.DecisionRetry {
			t.Errorf("%s: %+v %v, want outcome_unknown/retry", code, c, ok)
		}
	}
}
