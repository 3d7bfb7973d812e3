package stripe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"

	stripeapi "github.com/stripe/stripe-go/v76"

	"github.com/paymux/paymux"
)

// Codes the adapter gives failures that carry no Stripe code.
const (
	// CodeConnectionRefused: the request never left this process (dial,
	// DNS or TLS handshake failed). Money cannot have moved.
	CodeConnectionRefused = "connection_refused"
	// CodeConnectionLost: the request was written and its answer lost
	// (time-out, reset, EOF mid-response). Money may have moved.
	CodeConnectionLost = "connection_lost"
	// CodeAuthenticationError: Stripe refused the API key (HTTP 401).
	CodeAuthenticationError = "authentication_error"
	// CodePermissionError: the key lacks the permission (HTTP 403).
	CodePermissionError = "permission_error"
	// CodeAPIError: Stripe's 5xx api_error, of unknown effect.
	CodeAPIError = "api_error"
	// CodeIdempotencyError: the same Idempotency-Key came with other
	// parameters; a paymux bug, never retried.
	CodeIdempotencyError = "idempotency_error"
	// CodeRateLimit: Stripe's 429.
	CodeRateLimit = "rate_limit"
)

func row(k paymux.Kind, d paymux.Decision) paymux.Classification {
	return paymux.Classification{Kind: k, Decision: d}
}

// decisionRows is the table for every operation, keyed by Stripe advice code,
// error code, decline code or error type. Sources: docs.stripe.com/declines/codes,
// /error-codes, /api/errors, /idempotency and PROVIDERS.md sections 1 and 6.
// Declines split three ways: soft issuer/processing failures cascade to the
// next provider; declines another acquirer cannot fix (funds, fraud, a wrong
// card) stop; authentication_required steps up to 3-D Secure at Stripe.
var decisionRows = map[string]paymux.Classification{
	// Advice codes (take precedence over decline codes when present).
	"try_again_later":   row(paymux.KindSoftDecline, paymux.DecisionFailover),
	"do_not_try_again":  row(paymux.KindHardDecline, paymux.DecisionStop),
	"confirm_card_data": row(paymux.KindHardDecline, paymux.DecisionStop),

	// Soft: "attempt the payment again".
	"processing_error":     row(paymux.KindSoftDecline, paymux.DecisionFailover),
	"issuer_not_available": row(paymux.KindSoftDecline, paymux.DecisionFailover),
	"reenter_transaction":  row(paymux.KindSoftDecline, paymux.DecisionFailover),
	"approve_with_id":      row(paymux.KindSoftDecline, paymux.DecisionFailover),

	// Later or after the buyer acts: another acquirer will not fix them.
	"insufficient_funds":               row(paymux.KindSoftDecline, paymux.DecisionStop),
	"card_velocity_exceeded":           row(paymux.KindSoftDecline, paymux.DecisionStop),
	"withdrawal_count_limit_exceeded":  row(paymux.KindSoftDecline, paymux.DecisionStop),
	"card_decline_rate_limit_exceeded": row(paymux.KindSoftDecline, paymux.DecisionStop),
	"authentication_required":          row(paymux.KindActionRequired, paymux.DecisionStepUp),

	// Hard.
	"fraudulent":                            row(paymux.KindHardDecline, paymux.DecisionStop),
	"lost_card":                             row(paymux.KindHardDecline, paymux.DecisionStop),
	"stolen_card":                           row(paymux.KindHardDecline, paymux.DecisionStop),
	"pickup_card":                           row(paymux.KindHardDecline, paymux.DecisionStop),
	"restricted_card":                       row(paymux.KindHardDecline, paymux.DecisionStop),
	"security_violation":                    row(paymux.KindHardDecline, paymux.DecisionStop),
	"merchant_blacklist":                    row(paymux.KindHardDecline, paymux.DecisionStop),
	"revocation_of_authorization":           row(paymux.KindHardDecline, paymux.DecisionStop),
	"revocation_of_all_authorizations":      row(paymux.KindHardDecline, paymux.DecisionStop),
	"stop_payment_order":                    row(paymux.KindHardDecline, paymux.DecisionStop),
	"expired_card":                          row(paymux.KindHardDecline, paymux.DecisionStop),
	"invalid_account":                       row(paymux.KindHardDecline, paymux.DecisionStop),
	"incorrect_number":                      row(paymux.KindHardDecline, paymux.DecisionStop),
	"invalid_number":                        row(paymux.KindHardDecline, paymux.DecisionStop),
	"incorrect_cvc":                         row(paymux.KindHardDecline, paymux.DecisionStop),
	"invalid_cvc":                           row(paymux.KindHardDecline, paymux.DecisionStop),
	"invalid_expiry_month":                  row(paymux.KindHardDecline, paymux.DecisionStop),
	"invalid_expiry_year":                   row(paymux.KindHardDecline, paymux.DecisionStop),
	"incorrect_zip":                         row(paymux.KindHardDecline, paymux.DecisionStop),
	"card_not_supported":                    row(paymux.KindHardDecline, paymux.DecisionStop),
	"currency_not_supported":                row(paymux.KindHardDecline, paymux.DecisionStop),
	"not_permitted":                         row(paymux.KindHardDecline, paymux.DecisionStop),
	"payment_intent_authentication_failure": row(paymux.KindHardDecline, paymux.DecisionStop),
	// Generic: do not retry automatically.
	"generic_decline": row(paymux.KindHardDecline, paymux.DecisionStop),
	"do_not_honor":    row(paymux.KindHardDecline, paymux.DecisionStop),
	"call_issuer":     row(paymux.KindHardDecline, paymux.DecisionStop),

	// Not processed: retry the same attempt (same key) after backoff; the
	// orchestrator fails over when retries run out.
	CodeRateLimit:  row(paymux.KindRateLimited, paymux.DecisionRetry),
	"lock_timeout": row(paymux.KindRateLimited, paymux.DecisionRetry),
	// Another request with this key is executing: it may charge.
	"idempotency_key_in_use": row(paymux.KindOutcomeUnknown, paymux.DecisionRetry),
	CodeIdempotencyError:     row(paymux.KindConflict, paymux.DecisionStop),

	CodeAuthenticationError: row(paymux.KindAuthentication, paymux.DecisionFailover),
	"api_key_expired":       row(paymux.KindAuthentication, paymux.DecisionFailover),
	CodePermissionError:     row(paymux.KindAuthentication, paymux.DecisionFailover),
	"secret_key_required":   row(paymux.KindAuthentication, paymux.DecisionFailover),

	CodeConnectionRefused: row(paymux.KindUnavailable, paymux.DecisionFailover),
	// Stripe replays a stored answer for the same key, so retrying the same
	// attempt is safe; the payment stays unknown if retries run out.
	CodeConnectionLost: row(paymux.KindOutcomeUnknown, paymux.DecisionRetry),
	CodeAPIError:       row(paymux.KindOutcomeUnknown, paymux.DecisionRetry),

	"resource_missing":                row(paymux.KindNotFound, paymux.DecisionStop),
	"payment_intent_unexpected_state": row(paymux.KindConflict, paymux.DecisionStop),
	"charge_already_captured":         row(paymux.KindConflict, paymux.DecisionStop),
	"charge_already_refunded":         row(paymux.KindConflict, paymux.DecisionStop),
	"charge_disputed":                 row(paymux.KindConflict, paymux.DecisionStop),
	"charge_expired_for_capture":      row(paymux.KindConflict, paymux.DecisionStop),
	"amount_too_large":                row(paymux.KindInvalidRequest, paymux.DecisionStop),
	"amount_too_small":                row(paymux.KindInvalidRequest, paymux.DecisionStop),
	"parameter_invalid_integer":       row(paymux.KindInvalidRequest, paymux.DecisionStop),
	"parameter_missing":               row(paymux.KindInvalidRequest, paymux.DecisionStop),
	"parameter_unknown":               row(paymux.KindInvalidRequest, paymux.DecisionStop),
	"payment_method_unexpected_state": row(paymux.KindInvalidRequest, paymux.DecisionStop),
}

// DecisionTable returns Stripe's rows under the provider name, for every
// operation. Codes not in it stop: nobody cascades on an unclassified code.
func DecisionTable(name string) paymux.DecisionTable {
	t := make(paymux.DecisionTable, len(decisionRows))
	for code, c := range decisionRows {
		t[paymux.DecisionKey{Provider: name, Code: code}] = c
	}
	return t
}

// callRecord is what the transport saw of one call.
type callRecord struct {
	mu     sync.Mutex
	wrote  bool // request headers were handed to the connection
	status int  // HTTP status of the response, 0 if none
}

func (r *callRecord) snapshot() (wrote bool, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.wrote, r.status
}

type recordKey struct{}

func withRecord(ctx context.Context, rec *callRecord) context.Context {
	return context.WithValue(ctx, recordKey{}, rec)
}

// recordingTransport notes, per call, whether the request was written and
// the response status, composing with any httptrace already in the context.
type recordingTransport struct{ base http.RoundTripper }

func (t *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	rec, _ := req.Context().Value(recordKey{}).(*callRecord)
	if rec == nil {
		return base.RoundTrip(req)
	}
	trace := &httptrace.ClientTrace{
		WroteHeaders: func() { rec.mu.Lock(); rec.wrote = true; rec.mu.Unlock() },
	}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	res, err := base.RoundTrip(req)
	if res != nil {
		rec.mu.Lock()
		rec.wrote, rec.status = true, res.StatusCode
		rec.mu.Unlock()
	}
	return res, err
}

// classify turns whatever stripe-go returned into a *paymux.ProviderError.
func (p *Provider) classify(op paymux.Operation, rec *callRecord, err error) error {
	var se *stripeapi.Error
	if errors.As(err, &se) {
		return p.classifyStripe(op, se, err)
	}
	wrote, status := rec.snapshot()
	pe := &paymux.ProviderError{Provider: p.name, Operation: op, HTTPStatus: status, Message: paymux.Redact(err.Error()), Err: err}
	switch {
	case status == http.StatusTooManyRequests:
		pe.Code = CodeRateLimit
	case status >= 500:
		pe.Code = CodeAPIError
	case status == http.StatusUnauthorized:
		pe.Code = CodeAuthenticationError
	case status != 0:
		// An answer stripe-go could not read (a body cut short, a proxy
		// page): the request arrived and its outcome was lost.
		pe.Code = CodeConnectionLost
	case notSent(err) || !wrote:
		pe.Code = CodeConnectionRefused
	default:
		pe.Code = CodeConnectionLost
	}
	c, _ := p.table.Lookup(p.name, op, pe.Code)
	pe.Kind = c.Kind
	return pe
}

// notSent reports transport errors that happen before any byte of the
// request reaches Stripe: dialling (refused, unreachable, DNS) and the TLS
// handshake.
func notSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return true
	}
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	var rh tls.RecordHeaderError
	return errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid) ||
		errors.As(err, &verify) || errors.As(err, &rh)
}

// classifyStripe classifies a Stripe error body. The code the table is asked
// for, in order: advice_code (it takes precedence), code, decline_code, then
// the error type or HTTP status. The ProviderError's Code is the one that
// decided, so that the orchestrator, looking Code up first, reaches the same
// row.
func (p *Provider) classifyStripe(op paymux.Operation, se *stripeapi.Error, err error) error {
	advice := adviceCode(se)
	typeCode := ""
	switch {
	case se.Type == stripeapi.ErrorTypeIdempotency:
		typeCode = CodeIdempotencyError
	case se.HTTPStatusCode == http.StatusUnauthorized:
		typeCode = CodeAuthenticationError
	case se.HTTPStatusCode == http.StatusForbidden:
		typeCode = CodePermissionError
	case se.HTTPStatusCode == http.StatusTooManyRequests:
		typeCode = CodeRateLimit
	case se.Type == stripeapi.ErrorTypeAPI || se.HTTPStatusCode >= 500:
		typeCode = CodeAPIError
	case se.HTTPStatusCode == http.StatusNotFound:
		typeCode = "resource_missing"
	}
	code := string(se.Code)
	decline := string(se.DeclineCode)
	pe := &paymux.ProviderError{
		Provider: p.name, Operation: op, Code: code, DeclineCode: decline, HTTPStatus: se.HTTPStatusCode,
		Message: paymux.Redact(se.Msg), Err: err,
	}
	if se.PaymentIntent != nil {
		// A declined confirm still created the intent: let Sync find it.
		pe.Reference = se.PaymentIntent.ID
	}
	// An authentication or idempotency failure outranks a code that may
	// come with it.
	if typeCode == CodeAuthenticationError || typeCode == CodePermissionError || typeCode == CodeIdempotencyError {
		code = ""
	}
	for _, c := range []string{advice, code, decline, typeCode} {
		if c == "" {
			continue
		}
		if row, ok := p.table.Lookup(p.name, op, c); ok {
			pe.Kind = row.Kind
			if c == advice || c != decline {
				pe.Code = c
			}
			if c == advice && advice != string(se.Code) {
				pe.Message = paymux.Redact(se.Msg + " (code " + string(se.Code) + ", advice " + advice + ")")
			}
			return pe
		}
	}
	// No row: classify by type and status, never as something that cascades.
	if pe.Code == "" {
		pe.Code = string(se.Type)
	}
	switch {
	case se.Type == stripeapi.ErrorTypeCard:
		pe.Kind = paymux.KindHardDecline
	case se.HTTPStatusCode == http.StatusConflict:
		pe.Kind = paymux.KindOutcomeUnknown
	case se.HTTPStatusCode >= 400 && se.HTTPStatusCode < 500:
		pe.Kind = paymux.KindInvalidRequest
	default:
		pe.Kind = paymux.KindOutcomeUnknown
	}
	return pe
}

// lookupCodes finds the deciding row among advice, code and decline code.
func (p *Provider) lookupCodes(op paymux.Operation, advice, code, decline string) (paymux.Classification, bool) {
	for _, c := range []string{advice, code, decline} {
		if c == "" {
			continue
		}
		if row, ok := p.table.Lookup(p.name, op, c); ok {
			return row, true
		}
	}
	return paymux.Classification{}, false
}

// adviceCode reads error.advice_code from the raw body: stripe-go v76's
// Error type predates the field.
func adviceCode(se *stripeapi.Error) string {
	if se.LastResponse == nil || len(se.LastResponse.RawJSON) == 0 {
		return ""
	}
	var raw struct {
		Error struct {
			AdviceCode string `json:"advice_code"`
		} `json:"error"`
	}
	if json.Unmarshal(se.LastResponse.RawJSON, &raw) != nil {
		return ""
	}
	return raw.Error.AdviceCode
}
