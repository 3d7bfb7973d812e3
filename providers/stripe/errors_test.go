package stripe_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/stripe"
)

type recorded struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
}

// TestDecisionTableRecorded replays Stripe error responses recorded in
// testdata/stripe/errors through the adapter and checks the kind, the code
// the orchestrator will look up, and the decision it will reach.
func TestDecisionTableRecorded(t *testing.T) {
	t.Parallel()
	want := map[string]struct {
		kind     paymux.Kind
		code     string
		decision paymux.Decision
	}{
		"card_declined_insufficient_funds":    {paymux.KindSoftDecline, "card_declined", paymux.DecisionStop},
		"card_declined_stolen_card":           {paymux.KindHardDecline, "card_declined", paymux.DecisionStop},
		"incorrect_number":                    {paymux.KindHardDecline, "incorrect_number", paymux.DecisionStop},
		"expired_card":                        {paymux.KindHardDecline, "expired_card", paymux.DecisionStop},
		"processing_error":                    {paymux.KindSoftDecline, "processing_error", paymux.DecisionFailover},
		"card_declined_issuer_not_available":  {paymux.KindSoftDecline, "card_declined", paymux.DecisionFailover},
		"card_declined_try_again_later":       {paymux.KindSoftDecline, "card_declined", paymux.DecisionFailover},
		"advice_try_again_later_over_generic": {paymux.KindSoftDecline, "try_again_later", paymux.DecisionFailover},
		"advice_do_not_try_again_over_soft":   {paymux.KindHardDecline, "do_not_try_again", paymux.DecisionStop},
		"authentication_required":             {paymux.KindActionRequired, "card_declined", paymux.DecisionStepUp},
		"unclassified_decline_code":           {paymux.KindHardDecline, "card_declined", paymux.DecisionStop},
		"generic_decline":                     {paymux.KindHardDecline, "card_declined", paymux.DecisionStop},
		"rate_limit":                          {paymux.KindRateLimited, "rate_limit", paymux.DecisionRetry},
		"lock_timeout":                        {paymux.KindRateLimited, "lock_timeout", paymux.DecisionRetry},
		"authentication_error":                {paymux.KindAuthentication, "authentication_error", paymux.DecisionFailover},
		"api_key_expired":                     {paymux.KindAuthentication, "authentication_error", paymux.DecisionFailover},
		"permission_error":                    {paymux.KindAuthentication, "permission_error", paymux.DecisionFailover},
		"idempotency_error":                   {paymux.KindConflict, "idempotency_error", paymux.DecisionStop},
		"idempotency_key_in_use":              {paymux.KindOutcomeUnknown, "idempotency_key_in_use", paymux.DecisionRetry},
		"api_error_500":                       {paymux.KindOutcomeUnknown, "api_error", paymux.DecisionRetry},
		"resource_missing":                    {paymux.KindNotFound, "resource_missing", paymux.DecisionStop},
		"payment_intent_unexpected_state":     {paymux.KindConflict, "payment_intent_unexpected_state", paymux.DecisionStop},
		"parameter_invalid_integer":           {paymux.KindInvalidRequest, "parameter_invalid_integer", paymux.DecisionStop},
		"amount_too_large":                    {paymux.KindInvalidRequest, "amount_too_large", paymux.DecisionStop},
	}
	files, err := filepath.Glob("testdata/stripe/errors/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no recorded responses: %v", err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		seen[name] = true
		w, ok := want[name]
		if !ok {
			t.Errorf("%s has no expectation", f)
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var rec recorded
			if err := json.Unmarshal(raw, &rec); err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Idempotency-Key") != "pk_recorded" {
					t.Errorf("Idempotency-Key = %q", r.Header.Get("Idempotency-Key"))
				}
				for k, v := range rec.Headers {
					rw.Header().Set(k, v)
				}
				rw.Header().Set("Content-Type", "application/json")
				rw.WriteHeader(rec.Status)
				_, _ = rw.Write(rec.Body)
			}))
			defer srv.Close()
			p, err := stripe.New(stripe.Config{SecretKey: "sk_test_recorded", BaseURL: srv.URL, HTTPClient: srv.Client(), Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.Authorize(context.Background(), &paymux.AuthorizeRequest{PaymentKey: "order-1001", ProviderKey: "pk_recorded",
				Amount: paymux.NewMoney(2000, "EUR"), Method: paymux.PaymentMethod{Type: paymux.MethodCard, Token: "pm_card_visa"}})
			pe := kindOf(t, err)
			got := decide(p, paymux.OpAuthorize, pe)
			if pe.Kind != w.kind || pe.Code != w.code || got.Kind != w.kind || got.Decision != w.decision || pe.HTTPStatus != rec.Status {
				t.Fatalf("got kind=%v code=%q decision=%v/%v status=%d; want %v %q %v", pe.Kind, pe.Code, got.Kind, got.Decision, pe.HTTPStatus, w.kind, w.code, w.decision)
			}
			if strings.Contains(err.Error(), "secret_REDACTED") {
				t.Fatalf("error carries the client secret: %v", err)
			}
		})
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("expectation %s has no recorded file", name)
		}
	}
}

// TestUnknownCodesStop: no row may cascade on a code nobody classified, and
// no row turns an uncertain outcome into a failover.
func TestUnknownCodesStop(t *testing.T) {
	t.Parallel()
	table := stripe.DecisionTable("stripe")
	if _, ok := table.Lookup("stripe", paymux.OpAuthorize, "card_declined"); ok {
		t.Fatal("card_declined must not have a row: it would hide the decline code")
	}
	for k, c := range table {
		if c.Decision == paymux.DecisionFailover {
			switch c.Kind {
			case paymux.KindUnavailable, paymux.KindRateLimited, paymux.KindAuthentication, paymux.KindSoftDecline:
			default:
				t.Errorf("%s: %v fails over", k.Code, c.Kind)
			}
		}
		if c.Kind == paymux.KindOutcomeUnknown && c.Decision != paymux.DecisionRetry && c.Decision != paymux.DecisionStop {
			t.Errorf("%s: outcome unknown must retry the same key or stop", k.Code)
		}
	}
}
