package paymux

import "errors"

// Webhook verification failures. Provider parsers wrap these, and the webhook
// handler maps them to status codes. None of them carries a secret.
var (
	// ErrWebhookNotSigned: the request has no signature header at all.
	ErrWebhookNotSigned = errors.New("paymux: webhook not signed")
	// ErrWebhookBadSignature: a signature is present but none matches.
	ErrWebhookBadSignature = errors.New("paymux: webhook signature does not match")
	// ErrWebhookTooOld: the signed timestamp is outside the tolerance.
	ErrWebhookTooOld = errors.New("paymux: webhook timestamp outside tolerance")
	// ErrWebhookTooLarge: the body exceeds the 1 MiB limit.
	ErrWebhookTooLarge = errors.New("paymux: webhook body too large")
	// ErrWebhookMalformed: the signature verified but the body cannot be
	// parsed, or the body is not what the provider sends.
	ErrWebhookMalformed = errors.New("paymux: webhook body malformed")
	// ErrUnknownProvider: no provider of that name is configured.
	ErrUnknownProvider = errors.New("paymux: unknown provider")
)
