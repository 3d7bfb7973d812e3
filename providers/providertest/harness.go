// Package providertest is the conformance suite every provider adapter runs
// against its fake. An adapter's conformance_test.go calls Run with a Harness.
package providertest

import (
	"context"
	"net/http"
	"testing"

	"github.com/paymux/paymux"
)

// Harness builds a fresh adapter wired to a fresh fake for each subtest.
type Harness struct {
	// New returns a fixture; it registers its own cleanup with t.Cleanup.
	New func(t *testing.T) *Fixture
}

// Fixture is one adapter plus the fake behind it.
type Fixture struct {
	Provider paymux.Provider
	// Currency and Country a plain card payment uses at this provider.
	Currency paymux.Currency
	Country  string
	// The provider's documented test values.
	Approve     paymux.PaymentMethod // approved
	HardDecline paymux.PaymentMethod // e.g. stolen card: a hard decline
	SoftDecline paymux.PaymentMethod // e.g. issuer unavailable / processing error
	ThreeDS     paymux.PaymentMethod // requires 3-D Secure (empty: skip)
	// Approve3DS completes the buyer's action for a payment that returned
	// requires_action (3-D Secure or a PayPal approval); nil: skip.
	CompleteAction func(ctx context.Context, ref string) error
	// Faults drives the fake's fault injection.
	Faults *Faults
	// Charges reports how many times money moved at the fake for paymentKey
	// (the paymux key the adapter passed in AuthorizeRequest.PaymentKey).
	Charges func(paymentKey string) int
	// SignWebhook builds a signed webhook request for an event at the fake,
	// as the provider would send it; nil when the adapter has no webhooks.
	SignWebhook func(t *testing.T, ev WebhookEvent) (http.Header, []byte)
	// Caps says which optional parts the suite tests.
	Caps Caps
}

// WebhookEvent describes a webhook for SignWebhook to build.
type WebhookEvent struct {
	ID          string
	Type        paymux.EventType
	ProviderRef string
	PaymentKey  string
	Amount      paymux.Money
}

// Caps switches optional parts of the suite on.
type Caps struct {
	ManualCapture  bool
	PartialCapture bool
	PartialRefund  bool
	MultipleRefund bool
	Void           bool
	// LookupByKey: Lookup finds a payment by ProviderKey or PaymentKey alone.
	LookupByKey bool
	// RequiresApproval: every authorisation returns requires_action first
	// (PayPal orders) and CompleteAction approves it.
	RequiresApproval bool
	// IdempotentKeys: the provider de-duplicates by ProviderKey, so a retry
	// with the same key never charges twice.
	IdempotentKeys bool
}
