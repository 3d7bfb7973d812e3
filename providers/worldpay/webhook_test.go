package worldpay_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/worldpay"
)

const testSecret paymux.Secret = "worldpay-test-secret"

func hookProvider(t *testing.T, enc worldpay.SignatureEncoding) *worldpay.Provider {
	t.Helper()
	p, err := worldpay.New(worldpay.Config{Username: "u", Password: "p", Entity: "e", SignatureEncoding: enc,
		EventSecrets: map[string]paymux.Secret{"1": "old-secret", "2": testSecret}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func eventFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func header(v ...string) http.Header {
	h := http.Header{}
	for _, s := range v {
		h.Add(worldpay.SignatureHeader, s)
	}
	return h
}

// The vector is built from the documented scheme, independently of Sign:
// HMAC-SHA256 over the raw body with the shared secret, hex.
func TestEventSignatureVector(t *testing.T) {
	t.Parallel()
	body := eventFile(t, "authorized.json")
	m := hmac.New(sha256.New, []byte("worldpay-test-secret"))
	m.Write(body)
	sig := hex.EncodeToString(m.Sum(nil))
	if got := worldpay.Sign("2", testSecret, body, worldpay.EncodingHex); got != "2/SHA256/"+sig {
		t.Fatalf("Sign = %s", got)
	}
	p := hookProvider(t, worldpay.EncodingHex)
	for _, h := range []http.Header{
		header("2/SHA256/" + sig),
		header("2/SHA256/" + strings.ToUpper(sig)),
		header("1/SHA256/" + strings.Repeat("0", 64) + ",2/SHA256/" + sig),  // key rotation: old one first
		header("2/SHA256/" + sig + ", 1/SHA256/" + strings.Repeat("0", 64)), // order can change
		header("9/SHA256/abc", "2/SHA256/"+sig),                             // several header lines
	} {
		evs, err := p.ParseWebhook(context.Background(), h, body)
		if err != nil {
			t.Fatalf("%v: %v", h, err)
		}
		if len(evs) != 1 || evs[0].ID != "bb55ca5a-e05c-47e1-8e94-e88bac1a0a17" || evs[0].Type != paymux.EventAuthorized {
			t.Fatalf("%+v", evs)
		}
	}
}

func TestEventSignatureRejected(t *testing.T) {
	t.Parallel()
	body := eventFile(t, "authorized.json")
	p := hookProvider(t, worldpay.EncodingHex)
	good := worldpay.Sign("2", testSecret, body, worldpay.EncodingHex)
	sha1Sig := func() string {
		m := hmac.New(sha1.New, []byte(testSecret))
		m.Write(body)
		return "2/SHA1/" + hex.EncodeToString(m.Sum(nil))
	}()
	for name, tc := range map[string]struct {
		h    http.Header
		body []byte
		want error
	}{
		"no header":       {http.Header{}, body, paymux.ErrWebhookNotSigned},
		"empty header":    {header(" , "), body, paymux.ErrWebhookNotSigned},
		"tampered body":   {header(good), append([]byte(" "), body...), paymux.ErrWebhookBadSignature},
		"unknown keyId":   {header(strings.Replace(good, "2/", "7/", 1)), body, paymux.ErrWebhookBadSignature},
		"wrong key":       {header(strings.Replace(good, "2/", "1/", 1)), body, paymux.ErrWebhookBadSignature},
		"sha1 downgrade":  {header(sha1Sig), body, paymux.ErrWebhookBadSignature},
		"garbage":         {header("not a signature"), body, paymux.ErrWebhookBadSignature},
		"base64 not hex":  {header(worldpay.Sign("2", testSecret, body, worldpay.EncodingBase64)), body, paymux.ErrWebhookBadSignature},
		"truncated sig":   {header(good[:len(good)-2]), body, paymux.ErrWebhookBadSignature},
		"signed, garbage": {header(worldpay.Sign("2", testSecret, []byte("{"), worldpay.EncodingHex)), []byte("{"), paymux.ErrWebhookMalformed},
	} {
		_, err := p.ParseWebhook(context.Background(), tc.h, tc.body)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", name, err, tc.want)
		}
		if err != nil && (strings.Contains(err.Error(), string(testSecret)) || strings.Contains(err.Error(), "old-secret")) {
			t.Errorf("%s: secret in error", name)
		}
	}
	noSecrets, _ := worldpay.New(worldpay.Config{Username: "u", Password: "p", Entity: "e"})
	if _, err := noSecrets.ParseWebhook(context.Background(), header(good), body); !errors.Is(err, paymux.ErrWebhookBadSignature) {
		t.Errorf("no secrets configured: %v", err)
	}
}

// The encoding switch: with EncodingBase64 a base64 signature verifies.
func TestEventSignatureBase64Switch(t *testing.T) {
	t.Parallel()
	body := eventFile(t, "settled.json")
	m := hmac.New(sha256.New, []byte(testSecret))
	m.Write(body)
	h := header("2/SHA256/" + base64.StdEncoding.EncodeToString(m.Sum(nil)))
	if _, err := hookProvider(t, worldpay.EncodingBase64).ParseWebhook(context.Background(), h, body); err != nil {
		t.Fatal(err)
	}
	if _, err := hookProvider(t, worldpay.EncodingHex).ParseWebhook(context.Background(), h, body); !errors.Is(err, paymux.ErrWebhookBadSignature) {
		t.Fatalf("hex mode accepted base64: %v", err)
	}
}

func TestEventsNormalised(t *testing.T) {
	t.Parallel()
	p := hookProvider(t, worldpay.EncodingHex)
	for _, tc := range []struct {
		file    string
		typ     paymux.EventType
		success bool
		amount  int64
	}{
		{"authorized.json", paymux.EventAuthorized, true, 250},
		{"settled.json", paymux.EventCaptured, true, 250},
		{"refused.json", paymux.EventFailed, false, 0},
		{"refunded.json", paymux.EventRefunded, true, 100},
		{"chargeback.json", paymux.EventDisputeOpened, true, 250},
	} {
		body := eventFile(t, tc.file)
		evs, err := p.ParseWebhook(context.Background(), header(worldpay.Sign("2", testSecret, body, worldpay.EncodingHex)), body)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		ev := evs[0]
		if ev.Type != tc.typ || ev.Success != tc.success || ev.Amount.Amount != tc.amount || ev.Provider != "worldpay" ||
			ev.ProviderRef != "pmx_0123456789abcdef0123456789abcdef01234567" || ev.OccurredAt.IsZero() || string(ev.Raw) != string(body) {
			t.Fatalf("%s: %+v", tc.file, ev)
		}
		if tc.amount > 0 && ev.Amount.Currency != "GBP" {
			t.Fatalf("%s: currency %q", tc.file, ev.Amount.Currency)
		}
	}
	body := eventFile(t, "authorized.json")
	evs, _ := p.ParseWebhook(context.Background(), header(worldpay.Sign("2", testSecret, body, worldpay.EncodingHex)), body)
	if want := time.Date(2018, 6, 13, 14, 18, 13, 407e6, time.UTC); !evs[0].OccurredAt.Equal(want) {
		t.Fatalf("time %v", evs[0].OccurredAt)
	}
}

func TestWebhookTooLarge(t *testing.T) {
	t.Parallel()
	p := hookProvider(t, worldpay.EncodingHex)
	body := make([]byte, 1<<20+1)
	_, err := p.ParseWebhook(context.Background(), header(worldpay.Sign("2", testSecret, body, worldpay.EncodingHex)), body)
	if !errors.Is(err, paymux.ErrWebhookTooLarge) {
		t.Fatal(err)
	}
}

func FuzzParseWebhook(f *testing.F) {
	for _, name := range []string{"authorized.json", "settled.json", "refused.json", "refunded.json", "chargeback.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", "events", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, true)
		f.Add(b, false)
	}
	f.Add([]byte(`{"eventId":"x","eventDetails":{"type":"authorized","amount":{"value":-1,"currencyCode":"XXX"}}}`), true)
	p, err := worldpay.New(worldpay.Config{Username: "u", Password: "p", Entity: "e", EventSecrets: map[string]paymux.Secret{"2": testSecret}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, sign bool) {
		h := http.Header{}
		if sign {
			h.Set(worldpay.SignatureHeader, worldpay.Sign("2", testSecret, body, worldpay.EncodingHex))
		} else {
			h.Set(worldpay.SignatureHeader, "2/SHA256/"+string(body[:min(len(body), 80)]))
		}
		evs, err := p.ParseWebhook(context.Background(), h, body)
		if !sign && err == nil {
			t.Fatal("unsigned body accepted")
		}
		if err != nil {
			if !errors.Is(err, paymux.ErrWebhookBadSignature) && !errors.Is(err, paymux.ErrWebhookMalformed) &&
				!errors.Is(err, paymux.ErrWebhookNotSigned) && !errors.Is(err, paymux.ErrWebhookTooLarge) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if len(evs) != 1 || evs[0].ID == "" || evs[0].Amount.Amount < 0 {
			t.Fatalf("bad event %+v", evs)
		}
	})
}
