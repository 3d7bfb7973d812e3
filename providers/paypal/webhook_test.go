package paypal_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/paypal"
)

type vector struct {
	ID        string            `json:"id"`
	WebhookID string            `json:"webhook_id"`
	CertPEM   string            `json:"cert_pem"`
	Headers   map[string]string `json:"headers"`
	Body      string            `json:"body"`
	Timestamp time.Time         `json:"timestamp"`
	Expected  string            `json:"expected"`
}

// staticCert serves one PEM for any allow-listed URL and counts fetches.
type staticCert struct {
	pem   []byte
	calls int
}

func (s *staticCert) FetchCert(context.Context, string) ([]byte, error) {
	s.calls++
	return s.pem, nil
}

// TestWebhookVectors replays PayPal's own SDK vectors. Their certificates
// expired long ago, so the clock is pinned to each vector's timestamp.
func TestWebhookVectors(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("testdata/paypal/vectors/paypal-*.json")
	if len(files) != 5 {
		t.Fatalf("want the 5 paypal vectors, got %d", len(files))
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
			fetch := &staticCert{pem: []byte(v.CertPEM)}
			at := v.Timestamp
			p, err := paypal.New(paypal.Config{
				ClientID: "id", ClientSecret: "secret", WebhookID: v.WebhookID,
				Clock: func() time.Time { return at }, CertFetcher: fetch,
			})
			if err != nil {
				t.Fatal(err)
			}
			h := http.Header{}
			for k, val := range v.Headers {
				h.Set(k, val)
			}
			events, err := p.ParseWebhook(context.Background(), h, []byte(v.Body))
			switch v.Expected {
			case "valid":
				if err != nil {
					t.Fatalf("valid vector refused: %v", err)
				}
				if len(events) != 1 || events[0].ID == "" {
					t.Fatalf("events %+v", events)
				}
				// Cached: a second delivery does not fetch again.
				if _, err := p.ParseWebhook(context.Background(), h, []byte(v.Body)); err != nil || fetch.calls != 1 {
					t.Fatalf("second parse: %v, %d fetches", err, fetch.calls)
				}
			case "invalid":
				if !errors.Is(err, paymux.ErrWebhookBadSignature) {
					t.Fatalf("invalid vector: %v, want ErrWebhookBadSignature", err)
				}
			default:
				t.Fatalf("unknown expectation %q", v.Expected)
			}
			// The same vector on today's clock: the certificate expired.
			p2, _ := paypal.New(paypal.Config{ClientID: "id", ClientSecret: "secret", WebhookID: v.WebhookID, CertFetcher: fetch, WebhookTolerance: -1})
			if _, err := p2.ParseWebhook(context.Background(), h, []byte(v.Body)); !errors.Is(err, paymux.ErrWebhookBadSignature) {
				t.Fatalf("expired certificate accepted: %v", err)
			}
		})
	}
}

func TestWebhookCertURLAllowList(t *testing.T) {
	t.Parallel()
	p, srv := setup(t)
	body := srv.WebhookBody("WH-1", paymux.EventCaptured, "ORDER1", "key-1", paymux.NewMoney(500, "EUR"))
	for _, bad := range []string{
		"http://api.sandbox.paypal.com/v1/notifications/certs/X", // not https
		"https://paypal.com.evil.example/cert",                   // suffix trick
		"https://evilpaypal.com/cert",                            // not a subdomain
		"https://user@api.paypal.com/cert",                       // userinfo
		"https://169.254.169.254/latest/meta-data",               // internal address
	} {
		h := srv.SignWebhook(body, time.Time{})
		h.Set(paypal.HeaderCertURL, bad)
		if _, err := p.ParseWebhook(context.Background(), h, body); !errors.Is(err, paymux.ErrWebhookBadSignature) {
			t.Errorf("%s: %v, want ErrWebhookBadSignature", bad, err)
		}
	}
	h := srv.SignWebhook(body, time.Time{})
	h.Set(paypal.HeaderAuthAlgo, "SHA1withRSA")
	if _, err := p.ParseWebhook(context.Background(), h, body); !errors.Is(err, paymux.ErrWebhookBadSignature) {
		t.Errorf("SHA1withRSA: %v", err)
	}
}

func TestWebhookOnlineVerification(t *testing.T) {
	t.Parallel()
	p, srv := setup(t, func(c *paypal.Config) { c.VerifyMode = paypal.VerifyOnline })
	// Whitespace and 1.0 survive only if the raw bytes are sent.
	body := []byte(`{"id":"WH-ONLINE-1", "event_version":"1.0","event_type":"PAYMENT.CAPTURE.COMPLETED","create_time":"2026-01-02T03:04:05Z","resource":{"id":"CAP1","status":"COMPLETED","amount":{"currency_code":"EUR","value":"10.00"},"custom_id":"key-9","supplementary_data":{"related_ids":{"order_id":"ORD9"}},"rate":1.0}}`)
	h := srv.SignWebhook(body, time.Time{})
	events, err := p.ParseWebhook(context.Background(), h, body)
	if err != nil {
		t.Fatalf("online verification: %v", err)
	}
	ev := events[0]
	if ev.Type != paymux.EventCaptured || ev.ProviderRef != "ORD9" || ev.PaymentKey != "key-9" || ev.Amount != paymux.NewMoney(1000, "EUR") {
		t.Fatalf("event %+v", ev)
	}
	tampered := []byte(strings.Replace(string(body), "10.00", "99.00", 1))
	if _, err := p.ParseWebhook(context.Background(), h, tampered); !errors.Is(err, paymux.ErrWebhookBadSignature) {
		t.Fatalf("tampered body online: %v", err)
	}
}

func TestWebhookNormalise(t *testing.T) {
	t.Parallel()
	p, srv := setup(t)
	eur := paymux.NewMoney(1234, "EUR")
	for typ, want := range map[paymux.EventType]paymux.EventType{
		paymux.EventCaptured:      paymux.EventCaptured,
		paymux.EventAuthorized:    paymux.EventAuthorized,
		paymux.EventRefunded:      paymux.EventRefunded,
		paymux.EventVoided:        paymux.EventVoided,
		paymux.EventFailed:        paymux.EventFailed,
		paymux.EventDisputeOpened: paymux.EventDisputeOpened,
	} {
		body := srv.WebhookBody("", typ, "ORDER7", "key-7", eur)
		events, err := p.ParseWebhook(context.Background(), srv.SignWebhook(body, time.Time{}), body)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if got := events[0]; got.Type != want || got.Amount != eur || got.Provider != "paypal" {
			t.Errorf("%s: %+v", typ, got)
		}
	}
	// Order approval: the payment must be synced (authorised or captured).
	body := []byte(`{"id":"WH-APP","event_type":"CHECKOUT.ORDER.APPROVED","create_time":"2026-01-02T03:04:05Z","resource":{"id":"ORDER8","status":"APPROVED","purchase_units":[{"custom_id":"key-8","amount":{"currency_code":"USD","value":"5.00"}}]}}`)
	events, err := p.ParseWebhook(context.Background(), srv.SignWebhook(body, time.Time{}), body)
	if err != nil || events[0].Type != paymux.EventActionRequired || events[0].ProviderRef != "ORDER8" || events[0].PaymentKey != "key-8" {
		t.Fatalf("approved: %+v %v", events, err)
	}
	if ref, ok := p.HintReference(nil, body); !ok || ref != "ORDER8" {
		t.Fatalf("HintReference = %q %v", ref, ok)
	}
	// Verified but not an event: malformed.
	bad := []byte(`{"nope":true}`)
	if _, err := p.ParseWebhook(context.Background(), srv.SignWebhook(bad, time.Time{}), bad); !errors.Is(err, paymux.ErrWebhookMalformed) {
		t.Fatalf("malformed: %v", err)
	}
}

func FuzzParseWebhook(f *testing.F) {
	files, _ := filepath.Glob("testdata/paypal/vectors/paypal-*.json")
	for _, file := range files {
		raw, _ := os.ReadFile(file)
		var v vector
		_ = json.Unmarshal(raw, &v)
		f.Add([]byte(v.Body), v.Headers[paypal.HeaderTransmissionSig], v.Headers["PAYPAL-TRANSMISSION-TIME"])
	}
	f.Add([]byte(`{}`), "", "")
	at := time.Date(2015, 5, 18, 15, 45, 13, 0, time.UTC)
	raw, _ := os.ReadFile("testdata/paypal/vectors/paypal-1.json")
	var v vector
	_ = json.Unmarshal(raw, &v)
	p, err := paypal.New(paypal.Config{
		ClientID: "id", ClientSecret: "secret", WebhookID: v.WebhookID,
		Clock: func() time.Time { return at }, CertFetcher: &staticCert{pem: []byte(v.CertPEM)},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, sig, ts string) {
		h := http.Header{}
		for k, val := range v.Headers {
			h.Set(k, val)
		}
		h.Set(paypal.HeaderTransmissionSig, sig)
		h.Set(paypal.HeaderTransmissionTime, ts)
		events, err := p.ParseWebhook(context.Background(), h, body)
		if err == nil && len(events) != 1 {
			t.Fatalf("accepted with %d events", len(events))
		}
		if err != nil && !errors.Is(err, paymux.ErrWebhookBadSignature) && !errors.Is(err, paymux.ErrWebhookNotSigned) &&
			!errors.Is(err, paymux.ErrWebhookTooOld) && !errors.Is(err, paymux.ErrWebhookMalformed) {
			t.Fatalf("unclassified error: %v", err)
		}
		// The normaliser alone must not panic either.
		_, _ = p.HintReference(h, body)
	})
}
