package paypal

import (
	"net/http"
	"strconv"

	"github.com/paymux/paymux"
)

// Error codes the adapter puts in ProviderError.Code besides PayPal's own
// error names and issues.
const (
	// CodeConnectionRefused: the request never reached PayPal.
	CodeConnectionRefused = "connection_refused"
	// CodeNoResponse: the request was sent and no answer came back.
	CodeNoResponse = "no_response"
	// CodeTokenUnavailable: no OAuth token, so the call was never made.
	CodeTokenUnavailable = "token_unavailable"
	// CodeInvalidClient: OAuth refused the client id and secret.
	CodeInvalidClient = "invalid_client"
	// CodeRateLimitReached: PayPal's 429.
	CodeRateLimitReached = "RATE_LIMIT_REACHED"
	// CodeServerError: a 5xx without an error name.
	CodeServerError = "HTTP_5XX"
	// CodeCaptureDeclined: a capture came back with status DECLINED.
	CodeCaptureDeclined = "CAPTURE_DECLINED"
	// CodeAuthorizationDenied: an authorization came back with status DENIED.
	CodeAuthorizationDenied = "AUTHORIZATION_DENIED"
)

// errorCode picks the most specific code of a PayPal error: the issue of its
// first detail, else its name, else the HTTP status.
func errorCode(status int, name, issue string) string {
	switch {
	case issue != "":
		return issue
	case name != "":
		return name
	case status == http.StatusTooManyRequests:
		return CodeRateLimitReached
	case status >= 500:
		return CodeServerError
	}
	return "HTTP_" + strconv.Itoa(status)
}

type row = paymux.Classification

var (
	stop        = func(k paymux.Kind) row { return row{Kind: k, Decision: paymux.DecisionStop} }
	retry       = func(k paymux.Kind) row { return row{Kind: k, Decision: paymux.DecisionRetry} }
	failover    = func(k paymux.Kind) row { return row{Kind: k, Decision: paymux.DecisionFailover} }
	unknownRows = []string{
		"INTERNAL_SERVER_ERROR", "INTERNAL_SERVICE_ERROR", "SERVICE_UNAVAILABLE",
		CodeServerError, CodeNoResponse,
	}
)

// decisionRows is PayPal's table, built from the Orders v2 and Payments v2
// error references and developer.paypal.com/api/handle-payment-failures.
// Operation "" rows apply to every operation.
func decisionRows() map[string]row {
	rows := map[string]row{
		// The payer must pick another funding source or come back later:
		// another provider will not help and a silent retry is not allowed.
		"INSTRUMENT_DECLINED":                     stop(paymux.KindSoftDecline),
		"REDIRECT_PAYER_FOR_ALTERNATE_FUNDING":    stop(paymux.KindSoftDecline),
		"CARD_EXPIRED":                            stop(paymux.KindHardDecline),
		"MAX_NUMBER_OF_PAYMENT_ATTEMPTS_EXCEEDED": stop(paymux.KindHardDecline),
		"TRANSACTION_REFUSED":                     stop(paymux.KindHardDecline),
		"PAYER_CANNOT_PAY":                        stop(paymux.KindHardDecline),
		"PAYER_ACCOUNT_RESTRICTED":                stop(paymux.KindHardDecline),
		"PAYER_ACCOUNT_LOCKED_OR_CLOSED":          stop(paymux.KindHardDecline),
		"COMPLIANCE_VIOLATION":                    stop(paymux.KindHardDecline),
		"TRANSACTION_LIMIT_EXCEEDED":              stop(paymux.KindHardDecline),
		"TRANSACTION_RECEIVING_LIMIT_EXCEEDED":    stop(paymux.KindHardDecline),
		CodeCaptureDeclined:                       stop(paymux.KindHardDecline),
		CodeAuthorizationDenied:                   stop(paymux.KindHardDecline),
		// The buyer has not approved the order yet.
		"PAYER_ACTION_REQUIRED": stop(paymux.KindActionRequired),
		"ORDER_NOT_APPROVED":    stop(paymux.KindActionRequired),
		// The merchant account cannot take the payment; PayPal refused it
		// before anything reached a funding source, so another provider may.
		"PAYEE_ACCOUNT_RESTRICTED":              failover(paymux.KindUnavailable),
		"PAYEE_ACCOUNT_LOCKED_OR_CLOSED":        failover(paymux.KindUnavailable),
		"PAYEE_NOT_ENABLED_FOR_CARD_PROCESSING": failover(paymux.KindUnavailable),
		"NOT_ENABLED_FOR_CARD_PROCESSING":       failover(paymux.KindUnavailable),
		"AUTH_CAPTURE_NOT_ENABLED":              failover(paymux.KindUnavailable),
		// The invoice id (the paymux key) was used by another transaction:
		// this payment may already be taken elsewhere. Reconcile, never retry.
		"DUPLICATE_INVOICE_ID": stop(paymux.KindConflict),
		// State conflicts on follow-up calls.
		"AUTHORIZATION_VOIDED":           stop(paymux.KindConflict),
		"AUTHORIZATION_EXPIRED":          stop(paymux.KindConflict),
		"AUTHORIZATION_ALREADY_CAPTURED": stop(paymux.KindConflict),
		"PREVIOUSLY_VOIDED":              stop(paymux.KindConflict),
		"CANNOT_BE_VOIDED":               stop(paymux.KindConflict),
		"MAX_CAPTURE_COUNT_EXCEEDED":     stop(paymux.KindConflict),
		"ORDER_ALREADY_CAPTURED":         stop(paymux.KindConflict),
		"ORDER_ALREADY_AUTHORIZED":       stop(paymux.KindConflict),
		"ORDER_ALREADY_COMPLETED":        stop(paymux.KindConflict),
		"ORDER_EXPIRED":                  stop(paymux.KindConflict),
		"CAPTURE_FULLY_REFUNDED":         stop(paymux.KindConflict),
		"REFUND_NOT_ALLOWED":             stop(paymux.KindConflict),
		"REFUND_TIME_LIMIT_EXCEEDED":     stop(paymux.KindConflict),
		"PENDING_CAPTURE":                stop(paymux.KindConflict),
		"DUPLICATE_REQUEST_ID":           stop(paymux.KindConflict),
		// Malformed requests: nothing executed, but another provider would
		// get the same bad request from us.
		"MAX_CAPTURE_AMOUNT_EXCEEDED": stop(paymux.KindInvalidRequest),
		"REFUND_AMOUNT_EXCEEDED":      stop(paymux.KindInvalidRequest),
		"AMOUNT_MISMATCH":             stop(paymux.KindInvalidRequest),
		"CURRENCY_NOT_SUPPORTED":      stop(paymux.KindInvalidRequest),
		"DECIMAL_PRECISION":           stop(paymux.KindInvalidRequest),
		"INVALID_PARAMETER_VALUE":     stop(paymux.KindInvalidRequest),
		"MISSING_REQUIRED_PARAMETER":  stop(paymux.KindInvalidRequest),
		"INVALID_REQUEST":             stop(paymux.KindInvalidRequest),
		"UNPROCESSABLE_ENTITY":        stop(paymux.KindInvalidRequest),
		"INVALID_RESOURCE_ID":         stop(paymux.KindNotFound),
		"RESOURCE_NOT_FOUND":          stop(paymux.KindNotFound),
		"NOT_AUTHORIZED":              stop(paymux.KindAuthentication),
		"PERMISSION_DENIED":           stop(paymux.KindAuthentication),
		"AUTHENTICATION_FAILURE":      failover(paymux.KindAuthentication),
		CodeInvalidClient:             failover(paymux.KindAuthentication),
		"invalid_token":               failover(paymux.KindAuthentication),
		CodeTokenUnavailable:          failover(paymux.KindUnavailable),
		CodeConnectionRefused:         failover(paymux.KindUnavailable),
		CodeRateLimitReached:          retry(paymux.KindRateLimited),
		"TOO_MANY_REQUESTS":           retry(paymux.KindRateLimited),
		"missing_request_id":          stop(paymux.KindInvalidRequest),
		"bad_response":                stop(paymux.KindOutcomeUnknown),
		"amount_mismatch":             stop(paymux.KindInvalidRequest),
		"intent_mismatch":             stop(paymux.KindInvalidRequest),
		"no_authorization":            stop(paymux.KindConflict),
		"no_capture_to_refund":        stop(paymux.KindConflict),
		"unsupported_method":          stop(paymux.KindInvalidRequest),
		"unsupported_amount":          stop(paymux.KindInvalidRequest),
		"lookup_needs_reference":      stop(paymux.KindOutcomeUnknown),
	}
	// PayPal: a 5xx "might have created a transaction". Retry with the same
	// PayPal-Request-Id, which PayPal de-duplicates; never fail over.
	for _, c := range unknownRows {
		rows[c] = retry(paymux.KindOutcomeUnknown)
	}
	return rows
}

// DefaultDecisionTable returns PayPal's decision table for the provider
// called name. Each call returns a fresh map the caller may change.
func DefaultDecisionTable(name string) paymux.DecisionTable {
	t := paymux.DecisionTable{}
	for code, r := range decisionRows() {
		t[paymux.DecisionKey{Provider: name, Code: code}] = r
	}
	// Declines on the authorisation of an approved order stop; the same
	// codes on a capture of an authorisation are conflicts with the
	// authorisation, not with the buyer, and also stop: no row differs by
	// operation today, but overrides may add some.
	return t
}

// classify maps one HTTP failure to its row. Transport-level facts come first
// and no table row can override them: a 5xx may have moved money (PayPal
// says so), whatever its name.
func classify(t paymux.DecisionTable, name string, op paymux.Operation, status int, code string) row {
	switch {
	case status >= 500:
		return retry(paymux.KindOutcomeUnknown)
	case status == http.StatusTooManyRequests:
		return retry(paymux.KindRateLimited)
	}
	if c, ok := t.Lookup(name, op, code); ok {
		return c
	}
	switch status {
	case http.StatusUnauthorized:
		return failover(paymux.KindAuthentication)
	case http.StatusForbidden:
		return stop(paymux.KindAuthentication)
	case http.StatusNotFound:
		return stop(paymux.KindNotFound)
	case http.StatusConflict:
		return stop(paymux.KindConflict)
	case http.StatusUnprocessableEntity:
		// An unlisted business rule refused the request. It did not
		// execute, but nobody classified it: stop, never cascade.
		return stop(paymux.KindHardDecline)
	}
	if status >= 400 {
		return stop(paymux.KindInvalidRequest)
	}
	return stop(paymux.KindOutcomeUnknown)
}
