package adyen_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/adyen"
	"github.com/paymux/paymux/providers/adyen/adyentest"
)

// vector is one file of testdata/adyen/vectors (copied from
// /work/shared/webhook-vectors).
type vector struct {
	ID               string            `json:"id"`
	Scheme           string            `json:"scheme"`
	HMACKeyHex       string            `json:"hmac_key_hex"`
	Headers          map[string]string `json:"headers"`
	Body             *string           `json:"body"`
	NotificationItem json.RawMessage   `json:"notification_item"`
	PayloadToSign    string            `json:"payload_to_sign"`
	Signature        string            `json:"signature"`
	Expected         string            `json:"expected"`
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	files, err := filepath.Glob("testdata/adyen/vectors/adyen-*.json")
	if err != nil || len(files) != 12 {
		t.Fatalf("want the 12 adyen vectors, found %d (%v)", len(files), err)
	}
	var vs []vector
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v vector
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		vs = append(vs, v)
	}
	return vs
}

func providerWithKey(t *testing.T, hexKey string) *adyen.Provider {
	t.Helper()
	p, err := adyen.New(adyen.Config{APIKey: testAPIKey, MerchantAccount: "m", HMACKey: paymux.Secret(hexKey)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// envelope wraps one NotificationRequestItem, byte for byte, in the body
// Adyen posts.
func envelope(item []byte) []byte {
	return []byte(`{"live":"false","notificationItems":[{"NotificationRequestItem":` + string(item) + `}]}`)
}

// TestWebhookVectors checks every Adyen vector against ParseWebhook (and the
// exported verifiers) with the expected outcome. adyen-10 is the legacy
// hosted-payment-page signing, not a webhook: TestLegacyHPPSigningVector.
func TestWebhookVectors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, v := range loadVectors(t) {
		t.Run(v.ID, func(t *testing.T) {
			t.Parallel()
			p := providerWithKey(t, v.HMACKeyHex)
			switch {
			case strings.HasPrefix(v.Scheme, "standard-notification-item-hmac"):
				item := v.NotificationItem
				if v.Body != nil {
					item = json.RawMessage(*v.Body)
				}
				var it adyen.NotificationRequestItem
				if err := json.Unmarshal(item, &it); err != nil {
					t.Fatal(err)
				}
				if got := it.SigningString(); got != v.PayloadToSign {
					t.Errorf("signing string %q, want %q", got, v.PayloadToSign)
				}
				events, err := p.ParseWebhook(ctx, http.Header{}, envelope(item))
				if v.Expected == "valid" {
					if err != nil {
						t.Fatalf("valid vector refused: %v", err)
					}
					if len(events) != 1 || events[0].ID == "" {
						t.Fatalf("events %+v", events)
					}
				} else if !errors.Is(err, paymux.ErrWebhookBadSignature) {
					t.Fatalf("invalid vector: err = %v, want ErrWebhookBadSignature", err)
				}
			case strings.HasPrefix(v.Scheme, "raw-body-hmac"):
				body := []byte(*v.Body)
				sig := v.Headers["HmacSignature"]
				key := mustHex(t, v.HMACKeyHex)
				if got := adyen.VerifyHMACPayload(key, body, sig); got != (v.Expected == "valid") {
					t.Fatalf("VerifyHMACPayload = %v, want %s", got, v.Expected)
				}
				h := http.Header{}
				h.Set("HmacSignature", sig)
				events, err := p.ParseWebhook(ctx, h, body)
				switch {
				case v.Expected == "invalid":
					if !errors.Is(err, paymux.ErrWebhookBadSignature) {
						t.Fatalf("err = %v, want ErrWebhookBadSignature", err)
					}
				case !json.Valid(body):
					// adyen-7: the signature holds, but the body is not
					// JSON, so there is nothing to apply.
					if !errors.Is(err, paymux.ErrWebhookMalformed) {
						t.Fatalf("err = %v, want ErrWebhookMalformed", err)
					}
				default:
					if err != nil || len(events) != 1 || events[0].Type != paymux.EventOther {
						t.Fatalf("Balance Platform webhook: %+v, %v", events, err)
					}
				}
				// One changed byte breaks it.
				if v.Expected == "valid" {
					tampered := append([]byte(nil), body...)
					tampered[len(tampered)/2] ^= 1
					if _, err := p.ParseWebhook(ctx, h, tampered); !errors.Is(err, paymux.ErrWebhookBadSignature) {
						t.Errorf("tampered body: %v", err)
					}
				}
			case strings.HasPrefix(v.Scheme, "legacy HPP"):
				t.Skip("not a webhook: TestLegacyHPPSigningVector")
			default:
				t.Fatalf("unknown scheme %q", v.Scheme)
			}
		})
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b := make([]byte, len(s)/2)
	for i := range b {
		var x byte
		for _, c := range s[2*i : 2*i+2] {
			x <<= 4
			switch {
			case c >= '0' && c <= '9':
				x |= byte(c - '0')
			case c >= 'a' && c <= 'f':
				x |= byte(c - 'a' + 10)
			case c >= 'A' && c <= 'F':
				x |= byte(c - 'A' + 10)
			default:
				t.Fatalf("bad hex %q", s)
			}
		}
		b[i] = x
	}
	return b
}

// hppSigningString is the legacy hosted-payment-page scheme: sorted keys,
// then values, joined by ':', with '\' and ':' escaped. paymux never
// receives HPP results; it lives here to show where escaping belongs.
func hppSigningString(fields map[string]string) string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	esc := strings.NewReplacer(`\`, `\\`, `:`, `\:`)
	parts := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		parts = append(parts, esc.Replace(k))
	}
	for _, k := range keys {
		parts = append(parts, esc.Replace(fields[k]))
	}
	return strings.Join(parts, ":")
}

// TestLegacyHPPSigningVector: adyen-10 is not a webhook. It checks the
// escaping rules of the old HPP signing, and that the notification verifier
// does not apply them (adyen-6 shows the other side).
func TestLegacyHPPSigningVector(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("testdata/adyen/vectors/adyen-10.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vector
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	got := hppSigningString(map[string]string{
		"countryCode": "NL", "currencyCode": "EUR", "merchantAccount": "MagentoMerchantTest2",
		"merchantReference": "TEST-PAYMENT-2017-02-01-14:02:05", "paymentAmount": "199",
		"sessionValidity": "2017-02-02T14:02:05+01:00", "skinCode": "PKz2KML1",
	})
	if got != v.PayloadToSign {
		t.Fatalf("HPP signing string %q, want %q", got, v.PayloadToSign)
	}
	sig, err := adyen.Sign(v.HMACKeyHex, []byte(got))
	if err != nil || sig != v.Signature {
		t.Fatalf("HPP signature %q (%v), want %q", sig, err, v.Signature)
	}

	// adyen-6 signed with the HPP escaping must not verify as a notification.
	raw6, _ := os.ReadFile("testdata/adyen/vectors/adyen-6.json")
	var v6 vector
	if err := json.Unmarshal(raw6, &v6); err != nil {
		t.Fatal(err)
	}
	var it adyen.NotificationRequestItem
	if err := json.Unmarshal([]byte(*v6.Body), &it); err != nil {
		t.Fatal(err)
	}
	escaped := strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(it.MerchantReference)
	wrong, _ := adyen.Sign(v6.HMACKeyHex, []byte(strings.Replace(it.SigningString(), it.MerchantReference, escaped, 1)))
	it.AdditionalData["hmacSignature"] = wrong
	if adyen.VerifyNotificationItem(mustHex(t, v6.HMACKeyHex), &it) {
		t.Fatal("an HPP-escaped signature verified as a notification signature")
	}
}

// notification builds a standard webhook body, signed by the fake.
func notification(srv *adyentest.Server, it adyentest.Item) []byte {
	_, body := srv.SignedItem(it)
	return body
}

func TestWebhookEventMapping(t *testing.T) {
	t.Parallel()
	srv := adyentest.NewServer(adyentest.Options{})
	t.Cleanup(srv.Close)
	p := providerWithKey(t, adyentest.DefaultHMACKey)
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	pay, mod := "PAYPSP0000000001", "MODPSP0000000002"
	cases := []struct {
		code    string
		success bool
		want    paymux.EventType
		id      string
		key     string
	}{
		{"AUTHORISATION", true, paymux.EventAuthorized, pay, "order-1"},
		{"AUTHORISATION", false, paymux.EventFailed, pay + ":AUTHORISATION:false", "order-1"},
		{"CAPTURE", true, paymux.EventCaptured, mod, ""},
		{"CAPTURE", false, paymux.EventCaptureFailed, mod + ":CAPTURE:false", ""},
		{"CAPTURE_FAILED", true, paymux.EventCaptureFailed, mod + ":CAPTURE_FAILED:true", ""},
		{"REFUND", true, paymux.EventRefunded, mod, ""},
		{"REFUND", false, paymux.EventRefundFailed, mod + ":REFUND:false", ""},
		{"REFUND_FAILED", true, paymux.EventRefundFailed, mod + ":REFUND_FAILED:true", ""},
		{"CANCELLATION", true, paymux.EventVoided, mod, ""},
		{"CANCELLATION", false, paymux.EventVoided, mod + ":CANCELLATION:false", ""},
		{"CHARGEBACK", true, paymux.EventDisputeOpened, mod + ":CHARGEBACK:true", ""},
		{"REPORT_AVAILABLE", true, paymux.EventOther, mod + ":REPORT_AVAILABLE:true", ""},
	}
	for _, c := range cases {
		it := adyentest.Item{
			PSPReference: mod, OriginalReference: pay, MerchantReference: "order-1", EventCode: c.code,
			Currency: "EUR", Value: 700, Success: c.success, Reason: "Refused", EventDate: at,
		}
		if c.code == "AUTHORISATION" {
			it.PSPReference, it.OriginalReference = pay, ""
		}
		events, err := p.ParseWebhook(context.Background(), http.Header{}, notification(srv, it))
		if err != nil {
			t.Fatalf("%s/%v: %v", c.code, c.success, err)
		}
		ev := events[0]
		if ev.Type != c.want || ev.ID != c.id || ev.ProviderRef != pay || ev.Success != c.success || ev.PaymentKey != c.key {
			t.Errorf("%s/%v: got %s id %q ref %q success %v key %q", c.code, c.success, ev.Type, ev.ID, ev.ProviderRef, ev.Success, ev.PaymentKey)
		}
		if ev.Amount != paymux.NewMoney(700, "EUR") || !ev.OccurredAt.Equal(at) || ev.Provider != "adyen" || len(ev.Raw) == 0 {
			t.Errorf("%s: amount %v at %v provider %q", c.code, ev.Amount, ev.OccurredAt, ev.Provider)
		}
	}
	if ct, body := p.WebhookAck(); string(body) != "[accepted]" || !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("ack %q %q", ct, body)
	}
}

// TestWebhookOneBadItemRejectsAll: nothing of a request is applied when any
// item fails verification.
func TestWebhookOneBadItemRejectsAll(t *testing.T) {
	t.Parallel()
	srv := adyentest.NewServer(adyentest.Options{})
	t.Cleanup(srv.Close)
	p := providerWithKey(t, adyentest.DefaultHMACKey)
	good := itemOf(t, notification(srv, adyentest.Item{PSPReference: "A1", MerchantReference: "o1", EventCode: "AUTHORISATION", Currency: "EUR", Value: 1, Success: true}))
	bad := itemOf(t, notification(srv, adyentest.Item{PSPReference: "A2", MerchantReference: "o2", EventCode: "AUTHORISATION", Currency: "EUR", Value: 1, Success: true}))
	bad = []byte(strings.Replace(string(bad), `"value":1`, `"value":100000`, 1))
	unsigned := []byte(`{"pspReference":"A3","merchantAccountCode":"m","merchantReference":"o3","eventCode":"AUTHORISATION","success":"true"}`)
	two := func(a, b []byte) []byte {
		return []byte(`{"live":"false","notificationItems":[{"NotificationRequestItem":` + string(a) + `},{"NotificationRequestItem":` + string(b) + `}]}`)
	}
	ctx := context.Background()
	if ev, err := p.ParseWebhook(ctx, nil, two(good, good)); err != nil || len(ev) != 2 {
		t.Fatalf("two good items: %v %v", ev, err)
	}
	for name, c := range map[string]struct {
		body []byte
		want error
	}{
		"tampered second":    {two(good, bad), paymux.ErrWebhookBadSignature},
		"unsigned second":    {two(good, unsigned), paymux.ErrWebhookBadSignature},
		"all unsigned":       {envelope(unsigned), paymux.ErrWebhookNotSigned},
		"not JSON":           {[]byte("[accepted]"), paymux.ErrWebhookMalformed},
		"no items":           {[]byte(`{"live":"false","notificationItems":[]}`), paymux.ErrWebhookMalformed},
		"bad signature size": {[]byte(strings.Replace(string(envelope(good)), `"hmacSignature":"`, `"hmacSignature":"AAAA`, 1)), paymux.ErrWebhookBadSignature},
	} {
		ev, err := p.ParseWebhook(ctx, nil, c.body)
		if !errors.Is(err, c.want) || ev != nil {
			t.Errorf("%s: events %v err %v, want %v", name, ev, err, c.want)
		}
	}
	// Without a key nothing is trusted.
	nokey, _ := adyen.New(adyen.Config{APIKey: testAPIKey, MerchantAccount: "m"})
	if _, err := nokey.ParseWebhook(ctx, nil, envelope(good)); !errors.Is(err, paymux.ErrWebhookBadSignature) {
		t.Errorf("no key configured: %v", err)
	}
	// A signed header does not excuse a wrong item signature.
	h, body := srv.HeaderSignedItem(adyentest.Item{PSPReference: "A4", EventCode: "AUTHORISATION", Success: true}, "")
	if _, err := p.ParseWebhook(ctx, h, body); err != nil {
		t.Errorf("header-signed: %v", err)
	}
	mixed := envelope(bad)
	h2, _ := srv.HeaderSignedItem(adyentest.Item{}, "")
	h2.Set("HmacSignature", mustSign(t, mixed))
	if _, err := p.ParseWebhook(ctx, h2, mixed); !errors.Is(err, paymux.ErrWebhookBadSignature) {
		t.Errorf("header valid, item signature wrong: %v", err)
	}
}

func mustSign(t *testing.T, body []byte) string {
	t.Helper()
	s, err := adyen.Sign(adyentest.DefaultHMACKey, body)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func itemOf(t *testing.T, body []byte) []byte {
	t.Helper()
	var n adyen.Notification
	if err := json.Unmarshal(body, &n); err != nil || len(n.NotificationItems) != 1 {
		t.Fatalf("%s: %v", body, err)
	}
	return n.NotificationItems[0].Item
}

// FuzzParseWebhook: outside bytes never panic the parser, an accepted body
// always yields events with ids, and every refusal names a webhook sentinel.
func FuzzParseWebhook(f *testing.F) {
	srv := adyentest.NewServer(adyentest.Options{})
	defer srv.Close()
	f.Add("", notification(srv, adyentest.Item{PSPReference: "PSP1", MerchantReference: "o1", EventCode: "AUTHORISATION", Currency: "EUR", Value: 1000, Success: true}))
	h, body := srv.HeaderSignedItem(adyentest.Item{PSPReference: "PSP2", OriginalReference: "PSP1", EventCode: "CAPTURE", Currency: "EUR", Value: 500, Success: true}, "")
	f.Add(h.Get("HmacSignature"), body)
	f.Add("", []byte(`{"live":"false","notificationItems":[{"NotificationRequestItem":{"amount":{"value":"0"}}}]}`))
	p, err := adyen.New(adyen.Config{APIKey: testAPIKey, MerchantAccount: "m", HMACKey: testHMACKey})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, sig string, body []byte) {
		h := http.Header{}
		if sig != "" {
			h.Set("HmacSignature", sig)
		}
		events, err := p.ParseWebhook(context.Background(), h, body)
		if err != nil {
			if !errors.Is(err, paymux.ErrWebhookMalformed) && !errors.Is(err, paymux.ErrWebhookBadSignature) && !errors.Is(err, paymux.ErrWebhookNotSigned) {
				t.Fatalf("error wraps no webhook sentinel: %v", err)
			}
			if events != nil {
				t.Fatal("events with an error")
			}
			return
		}
		if len(events) == 0 {
			t.Fatal("accepted with no events")
		}
		for _, ev := range events {
			if ev.ID == "" || ev.Provider != "adyen" {
				t.Fatalf("event %+v", ev)
			}
		}
	})
}
