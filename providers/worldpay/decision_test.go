package worldpay_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/worldpay"
)

type recorded struct {
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
}

// replay serves one recorded Worldpay response for every request and
// returns an adapter pointed at it.
func replay(t *testing.T, file string) *worldpay.Provider {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "worldpay", file))
	if err != nil {
		t.Fatal(err)
	}
	var rec recorded
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rec.Status)
		if string(rec.Body) != "null" {
			w.Write(rec.Body)
		}
	}))
	t.Cleanup(srv.Close)
	p, err := worldpay.New(worldpay.Config{Username: "u", Password: "p", Entity: "default", BaseURL: srv.URL, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func req() *paymux.AuthorizeRequest {
	return &paymux.AuthorizeRequest{
		PaymentKey: "order-1", ProviderKey: "pmx_0123456789abcdef0123456789abcdef01234567",
		Amount:  paymux.NewMoney(250, "GBP"),
		Method:  paymux.PaymentMethod{Type: paymux.MethodCard, Token: "https://try.access.worldpay.com/sessions/eyJoc2Vzc2lvbiI6InNjcnViYmVkIn0"},
		Capture: paymux.CaptureManual,
	}
}

// classify mirrors the orchestrator: the table row for Code, then for
// DeclineCode, else the kind's default.
func classify(table paymux.DecisionTable, err error) (paymux.Kind, paymux.Decision, string) {
	var pe *paymux.ProviderError
	if !errors.As(err, &pe) {
		return paymux.KindOutcomeUnknown, paymux.DecisionStop, ""
	}
	for _, c := range []string{pe.Code, pe.DeclineCode} {
		if row, ok := table.Lookup("worldpay", paymux.OpAuthorize, c); ok {
			return row.Kind, row.Decision, c
		}
	}
	return pe.Kind, paymux.DefaultDecision(pe.Kind), pe.Code
}

func TestDecisionTableFromRecordedResponses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file     string
		status   paymux.Status // on success
		kind     paymux.Kind
		decision paymux.Decision
	}{
		{"authorized.json", paymux.StatusAuthorized, 0, 0},
		{"sent-for-settlement.json", paymux.StatusCaptured, 0, 0},
		{"3ds-device-data-required.json", paymux.StatusRequiresAction, 0, 0},
		{"3ds-challenged.json", paymux.StatusRequiresAction, 0, 0},
		{"refused-51.json", "", paymux.KindSoftDecline, paymux.DecisionStop},
		{"refused-43.json", "", paymux.KindHardDecline, paymux.DecisionStop},
		{"refused-91.json", "", paymux.KindSoftDecline, paymux.DecisionFailover},
		{"refused-5-advice-03.json", "", paymux.KindHardDecline, paymux.DecisionStop},
		{"refused-unknown-code.json", "", paymux.KindHardDecline, paymux.DecisionStop},
		{"fraud-high-risk.json", "", paymux.KindHardDecline, paymux.DecisionStop},
		{"400-body-does-not-match-schema.json", "", paymux.KindInvalidRequest, paymux.DecisionStop},
		{"401-access-denied.json", "", paymux.KindAuthentication, paymux.DecisionFailover},
		{"429-too-many-requests.json", "", paymux.KindRateLimited, paymux.DecisionRetry},
		{"500-internal-error.json", "", paymux.KindOutcomeUnknown, paymux.DecisionStop},
		{"503-no-body.json", "", paymux.KindOutcomeUnknown, paymux.DecisionStop},
	} {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			p := replay(t, tc.file)
			res, err := p.Authorize(context.Background(), req())
			if tc.status != "" {
				if err != nil || res.Status != tc.status {
					t.Fatalf("got %+v, %v", res, err)
				}
				if tc.status == paymux.StatusRequiresAction && (res.NextAction == nil || res.NextAction.RedirectURL == "") {
					t.Fatalf("no next action: %+v", res)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, got %+v", res)
			}
			k, d, code := classify(p.DecisionTable(), err)
			if k != tc.kind || d != tc.decision {
				t.Fatalf("code %q: kind %v decision %v, want %v %v (%v)", code, k, d, tc.kind, tc.decision, err)
			}
			if paymux.KindOf(err) != tc.kind {
				t.Fatalf("error kind %v, want %v", paymux.KindOf(err), tc.kind)
			}
		})
	}
}

// The recovery query of the older Card Payments API answers HAL _links
// (payments:settle, ...). The adapter follows them as well.
func TestRecoveryLinksV6(t *testing.T) {
	t.Parallel()
	var got []string
	raw, _ := os.ReadFile(filepath.Join("testdata", "worldpay", "recovery-v6-links.json"))
	var rec recorded
	json.Unmarshal(raw, &rec)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.Path)
		if r.Method == http.MethodGet {
			if r.URL.Query().Get("transactionRef") != "ref-1" || r.URL.Query().Get("entity") != "default" {
				http.Error(w, "bad query", 400)
				return
			}
			w.Write(rec.Body)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		w.Write([]byte(`{"outcome":"sentForSettlement"}`))
	}))
	defer srv.Close()
	body := strings.ReplaceAll(string(rec.Body), "https://try.access.worldpay.com", srv.URL)
	rec.Body = json.RawMessage(body)
	p, _ := worldpay.New(worldpay.Config{Username: "u", Password: "p", Entity: "default", BaseURL: srv.URL, HTTPClient: srv.Client()})
	res, err := p.Capture(context.Background(), &paymux.CaptureRequest{Reference: "ref-1", ProviderKey: "k", Amount: paymux.NewMoney(100, "GBP")})
	if err != nil || res.Status != paymux.StatusCaptured {
		t.Fatalf("%+v %v", res, err)
	}
	want := []string{"GET /payments/events", "POST /payments/settlements/partials/eyJrIjoiazNhYjYzMiJ9"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("requests %v, want %v", got, want)
	}
}

// Invariant 2: no row of the table lets an unknown outcome be retried or
// cascade, and nothing classified OutcomeUnknown is anything but Stop.
func TestUnknownOutcomeNeverRetriedOrCascaded(t *testing.T) {
	t.Parallel()
	p, _ := worldpay.New(worldpay.Config{Username: "u", Password: "p", Entity: "e"})
	for k, c := range p.DecisionTable() {
		if c.Kind == paymux.KindOutcomeUnknown && c.Decision != paymux.DecisionStop {
			t.Errorf("%+v: %v for an unknown outcome", k, c.Decision)
		}
		if c.Decision == paymux.DecisionRetry && c.Kind != paymux.KindUnavailable && c.Kind != paymux.KindRateLimited {
			t.Errorf("%+v: Retry for %v, which may have been processed", k, c.Kind)
		}
		if c.Decision == paymux.DecisionFailover && (c.Kind == paymux.KindOutcomeUnknown || c.Kind == paymux.KindConflict) {
			t.Errorf("%+v: Failover for %v", k, c.Kind)
		}
	}
}

// Only a connection never made is Unavailable; a cut after sending is
// unknown.
func TestTransportClassification(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: connection refused
	p, _ := worldpay.New(worldpay.Config{Username: "u", Password: "p", Entity: "default", BaseURL: "http://" + addr})
	_, err = p.Authorize(context.Background(), req())
	if paymux.KindOf(err) != paymux.KindUnavailable {
		t.Fatalf("refused: %v", err)
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	}))
	defer srv.Close()
	p, _ = worldpay.New(worldpay.Config{Username: "u", Password: "p", Entity: "default", BaseURL: srv.URL, HTTPClient: srv.Client()})
	_, err = p.Authorize(context.Background(), req())
	if paymux.KindOf(err) != paymux.KindOutcomeUnknown {
		t.Fatalf("cut: %v", err)
	}
}

func TestRequestOnTheWire(t *testing.T) {
	t.Parallel()
	var body map[string]any
	var hdr http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr = r.Header.Clone()
		json.NewDecoder(r.Body).Decode(&body)
		w.WriteHeader(201)
		w.Write([]byte(`{"outcome":"authorized"}`))
	}))
	defer srv.Close()
	p, _ := worldpay.New(worldpay.Config{Username: "u", Password: "p", Entity: "ent1", BaseURL: srv.URL, HTTPClient: srv.Client(), Narrative: "SHOP"})
	r := req()
	r.Method.Token += "#Jane%20Doe"
	r.Capture = paymux.CaptureAutomatic
	if _, err := p.Authorize(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if hdr.Get("WP-Api-Version") != "2024-06-01" || !strings.HasPrefix(hdr.Get("Authorization"), "Basic ") || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("headers %v", hdr)
	}
	b, _ := json.Marshal(body)
	for _, want := range []string{
		`"transactionReference":"pmx_0123456789abcdef0123456789abcdef01234567"`,
		`"merchant":{"entity":"ent1"}`,
		`"paymentInstrument":{"cardHolderName":"Jane Doe","sessionHref":"https://try.access.worldpay.com/sessions/eyJoc2Vzc2lvbiI6InNjcnViYmVkIn0","type":"checkout"}`,
		`"value":{"amount":250,"currency":"GBP"}`,
		`"settlement":{"auto":true}`,
		`"narrative":{"line1":"SHOP"}`,
		`"method":"card"`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("body %s lacks %s", b, want)
		}
	}
}

// With only a full-settlement link and no record of the authorised amount,
// a capture is refused rather than settling more than asked.
func TestCaptureNeverSettlesMoreThanAsked(t *testing.T) {
	t.Parallel()
	posts := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			posts++
		}
		w.Write([]byte(`{"lastEvent":"Authorized","_links":{"payments:settle":{"href":"` + "http://" + r.Host + `/payments/settlements/full/x"}}}`))
	}))
	defer srv.Close()
	p, _ := worldpay.New(worldpay.Config{Username: "u", Password: "p", Entity: "default", BaseURL: srv.URL, HTTPClient: srv.Client()})
	_, err := p.Capture(context.Background(), &paymux.CaptureRequest{Reference: "ref-1", ProviderKey: "k", Amount: paymux.NewMoney(100, "GBP")})
	if paymux.KindOf(err) != paymux.KindConflict || posts != 0 {
		t.Fatalf("err %v, posts %d", err, posts)
	}
}
