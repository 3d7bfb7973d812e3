package worldpay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"

	"github.com/paymux/paymux"
)

// Wire types: only the fields paymux sends or reads.

type paymentRequest struct {
	TransactionReference string      `json:"transactionReference"`
	Merchant             merchant    `json:"merchant"`
	Instruction          instruction `json:"instruction"`
}

type merchant struct {
	Entity string `json:"entity"`
}

type instruction struct {
	Method            string            `json:"method"`
	PaymentInstrument paymentInstrument `json:"paymentInstrument"`
	Narrative         narrative         `json:"narrative"`
	Value             value             `json:"value"`
	Settlement        *settlement       `json:"settlement,omitempty"`
	ThreeDS           *threeDS          `json:"threeDS,omitempty"`
}

// paymentInstrument is a Checkout session ({type: checkout, sessionHref}) or
// a Worldpay token ({type: token, href}). Never card data.
type paymentInstrument struct {
	Type           string `json:"type"`
	SessionHref    string `json:"sessionHref,omitempty"`
	Href           string `json:"href,omitempty"`
	CardHolderName string `json:"cardHolderName,omitempty"`
}

type narrative struct {
	Line1 string `json:"line1"`
}

type value struct {
	Currency string `json:"currency"`
	Amount   int64  `json:"amount"`
}

type settlement struct {
	Auto bool `json:"auto"`
}

type threeDS struct {
	Type       string           `json:"type"`
	Mode       string           `json:"mode"`
	Challenge  threeDSChallenge `json:"challenge"`
	DeviceData deviceData       `json:"deviceData"`
}

type threeDSChallenge struct {
	ReturnURL string `json:"returnUrl"`
}

type deviceData struct {
	AcceptHeader    string `json:"acceptHeader"`
	UserAgentHeader string `json:"userAgentHeader"`
}

type partialRequest struct {
	Value     value  `json:"value"`
	Reference string `json:"reference,omitempty"`
}

type link struct {
	Href   string `json:"href"`
	Method string `json:"method,omitempty"`
}

func (l link) method() string {
	if l.Method == "" {
		return http.MethodPost
	}
	return strings.ToUpper(l.Method)
}

// Action names, normalised from the 2024-06-01 _actions names and the HAL
// rels the recovery query returns.
const (
	actSelf          = "self"
	actSettle        = "settle"
	actPartialSettle = "partialSettle"
	actRefund        = "refund"
	actPartialRefund = "partialRefund"
	actCancel        = "cancel"
)

var actionNames = map[string]string{
	"self":                   actSelf,
	"settlePayment":          actSettle,
	"payments:settle":        actSettle,
	"cardPayments:settle":    actSettle,
	"partiallySettlePayment": actPartialSettle,
	"payments:partialSettle": actPartialSettle,
	"refundPayment":          actRefund,
	"payments:refund":        actRefund,
	"partiallyRefundPayment": actPartialRefund,
	"payments:partialRefund": actPartialRefund,
	"cancelPayment":          actCancel,
	"payments:cancel":        actCancel,
}

type actions map[string]link

func (a actions) has(name string) bool { _, ok := a[name]; return ok }

func (a actions) clone() actions {
	c := make(actions, len(a))
	for k, v := range a {
		c[k] = v
	}
	return c
}

// collect normalises _links and _actions into one map. Entries without an
// href are ignored.
func collect(links, acts map[string]json.RawMessage) actions {
	out := actions{}
	add := func(m map[string]json.RawMessage) {
		for name, raw := range m {
			norm, ok := actionNames[name]
			if !ok {
				continue
			}
			var l link
			if json.Unmarshal(raw, &l) != nil || l.Href == "" {
				var s string // v5 style: "payments:settle": "/payments/..."
				if json.Unmarshal(raw, &s) != nil || s == "" {
					continue
				}
				l = link{Href: s}
			}
			out[norm] = l
		}
	}
	add(links)
	add(acts)
	return out
}

type paymentResponse struct {
	Outcome              string                     `json:"outcome"`
	TransactionReference string                     `json:"transactionReference"`
	RefusalDescription   string                     `json:"refusalDescription"`
	RefusalCode          string                     `json:"refusalCode"`
	Advice               *advice                    `json:"advice"`
	DeviceDataCollection *struct{ URL string }      `json:"deviceDataCollection"`
	Challenge            *struct{ URL string }      `json:"challenge"`
	Links                map[string]json.RawMessage `json:"_links"`
	Actions              map[string]json.RawMessage `json:"_actions"`
	httpStatus           int
}

func (r *paymentResponse) actions() actions { return collect(r.Links, r.Actions) }

type advice struct {
	Code string `json:"code"`
}

type queryResponse struct {
	LastEvent   string                     `json:"lastEvent"`
	RefusalCode string                     `json:"refusalCode"`
	Links       map[string]json.RawMessage `json:"_links"`
	Actions     map[string]json.RawMessage `json:"_actions"`
}

func (r *queryResponse) actions() actions { return collect(r.Links, r.Actions) }

type errorResponse struct {
	ErrorName string `json:"errorName"`
	Message   string `json:"message"`
}

// instrumentFor maps a paymux method token to a payment instrument. The
// token is a Checkout session href (".../sessions/...") or a Worldpay token
// href (".../tokens/..."). An optional "#name" suffix carries the
// cardholder name, which Worldpay recommends sending (and which its Try
// environment reads for test values such as REFUSED51).
func instrumentFor(m paymux.PaymentMethod) (paymentInstrument, error) {
	if m.Type != "" && m.Type != paymux.MethodCard {
		return paymentInstrument{}, fmt.Errorf("method type %q is not supported", m.Type)
	}
	if paymux.LooksLikeCardNumber(m.Token) {
		return paymentInstrument{}, paymux.ErrCardData
	}
	href, name, _ := strings.Cut(m.Token, "#")
	u, err := url.Parse(href)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return paymentInstrument{}, errors.New("method token must be a Checkout session href or a token href")
	}
	name, _ = url.PathUnescape(name)
	switch {
	case strings.Contains(u.Path, "/sessions/"):
		return paymentInstrument{Type: "checkout", SessionHref: href, CardHolderName: name}, nil
	case strings.Contains(u.Path, "/tokens/"):
		return paymentInstrument{Type: "token", Href: href}, nil
	}
	return paymentInstrument{}, errors.New("method token must be a Checkout session href (/sessions/) or a token href (/tokens/)")
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

const maxResponse = 1 << 20

// do sends one request and decodes a 2xx body into out. Every failure comes
// back as a *paymux.ProviderError whose Kind says what is known about the
// money.
func (p *Provider) do(ctx context.Context, op paymux.Operation, method, u string, body, out any) error {
	var rdr io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return p.invalid(op, "encode request: "+err.Error())
		}
		rdr = bytes.NewReader(b)
	} else if method == http.MethodPost {
		rdr = bytes.NewReader([]byte("{}"))
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rdr)
	if err != nil {
		return p.invalid(op, "build request: "+err.Error())
	}
	req.SetBasicAuth(p.cfg.Username, p.cfg.Password.Reveal())
	req.Header.Set("WP-Api-Version", APIVersion)
	req.Header.Set("Accept", "application/json")
	if rdr != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return p.transportError(op, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		// The request arrived; the answer was lost.
		return &paymux.ProviderError{Provider: p.cfg.Name, Operation: op, Kind: paymux.KindOutcomeUnknown, Code: "response_lost",
			HTTPStatus: resp.StatusCode, Message: "reading the response failed", Err: err}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if out == nil || len(bytes.TrimSpace(raw)) == 0 {
			return nil
		}
		if err := json.Unmarshal(raw, out); err != nil {
			return &paymux.ProviderError{Provider: p.cfg.Name, Operation: op, Kind: paymux.KindOutcomeUnknown, Code: "undecodable_response",
				HTTPStatus: resp.StatusCode, Message: "2xx with a body paymux cannot read", Err: err}
		}
		if pr, ok := out.(*paymentResponse); ok {
			pr.httpStatus = resp.StatusCode
		}
		return nil
	}
	return p.httpError(op, resp.StatusCode, raw)
}

// httpError classifies a non-2xx answer. Worldpay answers 4xx before doing
// anything; a 5xx's effect is not documented, so it may have been processed.
func (p *Provider) httpError(op paymux.Operation, status int, raw []byte) error {
	var er errorResponse
	_ = json.Unmarshal(raw, &er)
	code := er.ErrorName
	if code == "" {
		code = fmt.Sprintf("http_%d", status)
	}
	pe := &paymux.ProviderError{Provider: p.cfg.Name, Operation: op, Code: code, HTTPStatus: status, Message: er.Message}
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		pe.Kind = paymux.KindAuthentication
	case status == http.StatusNotFound:
		pe.Kind = paymux.KindNotFound
	case status == http.StatusConflict:
		pe.Kind = paymux.KindConflict
	case status == http.StatusTooManyRequests:
		pe.Kind = paymux.KindRateLimited
	case status >= 500:
		pe.Kind = paymux.KindOutcomeUnknown
	default:
		pe.Kind = paymux.KindInvalidRequest
	}
	if c, ok := p.table.Lookup(p.cfg.Name, op, code); ok && status < 500 {
		pe.Kind = c.Kind
	}
	if pe.Kind == paymux.KindOutcomeUnknown {
		p.log.Warn("worldpay: outcome unknown", "operation", string(op), "status", status, "code", code)
	}
	return pe
}

// transportError: only a connection that was never established proves that
// Worldpay did not see the request.
func (p *Provider) transportError(op paymux.Operation, err error) error {
	pe := &paymux.ProviderError{Provider: p.cfg.Name, Operation: op, Kind: paymux.KindOutcomeUnknown, Code: "transport", Err: err,
		Message: "request sent, answer lost"}
	var oe *net.OpError
	var dns *net.DNSError
	switch {
	case errors.As(err, &oe) && oe.Op == "dial", errors.Is(err, syscall.ECONNREFUSED), errors.As(err, &dns):
		pe.Kind, pe.Code, pe.Message = paymux.KindUnavailable, "connection_refused", "could not connect"
	default:
		p.log.Warn("worldpay: outcome unknown", "operation", string(op), "err", err.Error())
	}
	return pe
}
