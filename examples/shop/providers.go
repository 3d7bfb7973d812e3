package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/adyen"
	"github.com/paymux/paymux/providers/braintree"
	"github.com/paymux/paymux/providers/paypal"
	"github.com/paymux/paymux/providers/stripe"
	"github.com/paymux/paymux/providers/worldpay"
)

// realProviders builds the adapters whose keys are in the environment (the
// providers' test keys for their sandboxes). With none set the shop runs on
// its simulated providers. The route tries them in this order.
func realProviders(log *slog.Logger) ([]paymux.Provider, error) {
	var out []paymux.Provider
	secret := func(name string) paymux.Secret { return paymux.Secret(os.Getenv(name)) }
	add := func(p paymux.Provider, err error) error {
		if err != nil {
			return err
		}
		out = append(out, p)
		return nil
	}
	if os.Getenv("STRIPE_SECRET_KEY") != "" {
		if err := add(stripe.New(stripe.Config{SecretKey: secret("STRIPE_SECRET_KEY"), WebhookSecret: secret("STRIPE_WEBHOOK_SECRET"), Logger: log})); err != nil {
			return nil, fmt.Errorf("stripe: %w", err)
		}
	}
	if os.Getenv("ADYEN_API_KEY") != "" {
		if err := add(adyen.New(adyen.Config{APIKey: secret("ADYEN_API_KEY"), MerchantAccount: os.Getenv("ADYEN_MERCHANT_ACCOUNT"), HMACKey: secret("ADYEN_HMAC_KEY"), Logger: log})); err != nil {
			return nil, fmt.Errorf("adyen: %w", err)
		}
	}
	if os.Getenv("BRAINTREE_PRIVATE_KEY") != "" {
		if err := add(braintree.New(braintree.Config{MerchantID: os.Getenv("BRAINTREE_MERCHANT_ID"), PublicKey: os.Getenv("BRAINTREE_PUBLIC_KEY"), PrivateKey: secret("BRAINTREE_PRIVATE_KEY"), Logger: log})); err != nil {
			return nil, fmt.Errorf("braintree: %w", err)
		}
	}
	if os.Getenv("PAYPAL_CLIENT_SECRET") != "" {
		if err := add(paypal.New(paypal.Config{ClientID: os.Getenv("PAYPAL_CLIENT_ID"), ClientSecret: secret("PAYPAL_CLIENT_SECRET"), WebhookID: os.Getenv("PAYPAL_WEBHOOK_ID"), Logger: log})); err != nil {
			return nil, fmt.Errorf("paypal: %w", err)
		}
	}
	if os.Getenv("WORLDPAY_PASSWORD") != "" {
		var events map[string]paymux.Secret
		if s := os.Getenv("WORLDPAY_EVENT_SECRET"); s != "" {
			events = map[string]paymux.Secret{envOr("WORLDPAY_EVENT_KEY_ID", "1"): paymux.Secret(s)}
		}
		if err := add(worldpay.New(worldpay.Config{Username: os.Getenv("WORLDPAY_USERNAME"), Password: secret("WORLDPAY_PASSWORD"), Entity: os.Getenv("WORLDPAY_ENTITY"), EventSecrets: events, Logger: log})); err != nil {
			return nil, fmt.Errorf("worldpay: %w", err)
		}
	}
	return out, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
