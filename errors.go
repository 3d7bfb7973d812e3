package paymux

import (
	"errors"
	"fmt"
	"strings"
)

// Kind classifies a provider failure by what it says about the money. The
// numbers are part of the API: they are stored with payments and are never
// renumbered. New kinds get new numbers.
type Kind int

const (
	KindNone Kind = 0
	// InvalidRequest: the provider refused the request as malformed; nothing
	// executed.
	KindInvalidRequest Kind = 1
	// Authentication: paymux's credentials for the provider were refused.
	KindAuthentication Kind = 2
	// HardDecline: the issuer declined and retrying will not help.
	KindHardDecline Kind = 3
	// SoftDecline: the issuer or acquirer declined for a reason that another
	// attempt may overcome; the decision table says whether it cascades.
	KindSoftDecline Kind = 4
	// ActionRequired: the buyer must authenticate (3-D Secure / SCA).
	KindActionRequired Kind = 5
	// RateLimited: the provider throttled the call; nothing executed.
	KindRateLimited Kind = 6
	// Unavailable: the provider certainly did not process the request
	// (connection refused, breaker open, documented not-processed 5xx).
	KindUnavailable Kind = 7
	// OutcomeUnknown: the request may have been processed (time-out after
	// sending, reset mid-response, 5xx of unknown effect). Never retried
	// elsewhere: the payment becomes unknown until reconciled.
	KindOutcomeUnknown Kind = 8
	// NotFound: the provider has no such payment.
	KindNotFound Kind = 9
	// Conflict: an idempotency conflict or a state the provider refuses
	// (capturing a voided payment).
	KindConflict Kind = 10
	// Unimplemented: the provider does not offer this operation.
	KindUnimplemented Kind = 11
)

var kindNames = [...]string{
	KindNone: "none", KindInvalidRequest: "invalid_request", KindAuthentication: "authentication",
	KindHardDecline: "hard_decline", KindSoftDecline: "soft_decline", KindActionRequired: "action_required",
	KindRateLimited: "rate_limited", KindUnavailable: "unavailable", KindOutcomeUnknown: "outcome_unknown",
	KindNotFound: "not_found", KindConflict: "conflict", KindUnimplemented: "unimplemented",
}

func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// ParseKind is the inverse of Kind.String, for decision tables in config.
func ParseKind(s string) (Kind, error) {
	for i, n := range kindNames {
		if n == s {
			return Kind(i), nil
		}
	}
	return 0, fmt.Errorf("paymux: unknown error kind %q", s)
}

// Sentinel errors. A *ProviderError matches the sentinel of its Kind with
// errors.Is; ErrDeclined matches both decline kinds.
var (
	ErrDeclined            = errors.New("paymux: payment declined")
	ErrHardDecline         = errors.New("paymux: hard decline")
	ErrSoftDecline         = errors.New("paymux: soft decline")
	ErrInvalidRequest      = errors.New("paymux: invalid request")
	ErrAuthentication      = errors.New("paymux: provider authentication failed")
	ErrActionRequired      = errors.New("paymux: buyer action required")
	ErrRateLimited         = errors.New("paymux: provider rate limited")
	ErrUnavailable         = errors.New("paymux: provider unavailable")
	ErrOutcomeUnknown      = errors.New("paymux: outcome unknown")
	ErrNotFound            = errors.New("paymux: not found")
	ErrConflict            = errors.New("paymux: conflict")
	ErrUnimplemented       = errors.New("paymux: unimplemented")
	ErrVersionConflict     = errors.New("paymux: version conflict")
	ErrInProgress          = errors.New("paymux: a request with this idempotency key is in progress")
	ErrIdempotencyMismatch = errors.New("paymux: idempotency key reused with a different request")
	ErrNoRoute             = errors.New("paymux: no route for request")
	ErrAllProvidersFailed  = errors.New("paymux: all providers failed")
	ErrStoreUnavailable    = errors.New("paymux: store unavailable")
	ErrCardData            = errors.New("paymux: card number in a token field")
	ErrRiskRefused         = errors.New("paymux: refused by risk check")
	ErrInvalidState        = errors.New("paymux: operation not allowed in payment state")
	ErrAmountExceeded      = errors.New("paymux: amount exceeds what is available")
	ErrClaimLost           = errors.New("paymux: idempotency claim lost")
)

var kindSentinels = [...]error{
	KindInvalidRequest: ErrInvalidRequest, KindAuthentication: ErrAuthentication,
	KindHardDecline: ErrHardDecline, KindSoftDecline: ErrSoftDecline,
	KindActionRequired: ErrActionRequired, KindRateLimited: ErrRateLimited,
	KindUnavailable: ErrUnavailable, KindOutcomeUnknown: ErrOutcomeUnknown,
	KindNotFound: ErrNotFound, KindConflict: ErrConflict, KindUnimplemented: ErrUnimplemented,
}

// ProviderError is a provider failure, classified. Err holds the raw SDK or
// transport error so errors.As reaches it.
type ProviderError struct {
	Provider    string
	Operation   Operation
	Kind        Kind
	Code        string // the provider's error code ("card_declined", "422:INSTRUMENT_DECLINED")
	DeclineCode string // the issuer decline code where the provider gives one
	HTTPStatus  int
	Message     string
	// Reference is the provider's reference of the payment when the adapter
	// knows it despite the failure (an order created before the call that
	// failed). The orchestrator records it, so Sync can find the payment
	// after an unknown outcome.
	Reference string
	Err       error
}

func (e *ProviderError) Error() string {
	var b strings.Builder
	b.WriteString("paymux: ")
	b.WriteString(e.Provider)
	if e.Operation != "" {
		b.WriteString(" ")
		b.WriteString(string(e.Operation))
	}
	b.WriteString(": ")
	b.WriteString(e.Kind.String())
	if e.Code != "" {
		b.WriteString(" (")
		b.WriteString(e.Code)
		if e.DeclineCode != "" {
			b.WriteString("/")
			b.WriteString(e.DeclineCode)
		}
		b.WriteString(")")
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(Redact(e.Message))
	}
	return b.String()
}

// Unwrap returns the raw error.
func (e *ProviderError) Unwrap() error { return e.Err }

// Is matches the sentinel of the error's Kind, and ErrDeclined for declines.
func (e *ProviderError) Is(target error) bool {
	if target == ErrDeclined {
		return e.Kind == KindHardDecline || e.Kind == KindSoftDecline
	}
	if e.Kind > 0 && int(e.Kind) < len(kindSentinels) {
		return kindSentinels[e.Kind] == target
	}
	return false
}

// KindOf returns the Kind of the first *ProviderError in err's chain, and
// KindOutcomeUnknown for any other non-nil error: an error nobody classified
// may hide a payment that went through.
func KindOf(err error) Kind {
	if err == nil {
		return KindNone
	}
	var pe *ProviderError
	if errors.As(err, &pe) {
		return pe.Kind
	}
	return KindOutcomeUnknown
}

// Decision is what the orchestrator does after a failure.
type Decision int

const (
	// DecisionStop ends the payment with this error.
	DecisionStop Decision = 0
	// DecisionRetry retries the same attempt on the same provider with the
	// same provider idempotency key, with backoff.
	DecisionRetry Decision = 1
	// DecisionFailover moves on to the next provider of the route. Only valid
	// when money provably did not move.
	DecisionFailover Decision = 2
	// DecisionStepUp retries the same provider with 3-D Secure requested.
	DecisionStepUp Decision = 3
)

func (d Decision) String() string {
	switch d {
	case DecisionStop:
		return "stop"
	case DecisionRetry:
		return "retry"
	case DecisionFailover:
		return "failover"
	case DecisionStepUp:
		return "step_up"
	}
	return fmt.Sprintf("decision(%d)", int(d))
}

// DecisionKey addresses one row of a decision table. An empty Operation
// matches every operation.
type DecisionKey struct {
	Provider  string
	Operation Operation
	Code      string
}

// Classification is a decision-table row's value.
type Classification struct {
	Kind     Kind
	Decision Decision
}

// DecisionTable maps provider error codes to what they mean and what to do.
// Adapters ship one built from the provider's documented codes; shops
// override rows through Config.DecisionOverrides.
type DecisionTable map[DecisionKey]Classification

// Lookup finds the row for (provider, op, code), trying the exact operation
// first and then the any-operation row.
func (t DecisionTable) Lookup(provider string, op Operation, code string) (Classification, bool) {
	if t == nil || code == "" {
		return Classification{}, false
	}
	if c, ok := t[DecisionKey{provider, op, code}]; ok {
		return c, true
	}
	c, ok := t[DecisionKey{provider, "", code}]
	return c, ok
}

// failoverSafe reports whether a failure of this kind proves that money did
// not move, so another provider may be tried. No table row can make an
// OutcomeUnknown cascade (DESIGN.md invariant 2).
func failoverSafe(k Kind) bool {
	switch k {
	case KindUnavailable, KindRateLimited, KindAuthentication, KindSoftDecline, KindHardDecline:
		return true
	}
	return false
}

// DefaultDecision is what happens to a kind when no table row names the
// code. Declines stop: nobody may cascade on a code nobody classified.
func DefaultDecision(k Kind) Decision {
	switch k {
	case KindUnavailable, KindRateLimited, KindAuthentication:
		// Refused before processing: another provider is safe to try.
		return DecisionFailover
	case KindActionRequired:
		return DecisionStepUp
	}
	return DecisionStop
}
