// Package providers_test runs the orchestrator across several real adapters,
// each over its own loopback fake, and checks that the money invariants of
// DESIGN.md hold across providers, not only against the sim.
package providers_test

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/adyen"
	"github.com/paymux/paymux/providers/adyen/adyentest"
	"github.com/paymux/paymux/providers/braintree"
	"github.com/paymux/paymux/providers/braintree/braintreetest"
	"github.com/paymux/paymux/providers/paypal"
	"github.com/paymux/paymux/providers/paypal/paypaltest"
	"github.com/paymux/paymux/providers/providertest"
	"github.com/paymux/paymux/providers/stripe"
	"github.com/paymux/paymux/providers/stripe/stripetest"
	"github.com/paymux/paymux/providers/worldpay"
	"github.com/paymux/paymux/providers/worldpay/worldpaytest"
	"github.com/paymux/paymux/store/memory"
)

// cardRoute is an orchestrator routing cards stripe -> braintree -> adyen,
// each adapter on its own fake with its own fault plan.
type cardRoute struct {
	orch *paymux.Orchestrator

	stripe, braintree, adyen *providertest.Faults
	stripeSrv                *stripetest.Server
	braintreeSrv             *braintreetest.Server
	adyenSrv                 *adyentest.Server
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func setupCards(t *testing.T) *cardRoute {
	t.Helper()
	c := &cardRoute{stripe: &providertest.Faults{}, braintree: &providertest.Faults{}, adyen: &providertest.Faults{}}

	c.stripeSrv = stripetest.NewServer(stripetest.Options{Faults: c.stripe})
	t.Cleanup(c.stripeSrv.Close)
	sp, err := stripe.New(stripe.Config{Name: "stripe", SecretKey: stripetest.DefaultSecretKey, WebhookSecret: stripetest.DefaultWebhookSecret,
		BaseURL: c.stripeSrv.URL, HTTPClient: c.stripeSrv.Client(), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}

	c.braintreeSrv = braintreetest.NewServer(braintreetest.Options{Currency: "EUR", Faults: c.braintree})
	t.Cleanup(c.braintreeSrv.Close)
	bp, err := braintree.New(braintree.Config{Name: "braintree", MerchantID: "test_merchant",
		PublicKey: c.braintreeSrv.PublicKey(), PrivateKey: paymux.Secret(c.braintreeSrv.PrivateKey()),
		BaseURL: c.braintreeSrv.URL(), HTTPClient: c.braintreeSrv.Client(), DefaultCurrency: "EUR", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}

	c.adyenSrv = adyentest.NewServer(adyentest.Options{Faults: c.adyen})
	t.Cleanup(c.adyenSrv.Close)
	ao := c.adyenSrv.Options()
	ap, err := adyen.New(adyen.Config{Name: "adyen", APIKey: paymux.Secret(ao.APIKey), MerchantAccount: ao.MerchantAccount,
		HMACKey: paymux.Secret(ao.HMACKey), BaseURL: c.adyenSrv.URL, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}

	c.orch, err = paymux.New(paymux.Config{
		Providers: []paymux.Provider{sp, bp, ap},
		Routes: []paymux.Rule{{Name: "cards", Primaries: []paymux.Target{{Provider: "stripe"}},
			Fallbacks: []string{"braintree", "adyen"}}},
		Store:  memory.New(memory.Options{}),
		Logger: quiet(),
		Retry:  paymux.RetrySettings{MaxRetries: 2, InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ownsOrder matches the Braintree fake's orderId for a paymux key: the
// adapter writes "<key>" or "<key>#<provider key>".
func ownsOrder(key string) func(string) bool {
	return func(orderID string) bool {
		rest, ok := strings.CutPrefix(orderID, key)
		return ok && (rest == "" || strings.HasPrefix(rest, "#"))
	}
}

// charges is the charge count for key at each fake.
func (c *cardRoute) charges(key string) map[string]int {
	return map[string]int{
		"stripe":    c.stripeSrv.Charges(key),
		"braintree": c.braintreeSrv.ChargesFunc(ownsOrder(key)),
		"adyen":     c.adyenSrv.Charges(key),
	}
}

func (c *cardRoute) total(key string) int {
	n := 0
	for _, v := range c.charges(key) {
		n += v
	}
	return n
}

func card(key, token string) paymux.PaymentRequest {
	return paymux.PaymentRequest{IdempotencyKey: key, Amount: paymux.NewMoney(2500, "EUR"), Country: "DE",
		Method: paymux.PaymentMethod{Type: paymux.MethodCard, Token: token}, ReturnURL: "https://shop.example/return"}
}

// Invariant 1: 64 goroutines racing one key make one charge across all fakes.
func TestRaceOneKeyOneChargeAcrossProviders(t *testing.T) {
	t.Parallel()
	c := setupCards(t)
	ctx := context.Background()
	req := card("order-race", "pm_card_visa")
	var wg sync.WaitGroup
	var ok, inProgress atomic.Int32
	var ids sync.Map
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := c.orch.Authorize(ctx, req)
			switch {
			case err == nil:
				ok.Add(1)
				ids.Store(p.ID+"|"+p.ProviderRef, true)
			case errors.Is(err, paymux.ErrInProgress):
				inProgress.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := c.total(req.IdempotencyKey); got != 1 {
		t.Fatalf("64 racing requests made %d charges: %v", got, c.charges(req.IdempotencyKey))
	}
	if ok.Load() == 0 || ok.Load()+inProgress.Load() != 64 {
		t.Fatalf("ok=%d in-progress=%d", ok.Load(), inProgress.Load())
	}
	for i := 0; i < 5; i++ {
		p, err := c.orch.Authorize(ctx, req)
		if err != nil || p.Status != paymux.StatusCaptured || p.Provider != "stripe" {
			t.Fatalf("replay %d: %+v %v", i, p, err)
		}
		ids.Store(p.ID+"|"+p.ProviderRef, true)
	}
	n := 0
	ids.Range(func(_, _ any) bool { n++; return true })
	if n != 1 || c.total(req.IdempotencyKey) != 1 {
		t.Fatalf("%d distinct payments, charges %v", n, c.charges(req.IdempotencyKey))
	}
}

// Invariant 2: the answer is lost after Stripe committed. A retry of the
// same attempt (same Idempotency-Key) is replayed by Stripe; an answer that
// stays lost leaves the payment unknown and never fails over.
func TestTimeoutAfterCommitAtStripeNeverFailsOver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("replayed", func(t *testing.T) {
		t.Parallel()
		c := setupCards(t)
		c.stripe.Set(providertest.FaultPlan{TimeoutAfterCommitNext: 1})
		p, err := c.orch.Authorize(ctx, card("order-replayed", "pm_card_visa"))
		if p == nil {
			t.Fatalf("no payment: %v", err)
		}
		if p.Provider != "stripe" {
			t.Fatalf("moved to %s after a commit at stripe: %+v %v", p.Provider, p, err)
		}
		switch {
		case err == nil && p.Status == paymux.StatusCaptured:
		case errors.Is(err, paymux.ErrOutcomeUnknown) && p.Status == paymux.StatusUnknown:
		default:
			t.Fatalf("status %s, err %v", p.Status, err)
		}
		if ch := c.charges("order-replayed"); ch["stripe"] != 1 || ch["braintree"] != 0 || ch["adyen"] != 0 {
			t.Fatalf("charges %v", ch)
		}
		p, err = c.orch.Sync(ctx, p.ID)
		if err != nil || p.Status != paymux.StatusCaptured || p.Provider != "stripe" || p.ProviderRef == "" {
			t.Fatalf("sync: %+v %v", p, err)
		}
		if n := c.total("order-replayed"); n != 1 {
			t.Fatalf("charges after sync %v", c.charges("order-replayed"))
		}
	})

	t.Run("lost", func(t *testing.T) {
		t.Parallel()
		c := setupCards(t)
		c.stripe.Set(providertest.FaultPlan{TimeoutAfterCommitNext: 100})
		p, err := c.orch.Authorize(ctx, card("order-lost", "pm_card_visa"))
		if !errors.Is(err, paymux.ErrOutcomeUnknown) || p == nil || p.Status != paymux.StatusUnknown || p.Provider != "stripe" {
			t.Fatalf("authorize: %+v %v", p, err)
		}
		for _, a := range p.Attempts {
			if a.Provider != "stripe" {
				t.Fatalf("attempt at %s after an unknown outcome: %+v", a.Provider, p.Attempts)
			}
		}
		if ch := c.charges("order-lost"); ch["stripe"] != 1 || ch["braintree"] != 0 || ch["adyen"] != 0 {
			t.Fatalf("charges %v", ch)
		}
		// The same key again while unknown: a replay, no new charge anywhere.
		if again, _ := c.orch.Authorize(ctx, card("order-lost", "pm_card_visa")); again == nil || again.Provider != "stripe" {
			t.Fatalf("retry moved the payment: %+v", again)
		}
		if n := c.total("order-lost"); n != 1 {
			t.Fatalf("retry charged: %v", c.charges("order-lost"))
		}
		c.stripe.Set(providertest.FaultPlan{})
		p, err = c.orch.Sync(ctx, p.ID)
		if err != nil || p.Status != paymux.StatusCaptured || p.Provider != "stripe" || p.ProviderRef == "" || p.Captured != 2500 {
			t.Fatalf("sync: %+v %v", p, err)
		}
		if ch := c.charges("order-lost"); ch["stripe"] != 1 || ch["braintree"] != 0 || ch["adyen"] != 0 {
			t.Fatalf("charges after sync %v", ch)
		}
	})
}

// Invariant 2: a Stripe outage is refused before processing, so the payment
// fails over to Braintree and is charged there once.
func TestOutageAtStripeFailsOverToBraintree(t *testing.T) {
	t.Parallel()
	c := setupCards(t)
	ctx := context.Background()
	c.stripe.Set(providertest.FaultPlan{Outage: true})
	// Braintree's approving test nonce: Stripe never sees it (outage).
	p, err := c.orch.Authorize(ctx, card("order-outage", "fake-valid-nonce"))
	if err != nil || p.Status != paymux.StatusCaptured || p.Provider != "braintree" || p.ProviderRef == "" {
		t.Fatalf("authorize: %+v %v", p, err)
	}
	if ch := c.charges("order-outage"); ch["stripe"] != 0 || ch["braintree"] != 1 || ch["adyen"] != 0 {
		t.Fatalf("charges %v", ch)
	}
	if c.stripeSrv.TotalCharges() != 0 {
		t.Fatal("stripe charged during an outage")
	}
	// Replays and a Sync keep it at one charge, at Braintree.
	if again, err := c.orch.Authorize(ctx, card("order-outage", "fake-valid-nonce")); err != nil || again.Provider != "braintree" || again.ProviderRef != p.ProviderRef {
		t.Fatalf("replay: %+v %v", again, err)
	}
	c.stripe.Set(providertest.FaultPlan{})
	if s, err := c.orch.Sync(ctx, p.ID); err != nil || s.Status != paymux.StatusCaptured || s.Provider != "braintree" {
		t.Fatalf("sync: %+v %v", s, err)
	}
	if n := c.total("order-outage"); n != 1 {
		t.Fatalf("charges %v", c.charges("order-outage"))
	}
}

// A hard decline (stolen card) is final: no charge anywhere, no cascade.
func TestHardDeclineAtStripeDoesNotCascade(t *testing.T) {
	t.Parallel()
	c := setupCards(t)
	ctx := context.Background()
	p, err := c.orch.Authorize(ctx, card("order-stolen", "pm_card_chargeDeclinedStolenCard"))
	if !errors.Is(err, paymux.ErrDeclined) || p == nil || p.Status != paymux.StatusFailed {
		t.Fatalf("authorize: %+v %v", p, err)
	}
	if len(p.Attempts) != 1 || p.Attempts[0].Provider != "stripe" || p.Provider != "stripe" {
		t.Fatalf("cascaded: %+v", p.Attempts)
	}
	if n := c.total("order-stolen"); n != 0 {
		t.Fatalf("charges %v", c.charges("order-stolen"))
	}
	if n := c.braintreeSrv.ChargesFunc(func(string) bool { return true }); n != 0 {
		t.Fatalf("braintree charged %d", n)
	}
	// The same key again replays the decline.
	if again, err := c.orch.Authorize(ctx, card("order-stolen", "pm_card_chargeDeclinedStolenCard")); !errors.Is(err, paymux.ErrDeclined) || len(again.Attempts) != 1 {
		t.Fatalf("replay: %+v %v", again, err)
	}
	if n := c.total("order-stolen"); n != 0 {
		t.Fatalf("charges after replay %v", c.charges("order-stolen"))
	}
}

// wallet is an orchestrator routing PayPal wallets to the PayPal adapter and
// cards to Stripe, each on its fake.
type wallet struct {
	orch      *paymux.Orchestrator
	paypalSrv *paypaltest.Server
	stripeSrv *stripetest.Server
}

func setupWallet(t *testing.T) *wallet {
	t.Helper()
	w := &wallet{}
	w.paypalSrv = paypaltest.NewServer(paypaltest.Options{})
	t.Cleanup(w.paypalSrv.Close)
	u, err := url.Parse(w.paypalSrv.URL)
	if err != nil {
		t.Fatal(err)
	}
	po := w.paypalSrv.Options()
	pp, err := paypal.New(paypal.Config{Name: "paypal", ClientID: po.ClientID, ClientSecret: paymux.Secret(po.ClientSecret),
		WebhookID: po.WebhookID, BaseURL: w.paypalSrv.URL, HTTPClient: w.paypalSrv.Client(), CertHosts: []string{u.Hostname()}, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	w.stripeSrv = stripetest.NewServer(stripetest.Options{})
	t.Cleanup(w.stripeSrv.Close)
	sp, err := stripe.New(stripe.Config{Name: "stripe", SecretKey: stripetest.DefaultSecretKey, WebhookSecret: stripetest.DefaultWebhookSecret,
		BaseURL: w.stripeSrv.URL, HTTPClient: w.stripeSrv.Client(), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	w.orch, err = paymux.New(paymux.Config{
		Providers: []paymux.Provider{sp, pp},
		Routes: []paymux.Rule{
			{Name: "wallets", Methods: []paymux.MethodType{paymux.MethodPayPal}, Primaries: []paymux.Target{{Provider: "paypal"}}},
			{Name: "cards", Primaries: []paymux.Target{{Provider: "stripe"}}},
		},
		Store:  memory.New(memory.Options{}),
		Logger: quiet(),
		Retry:  paymux.RetrySettings{MaxRetries: 2, InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func paypalReq(key string) paymux.PaymentRequest {
	return paymux.PaymentRequest{IdempotencyKey: key, Amount: paymux.NewMoney(2500, "EUR"), Country: "DE",
		Method:    paymux.PaymentMethod{Type: paymux.MethodPayPal, Token: paypal.CheckoutToken},
		ReturnURL: "https://shop.example/return"}
}

// The PayPal wallet flow: requires_action with an approval link, the buyer
// approves, Sync completes the order; one order and one charge throughout.
func TestPayPalWalletApproveThenSync(t *testing.T) {
	t.Parallel()
	w := setupWallet(t)
	ctx := context.Background()
	const key = "order-wallet"
	p, err := w.orch.Authorize(ctx, paypalReq(key))
	if err != nil || p.Status != paymux.StatusRequiresAction || p.Provider != "paypal" || p.ProviderRef == "" {
		t.Fatalf("authorize: %+v %v", p, err)
	}
	if p.NextAction == nil || p.NextAction.RedirectURL == "" {
		t.Fatalf("no approval link: %+v", p.NextAction)
	}
	if _, err := url.Parse(p.NextAction.RedirectURL); err != nil {
		t.Fatalf("approval link %q: %v", p.NextAction.RedirectURL, err)
	}
	order := p.ProviderRef
	if n := w.paypalSrv.Charges(key); n != 0 {
		t.Fatalf("charged before approval: %d", n)
	}
	// The same key before approval: the same order, nothing new.
	for i := 0; i < 3; i++ {
		again, err := w.orch.Authorize(ctx, paypalReq(key))
		if err != nil || again.ProviderRef != order || again.Status != paymux.StatusRequiresAction {
			t.Fatalf("repeat %d before approval: %+v %v", i, again, err)
		}
	}
	// Syncing before approval changes nothing and charges nothing.
	if s, err := w.orch.Sync(ctx, p.ID); err != nil || s.Status != paymux.StatusRequiresAction || w.paypalSrv.Charges(key) != 0 {
		t.Fatalf("sync before approval: %+v %v, charges %d", s, err, w.paypalSrv.Charges(key))
	}

	if err := w.paypalSrv.CompleteAction(ctx, order); err != nil {
		t.Fatal(err)
	}
	p, err = w.orch.Sync(ctx, p.ID)
	if err != nil || (p.Status != paymux.StatusCaptured && p.Status != paymux.StatusAuthorized) || p.ProviderRef != order {
		t.Fatalf("sync after approval: %+v %v", p, err)
	}
	if p.Status == paymux.StatusCaptured && p.Captured != 2500 {
		t.Fatalf("captured %d", p.Captured)
	}
	if n := w.paypalSrv.Charges(key); n != 1 {
		t.Fatalf("charges %d", n)
	}
	// Sync again and Authorize again with the same key: still one charge,
	// the same order.
	if s, err := w.orch.Sync(ctx, p.ID); err != nil || s.Status != p.Status {
		t.Fatalf("second sync: %+v %v", s, err)
	}
	for i := 0; i < 3; i++ {
		again, _ := w.orch.Authorize(ctx, paypalReq(key))
		if again == nil || again.ProviderRef != order || again.Provider != "paypal" {
			t.Fatalf("repeat %d after approval: %+v", i, again)
		}
	}
	if n := w.paypalSrv.Charges(key); n != 1 {
		t.Fatalf("charges after repeats %d", n)
	}
	if w.stripeSrv.TotalCharges() != 0 {
		t.Fatal("a wallet payment reached stripe")
	}
}

// The other documented path: the order was approved in the browser and its
// id is the token. Racing requests for the key complete it once.
func TestPayPalApprovedOrderTokenRace(t *testing.T) {
	t.Parallel()
	w := setupWallet(t)
	ctx := context.Background()
	const key = "order-approved"
	order := w.paypalSrv.NewOrder(paypaltest.OrderParams{Amount: paymux.NewMoney(2500, "EUR"), Approved: true, PaymentKey: key})
	req := paypalReq(key)
	req.Method.Token = order
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := w.orch.Authorize(ctx, req)
			if err != nil && !errors.Is(err, paymux.ErrInProgress) {
				t.Error(err)
				return
			}
			if err == nil && (p.Status != paymux.StatusCaptured || p.ProviderRef != order) {
				t.Errorf("%+v", p)
			}
		}()
	}
	wg.Wait()
	if n := w.paypalSrv.Charges(key); n != 1 {
		t.Fatalf("charges %d", n)
	}
}

// Stripe and Braintree both down (refused before processing): Adyen, the
// last fallback, charges once.
func TestDoubleOutageReachesAdyen(t *testing.T) {
	t.Parallel()
	c := setupCards(t)
	ctx := context.Background()
	c.stripe.Set(providertest.FaultPlan{Outage: true})
	c.braintree.Set(providertest.FaultPlan{Outage: true})
	req := card("order-adyen", "")
	req.Method = adyentest.Method("")
	p, err := c.orch.Authorize(ctx, req)
	if err != nil || p.Provider != "adyen" || (p.Status != paymux.StatusCaptured && p.Status != paymux.StatusAuthorized) {
		t.Fatalf("authorize: %+v %v", p, err)
	}
	if ch := c.charges("order-adyen"); ch["stripe"] != 0 || ch["braintree"] != 0 || ch["adyen"] != 1 {
		t.Fatalf("charges %v", ch)
	}
}

// Invariant 2 one hop later: Stripe is down, Braintree commits and the
// answer is lost. Adyen is never tried; Sync finds the one Braintree charge.
func TestTimeoutAfterCommitAtBraintreeNeverReachesAdyen(t *testing.T) {
	t.Parallel()
	c := setupCards(t)
	ctx := context.Background()
	c.stripe.Set(providertest.FaultPlan{Outage: true})
	c.braintree.Set(providertest.FaultPlan{TimeoutAfterCommitNext: 100})
	p, err := c.orch.Authorize(ctx, card("order-bt-lost", "fake-valid-nonce"))
	if !errors.Is(err, paymux.ErrOutcomeUnknown) || p == nil || p.Status != paymux.StatusUnknown || p.Provider != "braintree" {
		t.Fatalf("authorize: %+v %v", p, err)
	}
	if ch := c.charges("order-bt-lost"); ch["stripe"] != 0 || ch["braintree"] != 1 || ch["adyen"] != 0 {
		t.Fatalf("charges %v", ch)
	}
	c.braintree.Set(providertest.FaultPlan{})
	p, err = c.orch.Sync(ctx, p.ID)
	if err != nil || p.Status != paymux.StatusCaptured || p.Provider != "braintree" || p.ProviderRef == "" {
		t.Fatalf("sync: %+v %v", p, err)
	}
	if n := c.total("order-bt-lost"); n != 1 {
		t.Fatalf("charges after sync %v", c.charges("order-bt-lost"))
	}
}

// A 5xx of unknown effect (the fakes do not process it, but the client
// cannot know) must not fail over either; Sync then learns that nothing was
// charged.
func TestServerErrorIsUnknownNotFailover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name, token string
		faults      func(c *cardRoute)
		at          string
	}{
		{"stripe", "pm_card_visa", func(c *cardRoute) { c.stripe.Set(providertest.FaultPlan{ServerErrorRate: 1}) }, "stripe"},
		{"braintree", "fake-valid-nonce", func(c *cardRoute) {
			c.stripe.Set(providertest.FaultPlan{Outage: true})
			c.braintree.Set(providertest.FaultPlan{ServerErrorRate: 1})
		}, "braintree"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := setupCards(t)
			tc.faults(c)
			key := "order-5xx-" + tc.name
			p, err := c.orch.Authorize(ctx, card(key, tc.token))
			if !errors.Is(err, paymux.ErrOutcomeUnknown) || p == nil || p.Status != paymux.StatusUnknown || p.Provider != tc.at {
				t.Fatalf("authorize: %+v %v", p, err)
			}
			if n := c.total(key); n != 0 {
				t.Fatalf("charges %v", c.charges(key))
			}
			c.stripe.Set(providertest.FaultPlan{})
			c.braintree.Set(providertest.FaultPlan{})
			p, err = c.orch.Sync(ctx, p.ID)
			if err != nil || p.Status != paymux.StatusFailed || p.Provider != tc.at {
				t.Fatalf("sync: %+v %v", p, err)
			}
			if n := c.total(key); n != 0 {
				t.Fatalf("charges after sync %v", c.charges(key))
			}
		})
	}
}

// The approval is done but the completing call's answer is lost during
// Sync: the next Sync completes it with the same request id, once.
func TestPayPalCompletionLostDuringSync(t *testing.T) {
	t.Parallel()
	w := setupWallet(t)
	ctx := context.Background()
	const key = "order-wallet-lost"
	p, err := w.orch.Authorize(ctx, paypalReq(key))
	if err != nil || p.Status != paymux.StatusRequiresAction {
		t.Fatalf("authorize: %+v %v", p, err)
	}
	if err := w.paypalSrv.CompleteAction(ctx, p.ProviderRef); err != nil {
		t.Fatal(err)
	}
	w.paypalSrv.Faults.Set(providertest.FaultPlan{TimeoutAfterCommitNext: 100})
	s, err := w.orch.Sync(ctx, p.ID)
	// The adapter may read the order back (reads are not faulted) and see
	// it completed; otherwise the sync fails and the payment waits.
	if err == nil && s.Status != paymux.StatusCaptured && s.Status != paymux.StatusRequiresAction {
		t.Fatalf("sync under lost answers: %+v", s)
	}
	if n := w.paypalSrv.Charges(key); n != 1 {
		t.Fatalf("charges after the lost completion %d", n)
	}
	w.paypalSrv.Faults.Set(providertest.FaultPlan{})
	s, err = w.orch.Sync(ctx, p.ID)
	if err != nil || s.Status != paymux.StatusCaptured || s.Captured != 2500 {
		t.Fatalf("sync: %+v %v", s, err)
	}
	if n := w.paypalSrv.Charges(key); n != 1 {
		t.Fatalf("charges %d", n)
	}
}

// Several reconcilers (or a webhook-triggered Sync and the periodic one)
// complete the same approved order at once: PayPal-Request-Id makes it one
// capture.
func TestPayPalRacingSyncsChargeOnce(t *testing.T) {
	t.Parallel()
	w := setupWallet(t)
	ctx := context.Background()
	const key = "order-wallet-race"
	p, err := w.orch.Authorize(ctx, paypalReq(key))
	if err != nil || p.Status != paymux.StatusRequiresAction {
		t.Fatalf("authorize: %+v %v", p, err)
	}
	if err := w.paypalSrv.CompleteAction(ctx, p.ProviderRef); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = w.orch.Sync(ctx, p.ID)
		}()
	}
	wg.Wait()
	s, err := w.orch.Sync(ctx, p.ID)
	if err != nil || s.Status != paymux.StatusCaptured || s.Captured != 2500 {
		t.Fatalf("sync: %+v %v", s, err)
	}
	if n := w.paypalSrv.Charges(key); n != 1 {
		t.Fatalf("racing syncs charged %d times", n)
	}
}

// Retries of an unknown Stripe payment race Syncs: no charge anywhere but
// the one at Stripe.
func TestUnknownAtStripeRacingRetriesAndSyncs(t *testing.T) {
	t.Parallel()
	c := setupCards(t)
	ctx := context.Background()
	req := card("order-unknown-race", "pm_card_visa")
	c.stripe.Set(providertest.FaultPlan{TimeoutAfterCommitNext: 100})
	p, err := c.orch.Authorize(ctx, req)
	if !errors.Is(err, paymux.ErrOutcomeUnknown) || p == nil {
		t.Fatalf("authorize: %+v %v", p, err)
	}
	c.stripe.Set(providertest.FaultPlan{})
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				_, _ = c.orch.Authorize(ctx, req)
			} else {
				_, _ = c.orch.Sync(ctx, p.ID)
			}
		}()
	}
	wg.Wait()
	s, err := c.orch.Sync(ctx, p.ID)
	if err != nil || s.Status != paymux.StatusCaptured || s.Provider != "stripe" {
		t.Fatalf("sync: %+v %v", s, err)
	}
	if ch := c.charges(req.IdempotencyKey); ch["stripe"] != 1 || ch["braintree"] != 0 || ch["adyen"] != 0 {
		t.Fatalf("charges %v", ch)
	}
}

// Invariant 2 with Worldpay in the middle of a route: Stripe is down,
// Worldpay commits and the answer is lost; Adyen is never tried and Sync
// finds the one Worldpay charge through its recovery query.
func TestTimeoutAfterCommitAtWorldpayNeverReachesAdyen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	stripeFaults, wpFaults := &providertest.Faults{}, &providertest.Faults{}
	ssrv := stripetest.NewServer(stripetest.Options{Faults: stripeFaults})
	t.Cleanup(ssrv.Close)
	sp, err := stripe.New(stripe.Config{Name: "stripe", SecretKey: stripetest.DefaultSecretKey, WebhookSecret: stripetest.DefaultWebhookSecret,
		BaseURL: ssrv.URL, HTTPClient: ssrv.Client(), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	wsrv := worldpaytest.NewServer(worldpaytest.Options{Faults: wpFaults})
	t.Cleanup(wsrv.Close)
	wp, err := worldpay.New(worldpay.Config{Name: "worldpay", Username: "user", Password: "pass", Entity: "default",
		BaseURL: wsrv.URL(), HTTPClient: wsrv.Client(), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	asrv := adyentest.NewServer(adyentest.Options{})
	t.Cleanup(asrv.Close)
	ao := asrv.Options()
	ap, err := adyen.New(adyen.Config{Name: "adyen", APIKey: paymux.Secret(ao.APIKey), MerchantAccount: ao.MerchantAccount,
		HMACKey: paymux.Secret(ao.HMACKey), BaseURL: asrv.URL, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	o, err := paymux.New(paymux.Config{
		Providers: []paymux.Provider{sp, wp, ap},
		Store:     memory.New(memory.Options{}),
		Logger:    quiet(),
		Retry:     paymux.RetrySettings{MaxRetries: 2, InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	stripeFaults.Set(providertest.FaultPlan{Outage: true})
	wpFaults.Set(providertest.FaultPlan{TimeoutAfterCommitNext: 100})
	req := paymux.PaymentRequest{IdempotencyKey: "order-wp-lost", Amount: paymux.NewMoney(4200, "GBP"), Country: "GB",
		Method: paymux.PaymentMethod{Type: paymux.MethodCard, Token: wsrv.SessionHref("Jane Doe")}}
	p, err := o.Authorize(ctx, req)
	if !errors.Is(err, paymux.ErrOutcomeUnknown) || p == nil || p.Status != paymux.StatusUnknown || p.Provider != "worldpay" {
		t.Fatalf("authorize: %+v %v", p, err)
	}
	if ssrv.TotalCharges() != 0 || asrv.Charges(req.IdempotencyKey) != 0 || wsrv.TotalCharges() != 1 {
		t.Fatalf("charges stripe=%d worldpay=%d adyen=%d", ssrv.TotalCharges(), wsrv.TotalCharges(), asrv.Charges(req.IdempotencyKey))
	}
	wpFaults.Set(providertest.FaultPlan{})
	p, err = o.Sync(ctx, p.ID)
	if err != nil || p.Status != paymux.StatusCaptured || p.Provider != "worldpay" || p.ProviderRef == "" {
		t.Fatalf("sync: %+v %v", p, err)
	}
	if wsrv.TotalCharges() != 1 || asrv.Charges(req.IdempotencyKey) != 0 {
		t.Fatalf("charges after sync worldpay=%d adyen=%d", wsrv.TotalCharges(), asrv.Charges(req.IdempotencyKey))
	}
}
