package stripetest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/paymux/paymux/providers/providertest"
	"github.com/paymux/paymux/providers/stripe"
	"github.com/paymux/paymux/providers/stripe/stripetest"
)

type bundle struct {
	srv    *stripetest.Server
	faults *providertest.Faults
}

func setup(t *testing.T) *bundle {
	t.Helper()
	b := &bundle{faults: &providertest.Faults{}}
	b.srv = stripetest.NewServer(stripetest.Options{Faults: b.faults})
	t.Cleanup(b.srv.Close)
	return b
}

// post sends a form the way stripe-go does and decodes the JSON answer.
func (b *bundle) do(t *testing.T, method, path, key string, form url.Values) (int, http.Header, map[string]any) {
	t.Helper()
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader(form.Encode())
	} else if form != nil {
		path += "?" + form.Encode()
	}
	req, err := http.NewRequest(method, b.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+stripetest.DefaultSecretKey)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	res, err := b.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return res.StatusCode, res.Header, m
}

func intentForm(pm string, amount string) url.Values {
	return url.Values{"amount": {amount}, "currency": {"eur"}, "payment_method": {pm}, "confirm": {"true"},
		"capture_method": {"manual"}, "metadata[paymux_key]": {"order-1"}}
}

func errType(m map[string]any) (string, string) {
	e, _ := m["error"].(map[string]any)
	typ, _ := e["type"].(string)
	code, _ := e["code"].(string)
	return typ, code
}

func TestIdempotencyLikeStripe(t *testing.T) {
	t.Parallel()
	b := setup(t)
	st, _, first := b.do(t, http.MethodPost, "/v1/payment_intents", "key-1", intentForm("pm_card_visa", "1000"))
	if st != 200 || first["status"] != "requires_capture" {
		t.Fatalf("%d %v", st, first)
	}
	st, h, again := b.do(t, http.MethodPost, "/v1/payment_intents", "key-1", intentForm("pm_card_visa", "1000"))
	if st != 200 || again["id"] != first["id"] || h.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %v %v", st, again["id"], h)
	}
	st, _, other := b.do(t, http.MethodPost, "/v1/payment_intents", "key-1", intentForm("pm_card_visa", "2000"))
	if typ, _ := errType(other); st != 400 || typ != "idempotency_error" {
		t.Fatalf("mismatch: %d %v", st, other)
	}
	// Same key on another endpoint is a mismatch too.
	st, _, other = b.do(t, http.MethodPost, "/v1/refunds", "key-1", url.Values{"payment_intent": {first["id"].(string)}})
	if typ, _ := errType(other); st != 400 || typ != "idempotency_error" {
		t.Fatalf("other endpoint: %d %v", st, other)
	}
	// A decline is saved and replayed too.
	st, _, d1 := b.do(t, http.MethodPost, "/v1/payment_intents", "key-2", intentForm("pm_card_chargeDeclined", "1000"))
	st2, _, d2 := b.do(t, http.MethodPost, "/v1/payment_intents", "key-2", intentForm("pm_card_chargeDeclined", "1000"))
	if st != 402 || st2 != 402 || d1["error"].(map[string]any)["charge"] != d2["error"].(map[string]any)["charge"] {
		t.Fatalf("decline replay: %d %d", st, st2)
	}
	// Refused parameters are not saved: the fixed request may reuse the key.
	st, _, _ = b.do(t, http.MethodPost, "/v1/payment_intents", "key-3", intentForm("pm_card_visa", "-1"))
	st2, _, _ = b.do(t, http.MethodPost, "/v1/payment_intents", "key-3", intentForm("pm_card_visa", "1000"))
	if st != 400 || st2 != 200 {
		t.Fatalf("validation then fix: %d %d", st, st2)
	}
	if n := b.srv.Charges("order-1"); n != 2 {
		t.Fatalf("charges %d, want 2 (key-1 and key-3)", n)
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t)
	req, _ := http.NewRequest(http.MethodGet, b.srv.URL+"/v1/payment_intents/pi_x", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 {
		t.Fatalf("no key: %d", res.StatusCode)
	}
	st, _, m := b.do(t, http.MethodPost, "/v1/payment_intents", "k", intentForm("pm_card_nonsense", "100"))
	if _, code := errType(m); st != 400 || code != "resource_missing" {
		t.Fatalf("unknown pm: %d %v", st, m)
	}
	st, _, m = b.do(t, http.MethodGet, "/v1/payment_intents/pi_nope", "", nil)
	if _, code := errType(m); st != 404 || code != "resource_missing" {
		t.Fatalf("missing: %d %v", st, m)
	}
}

func TestSearchAndList(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i, key := range []string{`a'b`, "plain", "plain"} {
		f := intentForm("pm_card_visa", "100")
		f.Set("metadata[paymux_key]", key)
		if st, _, _ := b.do(t, http.MethodPost, "/v1/payment_intents", "k"+string(rune('0'+i)), f); st != 200 {
			t.Fatal(st)
		}
	}
	_, _, m := b.do(t, http.MethodGet, "/v1/payment_intents/search", "", url.Values{"query": {`metadata['paymux_key']:'a\'b'`}})
	if d := m["data"].([]any); len(d) != 1 {
		t.Fatalf("search: %v", m)
	}
	_, _, m = b.do(t, http.MethodGet, "/v1/payment_intents/search", "", url.Values{"query": {`metadata['paymux_key']:'plain' AND status:'requires_capture'`}})
	if d := m["data"].([]any); len(d) != 2 {
		t.Fatalf("search AND: %v", m)
	}
	_, _, m = b.do(t, http.MethodGet, "/v1/payment_intents", "", url.Values{"limit": {"2"}})
	d := m["data"].([]any)
	if len(d) != 2 || m["has_more"] != true {
		t.Fatalf("list page 1: %v", m)
	}
	last := d[1].(map[string]any)["id"].(string)
	_, _, m = b.do(t, http.MethodGet, "/v1/payment_intents", "", url.Values{"limit": {"2"}, "starting_after": {last}})
	if d := m["data"].([]any); len(d) != 1 || m["has_more"] != false {
		t.Fatalf("list page 2: %v", m)
	}
}

func TestWebhooksToURL(t *testing.T) {
	t.Parallel()
	got := make(chan *http.Request, 8)
	bodies := make(chan []byte, 8)
	hook := http.NewServeMux()
	hook.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r
		bodies <- b
	})
	recv := newTestServer(t, hook)
	now := time.Unix(1_800_000_000, 0)
	srv := stripetest.NewServer(stripetest.Options{WebhookURL: recv + "/hook", Clock: func() time.Time { return now }})
	defer srv.Close()
	b := &bundle{srv: srv}
	b.do(t, http.MethodPost, "/v1/payment_intents", "k", intentForm("pm_card_visa", "100"))
	if err := srv.FlushWebhooks(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, body := <-got, <-bodies
	want := stripe.SignHeader(now, body, stripetest.DefaultWebhookSecret)
	if r.Header.Get("Stripe-Signature") != want || !strings.Contains(string(body), `"payment_intent.amount_capturable_updated"`) {
		t.Fatalf("header %q body %s", r.Header.Get("Stripe-Signature"), body)
	}
}

func TestFaultsAtTheFake(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.faults.Set(providertest.FaultPlan{RateLimit: true})
	st, _, m := b.do(t, http.MethodPost, "/v1/payment_intents", "k1", intentForm("pm_card_visa", "100"))
	if _, code := errType(m); st != 429 || code != "rate_limit" {
		t.Fatalf("%d %v", st, m)
	}
	b.faults.Set(providertest.FaultPlan{ServerErrorRate: 1})
	st, _, m = b.do(t, http.MethodPost, "/v1/payment_intents", "k1", intentForm("pm_card_visa", "100"))
	if typ, _ := errType(m); st != 500 || typ != "api_error" {
		t.Fatalf("%d %v", st, m)
	}
	b.faults.Set(providertest.FaultPlan{})
	if st, _, _ := b.do(t, http.MethodPost, "/v1/payment_intents", "k1", intentForm("pm_card_visa", "100")); st != 200 {
		t.Fatalf("after faults: %d", st)
	}
	if b.srv.Charges("order-1") != 1 {
		t.Fatal("faults moved money")
	}
	b.faults.Set(providertest.FaultPlan{Outage: true})
	if _, err := b.srv.Client().Get(b.srv.URL + "/v1/payment_intents"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("outage through Client: %v", err)
	}
	res, err := http.Get(b.srv.URL + "/v1/payment_intents")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 503 || res.Header.Get("Stripe-Should-Retry") != "true" {
		t.Fatalf("outage for other clients: %d", res.StatusCode)
	}
}
