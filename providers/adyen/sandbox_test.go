//go:build sandbox

package adyen_test

import (
	"context"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/adyen"
)

// Sandbox tests talk to Adyen's test endpoint. They run with
//
//	ADYEN_API_KEY=... ADYEN_MERCHANT_ACCOUNT=... ADYEN_HMAC_KEY=... \
//	  go test -tags sandbox -run Sandbox ./providers/adyen/
//
// and skip when those are unset. Card data never passes through paymux, so
// the payment flow also needs ADYEN_PAYMENT_METHOD: the paymentMethod JSON
// Adyen's web component produced (encrypted fields), or a
// storedPaymentMethodId with ADYEN_SHOPPER_REFERENCE.

func sandbox(t *testing.T) *adyen.Provider {
	t.Helper()
	key, merchant, hmacKey := os.Getenv("ADYEN_API_KEY"), os.Getenv("ADYEN_MERCHANT_ACCOUNT"), os.Getenv("ADYEN_HMAC_KEY")
	if key == "" || merchant == "" || hmacKey == "" {
		t.Skip("set ADYEN_API_KEY, ADYEN_MERCHANT_ACCOUNT and ADYEN_HMAC_KEY to run the Adyen sandbox tests")
	}
	p, err := adyen.New(adyen.Config{
		APIKey: paymux.Secret(key), MerchantAccount: merchant, HMACKey: paymux.Secret(hmacKey),
		BaseURL: os.Getenv("ADYEN_BASE_URL"), HTTPClient: &http.Client{Timeout: 30 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func sandboxKey(what string) string {
	return "paymux-sandbox-" + what + "-" + time.Now().UTC().Format("20060102T150405.000000")
}

// TestSandboxCredentials makes a call that cannot move money (a payment
// method Adyen cannot decrypt) and checks the credentials were accepted.
func TestSandboxCredentials(t *testing.T) {
	p := sandbox(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	key := sandboxKey("credentials")
	_, err := p.Authorize(ctx, &paymux.AuthorizeRequest{
		PaymentKey: key, ProviderKey: key, Amount: paymux.NewMoney(100, "EUR"),
		Method:    paymux.PaymentMethod{Type: paymux.MethodCard, Token: `{"type":"scheme","encryptedCardNumber":"adyenjs_0_1_25$not-decryptable","holderName":"DECLINED"}`},
		ReturnURL: "https://shop.example/return",
	})
	switch paymux.KindOf(err) {
	case paymux.KindAuthentication:
		t.Fatalf("Adyen refused the credentials: %v", err)
	case paymux.KindUnavailable, paymux.KindOutcomeUnknown:
		t.Fatalf("Adyen unreachable: %v", err)
	}
	t.Logf("undecryptable method: %v", err)
}

// TestSandboxPaymentFlow authorises with manual capture, captures part,
// refunds part, and replays the authorisation with the same key.
func TestSandboxPaymentFlow(t *testing.T) {
	p := sandbox(t)
	method := os.Getenv("ADYEN_PAYMENT_METHOD")
	if method == "" {
		t.Skip("set ADYEN_PAYMENT_METHOD (component paymentMethod JSON or storedPaymentMethodId) for the payment flow")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	key := sandboxKey("flow")
	req := &paymux.AuthorizeRequest{
		PaymentKey: key, ProviderKey: paymux.ProviderKey(key, "adyen", paymux.OpAuthorize, 1),
		Amount: paymux.NewMoney(1000, "EUR"), Method: paymux.PaymentMethod{Type: paymux.MethodCard, Token: method},
		Capture: paymux.CaptureManual, Customer: paymux.Customer{ID: os.Getenv("ADYEN_SHOPPER_REFERENCE")},
		ReturnURL: "https://shop.example/return",
	}
	auth, err := p.Authorize(ctx, req)
	if err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	if auth.Status != paymux.StatusAuthorized {
		t.Fatalf("status %s (next action %+v)", auth.Status, auth.NextAction)
	}
	again, err := p.Authorize(ctx, req)
	if err != nil || again.Reference != auth.Reference {
		t.Fatalf("same Idempotency-Key gave %v %v, want the stored %s", again, err, auth.Reference)
	}
	if _, err := p.Capture(ctx, &paymux.CaptureRequest{Reference: auth.Reference, ProviderKey: key + "-cap", Amount: paymux.NewMoney(600, "EUR")}); err != nil {
		t.Fatalf("Capture: %v", err)
	}
	if _, err := p.Refund(ctx, &paymux.RefundRequest{Reference: auth.Reference, ProviderKey: key + "-ref", Amount: paymux.NewMoney(100, "EUR")}); err != nil {
		t.Fatalf("Refund: %v", err)
	}
}
