package braintree_test

import (
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/braintree"
	"github.com/paymux/paymux/providers/braintree/braintreetest"
	"github.com/paymux/paymux/providers/providertest"
)

func TestConformance(t *testing.T) {
	providertest.Run(t, providertest.Harness{New: newFixture})
}

// ownsOrder reports whether a fake transaction's orderId belongs to the
// paymux key (the adapter writes "<key>#<provider key>").
func ownsOrder(key string) func(string) bool {
	return func(orderID string) bool {
		rest, ok := strings.CutPrefix(orderID, key)
		return ok && (rest == "" || strings.HasPrefix(rest, "#pmx_") && !strings.Contains(rest[1:], "#"))
	}
}

func newFixture(t *testing.T) *providertest.Fixture {
	srv := braintreetest.NewServer(braintreetest.Options{})
	t.Cleanup(srv.Close)
	p, err := braintree.New(braintree.Config{
		MerchantID: "test_merchant",
		PublicKey:  srv.PublicKey(),
		PrivateKey: paymux.Secret(srv.PrivateKey()),
		BaseURL:    srv.URL(),
		HTTPClient: srv.Client(),
		Logger:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	// notification builds the bt_signature / bt_payload form Braintree
	// POSTs for ev; the signature is a form field, not a header.
	notification := func(t *testing.T, ev providertest.WebhookEvent, publicKey, privateKey string) url.Values {
		t.Helper()
		kind := map[paymux.EventType]string{
			paymux.EventCaptured:      "transaction_settled",
			paymux.EventCaptureFailed: "transaction_settlement_declined",
			paymux.EventDisputeOpened: "dispute_opened",
			paymux.EventRefundFailed:  "refund_failed",
		}[ev.Type]
		if kind == "" {
			t.Skipf("Braintree sends no webhook for %s", ev.Type)
		}
		orderID := ev.PaymentKey
		if tx, ok := srv.Transaction(ev.ProviderRef); ok {
			orderID = tx.OrderID
		}
		at := ev.At
		if at.IsZero() {
			at = time.Now()
		}
		return braintreetest.SignNotification(publicKey, privateKey,
			[]byte(braintreetest.NotificationXML(kind, braintreetest.LegacyID(ev.ProviderRef), orderID, ev.Amount, at)))
	}
	formHeader := func() http.Header {
		return http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	}
	sign := func(publicKey, privateKey string) func(t *testing.T, ev providertest.WebhookEvent) (http.Header, []byte) {
		return func(t *testing.T, ev providertest.WebhookEvent) (http.Header, []byte) {
			return formHeader(), []byte(notification(t, ev, publicKey, privateKey).Encode())
		}
	}
	// unsigned is the same notification with bt_signature removed.
	unsigned := func(t *testing.T, ev providertest.WebhookEvent) (http.Header, []byte) {
		form := notification(t, ev, srv.PublicKey(), srv.PrivateKey())
		form.Del("bt_signature")
		return formHeader(), []byte(form.Encode())
	}
	return &providertest.Fixture{
		Provider:    p,
		Currency:    "USD",
		Country:     "US",
		Approve:     paymux.PaymentMethod{Type: paymux.MethodCard, Token: "fake-valid-nonce"},
		HardDecline: paymux.PaymentMethod{Type: paymux.MethodCard, Token: "fake-gateway-rejected-fraud-nonce"},
		SoftDecline: paymux.PaymentMethod{Type: paymux.MethodCard, Token: "fake-processor-declined-visa-nonce"},
		// ThreeDS stays empty: Braintree authenticates in the browser, so a
		// server call never returns requires_action (see README).
		Faults: srv.Faults(),
		Charges: func(key string) int {
			return srv.ChargesFunc(ownsOrder(key))
		},
		SignWebhook:            sign(srv.PublicKey(), srv.PrivateKey()),
		SignWebhookWrongSecret: sign(srv.PublicKey(), "not_the_private_key"),
		UnsignedWebhook:        unsigned,
		UnknownReference:       braintreetest.GlobalID("transaction", "nosuchtx"),
		Caps: providertest.Caps{
			ManualCapture:       true,
			PartialCapture:      true,
			PartialRefund:       true,
			MultipleRefund:      true,
			Void:                true,
			LookupByKey:         true,
			IdempotentKeys:      true,
			IdempotencyConflict: true,
			// Notifications carry no event id; the adapter derives
			// kind:subject-id:timestamp.
			DerivedEventIDs: true,
		},
	}
}
