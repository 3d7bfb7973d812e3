package adyen

import (
	"github.com/paymux/paymux"
)

// Codes the adapter puts in ProviderError.Code for failures that are not an
// Adyen errorCode.
const (
	// CodeTransient: the answer carried "Transient-Error: true": no message
	// reached the issuer, so the same key may be retried or another provider
	// tried.
	CodeTransient = "transient"
	// CodeConnect: the connection was never established; nothing was sent.
	CodeConnect = "connect_failed"
	// CodeTimeout: the request was sent and no answer came in time.
	CodeTimeout = "timeout"
	// CodeNetwork: the connection broke after the request was (maybe) sent.
	CodeNetwork = "network_error"
	// CodeBadResponse: a 200 whose body paymux cannot read, or an unknown
	// resultCode. Adyen may have authorised.
	CodeBadResponse = "bad_response"
	// CodeLookupUnsupported: Adyen Checkout offers no payment lookup.
	CodeLookupUnsupported = "lookup_unsupported"
)

// refusalRow classifies one refusalReasonCode. Kinds and decisions follow
// PROVIDERS.md section 6; the names are Adyen's refusalReason texts.
type refusalRow struct {
	code, reason string
	kind         paymux.Kind
	decision     paymux.Decision
}

// refusals is the source of the decision table's decline rows and of the
// Kind the adapter gives a refusal. An unlisted code stays a soft decline
// that stops: nobody cascades on a code nobody classified.
var refusals = []refusalRow{
	// Generic: another attempt is unlikely to help and no cascade.
	{"0", "Unknown", paymux.KindSoftDecline, paymux.DecisionStop},
	{"2", "Refused", paymux.KindSoftDecline, paymux.DecisionStop},
	{"3", "Referral", paymux.KindSoftDecline, paymux.DecisionStop},
	{"27", "Declined Non Generic", paymux.KindSoftDecline, paymux.DecisionStop},
	// Technical: the issuer never decided; another acquirer may succeed.
	{"4", "Acquirer Error", paymux.KindSoftDecline, paymux.DecisionFailover},
	{"9", "Issuer Unavailable", paymux.KindSoftDecline, paymux.DecisionFailover},
	{"21", "Not Submitted", paymux.KindSoftDecline, paymux.DecisionFailover},
	// Later, or after the shopper acts: another acquirer will not fix it.
	{"12", "Not enough balance", paymux.KindSoftDecline, paymux.DecisionStop},
	{"28", "Withdrawal amount exceeded", paymux.KindSoftDecline, paymux.DecisionStop},
	{"29", "Withdrawal count exceeded", paymux.KindSoftDecline, paymux.DecisionStop},
	// Authentication: retry the same provider with 3-D Secure (once).
	{"11", "3D Not Authenticated", paymux.KindActionRequired, paymux.DecisionStepUp},
	{"38", "Authentication required", paymux.KindActionRequired, paymux.DecisionStepUp},
	// Hard.
	{"5", "Blocked Card", paymux.KindHardDecline, paymux.DecisionStop},
	{"6", "Expired Card", paymux.KindHardDecline, paymux.DecisionStop},
	{"7", "Invalid Amount", paymux.KindHardDecline, paymux.DecisionStop},
	{"8", "Invalid Card Number", paymux.KindHardDecline, paymux.DecisionStop},
	{"10", "Not supported", paymux.KindHardDecline, paymux.DecisionStop},
	{"14", "Acquirer Fraud", paymux.KindHardDecline, paymux.DecisionStop},
	{"20", "FRAUD", paymux.KindHardDecline, paymux.DecisionStop},
	{"22", "FRAUD-CANCELLED", paymux.KindHardDecline, paymux.DecisionStop},
	{"23", "Transaction Not Permitted", paymux.KindHardDecline, paymux.DecisionStop},
	{"24", "CVC Declined", paymux.KindHardDecline, paymux.DecisionStop},
	{"25", "Restricted Card", paymux.KindHardDecline, paymux.DecisionStop},
	{"26", "Revocation Of Auth", paymux.KindHardDecline, paymux.DecisionStop},
	{"31", "Issuer Suspected Fraud", paymux.KindHardDecline, paymux.DecisionStop},
	{"32", "AVS Declined", paymux.KindHardDecline, paymux.DecisionStop},
	{"46", "Transaction blocked by Adyen to prevent excessive retry fees", paymux.KindHardDecline, paymux.DecisionStop},
	// The payer acted: no retry.
	{"15", "Cancelled", paymux.KindHardDecline, paymux.DecisionStop},
	{"16", "Shopper Cancelled", paymux.KindHardDecline, paymux.DecisionStop},
	{"17", "Invalid Pin", paymux.KindHardDecline, paymux.DecisionStop},
	{"18", "Pin tries exceeded", paymux.KindHardDecline, paymux.DecisionStop},
	{"19", "Pin validation not possible", paymux.KindHardDecline, paymux.DecisionStop},
}

// refusalCode is how a refusal's code appears in ProviderError.DeclineCode
// and in the decision table: "refusal:" plus refusalReasonCode, so it never
// collides with an HTTP-level code.
func refusalCode(reasonCode string) string { return "refusal:" + reasonCode }

// refusalKind is the Kind of a refusal with this refusalReasonCode.
func refusalKind(reasonCode string) paymux.Kind {
	for _, r := range refusals {
		if r.code == reasonCode {
			return r.kind
		}
	}
	return paymux.KindSoftDecline
}

// DecisionTable returns Adyen's rows: refusal reasons, and the transport
// codes whose meaning is Adyen-specific. A transient error is retried with
// the same key (Adyen processes it as a first request) and, once retries run
// out, fails over. A timeout or a broken connection is retried with the same
// key: Adyen answers a repeated key from its idempotency store, so the retry
// learns the outcome without a second authorisation; it never fails over.
func (p *Provider) DecisionTable() paymux.DecisionTable {
	return decisionTable(p.name)
}

func decisionTable(name string) paymux.DecisionTable {
	t := paymux.DecisionTable{}
	for _, r := range refusals {
		t[paymux.DecisionKey{Provider: name, Operation: paymux.OpAuthorize, Code: refusalCode(r.code)}] = paymux.Classification{Kind: r.kind, Decision: r.decision}
	}
	t[paymux.DecisionKey{Provider: name, Code: CodeTransient}] = paymux.Classification{Kind: paymux.KindUnavailable, Decision: paymux.DecisionRetry}
	t[paymux.DecisionKey{Provider: name, Code: CodeConnect}] = paymux.Classification{Kind: paymux.KindUnavailable, Decision: paymux.DecisionFailover}
	t[paymux.DecisionKey{Provider: name, Code: CodeTimeout}] = paymux.Classification{Kind: paymux.KindOutcomeUnknown, Decision: paymux.DecisionRetry}
	t[paymux.DecisionKey{Provider: name, Code: CodeNetwork}] = paymux.Classification{Kind: paymux.KindOutcomeUnknown, Decision: paymux.DecisionRetry}
	return t
}
