package worldpaytest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/providertest"
	"github.com/paymux/paymux/providers/worldpay"
	"github.com/paymux/paymux/providers/worldpay/worldpaytest"
)

type bundle struct {
	faults *providertest.Faults
	sink   chan *http.Request
	bodies chan []byte
}

func setup(t *testing.T) (*worldpaytest.Server, *bundle) {
	t.Helper()
	b := &bundle{faults: &providertest.Faults{}, bodies: make(chan []byte, 64)}
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		p, _ := worldpay.New(worldpay.Config{Username: "u", Password: "p", Entity: "e", EventSecrets: map[string]paymux.Secret{"1": "worldpay-test-secret"}})
		if _, err := p.ParseWebhook(r.Context(), r.Header, body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		b.bodies <- body
	}))
	t.Cleanup(sink.Close)
	s := worldpaytest.NewServer(worldpaytest.Options{Faults: b.faults, EventSink: sink.URL})
	t.Cleanup(s.Close)
	return s, b
}

func post(t *testing.T, s *worldpaytest.Server, url string, body any) (int, map[string]any) {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(raw))
	req.SetBasicAuth("user", "pass")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("WP-Api-Version", worldpay.APIVersion)
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func payment(ref string, amount int64, session string, name ...string) map[string]any {
	instr := map[string]string{"type": "checkout", "sessionHref": session}
	if len(name) > 0 {
		instr["cardHolderName"] = name[0]
	}
	return map[string]any{
		"transactionReference": ref,
		"merchant":             map[string]string{"entity": "default"},
		"instruction": map[string]any{
			"method": "card", "narrative": map[string]string{"line1": "shop"},
			"value":             map[string]any{"currency": "EUR", "amount": amount},
			"paymentInstrument": instr,
		},
	}
}

func TestRepeatedTransactionReferenceNeverChargesTwice(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	session := s.URL() + "/sessions/abc"
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, out := post(t, s, s.URL()+"/api/payments", payment("ref-1", 500, session)); code != http.StatusCreated || out["outcome"] != "authorized" {
				t.Errorf("%d %v", code, out)
			}
		}()
	}
	wg.Wait()
	if n := s.Charges("ref-1"); n != 1 {
		t.Fatalf("charges = %d", n)
	}
	if code, out := post(t, s, s.URL()+"/api/payments", payment("ref-1", 501, session)); code != http.StatusConflict {
		t.Fatalf("different payment, same reference: %d %v", code, out)
	}
}

func TestPartialSettlementReferenceIsReplayed(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	_, out := post(t, s, s.URL()+"/api/payments", payment("ref-2", 1000, s.URL()+"/sessions/x"))
	acts := out["_actions"].(map[string]any)
	href := acts["partiallySettlePayment"].(map[string]any)["href"].(string)
	body := map[string]any{"value": map[string]any{"currency": "EUR", "amount": 300}, "reference": "cap-1"}
	for i := 0; i < 3; i++ {
		if code, out := post(t, s, href, body); code != http.StatusAccepted {
			t.Fatalf("%d %v", code, out)
		}
	}
	snap, _ := s.Payment("ref-2")
	if snap.Captured != 300 {
		t.Fatalf("captured %d", snap.Captured)
	}
}

func TestOutageRefusesConnections(t *testing.T) {
	t.Parallel()
	s, b := setup(t)
	b.faults.Set(providertest.FaultPlan{Outage: true})
	req, _ := http.NewRequest(http.MethodGet, s.URL()+"/payments/events", nil)
	_, err := s.Client().Do(req)
	if err == nil {
		t.Fatal("outage answered")
	}
}

func TestEventsAreSignedAndDelivered(t *testing.T) {
	t.Parallel()
	s, b := setup(t)
	post(t, s, s.URL()+"/api/payments", payment("ref-3", 1000, s.URL()+"/sessions/x", worldpaytest.NameRefused))
	select {
	case body := <-b.bodies:
		var ev struct {
			EventDetails struct{ Type, TransactionReference string }
		}
		json.Unmarshal(body, &ev)
		if ev.EventDetails.Type != "refused" || ev.EventDetails.TransactionReference != "ref-3" {
			t.Fatalf("event %s", body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event delivered")
	}
	if s.Charges("ref-3") != 0 {
		t.Fatal("a refusal charged")
	}
}

func TestAuthenticationRequired(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, s.URL()+"/api/payments", bytes.NewReader([]byte("{}")))
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d", resp.StatusCode)
	}
}
