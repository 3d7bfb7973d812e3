package paymux

import (
	"context"
	"net/http"
	"time"
)

// Provider is what a payment provider adapter implements. The doc comments
// here are written for adapter authors.
//
// Every mutating call carries a provider idempotency key that paymux derived
// and saved before the call. Send it in the provider's idempotency header (or
// its equivalent) unchanged: a retry of the same attempt reuses it, and the
// provider's de-duplication is what makes that retry safe.
//
// Errors must be *ProviderError with the Kind that describes what is known
// about the money: Unavailable only when the provider certainly did not
// process the request, OutcomeUnknown whenever it may have. A plain error is
// treated as OutcomeUnknown.
type Provider interface {
	// Name is the stable identifier used in routes, payments and webhooks.
	Name() string
	// Capabilities says what the provider can serve; routing skips it for
	// requests outside them.
	Capabilities() Capabilities
	// Authorize creates and confirms a payment. With CaptureAutomatic the
	// result is captured; with CaptureManual it is authorized. When the buyer
	// must act (3-D Secure, wallet approval) return StatusRequiresAction and a
	// NextAction, not an error.
	Authorize(ctx context.Context, req *AuthorizeRequest) (*ProviderPayment, error)
	// Capture captures Amount (partial allowed when Capabilities says so) of an
	// authorized payment.
	Capture(ctx context.Context, req *CaptureRequest) (*ProviderPayment, error)
	// Refund refunds Amount of a captured payment; several refunds may follow
	// one capture.
	Refund(ctx context.Context, req *RefundRequest) (*ProviderPayment, error)
	// Void cancels an authorization that was not captured.
	Void(ctx context.Context, req *VoidRequest) (*ProviderPayment, error)
	// Lookup returns the provider's current view of a payment, by reference or,
	// when the reference is not known (an authorisation whose outcome was
	// lost), by the attempt's provider key or the paymux key. It returns a
	// ProviderError of Kind NotFound only when the provider is certain that no
	// payment exists for them.
	Lookup(ctx context.Context, req *LookupRequest) (*ProviderPayment, error)
}

// WebhookParser is the optional interface of providers that receive webhooks.
type WebhookParser interface {
	// ParseWebhook verifies the request's signature and timestamp over the
	// exact body bytes, and only then normalises the body into Events. A
	// verification failure must wrap one of ErrWebhookNotSigned,
	// ErrWebhookBadSignature or ErrWebhookTooOld.
	ParseWebhook(ctx context.Context, header http.Header, body []byte) ([]Event, error)
}

// WebhookResponder is the optional interface of providers that expect a
// particular acknowledgement body (Adyen's "[accepted]").
type WebhookResponder interface {
	WebhookAck() (contentType string, body []byte)
}

// DecisionTabler is the optional interface of providers that ship a decision
// table for their error codes.
type DecisionTabler interface {
	DecisionTable() DecisionTable
}

// Capabilities describes what a provider can serve. Empty lists mean "any".
type Capabilities struct {
	Currencies     []Currency
	Countries      []string
	Methods        []MethodType
	ManualCapture  bool
	PartialCapture bool
	PartialRefund  bool
	MultipleRefund bool
	Void           bool
}

// Supports reports whether the provider can take a payment in currency c,
// from country, with method m.
func (c Capabilities) Supports(cur Currency, country string, m MethodType) bool {
	return containsOrEmpty(c.Currencies, cur) && containsOrEmpty(c.Countries, country) && containsOrEmpty(c.Methods, m)
}

func containsOrEmpty[T comparable](list []T, v T) bool {
	if len(list) == 0 {
		return true
	}
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// AuthorizeRequest is one authorisation attempt at one provider.
type AuthorizeRequest struct {
	// PaymentID is paymux's payment id; adapters put it in provider metadata.
	PaymentID string
	// PaymentKey is the shop's idempotency key (for example the order id);
	// adapters put it in metadata or the merchant reference so that Lookup
	// can find the payment when the reference is lost.
	PaymentKey string
	// ProviderKey is the idempotency key for this attempt; send it as is.
	ProviderKey string
	Amount      Money
	Method      PaymentMethod
	Country     string
	Capture     CaptureMode
	Customer    Customer
	Metadata    map[string]string
	ReturnURL   string
	// ThreeDS asks the provider to authenticate the buyer (3-D Secure), set
	// by the risk hook or after an authentication_required decline.
	ThreeDS bool
}

// CaptureRequest captures Amount of the payment at Reference.
type CaptureRequest struct {
	PaymentID   string
	Reference   string
	ProviderKey string
	Amount      Money
	// Final says no further capture will follow (lets providers release the
	// remainder of the authorisation).
	Final bool
}

// RefundRequest refunds Amount of the payment at Reference.
type RefundRequest struct {
	PaymentID   string
	Reference   string
	ProviderKey string
	Amount      Money
	Reason      string
}

// VoidRequest cancels the authorisation at Reference.
type VoidRequest struct {
	PaymentID   string
	Reference   string
	ProviderKey string
}

// LookupRequest finds a payment by Reference, or, if that is empty, by the
// provider key of the authorising attempt or by the paymux key.
type LookupRequest struct {
	PaymentID   string
	Reference   string
	ProviderKey string
	PaymentKey  string
	Amount      Money
	// AttemptStartedAt is when the attempt being looked up was made (zero if
	// unknown). Providers whose records lag (Worldpay's can take minutes)
	// answer OutcomeUnknown rather than NotFound while the attempt is young.
	AttemptStartedAt time.Time
}

// ProviderPayment is the provider's view of a payment after a call.
type ProviderPayment struct {
	Reference  string
	Status     Status
	Amount     Money
	Authorized int64
	Captured   int64
	Refunded   int64
	NextAction *NextAction
	// RefundReference is the provider's id of the refund a Refund call made.
	RefundReference string
	// Refunds lists the refunds the provider knows of, where it reports them.
	Refunds []ProviderRefund
	// DeclineCode is set on Lookup of a failed payment.
	DeclineCode string
	UpdatedAt   time.Time
}

// ProviderRefund is one refund as a provider reports it.
type ProviderRefund struct {
	Reference string
	Amount    int64
	Status    string
}
