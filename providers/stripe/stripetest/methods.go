package stripetest

import "strings"

// outcome is what confirming with a test PaymentMethod does.
type outcome struct {
	code, decline, advice, msg string
	// action: always requires 3-D Secure; actionIf3DS: only when requested;
	// stepUp: declines authentication_required unless 3-D Secure is
	// requested, then requires it.
	action, actionIf3DS, stepUp bool
}

const (
	msgDeclined = "Your card was declined."
)

// declines maps the documented names (without the pm_card_ / pm_card_visa_
// prefix) to their outcome (docs.stripe.com/testing#declined-payments).
var declines = map[string]outcome{
	"chargeDeclined":                       {code: "card_declined", decline: "generic_decline", msg: msgDeclined},
	"chargeDeclinedInsufficientFunds":      {code: "card_declined", decline: "insufficient_funds", msg: "Your card has insufficient funds."},
	"chargeDeclinedLostCard":               {code: "card_declined", decline: "lost_card", msg: msgDeclined},
	"chargeDeclinedStolenCard":             {code: "card_declined", decline: "stolen_card", msg: msgDeclined},
	"chargeDeclinedFraudulent":             {code: "card_declined", decline: "fraudulent", msg: msgDeclined},
	"chargeDeclinedVelocityLimitExceeded":  {code: "card_declined", decline: "card_velocity_exceeded", msg: msgDeclined},
	"chargeDeclinedExpiredCard":            {code: "expired_card", msg: "Your card has expired."},
	"chargeDeclinedIncorrectCvc":           {code: "incorrect_cvc", msg: "Your card's security code is incorrect."},
	"chargeDeclinedProcessingError":        {code: "processing_error", msg: "An error occurred while processing your card. Try again in a little bit."},
	"chargeDeclinedIncorrectNumber":        {code: "incorrect_number", msg: "Your card number is incorrect."},
	"chargeDeclinedIssuerNotAvailable":     {code: "card_declined", decline: "issuer_not_available", msg: msgDeclined},
	"chargeDeclinedTryAgainLater":          {code: "card_declined", decline: "try_again_later", advice: "try_again_later", msg: msgDeclined},
	"chargeDeclinedAuthenticationRequired": {code: "card_declined", decline: "authentication_required", msg: "Your card was declined. This transaction requires authentication.", stepUp: true},
	"authenticationRequired":               {action: true},
	"threeDSecure2Required":                {action: true},
	"threeDSecureRequired":                 {action: true},
	"threeDSecureOptional":                 {actionIf3DS: true},
}

var approved = map[string]bool{
	"visa": true, "visa_debit": true, "mastercard": true, "mastercard_debit": true, "mastercard_prepaid": true,
	"amex": true, "discover": true, "diners": true, "jcb": true, "unionpay": true,
	"us": true, "gb": true, "de": true, "fr": true, "nl": true, "es": true, "it": true, "ie": true, "at": true,
	"be": true, "ca": true, "au": true, "jp": true, "br": true, "mx": true, "in": true, "sg": true,
}

// lookupPM reports the outcome of a test PaymentMethod id and whether the
// fake knows it.
func lookupPM(pm string) (outcome, bool) {
	name, ok := strings.CutPrefix(pm, "pm_card_")
	if !ok {
		return outcome{}, false
	}
	if approved[name] {
		return outcome{}, true
	}
	if o, ok := declines[name]; ok {
		return o, true
	}
	if rest, ok := strings.CutPrefix(name, "visa_"); ok {
		if o, ok := declines[rest]; ok {
			return o, true
		}
	}
	return outcome{}, false
}
