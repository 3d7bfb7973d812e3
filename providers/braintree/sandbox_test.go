//go:build sandbox

package braintree_test

// Tests against Braintree's real sandbox. Run with
//
//	BRAINTREE_MERCHANT_ID=... BRAINTREE_PUBLIC_KEY=... BRAINTREE_PRIVATE_KEY=... \
//	  go test -tags sandbox -run Sandbox ./providers/braintree/
//
// They skip when the variables are unset. The sandbox accepts Braintree's
// fake nonces and test amounts.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/braintree"
)

func sandbox(t *testing.T) *braintree.Provider {
	t.Helper()
	mid, pub, priv := os.Getenv("BRAINTREE_MERCHANT_ID"), os.Getenv("BRAINTREE_PUBLIC_KEY"), os.Getenv("BRAINTREE_PRIVATE_KEY")
	if mid == "" || pub == "" || priv == "" {
		t.Skip("set BRAINTREE_MERCHANT_ID, BRAINTREE_PUBLIC_KEY and BRAINTREE_PRIVATE_KEY to run against the sandbox")
	}
	p, err := braintree.New(braintree.Config{MerchantID: mid, PublicKey: pub, PrivateKey: paymux.Secret(priv), BaseURL: braintree.SandboxURL})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func sandboxKey(t *testing.T) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "paymux-sandbox-" + hex.EncodeToString(b[:])
}

func TestSandboxLifecycle(t *testing.T) {
	p := sandbox(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	key := sandboxKey(t)
	req := authReq(key, paymux.CaptureManual, "fake-valid-nonce", 1000)
	req.ProviderKey = paymux.ProviderKey(key, p.Name(), paymux.OpAuthorize, 1)
	auth, err := p.Authorize(ctx, req)
	if err != nil || auth.Status != paymux.StatusAuthorized {
		t.Fatalf("authorize: %+v %v", auth, err)
	}
	// The same attempt again: at-most-once processing returns it.
	again, err := p.Authorize(ctx, req)
	if err != nil || again.Reference != auth.Reference {
		t.Fatalf("replay: %+v %v", again, err)
	}
	res, err := p.Capture(ctx, &paymux.CaptureRequest{Reference: auth.Reference, ProviderKey: paymux.ProviderKey(key+"/c", p.Name(), paymux.OpCapture, 1), Amount: paymux.NewMoney(600, "USD")})
	if err != nil || res.Status != paymux.StatusCaptured || res.Captured != 600 {
		t.Fatalf("capture: %+v %v", res, err)
	}
	got, err := p.Lookup(ctx, &paymux.LookupRequest{Reference: auth.Reference})
	if err != nil || got.Status != paymux.StatusCaptured {
		t.Fatalf("lookup: %+v %v", got, err)
	}
	// Search is indexed asynchronously; give it a few seconds.
	var byKey *paymux.ProviderPayment
	for i := 0; i < 10; i++ {
		byKey, err = p.Lookup(ctx, &paymux.LookupRequest{PaymentKey: key, ProviderKey: req.ProviderKey})
		if err == nil {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil || byKey.Reference != auth.Reference {
		t.Fatalf("lookup by key: %+v %v", byKey, err)
	}
	// Refunds need settlement, which the sandbox runs in a batch.
	_, err = p.Refund(ctx, &paymux.RefundRequest{Reference: auth.Reference, ProviderKey: paymux.ProviderKey(key+"/r", p.Name(), paymux.OpRefund, 1), Amount: paymux.NewMoney(100, "USD")})
	if err != nil && !errors.Is(err, paymux.ErrConflict) {
		t.Fatalf("refund: %v", err)
	}
}

func TestSandboxVoid(t *testing.T) {
	p := sandbox(t)
	ctx := context.Background()
	key := sandboxKey(t)
	req := authReq(key, paymux.CaptureManual, "fake-valid-nonce", 1000)
	auth, err := p.Authorize(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Void(ctx, &paymux.VoidRequest{Reference: auth.Reference})
	if err != nil || res.Status != paymux.StatusVoided {
		t.Fatalf("void: %+v %v", res, err)
	}
}

func TestSandboxDeclines(t *testing.T) {
	p := sandbox(t)
	ctx := context.Background()
	for _, tt := range []struct {
		nonce  string
		amount int64
		kind   paymux.Kind
	}{
		{"fake-valid-nonce", 200100, paymux.KindSoftDecline},
		{"fake-processor-declined-visa-nonce", 1000, paymux.KindSoftDecline},
		{"fake-gateway-rejected-fraud-nonce", 1000, paymux.KindHardDecline},
		{"fake-luhn-invalid-nonce", 1000, paymux.KindInvalidRequest},
	} {
		_, err := p.Authorize(ctx, authReq(sandboxKey(t), paymux.CaptureAutomatic, tt.nonce, tt.amount))
		if k := paymux.KindOf(err); k != tt.kind {
			t.Errorf("%s %d: kind %s, want %s (%v)", tt.nonce, tt.amount, k, tt.kind, err)
		}
	}
}
