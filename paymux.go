package paymux

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Currency is an ISO 4217 alphabetic code, upper case ("EUR", "JPY").
type Currency string

// currencyExponents holds the number of minor-unit digits per ISO 4217 code.
// Codes not listed here are refused: guessing an exponent would move money by
// a factor of 100.
var currencyExponents = map[Currency]int{
	"AED": 2, "AUD": 2, "BGN": 2, "BHD": 3, "BRL": 2, "CAD": 2, "CHF": 2, "CLP": 0,
	"CNY": 2, "COP": 2, "CZK": 2, "DKK": 2, "EGP": 2, "EUR": 2, "GBP": 2, "HKD": 2,
	"HUF": 2, "IDR": 2, "ILS": 2, "INR": 2, "ISK": 0, "JOD": 3, "JPY": 0, "KRW": 0,
	"KWD": 3, "MXN": 2, "MYR": 2, "NOK": 2, "NZD": 2, "OMR": 3, "PHP": 2, "PLN": 2,
	"RON": 2, "SAR": 2, "SEK": 2, "SGD": 2, "THB": 2, "TND": 3, "TRY": 2, "TWD": 2,
	"UAH": 2, "USD": 2, "VND": 0, "XAF": 0, "XOF": 0, "ZAR": 2,
}

// Exponent returns the number of minor-unit digits of c (USD 2, JPY 0, KWD 3)
// and whether c is a known currency.
func (c Currency) Exponent() (int, bool) {
	e, ok := currencyExponents[c]
	return e, ok
}

// Valid reports whether c is a currency paymux knows the exponent of.
func (c Currency) Valid() bool {
	_, ok := currencyExponents[c]
	return ok
}

// Money is an amount in integer minor units of a currency. There are no
// floats anywhere money flows.
type Money struct {
	Amount   int64    `json:"amount"`
	Currency Currency `json:"currency"`
}

// NewMoney is shorthand for Money{Amount: amount, Currency: currency}.
func NewMoney(amount int64, currency Currency) Money {
	return Money{Amount: amount, Currency: currency}
}

// ErrInvalidMoney is returned by ParseMoney and Money.Validate.
var ErrInvalidMoney = errors.New("paymux: invalid money")

// ParseMoney parses a decimal major-unit string such as "12.34" into minor
// units of currency, without floating point. More fraction digits than the
// currency allows is an error, never a rounding.
func ParseMoney(s string, currency Currency) (Money, error) {
	exp, ok := currency.Exponent()
	if !ok {
		return Money{}, fmt.Errorf("%w: unknown currency %q", ErrInvalidMoney, string(currency))
	}
	s = strings.TrimSpace(s)
	neg := false
	if strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || (hasDot && frac == "") || len(frac) > exp || !allDigits(whole) || !allDigits(frac) {
		return Money{}, fmt.Errorf("%w: %q is not an amount in %s", ErrInvalidMoney, s, currency)
	}
	frac += strings.Repeat("0", exp-len(frac))
	n, err := strconv.ParseInt(whole+frac, 10, 64)
	if err != nil {
		return Money{}, fmt.Errorf("%w: %q is out of range", ErrInvalidMoney, s)
	}
	if neg {
		n = -n
	}
	return Money{Amount: n, Currency: currency}, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String formats m in major units with its currency code: "12.34 EUR", "500 JPY".
func (m Money) String() string {
	return m.Decimal() + " " + string(m.Currency)
}

// Decimal formats the amount in major units without the currency code.
func (m Money) Decimal() string {
	exp, ok := m.Currency.Exponent()
	if !ok {
		exp = 0
	}
	a := m.Amount
	sign := ""
	if a < 0 {
		sign = "-"
		if a == -1<<63 {
			return "invalid"
		}
		a = -a
	}
	digits := strconv.FormatInt(a, 10)
	if exp == 0 {
		return sign + digits
	}
	if len(digits) <= exp {
		digits = strings.Repeat("0", exp-len(digits)+1) + digits
	}
	return sign + digits[:len(digits)-exp] + "." + digits[len(digits)-exp:]
}

// Validate checks that the currency is known and the amount is positive.
func (m Money) Validate() error {
	if !m.Currency.Valid() {
		return fmt.Errorf("%w: unknown currency %q", ErrInvalidMoney, string(m.Currency))
	}
	if m.Amount <= 0 {
		return fmt.Errorf("%w: amount must be positive, got %d", ErrInvalidMoney, m.Amount)
	}
	return nil
}

// MethodType names a kind of payment method, used by routing and by
// provider capabilities.
type MethodType string

const (
	MethodCard      MethodType = "card"
	MethodPayPal    MethodType = "paypal"
	MethodApplePay  MethodType = "applepay"
	MethodGooglePay MethodType = "googlepay"
	MethodIDEAL     MethodType = "ideal"
	MethodSEPA      MethodType = "sepa"
)

// PaymentMethod is a provider token, nonce, wallet token or PayPal order id.
// It is never a card number: paymux refuses anything that looks like one.
type PaymentMethod struct {
	Type  MethodType `json:"type"`
	Token string     `json:"token"`
}

// CaptureMode says whether an authorisation is captured at once.
type CaptureMode string

const (
	// CaptureAutomatic captures in the same call as the authorisation.
	CaptureAutomatic CaptureMode = "automatic"
	// CaptureManual leaves the payment authorized until Capture is called.
	CaptureManual CaptureMode = "manual"
)

// Customer identifies the buyer. Email and IP feed risk checks and provider
// fraud tools; they are never logged by paymux.
type Customer struct {
	ID    string `json:"id,omitempty"`
	Email string `json:"email,omitempty"`
	IP    string `json:"ip,omitempty"`
}

// PaymentRequest is what a shop asks the orchestrator to authorise.
type PaymentRequest struct {
	// IdempotencyKey is required. The same key always yields the same payment;
	// an order id is a good one.
	IdempotencyKey string            `json:"idempotency_key"`
	Amount         Money             `json:"amount"`
	Method         PaymentMethod     `json:"method"`
	Country        string            `json:"country,omitempty"` // ISO 3166-1 alpha-2
	Campaign       string            `json:"campaign,omitempty"`
	Capture        CaptureMode       `json:"capture,omitempty"` // "" means automatic
	Customer       Customer          `json:"customer,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	ReturnURL      string            `json:"return_url,omitempty"`
}

// Status is where a payment is in its life. Transitions only move forward;
// see CanTransition.
type Status string

const (
	StatusPending        Status = "pending"
	StatusRequiresAction Status = "requires_action"
	StatusAuthorized     Status = "authorized"
	StatusCaptured       Status = "captured"
	StatusRefunded       Status = "refunded"
	StatusVoided         Status = "voided"
	StatusFailed         Status = "failed"
	// StatusUnknown means the outcome at the provider is not known yet (a time
	// out after the request was sent). Only Sync or a webhook moves it on.
	StatusUnknown Status = "unknown"
)

// rank orders statuses so that a state can only move forward. Terminal states
// share the top rank so none can replace another.
func (s Status) rank() int {
	switch s {
	case StatusPending:
		return 0
	case StatusUnknown:
		return 1
	case StatusRequiresAction:
		return 2
	case StatusAuthorized:
		return 3
	case StatusCaptured:
		return 4
	case StatusRefunded:
		return 5
	case StatusVoided, StatusFailed:
		return 6
	}
	return -1
}

// Final reports whether no further transition is possible.
func (s Status) Final() bool {
	return s == StatusVoided || s == StatusFailed || s == StatusRefunded
}

// CanTransition reports whether a payment may move from s to next. Moving to
// the same status is allowed (a partial capture or refund keeps the status).
//
//	pending/unknown -> requires_action -> authorized -> captured -> refunded
//	any non-final state -> failed; pending/unknown/requires_action/authorized -> voided
func (s Status) CanTransition(next Status) bool {
	if s == next {
		return true
	}
	if s.Final() || next.rank() < 0 {
		return false
	}
	switch next {
	case StatusFailed:
		return s != StatusCaptured
	case StatusVoided:
		return s != StatusCaptured
	case StatusPending:
		return false
	case StatusUnknown:
		return s == StatusPending
	}
	return next.rank() > s.rank()
}

// NextAction tells the shop that the buyer must act, typically a 3-D Secure
// challenge or a wallet approval page.
type NextAction struct {
	Type        string `json:"type"` // "redirect", "three_ds", "approve"
	RedirectURL string `json:"redirect_url,omitempty"`
	// Method is the HTTP method of the redirect ("" means GET); a POST
	// redirect sends Data's fields as a form.
	Method string `json:"method,omitempty"`
	// Data is the provider's own action object, passed through unchanged
	// for the provider's front-end component (Adyen's threeDS2 action).
	Data json.RawMessage `json:"data,omitempty"`
}

// Operation names a provider call.
type Operation string

const (
	OpAuthorize Operation = "authorize"
	OpCapture   Operation = "capture"
	OpRefund    Operation = "refund"
	OpVoid      Operation = "void"
	OpLookup    Operation = "lookup"
)

// Attempt records one call to one provider. Its ProviderKey is derived and
// saved before the call is made, so a crash can always be reconciled.
type Attempt struct {
	Number      int           `json:"number"`
	Provider    string        `json:"provider"`
	Operation   Operation     `json:"operation"`
	ProviderKey string        `json:"provider_key"`
	Outcome     string        `json:"outcome"` // "pending", "succeeded", "failed", "unknown", "action_required"
	Kind        Kind          `json:"kind,omitempty"`
	Code        string        `json:"code,omitempty"`
	Decision    Decision      `json:"decision,omitempty"`
	Latency     time.Duration `json:"latency,omitempty"`
	StartedAt   time.Time     `json:"started_at"`
}

// Attempt outcomes.
const (
	OutcomePending        = "pending"
	OutcomeSucceeded      = "succeeded"
	OutcomeFailed         = "failed"
	OutcomeUnknown        = "unknown"
	OutcomeActionRequired = "action_required"
)

// Refund is one refund of a payment.
type Refund struct {
	Key         string `json:"key"` // the caller's idempotency key for the refund
	Reference   string `json:"reference,omitempty"`
	Amount      int64  `json:"amount"`
	Status      string `json:"status"` // "succeeded", "pending", "failed"
	ProviderKey string `json:"provider_key,omitempty"`
}

// Payment is paymux's record of one payment.
type Payment struct {
	ID             string            `json:"id"`
	IdempotencyKey string            `json:"idempotency_key"`
	Provider       string            `json:"provider,omitempty"`
	ProviderRef    string            `json:"provider_ref,omitempty"`
	Status         Status            `json:"status"`
	Amount         Money             `json:"amount"`
	Authorized     int64             `json:"authorized"`
	Captured       int64             `json:"captured"`
	Refunded       int64             `json:"refunded"`
	Capture        CaptureMode       `json:"capture,omitempty"`
	Method         MethodType        `json:"method,omitempty"`
	Country        string            `json:"country,omitempty"`
	Campaign       string            `json:"campaign,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	NextAction     *NextAction       `json:"next_action,omitempty"`
	FailureKind    Kind              `json:"failure_kind,omitempty"`
	FailureCode    string            `json:"failure_code,omitempty"`
	Attempts       []Attempt         `json:"attempts,omitempty"`
	Refunds        []Refund          `json:"refunds,omitempty"`
	// Operations holds the caller keys of captures and voids already applied,
	// so that a repeated Capture or Void with the same key is a replay.
	Operations []string  `json:"operations,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	// Version is the compare-and-set counter; stores bump it on every save.
	Version int64 `json:"version"`
}

// Clone returns a deep copy, so callers can never mutate a stored payment.
func (p *Payment) Clone() *Payment {
	if p == nil {
		return nil
	}
	c := *p
	if p.Metadata != nil {
		c.Metadata = make(map[string]string, len(p.Metadata))
		for k, v := range p.Metadata {
			c.Metadata[k] = v
		}
	}
	if p.NextAction != nil {
		na := *p.NextAction
		na.Data = append(json.RawMessage(nil), p.NextAction.Data...)
		c.NextAction = &na
	}
	c.Attempts = append([]Attempt(nil), p.Attempts...)
	c.Refunds = append([]Refund(nil), p.Refunds...)
	c.Operations = append([]string(nil), p.Operations...)
	return &c
}

// EventType is the normalised kind of a provider webhook.
type EventType string

const (
	EventAuthorized     EventType = "authorized"
	EventCaptured       EventType = "captured"
	EventRefunded       EventType = "refunded"
	EventFailed         EventType = "failed"
	EventVoided         EventType = "voided"
	EventActionRequired EventType = "action_required"
	EventDisputeOpened  EventType = "dispute_opened"
	EventCaptureFailed  EventType = "capture_failed"
	EventRefundFailed   EventType = "refund_failed"
	// EventOther is a verified event paymux does not act on; it is still
	// acknowledged and handed to the subscriber.
	EventOther EventType = "other"
)

// Event is a provider webhook, verified and normalised.
type Event struct {
	Provider    string    `json:"provider"`
	ID          string    `json:"id"` // the provider's event id, the de-duplication key
	Type        EventType `json:"type"`
	ProviderRef string    `json:"provider_ref"`
	// PaymentKey is the paymux idempotency key when the provider echoes it
	// (metadata, merchant reference); it finds payments whose reference is not
	// known yet.
	PaymentKey string `json:"payment_key,omitempty"`
	Amount     Money  `json:"amount"`
	Success    bool   `json:"success"`
	Code       string `json:"code,omitempty"`
	// RefundRef is the provider's id of the refund a refunded event is
	// about, when the event's Amount is that refund's amount rather than the
	// running total (Adyen). Each refund is then counted once and summed.
	RefundRef  string    `json:"refund_ref,omitempty"`
	OccurredAt time.Time `json:"occurred_at"`
	Raw        []byte    `json:"raw,omitempty"`
}
