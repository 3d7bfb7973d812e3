package paypal

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
	"strings"
	"sync"
	"time"

	paypalapi "github.com/plutov/paypal/v4"

	"github.com/paymux/paymux"
)

// maxResponseBytes bounds what is read from PayPal; an order with many
// captures and refunds stays far below it.
const maxResponseBytes = 4 << 20

// call describes one API request. RequestID is mandatory for every POST:
// PayPal de-duplicates on it, which is what makes a retry of the same attempt
// safe.
type call struct {
	op        paymux.Operation
	method    string
	path      string
	requestID string
	body      any
	// rawBody, when set, is sent byte for byte instead of marshalling body
	// (the online webhook check must not re-serialise the event).
	rawBody []byte
	mock    string // PayPal-Mock-Response application code, tests only
}

// tokenSource caches the OAuth access token. plutov/paypal fetches it
// (GetAccessToken); the cache is ours so that expiry follows the injected
// clock and so that a failure to get a token is classified as "nothing was
// sent" instead of leaking through as an unknown error.
type tokenSource struct {
	mu      sync.Mutex
	api     *paypalapi.Client
	clock   func() time.Time
	token   string
	expires time.Time
}

func (ts *tokenSource) get(ctx context.Context) (string, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.token != "" && ts.clock().Before(ts.expires) {
		return ts.token, nil
	}
	resp, err := ts.api.GetAccessToken(ctx)
	if err != nil {
		return "", err
	}
	if resp == nil || resp.Token == "" {
		return "", errors.New("paypal: token response without access_token")
	}
	ttl := time.Duration(resp.ExpiresIn) * time.Second
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	// Refresh a minute early so that a token never expires in flight.
	ts.token, ts.expires = resp.Token, ts.clock().Add(ttl-time.Minute)
	return ts.token, nil
}

func (ts *tokenSource) invalidate(token string) {
	ts.mu.Lock()
	if ts.token == token {
		ts.token = ""
	}
	ts.mu.Unlock()
}

// apiError is the raw PayPal error, reachable with errors.As from the
// *paymux.ProviderError that wraps it.
type apiError struct {
	StatusCode int
	Name       string
	Issue      string
	Message    string
	DebugID    string
	Details    []paypalapi.ErrorResponseDetail
}

func (e *apiError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "paypal: HTTP %d", e.StatusCode)
	if e.Name != "" {
		b.WriteString(" " + e.Name)
	}
	if e.Issue != "" {
		b.WriteString("/" + e.Issue)
	}
	if e.DebugID != "" {
		b.WriteString(" debug_id=" + e.DebugID)
	}
	return b.String()
}

// transportError is a failure to get an answer at all. Sent says whether the
// request reached the wire (httptrace WroteRequest fired).
type transportError struct {
	Sent bool
	Err  error
}

func (e *transportError) Error() string {
	if e.Sent {
		return "paypal: no response after sending: " + e.Err.Error()
	}
	return "paypal: request not sent: " + e.Err.Error()
}

func (e *transportError) Unwrap() error { return e.Err }

// do sends one request and decodes a 2xx answer into out. Every failure comes
// back as a classified *paymux.ProviderError.
//
// plutov/paypal builds the request (NewRequest) and fetches the token, but we
// send it ourselves: its Send loses the HTTP status when an error body is not
// JSON (a 502 from a proxy), and several of its calls cannot carry
// PayPal-Request-Id (AuthorizeOrder, VoidAuthorization).
func (p *Provider) do(ctx context.Context, c call, out any) error {
	if c.method == http.MethodPost && c.requestID == "" {
		// A POST without a request id could be applied twice on retry.
		return p.perr(c.op, paymux.KindInvalidRequest, "missing_request_id", 0, "PayPal-Request-Id is required on every POST", nil)
	}
	for try := 0; ; try++ {
		token, err := p.tokens.get(ctx)
		if err != nil {
			return p.classifyTokenError(c.op, err)
		}
		status, body, err := p.send(ctx, c, token)
		if err != nil {
			return p.classifyTransport(c.op, err)
		}
		if status == http.StatusUnauthorized && try == 0 {
			// An expired or revoked token is refused before anything is
			// processed: get a new one and send the same request again.
			p.tokens.invalidate(token)
			continue
		}
		if status < 200 || status > 299 {
			return p.classifyHTTP(c.op, status, body)
		}
		if out == nil || len(bytes.TrimSpace(body)) == 0 {
			return nil
		}
		if err := json.Unmarshal(body, out); err != nil {
			// The call succeeded but its answer is unreadable: the money
			// may have moved.
			return p.perr(c.op, paymux.KindOutcomeUnknown, "bad_response", status, "unreadable response body", err)
		}
		return nil
	}
}

func (p *Provider) send(ctx context.Context, c call, token string) (int, []byte, error) {
	var sent bool
	var mu sync.Mutex
	trace := &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) {
			// Even a write that reported an error may have reached the
			// server, so any WroteRequest counts as sent.
			mu.Lock()
			sent = true
			mu.Unlock()
		},
	}
	var req *http.Request
	var err error
	url := p.baseURL + c.path
	if c.rawBody != nil {
		req, err = http.NewRequestWithContext(ctx, c.method, url, bytes.NewReader(c.rawBody))
	} else {
		req, err = p.api.NewRequest(ctx, c.method, url, c.body)
	}
	if err != nil {
		return 0, nil, &transportError{Err: err}
	}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if req.Body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.requestID != "" {
		req.Header.Set("PayPal-Request-Id", c.requestID)
	}
	if c.method == http.MethodPost {
		req.Header.Set("Prefer", "return=representation")
	}
	if c.mock != "" {
		mock, _ := json.Marshal(paypalapi.CaptureOrderMockResponse{MockApplicationCodes: c.mock})
		req.Header.Set("PayPal-Mock-Response", string(mock))
	}
	resp, err := p.httpClient.Do(req)
	if err != nil {
		mu.Lock()
		s := sent
		mu.Unlock()
		return 0, nil, &transportError{Sent: s && !isDialError(err), Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		// Reset mid-response: PayPal answered, so it got the request.
		return 0, nil, &transportError{Sent: true, Err: err}
	}
	return resp.StatusCode, body, nil
}

// isDialError reports an error that happened while connecting, before any
// byte of the request could have been sent.
func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

func (p *Provider) perr(op paymux.Operation, kind paymux.Kind, code string, status int, msg string, err error) *paymux.ProviderError {
	return &paymux.ProviderError{
		Provider: p.name, Operation: op, Kind: kind, Code: code,
		HTTPStatus: status, Message: paymux.Redact(msg), Err: err,
	}
}

func (p *Provider) classifyTransport(op paymux.Operation, err error) error {
	var te *transportError
	if errors.As(err, &te) && !te.Sent {
		return p.perr(op, paymux.KindUnavailable, CodeConnectionRefused, 0, "request not sent", err)
	}
	return p.perr(op, paymux.KindOutcomeUnknown, CodeNoResponse, 0, "no response after the request was sent", err)
}

// classifyTokenError: without a token the payment request was never sent, so
// money cannot have moved whatever went wrong.
func (p *Provider) classifyTokenError(op paymux.Operation, err error) error {
	var er *paypalapi.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		switch er.Response.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return p.perr(op, paymux.KindAuthentication, CodeInvalidClient, er.Response.StatusCode, "PayPal refused the client credentials", err)
		case http.StatusTooManyRequests:
			return p.perr(op, paymux.KindRateLimited, CodeRateLimitReached, er.Response.StatusCode, "token request rate limited", err)
		}
		return p.perr(op, paymux.KindUnavailable, CodeTokenUnavailable, er.Response.StatusCode, "could not get an access token", err)
	}
	return p.perr(op, paymux.KindUnavailable, CodeTokenUnavailable, 0, "could not get an access token", err)
}

// wireError is PayPal's error body: {name, message, debug_id, details[]}
// for the REST APIs, {error, error_description} for OAuth.
type wireError struct {
	paypalapi.ErrorResponse
	OAuthError       string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

func (p *Provider) classifyHTTP(op paymux.Operation, status int, body []byte) error {
	var w wireError
	_ = json.Unmarshal(body, &w) // a non-JSON body still has a status
	ae := &apiError{StatusCode: status, Name: w.Name, Message: w.Message, DebugID: w.DebugID, Details: w.Details}
	if ae.Name == "" && w.OAuthError != "" {
		ae.Name, ae.Message = w.OAuthError, w.ErrorDescription
	}
	for _, d := range w.Details {
		if d.Issue != "" {
			ae.Issue = d.Issue
			if ae.Message == "" || d.Description != "" {
				ae.Message = d.Description
			}
			break
		}
	}
	code := errorCode(status, ae.Name, ae.Issue)
	cls := classify(p.table, p.name, op, status, code)
	pe := p.perr(op, cls.Kind, code, status, ae.Message, ae)
	if cls.Kind == paymux.KindHardDecline || cls.Kind == paymux.KindSoftDecline {
		pe.DeclineCode = ae.Issue
		if pe.DeclineCode == code {
			pe.DeclineCode = ""
		}
	}
	return pe
}
