package braintree_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/braintree"
	"github.com/paymux/paymux/providers/braintree/braintreetest"
)

type vector struct {
	ID                string  `json:"id"`
	PublicKey         string  `json:"public_key"`
	PrivateKey        string  `json:"private_key"`
	BtSignature       string  `json:"bt_signature"`
	BtPayload         *string `json:"bt_payload"`
	Challenge         string  `json:"challenge"`
	ExpectedResponse  string  `json:"expected_response"`
	Expected          string  `json:"expected"`
	DecodedXML        string  `json:"bt_payload_decoded_xml"`
	ExpectedByImpl    map[string]string
	ExpectedByImplRaw json.RawMessage `json:"expected_by_implementation"`
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "braintree", "vectors", "braintree-*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no vectors: %v", err)
	}
	var out []vector
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v vector
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, v)
	}
	return out
}

func newVerifier(t testing.TB, public, private string) *braintree.Provider {
	t.Helper()
	p, err := braintree.New(braintree.Config{PublicKey: public, PrivateKey: paymux.Secret(private)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestWebhookVectors runs every braintree vector from the shared set. The
// expected outcome is the file's, including braintree-5: paymux accepts an
// HMAC over bt_payload+"\n" like the official Python and Ruby SDKs (see
// webhook.go and README.md).
func TestWebhookVectors(t *testing.T) {
	t.Parallel()
	vs := loadVectors(t)
	if len(vs) != 6 {
		t.Fatalf("%d braintree vectors, want 6", len(vs))
	}
	for _, v := range vs {
		t.Run(v.ID, func(t *testing.T) {
			t.Parallel()
			p := newVerifier(t, v.PublicKey, v.PrivateKey)
			if v.Challenge != "" {
				got, err := p.VerifyChallenge(v.Challenge)
				if err != nil || got != v.ExpectedResponse {
					t.Fatalf("VerifyChallenge = %q, %v; want %q", got, err, v.ExpectedResponse)
				}
				return
			}
			body := url.Values{"bt_signature": {v.BtSignature}, "bt_payload": {*v.BtPayload}}.Encode()
			events, err := p.ParseWebhook(context.Background(), nil, []byte(body))
			switch v.Expected {
			case "valid":
				if err != nil {
					t.Fatalf("valid vector refused: %v", err)
				}
				if len(events) != 1 || events[0].Type != paymux.EventOther || events[0].Code != "check" || events[0].ID == "" {
					t.Fatalf("events %+v", events)
				}
				if events[0].OccurredAt.IsZero() {
					t.Error("no timestamp")
				}
			case "invalid":
				if !errors.Is(err, paymux.ErrWebhookBadSignature) {
					t.Fatalf("invalid vector: err %v, want ErrWebhookBadSignature", err)
				}
			default:
				t.Fatalf("unknown expectation %q", v.Expected)
			}
		})
	}
}

func TestVerifyChallengeRefusesBadInput(t *testing.T) {
	t.Parallel()
	p := newVerifier(t, "pub", "priv")
	for _, c := range []string{"", "short", "20F9F8ED05F77439FE955C977E4C8A53", "20f9f8ed05f77439fe955c977e4c8a53ff00", "20f9f8ed05f77439fe95|x"} {
		if _, err := p.VerifyChallenge(c); !errors.Is(err, braintree.ErrBadChallenge) {
			t.Errorf("VerifyChallenge(%q) = %v", c, err)
		}
	}
}

func notificationBody(public, private, kind, id, orderID string, amount paymux.Money, at time.Time) []byte {
	form := braintreetest.SignNotification(public, private, []byte(braintreetest.NotificationXML(kind, id, orderID, amount, at)))
	return []byte(form.Encode())
}

func TestWebhookEvents(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	amt := paymux.NewMoney(1234, "USD")
	tests := []struct {
		kind    string
		typ     paymux.EventType
		success bool
		ref     string
	}{
		{"transaction_settled", paymux.EventCaptured, true, "dHJhbnNhY3Rpb25fdHgx"},
		{"transaction_settlement_declined", paymux.EventCaptureFailed, false, "dHJhbnNhY3Rpb25fdHgx"},
		{"transaction_disbursed", paymux.EventOther, true, "dHJhbnNhY3Rpb25fdHgx"},
		{"dispute_opened", paymux.EventDisputeOpened, true, "dHJhbnNhY3Rpb25fdHgx"},
		{"dispute_won", paymux.EventOther, true, "dHJhbnNhY3Rpb25fdHgx"},
		{"refund_failed", paymux.EventRefundFailed, false, "dHJhbnNhY3Rpb25fdHgx"},
	}
	p := newVerifier(t, "pub", "priv")
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			t.Parallel()
			body := notificationBody("pub", "priv", tt.kind, "tx1", "order-7#pmx_ab12", amt, at)
			events, err := p.ParseWebhook(context.Background(), nil, body)
			if err != nil {
				t.Fatal(err)
			}
			ev := events[0]
			if ev.Type != tt.typ || ev.Success != tt.success || ev.ProviderRef != tt.ref || ev.Provider != "braintree" {
				t.Fatalf("%+v", ev)
			}
			if ev.PaymentKey != "order-7" {
				t.Errorf("PaymentKey = %q, want the paymux key without the attempt suffix", ev.PaymentKey)
			}
			if ev.Amount != amt {
				t.Errorf("Amount = %v", ev.Amount)
			}
			if !ev.OccurredAt.Equal(at) || !strings.HasPrefix(ev.ID, tt.kind+":") {
				t.Errorf("id %q at %v", ev.ID, ev.OccurredAt)
			}
			// A redelivery has the same id, so it is de-duplicated.
			again, _ := p.ParseWebhook(context.Background(), nil, body)
			if again[0].ID != ev.ID {
				t.Errorf("redelivery id %q != %q", again[0].ID, ev.ID)
			}
		})
	}
}

func TestWebhookRefusals(t *testing.T) {
	t.Parallel()
	p := newVerifier(t, "pub", "priv")
	good := braintreetest.SignNotification("pub", "priv", []byte(braintreetest.NotificationXML("transaction_settled", "tx1", "o", paymux.NewMoney(100, "USD"), time.Now())))
	signed := func(xml string) url.Values {
		return braintreetest.SignNotification("pub", "priv", []byte(xml))
	}
	tests := []struct {
		name string
		body string
		want error
	}{
		{"empty", "", paymux.ErrWebhookNotSigned},
		{"no signature", url.Values{"bt_payload": good["bt_payload"]}.Encode(), paymux.ErrWebhookNotSigned},
		{"no pipe", url.Values{"bt_signature": {"pubsig"}, "bt_payload": good["bt_payload"]}.Encode(), paymux.ErrWebhookBadSignature},
		{"other key only", url.Values{"bt_signature": {"other|" + strings.SplitN(good.Get("bt_signature"), "|", 2)[1]}, "bt_payload": good["bt_payload"]}.Encode(), paymux.ErrWebhookBadSignature},
		{"wrong private key", braintreetest.SignNotification("pub", "other", []byte("<notification/>")).Encode(), paymux.ErrWebhookBadSignature},
		{"not hex", url.Values{"bt_signature": {"pub|zz"}, "bt_payload": good["bt_payload"]}.Encode(), paymux.ErrWebhookBadSignature},
		{"payload changed", url.Values{"bt_signature": good["bt_signature"], "bt_payload": {"A" + good.Get("bt_payload")}}.Encode(), paymux.ErrWebhookBadSignature},
		{"not a form", "%zz", paymux.ErrWebhookMalformed},
		{"not xml", signed("this is not xml").Encode(), paymux.ErrWebhookMalformed},
		{"no kind", signed("<notification><timestamp>2026-11-20T10:00:00Z</timestamp></notification>").Encode(), paymux.ErrWebhookMalformed},
		{"bad timestamp", signed("<notification><kind>check</kind><timestamp>yesterday</timestamp></notification>").Encode(), paymux.ErrWebhookMalformed},
		{"settled without transaction", signed("<notification><kind>transaction_settled</kind><subject></subject></notification>").Encode(), paymux.ErrWebhookMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := p.ParseWebhook(context.Background(), nil, []byte(tt.body))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if strings.Contains(err.Error(), "priv") {
				t.Errorf("error mentions the private key: %v", err)
			}
		})
	}
}

// TestWebhookPicksOurPair signs with two API keys, as Braintree does for a
// merchant with several, and checks that only the pair with our public key
// counts.
func TestWebhookPicksOurPair(t *testing.T) {
	t.Parallel()
	xml := []byte(braintreetest.NotificationXML("check", "", "", paymux.Money{}, time.Now()))
	ours := braintreetest.SignNotification("pub", "priv", xml)
	theirs := braintreetest.SignNotification("other", "otherpriv", xml)
	sig := theirs.Get("bt_signature") + "&" + ours.Get("bt_signature")
	body := url.Values{"bt_signature": {sig}, "bt_payload": ours["bt_payload"]}.Encode()
	if _, err := newVerifier(t, "pub", "priv").ParseWebhook(context.Background(), nil, []byte(body)); err != nil {
		t.Fatal(err)
	}
	if _, err := newVerifier(t, "other", "priv").ParseWebhook(context.Background(), nil, []byte(body)); !errors.Is(err, paymux.ErrWebhookBadSignature) {
		t.Fatalf("pair of another key accepted with our secret: %v", err)
	}
}

// TestFakeSendsSignedWebhooks drives the fake's SendWebhook into an HTTP
// sink that parses with the adapter.
func TestFakeSendsSignedWebhooks(t *testing.T) {
	t.Parallel()
	got := make(chan paymux.Event, 1)
	var p *braintree.Provider
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		events, err := p.ParseWebhook(r.Context(), r.Header, body)
		if err != nil {
			http.Error(w, err.Error(), paymux.WebhookStatus(err))
			return
		}
		got <- events[0]
	}))
	t.Cleanup(sink.Close)
	p, b := setupWith(t, braintreetest.Options{WebhookURL: sink.URL})
	res := authorize(t, p, "order-wh", paymux.CaptureAutomatic, "fake-valid-nonce", 1000)
	if err := b.srv.SendWebhook(context.Background(), "transaction_settled", res.Reference); err != nil {
		t.Fatal(err)
	}
	ev := <-got
	if ev.Type != paymux.EventCaptured || ev.ProviderRef != res.Reference || ev.PaymentKey != "order-wh" || ev.Amount.Amount != 1000 {
		t.Fatalf("%+v", ev)
	}
}
