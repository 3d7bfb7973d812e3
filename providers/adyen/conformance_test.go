package adyen_test

import (
	"net/http"
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

// TestConformance runs providertest against adyentest. Three choices make
// Adyen fit the suite; each is documented where it is made:
//   - Lookup answers from the fake's ledger through Config.Lookup, because
//     Adyen Checkout has no lookup call (LookupByKey stays off: by key, only
//     a retry with the same Idempotency-Key tells the truth at Adyen);
//   - the fake refuses impossible captures and refunds at once
//     (RejectInvalidModifications), where Adyen reports them later by
//     webhook;
//   - SignWebhook signs in the HmacSignature header, not in the item, so the
//     Unsigned subtest (which strips headers) can see an unsigned request.
//     The item-signed scheme is covered by webhook_test.go.
func TestConformance(t *testing.T) {
	t.Parallel()
	providertest.Run(t, providertest.Harness{New: func(t *testing.T) *providertest.Fixture {
		faults := &providertest.Faults{}
		srv := adyentest.NewServer(adyentest.Options{Faults: faults, RejectInvalidModifications: true})
		t.Cleanup(srv.Close)
		o := srv.Options()
		p, err := adyen.New(adyen.Config{
			APIKey: paymux.Secret(o.APIKey), MerchantAccount: o.MerchantAccount, HMACKey: paymux.Secret(o.HMACKey),
			BaseURL: srv.URL, Lookup: srv.Lookup,
		})
		if err != nil {
			t.Fatal(err)
		}
		sign := func(key string) func(t *testing.T, ev providertest.WebhookEvent) (http.Header, []byte) {
			return func(t *testing.T, ev providertest.WebhookEvent) (http.Header, []byte) {
				code, ok := eventCodes[ev.Type]
				if !ok {
					t.Fatalf("no Adyen event code for %s", ev.Type)
				}
				// A modification's own pspReference is what names its
				// notification; the payment's is the originalReference.
				it := adyentest.Item{
					PSPReference: ev.ID, OriginalReference: ev.ProviderRef, MerchantReference: ev.PaymentKey,
					EventCode: code, Currency: string(ev.Amount.Currency), Value: ev.Amount.Amount, Success: true,
					EventDate: ev.At,
				}
				if code == "AUTHORISATION" {
					it.PSPReference, it.OriginalReference = ev.ProviderRef, ""
				}
				return srv.HeaderSignedItem(it, key)
			}
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
			SignWebhook:            sign(""),
			SignWebhookWrongSecret: sign(wrongHMACKey),
			UnknownReference:       "FK99999999999999",
			Caps: providertest.Caps{
				ManualCapture: true, PartialCapture: true, PartialRefund: true, MultipleRefund: true,
				Void: true, IdempotentKeys: true,
			},
		}
	}})
}
