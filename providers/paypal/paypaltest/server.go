// Package paypaltest is a stateful fake of the PayPal REST API for tests and
// demos: OAuth tokens, Orders v2 (create, get, authorize, capture), Payments v2
// (authorization capture, void and get; capture refund and get) and
// /v1/notifications/verify-webhook-signature. It serves real HTTPS on
// loopback.
//
// It honours PayPal-Request-Id (a repeat returns the stored answer, or the
// order's latest state for a create, and never moves money twice), PayPal's
// negative testing header (PayPal-Mock-Response:
// {"mock_application_codes":"INSTRUMENT_DECLINED"}), declines chosen when the
// buyer approves (Approve with a Funding), fault injection through
// *providertest.Faults, and it signs webhooks the way PayPal does, with a
// generated certificate it serves itself.
package paypaltest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"hash/crc32"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/providertest"
)

// Options configures a Server. Zero values: ClientID "test-client",
// ClientSecret "test-secret", WebhookID "WH-PAYPALTEST", no webhook sink,
// no faults, time.Now.
type Options struct {
	ClientID     string
	ClientSecret string
	WebhookID    string
	// WebhookSink receives every webhook the fake sends (POST, signed).
	WebhookSink string
	// Faults drives fault injection; nil gets a fresh one (Server.Faults).
	Faults *providertest.Faults
	Clock  func() time.Time
}

// Funding is what the buyer picks when approving: Decline makes the later
// authorize or capture fail with that PayPal issue (INSTRUMENT_DECLINED,
// CARD_EXPIRED, TRANSACTION_REFUSED, ...).
type Funding struct {
	Decline string
}

// Server is the fake. Close it when done (NewServer registers nothing).
type Server struct {
	// URL is the API base URL (https://127.0.0.1:port).
	URL string
	// CertURL is where the webhook signing certificate is served.
	CertURL string
	// Faults is the fault plan the server consults on every request.
	Faults *providertest.Faults

	opts    Options
	srv     *httptest.Server
	key     *rsa.PrivateKey
	certPEM []byte
	wg      sync.WaitGroup

	mu       sync.Mutex
	seq      int
	tokens   map[string]bool
	orders   map[string]*fOrder
	auths    map[string]*fAuth
	captures map[string]*fCapture
	refunds  map[string]*fRefund
	idem     map[string]stored
	charges  map[string]int
	invoices map[string]string // invoice_id -> completed order id
	wrongKey *rsa.PrivateKey
}

type stored struct {
	status  int
	body    []byte
	orderID string // for a create: replay the order's latest state
}

type fOrder struct {
	id, intent, status string
	amount             paymux.Money
	customID, invoice  string
	funding            Funding
	authIDs, capIDs    []string
	created, updated   time.Time
}

type fAuth struct {
	id, orderID, status string
	amount              paymux.Money
	captured            int64
}

type fCapture struct {
	id, orderID, authID, status string
	amount                      paymux.Money
	refunded                    int64
	final                       bool
}

type fRefund struct {
	id, captureID, orderID, customID, status string
	amount                                   paymux.Money
}

// NewServer starts a fake on a loopback port.
func NewServer(opts Options) *Server {
	if opts.ClientID == "" {
		opts.ClientID = "test-client"
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = "test-secret"
	}
	if opts.WebhookID == "" {
		opts.WebhookID = "WH-PAYPALTEST"
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Faults == nil {
		opts.Faults = &providertest.Faults{}
	}
	s := &Server{
		Faults: opts.Faults, opts: opts,
		tokens: map[string]bool{}, orders: map[string]*fOrder{}, auths: map[string]*fAuth{},
		captures: map[string]*fCapture{}, refunds: map[string]*fRefund{}, idem: map[string]stored{},
		charges: map[string]int{}, invoices: map[string]string{},
	}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	s.CertURL = s.URL + "/v1/notifications/certs/CERT-paypaltest"
	s.key, s.certPEM = newCert(opts.Clock())
	return s
}

// newCert makes the webhook signing key and a self-signed certificate with
// PayPal's message-verification subject. 1024 bits keeps tests fast; it is
// never used outside tests.
func newCert(now time.Time) (*rsa.PrivateKey, []byte) {
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: "messageverificationcerts.sandbox.paypal.com", Organization: []string{"paypaltest"}},
		DNSNames:     []string{"messageverificationcerts.sandbox.paypal.com"},
		NotBefore:    now.Add(-24 * time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// Close stops the server and waits for webhook deliveries in flight.
func (s *Server) Close() {
	s.srv.Close()
	s.wg.Wait()
}

// Options returns the options in effect (credentials, webhook id).
func (s *Server) Options() Options { return s.opts }

// Client returns an HTTP client that trusts the fake's certificate. During
// an outage it refuses to connect, as a dead PayPal endpoint would, so the
// adapter can tell "never sent" from "sent, no answer".
func (s *Server) Client() *http.Client {
	base := s.srv.Client()
	return &http.Client{Transport: outageTransport{base: base.Transport, faults: s.Faults}, Timeout: 30 * time.Second}
}

type outageTransport struct {
	base   http.RoundTripper
	faults *providertest.Faults
}

func (t outageTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.faults.Plan().Outage {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	}
	return t.base.RoundTrip(r)
}

// Charges reports how often money moved for a paymux key (the order's
// custom_id): one per authorised or captured order. Captures of an
// authorisation move the money already counted.
func (s *Server) Charges(paymentKey string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.charges[paymentKey]
}

// CompleteAction approves the order as the buyer would, with an accepted
// funding source.
func (s *Server) CompleteAction(ctx context.Context, orderID string) error {
	return s.Approve(ctx, orderID, Funding{})
}

// Approve approves the order with the given funding source.
func (s *Server) Approve(_ context.Context, orderID string, f Funding) error {
	s.mu.Lock()
	o := s.orders[orderID]
	if o == nil {
		s.mu.Unlock()
		return fmt.Errorf("paypaltest: no order %q", orderID)
	}
	if o.status != "CREATED" && o.status != "PAYER_ACTION_REQUIRED" && o.status != "APPROVED" {
		s.mu.Unlock()
		return fmt.Errorf("paypaltest: order %s is %s, cannot approve", orderID, o.status)
	}
	o.status, o.funding, o.updated = "APPROVED", f, s.now()
	ev := s.orderEvent("CHECKOUT.ORDER.APPROVED", o)
	s.mu.Unlock()
	s.deliver(ev)
	return nil
}

// OrderParams describes an order made in the browser (PayPal's buttons).
type OrderParams struct {
	Amount     paymux.Money
	Intent     string // "CAPTURE" (default) or "AUTHORIZE"
	PaymentKey string // custom_id
	Approved   bool
	Funding    Funding
}

// NewOrder creates an order directly, as the shop's page would through
// PayPal's JavaScript SDK, and returns its id.
func (s *Server) NewOrder(p OrderParams) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.Intent == "" {
		p.Intent = "CAPTURE"
	}
	o := &fOrder{id: s.id("O"), intent: p.Intent, status: "CREATED", amount: p.Amount, customID: p.PaymentKey, funding: p.Funding, created: s.now(), updated: s.now()}
	if p.Approved {
		o.status = "APPROVED"
	}
	s.orders[o.id] = o
	return o.id
}

func (s *Server) now() time.Time { return s.opts.Clock().UTC() }

func (s *Server) id(prefix string) string {
	s.seq++
	var b [6]byte
	_, _ = rand.Read(b[:])
	return strings.ToUpper(prefix + strconv.Itoa(s.seq) + hex.EncodeToString(b[:]))
}

// --- HTTP -----------------------------------------------------------------------

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	mutating := r.Method == http.MethodPost && r.URL.Path != "/v1/oauth2/token" && r.URL.Path != "/v1/notifications/verify-webhook-signature" && r.URL.Path != "/checkoutnow"
	fault, latency := s.Faults.Next(mutating)
	if latency > 0 {
		select {
		case <-time.After(latency):
		case <-r.Context().Done():
			return
		}
	}
	switch fault {
	case providertest.FaultOutage:
		hangUp(w)
		return
	case providertest.FaultRateLimit:
		writeErr(w, 429, "RATE_LIMIT_REACHED", "", "Too many requests. Blocked due to rate limiting.")
		return
	case providertest.FaultServerError:
		writeErr(w, 500, "INTERNAL_SERVER_ERROR", "INTERNAL_SERVICE_ERROR", "An internal server error has occurred.")
		return
	case providertest.FaultTimeoutAfterCommit:
		rec := httptest.NewRecorder()
		s.route(rec, r)
		hangUp(w)
		return
	}
	s.route(w, r)
}

// hangUp closes the connection without an answer.
func hangUp(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case path == "/v1/oauth2/token" && r.Method == http.MethodPost:
		s.token(w, r)
		return
	case strings.HasPrefix(path, "/v1/notifications/certs/") && r.Method == http.MethodGet:
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(s.certPEM)
		return
	case path == "/checkoutnow":
		if err := s.CompleteAction(r.Context(), r.URL.Query().Get("token")); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		_, _ = w.Write([]byte("approved"))
		return
	}
	if !s.authorized(r) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid_token","error_description":"Token signature verification failed"}`))
		return
	}
	if path == "/v1/notifications/verify-webhook-signature" && r.Method == http.MethodPost {
		s.verify(w, r)
		return
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	var body map[string]json.RawMessage
	if r.Method == http.MethodPost {
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
		if err := dec.Decode(&body); err != nil && err.Error() != "EOF" {
			writeErr(w, 400, "INVALID_REQUEST", "MALFORMED_REQUEST_JSON", "Request is not well-formed.")
			return
		}
	}
	mock := mockCode(r.Header.Get("PayPal-Mock-Response"))
	reqID := r.Header.Get("PayPal-Request-Id")

	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Method == http.MethodPost && reqID != "" {
		if st, ok := s.idem[reqID]; ok {
			if st.orderID != "" {
				writeJSON(w, st.status, s.orderJSON(s.orders[st.orderID]))
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(st.status)
			_, _ = w.Write(st.body)
			return
		}
	}
	rw := &capture{ResponseWriter: w}
	var events [][]byte
	switch {
	case len(parts) == 3 && parts[0] == "v2" && parts[1] == "checkout" && parts[2] == "orders" && r.Method == http.MethodPost:
		events = s.createOrder(rw, body, mock, reqID)
	case len(parts) == 4 && parts[1] == "checkout" && r.Method == http.MethodGet:
		o := s.orders[parts[3]]
		if o == nil {
			notFound(rw)
			break
		}
		writeJSON(rw, 200, s.orderJSON(o))
	case len(parts) == 5 && parts[1] == "checkout" && r.Method == http.MethodPost && (parts[4] == "authorize" || parts[4] == "capture"):
		events = s.completeOrder(rw, parts[3], parts[4], mock)
	case len(parts) == 4 && parts[1] == "payments" && parts[2] == "authorizations" && r.Method == http.MethodGet:
		a := s.auths[parts[3]]
		if a == nil {
			notFound(rw)
			break
		}
		writeJSON(rw, 200, s.authJSON(a))
	case len(parts) == 5 && parts[2] == "authorizations" && parts[4] == "capture" && r.Method == http.MethodPost:
		events = s.captureAuth(rw, parts[3], body, mock)
	case len(parts) == 5 && parts[2] == "authorizations" && parts[4] == "void" && r.Method == http.MethodPost:
		events = s.voidAuth(rw, parts[3], mock)
	case len(parts) == 4 && parts[1] == "payments" && parts[2] == "captures" && r.Method == http.MethodGet:
		c := s.captures[parts[3]]
		if c == nil {
			notFound(rw)
			break
		}
		writeJSON(rw, 200, s.captureJSON(c))
	case len(parts) == 5 && parts[2] == "captures" && parts[4] == "refund" && r.Method == http.MethodPost:
		events = s.refund(rw, parts[3], body, mock)
	default:
		writeErr(rw, 404, "RESOURCE_NOT_FOUND", "", "The specified resource does not exist.")
	}
	if r.Method == http.MethodPost && reqID != "" && rw.status >= 200 && rw.status < 300 {
		st := stored{status: rw.status, body: rw.buf.Bytes()}
		if len(parts) == 3 && parts[2] == "orders" {
			var o struct{ ID string }
			_ = json.Unmarshal(st.body, &o)
			st.orderID = o.ID
		}
		s.idem[reqID] = st
	}
	for _, ev := range events {
		s.deliverLocked(ev)
	}
}

// capture records what a handler wrote, for the idempotency store.
type capture struct {
	http.ResponseWriter
	status int
	buf    bytes.Buffer
}

func (c *capture) WriteHeader(code int) { c.status = code; c.ResponseWriter.WriteHeader(code) }
func (c *capture) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = 200
	}
	c.buf.Write(b)
	return c.ResponseWriter.Write(b)
}

func mockCode(h string) string {
	if h == "" {
		return ""
	}
	var m struct {
		Codes string `json:"mock_application_codes"`
	}
	if json.Unmarshal([]byte(h), &m) != nil {
		return ""
	}
	return m.Codes
}

// mockError answers a negative-testing code as PayPal would.
func mockError(w http.ResponseWriter, code string) {
	switch code {
	case "INTERNAL_SERVER_ERROR", "INTERNAL_SERVICE_ERROR":
		writeErr(w, 500, "INTERNAL_SERVER_ERROR", "INTERNAL_SERVICE_ERROR", "An internal server error has occurred.")
	case "RATE_LIMIT_REACHED":
		writeErr(w, 429, "RATE_LIMIT_REACHED", "", "Too many requests.")
	case "PERMISSION_DENIED":
		writeErr(w, 403, "NOT_AUTHORIZED", "PERMISSION_DENIED", "You do not have permission.")
	default:
		writeErr(w, 422, "UNPROCESSABLE_ENTITY", code, "The requested action could not be performed, semantically incorrect, or failed business validation.")
	}
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if !ok || id != s.opts.ClientID || secret != s.opts.ClientSecret {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid_client","error_description":"Client Authentication failed"}`))
		return
	}
	s.mu.Lock()
	tok := "A21AA" + s.id("T")
	s.tokens[tok] = true
	s.mu.Unlock()
	writeJSON(w, 200, map[string]any{"scope": "https://uri.paypal.com/services/payments/payment", "access_token": tok, "token_type": "Bearer", "app_id": "APP-PAYPALTEST", "expires_in": 32400, "nonce": "paypaltest"})
}

func (s *Server) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokens[tok]
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeErr(w http.ResponseWriter, status int, name, issue, msg string) {
	e := map[string]any{"name": name, "message": msg, "debug_id": "f00dfeed" + strconv.Itoa(status)}
	if issue != "" {
		e["details"] = []map[string]string{{"issue": issue, "description": msg}}
	}
	writeJSON(w, status, e)
}

func notFound(w http.ResponseWriter) {
	writeErr(w, 404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "Specified resource ID does not exist. Please check the resource ID and try again.")
}

type wireAmount struct {
	CurrencyCode string `json:"currency_code"`
	Value        string `json:"value"`
}

func amountJSON(m paymux.Money) wireAmount {
	return wireAmount{CurrencyCode: string(m.Currency), Value: m.Decimal()}
}

func parseAmount(raw json.RawMessage) (paymux.Money, bool) {
	var a wireAmount
	if json.Unmarshal(raw, &a) != nil {
		return paymux.Money{}, false
	}
	m, err := paymux.ParseMoney(a.Value, paymux.Currency(a.CurrencyCode))
	return m, err == nil && m.Amount > 0
}

func link(href, rel, method string) map[string]string {
	return map[string]string{"href": href, "rel": rel, "method": method}
}

func (s *Server) createOrder(w http.ResponseWriter, body map[string]json.RawMessage, mock, reqID string) [][]byte {
	if mock != "" {
		mockError(w, mock)
		return nil
	}
	var intent string
	_ = json.Unmarshal(body["intent"], &intent)
	var units []map[string]json.RawMessage
	_ = json.Unmarshal(body["purchase_units"], &units)
	if intent != "CAPTURE" && intent != "AUTHORIZE" || len(units) != 1 {
		writeErr(w, 400, "INVALID_REQUEST", "INVALID_PARAMETER_VALUE", "intent and one purchase unit are required")
		return nil
	}
	amt, ok := parseAmount(units[0]["amount"])
	if !ok {
		writeErr(w, 400, "INVALID_REQUEST", "INVALID_PARAMETER_VALUE", "bad amount")
		return nil
	}
	o := &fOrder{id: s.id("O"), intent: intent, status: "CREATED", amount: amt, created: s.now(), updated: s.now()}
	_ = json.Unmarshal(units[0]["custom_id"], &o.customID)
	_ = json.Unmarshal(units[0]["invoice_id"], &o.invoice)
	s.orders[o.id] = o
	writeJSON(w, http.StatusCreated, s.orderJSON(o))
	return nil
}

func (s *Server) completeOrder(w http.ResponseWriter, id, action, mock string) [][]byte {
	o := s.orders[id]
	if o == nil {
		notFound(w)
		return nil
	}
	want := map[string]string{"authorize": "AUTHORIZE", "capture": "CAPTURE"}[action]
	switch {
	case o.intent != want:
		writeErr(w, 422, "UNPROCESSABLE_ENTITY", "ACTION_DOES_NOT_MATCH_INTENT", "Order was created with an intent of "+o.intent)
		return nil
	case o.status == "COMPLETED" && action == "capture":
		writeErr(w, 422, "UNPROCESSABLE_ENTITY", "ORDER_ALREADY_CAPTURED", "Order already captured.")
		return nil
	case o.status == "COMPLETED":
		writeErr(w, 422, "UNPROCESSABLE_ENTITY", "ORDER_ALREADY_AUTHORIZED", "Order already authorized.")
		return nil
	case o.status != "APPROVED":
		writeErr(w, 422, "UNPROCESSABLE_ENTITY", "ORDER_NOT_APPROVED", "Payer has not yet approved the Order for payment.")
		return nil
	case mock != "":
		mockError(w, mock)
		return nil
	case o.funding.Decline != "":
		mockError(w, o.funding.Decline)
		return nil
	}
	if o.invoice != "" {
		if other, ok := s.invoices[o.invoice]; ok && other != o.id {
			writeErr(w, 422, "UNPROCESSABLE_ENTITY", "DUPLICATE_INVOICE_ID", "Invoice ID was previously used.")
			return nil
		}
		s.invoices[o.invoice] = o.id
	}
	o.status, o.updated = "COMPLETED", s.now()
	s.charges[o.customID]++
	var ev []byte
	if action == "authorize" {
		a := &fAuth{id: s.id("A"), orderID: o.id, status: "CREATED", amount: o.amount}
		s.auths[a.id] = a
		o.authIDs = append(o.authIDs, a.id)
		ev = s.event("PAYMENT.AUTHORIZATION.CREATED", "authorization", s.authJSON(a))
	} else {
		c := &fCapture{id: s.id("C"), orderID: o.id, status: "COMPLETED", amount: o.amount, final: true}
		s.captures[c.id] = c
		o.capIDs = append(o.capIDs, c.id)
		ev = s.event("PAYMENT.CAPTURE.COMPLETED", "capture", s.captureJSON(c))
	}
	writeJSON(w, http.StatusCreated, s.orderJSON(o))
	return [][]byte{ev}
}

func (s *Server) captureAuth(w http.ResponseWriter, id string, body map[string]json.RawMessage, mock string) [][]byte {
	a := s.auths[id]
	if a == nil {
		notFound(w)
		return nil
	}
	if mock != "" {
		mockError(w, mock)
		return nil
	}
	switch a.status {
	case "VOIDED":
		writeErr(w, 422, "UNPROCESSABLE_ENTITY", "AUTHORIZATION_VOIDED", "A voided authorization cannot be captured.")
		return nil
	case "CAPTURED":
		writeErr(w, 422, "UNPROCESSABLE_ENTITY", "AUTHORIZATION_ALREADY_CAPTURED", "Authorization has been previously captured.")
		return nil
	}
	amt := paymux.Money{Amount: a.amount.Amount - a.captured, Currency: a.amount.Currency}
	if raw, ok := body["amount"]; ok {
		m, ok := parseAmount(raw)
		if !ok || m.Currency != a.amount.Currency {
			writeErr(w, 422, "UNPROCESSABLE_ENTITY", "CURRENCY_MISMATCH", "Currency of capture must match the authorization.")
			return nil
		}
		amt = m
	}
	if amt.Amount > a.amount.Amount-a.captured {
		writeErr(w, 422, "UNPROCESSABLE_ENTITY", "MAX_CAPTURE_AMOUNT_EXCEEDED", "Capture amount exceeds allowable limit.")
		return nil
	}
	var final bool
	_ = json.Unmarshal(body["final_capture"], &final)
	c := &fCapture{id: s.id("C"), orderID: a.orderID, authID: a.id, status: "COMPLETED", amount: amt, final: final}
	s.captures[c.id] = c
	a.captured += amt.Amount
	a.status = "PARTIALLY_CAPTURED"
	if final || a.captured == a.amount.Amount {
		a.status = "CAPTURED"
	}
	if o := s.orders[a.orderID]; o != nil {
		o.capIDs = append(o.capIDs, c.id)
		o.updated = s.now()
	}
	writeJSON(w, http.StatusCreated, s.captureJSON(c))
	return [][]byte{s.event("PAYMENT.CAPTURE.COMPLETED", "capture", s.captureJSON(c))}
}

func (s *Server) voidAuth(w http.ResponseWriter, id, mock string) [][]byte {
	a := s.auths[id]
	if a == nil {
		notFound(w)
		return nil
	}
	if mock != "" {
		mockError(w, mock)
		return nil
	}
	switch a.status {
	case "VOIDED":
		writeErr(w, 422, "UNPROCESSABLE_ENTITY", "PREVIOUSLY_VOIDED", "Authorization has been previously voided.")
		return nil
	case "CAPTURED":
		writeErr(w, 422, "UNPROCESSABLE_ENTITY", "CANNOT_BE_VOIDED", "A captured authorization cannot be voided.")
		return nil
	}
	a.status = "VOIDED"
	writeJSON(w, http.StatusOK, s.authJSON(a))
	return [][]byte{s.event("PAYMENT.AUTHORIZATION.VOIDED", "authorization", s.authJSON(a))}
}

func (s *Server) refund(w http.ResponseWriter, id string, body map[string]json.RawMessage, mock string) [][]byte {
	c := s.captures[id]
	if c == nil {
		notFound(w)
		return nil
	}
	if mock != "" {
		mockError(w, mock)
		return nil
	}
	left := c.amount.Amount - c.refunded
	if left == 0 {
		writeErr(w, 422, "UNPROCESSABLE_ENTITY", "CAPTURE_FULLY_REFUNDED", "The capture has already been fully refunded.")
		return nil
	}
	amt := paymux.Money{Amount: left, Currency: c.amount.Currency}
	if raw, ok := body["amount"]; ok {
		m, ok := parseAmount(raw)
		if !ok || m.Currency != c.amount.Currency {
			writeErr(w, 422, "UNPROCESSABLE_ENTITY", "CURRENCY_MISMATCH", "Refund currency must match the capture.")
			return nil
		}
		amt = m
	}
	if amt.Amount > left {
		writeErr(w, 422, "UNPROCESSABLE_ENTITY", "REFUND_AMOUNT_EXCEEDED", "The refund amount must be less than or equal to the capture amount that has not yet been refunded.")
		return nil
	}
	rf := &fRefund{id: s.id("R"), captureID: c.id, orderID: c.orderID, status: "COMPLETED", amount: amt}
	_ = json.Unmarshal(body["custom_id"], &rf.customID)
	s.refunds[rf.id] = rf
	c.refunded += amt.Amount
	c.status = "PARTIALLY_REFUNDED"
	if c.refunded == c.amount.Amount {
		c.status = "REFUNDED"
	}
	writeJSON(w, http.StatusCreated, s.refundJSON(rf))
	return [][]byte{s.event("PAYMENT.CAPTURE.REFUNDED", "refund", s.refundJSON(rf))}
}

// --- JSON views -------------------------------------------------------------------

func (s *Server) orderJSON(o *fOrder) map[string]any {
	unit := map[string]any{"reference_id": "default", "amount": amountJSON(o.amount)}
	if o.customID != "" {
		unit["custom_id"] = o.customID
	}
	if o.invoice != "" {
		unit["invoice_id"] = o.invoice
	}
	pays := map[string]any{}
	var auths, caps, refs []any
	for _, id := range o.authIDs {
		auths = append(auths, s.authJSON(s.auths[id]))
	}
	for _, id := range o.capIDs {
		caps = append(caps, s.captureJSON(s.captures[id]))
		for _, r := range s.sortedRefunds(id) {
			refs = append(refs, s.refundJSON(r))
		}
	}
	if auths != nil {
		pays["authorizations"] = auths
	}
	if caps != nil {
		pays["captures"] = caps
	}
	if refs != nil {
		pays["refunds"] = refs
	}
	if len(pays) > 0 {
		unit["payments"] = pays
	}
	self := s.URL + "/v2/checkout/orders/" + o.id
	links := []any{link(self, "self", "GET")}
	switch o.status {
	case "CREATED", "PAYER_ACTION_REQUIRED":
		links = append(links, link(s.URL+"/checkoutnow?token="+url.QueryEscape(o.id), "approve", "GET"))
	case "APPROVED":
		links = append(links, link(self+"/"+strings.ToLower(o.intent), strings.ToLower(o.intent), "POST"))
	}
	return map[string]any{
		"id": o.id, "intent": o.intent, "status": o.status, "purchase_units": []any{unit}, "links": links,
		"create_time": o.created.Format(time.RFC3339), "update_time": o.updated.Format(time.RFC3339),
	}
}

func (s *Server) sortedRefunds(captureID string) []*fRefund {
	var out []*fRefund
	for _, r := range s.refunds {
		if r.captureID == captureID {
			out = append(out, r)
		}
	}
	// ids carry a sequence number: order by it.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && seqOf(out[j].id) < seqOf(out[j-1].id); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func seqOf(id string) int {
	n := 0
	for _, c := range id[1:] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}

func (s *Server) related(orderID string) map[string]any {
	return map[string]any{"related_ids": map[string]string{"order_id": orderID}}
}

func (s *Server) authJSON(a *fAuth) map[string]any {
	o := s.orders[a.orderID]
	self := s.URL + "/v2/payments/authorizations/" + a.id
	return map[string]any{
		"id": a.id, "status": a.status, "amount": amountJSON(a.amount), "custom_id": o.customID, "invoice_id": o.invoice,
		"supplementary_data": s.related(a.orderID),
		"links": []any{link(self, "self", "GET"), link(self+"/capture", "capture", "POST"), link(self+"/void", "void", "POST"),
			link(s.URL+"/v2/checkout/orders/"+a.orderID, "up", "GET")},
	}
}

func (s *Server) captureJSON(c *fCapture) map[string]any {
	o := s.orders[c.orderID]
	self := s.URL + "/v2/payments/captures/" + c.id
	up := s.URL + "/v2/checkout/orders/" + c.orderID
	if c.authID != "" {
		up = s.URL + "/v2/payments/authorizations/" + c.authID
	}
	return map[string]any{
		"id": c.id, "status": c.status, "amount": amountJSON(c.amount), "final_capture": c.final,
		"custom_id": o.customID, "invoice_id": o.invoice, "supplementary_data": s.related(c.orderID),
		"links": []any{link(self, "self", "GET"), link(self+"/refund", "refund", "POST"), link(up, "up", "GET")},
	}
}

func (s *Server) refundJSON(r *fRefund) map[string]any {
	out := map[string]any{
		"id": r.id, "status": r.status, "amount": amountJSON(r.amount),
		"links": []any{link(s.URL+"/v2/payments/refunds/"+r.id, "self", "GET"), link(s.URL+"/v2/payments/captures/"+r.captureID, "up", "GET")},
	}
	if r.customID != "" {
		out["custom_id"] = r.customID
	}
	return out
}

// --- webhooks ------------------------------------------------------------------------

func (s *Server) event(eventType, resourceType string, resource map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{
		"id": "WH-" + s.id("E"), "event_version": "1.0", "create_time": s.now().Format(time.RFC3339Nano),
		"resource_type": resourceType, "resource_version": "2.0", "event_type": eventType,
		"summary": eventType, "resource": resource,
	})
	return b
}

func (s *Server) orderEvent(eventType string, o *fOrder) []byte {
	return s.event(eventType, "checkout-order", s.orderJSON(o))
}

func (s *Server) deliver(body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deliverLocked(body)
}

func (s *Server) deliverLocked(body []byte) {
	if s.opts.WebhookSink == "" {
		return
	}
	header := s.sign(s.key, body, s.now())
	sink := s.opts.WebhookSink
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		req, err := http.NewRequest(http.MethodPost, sink, bytes.NewReader(body))
		if err != nil {
			return
		}
		req.Header = header
		req.Header.Set("Content-Type", "application/json")
		client := &http.Client{Timeout: 10 * time.Second}
		if resp, err := client.Do(req); err == nil {
			_ = resp.Body.Close()
		}
	}()
}

// SignWebhook returns the PAYPAL-* headers PayPal would send with body at
// time at (zero: now), signed with the fake's certificate.
func (s *Server) SignWebhook(body []byte, at time.Time) http.Header {
	if at.IsZero() {
		at = s.now()
	}
	return s.sign(s.key, body, at)
}

// SignWebhookWrongKey signs with a key that does not belong to the served
// certificate: what a forger without PayPal's key can do.
func (s *Server) SignWebhookWrongKey(body []byte, at time.Time) http.Header {
	s.mu.Lock()
	if s.wrongKey == nil {
		k, err := rsa.GenerateKey(rand.Reader, 1024)
		if err != nil {
			panic(err)
		}
		s.wrongKey = k
	}
	k := s.wrongKey
	s.mu.Unlock()
	if at.IsZero() {
		at = s.now()
	}
	return s.sign(k, body, at)
}

func (s *Server) sign(key *rsa.PrivateKey, body []byte, at time.Time) http.Header {
	var b [8]byte
	_, _ = rand.Read(b[:])
	tid := hex.EncodeToString(b[:])
	ts := at.UTC().Format(time.RFC3339)
	msg := tid + "|" + ts + "|" + s.opts.WebhookID + "|" + strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10)
	sum := sha256.Sum256([]byte(msg))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		panic(err)
	}
	h := http.Header{}
	h.Set("Paypal-Transmission-Id", tid)
	h.Set("Paypal-Transmission-Time", ts)
	h.Set("Paypal-Transmission-Sig", base64.StdEncoding.EncodeToString(sig))
	h.Set("Paypal-Cert-Url", s.CertURL)
	h.Set("Paypal-Auth-Algo", "SHA256withRSA")
	h.Set("Paypal-Auth-Version", "v2")
	return h
}

// WebhookBody builds the body of a webhook PayPal would send for an event at
// the fake: captured, authorized, refunded, voided, failed, dispute_opened.
func (s *Server) WebhookBody(id string, typ paymux.EventType, orderID, paymentKey string, amount paymux.Money) []byte {
	eventType, resourceType := "PAYMENT.CAPTURE.COMPLETED", "capture"
	status := "COMPLETED"
	switch typ {
	case paymux.EventAuthorized:
		eventType, resourceType, status = "PAYMENT.AUTHORIZATION.CREATED", "authorization", "CREATED"
	case paymux.EventRefunded:
		eventType, resourceType = "PAYMENT.CAPTURE.REFUNDED", "refund"
	case paymux.EventVoided:
		eventType, resourceType, status = "PAYMENT.AUTHORIZATION.VOIDED", "authorization", "VOIDED"
	case paymux.EventFailed:
		eventType, status = "PAYMENT.CAPTURE.DENIED", "DECLINED"
	case paymux.EventDisputeOpened:
		eventType, resourceType = "CUSTOMER.DISPUTE.CREATED", "dispute"
	}
	if id == "" {
		s.mu.Lock()
		id = "WH-" + s.id("E")
		s.mu.Unlock()
	}
	resource := map[string]any{
		"id": "X" + strings.TrimPrefix(id, "WH-"), "status": status, "amount": amountJSON(amount),
		"custom_id": paymentKey, "supplementary_data": s.related(orderID),
	}
	if typ == paymux.EventDisputeOpened {
		resource = map[string]any{
			"dispute_id": "PP-D-" + id, "dispute_amount": amountJSON(amount), "status": "OPEN",
			"disputed_transactions": []any{map[string]any{"seller_transaction_id": orderID, "custom": paymentKey}},
		}
	}
	b, _ := json.Marshal(map[string]any{
		"id": id, "event_version": "1.0", "create_time": s.now().Format(time.RFC3339Nano),
		"resource_type": resourceType, "event_type": eventType, "summary": eventType, "resource": resource,
	})
	return b
}

// verify is /v1/notifications/verify-webhook-signature. webhook_event is
// checked as the exact bytes received, like PayPal's CRC.
func (s *Server) verify(w http.ResponseWriter, r *http.Request) {
	var in struct {
		AuthAlgo         string          `json:"auth_algo"`
		CertURL          string          `json:"cert_url"`
		TransmissionID   string          `json:"transmission_id"`
		TransmissionSig  string          `json:"transmission_sig"`
		TransmissionTime string          `json:"transmission_time"`
		WebhookID        string          `json:"webhook_id"`
		WebhookEvent     json.RawMessage `json:"webhook_event"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil || in.TransmissionID == "" || len(in.WebhookEvent) == 0 {
		writeErr(w, 400, "VALIDATION_ERROR", "MISSING_REQUIRED_PARAMETER", "Invalid request - see details")
		return
	}
	status := "FAILURE"
	sig, err := base64.StdEncoding.DecodeString(in.TransmissionSig)
	if err == nil && in.AuthAlgo == "SHA256withRSA" && in.CertURL == s.CertURL && in.WebhookID == s.opts.WebhookID {
		msg := in.TransmissionID + "|" + in.TransmissionTime + "|" + in.WebhookID + "|" + strconv.FormatUint(uint64(crc32.ChecksumIEEE(in.WebhookEvent)), 10)
		sum := sha256.Sum256([]byte(msg))
		if rsa.VerifyPKCS1v15(&s.key.PublicKey, crypto.SHA256, sum[:], sig) == nil {
			status = "SUCCESS"
		}
	}
	writeJSON(w, 200, map[string]string{"verification_status": status})
}
