package adyen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/paymux/paymux"
)

// maxResponse bounds what paymux reads from Adyen; real answers are a few KiB.
const maxResponse = 1 << 20

// post sends one Checkout API call and decodes a 200 answer into out. Every
// failure is a *paymux.ProviderError whose Kind says what is known about the
// money.
func (p *Provider) post(ctx context.Context, op paymux.Operation, path, idemKey string, body, out any) error {
	buf, err := json.Marshal(body)
	if err != nil {
		return p.fail(op, paymux.KindInvalidRequest, "encode", 0, "cannot encode request", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.baseURL+path, bytes.NewReader(buf))
	if err != nil {
		return p.fail(op, paymux.KindInvalidRequest, "encode", 0, "cannot build request", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-API-Key", p.apiKey.Reveal())
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}

	// Whether a connection was ever obtained decides between Unavailable
	// (nothing can have reached Adyen) and OutcomeUnknown (it may have).
	var connected atomic.Bool
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { connected.Store(true) }}
	req = req.WithContext(httptrace.WithClientTrace(ctx, trace))

	start := p.clock()
	resp, err := p.http.Do(req)
	if err != nil {
		return p.transportError(op, connected.Load(), err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		// The status line arrived; the body did not. Adyen acted on it.
		return p.transportError(op, true, err)
	}
	p.log.DebugContext(ctx, "adyen call", "op", string(op), "path", path, "status", resp.StatusCode, "latency", p.clock().Sub(start))
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, out); err != nil {
			return p.fail(op, paymux.KindOutcomeUnknown, CodeBadResponse, resp.StatusCode, "unreadable 200 response", err)
		}
		return nil
	}
	return p.httpError(op, resp, raw)
}

// httpError classifies a non-200 answer.
func (p *Provider) httpError(op paymux.Operation, resp *http.Response, raw []byte) error {
	var se ServiceError
	_ = json.Unmarshal(raw, &se) // a non-JSON body (a proxy's 502 page) keeps se empty
	status := resp.StatusCode
	code := strconv.Itoa(status)
	if se.ErrorCode != "" {
		code += ":" + se.ErrorCode
	}
	msg := se.Message
	if msg == "" {
		msg = http.StatusText(status)
	}
	rawErr := &APIError{StatusCode: status, ServiceError: se, Transient: isTransient(resp.Header)}
	if rawErr.Transient {
		// Documented: no message reached the issuer, and a retry with the
		// same key is processed as a first request. Safe to fail over.
		return &paymux.ProviderError{Provider: p.name, Operation: op, Kind: paymux.KindUnavailable, Code: CodeTransient, HTTPStatus: status, Message: msg, Err: rawErr}
	}
	var kind paymux.Kind
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		kind = paymux.KindAuthentication
	case status == http.StatusTooManyRequests:
		kind = paymux.KindRateLimited
	case status == http.StatusNotFound:
		kind = paymux.KindNotFound
	case status == http.StatusBadRequest || status == http.StatusUnprocessableEntity || status == http.StatusMethodNotAllowed || status == http.StatusUnsupportedMediaType:
		// "Do not repeat without modifying": validation happens before
		// anything is processed.
		kind = paymux.KindInvalidRequest
	default:
		// 5xx and anything unexpected: a non-transient server error "could
		// have been received by the issuing party and been acted upon".
		kind = paymux.KindOutcomeUnknown
	}
	pe := &paymux.ProviderError{Provider: p.name, Operation: op, Kind: kind, Code: code, HTTPStatus: status, Message: msg, Err: rawErr}
	if op == paymux.OpAuthorize {
		// The pspReference of a failed /payments call names the payment
		// its AUTHORISATION webhook will carry.
		pe.Reference = se.PSPReference
	}
	return pe
}

func isTransient(h http.Header) bool {
	return strings.EqualFold(strings.TrimSpace(h.Get("Transient-Error")), "true")
}

// transportError classifies a failure with no complete HTTP answer.
func (p *Provider) transportError(op paymux.Operation, connected bool, err error) error {
	if !connected {
		// Dial, DNS or TLS failure, or the context ended before a
		// connection: no byte of the request left this process.
		return p.fail(op, paymux.KindUnavailable, CodeConnect, 0, "could not connect to Adyen", err)
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return p.fail(op, paymux.KindOutcomeUnknown, CodeTimeout, 0, "no answer from Adyen in time", err)
	}
	return p.fail(op, paymux.KindOutcomeUnknown, CodeNetwork, 0, "connection to Adyen broke", err)
}

func (p *Provider) fail(op paymux.Operation, kind paymux.Kind, code string, status int, msg string, err error) error {
	return &paymux.ProviderError{Provider: p.name, Operation: op, Kind: kind, Code: code, HTTPStatus: status, Message: msg, Err: err}
}

// APIError is the raw Adyen error behind a ProviderError, for errors.As.
type APIError struct {
	StatusCode int
	ServiceError
	// Transient is true when the answer carried "Transient-Error: true".
	Transient bool
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("adyen: HTTP %d", e.StatusCode)
	if e.ErrorCode != "" {
		s += " " + e.ErrorCode
	}
	if e.Message != "" {
		s += ": " + paymux.Redact(e.Message)
	}
	if e.Transient {
		s += " (transient)"
	}
	return s
}
