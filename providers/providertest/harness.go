// Package providertest is the conformance suite every provider adapter runs
// against its fake. An adapter's conformance_test.go calls Run with a
// Harness whose New builds a Fixture: the adapter, the fake's documented test
// values, and hooks into the fake (faults, charge counts, webhook signing).
// Caps and nil optional fields switch subtests off with t.Skip, so an adapter
// states what it supports instead of writing its own tests for the shared
// semantics. Run's documentation lists the subtests.
//
// Faults is also the fault plan every fake server consults, so that tests and
// the surge tool's chaos mode drive all providers the same way.
package providertest

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/paymux/paymux"
)

// Harness builds a fresh adapter wired to a fresh fake for each subtest.
type Harness struct {
	// New returns a fixture; it registers its own cleanup with t.Cleanup.
	// Run calls it once per subtest, from parallel subtests unless Serial is
	// set, so each fixture needs its own fake (or at least its own Faults).
	New func(t *testing.T) *Fixture
	// Serial runs the subtests one after another, for fixtures that share
	// one outside server (stripe-mock, a sandbox).
	Serial bool
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
	// CompleteAction completes the buyer's action for a payment that
	// returned requires_action (3-D Secure or a PayPal approval); afterwards
	// Lookup (Fixture.State under Caps.NoLookup) must report it authorized
	// (manual capture) or captured (automatic). nil: skip.
	CompleteAction func(ctx context.Context, ref string) error
	// Faults drives the fake's fault injection; nil skips the Faults
	// subtests. The suite sets a plan and resets it to the zero plan.
	Faults *Faults
	// Charges reports how many times money moved at the fake for paymentKey
	// (the paymux key the adapter passed in AuthorizeRequest.PaymentKey);
	// nil: charge counts are not checked.
	Charges func(paymentKey string) int
	// SignWebhook builds a signed webhook request for an event at the fake,
	// as the provider would send it; nil when the adapter has no webhooks.
	SignWebhook func(t *testing.T, ev WebhookEvent) (http.Header, []byte)
	// Caps says which optional parts the suite tests.
	Caps Caps

	// Optional fields, added after the first version; their zero values
	// keep the earlier behaviour.

	// Amount is the amount in minor units of the suite's payments; 0 means
	// 1000. Choose one the provider approves (Braintree declines 2000.00 to
	// 3000.99 in its sandbox).
	Amount int64
	// InsufficientFunds is a test value declined for insufficient funds: a
	// soft decline that must not cascade (empty: skip).
	InsufficientFunds paymux.PaymentMethod
	// UnknownReference is a well-formed reference the provider has never
	// issued, for the NotFound test; "" means "does_not_exist_0000".
	UnknownReference string
	// SignWebhookWrongSecret is like SignWebhook but signs with a secret
	// the adapter does not know (nil: skip that test).
	SignWebhookWrongSecret func(t *testing.T, ev WebhookEvent) (http.Header, []byte)
	// Now is the adapter's clock, for webhook timestamps; nil means
	// time.Now.
	Now func() time.Time
	// UnsignedWebhook builds the same webhook as SignWebhook with its
	// signature removed, for providers that sign inside the body
	// (Braintree's bt_signature form field, Adyen's
	// additionalData.hmacSignature), where stripping headers leaves the
	// request signed. ParseWebhook must refuse it with ErrWebhookNotSigned.
	// nil: the Unsigned subtest only strips the signature headers, and
	// skips when SignWebhook puts none there.
	UnsignedWebhook func(t *testing.T, ev WebhookEvent) (http.Header, []byte)
	// State reports the fake's own record of a payment (by Reference, or by
	// PaymentKey when Reference is empty), with Provider.Lookup's signature
	// so a fake's ledger plugs straight in. When set, the suite asks it,
	// not Provider.Lookup, "what happened at the provider" after each
	// operation; the Lookup subtests still test Provider.Lookup. nil means
	// Provider.Lookup (and no such checks under Caps.NoLookup).
	State func(ctx context.Context, req *paymux.LookupRequest) (*paymux.ProviderPayment, error)
}

// WebhookEvent describes a webhook for SignWebhook to build.
type WebhookEvent struct {
	ID          string
	Type        paymux.EventType
	ProviderRef string
	PaymentKey  string
	Amount      paymux.Money
	// At is the signing time; zero means now. Honoured by fixtures that set
	// Caps.WebhookTimestamps.
	At time.Time
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
	// IdempotencyConflict: a ProviderKey reused with different parameters
	// is refused with KindConflict (Stripe). Without it the suite only
	// checks that no second charge happens (PayPal replays the first).
	IdempotencyConflict bool
	// WebhookTimestamps: the signature covers a timestamp, SignWebhook
	// honours WebhookEvent.At, and ParseWebhook refuses one older than its
	// tolerance with ErrWebhookTooOld.
	WebhookTimestamps bool
	// NoLookup: the provider has no call that returns a payment's state
	// (Adyen Checkout), so Provider.Lookup may answer KindUnimplemented;
	// it must never answer NotFound for a payment that exists. The suite
	// checks state through Fixture.State instead. Excludes LookupByKey.
	NoLookup bool
	// AsyncModifications: the provider accepts captures, refunds and voids
	// as "received" and reports a refusal later by webhook (Adyen). A
	// capture, refund or void the suite expects to be refused may then
	// return no error; Fixture.State (or Provider.Lookup) must show that it
	// moved no money. Needs Fixture.State when NoLookup is set.
	AsyncModifications bool
	// DerivedEventIDs: the provider's notifications carry no event id
	// (Braintree) and the adapter derives one from the content. RoundTrip
	// then accepts the single event of the expected type and reference
	// instead of one with WebhookEvent.ID, and requires its ID to be
	// non-empty and the same when the body is parsed again (it is the
	// de-duplication key).
	DerivedEventIDs bool
}
