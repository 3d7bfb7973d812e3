// Package braintreetest is a stateful fake of Braintree's GraphQL endpoint
// for tests and demos. It recognises the operations paymux sends by their
// field name (authorizeCreditCard, chargeCreditCard, authorizePaymentMethod,
// chargePaymentMethod, captureTransaction, refundTransaction,
// voidTransaction, node, search) and reads their variables; it is not a
// GraphQL parser.
//
// It honours apiRequestKey (same key and input: the same transaction in its
// current state, no second charge; other input or a request while the first
// is in flight: a VALIDATION error), Braintree's documented test nonces and
// test amounts, injects the faults of a providertest.Faults, and signs
// webhook notifications the way Braintree does.
//
// Test values:
//
//	fake-valid-nonce (any fake-valid-*-nonce)       approved
//	fake-processor-declined-visa-nonce (and others) processor declined 2000
//	fake-luhn-invalid-nonce                         VALIDATION 81715, no transaction
//	fake-gateway-rejected-fraud-nonce               gateway rejected: fraud
//	fake-three-d-secure-visa-full-authentication-nonce  approved, 3-D Secure authenticated
//	fake-three-d-secure-visa-failed-authentication-nonce gateway rejected: three_d_secure
//	any nonce without 3-D Secure when threeDSecureAuthentication.required: three_d_secure
//	amount 2000.00-2999.99                          processor declined, code = whole units
//	amount 3000.00-3000.99                          status FAILED (processor network error)
package braintreetest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // Braintree's webhook scheme
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/providertest"
)

// Options configures a Server. Zero values: PublicKey "test_public_key",
// PrivateKey "test_private_key", MerchantID "test_merchant", Currency USD, a
// new Faults, Clock time.Now, no webhook URL, captures settle at once.
type Options struct {
	PublicKey  string
	PrivateKey string
	MerchantID string
	Currency   paymux.Currency
	Faults     *providertest.Faults
	Clock      func() time.Time
	// WebhookURL receives SendWebhook's signed form posts.
	WebhookURL    string
	WebhookClient *http.Client
	// HoldSettlement keeps captured transactions SUBMITTED_FOR_SETTLEMENT
	// until Settle is called, as Braintree's sandbox does until its batch
	// runs. By default they settle right after the capture is answered, so
	// refunds work at once.
	HoldSettlement bool
}

// Server is the fake. Its zero value is not usable; call NewServer.
type Server struct {
	opts   Options
	faults *providertest.Faults
	srv    *httptest.Server

	mu      sync.Mutex
	seq     int
	txns    map[string]*txn
	keys    map[string]*keyRecord
	charges map[string]int
}

type event struct {
	Status      string
	Timestamp   time.Time
	Amount      int64
	DeclineType string
	Code        string
	Message     string
	Reason      string
}

type txn struct {
	ID         string // the GraphQL id
	Legacy     string // the id of the classic API and of webhooks
	OrderID    string
	Status     string
	Amount     int64 // current amount: authorised, then captured
	Authorized int64
	Refunded   int64
	Currency   paymux.Currency
	CreatedAt  time.Time
	History    []event
	IsRefund   bool
	RefundOf   string
}

type keyRecord struct {
	fingerprint string
	inflight    bool
	resultID    string
}

// NewServer starts a fake; it is closed with t.Cleanup by the caller or Close.
func NewServer(opts Options) *Server {
	if opts.PublicKey == "" {
		opts.PublicKey = "test_public_key"
	}
	if opts.PrivateKey == "" {
		opts.PrivateKey = "test_private_key"
	}
	if opts.MerchantID == "" {
		opts.MerchantID = "test_merchant"
	}
	if opts.Currency == "" {
		opts.Currency = "USD"
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.WebhookClient == nil {
		opts.WebhookClient = &http.Client{Timeout: 10 * time.Second}
	}
	s := &Server{opts: opts, faults: opts.Faults, txns: map[string]*txn{}, keys: map[string]*keyRecord{}, charges: map[string]int{}}
	if s.faults == nil {
		s.faults = &providertest.Faults{}
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.handle))
	return s
}

// URL is the GraphQL endpoint to use as the adapter's BaseURL.
func (s *Server) URL() string { return s.srv.URL + "/graphql" }

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Faults is the fault plan the server consults.
func (s *Server) Faults() *providertest.Faults { return s.faults }

// PublicKey and PrivateKey are the credentials the fake accepts.
func (s *Server) PublicKey() string  { return s.opts.PublicKey }
func (s *Server) PrivateKey() string { return s.opts.PrivateKey }

// Client returns an HTTP client for the adapter. During an outage it fails
// to connect (connection refused) without reaching the server, which is
// what an outage looks like from the client's side.
func (s *Server) Client() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &outageTransport{faults: s.faults, next: s.srv.Client().Transport}}
}

type outageTransport struct {
	faults *providertest.Faults
	next   http.RoundTripper
}

func (t *outageTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.faults.Plan().Outage {
		if r.Body != nil {
			_ = r.Body.Close()
		}
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	}
	return t.next.RoundTrip(r)
}

// Charges reports how many transactions moved money (authorised or charged)
// for orderID, the paymux payment key.
func (s *Server) Charges(orderID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.charges[orderID]
}

// ChargesFunc reports how many transactions moved money for all orderIds
// match accepts (paymux's adapter appends the attempt's key to the orderId).
func (s *Server) ChargesFunc(match func(orderID string) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, c := range s.charges {
		if match(id) {
			n += c
		}
	}
	return n
}

// Transaction is a read-only view of a fake transaction.
type Transaction struct {
	ID, OrderID, Status          string
	Amount, Authorized, Refunded int64
	Currency                     paymux.Currency
}

// Transaction returns the transaction with id.
func (s *Server) Transaction(id string) (Transaction, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.txns[id]
	if t == nil {
		return Transaction{}, false
	}
	return Transaction{ID: t.ID, OrderID: t.OrderID, Status: t.Status, Amount: t.Amount, Authorized: t.Authorized, Refunded: t.Refunded, Currency: t.Currency}, true
}

// Settle moves a SUBMITTED_FOR_SETTLEMENT transaction to SETTLED.
func (s *Server) Settle(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.txns[id]
	if t == nil || t.Status != "SUBMITTED_FOR_SETTLEMENT" {
		return false
	}
	s.setStatus(t, "SETTLED", event{})
	return true
}

// operations paymux sends, found by name in the query text.
var opPattern = regexp.MustCompile(`\b(authorizeCreditCard|chargeCreditCard|authorizePaymentMethod|chargePaymentMethod|captureTransaction|refundTransaction|voidTransaction|reverseTransaction|node|search|ping)\s*[({]`)

type gqlRequest struct {
	Query     string                     `json:"query"`
	Variables map[string]json.RawMessage `json:"variables"`
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/graphql" {
		http.NotFound(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return
	}
	var req gqlRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeErrors(w, http.StatusBadRequest, gqlErr("VALIDATION", "", "request body is not JSON", nil))
		return
	}
	m := opPattern.FindStringSubmatch(req.Query)
	op := ""
	if m != nil {
		op = m[1]
	}
	mutating := strings.HasPrefix(strings.TrimSpace(req.Query), "mutation")
	fault, latency := s.faults.Next(mutating)
	if fault == providertest.FaultOutage {
		hangUp(w)
		return
	}
	if latency > 0 && !mutating {
		if !sleep(r.Context(), latency) {
			return
		}
	}
	user, pass, ok := r.BasicAuth()
	if !ok || user != s.opts.PublicKey || pass != s.opts.PrivateKey {
		writeErrors(w, http.StatusUnauthorized, gqlErr("AUTHENTICATION", "", "Authentication credentials are invalid.", nil))
		return
	}
	if r.Header.Get("Braintree-Version") == "" {
		writeErrors(w, http.StatusBadRequest, gqlErr("UNSUPPORTED_CLIENT", "", "Braintree-Version header is required.", nil))
		return
	}
	switch fault {
	case providertest.FaultRateLimit:
		writeErrors(w, http.StatusTooManyRequests, gqlErr("RESOURCE_LIMIT", "", "Too many requests.", nil))
		return
	case providertest.FaultServerError:
		// Not processed, but the client cannot know.
		writeErrors(w, http.StatusInternalServerError, gqlErr("INTERNAL", "", "An internal error occurred.", nil))
		return
	}
	var input map[string]any
	if raw, ok := req.Variables["input"]; ok {
		_ = json.Unmarshal(raw, &input)
	}
	if !mutating {
		latency = 0
	}
	// A mutation's latency is spent "processing", after its apiRequestKey is
	// claimed, so a concurrent duplicate sees it in flight.
	status, resp := s.dispatch(r.Context(), op, input, req.Variables, latency)
	if fault == providertest.FaultTimeoutAfterCommit {
		// Processed (money moved); the answer never arrives.
		hangUp(w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(resp)
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}

func hangUp(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

type gqlError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

func gqlErr(class, legacy, msg string, inputPath []string) gqlError {
	ext := map[string]any{"errorClass": class}
	if legacy != "" {
		ext["legacyCode"] = legacy
	}
	if inputPath != nil {
		ext["inputPath"] = inputPath
	}
	return gqlError{Message: msg, Extensions: ext}
}

func writeErrors(w http.ResponseWriter, status int, errs ...gqlError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": errs, "data": nil, "extensions": map[string]any{"requestId": "fake"}})
}

type response = map[string]any

func errResp(errs ...gqlError) response {
	return response{"errors": errs, "data": nil, "extensions": map[string]any{"requestId": "fake"}}
}

func dataResp(field string, v any) response {
	return response{"data": map[string]any{field: v}, "extensions": map[string]any{"requestId": "fake"}}
}

// dispatch runs one operation; the apiRequestKey protocol wraps mutations.
func (s *Server) dispatch(ctx context.Context, op string, input map[string]any, vars map[string]json.RawMessage, latency time.Duration) (int, response) {
	switch op {
	case "node":
		var id string
		_ = json.Unmarshal(vars["id"], &id)
		return s.node(id)
	case "search":
		return s.search(input)
	case "ping":
		return http.StatusOK, response{"data": map[string]any{"ping": "pong"}}
	case "authorizeCreditCard", "chargeCreditCard", "authorizePaymentMethod", "chargePaymentMethod", "captureTransaction", "refundTransaction", "voidTransaction":
	default:
		return http.StatusOK, errResp(gqlErr("VALIDATION", "", "unsupported operation in fake", nil))
	}
	if op == "voidTransaction" {
		if _, ok := input["apiRequestKey"]; ok {
			return http.StatusOK, errResp(gqlErr("VALIDATION", "", "Variable 'input' has an invalid value: unknown field apiRequestKey", []string{"input", "apiRequestKey"}))
		}
	}
	key, _ := input["apiRequestKey"].(string)
	if key == "" {
		if latency > 0 {
			sleep(ctx, latency)
		}
		return s.run(op, input)
	}
	fp := fingerprint(op, input)
	s.mu.Lock()
	rec := s.keys[key]
	switch {
	case rec == nil:
		s.keys[key] = &keyRecord{fingerprint: fp, inflight: true}
	case rec.inflight:
		s.mu.Unlock()
		return http.StatusOK, errResp(gqlErr("VALIDATION", "", "A request with this apiRequestKey is still being processed.", []string{"input", "apiRequestKey"}))
	case rec.fingerprint != fp:
		s.mu.Unlock()
		return http.StatusOK, errResp(gqlErr("VALIDATION", "", "This apiRequestKey was used with different input values.", []string{"input", "apiRequestKey"}))
	default:
		// The same intent again: the same transaction in its current status.
		t := s.txns[rec.resultID]
		s.mu.Unlock()
		return http.StatusOK, s.replay(op, t)
	}
	s.mu.Unlock()
	if latency > 0 {
		// Processing continues even if the client gives up, as at Braintree.
		time.Sleep(latency)
	}
	status, resp := s.run(op, input)
	s.mu.Lock()
	defer s.mu.Unlock()
	id := resultID(resp)
	if id == "" {
		// Nothing was created: the key is not considered used.
		delete(s.keys, key)
	} else {
		s.keys[key] = &keyRecord{fingerprint: fp, resultID: id}
	}
	return status, resp
}

func fingerprint(op string, input map[string]any) string {
	c := make(map[string]any, len(input))
	for k, v := range input {
		if k != "apiRequestKey" && k != "clientMutationId" {
			c[k] = v
		}
	}
	b, _ := json.Marshal(c) // map keys are sorted
	return op + ":" + string(b)
}

func resultID(resp response) string {
	data, _ := resp["data"].(map[string]any)
	for _, v := range data {
		payload, _ := v.(map[string]any)
		for _, field := range []string{"transaction", "refund"} {
			if obj, ok := payload[field].(map[string]any); ok {
				if id, _ := obj["id"].(string); id != "" {
					return id
				}
			}
		}
	}
	return ""
}

func (s *Server) replay(op string, t *txn) response {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t == nil {
		return errResp(gqlErr("INTERNAL", "", "lost idempotent result", nil))
	}
	if t.IsRefund {
		return dataResp(op, map[string]any{"refund": s.renderRefund(t)})
	}
	return dataResp(op, map[string]any{"transaction": s.render(t)})
}

func (s *Server) run(op string, input map[string]any) (int, response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch op {
	case "captureTransaction":
		return s.capture(op, input)
	case "refundTransaction":
		return s.refund(op, input)
	case "voidTransaction":
		return s.void(op, input)
	}
	return s.authorize(op, input)
}

// newID returns a GraphQL id and its legacy id.
func (s *Server) newID(typ string) (global, legacy string) {
	s.seq++
	legacy = fmt.Sprintf("%08x", 0x5a000000+s.seq)
	return GlobalID(typ, legacy), legacy
}

// GlobalID is the GraphQL id of a legacy id: base64 of "<type>_<legacy id>"
// without padding, the form Braintree's GraphQL ids take.
func GlobalID(typ, legacy string) string {
	return base64.RawStdEncoding.EncodeToString([]byte(typ + "_" + legacy))
}

// LegacyID is the inverse of GlobalID; it returns id unchanged when it is
// not a GraphQL id.
func LegacyID(id string) string {
	b, err := base64.RawStdEncoding.DecodeString(id)
	if err != nil {
		return id
	}
	_, legacy, ok := strings.Cut(string(b), "_")
	if !ok {
		return id
	}
	return legacy
}

func (s *Server) setStatus(t *txn, status string, ev event) {
	t.Status = status
	ev.Status = status
	if ev.Timestamp.IsZero() {
		ev.Timestamp = s.opts.Clock().UTC()
	}
	if ev.Amount == 0 {
		ev.Amount = t.Amount
	}
	t.History = append(t.History, ev)
}

func str(m map[string]any, path ...string) string {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = mm[p]
	}
	switch v := cur.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	}
	return ""
}

// hardDeclines are the test codes the fake reports as declineType HARD.
var hardDeclines = map[int]bool{2004: true, 2005: true, 2006: true, 2007: true, 2008: true, 2009: true, 2010: true, 2012: true, 2013: true, 2014: true, 2015: true, 2017: true, 2018: true, 2019: true, 2020: true, 2021: true, 2044: true, 2047: true, 2053: true}

func (s *Server) authorize(op string, input map[string]any) (int, response) {
	nonce := str(input, "paymentMethodId")
	amountStr := str(input, "transaction", "amount")
	money, err := paymux.ParseMoney(amountStr, s.opts.Currency)
	if err != nil || money.Amount <= 0 {
		return http.StatusOK, errResp(gqlErr("VALIDATION", "81503", "Amount is an invalid format.", []string{"input", "transaction", "amount"}))
	}
	switch {
	case nonce == "":
		return http.StatusOK, errResp(gqlErr("VALIDATION", "", "paymentMethodId is required.", []string{"input", "paymentMethodId"}))
	case nonce == "fake-luhn-invalid-nonce":
		return http.StatusOK, errResp(gqlErr("VALIDATION", "81715", "Credit card number is invalid.", []string{"input", "paymentMethodId"}))
	case nonce == "fake-consumed-nonce":
		return http.StatusOK, errResp(gqlErr("VALIDATION", "93107", "Cannot use a single-use payment method more than once.", []string{"input", "paymentMethodId"}))
	case !strings.HasPrefix(nonce, "fake-"):
		return http.StatusOK, errResp(gqlErr("VALIDATION", "91565", "Unknown or expired payment method ID.", []string{"input", "paymentMethodId"}))
	}
	id, legacy := s.newID("transaction")
	t := &txn{ID: id, Legacy: legacy, OrderID: str(input, "transaction", "orderId"), Amount: money.Amount, Currency: s.opts.Currency, CreatedAt: s.opts.Clock().UTC()}
	s.txns[t.ID] = t
	exp, _ := s.opts.Currency.Exponent()
	whole := money.Amount
	for i := 0; i < exp; i++ {
		whole /= 10
	}
	threeDSRequired := str(input, "options", "threeDSecureAuthentication", "required") == "true"
	threeDSDone := strings.HasPrefix(nonce, "fake-three-d-secure-") && strings.Contains(nonce, "full-authentication")
	manual := strings.HasPrefix(op, "authorize")
	switch {
	case nonce == "fake-gateway-rejected-fraud-nonce":
		s.setStatus(t, "GATEWAY_REJECTED", event{Reason: "FRAUD"})
	case strings.HasPrefix(nonce, "fake-three-d-secure-") && strings.Contains(nonce, "failed"),
		threeDSRequired && !threeDSDone:
		s.setStatus(t, "GATEWAY_REJECTED", event{Reason: "THREE_D_SECURE"})
	case strings.HasPrefix(nonce, "fake-processor-declined-"):
		s.setStatus(t, "PROCESSOR_DECLINED", event{Code: "2000", Message: "Do Not Honor", DeclineType: "SOFT"})
	case whole >= 2000 && whole < 3000:
		dt := "SOFT"
		if hardDeclines[int(whole)] {
			dt = "HARD"
		}
		s.setStatus(t, "PROCESSOR_DECLINED", event{Code: strconv.FormatInt(whole, 10), Message: "Processor Declined", DeclineType: dt})
	case whole == 3000:
		s.setStatus(t, "FAILED", event{})
	default:
		s.setStatus(t, "AUTHORIZED", event{Code: "1000", Message: "Approved"})
		t.Authorized = money.Amount
		s.charges[t.OrderID]++
		if !manual {
			s.setStatus(t, "SUBMITTED_FOR_SETTLEMENT", event{})
		}
	}
	resp := dataResp(op, map[string]any{"transaction": s.render(t)})
	if t.Status == "SUBMITTED_FOR_SETTLEMENT" && !s.opts.HoldSettlement {
		s.setStatus(t, "SETTLED", event{})
	}
	return http.StatusOK, resp
}

func (s *Server) capture(op string, input map[string]any) (int, response) {
	t := s.txns[str(input, "transactionId")]
	if t == nil || t.IsRefund {
		return http.StatusOK, errResp(gqlErr("NOT_FOUND", "", "An object with this ID was not found.", []string{"input", "transactionId"}))
	}
	if t.Status != "AUTHORIZED" {
		return http.StatusOK, errResp(gqlErr("VALIDATION", "91507", "Cannot submit for settlement unless status is authorized.", []string{"input", "transactionId"}))
	}
	amount := t.Amount
	if a := str(input, "transaction", "amount"); a != "" {
		m, err := paymux.ParseMoney(a, t.Currency)
		if err != nil || m.Amount <= 0 {
			return http.StatusOK, errResp(gqlErr("VALIDATION", "81503", "Amount is an invalid format.", []string{"input", "transaction", "amount"}))
		}
		amount = m.Amount
	}
	if amount > t.Authorized {
		return http.StatusOK, errResp(gqlErr("VALIDATION", "91522", "Settlement amount is too large.", []string{"input", "transaction", "amount"}))
	}
	t.Amount = amount
	s.setStatus(t, "SUBMITTED_FOR_SETTLEMENT", event{})
	resp := dataResp(op, map[string]any{"transaction": s.render(t)})
	if !s.opts.HoldSettlement {
		s.setStatus(t, "SETTLED", event{})
	}
	return http.StatusOK, resp
}

func (s *Server) refund(op string, input map[string]any) (int, response) {
	t := s.txns[str(input, "transactionId")]
	if t == nil || t.IsRefund {
		return http.StatusOK, errResp(gqlErr("NOT_FOUND", "", "An object with this ID was not found.", []string{"input", "transactionId"}))
	}
	if t.Status != "SETTLED" && t.Status != "SETTLING" {
		return http.StatusOK, errResp(gqlErr("VALIDATION", "91506", "Cannot refund transaction unless it is settled.", []string{"input", "transactionId"}))
	}
	amount := t.Amount - t.Refunded
	if a := str(input, "refund", "amount"); a != "" {
		m, err := paymux.ParseMoney(a, t.Currency)
		if err != nil || m.Amount <= 0 {
			return http.StatusOK, errResp(gqlErr("VALIDATION", "81503", "Amount is an invalid format.", []string{"input", "refund", "amount"}))
		}
		amount = m.Amount
	}
	if amount <= 0 || t.Refunded+amount > t.Amount {
		return http.StatusOK, errResp(gqlErr("VALIDATION", "91521", "Refund amount is too large.", []string{"input", "refund", "amount"}))
	}
	t.Refunded += amount
	rid, rlegacy := s.newID("refund")
	r := &txn{ID: rid, Legacy: rlegacy, OrderID: t.OrderID, Amount: amount, Currency: t.Currency, CreatedAt: s.opts.Clock().UTC(), IsRefund: true, RefundOf: t.ID}
	s.txns[r.ID] = r
	s.setStatus(r, "SUBMITTED_FOR_SETTLEMENT", event{})
	return http.StatusOK, dataResp(op, map[string]any{"refund": s.renderRefund(r)})
}

func (s *Server) void(op string, input map[string]any) (int, response) {
	t := s.txns[str(input, "transactionId")]
	if t == nil || t.IsRefund {
		return http.StatusOK, errResp(gqlErr("NOT_FOUND", "", "An object with this ID was not found.", []string{"input", "transactionId"}))
	}
	if t.Status != "AUTHORIZED" && t.Status != "SUBMITTED_FOR_SETTLEMENT" {
		return http.StatusOK, errResp(gqlErr("VALIDATION", "91504", "Transaction can only be voided if status is authorized or submitted_for_settlement.", []string{"input", "transactionId"}))
	}
	s.setStatus(t, "VOIDED", event{})
	return http.StatusOK, dataResp(op, map[string]any{"transaction": s.render(t)})
}

func (s *Server) node(id string) (int, response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.txns[id]
	if t == nil || t.IsRefund {
		r := errResp(gqlErr("NOT_FOUND", "", "An object with this ID was not found.", nil))
		r["data"] = map[string]any{"node": nil}
		return http.StatusOK, r
	}
	return http.StatusOK, response{"data": map[string]any{"node": s.render(t)}}
}

func (s *Server) search(input map[string]any) (int, response) {
	cond, _ := input["orderId"].(map[string]any)
	if len(cond) == 0 {
		return http.StatusOK, errResp(gqlErr("VALIDATION", "", "the fake searches by orderId only", []string{"input"}))
	}
	match := func(v string) bool {
		for op, x := range cond {
			want, _ := x.(string)
			ok := false
			switch op {
			case "is":
				ok = v == want
			case "isNot":
				ok = v != want
			case "startsWith":
				ok = strings.HasPrefix(v, want)
			case "endsWith":
				ok = strings.HasSuffix(v, want)
			case "contains":
				ok = strings.Contains(v, want)
			}
			if !ok {
				return false
			}
		}
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	edges := []any{}
	for _, t := range s.txns {
		if !t.IsRefund && match(t.OrderID) {
			edges = append(edges, map[string]any{"node": s.render(t)})
		}
	}
	return http.StatusOK, response{"data": map[string]any{"search": map[string]any{"transactions": map[string]any{"edges": edges}}}}
}

func (s *Server) money(amount int64, cur paymux.Currency) map[string]any {
	return map[string]any{"value": paymux.Money{Amount: amount, Currency: cur}.Decimal(), "currencyCode": string(cur)}
}

func (s *Server) render(t *txn) map[string]any {
	hist := make([]any, 0, len(t.History))
	for _, e := range t.History {
		h := map[string]any{"status": e.Status, "timestamp": e.Timestamp.Format(time.RFC3339Nano), "amount": s.money(e.Amount, t.Currency)}
		switch e.Status {
		case "PROCESSOR_DECLINED":
			h["__typename"] = "ProcessorDeclinedEvent"
			h["declineType"] = e.DeclineType
			h["processorResponse"] = map[string]any{"legacyCode": e.Code, "message": e.Message}
		case "GATEWAY_REJECTED":
			h["__typename"] = "GatewayRejectedEvent"
			h["gatewayRejectionReason"] = e.Reason
		case "AUTHORIZED":
			h["__typename"] = "AuthorizedEvent"
		default:
			h["__typename"] = "PaymentStatusEvent"
		}
		hist = append(hist, h)
	}
	return map[string]any{
		"__typename": "Transaction", "id": t.ID, "legacyId": t.Legacy, "orderId": t.OrderID, "status": t.Status,
		"createdAt": t.CreatedAt.Format(time.RFC3339Nano), "amount": s.money(t.Amount, t.Currency),
		"statusHistory": hist,
	}
}

func (s *Server) renderRefund(r *txn) map[string]any {
	out := map[string]any{"__typename": "Refund", "id": r.ID, "legacyId": r.Legacy, "status": r.Status, "amount": s.money(r.Amount, r.Currency), "orderId": r.OrderID}
	if parent := s.txns[r.RefundOf]; parent != nil {
		out["refundedTransaction"] = s.render(parent)
	}
	return out
}

// Webhooks

// Notification builds a signed webhook for kind about the transaction with
// GraphQL id (the notification carries its legacy id), in the shape of Braintree's WebhookTesting.sample_notification: the
// notification XML with the current timestamp, base64 with a line break
// every 60 characters and a trailing one, signed with the server's keys.
// Transaction kinds (transaction_settled, transaction_settlement_declined,
// transaction_disbursed, refund_failed) carry the transaction; dispute_*
// kinds a dispute on it; "check" a check subject.
func (s *Server) Notification(kind, id string) url.Values {
	s.mu.Lock()
	t := s.txns[id]
	var view txn
	if t != nil {
		view = *t
	} else {
		view = txn{Legacy: LegacyID(id), Currency: s.opts.Currency}
	}
	now := s.opts.Clock().UTC()
	s.mu.Unlock()
	return SignNotification(s.opts.PublicKey, s.opts.PrivateKey, []byte(NotificationXML(kind, view.Legacy, view.OrderID, paymux.Money{Amount: view.Amount, Currency: view.Currency}, now)))
}

// NotificationXML renders a notification of kind about the transaction
// with legacy id id (webhooks carry legacy ids).
func NotificationXML(kind, id, orderID string, amount paymux.Money, at time.Time) string {
	esc := html.EscapeString
	amt := ""
	if amount.Currency != "" && amount.Amount > 0 {
		amt = "<amount>" + amount.Decimal() + "</amount><currency-iso-code>" + string(amount.Currency) + "</currency-iso-code>"
	}
	txnXML := "<transaction><id>" + esc(id) + "</id><order-id>" + esc(orderID) + "</order-id>" + amt
	var subject string
	switch {
	case kind == "check":
		subject = `<check type="boolean">true</check>`
	case strings.HasPrefix(kind, "dispute_"):
		subject = "<dispute><id>dp_" + esc(id) + "</id>" + amt + "<kind>chargeback</kind>" + txnXML + "</transaction></dispute>"
	case kind == "transaction_settlement_declined":
		subject = txnXML + "<status>settlement_declined</status><processor-settlement-response-code>4001</processor-settlement-response-code></transaction>"
	case kind == "refund_failed":
		subject = "<transaction><id>rf_" + esc(id) + "</id><refunded-transaction-id>" + esc(id) + "</refunded-transaction-id><order-id>" + esc(orderID) + "</order-id>" + amt + "<status>failed</status></transaction>"
	default:
		subject = txnXML + "<status>settled</status></transaction>"
	}
	return `<?xml version="1.0" encoding="UTF-8"?>` + "\n<notification>\n  <timestamp type=\"datetime\">" + at.UTC().Format(time.RFC3339) +
		"</timestamp>\n  <kind>" + esc(kind) + "</kind>\n  <subject>" + subject + "</subject>\n</notification>\n"
}

// SignNotification encodes and signs notification XML as Braintree does and
// returns the bt_signature and bt_payload form fields. Users can sign their
// own test notifications with it.
func SignNotification(publicKey, privateKey string, notificationXML []byte) url.Values {
	enc := base64.StdEncoding.EncodeToString(notificationXML)
	var b strings.Builder
	for len(enc) > 60 {
		b.WriteString(enc[:60])
		b.WriteByte('\n')
		enc = enc[60:]
	}
	b.WriteString(enc)
	b.WriteByte('\n')
	payload := b.String()
	return url.Values{"bt_signature": {publicKey + "|" + Sign(privateKey, payload)}, "bt_payload": {payload}}
}

// Sign returns hex(HMAC-SHA1(SHA1(privateKey), msg)), Braintree's webhook
// and challenge primitive.
func Sign(privateKey, msg string) string {
	key := sha1.Sum([]byte(privateKey)) //nolint:gosec // Braintree's scheme
	m := hmac.New(sha1.New, key[:])
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

// SendWebhook posts a signed notification of kind about transaction id to
// Options.WebhookURL and returns an error unless it is answered with 2xx.
func (s *Server) SendWebhook(ctx context.Context, kind, id string) error {
	if s.opts.WebhookURL == "" {
		return errors.New("braintreetest: no WebhookURL configured")
	}
	form := s.Notification(kind, id)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.opts.WebhookURL, bytes.NewBufferString(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.opts.WebhookClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("braintreetest: webhook answered %d", resp.StatusCode)
	}
	return nil
}
