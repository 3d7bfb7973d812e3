package worldpay

import "github.com/paymux/paymux"

// refusal describes one Worldpay refusal code (developer.worldpay.com
// /products/reference/refusal-response) and what paymux does with it.
type refusal struct {
	code, desc string
	kind       paymux.Kind
	decision   paymux.Decision
}

// Refusal codes. Soft declines cascade (DecisionFailover) only when another
// acquirer could plausibly succeed: the issuer or the network was not
// reachable, or the acquirer itself failed. Insufficient funds, do not
// honour and the like stop: another acquirer reaches the same issuer.
var refusals = []refusal{
	{"1", "Refer to card issuer", paymux.KindSoftDecline, paymux.DecisionStop},
	{"2", "Referred, special condition", paymux.KindSoftDecline, paymux.DecisionStop},
	{"3", "Invalid merchant", paymux.KindSoftDecline, paymux.DecisionFailover}, // our acceptor setup at this acquirer
	{"4", "Hold card / capture card", paymux.KindHardDecline, paymux.DecisionStop},
	{"5", "REFUSED / Do not honour", paymux.KindHardDecline, paymux.DecisionStop},
	{"6", "Try another card", paymux.KindHardDecline, paymux.DecisionStop},
	{"7", "Pickup card, special condition", paymux.KindHardDecline, paymux.DecisionStop},
	{"12", "Invalid transaction", paymux.KindHardDecline, paymux.DecisionStop},
	{"13", "Invalid amount", paymux.KindHardDecline, paymux.DecisionStop},
	{"131", "Invalid amount", paymux.KindHardDecline, paymux.DecisionStop},
	{"14", "Invalid card number", paymux.KindHardDecline, paymux.DecisionStop},
	{"15", "Invalid issuer", paymux.KindHardDecline, paymux.DecisionStop},
	{"19", "Re-enter transaction", paymux.KindSoftDecline, paymux.DecisionFailover},
	{"20", "Acquirer error", paymux.KindSoftDecline, paymux.DecisionFailover},
	{"25", "Unable to locate record", paymux.KindHardDecline, paymux.DecisionStop},
	{"28", "File temporarily unavailable", paymux.KindSoftDecline, paymux.DecisionFailover},
	{"30", "Format error", paymux.KindSoftDecline, paymux.DecisionFailover}, // acquirer-side message problem
	{"33", "Card expired", paymux.KindHardDecline, paymux.DecisionStop},
	{"34", "Fraud suspicion", paymux.KindHardDecline, paymux.DecisionStop},
	{"39", "No credit account", paymux.KindHardDecline, paymux.DecisionStop},
	{"41", "Lost card", paymux.KindHardDecline, paymux.DecisionStop},
	{"43", "Stolen card", paymux.KindHardDecline, paymux.DecisionStop},
	{"46", "Closed account", paymux.KindHardDecline, paymux.DecisionStop},
	{"51", "Insufficient funds", paymux.KindSoftDecline, paymux.DecisionStop},
	{"52", "No checking account", paymux.KindHardDecline, paymux.DecisionStop},
	{"53", "No savings account", paymux.KindHardDecline, paymux.DecisionStop},
	{"54", "Expired card", paymux.KindHardDecline, paymux.DecisionStop},
	{"55", "Invalid security code / PIN", paymux.KindHardDecline, paymux.DecisionStop},
	{"56", "Unknown card", paymux.KindHardDecline, paymux.DecisionStop},
	{"57", "Not permitted to issuer/cardholder", paymux.KindHardDecline, paymux.DecisionStop},
	{"58", "Not permitted to acquirer/terminal", paymux.KindSoftDecline, paymux.DecisionFailover}, // another acquirer may be permitted
	{"59", "Suspected fraud", paymux.KindHardDecline, paymux.DecisionStop},
	{"61", "Exceeds withdrawal amount limit", paymux.KindSoftDecline, paymux.DecisionStop},
	{"62", "Restricted card", paymux.KindHardDecline, paymux.DecisionStop},
	// Codes below are not in the part of Worldpay's table that was
	// retrieved; they carry their ISO 8583 meaning, which Worldpay passes on.
	{"63", "Security violation", paymux.KindHardDecline, paymux.DecisionStop},
	{"65", "Exceeds withdrawal frequency / SCA required", paymux.KindActionRequired, paymux.DecisionStepUp},
	{"75", "PIN tries exceeded", paymux.KindHardDecline, paymux.DecisionStop},
	{"91", "Issuer unavailable / switch inoperative", paymux.KindSoftDecline, paymux.DecisionFailover},
	{"92", "Unable to route", paymux.KindSoftDecline, paymux.DecisionFailover},
	{"96", "System malfunction", paymux.KindSoftDecline, paymux.DecisionFailover},
}

// adviceCodes are the refusal advice codes (the schemes' merchant advice
// codes, which Worldpay returns in advice.code). They take precedence over
// the refusal code.
var adviceCodes = []refusal{
	{"advice:01", "New account information available", paymux.KindHardDecline, paymux.DecisionStop},
	{"advice:02", "Try again later", paymux.KindSoftDecline, paymux.DecisionStop},
	{"advice:03", "Do not try again", paymux.KindHardDecline, paymux.DecisionStop},
	{"advice:04", "Token requirements not fulfilled", paymux.KindHardDecline, paymux.DecisionStop},
	{"advice:21", "Payment cancellation (stop recurring)", paymux.KindHardDecline, paymux.DecisionStop},
	{"advice:24", "Retry after 1 hour", paymux.KindSoftDecline, paymux.DecisionStop},
	{"advice:25", "Retry after 24 hours", paymux.KindSoftDecline, paymux.DecisionStop},
	{"advice:26", "Retry after 2 days", paymux.KindSoftDecline, paymux.DecisionStop},
	{"advice:27", "Retry after 4 days", paymux.KindSoftDecline, paymux.DecisionStop},
	{"advice:28", "Retry after 6 days", paymux.KindSoftDecline, paymux.DecisionStop},
	{"advice:29", "Retry after 8 days", paymux.KindSoftDecline, paymux.DecisionStop},
	{"advice:30", "Retry after 10 days", paymux.KindSoftDecline, paymux.DecisionStop},
}

// outcomes are authorisation outcomes that are failures without a refusal
// code.
var outcomes = []refusal{
	{"3dsAuthenticationFailed", "The buyer failed 3-D Secure", paymux.KindHardDecline, paymux.DecisionStop},
	{"3dsUnavailable", "3-D Secure unavailable", paymux.KindSoftDecline, paymux.DecisionStop},
	{"fraudHighRisk", "FraudSight: high risk", paymux.KindHardDecline, paymux.DecisionStop},
	{"sentForCancellation", "Cancelled at once (AVS/CVC rules)", paymux.KindHardDecline, paymux.DecisionStop},
}

// transport and HTTP rows. No row may say Retry or Failover for anything
// that may have been processed: Worldpay documents no idempotency key, so a
// second POST is not known to be safe. Those stop and paymux reconciles
// with Lookup.
var httpRows = []refusal{
	{"connection_refused", "Connection never established", paymux.KindUnavailable, paymux.DecisionRetry},
	{"http_429", "Throttled before processing", paymux.KindRateLimited, paymux.DecisionRetry},
	{"tooManyRequests", "Throttled before processing", paymux.KindRateLimited, paymux.DecisionRetry},
	{"transport", "Sent, answer lost", paymux.KindOutcomeUnknown, paymux.DecisionStop},
	{"response_lost", "Answer cut mid-body", paymux.KindOutcomeUnknown, paymux.DecisionStop},
	{"undecodable_response", "2xx paymux cannot read", paymux.KindOutcomeUnknown, paymux.DecisionStop},
	{"no_outcome", "2xx without an outcome", paymux.KindOutcomeUnknown, paymux.DecisionStop},
	{"unknown_not_resent", "Earlier try may have been processed", paymux.KindOutcomeUnknown, paymux.DecisionStop},
	{"internalErrorOccurred", "Worldpay 500", paymux.KindOutcomeUnknown, paymux.DecisionStop},
	{"http_500", "5xx of unknown effect", paymux.KindOutcomeUnknown, paymux.DecisionStop},
	{"http_502", "5xx of unknown effect", paymux.KindOutcomeUnknown, paymux.DecisionStop},
	{"http_503", "5xx of unknown effect", paymux.KindOutcomeUnknown, paymux.DecisionStop},
	{"http_504", "5xx of unknown effect", paymux.KindOutcomeUnknown, paymux.DecisionStop},
	{"bodyDoesNotMatchSchema", "Invalid request body", paymux.KindInvalidRequest, paymux.DecisionStop},
	{"headerIsMissing", "Header missing", paymux.KindInvalidRequest, paymux.DecisionStop},
	{"entityIsNotConfigured", "Entity not configured", paymux.KindInvalidRequest, paymux.DecisionStop},
	{"accessDenied", "Credentials refused", paymux.KindAuthentication, paymux.DecisionFailover},
	{"unauthorizedRequest", "Credentials refused", paymux.KindAuthentication, paymux.DecisionFailover},
	{"http_401", "Credentials refused", paymux.KindAuthentication, paymux.DecisionFailover},
	{"http_403", "Forbidden", paymux.KindAuthentication, paymux.DecisionFailover},
	{"action_unavailable", "Worldpay offers no such action now", paymux.KindConflict, paymux.DecisionStop},
	{"duplicateTransactionReference", "transactionReference already used", paymux.KindConflict, paymux.DecisionStop},
}

// DecisionTable returns the table for a provider named name.
func DecisionTable(name string) paymux.DecisionTable {
	t := paymux.DecisionTable{}
	for _, group := range [][]refusal{refusals, adviceCodes, outcomes, httpRows} {
		for _, r := range group {
			t[paymux.DecisionKey{Provider: name, Code: r.code}] = paymux.Classification{Kind: r.kind, Decision: r.decision}
		}
	}
	// Declines of follow-up operations never cascade anywhere.
	for _, r := range refusals {
		for _, op := range []paymux.Operation{paymux.OpCapture, paymux.OpRefund, paymux.OpVoid} {
			t[paymux.DecisionKey{Provider: name, Operation: op, Code: r.code}] = paymux.Classification{Kind: r.kind, Decision: paymux.DecisionStop}
		}
	}
	return t
}
