package braintree

import (
	"strconv"

	"github.com/paymux/paymux"
)

// Codes this adapter puts in ProviderError.Code; processor declines carry
// the processor response code ("2001") in DeclineCode, GraphQL errors their
// legacyCode.
//
//	processor_declined          + DeclineCode 2000..2999, 3000
//	gateway_rejected:<reason>   avs, cvv, avs_and_cvv, three_d_secure, duplicate, fraud, ...
//	failed                      transaction status FAILED
//	VALIDATION, AUTHENTICATION, AUTHORIZATION, NOT_FOUND, RESOURCE_LIMIT,
//	NOT_IMPLEMENTED, INTERNAL, SERVICE_AVAILABILITY   GraphQL errorClass
//	VALIDATION:apiRequestKey    the key is in flight or was used with other input
//	VALIDATION:state            refused in this state (legacyCode in DeclineCode)
//	server_error, network_error, connection_refused, malformed_response

// hardCodes are processor response codes Braintree's authorization-responses
// list types "Hard" and that paymux relies on. Other codes take their kind
// from the transaction's declineType (HARD/SOFT), which Braintree sends with
// every processor decline and which PROVIDERS.md says to prefer.
var hardCodes = []string{"2004", "2005", "2006", "2007", "2008", "2009", "2010", "2012", "2013", "2014", "2015", "2017", "2018", "2019", "2020", "2021", "2044", "2047", "2053"}

// softStopCodes are soft declines that another acquirer will not fix
// (insufficient funds, limits, generic do-not-honour): retry later with the
// same card, but no cascade.
var softStopCodes = []string{"2000", "2001", "2002", "2003", "2038", "2046"}

// declineKind classifies a processor decline: the code table first, then
// Braintree's declineType, and hard when neither says (an unclassified
// decline must not cascade).
func declineKind(code, declineType string) paymux.Kind {
	for _, c := range hardCodes {
		if c == code {
			return paymux.KindHardDecline
		}
	}
	if code == "2099" {
		return paymux.KindActionRequired
	}
	if n, err := strconv.Atoi(code); err == nil && n >= 3000 && n < 4000 {
		return paymux.KindSoftDecline
	}
	switch declineType {
	case "SOFT":
		return paymux.KindSoftDecline
	case "HARD":
		return paymux.KindHardDecline
	}
	for _, c := range softStopCodes {
		if c == code {
			return paymux.KindSoftDecline
		}
	}
	return paymux.KindHardDecline
}

// gatewayRejectionKind classifies a gateway rejection reason (lower case).
func gatewayRejectionKind(reason string) paymux.Kind {
	switch reason {
	case "three_d_secure":
		// The buyer must authenticate in the browser and bring a new nonce.
		return paymux.KindActionRequired
	case "duplicate":
		// Braintree refused it as a duplicate; the original transaction may
		// have succeeded (PROVIDERS.md 6). The table row says what that
		// means for the money.
		return paymux.KindConflict
	case "application_incomplete", "manual_transactions_disabled", "union_pay_enrollment_required":
		return paymux.KindInvalidRequest
	}
	// avs, cvv, avs_and_cvv (merchant rules), fraud, risk_threshold,
	// excessive_retry, payment_method_blocked, token_issuance, ...
	return paymux.KindHardDecline
}

// decisionTable is the adapter's table for provider name.
func decisionTable(name string) paymux.DecisionTable {
	t := paymux.DecisionTable{}
	row := func(code string, k paymux.Kind, d paymux.Decision) {
		t[paymux.DecisionKey{Provider: name, Code: code}] = paymux.Classification{Kind: k, Decision: d}
	}
	for _, c := range hardCodes {
		row(c, paymux.KindHardDecline, paymux.DecisionStop)
	}
	for _, c := range softStopCodes {
		row(c, paymux.KindSoftDecline, paymux.DecisionStop)
	}
	// Cardholder authentication required: Braintree authenticates client
	// side, so the shop must collect a 3-D Secure nonce; no server step-up.
	row("2099", paymux.KindActionRequired, paymux.DecisionStop)
	// 3000: processor network unavailable; the transaction failed before any
	// issuer saw it, so another provider may try.
	row("3000", paymux.KindSoftDecline, paymux.DecisionFailover)
	row("failed", paymux.KindSoftDecline, paymux.DecisionFailover)
	row("settlement_declined", paymux.KindHardDecline, paymux.DecisionStop)

	// Gateway rejections. avs/cvv/three_d_secure are the merchant's own
	// rules: stop by default; a shop whose policy allows can override with
	// DecisionFailover.
	for _, r := range []string{"avs", "cvv", "avs_and_cvv"} {
		row("gateway_rejected:"+r, paymux.KindHardDecline, paymux.DecisionStop)
	}
	row("gateway_rejected:three_d_secure", paymux.KindActionRequired, paymux.DecisionStop)
	for _, r := range []string{"fraud", "risk_threshold", "excessive_retry", "payment_method_blocked", "token_issuance", "too_many_confirmation_attempts", "unknown"} {
		row("gateway_rejected:"+r, paymux.KindHardDecline, paymux.DecisionStop)
	}
	for _, r := range []string{"application_incomplete", "manual_transactions_disabled", "union_pay_enrollment_required"} {
		row("gateway_rejected:"+r, paymux.KindInvalidRequest, paymux.DecisionStop)
	}
	// Refused requests whose twin may have moved money: never retry, never
	// fail over, and do not fail the payment either. OutcomeUnknown makes
	// the orchestrator mark it unknown and reconcile it by Lookup.
	row("gateway_rejected:duplicate", paymux.KindOutcomeUnknown, paymux.DecisionStop)

	// GraphQL error classes.
	row("VALIDATION", paymux.KindInvalidRequest, paymux.DecisionStop)
	row(codeAPIRequestKey, paymux.KindOutcomeUnknown, paymux.DecisionStop)
	row(codeStateConflict, paymux.KindConflict, paymux.DecisionStop)
	row("AUTHENTICATION", paymux.KindAuthentication, paymux.DecisionFailover)
	row("AUTHORIZATION", paymux.KindAuthentication, paymux.DecisionFailover)
	row("NOT_FOUND", paymux.KindNotFound, paymux.DecisionStop)
	row("NOT_IMPLEMENTED", paymux.KindUnimplemented, paymux.DecisionStop)
	// RESOURCE_LIMIT (429): Braintree documents that such a request created
	// nothing; retry, then fail over.
	row("RESOURCE_LIMIT", paymux.KindRateLimited, paymux.DecisionRetry)
	// INTERNAL / 5xx / lost answers: retry the same attempt with the same
	// apiRequestKey (safe by at-most-once processing); never fail over.
	for _, c := range []string{"INTERNAL", "SERVICE_AVAILABILITY", "UNKNOWN", "server_error", "network_error"} {
		row(c, paymux.KindOutcomeUnknown, paymux.DecisionRetry)
	}
	row("malformed_response", paymux.KindOutcomeUnknown, paymux.DecisionStop)
	// A lookup moves no money: the same failures only make it unavailable.
	for _, c := range []string{"INTERNAL", "SERVICE_AVAILABILITY", "UNKNOWN", "server_error", "network_error", "malformed_response"} {
		t[paymux.DecisionKey{Provider: name, Operation: paymux.OpLookup, Code: c}] = paymux.Classification{Kind: paymux.KindUnavailable, Decision: paymux.DecisionRetry}
	}
	row("connection_refused", paymux.KindUnavailable, paymux.DecisionFailover)
	return t
}
