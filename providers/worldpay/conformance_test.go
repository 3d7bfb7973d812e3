package worldpay_test

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/providertest"
	"github.com/paymux/paymux/providers/worldpay"
	"github.com/paymux/paymux/providers/worldpay/worldpaytest"
)

// keyRecorder wraps the adapter to remember which paymux key each
// transactionReference (the attempt's ProviderKey) belongs to: Worldpay,
// and so its fake, only ever see the transactionReference. Embedding keeps
// the optional interfaces (WebhookParser, DecisionTabler).
type keyRecorder struct {
	*worldpay.Provider
	mu   sync.Mutex
	refs map[string][]string // paymux key -> transactionReferences
}

func (k *keyRecorder) Authorize(ctx context.Context, req *paymux.AuthorizeRequest) (*paymux.ProviderPayment, error) {
	k.mu.Lock()
	k.refs[req.PaymentKey] = append(k.refs[req.PaymentKey], req.ProviderKey)
	k.mu.Unlock()
	return k.Provider.Authorize(ctx, req)
}

func (k *keyRecorder) charges(fake *worldpaytest.Server, paymentKey string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	seen, n := map[string]bool{}, 0
	for _, ref := range k.refs[paymentKey] {
		if !seen[ref] {
			seen[ref] = true
			n += fake.Charges(ref)
		}
	}
	return n
}

var wpEventType = map[paymux.EventType]string{
	paymux.EventAuthorized: "authorized", paymux.EventCaptured: "sentForSettlement", paymux.EventRefunded: "refunded",
	paymux.EventVoided: "cancelled", paymux.EventFailed: "refused", paymux.EventCaptureFailed: "settlementFailed",
	paymux.EventRefundFailed: "refundFailed",
}

func TestConformance(t *testing.T) {
	providertest.Run(t, providertest.Harness{New: func(t *testing.T) *providertest.Fixture {
		faults := &providertest.Faults{}
		fake := worldpaytest.NewServer(worldpaytest.Options{Faults: faults})
		t.Cleanup(fake.Close)
		p, err := worldpay.New(worldpay.Config{
			Username: "user", Password: "pass", Entity: "default",
			BaseURL: fake.URL(), HTTPClient: fake.Client(),
			EventSecrets: map[string]paymux.Secret{"1": "worldpay-test-secret"},
			ThreeDS:      worldpay.ThreeDSAlways,
		})
		if err != nil {
			t.Fatal(err)
		}
		rec := &keyRecorder{Provider: p, refs: map[string][]string{}}
		method := func(name string) paymux.PaymentMethod {
			return paymux.PaymentMethod{Type: paymux.MethodCard, Token: fake.SessionHref(name)}
		}
		sign := func(secret paymux.Secret) func(t *testing.T, ev providertest.WebhookEvent) (http.Header, []byte) {
			return func(t *testing.T, ev providertest.WebhookEvent) (http.Header, []byte) {
				body := fake.EventBody(worldpaytest.EventSpec{ID: ev.ID, Type: wpEventType[ev.Type], TransactionReference: ev.ProviderRef,
					Amount: ev.Amount.Amount, Currency: string(ev.Amount.Currency)})
				h := fake.Sign(body)
				h.Set(worldpay.SignatureHeader, worldpay.Sign("1", secret, body, worldpay.EncodingHex))
				return h, body
			}
		}
		return &providertest.Fixture{
			Provider:               rec,
			Currency:               "GBP",
			Country:                "GB",
			Approve:                method(worldpaytest.NameAuthorised),
			HardDecline:            method(worldpaytest.NameStolen),
			SoftDecline:            method(worldpaytest.NameIssuerUnavailable),
			InsufficientFunds:      method(worldpaytest.NameInsufficientFunds),
			ThreeDS:                method(worldpaytest.NameThreeDSChallenge),
			CompleteAction:         func(_ context.Context, ref string) error { return fake.CompleteThreeDS(ref) },
			Faults:                 faults,
			Charges:                func(key string) int { return rec.charges(fake, key) },
			SignWebhook:            sign("worldpay-test-secret"),
			SignWebhookWrongSecret: sign("not-the-secret"),
			UnknownReference:       "pmx_0000000000000000000000000000000000000000",
			Caps: providertest.Caps{
				ManualCapture: true, PartialCapture: true, PartialRefund: true, MultipleRefund: true, Void: true,
				LookupByKey: true,
				// Worldpay documents no de-duplication by transactionReference.
				IdempotentKeys: false,
			},
		}
	}})
}
