package adyen_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/adyen"
	"github.com/paymux/paymux/providers/adyen/adyentest"
	"github.com/paymux/paymux/providers/providertest"
)

// wrongHMACKey is a valid hex key the adapter does not know.
const wrongHMACKey = "00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF"

// eventCodes maps the suite's event types to Adyen event codes.
var eventCodes = map[paymux.EventType]string{
	paymux.EventAuthorized: "AUTHORISATION", paymux.EventCaptured: "CAPTURE", paymux.EventRefunded: "REFUND",
	paymux.EventVoided: "CANCELLATION", paymux.EventDisputeOpened: "CHARGEBACK",
	paymux.EventCaptureFailed: "CAPTURE_FAILED", paymux.EventRefundFailed: "REFUND_FAILED",
}

// conformanceItem maps a suite event to the standard notification item
// Adyen would send for it.
func conformanceItem(t *testing.T, ev providertest.WebhookEvent) adyentest.Item {
	t.Helper()
	code, ok := eventCodes[ev.Type]
	if !ok {
		t.Fatalf("no Adyen event code for %s", ev.Type)
	}
	// A modification's own pspReference is what names its notification;
	// the payment's is the originalReference.
	it := adyentest.Item{
		PSPReference: ev.ID, OriginalReference: ev.ProviderRef, MerchantReference: ev.PaymentKey,
		EventCode: code, Currency: string(ev.Amount.Currency), Value: ev.Amount.Amount, Success: true,
		EventDate: ev.At,
	}
	if code == "AUTHORISATION" {
		it.PSPReference, it.OriginalReference = ev.ProviderRef, ""
	}
	return it
}

// itemSignature is Adyen's item HMAC (additionalData.hmacSignature) under
// hexKey: psp:original:merchantAccount:merchantRef:value:currency:eventCode:success.
func itemSignature(t *testing.T, hexKey, merchantAccount string, it adyentest.Item) string {
	t.Helper()
	msg := strings.Join([]string{
		it.PSPReference, it.OriginalReference, merchantAccount, it.MerchantReference,
		strconv.FormatInt(it.Value, 10), it.Currency, it.EventCode, strconv.FormatBool(it.Success),
	}, ":")
	sig, err := adyen.Sign(hexKey, []byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// TestConformance runs providertest against adyentest as Adyen behaves:
//   - Adyen Checkout has no lookup call, so Lookup answers Unimplemented
//     (Caps.NoLookup) and the suite reads the fake's ledger through
//     Fixture.State (LookupByKey stays off: by key, only a retry with the
//     same Idempotency-Key tells the truth at Adyen);
//   - captures, refunds and cancels are "received" and refused later by
//     notification (Caps.AsyncModifications), so the suite checks the
//     fake's ledger, not a synchronous error, for impossible ones;
//   - notifications are signed in the item (additionalData.hmacSignature),
//     and Fixture.UnsignedWebhook builds the same item without it. The
//     HmacSignature header scheme is covered by webhook_test.go.
func TestConformance(t *testing.T) {
	t.Parallel()
	providertest.Run(t, providertest.Harness{New: func(t *testing.T) *providertest.Fixture {
		faults := &providertest.Faults{}
		srv := adyentest.NewServer(adyentest.Options{Faults: faults})
		t.Cleanup(srv.Close)
		o := srv.Options()
		p, err := adyen.New(adyen.Config{
			APIKey: paymux.Secret(o.APIKey), MerchantAccount: o.MerchantAccount, HMACKey: paymux.Secret(o.HMACKey),
			BaseURL: srv.URL,
		})
		if err != nil {
			t.Fatal(err)
		}
		sign := func(hexKey string) func(t *testing.T, ev providertest.WebhookEvent) (http.Header, []byte) {
			return func(t *testing.T, ev providertest.WebhookEvent) (http.Header, []byte) {
				it := conformanceItem(t, ev)
				it.Signature = itemSignature(t, hexKey, o.MerchantAccount, it)
				return http.Header{"Content-Type": {"application/json"}}, srv.NotificationBody(it)
			}
		}
		unsigned := func(t *testing.T, ev providertest.WebhookEvent) (http.Header, []byte) {
			// The header-signed variant's body is the item without
			// hmacSignature; without the header nothing signs it.
			_, body := srv.HeaderSignedItem(conformanceItem(t, ev), "")
			return http.Header{"Content-Type": {"application/json"}}, body
		}
		return &providertest.Fixture{
			Provider:               p,
			Currency:               "EUR",
			Country:                "NL",
			Approve:                adyentest.Method(""),
			HardDecline:            adyentest.Method("BLOCK_CARD"),
			SoftDecline:            adyentest.Method("ISSUER_UNAVAILABLE"),
			InsufficientFunds:      adyentest.Method("NOT_ENOUGH_BALANCE"),
			ThreeDS:                adyentest.Method(adyentest.HolderChallenge),
			CompleteAction:         srv.CompleteAction,
			Faults:                 faults,
			Charges:                srv.Charges,
			State:                  srv.Lookup,
			SignWebhook:            sign(o.HMACKey),
			SignWebhookWrongSecret: sign(wrongHMACKey),
			UnsignedWebhook:        unsigned,
			UnknownReference:       "FK99999999999999",
			Caps: providertest.Caps{
				ManualCapture: true, PartialCapture: true, PartialRefund: true, MultipleRefund: true,
				Void: true, IdempotentKeys: true, NoLookup: true, AsyncModifications: true,
			},
		}
	}})
}
