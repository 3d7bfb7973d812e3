//go:build sandbox

package worldpay_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/worldpay"
)

// Sandbox tests talk to Worldpay's Try environment. They run with
//
//	WORLDPAY_USERNAME=... WORLDPAY_PASSWORD=... WORLDPAY_ENTITY=... \
//	  go test -tags sandbox -run Sandbox ./providers/worldpay/
//
// and skip when the credentials are not set. A Checkout session or token
// href (WORLDPAY_TOKEN_HREF, optional) enables the full payment flow:
// sessions come from Worldpay's Checkout SDK in a browser, which a Go test
// cannot drive.
func sandbox(t *testing.T) (*worldpay.Provider, worldpay.Config) {
	t.Helper()
	user, pass, entity := os.Getenv("WORLDPAY_USERNAME"), os.Getenv("WORLDPAY_PASSWORD"), os.Getenv("WORLDPAY_ENTITY")
	if user == "" || pass == "" || entity == "" {
		t.Skip("set WORLDPAY_USERNAME, WORLDPAY_PASSWORD and WORLDPAY_ENTITY to run the Worldpay sandbox tests")
	}
	cfg := worldpay.Config{Username: user, Password: paymux.Secret(pass), Entity: entity, BaseURL: os.Getenv("WORLDPAY_BASE_URL")}
	p, err := worldpay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p, cfg
}

func sandboxKey() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "sandbox-" + hex.EncodeToString(b)
}

func TestSandboxRecoveryQueryNotFound(t *testing.T) {
	p, _ := sandbox(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := p.Lookup(ctx, &paymux.LookupRequest{ProviderKey: paymux.ProviderKey(sandboxKey(), "worldpay", paymux.OpAuthorize, 1)})
	if paymux.KindOf(err) != paymux.KindNotFound {
		t.Fatalf("recovery query for a reference never used: %v", err)
	}
}

func TestSandboxBadCredentials(t *testing.T) {
	_, cfg := sandbox(t)
	cfg.Password = "wrong"
	p, _ := worldpay.New(cfg)
	_, err := p.Lookup(context.Background(), &paymux.LookupRequest{Reference: "x"})
	if paymux.KindOf(err) != paymux.KindAuthentication {
		t.Fatalf("bad credentials: %v", err)
	}
}

func TestSandboxInvalidSessionIsRefusedBeforeProcessing(t *testing.T) {
	p, _ := sandbox(t)
	key := sandboxKey()
	_, err := p.Authorize(context.Background(), &paymux.AuthorizeRequest{
		PaymentKey: key, ProviderKey: paymux.ProviderKey(key, "worldpay", paymux.OpAuthorize, 1),
		Amount: paymux.NewMoney(100, "GBP"), Capture: paymux.CaptureManual,
		Method: paymux.PaymentMethod{Type: paymux.MethodCard, Token: "https://try.access.worldpay.com/sessions/not-a-session"},
	})
	if k := paymux.KindOf(err); k != paymux.KindInvalidRequest && k != paymux.KindNotFound {
		t.Fatalf("invalid session: %v", err)
	}
}

func TestSandboxFullFlow(t *testing.T) {
	p, _ := sandbox(t)
	href := os.Getenv("WORLDPAY_TOKEN_HREF")
	if href == "" {
		t.Skip("set WORLDPAY_TOKEN_HREF to a Checkout session or token href (optionally #AUTHORISED) for the full flow")
	}
	ctx := context.Background()
	key := sandboxKey()
	res, err := p.Authorize(ctx, &paymux.AuthorizeRequest{
		PaymentKey: key, ProviderKey: paymux.ProviderKey(key, "worldpay", paymux.OpAuthorize, 1),
		Amount: paymux.NewMoney(1000, "GBP"), Capture: paymux.CaptureManual,
		Method: paymux.PaymentMethod{Type: paymux.MethodCard, Token: href},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != paymux.StatusAuthorized {
		t.Fatalf("status %s", res.Status)
	}
	if _, err := p.Capture(ctx, &paymux.CaptureRequest{Reference: res.Reference, ProviderKey: key + "-c", Amount: paymux.NewMoney(600, "GBP")}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Refund(ctx, &paymux.RefundRequest{Reference: res.Reference, ProviderKey: key + "-r", Amount: paymux.NewMoney(100, "GBP")}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Lookup(ctx, &paymux.LookupRequest{Reference: res.Reference}); err != nil {
		t.Fatal(err)
	}
}
