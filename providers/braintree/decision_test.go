package braintree

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/paymux/paymux"
)

// recorded is a response file under testdata/braintree: the HTTP status and
// either a JSON body or raw bytes. The files follow the response shapes of
// Braintree's GraphQL reference, with ids and request ids scrubbed.
type recorded struct {
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
	Raw    *string         `json:"raw"`
}

func replay(t *testing.T, file string) *Provider {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "braintree", file))
	if err != nil {
		t.Fatal(err)
	}
	var rec recorded
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Braintree-Version") != APIVersion {
			t.Errorf("Braintree-Version = %q", r.Header.Get("Braintree-Version"))
		}
		if u, pw, ok := r.BasicAuth(); !ok || u != "pub" || pw != "priv_secret_value" {
			t.Errorf("basic auth not sent")
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rec.Status)
		if rec.Raw != nil {
			_, _ = w.Write([]byte(*rec.Raw))
			return
		}
		_, _ = w.Write(rec.Body)
	}))
	t.Cleanup(srv.Close)
	p, err := New(Config{PublicKey: "pub", PrivateKey: "priv_secret_value", BaseURL: srv.URL, HTTPClient: srv.Client(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// classify mirrors the orchestrator: the table row for Code, then for
// DeclineCode, else the error's kind with its default decision.
func classify(p *Provider, pe *paymux.ProviderError) paymux.Classification {
	t := p.DecisionTable()
	for _, c := range []string{pe.Code, pe.DeclineCode} {
		if cl, ok := t.Lookup(p.Name(), pe.Operation, c); ok {
			return cl
		}
	}
	return paymux.Classification{Kind: pe.Kind, Decision: paymux.DefaultDecision(pe.Kind)}
}

func TestDecisionTableRecordedResponses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file        string
		kind        paymux.Kind // the error's own kind
		code        string
		declineCode string
		decided     paymux.Classification // after the decision table
	}{
		{"processor_declined_2000.json", paymux.KindSoftDecline, "processor_declined", "2000", paymux.Classification{Kind: paymux.KindSoftDecline, Decision: paymux.DecisionStop}},
		{"processor_declined_2001.json", paymux.KindSoftDecline, "processor_declined", "2001", paymux.Classification{Kind: paymux.KindSoftDecline, Decision: paymux.DecisionStop}},
		{"processor_declined_2004.json", paymux.KindHardDecline, "processor_declined", "2004", paymux.Classification{Kind: paymux.KindHardDecline, Decision: paymux.DecisionStop}},
		// Not in the table: declineType HARD decides, and a decline nobody
		// classified never cascades.
		{"processor_declined_2108_unlisted_hard.json", paymux.KindHardDecline, "processor_declined", "2108", paymux.Classification{Kind: paymux.KindHardDecline, Decision: paymux.DecisionStop}},
		{"processor_declined_2099.json", paymux.KindActionRequired, "processor_declined", "2099", paymux.Classification{Kind: paymux.KindActionRequired, Decision: paymux.DecisionStop}},
		{"processor_declined_3000.json", paymux.KindSoftDecline, "processor_declined", "3000", paymux.Classification{Kind: paymux.KindSoftDecline, Decision: paymux.DecisionFailover}},
		{"failed.json", paymux.KindSoftDecline, "failed", "", paymux.Classification{Kind: paymux.KindSoftDecline, Decision: paymux.DecisionFailover}},
		{"gateway_rejected_duplicate.json", paymux.KindConflict, "gateway_rejected:duplicate", "", paymux.Classification{Kind: paymux.KindOutcomeUnknown, Decision: paymux.DecisionStop}},
		{"gateway_rejected_avs.json", paymux.KindHardDecline, "gateway_rejected:avs", "", paymux.Classification{Kind: paymux.KindHardDecline, Decision: paymux.DecisionStop}},
		{"gateway_rejected_cvv.json", paymux.KindHardDecline, "gateway_rejected:cvv", "", paymux.Classification{Kind: paymux.KindHardDecline, Decision: paymux.DecisionStop}},
		{"gateway_rejected_avs_and_cvv.json", paymux.KindHardDecline, "gateway_rejected:avs_and_cvv", "", paymux.Classification{Kind: paymux.KindHardDecline, Decision: paymux.DecisionStop}},
		{"gateway_rejected_three_d_secure.json", paymux.KindActionRequired, "gateway_rejected:three_d_secure", "", paymux.Classification{Kind: paymux.KindActionRequired, Decision: paymux.DecisionStop}},
		{"gateway_rejected_fraud.json", paymux.KindHardDecline, "gateway_rejected:fraud", "", paymux.Classification{Kind: paymux.KindHardDecline, Decision: paymux.DecisionStop}},
		{"gateway_rejected_risk_threshold.json", paymux.KindHardDecline, "gateway_rejected:risk_threshold", "", paymux.Classification{Kind: paymux.KindHardDecline, Decision: paymux.DecisionStop}},
		{"gateway_rejected_excessive_retry.json", paymux.KindHardDecline, "gateway_rejected:excessive_retry", "", paymux.Classification{Kind: paymux.KindHardDecline, Decision: paymux.DecisionStop}},
		{"gateway_rejected_application_incomplete.json", paymux.KindInvalidRequest, "gateway_rejected:application_incomplete", "", paymux.Classification{Kind: paymux.KindInvalidRequest, Decision: paymux.DecisionStop}},
		{"validation_amount.json", paymux.KindInvalidRequest, "VALIDATION", "81503", paymux.Classification{Kind: paymux.KindInvalidRequest, Decision: paymux.DecisionStop}},
		{"validation_api_request_key.json", paymux.KindConflict, "VALIDATION:apiRequestKey", "", paymux.Classification{Kind: paymux.KindOutcomeUnknown, Decision: paymux.DecisionStop}},
		{"validation_settlement_amount.json", paymux.KindConflict, "VALIDATION:state", "91522", paymux.Classification{Kind: paymux.KindConflict, Decision: paymux.DecisionStop}},
		{"validation_refund_unsettled.json", paymux.KindConflict, "VALIDATION:state", "91506", paymux.Classification{Kind: paymux.KindConflict, Decision: paymux.DecisionStop}},
		{"authentication.json", paymux.KindAuthentication, "AUTHENTICATION", "", paymux.Classification{Kind: paymux.KindAuthentication, Decision: paymux.DecisionFailover}},
		{"authorization.json", paymux.KindAuthentication, "AUTHORIZATION", "", paymux.Classification{Kind: paymux.KindAuthentication, Decision: paymux.DecisionFailover}},
		{"not_found.json", paymux.KindNotFound, "NOT_FOUND", "", paymux.Classification{Kind: paymux.KindNotFound, Decision: paymux.DecisionStop}},
		{"resource_limit_429.json", paymux.KindRateLimited, "RESOURCE_LIMIT", "", paymux.Classification{Kind: paymux.KindRateLimited, Decision: paymux.DecisionRetry}},
		// 5xx: Braintree documents none as "not processed": outcome unknown,
		// retried with the same apiRequestKey, never failed over.
		{"internal_500.json", paymux.KindOutcomeUnknown, "INTERNAL", "", paymux.Classification{Kind: paymux.KindOutcomeUnknown, Decision: paymux.DecisionRetry}},
		{"service_availability_503.json", paymux.KindOutcomeUnknown, "SERVICE_AVAILABILITY", "", paymux.Classification{Kind: paymux.KindOutcomeUnknown, Decision: paymux.DecisionRetry}},
		{"gateway_timeout_504_html.json", paymux.KindOutcomeUnknown, "server_error", "", paymux.Classification{Kind: paymux.KindOutcomeUnknown, Decision: paymux.DecisionRetry}},
		{"bad_gateway_502_empty.json", paymux.KindOutcomeUnknown, "server_error", "", paymux.Classification{Kind: paymux.KindOutcomeUnknown, Decision: paymux.DecisionRetry}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			p := replay(t, tt.file)
			_, err := p.Authorize(context.Background(), &paymux.AuthorizeRequest{
				PaymentKey: "order-1001", ProviderKey: "pmx_0f3a", Amount: paymux.NewMoney(1000, "USD"),
				Method: paymux.PaymentMethod{Type: paymux.MethodCard, Token: "fake-valid-nonce"},
			})
			var pe *paymux.ProviderError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a ProviderError", err)
			}
			if pe.Kind != tt.kind || pe.Code != tt.code || pe.DeclineCode != tt.declineCode {
				t.Fatalf("got kind %s code %q decline %q, want %s %q %q", pe.Kind, pe.Code, pe.DeclineCode, tt.kind, tt.code, tt.declineCode)
			}
			if got := classify(p, pe); got != tt.decided {
				t.Fatalf("decision %s/%s, want %s/%s", got.Kind, got.Decision, tt.decided.Kind, tt.decided.Decision)
			}
			if pe.Provider != "braintree" || pe.Operation != paymux.OpAuthorize {
				t.Errorf("provider %q op %q", pe.Provider, pe.Operation)
			}
		})
	}
}

func TestRecordedApproval(t *testing.T) {
	t.Parallel()
	p := replay(t, "charge_settled.json")
	res, err := p.Authorize(context.Background(), &paymux.AuthorizeRequest{
		PaymentKey: "order-1001", ProviderKey: "pmx_0f3a", Amount: paymux.NewMoney(1000, "USD"),
		Method: paymux.PaymentMethod{Type: paymux.MethodCard, Token: "fake-valid-nonce"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != paymux.StatusCaptured || res.Captured != 1000 || res.Authorized != 1000 || res.Reference != "dHJhbnNhY3Rpb25fYWJj" {
		t.Fatalf("%+v", res)
	}
}

// TestNoRowCascadesOnUnknownOutcome checks invariant 2 at the table: no row
// of an outcome-unknown kind fails over.
func TestNoRowCascadesOnUnknownOutcome(t *testing.T) {
	t.Parallel()
	p, _ := New(Config{PublicKey: "pub", PrivateKey: "priv"})
	for k, c := range p.DecisionTable() {
		if c.Decision == paymux.DecisionFailover {
			switch c.Kind {
			case paymux.KindUnavailable, paymux.KindRateLimited, paymux.KindAuthentication, paymux.KindSoftDecline:
			default:
				t.Errorf("row %+v fails over on kind %s", k, c.Kind)
			}
		}
		if k.Provider != "braintree" {
			t.Errorf("row %+v names another provider", k)
		}
	}
}

func TestDeclineKind(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code, declineType string
		want              paymux.Kind
	}{
		{"2004", "SOFT", paymux.KindHardDecline}, // the documented list wins
		{"2001", "", paymux.KindSoftDecline},
		{"2046", "SOFT", paymux.KindSoftDecline},
		{"2999", "", paymux.KindHardDecline}, // unknown and untyped: hard
		{"2999", "SOFT", paymux.KindSoftDecline},
		{"3000", "", paymux.KindSoftDecline},
		{"2099", "HARD", paymux.KindActionRequired},
	}
	for _, tt := range tests {
		if got := declineKind(tt.code, tt.declineType); got != tt.want {
			t.Errorf("declineKind(%s, %s) = %s, want %s", tt.code, tt.declineType, got, tt.want)
		}
	}
}
