package braintree

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/paymux/paymux"
)

// transactionFields is the selection paymux reads from every Transaction.
// Only fields of the published schema: an unknown field fails the whole
// operation with a VALIDATION error.
const transactionFields = `id orderId status createdAt amount { value currencyCode } ` +
	`statusHistory { __typename status timestamp amount { value currencyCode } ` +
	`... on ProcessorDeclinedEvent { declineType processorResponse { legacyCode message } } ` +
	`... on GatewayRejectedEvent { gatewayRejectionReason } }`

type gqlMoney struct {
	Value        string `json:"value"`
	CurrencyCode string `json:"currencyCode"`
}

func (m gqlMoney) money(fallback paymux.Currency) (paymux.Money, error) {
	cur := paymux.Currency(m.CurrencyCode)
	if cur == "" {
		cur = fallback
	}
	if m.Value == "" {
		return paymux.Money{Currency: cur}, nil
	}
	return paymux.ParseMoney(m.Value, cur)
}

type gqlStatusEvent struct {
	Typename               string   `json:"__typename"`
	Status                 string   `json:"status"`
	Timestamp              string   `json:"timestamp"`
	Amount                 gqlMoney `json:"amount"`
	DeclineType            string   `json:"declineType"`
	GatewayRejectionReason string   `json:"gatewayRejectionReason"`
	ProcessorResponse      *struct {
		LegacyCode string `json:"legacyCode"`
		Message    string `json:"message"`
	} `json:"processorResponse"`
}

type gqlTransaction struct {
	Typename      string           `json:"__typename"`
	ID            string           `json:"id"`
	OrderID       string           `json:"orderId"`
	Status        string           `json:"status"`
	CreatedAt     string           `json:"createdAt"`
	Amount        gqlMoney         `json:"amount"`
	StatusHistory []gqlStatusEvent `json:"statusHistory"`
}

type gqlError struct {
	Message    string `json:"message"`
	Extensions struct {
		ErrorClass string   `json:"errorClass"`
		LegacyCode string   `json:"legacyCode"`
		InputPath  []string `json:"inputPath"`
	} `json:"extensions"`
}

type gqlResponse struct {
	Data   json.RawMessage `json:"data"`
	Errors []gqlError      `json:"errors"`
}

// maxResponse bounds what paymux reads from Braintree.
const maxResponse = 4 << 20

// do posts one GraphQL operation and decodes data into out. mutating says
// whether the operation can move money, which decides how a lost answer is
// classified.
func (p *Provider) do(ctx context.Context, op paymux.Operation, mutating bool, query string, vars map[string]any, out any) error {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return &paymux.ProviderError{Provider: p.name, Operation: op, Kind: paymux.KindInvalidRequest, Code: "client_validation", Message: "encoding request", Err: err}
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, p.baseURL, bytes.NewReader(body))
	if err != nil {
		return &paymux.ProviderError{Provider: p.name, Operation: op, Kind: paymux.KindInvalidRequest, Code: "client_validation", Message: "building request", Err: err}
	}
	hreq.SetBasicAuth(p.publicKey, p.privateKey.Reveal())
	hreq.Header.Set("Braintree-Version", APIVersion)
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	start := time.Now()
	resp, err := p.http.Do(hreq)
	if err != nil {
		return p.transportError(op, mutating, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		// The request was sent and an answer started: it may have been processed.
		return p.transportError(op, mutating, err)
	}
	p.log.Debug("braintree: call", "op", string(op), "status", resp.StatusCode, "latency", time.Since(start))
	var gr gqlResponse
	jsonErr := json.Unmarshal(raw, &gr)
	if len(gr.Errors) > 0 {
		return p.graphQLError(op, mutating, resp.StatusCode, gr.Errors)
	}
	if resp.StatusCode != http.StatusOK {
		return p.httpError(op, mutating, resp.StatusCode)
	}
	if jsonErr != nil || len(gr.Data) == 0 || string(gr.Data) == "null" {
		if mutating {
			return p.malformed(op, "unreadable response")
		}
		return &paymux.ProviderError{Provider: p.name, Operation: op, Kind: paymux.KindUnavailable, Code: "malformed_response", Message: "unreadable response", Err: jsonErr}
	}
	if err := json.Unmarshal(gr.Data, out); err != nil {
		if mutating {
			return p.malformed(op, "unreadable data")
		}
		return &paymux.ProviderError{Provider: p.name, Operation: op, Kind: paymux.KindUnavailable, Code: "malformed_response", Message: "unreadable data", Err: err}
	}
	return nil
}

// transportError classifies a failure below HTTP. Only a connection that
// was never established proves the request was not processed.
func (p *Provider) transportError(op paymux.Operation, mutating bool, err error) error {
	pe := &paymux.ProviderError{Provider: p.name, Operation: op, Err: err}
	switch {
	case notConnected(err):
		pe.Kind, pe.Code, pe.Message = paymux.KindUnavailable, "connection_refused", "could not connect"
	case !mutating:
		pe.Kind, pe.Code, pe.Message = paymux.KindUnavailable, "network_error", "lookup failed in transit"
	default:
		pe.Kind, pe.Code, pe.Message = paymux.KindOutcomeUnknown, "network_error", "no answer after sending; the request may have been processed"
	}
	return pe
}

// notConnected reports whether err happened while dialing (refused, no
// route, DNS), before any byte of the request was written.
func notConnected(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return true
	}
	return false
}

func (p *Provider) httpError(op paymux.Operation, mutating bool, status int) error {
	pe := &paymux.ProviderError{Provider: p.name, Operation: op, HTTPStatus: status}
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		pe.Kind, pe.Code = paymux.KindAuthentication, "AUTHENTICATION"
	case status == http.StatusTooManyRequests:
		pe.Kind, pe.Code = paymux.KindRateLimited, "RESOURCE_LIMIT"
	case status >= 500:
		// Braintree does not document any 5xx as "not processed"; its SDKs
		// and PROVIDERS.md say: retry the same request with the same key.
		pe.Kind, pe.Code = paymux.KindOutcomeUnknown, "server_error"
		if !mutating {
			pe.Kind = paymux.KindUnavailable
		}
	default:
		pe.Kind, pe.Code = paymux.KindInvalidRequest, fmt.Sprintf("http_%d", status)
	}
	pe.Message = fmt.Sprintf("HTTP %d", status)
	return pe
}

// graphQLError classifies the first error of a GraphQL errors array by its
// errorClass (and legacyCode where it is more specific).
func (p *Provider) graphQLError(op paymux.Operation, mutating bool, status int, errs []gqlError) error {
	e := errs[0]
	class := e.Extensions.ErrorClass
	pe := &paymux.ProviderError{Provider: p.name, Operation: op, HTTPStatus: status, Code: class,
		DeclineCode: e.Extensions.LegacyCode, Message: paymux.Redact(e.Message)}
	switch class {
	case "VALIDATION":
		pe.Kind = paymux.KindInvalidRequest
		switch {
		case mentionsAPIRequestKey(e):
			// The key was used with other input, or the first request with
			// it is still in flight. Braintree refused this request (Conflict),
			// but a transaction under the key may exist or be about to: the
			// decision table makes the payment unknown, to be reconciled.
			pe.Kind, pe.Code = paymux.KindConflict, codeAPIRequestKey
		case conflictLegacyCodes[e.Extensions.LegacyCode]:
			pe.Kind, pe.Code = paymux.KindConflict, codeStateConflict
		}
	case "AUTHENTICATION", "AUTHORIZATION":
		pe.Kind = paymux.KindAuthentication
	case "NOT_FOUND":
		pe.Kind = paymux.KindNotFound
	case "RESOURCE_LIMIT":
		pe.Kind = paymux.KindRateLimited
	case "NOT_IMPLEMENTED":
		pe.Kind = paymux.KindUnimplemented
	case "UNSUPPORTED_CLIENT":
		pe.Kind = paymux.KindInvalidRequest
	default: // INTERNAL, SERVICE_AVAILABILITY, UNKNOWN, anything new
		pe.Kind = paymux.KindOutcomeUnknown
		if pe.Code == "" {
			pe.Code = "server_error"
		}
		if !mutating {
			pe.Kind = paymux.KindUnavailable
		}
	}
	if status == http.StatusTooManyRequests {
		pe.Kind, pe.Code = paymux.KindRateLimited, "RESOURCE_LIMIT"
	}
	return pe
}

const (
	codeAPIRequestKey = "VALIDATION:apiRequestKey"
	codeStateConflict = "VALIDATION:state"
)

func mentionsAPIRequestKey(e gqlError) bool {
	for _, s := range e.Extensions.InputPath {
		if s == "apiRequestKey" {
			return true
		}
	}
	m := strings.ToLower(e.Message)
	return strings.Contains(m, "apirequestkey") || strings.Contains(m, "api request key")
}

// conflictLegacyCodes are VALIDATION codes that mean "not in this state"
// rather than "malformed": void of a captured transaction, capture of a
// voided one, refund before settlement.
var conflictLegacyCodes = map[string]bool{
	"91504": true, // transaction can only be voided if authorized or submitted for settlement
	"91506": true, // cannot refund a transaction unless it is settled or settling
	"91507": true, // cannot submit for settlement unless status is authorized
	"91512": true, // transaction has already been completely refunded
	"91521": true, // refund amount is too large
	"91522": true, // settlement amount is too large
}

// mapStatus maps a Braintree PaymentStatus to paymux's.
func mapStatus(s string) paymux.Status {
	switch s {
	case "AUTHORIZED":
		return paymux.StatusAuthorized
	case "SUBMITTED_FOR_SETTLEMENT", "SETTLING", "SETTLED", "SETTLEMENT_PENDING", "SETTLEMENT_CONFIRMED":
		return paymux.StatusCaptured
	case "VOIDED", "AUTHORIZATION_EXPIRED":
		// An expired authorisation released the funds, as a void does.
		return paymux.StatusVoided
	case "PROCESSOR_DECLINED", "GATEWAY_REJECTED", "FAILED", "SETTLEMENT_DECLINED":
		return paymux.StatusFailed
	case "AUTHORIZING":
		return paymux.StatusPending
	}
	return paymux.StatusUnknown
}

func isFailedStatus(s string) bool { return mapStatus(s) == paymux.StatusFailed }

// transactionError turns a transaction in a failure status into the
// classified error; nil for anything else.
func (p *Provider) transactionError(op paymux.Operation, t *gqlTransaction, threeDS bool) error {
	pe := &paymux.ProviderError{Provider: p.name, Operation: op}
	ev := t.lastEvent(t.Status)
	switch t.Status {
	case "PROCESSOR_DECLINED":
		pe.Code = "processor_declined"
		declineType := ""
		if ev != nil {
			declineType = ev.DeclineType
			if ev.ProcessorResponse != nil {
				pe.DeclineCode = ev.ProcessorResponse.LegacyCode
				pe.Message = paymux.Redact(ev.ProcessorResponse.Message)
			}
		}
		pe.Kind = declineKind(pe.DeclineCode, declineType)
	case "GATEWAY_REJECTED":
		reason := ""
		if ev != nil {
			reason = strings.ToLower(ev.GatewayRejectionReason)
		}
		if reason == "" {
			reason = "unknown"
		}
		pe.Code = "gateway_rejected:" + reason
		pe.Message = "gateway rejected: " + reason
		pe.Kind = gatewayRejectionKind(reason)
	case "FAILED":
		// The processor could not be reached; the transaction is final and
		// moved no money.
		pe.Code, pe.Kind, pe.Message = "failed", paymux.KindSoftDecline, "transaction failed at the processor"
	case "SETTLEMENT_DECLINED":
		pe.Code, pe.Kind, pe.Message = "settlement_declined", paymux.KindHardDecline, "settlement declined"
	default:
		return nil
	}
	p.log.Info("braintree: transaction not approved", "op", string(op), "transaction", t.ID, "code", pe.Code, "decline_code", pe.DeclineCode, "three_ds", threeDS)
	return pe
}

func (t *gqlTransaction) lastEvent(status string) *gqlStatusEvent {
	for i := len(t.StatusHistory) - 1; i >= 0; i-- {
		if t.StatusHistory[i].Status == status {
			return &t.StatusHistory[i]
		}
	}
	return nil
}

// toPayment converts a transaction to paymux's view.
func (p *Provider) toPayment(op paymux.Operation, t *gqlTransaction, fallback paymux.Currency) (*paymux.ProviderPayment, error) {
	amount, err := t.Amount.money(fallback)
	if err != nil {
		return nil, p.malformed(op, "amount: "+err.Error())
	}
	res := &paymux.ProviderPayment{Reference: t.ID, Status: mapStatus(t.Status), Amount: amount, UpdatedAt: p.now()}
	authorized := amount.Amount
	if ev := t.lastEvent("AUTHORIZED"); ev != nil && ev.Amount.Value != "" {
		if m, err := ev.Amount.money(amount.Currency); err == nil {
			authorized = m.Amount
		}
	}
	switch res.Status {
	case paymux.StatusAuthorized:
		res.Authorized = authorized
	case paymux.StatusCaptured:
		// After a partial capture Braintree's amount is the captured amount.
		res.Authorized, res.Captured = max(authorized, amount.Amount), amount.Amount
	case paymux.StatusVoided:
		res.Authorized = 0
	case paymux.StatusFailed:
		if ev := t.lastEvent(t.Status); ev != nil && ev.ProcessorResponse != nil {
			res.DeclineCode = ev.ProcessorResponse.LegacyCode
		} else if ev != nil && ev.GatewayRejectionReason != "" {
			res.DeclineCode = "gateway_rejected:" + strings.ToLower(ev.GatewayRejectionReason)
		}
	}
	return res, nil
}
