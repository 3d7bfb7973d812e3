package stripe_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/stripe"
	"github.com/paymux/paymux/providers/stripe/stripetest"
)

type vector struct {
	ID             string            `json:"id"`
	Secret         string            `json:"secret"`
	Headers        map[string]string `json:"headers"`
	Body           string            `json:"body"`
	EvaluationTime int64             `json:"evaluation_time"`
	Tolerance      int64             `json:"tolerance_seconds"`
	Expected       string            `json:"expected"`
}

func webhookProvider(t *testing.T, now time.Time, secrets ...paymux.Secret) *stripe.Provider {
	t.Helper()
	cfg := stripe.Config{SecretKey: "sk_test_webhooks", Clock: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler)}
	if len(secrets) > 0 {
		cfg.WebhookSecret, cfg.WebhookSecrets = secrets[0], secrets[1:]
	}
	p, err := stripe.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestWebhookVectors checks every Stripe vector from the shared set, at its
// evaluation time.
func TestWebhookVectors(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("testdata/stripe/vectors/stripe-*.json")
	if len(files) != 7 {
		t.Fatalf("want the 7 shared Stripe vectors, found %d", len(files))
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v vector
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatal(err)
		}
		t.Run(v.ID, func(t *testing.T) {
			t.Parallel()
			if v.Tolerance != 300 {
				t.Fatalf("vector tolerance %d", v.Tolerance)
			}
			p := webhookProvider(t, time.Unix(v.EvaluationTime, 0), paymux.Secret(v.Secret))
			h := http.Header{}
			for k, val := range v.Headers {
				h.Set(k, val)
			}
			evs, err := p.ParseWebhook(context.Background(), h, []byte(v.Body))
			switch v.Expected {
			case "valid":
				if err != nil {
					t.Fatalf("valid vector refused: %v", err)
				}
				if len(evs) != 1 || evs[0].ID != "evt_123" || evs[0].Type != paymux.EventOther {
					t.Fatalf("events %+v", evs)
				}
			case "invalid":
				if err == nil {
					t.Fatal("invalid vector accepted")
				}
				if !errors.Is(err, paymux.ErrWebhookBadSignature) && !errors.Is(err, paymux.ErrWebhookTooOld) {
					t.Fatalf("unexpected error class: %v", err)
				}
			default:
				t.Fatalf("expected %q", v.Expected)
			}
		})
	}
}

func TestWebhookVerification(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"id":"evt_1","object":"event","type":"payment_intent.succeeded","api_version":"2099-01-01.future","created":1800000000,"data":{"object":{"id":"pi_1","object":"payment_intent","amount":500,"amount_received":500,"currency":"eur","metadata":{"paymux_key":"order-9"},"brand_new_field":{"x":1}}}}`)
	p := webhookProvider(t, now, "whsec_new", "whsec_old")
	sign := func(at time.Time, secrets ...string) http.Header {
		h := http.Header{}
		h.Set(stripe.SignatureHeader, stripe.SignHeader(at, body, secrets...))
		return h
	}
	cases := []struct {
		name   string
		header http.Header
		body   []byte
		want   error
	}{
		{"current secret", sign(now, "whsec_new"), body, nil},
		{"rolled secret", sign(now, "whsec_old"), body, nil},
		{"one of several v1", sign(now, "whsec_unknown", "whsec_old"), body, nil},
		{"future within tolerance", sign(now.Add(4*time.Minute), "whsec_new"), body, nil},
		{"no header", http.Header{}, body, paymux.ErrWebhookNotSigned},
		{"wrong secret", sign(now, "whsec_wrong"), body, paymux.ErrWebhookBadSignature},
		{"tampered", sign(now, "whsec_new"), append([]byte(" "), body...), paymux.ErrWebhookBadSignature},
		{"too old", sign(now.Add(-301*time.Second), "whsec_new"), body, paymux.ErrWebhookTooOld},
		{"too far ahead", sign(now.Add(6*time.Minute), "whsec_new"), body, paymux.ErrWebhookTooOld},
		{"garbage header", http.Header{"Stripe-Signature": {"nonsense"}}, body, paymux.ErrWebhookBadSignature},
		{"bad timestamp", http.Header{"Stripe-Signature": {"t=abc,v1=00"}}, body, paymux.ErrWebhookBadSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			evs, err := p.ParseWebhook(context.Background(), c.header, c.body)
			if c.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				ev := evs[0]
				if ev.Type != paymux.EventCaptured || ev.ProviderRef != "pi_1" || ev.PaymentKey != "order-9" || ev.Amount != paymux.NewMoney(500, "EUR") || !ev.Success {
					t.Fatalf("event %+v", ev)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if strings.Contains(err.Error(), "whsec_") {
				t.Fatalf("error shows a secret: %v", err)
			}
		})
	}
	// Signed but not an event: malformed, after verification.
	junk := []byte(`{"object":"customer"}`)
	h := http.Header{}
	h.Set(stripe.SignatureHeader, stripe.SignHeader(now, junk, "whsec_new"))
	if _, err := p.ParseWebhook(context.Background(), h, junk); !errors.Is(err, paymux.ErrWebhookMalformed) {
		t.Fatalf("junk: %v", err)
	}
	// No secret configured: nothing verifies.
	if _, err := webhookProvider(t, now).ParseWebhook(context.Background(), sign(now, "whsec_new"), body); !errors.Is(err, paymux.ErrWebhookBadSignature) {
		t.Fatalf("no secret: %v", err)
	}
}

// TestWebhooksFromFake runs payments through the fake and normalises every
// webhook it signed, as an endpoint would receive them.
func TestWebhooksFromFake(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	ctx := context.Background()
	auto := b.request(t, "pm_card_visa", 3000, paymux.CaptureAutomatic)
	r1, err := p.Authorize(ctx, auto)
	if err != nil {
		t.Fatal(err)
	}
	for i, amt := range []int64{1000, 500} {
		if _, err := p.Refund(ctx, &paymux.RefundRequest{Reference: r1.Reference, ProviderKey: auto.PaymentKey + "/r/" + string(rune('a'+i)), Amount: paymux.NewMoney(amt, "EUR")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.srv.TriggerDispute(r1.Reference); err != nil {
		t.Fatal(err)
	}
	manual := b.request(t, "pm_card_visa", 800, paymux.CaptureManual)
	r2, err := p.Authorize(ctx, manual)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Void(ctx, &paymux.VoidRequest{Reference: r2.Reference, ProviderKey: manual.PaymentKey + "/void"}); err != nil {
		t.Fatal(err)
	}
	declined := b.request(t, "pm_card_chargeDeclinedInsufficientFunds", 800, paymux.CaptureAutomatic)
	_, _ = p.Authorize(ctx, declined)
	tds := b.request(t, "pm_card_authenticationRequired", 800, paymux.CaptureAutomatic)
	if _, err := p.Authorize(ctx, tds); err != nil {
		t.Fatal(err)
	}

	var got []string
	for _, body := range b.srv.Events() {
		h := b.srv.Sign(time.Now(), body)
		evs, err := p.ParseWebhook(ctx, h, body)
		if err != nil {
			t.Fatalf("fake webhook refused: %v\n%s", err, body)
		}
		ev := evs[0]
		line := string(ev.Type) + " " + ev.Amount.String()
		if ev.PaymentKey != "" {
			line += " key"
		}
		if ev.ProviderRef == "" {
			t.Fatalf("no reference: %+v", ev)
		}
		if ev.Type == paymux.EventFailed {
			line += " " + ev.Code
		}
		got = append(got, line)
	}
	want := []string{
		"captured 30.00 EUR key",
		"refunded 10.00 EUR key",
		"refunded 15.00 EUR key", // the charge's running total
		"dispute_opened 15.00 EUR",
		"authorized 8.00 EUR key",
		"voided 8.00 EUR key",
		"failed 8.00 EUR insufficient_funds",
		"action_required 8.00 EUR key",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestWebhookDelivery: the fake posts signed events to a sink, one per
// state change, and they verify.
func TestWebhookDelivery(t *testing.T) {
	t.Parallel()
	type delivered struct {
		h    http.Header
		body []byte
	}
	ch := make(chan delivered, 16)
	srv := stripetest.NewServer(stripetest.Options{WebhookSink: func(h http.Header, b []byte) { ch <- delivered{h, b} }})
	defer srv.Close()
	p, err := stripe.New(stripe.Config{SecretKey: stripetest.DefaultSecretKey, WebhookSecret: stripetest.DefaultWebhookSecret,
		BaseURL: srv.URL, HTTPClient: srv.Client(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Authorize(context.Background(), &paymux.AuthorizeRequest{PaymentKey: "order-77", ProviderKey: "order-77/1",
		Amount: paymux.NewMoney(100, "EUR"), Method: paymux.PaymentMethod{Type: paymux.MethodCard, Token: "pm_card_visa"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.FlushWebhooks(context.Background()); err != nil {
		t.Fatal(err)
	}
	d := <-ch
	evs, err := p.ParseWebhook(context.Background(), d.h, d.body)
	if err != nil || evs[0].ProviderRef != res.Reference || evs[0].PaymentKey != "order-77" || evs[0].Type != paymux.EventCaptured {
		t.Fatalf("%+v %v", evs, err)
	}
	if len(ch) != 0 {
		t.Fatalf("%d extra events for one state change", len(ch))
	}
}

func FuzzParseWebhook(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	seeds, _ := filepath.Glob("testdata/stripe/vectors/*.json")
	for _, s := range seeds {
		raw, _ := os.ReadFile(s)
		var v vector
		if json.Unmarshal(raw, &v) == nil {
			f.Add(v.Headers["Stripe-Signature"], []byte(v.Body), true)
		}
	}
	f.Add("", []byte(`{"id":"evt_1","object":"event","type":"charge.refunded","data":{"object":{"object":"charge","payment_intent":{"id":"pi_1"},"amount_refunded":10,"currency":"isk"}}}`), true)
	f.Add("t=1,v1=zz,v0=00", []byte("{}"), false)
	p, err := stripe.New(stripe.Config{SecretKey: "sk_test_fuzz", WebhookSecret: "whsec_fuzz", Clock: func() time.Time { return now },
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, header string, body []byte, resign bool) {
		h := http.Header{}
		if resign {
			// Most bodies only reach the decoder when correctly signed.
			header = stripe.SignHeader(now, body, "whsec_fuzz")
		}
		h.Set(stripe.SignatureHeader, header)
		evs, err := p.ParseWebhook(context.Background(), h, body)
		if err != nil {
			for _, s := range []error{paymux.ErrWebhookNotSigned, paymux.ErrWebhookBadSignature, paymux.ErrWebhookTooOld, paymux.ErrWebhookMalformed} {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("unclassified error %v", err)
		}
		if len(evs) != 1 || evs[0].ID == "" || evs[0].Provider != "stripe" {
			t.Fatalf("events %+v", evs)
		}
	})
}
