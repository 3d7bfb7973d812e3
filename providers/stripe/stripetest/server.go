// Package stripetest is a stateful fake of the Stripe API for tests and
// demos: PaymentIntents (create, confirm, capture, cancel, retrieve, list,
// search) and refunds, on a real HTTP server on loopback. It reads the
// form-encoded requests stripe-go sends and answers JSON in Stripe's shape.
//
// It keeps Stripe's idempotency rules (the same Idempotency-Key replays the
// saved answer; the same key with other parameters is a 400
// idempotency_error), declines on Stripe's documented test PaymentMethods,
// injects faults from a *providertest.Faults, counts charges per paymux key,
// and sends webhooks signed exactly as Stripe signs them.
//
// # Test PaymentMethods
//
// Approved: pm_card_visa, pm_card_mastercard, pm_card_amex, pm_card_discover,
// pm_card_visa_debit and the pm_card_<country> family.
// Declined (also with the pm_card_visa_ prefix where Stripe documents it):
// pm_card_chargeDeclined (generic_decline), ...InsufficientFunds, ...LostCard,
// ...StolenCard, ...ExpiredCard (code expired_card), ...IncorrectCvc,
// ...ProcessingError (code processing_error), ...Fraudulent,
// pm_card_visa_chargeDeclinedVelocityLimitExceeded.
// 3-D Secure: pm_card_authenticationRequired, pm_card_threeDSecure2Required,
// pm_card_threeDSecureRequired (always requires_action),
// pm_card_threeDSecureOptional (requires_action only when 3-D Secure is
// requested).
//
// Fake-only names, for codes Stripe has no test PaymentMethod for:
// pm_card_chargeDeclinedIncorrectNumber (code incorrect_number),
// pm_card_chargeDeclinedIssuerNotAvailable, pm_card_chargeDeclinedTryAgainLater
// (with advice_code try_again_later), and
// pm_card_chargeDeclinedAuthenticationRequired, which declines with
// authentication_required unless payment_method_options[card][request_three_d_secure]=any,
// and then requires 3-D Secure.
package stripetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/paymux/paymux/providers/providertest"
)

// Defaults for Options.
const (
	DefaultSecretKey     = "sk_test_stripetest"
	DefaultWebhookSecret = "whsec_stripetest"
	DefaultAPIVersion    = "2023-10-16"
)

// Options configures a fake. The zero value works: any sk_test key is
// accepted, webhooks are kept (see Events) but sent nowhere.
type Options struct {
	// SecretKey, when set, is the only API key accepted.
	SecretKey string
	// WebhookSecret signs webhooks; DefaultWebhookSecret when empty.
	WebhookSecret string
	// WebhookURL receives every event as Stripe would POST it.
	WebhookURL string
	// WebhookSink receives every event in-process (header and body as
	// sent). Both may be set.
	WebhookSink func(header http.Header, body []byte)
	// WebhookClient posts to WebhookURL; http.DefaultClient when nil.
	WebhookClient *http.Client
	// Faults drives fault injection; nil injects none.
	Faults *providertest.Faults
	// Clock stamps objects and signs webhooks; time.Now when nil.
	Clock func() time.Time
	// APIVersion is written into events; DefaultAPIVersion when empty.
	APIVersion string
	Logger     *slog.Logger
}

// Server is a running fake. Point the adapter's BaseURL at URL and use
// Client as its HTTP client, so that an injected outage refuses connections.
type Server struct {
	URL  string
	srv  *httptest.Server
	opts Options

	mu       sync.Mutex
	seq      int
	intents  map[string]*intent
	order    []*intent
	charges  map[string]*charge
	refunds  map[string]*refund
	idem     map[string]*saved
	moved    map[string]int // charges per paymux key
	requests int

	hooks *delivery
}

type saved struct {
	endpoint, fingerprint string
	status                int
	body                  []byte
}

type intent struct {
	ID, Currency, Status, CaptureMethod, PaymentMethod, ClientSecret, ReturnURL string
	Amount, AmountCapturable, AmountReceived                                    int64
	Created                                                                     int64
	Metadata                                                                    map[string]string
	ThreeDS                                                                     string
	LastError                                                                   map[string]any
	Charge                                                                      *charge
	NextAction                                                                  map[string]any
	CancellationReason                                                          string
	counted                                                                     bool
}

type charge struct {
	ID, Status, PaymentIntent, Currency, PaymentMethod string
	Amount, AmountCaptured, AmountRefunded             int64
	Captured                                           bool
	Created                                            int64
	Metadata                                           map[string]string
	FailureCode, FailureMessage                        string
	Refunds                                            []*refund
}

type refund struct {
	ID, Charge, PaymentIntent, Currency, Reason, Status string
	Amount                                              int64
	Created                                             int64
	Metadata                                            map[string]string
}

// NewServer starts a fake on a loopback port. Close it when done.
func NewServer(opts Options) *Server {
	if opts.WebhookSecret == "" {
		opts.WebhookSecret = DefaultWebhookSecret
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.APIVersion == "" {
		opts.APIVersion = DefaultAPIVersion
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		opts:    opts,
		intents: map[string]*intent{},
		charges: map[string]*charge{},
		refunds: map[string]*refund{},
		idem:    map[string]*saved{},
		moved:   map[string]int{},
	}
	s.hooks = newDelivery(opts)
	s.srv = httptest.NewServer(s)
	s.URL = s.srv.URL
	return s
}

// Close stops the server and the webhook sender.
func (s *Server) Close() {
	s.srv.Close()
	s.hooks.close()
}

// Client returns an HTTP client for the fake. While Faults says Outage it
// refuses to connect, as a client sees a provider that is down: no byte
// of the request is sent.
func (s *Server) Client() *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if s.opts.Faults != nil && s.opts.Faults.Plan().Outage {
					return nil, &net.OpError{Op: "dial", Net: network, Err: &net.AddrError{Err: syscall.ECONNREFUSED.Error(), Addr: addr}}
				}
				return d.DialContext(ctx, network, addr)
			},
			MaxIdleConnsPerHost: 16,
		},
	}
}

// Charges reports how many PaymentIntents with metadata paymux_key =
// paymentKey moved money (were authorised or captured).
func (s *Server) Charges(paymentKey string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.moved[paymentKey]
}

// TotalCharges reports how many PaymentIntents moved money.
func (s *Server) TotalCharges() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, v := range s.moved {
		n += v
	}
	return n
}

// Requests reports how many API requests reached the server.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// PaymentIntent returns the fake's JSON view of a PaymentIntent, or nil.
func (s *Server) PaymentIntent(id string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	pi := s.intents[id]
	if pi == nil {
		return nil
	}
	return s.renderIntent(pi, true)
}

// ErrNoSuchIntent is returned for an unknown PaymentIntent id.
var ErrNoSuchIntent = errors.New("stripetest: no such PaymentIntent")

// CompleteAction finishes the buyer's 3-D Secure challenge for a
// PaymentIntent in requires_action: it authorises (or captures) it.
func (s *Server) CompleteAction(id string) error { return s.finishAction(id, true) }

// FailAction fails the challenge: the PaymentIntent goes back to
// requires_payment_method with payment_intent_authentication_failure.
func (s *Server) FailAction(id string) error { return s.finishAction(id, false) }

func (s *Server) finishAction(id string, ok bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	pi := s.intents[id]
	if pi == nil {
		return fmt.Errorf("%w: %s", ErrNoSuchIntent, id)
	}
	if pi.Status != "requires_action" {
		return fmt.Errorf("stripetest: PaymentIntent %s is %s, not requires_action", id, pi.Status)
	}
	pi.NextAction = nil
	if ok {
		s.approve(pi)
		return nil
	}
	s.decline(pi, outcome{code: "payment_intent_authentication_failure",
		msg: "We are unable to authenticate your payment method. Please choose a different payment method and try again."})
	return nil
}

// TriggerDispute opens a dispute on a captured PaymentIntent and sends
// charge.dispute.created.
func (s *Server) TriggerDispute(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	pi := s.intents[id]
	if pi == nil || pi.Charge == nil || !pi.Charge.Captured {
		return fmt.Errorf("%w: %s has no captured charge", ErrNoSuchIntent, id)
	}
	now := s.opts.Clock().Unix()
	s.emit("charge.dispute.created", map[string]any{
		"id": s.newID("dp"), "object": "dispute", "amount": pi.Charge.AmountCaptured - pi.Charge.AmountRefunded,
		"currency": pi.Currency, "charge": pi.Charge.ID, "payment_intent": pi.ID, "reason": "fraudulent",
		"status": "needs_response", "created": now, "livemode": false, "metadata": map[string]string{},
	}, "")
	return nil
}

// Events returns every webhook body the fake produced, oldest first.
func (s *Server) Events() [][]byte { return s.hooks.all() }

// FlushWebhooks waits until every event produced so far was handed to the
// sink and URL, or ctx ends.
func (s *Server) FlushWebhooks(ctx context.Context) error { return s.hooks.flush(ctx) }

// Sign returns the Stripe-Signature header for body at t with the fake's
// webhook secret, as Stripe computes it.
func (s *Server) Sign(t time.Time, body []byte) http.Header {
	h := http.Header{}
	h.Set("Stripe-Signature", signHeader(t, body, s.opts.WebhookSecret))
	h.Set("Content-Type", "application/json; charset=utf-8")
	return h
}

// ServeHTTP implements the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/3ds/") {
		s.serveChallenge(w, r)
		return
	}
	mutating := r.Method == http.MethodPost
	fault, latency := s.opts.Faults.Next(mutating)
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	s.mu.Lock()
	s.requests++
	s.mu.Unlock()
	switch fault {
	case providertest.FaultOutage:
		// Reached only by clients that bypass Client's refusing dialer:
		// refuse before reading the request.
		w.Header().Set("Stripe-Should-Retry", "true")
		writeJSON(w, http.StatusServiceUnavailable, apiErr("api_error", "", "The Stripe API is temporarily unavailable."))
		return
	case providertest.FaultRateLimit:
		writeJSON(w, http.StatusTooManyRequests, apiErr("invalid_request_error", "rate_limit",
			"Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits."))
		return
	case providertest.FaultServerError:
		// Not processed and not saved under the key, so a retry with the
		// same key executes normally.
		writeJSON(w, http.StatusInternalServerError, apiErr("api_error", "", "An unknown error occurred"))
		return
	}
	if status, body := s.authenticate(r); status != 0 {
		writeJSON(w, status, body)
		return
	}
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, apiErr("invalid_request_error", "parameter_invalid", "Invalid form body."))
		return
	}
	h := s.route(r)
	if h == nil {
		writeJSON(w, http.StatusNotFound, apiErr("invalid_request_error", "resource_missing",
			"Unrecognized request URL ("+r.Method+": "+r.URL.Path+")."))
		return
	}
	key := strings.TrimSpace(r.Header.Get("Idempotency-Key"))
	endpoint := r.Method + " " + r.URL.Path
	fingerprint := r.PostForm.Encode()

	s.mu.Lock()
	var (
		status   int
		body     []byte
		replayed bool
	)
	if prev := s.idem[key]; mutating && key != "" && prev != nil {
		if prev.endpoint != endpoint || prev.fingerprint != fingerprint {
			status, body = http.StatusBadRequest, mustJSON(apiErr("idempotency_error", "",
				"Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '"+key+"' if you meant to execute a different request."))
		} else {
			status, body, replayed = prev.status, prev.body, true
		}
	} else {
		var v any
		status, v = h(r, r.Form, key)
		body = mustJSON(v)
		// Stripe saves results once execution began: successes, declines
		// and 5xx. Refused parameters are not saved, so a fixed retry may
		// reuse the key.
		if mutating && key != "" && (status < 400 || status == http.StatusPaymentRequired || status >= 500) {
			s.idem[key] = &saved{endpoint: endpoint, fingerprint: fingerprint, status: status, body: body}
		}
	}
	s.mu.Unlock()

	if fault == providertest.FaultTimeoutAfterCommit {
		cutResponse(w, status, body)
		return
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	if key != "" {
		w.Header().Set("Idempotency-Key", key)
	}
	w.Header().Set("Request-Id", "req_"+randHex(7))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// cutResponse sends the status line, the headers and half the body, then
// drops the connection: the client knows the request arrived and cannot
// know the outcome, and net/http will not silently resend it.
func cutResponse(w http.ResponseWriter, status int, body []byte) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", status, http.StatusText(status), len(body))
	_, _ = buf.Write(body[:len(body)/2])
	_ = buf.Flush()
}

func (s *Server) authenticate(r *http.Request) (int, any) {
	auth := r.Header.Get("Authorization")
	key := strings.TrimPrefix(auth, "Bearer ")
	if key == auth {
		if u, _, ok := r.BasicAuth(); ok {
			key = u
		} else {
			key = ""
		}
	}
	if key == "" {
		return http.StatusUnauthorized, apiErr("invalid_request_error", "",
			"You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth.")
	}
	if (s.opts.SecretKey != "" && key != s.opts.SecretKey) || !(strings.HasPrefix(key, "sk_test_") || strings.HasPrefix(key, "rk_test_")) {
		tail := key
		if len(tail) > 4 {
			tail = tail[len(tail)-4:]
		}
		return http.StatusUnauthorized, apiErr("invalid_request_error", "", "Invalid API Key provided: sk_test_********"+tail)
	}
	return 0, nil
}

type handler func(r *http.Request, f url.Values, key string) (int, any)

func (s *Server) route(r *http.Request) handler {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) < 2 || parts[0] != "v1" {
		return nil
	}
	get, post := r.Method == http.MethodGet, r.Method == http.MethodPost
	switch {
	case parts[1] == "payment_intents" && len(parts) == 2 && post:
		return s.createIntent
	case parts[1] == "payment_intents" && len(parts) == 2 && get:
		return s.listIntents
	case parts[1] == "payment_intents" && len(parts) == 3 && parts[2] == "search" && get:
		return s.searchIntents
	case parts[1] == "payment_intents" && len(parts) == 3 && get:
		return s.withIntent(parts[2], s.retrieveIntent)
	case parts[1] == "payment_intents" && len(parts) == 4 && post:
		switch parts[3] {
		case "confirm":
			return s.withIntent(parts[2], s.confirmIntent)
		case "capture":
			return s.withIntent(parts[2], s.captureIntent)
		case "cancel":
			return s.withIntent(parts[2], s.cancelIntent)
		}
	case parts[1] == "refunds" && len(parts) == 2 && post:
		return s.createRefund
	case parts[1] == "refunds" && len(parts) == 3 && get:
		return func(r *http.Request, f url.Values, _ string) (int, any) {
			rf := s.refunds[parts[2]]
			if rf == nil {
				return missing("refund", parts[2])
			}
			return http.StatusOK, s.renderRefund(rf)
		}
	}
	return nil
}

func (s *Server) withIntent(id string, h func(pi *intent, f url.Values, key string) (int, any)) handler {
	return func(r *http.Request, f url.Values, key string) (int, any) {
		pi := s.intents[id]
		if pi == nil {
			return missing("payment_intent", id)
		}
		return h(pi, f, key)
	}
}

func missing(kind, id string) (int, any) {
	return http.StatusNotFound, map[string]any{"error": map[string]any{
		"code": "resource_missing", "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
		"message": fmt.Sprintf("No such %s: '%s'", kind, id), "param": "intent", "type": "invalid_request_error",
	}}
}

func invalid(code, param, msg string) (int, any) {
	e := apiErr("invalid_request_error", code, msg)
	if param != "" {
		e["error"].(map[string]any)["param"] = param
	}
	return http.StatusBadRequest, e
}

// Handlers run with s.mu held: ServeHTTP holds it for the whole request,
// which makes idempotency checks and state changes atomic.
func (s *Server) createIntent(_ *http.Request, f url.Values, key string) (int, any) {
	amount, err := strconv.ParseInt(f.Get("amount"), 10, 64)
	if err != nil || amount <= 0 {
		return invalid("parameter_invalid_integer", "amount", "Invalid positive integer")
	}
	currency := strings.ToLower(f.Get("currency"))
	if len(currency) != 3 {
		return invalid("parameter_missing", "currency", "Missing required param: currency.")
	}
	capture := f.Get("capture_method")
	if capture == "" {
		capture = "automatic"
	}
	if capture != "automatic" && capture != "manual" && capture != "automatic_async" {
		return invalid("parameter_invalid_string", "capture_method", "Invalid capture_method")
	}
	now := s.opts.Clock().Unix()
	pi := &intent{
		ID: s.newID("pi"), Currency: currency, Status: "requires_payment_method", CaptureMethod: capture,
		Amount: amount, Created: now, Metadata: formMap(f, "metadata"), ReturnURL: f.Get("return_url"),
		ThreeDS: f.Get("payment_method_options[card][request_three_d_secure]"),
	}
	pi.ClientSecret = pi.ID + "_secret_" + randHex(12)
	if pm := f.Get("payment_method"); pm != "" {
		if _, ok := lookupPM(pm); !ok {
			return http.StatusBadRequest, map[string]any{"error": map[string]any{
				"code": "resource_missing", "message": "No such PaymentMethod: '" + pm + "'", "param": "payment_method", "type": "invalid_request_error",
			}}
		}
		pi.PaymentMethod = pm
		pi.Status = "requires_confirmation"
	}
	if f.Get("confirm") == "true" {
		if pi.PaymentMethod == "" {
			return invalid("parameter_missing", "payment_method", "You cannot confirm this PaymentIntent because it's missing a payment method.")
		}
		s.intents[pi.ID] = pi
		s.order = append(s.order, pi)
		return s.confirm(pi, f)
	}
	s.intents[pi.ID] = pi
	s.order = append(s.order, pi)
	return http.StatusOK, s.renderIntent(pi, expands(f, "latest_charge"))
}

func (s *Server) confirmIntent(pi *intent, f url.Values, _ string) (int, any) {
	if pm := f.Get("payment_method"); pm != "" {
		if _, ok := lookupPM(pm); !ok {
			return invalid("resource_missing", "payment_method", "No such PaymentMethod: '"+pm+"'")
		}
		pi.PaymentMethod = pm
	}
	if v := f.Get("payment_method_options[card][request_three_d_secure]"); v != "" {
		pi.ThreeDS = v
	}
	if v := f.Get("return_url"); v != "" {
		pi.ReturnURL = v
	}
	if pi.Status != "requires_confirmation" && pi.Status != "requires_payment_method" {
		return unexpectedState(pi, "confirmed", "requires_payment_method, requires_confirmation")
	}
	if pi.PaymentMethod == "" {
		return invalid("parameter_missing", "payment_method", "You cannot confirm this PaymentIntent because it's missing a payment method.")
	}
	return s.confirm(pi, f)
}

// confirm runs the PaymentMethod's documented behaviour.
func (s *Server) confirm(pi *intent, f url.Values) (int, any) {
	o, _ := lookupPM(pi.PaymentMethod)
	pi.LastError = nil
	switch {
	case o.action || (o.actionIf3DS && pi.ThreeDS == "any") || (o.stepUp && pi.ThreeDS == "any"):
		pi.Status = "requires_action"
		challenge := s.URL + "/3ds/" + pi.ID
		if pi.ReturnURL != "" {
			pi.NextAction = map[string]any{"type": "redirect_to_url", "redirect_to_url": map[string]any{
				"url": challenge, "return_url": pi.ReturnURL}}
		} else {
			pi.NextAction = map[string]any{"type": "use_stripe_sdk", "use_stripe_sdk": map[string]any{
				"type": "three_d_secure_redirect", "stripe_js": challenge, "source": "src_" + randHex(12)}}
		}
		s.emit("payment_intent.requires_action", s.renderIntent(pi, false), "")
		return http.StatusOK, s.renderIntent(pi, expands(f, "latest_charge"))
	case o.code != "":
		s.decline(pi, o)
		body := map[string]any{
			"type": "card_error", "code": o.code, "message": o.msg, "charge": pi.Charge.ID,
			"doc_url":         "https://stripe.com/docs/error-codes/" + strings.ReplaceAll(o.code, "_", "-"),
			"payment_intent":  s.renderIntent(pi, false),
			"payment_method":  map[string]any{"id": pi.PaymentMethod, "object": "payment_method", "type": "card"},
			"request_log_url": "https://dashboard.stripe.com/test/logs/req_" + randHex(7),
		}
		if o.decline != "" {
			body["decline_code"] = o.decline
		}
		if o.advice != "" {
			body["advice_code"] = o.advice
		}
		return http.StatusPaymentRequired, map[string]any{"error": body}
	}
	s.approve(pi)
	return http.StatusOK, s.renderIntent(pi, expands(f, "latest_charge"))
}

func (s *Server) newCharge(pi *intent, status string) *charge {
	ch := &charge{ID: s.newID("ch"), Status: status, PaymentIntent: pi.ID, Currency: pi.Currency, PaymentMethod: pi.PaymentMethod,
		Amount: pi.Amount, Created: s.opts.Clock().Unix(), Metadata: pi.Metadata}
	s.charges[ch.ID] = ch
	pi.Charge = ch
	return ch
}

// approve authorises pi and, with automatic capture, captures it.
func (s *Server) approve(pi *intent) {
	ch := s.newCharge(pi, "succeeded")
	if !pi.counted {
		pi.counted = true
		s.moved[pi.Metadata["paymux_key"]]++
	}
	if pi.CaptureMethod == "manual" {
		pi.Status = "requires_capture"
		pi.AmountCapturable = pi.Amount
		s.emit("payment_intent.amount_capturable_updated", s.renderIntent(pi, false), "")
		return
	}
	pi.Status = "succeeded"
	pi.AmountReceived = pi.Amount
	ch.Captured, ch.AmountCaptured = true, pi.Amount
	s.emit("payment_intent.succeeded", s.renderIntent(pi, false), "")
}

func (s *Server) decline(pi *intent, o outcome) {
	ch := s.newCharge(pi, "failed")
	ch.FailureCode, ch.FailureMessage = o.code, o.msg
	if o.decline != "" {
		ch.FailureCode = o.decline
	}
	pi.Status = "requires_payment_method"
	pi.NextAction = nil
	le := map[string]any{"type": "card_error", "code": o.code, "message": o.msg, "charge": ch.ID,
		"payment_method": map[string]any{"id": pi.PaymentMethod, "object": "payment_method", "type": "card"}}
	if o.decline != "" {
		le["decline_code"] = o.decline
	}
	if o.advice != "" {
		le["advice_code"] = o.advice
	}
	pi.LastError = le
	s.emit("payment_intent.payment_failed", s.renderIntent(pi, false), "")
}

func (s *Server) captureIntent(pi *intent, f url.Values, _ string) (int, any) {
	if pi.Status != "requires_capture" {
		return unexpectedState(pi, "captured", "requires_capture")
	}
	amount := pi.AmountCapturable
	if v := f.Get("amount_to_capture"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return invalid("parameter_invalid_integer", "amount_to_capture", "Invalid positive integer")
		}
		if n > pi.AmountCapturable {
			return invalid("amount_too_large", "amount_to_capture",
				fmt.Sprintf("The amount_to_capture (%d) must be less than or equal to the amount_capturable (%d).", n, pi.AmountCapturable))
		}
		amount = n
	}
	pi.Status = "succeeded"
	pi.AmountReceived = amount
	pi.AmountCapturable = 0
	pi.Charge.Captured, pi.Charge.AmountCaptured = true, amount
	s.emit("payment_intent.succeeded", s.renderIntent(pi, false), "")
	return http.StatusOK, s.renderIntent(pi, expands(f, "latest_charge"))
}

func (s *Server) cancelIntent(pi *intent, f url.Values, _ string) (int, any) {
	switch pi.Status {
	case "requires_payment_method", "requires_capture", "requires_confirmation", "requires_action", "processing":
	default:
		return unexpectedState(pi, "canceled", "requires_payment_method, requires_capture, requires_confirmation, requires_action, processing")
	}
	pi.Status = "canceled"
	pi.AmountCapturable = 0
	pi.NextAction = nil
	pi.CancellationReason = f.Get("cancellation_reason")
	s.emit("payment_intent.canceled", s.renderIntent(pi, false), "")
	return http.StatusOK, s.renderIntent(pi, expands(f, "latest_charge"))
}

func (s *Server) retrieveIntent(pi *intent, f url.Values, _ string) (int, any) {
	return http.StatusOK, s.renderIntent(pi, expands(f, "latest_charge"))
}

func unexpectedState(pi *intent, verb, allowed string) (int, any) {
	return http.StatusBadRequest, map[string]any{"error": map[string]any{
		"code": "payment_intent_unexpected_state", "type": "invalid_request_error",
		"doc_url": "https://stripe.com/docs/error-codes/payment-intent-unexpected-state",
		"message": fmt.Sprintf("This PaymentIntent could not be %s because it has a status of %s. Only a PaymentIntent with one of the following statuses may be %s: %s.",
			verb, pi.Status, verb, allowed),
	}}
}

func (s *Server) createRefund(_ *http.Request, f url.Values, _ string) (int, any) {
	var pi *intent
	if id := f.Get("payment_intent"); id != "" {
		if pi = s.intents[id]; pi == nil {
			return invalid("resource_missing", "payment_intent", "No such payment_intent: '"+id+"'")
		}
	} else if id := f.Get("charge"); id != "" {
		ch := s.charges[id]
		if ch == nil {
			return invalid("resource_missing", "charge", "No such charge: '"+id+"'")
		}
		pi = s.intents[ch.PaymentIntent]
	} else {
		return invalid("parameter_missing", "payment_intent", "One of the following params should be provided for this request: payment_intent or charge.")
	}
	ch := pi.Charge
	if ch == nil || !ch.Captured {
		return invalid("charge_not_refundable", "payment_intent", "This PaymentIntent does not have a successful charge to refund.")
	}
	remaining := ch.AmountCaptured - ch.AmountRefunded
	if remaining <= 0 {
		return invalid("charge_already_refunded", "", "Charge "+ch.ID+" has already been refunded.")
	}
	amount := remaining
	if v := f.Get("amount"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return invalid("parameter_invalid_integer", "amount", "Invalid positive integer")
		}
		if n > remaining {
			return invalid("amount_too_large", "amount",
				fmt.Sprintf("Refund amount (%d) is greater than unrefunded amount on charge (%d)", n, remaining))
		}
		amount = n
	}
	reason := f.Get("reason")
	if reason != "" && reason != "duplicate" && reason != "fraudulent" && reason != "requested_by_customer" {
		return invalid("parameter_invalid_string", "reason", "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer")
	}
	rf := &refund{ID: s.newID("re"), Charge: ch.ID, PaymentIntent: pi.ID, Currency: pi.Currency, Reason: reason,
		Status: "succeeded", Amount: amount, Created: s.opts.Clock().Unix(), Metadata: formMap(f, "metadata")}
	s.refunds[rf.ID] = rf
	ch.Refunds = append(ch.Refunds, rf)
	ch.AmountRefunded += amount
	s.emit("charge.refunded", s.renderCharge(ch), "")
	return http.StatusOK, s.renderRefund(rf)
}

func (s *Server) listIntents(_ *http.Request, f url.Values, _ string) (int, any) {
	limit := 10
	if n, err := strconv.Atoi(f.Get("limit")); err == nil && n > 0 && n <= 100 {
		limit = n
	}
	gte, _ := strconv.ParseInt(f.Get("created[gte]"), 10, 64)
	after := f.Get("starting_after")
	exp := expands(f, "data.latest_charge")
	data := []any{}
	started := after == ""
	hasMore := false
	for i := len(s.order) - 1; i >= 0; i-- { // newest first, as Stripe lists
		pi := s.order[i]
		if !started {
			started = pi.ID == after
			continue
		}
		if pi.Created < gte {
			continue
		}
		if len(data) == limit {
			hasMore = true
			break
		}
		data = append(data, s.renderIntent(pi, exp))
	}
	return http.StatusOK, map[string]any{"object": "list", "data": data, "has_more": hasMore, "url": "/v1/payment_intents"}
}

func (s *Server) searchIntents(_ *http.Request, f url.Values, _ string) (int, any) {
	clauses, err := parseQuery(f.Get("query"))
	if err != nil {
		return invalid("parameter_invalid_string", "query", err.Error())
	}
	limit := 10
	if n, err := strconv.Atoi(f.Get("limit")); err == nil && n > 0 && n <= 100 {
		limit = n
	}
	exp := expands(f, "data.latest_charge")
	data := []any{}
	for i := len(s.order) - 1; i >= 0 && len(data) < limit; i-- {
		pi := s.order[i]
		ok := true
		for _, c := range clauses {
			var v string
			switch {
			case strings.HasPrefix(c.field, "metadata."):
				v = pi.Metadata[strings.TrimPrefix(c.field, "metadata.")]
			case c.field == "status":
				v = pi.Status
			case c.field == "currency":
				v = pi.Currency
			default:
				ok = false
			}
			if v != c.value {
				ok = false
			}
		}
		if ok {
			data = append(data, s.renderIntent(pi, exp))
		}
	}
	return http.StatusOK, map[string]any{"object": "search_result", "data": data, "has_more": false,
		"next_page": nil, "url": "/v1/payment_intents/search"}
}

type clause struct{ field, value string }

// parseQuery understands the part of Stripe's search language Lookup uses:
// field:'value' clauses joined by AND, where field is metadata['key'] or a
// plain field name, and \' escapes a quote.
func parseQuery(q string) ([]clause, error) {
	var out []clause
	q = strings.TrimSpace(q)
	for q != "" {
		var field string
		if strings.HasPrefix(q, "metadata[") {
			k, rest, err := quoted(strings.TrimPrefix(q, "metadata["))
			if err != nil || !strings.HasPrefix(rest, "]:") {
				return nil, errors.New("invalid metadata clause in query")
			}
			field, q = "metadata."+k, strings.TrimPrefix(rest, "]:")
		} else {
			i := strings.Index(q, ":")
			if i <= 0 {
				return nil, errors.New("invalid query")
			}
			field, q = q[:i], q[i+1:]
		}
		v, rest, err := quoted(q)
		if err != nil {
			return nil, err
		}
		out = append(out, clause{field, v})
		q = strings.TrimSpace(rest)
		if q != "" {
			if !strings.HasPrefix(q, "AND ") {
				return nil, errors.New("only AND is supported in this fake")
			}
			q = strings.TrimSpace(strings.TrimPrefix(q, "AND "))
		}
	}
	if len(out) == 0 {
		return nil, errors.New("empty query")
	}
	return out, nil
}

func quoted(s string) (string, string, error) {
	if !strings.HasPrefix(s, "'") && !strings.HasPrefix(s, `"`) {
		return "", "", errors.New("expected a quoted string")
	}
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case s[i] == q:
			return b.String(), s[i+1:], nil
		default:
			b.WriteByte(s[i])
		}
	}
	return "", "", errors.New("unterminated string")
}

func (s *Server) renderIntent(pi *intent, expandCharge bool) map[string]any {
	m := map[string]any{
		"id": pi.ID, "object": "payment_intent", "amount": pi.Amount, "amount_capturable": pi.AmountCapturable,
		"amount_received": pi.AmountReceived, "currency": pi.Currency, "status": pi.Status,
		"capture_method": pi.CaptureMethod, "confirmation_method": "automatic", "created": pi.Created,
		"client_secret": pi.ClientSecret, "livemode": false, "metadata": nonNil(pi.Metadata),
		"payment_method_types": []string{"card"}, "next_action": nil, "last_payment_error": nil,
		"latest_charge": nil, "payment_method": nil, "cancellation_reason": nil,
	}
	if pi.PaymentMethod != "" {
		m["payment_method"] = pi.PaymentMethod
	}
	if pi.NextAction != nil {
		m["next_action"] = pi.NextAction
	}
	if pi.LastError != nil {
		m["last_payment_error"] = pi.LastError
	}
	if pi.CancellationReason != "" {
		m["cancellation_reason"] = pi.CancellationReason
	}
	if pi.Charge != nil {
		if expandCharge {
			m["latest_charge"] = s.renderCharge(pi.Charge)
		} else {
			m["latest_charge"] = pi.Charge.ID
		}
	}
	return m
}

func (s *Server) renderCharge(ch *charge) map[string]any {
	refunds := []any{}
	for _, r := range ch.Refunds {
		refunds = append(refunds, s.renderRefund(r))
	}
	m := map[string]any{
		"id": ch.ID, "object": "charge", "amount": ch.Amount, "amount_captured": ch.AmountCaptured,
		"amount_refunded": ch.AmountRefunded, "captured": ch.Captured, "currency": ch.Currency,
		"created": ch.Created, "livemode": false, "metadata": nonNil(ch.Metadata), "paid": ch.Status == "succeeded",
		"payment_intent": ch.PaymentIntent, "payment_method": ch.PaymentMethod, "status": ch.Status,
		"refunded":     ch.AmountCaptured > 0 && ch.AmountRefunded >= ch.AmountCaptured,
		"refunds":      map[string]any{"object": "list", "data": refunds, "has_more": false, "url": "/v1/charges/" + ch.ID + "/refunds"},
		"failure_code": nil, "failure_message": nil,
	}
	if ch.FailureCode != "" {
		m["failure_code"], m["failure_message"] = ch.FailureCode, ch.FailureMessage
	}
	return m
}

func (s *Server) renderRefund(r *refund) map[string]any {
	m := map[string]any{
		"id": r.ID, "object": "refund", "amount": r.Amount, "charge": r.Charge, "currency": r.Currency,
		"created": r.Created, "metadata": nonNil(r.Metadata), "payment_intent": r.PaymentIntent,
		"reason": nil, "status": r.Status,
	}
	if r.Reason != "" {
		m["reason"] = r.Reason
	}
	return m
}

// serveChallenge is the page a buyer is sent to for 3-D Secure: GET
// /3ds/{id}?result=fail fails it, anything else completes it, then it
// redirects to the return URL when there is one.
func (s *Server) serveChallenge(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/3ds/")
	var err error
	if r.URL.Query().Get("result") == "fail" {
		err = s.FailAction(id)
	} else {
		err = s.CompleteAction(id)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	ret := s.intents[id].ReturnURL
	s.mu.Unlock()
	if ret != "" {
		u, perr := url.Parse(ret)
		if perr == nil {
			q := u.Query()
			q.Set("payment_intent", id)
			u.RawQuery = q.Encode()
			http.Redirect(w, r, u.String(), http.StatusFound)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "3-D Secure finished for %s\n", id)
}

func (s *Server) newID(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s_%s%06d", prefix, randHex(6), s.seq)
}

// emit queues an event for delivery. Called with s.mu held.
func (s *Server) emit(typ string, obj map[string]any, key string) {
	ev := map[string]any{
		"id": s.newID("evt"), "object": "event", "api_version": s.opts.APIVersion, "created": s.opts.Clock().Unix(),
		"data": map[string]any{"object": obj}, "livemode": false, "pending_webhooks": 1,
		"request": map[string]any{"id": "req_" + randHex(7), "idempotency_key": nilIfEmpty(key)}, "type": typ,
	}
	body, err := json.MarshalIndent(ev, "", "  ")
	if err != nil {
		s.opts.Logger.Error("stripetest: cannot encode event", "err", err)
		return
	}
	s.hooks.push(body)
}

func formMap(f url.Values, name string) map[string]string {
	out := map[string]string{}
	prefix := name + "["
	for k, v := range f {
		if strings.HasPrefix(k, prefix) && strings.HasSuffix(k, "]") && len(v) > 0 {
			out[k[len(prefix):len(k)-1]] = v[0]
		}
	}
	return out
}

// expands reports whether the request asked to expand field (stripe-go
// sends expand[0]=field).
func expands(f url.Values, field string) bool {
	for k, vs := range f {
		if k == "expand" || strings.HasPrefix(k, "expand[") {
			for _, v := range vs {
				if v == field {
					return true
				}
			}
		}
	}
	return false
}

func apiErr(typ, code, msg string) map[string]any {
	e := map[string]any{"type": typ, "message": msg}
	if code != "" {
		e["code"] = code
		e["doc_url"] = "https://stripe.com/docs/error-codes/" + strings.ReplaceAll(code, "_", "-")
	}
	return map[string]any{"error": e}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", "req_"+randHex(7))
	w.WriteHeader(status)
	_, _ = w.Write(mustJSON(v))
}

func mustJSON(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err)
	}
	return b
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// EventBody builds a Stripe event body around object, as Stripe sends it.
func EventBody(id, typ, apiVersion string, created time.Time, object map[string]any) []byte {
	if apiVersion == "" {
		apiVersion = DefaultAPIVersion
	}
	return mustJSON(map[string]any{
		"id": id, "object": "event", "api_version": apiVersion, "created": created.Unix(),
		"data": map[string]any{"object": object}, "livemode": false, "pending_webhooks": 1,
		"request": map[string]any{"id": nil, "idempotency_key": nil}, "type": typ,
	})
}
