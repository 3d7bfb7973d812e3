// Package worldpaytest is a stateful fake of the Access Worldpay Payments
// API (WP-Api-Version 2024-06-01) for tests and demos: real HTTP on
// loopback, Worldpay's JSON shapes with _links and _actions, Worldpay's
// cardholder-name test values, fault injection and signed events.
//
// What it does where Worldpay's documentation is silent, it does the safe
// way: a repeated transactionReference for the same entity never authorises
// twice (the first payment's current state is answered again), and a
// repeated partial settlement or partial refund reference is answered again
// without moving money.
package worldpaytest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/providertest"
	"github.com/paymux/paymux/providers/worldpay"
)

// Test values Worldpay documents for paymentInstrument.cardHolderName in
// its Try environment, to put after the "#" of a method token.
const (
	// NameAuthorised is approved.
	NameAuthorised = "AUTHORISED"
	// NameRefused is refused with code 5 (REFUSED / do not honour).
	NameRefused = "REFUSED"
	// NameStolen is refused with code 43 (stolen card): a hard decline.
	NameStolen = "REFUSED43"
	// NameInsufficientFunds is refused with code 51.
	NameInsufficientFunds = "REFUSED51"
	// NameIssuerUnavailable is refused with code 91: a soft decline that
	// cascades.
	NameIssuerUnavailable = "REFUSED91"
	// NameThreeDSChallenge asks for 3-D Secure device data collection and a
	// challenge when the request carries a threeDS object (Worldpay's 3DS
	// test value "3DS_V2_CHALLENGE_IDENTIFIED").
	NameThreeDSChallenge = "3DS_V2_CHALLENGE_IDENTIFIED"
)

var refusalText = map[string]string{
	"4": "HOLD CARD", "5": "REFUSED", "6": "Try another card", "12": "INVALID TRANSACTION", "14": "Invalid card number",
	"33": "CARD EXPIRED", "34": "FRAUD SUSPICION", "41": "Lost card", "43": "STOLEN CARD, PICK UP", "51": "Insufficient funds",
	"54": "Expired card", "55": "INVALID SECURITY CODE", "62": "Restricted card", "91": "Issuer unavailable", "96": "System malfunction",
}

// Options configures a Server. Zero values: Username "user", Password
// "pass", Entity "default", no faults, no event sink, EventKeyID "1",
// EventSecret "worldpay-test-secret", hex signatures, time.Now.
type Options struct {
	Username, Password, Entity string
	Faults                     *providertest.Faults
	// EventSink receives every event, signed, by POST. Empty: events are
	// only recorded (see Events).
	EventSink         string
	EventKeyID        string
	EventSecret       paymux.Secret
	SignatureEncoding worldpay.SignatureEncoding
	Clock             func() time.Time
}

// Server is the fake. Close it when done.
type Server struct {
	opts Options
	ts   *httptest.Server

	mu       sync.Mutex
	payments map[string]*payment // by link id
	byRef    map[string]string   // entity \x00 transactionReference -> link id
	charges  map[string]int      // by transactionReference
	events   [][]byte
	wg       sync.WaitGroup
	sink     *http.Client
}

type payment struct {
	id, txRef, entity string
	fingerprint       string
	amount            int64
	currency          string
	outcome           string // last outcome: authorized, sentForSettlement, ...
	lastEvent         string
	auto              bool
	captured          int64
	refunded          int64
	refusalCode       string
	cancelled         bool
	replies           map[string][]byte // operation/reference -> reply already given
	authReply         []byte
}

// NewServer starts a fake on a loopback port.
func NewServer(opts Options) *Server {
	if opts.Username == "" {
		opts.Username = "user"
	}
	if opts.Password == "" {
		opts.Password = "pass"
	}
	if opts.Entity == "" {
		opts.Entity = "default"
	}
	if opts.EventKeyID == "" {
		opts.EventKeyID = "1"
	}
	if opts.EventSecret == "" {
		opts.EventSecret = "worldpay-test-secret"
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	s := &Server{opts: opts, payments: map[string]*payment{}, byRef: map[string]string{}, charges: map[string]int{},
		sink: &http.Client{Timeout: 5 * time.Second}}
	s.ts = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the base URL to configure the adapter with.
func (s *Server) URL() string { return s.ts.URL }

// Close waits for event deliveries and stops the server.
func (s *Server) Close() {
	s.wg.Wait()
	s.ts.Close()
}

// Client returns an HTTP client for the adapter. During an outage
// (FaultPlan.Outage) it refuses connections the way a down host does, so
// the adapter sees a connection that was never established. Clients that do
// not come from here see the connection cut instead, which is an unknown
// outcome.
func (s *Server) Client() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &outageTransport{base: s.ts.Client().Transport, faults: s.opts.Faults}}
}

type outageTransport struct {
	base   http.RoundTripper
	faults *providertest.Faults
}

func (t *outageTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.faults != nil && t.faults.Plan().Outage {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	}
	return t.base.RoundTrip(r)
}

// SessionHref returns a method token: a Checkout session href at the fake,
// with cardHolderName (a test value such as NameStolen) after "#".
func (s *Server) SessionHref(cardHolderName string) string {
	return s.ts.URL + "/sessions/" + randomID(12) + "#" + cardHolderName
}

// Charges reports how many times money moved (an authorisation approved)
// for a transactionReference: never more than 1.
func (s *Server) Charges(transactionReference string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.charges[transactionReference]
}

// TotalCharges reports all authorisations approved.
func (s *Server) TotalCharges() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.charges {
		n += c
	}
	return n
}

// Snapshot is the fake's view of a payment.
type Snapshot struct {
	Outcome                   string
	Amount, Captured, Refunds int64
	Currency                  string
}

// Payment returns the fake's view of the payment with transactionReference.
func (s *Server) Payment(transactionReference string) (Snapshot, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.byRef[s.opts.Entity+"\x00"+transactionReference]
	if !ok {
		return Snapshot{}, false
	}
	p := s.payments[id]
	return Snapshot{Outcome: p.outcome, Amount: p.amount, Captured: p.captured, Refunds: p.refunded, Currency: p.currency}, true
}

// CompleteThreeDS plays the buyer finishing 3-D Secure: the payment is
// authorised (and settled when auto settlement was asked for).
func (s *Server) CompleteThreeDS(transactionReference string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.byRef[s.opts.Entity+"\x00"+transactionReference]
	if !ok {
		return fmt.Errorf("worldpaytest: no payment %q", transactionReference)
	}
	p := s.payments[id]
	if p.outcome != "3dsDeviceDataRequired" && p.outcome != "3dsChallenged" {
		return fmt.Errorf("worldpaytest: payment %q is %s, not waiting for 3-D Secure", transactionReference, p.outcome)
	}
	s.approveLocked(p)
	return nil
}

// Events returns the signed event bodies sent so far.
func (s *Server) Events() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.events...)
}

// EventSpec describes an event body to build.
type EventSpec struct {
	ID, Type, TransactionReference, Classification string
	Amount                                         int64
	Currency                                       string
}

// EventBody builds an events webhook body in Worldpay's shape.
func (s *Server) EventBody(e EventSpec) []byte {
	if e.ID == "" {
		e.ID = newUUID()
	}
	if e.Classification == "" {
		e.Classification = "payment"
	}
	body := map[string]any{
		"eventId":        e.ID,
		"eventTimestamp": s.opts.Clock().UTC().Format("2006-01-02T15:04:05.000"),
		"eventDetails": map[string]any{
			"classification":       e.Classification,
			"transactionReference": e.TransactionReference,
			"type":                 e.Type,
			"date":                 s.opts.Clock().UTC().Format("2006-01-02"),
			"amount":               map[string]any{"value": e.Amount, "currencyCode": e.Currency},
		},
	}
	b, _ := json.Marshal(body)
	return b
}

// Sign returns the headers Worldpay sends with body.
func (s *Server) Sign(body []byte) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/vnd.worldpay.events-v1.hal+json")
	h.Set(worldpay.SignatureHeader, worldpay.Sign(s.opts.EventKeyID, s.opts.EventSecret, body, s.opts.SignatureEncoding))
	return h
}

// emitLocked records an event and delivers it to the sink in the
// background.
func (s *Server) emitLocked(p *payment, typ string, amount int64) {
	body := s.EventBody(EventSpec{Type: typ, TransactionReference: p.txRef, Amount: amount, Currency: p.currency})
	s.events = append(s.events, body)
	if s.opts.EventSink == "" {
		return
	}
	h := s.Sign(body)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		req, err := http.NewRequest(http.MethodPost, s.opts.EventSink, bytes.NewReader(body))
		if err != nil {
			return
		}
		req.Header = h
		if resp, err := s.sink.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
}

// reply is an answer computed before it is written, so that a
// time-out-after-commit can drop it after the state changed.
type reply struct {
	status int
	body   []byte
}

func jsonReply(status int, v any) reply {
	b, _ := json.Marshal(v)
	return reply{status, b}
}

func errReply(status int, name, msg string) reply {
	return jsonReply(status, map[string]string{"errorName": name, "message": msg})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	mutating := r.Method == http.MethodPost
	fault, latency := s.opts.Faults.Next(mutating)
	if latency > 0 {
		select {
		case <-time.After(latency):
		case <-r.Context().Done():
			return
		}
	}
	switch fault {
	case providertest.FaultOutage:
		cut(w)
		return
	case providertest.FaultRateLimit:
		write(w, errReply(http.StatusTooManyRequests, "tooManyRequests", "Too many requests"))
		return
	case providertest.FaultServerError:
		write(w, errReply(http.StatusInternalServerError, "internalErrorOccurred", "Internal error occurred"))
		return
	}
	rep := s.route(r)
	if fault == providertest.FaultTimeoutAfterCommit {
		cut(w) // processed; the answer never arrives
		return
	}
	write(w, rep)
}

func write(w http.ResponseWriter, rep reply) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.status)
	w.Write(rep.body)
}

// cut closes the connection without an answer.
func cut(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0) // a reset, as a dropped connection looks
	}
	conn.Close()
}

func (s *Server) route(r *http.Request) reply {
	user, pass, ok := r.BasicAuth()
	if !ok || user != s.opts.Username || pass != s.opts.Password {
		return errReply(http.StatusUnauthorized, "accessDenied", "Access to the requested resource has been denied")
	}
	path := r.URL.Path
	switch {
	case path == "/payments/events" && r.Method == http.MethodGet:
		return s.recovery(r)
	case !strings.HasPrefix(path, "/api/payments"):
		return errReply(http.StatusNotFound, "resourceNotFound", "Resource not found")
	}
	if r.Header.Get("WP-Api-Version") != worldpay.APIVersion {
		return errReply(http.StatusBadRequest, "headerIsMissing", "WP-Api-Version header is missing or unsupported")
	}
	if r.Method == http.MethodPost && !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		return errReply(http.StatusUnsupportedMediaType, "headerHasInvalidValue", "Content-Type must be application/json")
	}
	rest := strings.TrimPrefix(strings.TrimPrefix(path, "/api/payments"), "/")
	id, action, _ := strings.Cut(rest, "/")
	switch {
	case rest == "" && r.Method == http.MethodPost:
		return s.authorize(r)
	case id != "" && action == "" && r.Method == http.MethodGet:
		return s.query(id)
	case id != "" && r.Method == http.MethodPost:
		return s.manage(r, id, action)
	}
	return errReply(http.StatusNotFound, "resourceNotFound", "Resource not found")
}

type authBody struct {
	TransactionReference string `json:"transactionReference"`
	Merchant             struct {
		Entity string `json:"entity"`
	} `json:"merchant"`
	Instruction struct {
		Method            string `json:"method"`
		PaymentInstrument struct {
			Type           string `json:"type"`
			SessionHref    string `json:"sessionHref"`
			Href           string `json:"href"`
			CardHolderName string `json:"cardHolderName"`
		} `json:"paymentInstrument"`
		Narrative struct {
			Line1 string `json:"line1"`
		} `json:"narrative"`
		Value struct {
			Currency string `json:"currency"`
			Amount   int64  `json:"amount"`
		} `json:"value"`
		Settlement *struct {
			Auto bool `json:"auto"`
		} `json:"settlement"`
		ThreeDS *json.RawMessage `json:"threeDS"`
	} `json:"instruction"`
}

func (s *Server) authorize(r *http.Request) reply {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return errReply(http.StatusBadRequest, "bodyIsNotJson", "unreadable body")
	}
	var b authBody
	if err := json.Unmarshal(raw, &b); err != nil {
		return errReply(http.StatusBadRequest, "bodyIsNotJson", "The body is not valid JSON")
	}
	in := b.Instruction
	switch {
	case len(b.TransactionReference) < 1 || len(b.TransactionReference) > 64:
		return errReply(http.StatusBadRequest, "bodyDoesNotMatchSchema", "transactionReference must be 1-64 characters")
	case b.Merchant.Entity == "" || b.Merchant.Entity != s.opts.Entity:
		return errReply(http.StatusBadRequest, "entityIsNotConfigured", "The entity is not configured")
	case in.Method != "card" || in.Narrative.Line1 == "" || in.Value.Amount <= 0 || !paymux.Currency(in.Value.Currency).Valid():
		return errReply(http.StatusBadRequest, "bodyDoesNotMatchSchema", "instruction is invalid")
	case in.PaymentInstrument.Type == "checkout" && in.PaymentInstrument.SessionHref == "",
		in.PaymentInstrument.Type == "token" && in.PaymentInstrument.Href == "",
		in.PaymentInstrument.Type != "checkout" && in.PaymentInstrument.Type != "token":
		return errReply(http.StatusBadRequest, "bodyDoesNotMatchSchema", "paymentInstrument is invalid")
	}
	fp := fmt.Sprintf("%d/%s/%s%s", in.Value.Amount, in.Value.Currency, in.PaymentInstrument.SessionHref, in.PaymentInstrument.Href)

	s.mu.Lock()
	defer s.mu.Unlock()
	key := b.Merchant.Entity + "\x00" + b.TransactionReference
	if id, ok := s.byRef[key]; ok {
		p := s.payments[id]
		if p.fingerprint != fp {
			return errReply(http.StatusConflict, "duplicateTransactionReference", "transactionReference was used for another payment")
		}
		// Never authorise twice: answer with the payment's current state.
		return reply{http.StatusCreated, s.paymentJSONLocked(p)}
	}
	p := &payment{id: randomID(24), txRef: b.TransactionReference, entity: b.Merchant.Entity, fingerprint: fp,
		amount: in.Value.Amount, currency: in.Value.Currency, auto: in.Settlement != nil && in.Settlement.Auto, replies: map[string][]byte{}}
	s.payments[p.id] = p
	s.byRef[key] = p.id
	name := strings.ToUpper(strings.TrimSpace(in.PaymentInstrument.CardHolderName))
	switch {
	case name == "REFUSED" || strings.HasPrefix(name, "REFUSED"):
		code := strings.TrimPrefix(name, "REFUSED")
		if _, err := strconv.Atoi(code); err != nil {
			code = "5"
		}
		p.outcome, p.lastEvent, p.refusalCode = "refused", "refused", code
		s.emitLocked(p, "refused", p.amount)
	case (name == NameThreeDSChallenge || name == "3DS2-CHALLENGE-IDENTIFIED") && in.ThreeDS != nil:
		p.outcome, p.lastEvent = "3dsDeviceDataRequired", "3dsDeviceDataRequired"
	default:
		s.approveLocked(p)
	}
	return reply{http.StatusCreated, s.paymentJSONLocked(p)}
}

// approveLocked authorises p (and settles it with auto settlement).
func (s *Server) approveLocked(p *payment) {
	p.outcome, p.lastEvent = "authorized", "authorized"
	s.charges[p.txRef]++
	s.emitLocked(p, "authorized", p.amount)
	if p.auto {
		p.outcome, p.lastEvent, p.captured = "sentForSettlement", "sentForSettlement", p.amount
		s.emitLocked(p, "sentForSettlement", p.amount)
	}
}

func (s *Server) href(p *payment, action string) map[string]string {
	u := s.ts.URL + "/api/payments/" + p.id
	if action != "" {
		u += "/" + action
	}
	return map[string]string{"href": u, "method": "POST"}
}

// actionsLocked lists what Worldpay would offer next for p.
func (s *Server) actionsLocked(p *payment) map[string]any {
	a := map[string]any{}
	switch {
	case p.outcome == "3dsDeviceDataRequired":
		a["supply3dsDeviceData"] = s.href(p, "3dsDeviceData")
	case p.cancelled || p.outcome == "refused":
	case p.captured == 0 && (p.outcome == "authorized"):
		a["cancelPayment"] = s.href(p, "cancellations")
		a["settlePayment"] = s.href(p, "settlements")
		a["partiallySettlePayment"] = s.href(p, "partialSettlements")
	default:
		if p.captured < p.amount {
			a["partiallySettlePayment"] = s.href(p, "partialSettlements")
			a["cancelPayment"] = s.href(p, "cancellations")
		}
		if p.captured > 0 && p.refunded == 0 {
			a["refundPayment"] = s.href(p, "refunds")
		}
		if p.captured > p.refunded {
			a["partiallyRefundPayment"] = s.href(p, "partialRefunds")
		}
	}
	return a
}

func (s *Server) paymentJSONLocked(p *payment) []byte {
	body := map[string]any{
		"outcome":              p.outcome,
		"transactionReference": p.txRef,
		"_links":               map[string]any{"self": map[string]string{"href": s.ts.URL + "/api/payments/" + p.id}},
		"_actions":             s.actionsLocked(p),
	}
	switch p.outcome {
	case "authorized", "sentForSettlement":
		body["issuer"] = map[string]string{"authorizationCode": "675725"}
		body["schemeReference"] = "060720116005060"
		body["paymentInstrument"] = map[string]any{"type": "card/checkout+masked", "cardBin": "444433", "lastFour": "1111", "cardBrand": "visa", "fundingType": "credit"}
	case "refused":
		body["refusalCode"] = p.refusalCode
		desc := refusalText[p.refusalCode]
		if desc == "" {
			desc = "REFUSED"
		}
		body["refusalDescription"] = desc
	case "3dsDeviceDataRequired":
		body["deviceDataCollection"] = map[string]string{"jwt": "fake.jwt.value", "url": s.ts.URL + "/ddc/" + p.id, "bin": "444433"}
	}
	b, _ := json.Marshal(body)
	return b
}

func (s *Server) query(id string) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.payments[id]
	if !ok {
		return errReply(http.StatusNotFound, "resourceNotFound", "Payment not found")
	}
	return jsonReply(http.StatusOK, s.queryBodyLocked(p))
}

func (s *Server) queryBodyLocked(p *payment) map[string]any {
	body := map[string]any{
		"lastEvent": p.lastEvent,
		"_links":    map[string]any{"self": map[string]string{"href": s.ts.URL + "/api/payments/" + p.id}},
		"_actions":  s.actionsLocked(p),
	}
	if p.refusalCode != "" {
		body["refusalCode"] = p.refusalCode
	}
	return body
}

// recovery is the query by transactionReference and entity, documented for
// recovering from an authorisation that timed out.
func (s *Server) recovery(r *http.Request) reply {
	q := r.URL.Query()
	ref := q.Get("transactionRef")
	if ref == "" {
		ref = q.Get("transactionReference")
	}
	entity := q.Get("entity")
	if ref == "" || entity == "" {
		return errReply(http.StatusBadRequest, "queryParameterIsMissing", "transactionRef and entity are required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.byRef[entity+"\x00"+ref]
	if !ok {
		return errReply(http.StatusNotFound, "resourceNotFound", "No payment for this transactionReference")
	}
	return jsonReply(http.StatusOK, s.queryBodyLocked(s.payments[id]))
}

type partialBody struct {
	Value struct {
		Currency string `json:"currency"`
		Amount   int64  `json:"amount"`
	} `json:"value"`
	Reference string `json:"reference"`
}

func (s *Server) manage(r *http.Request, id, action string) reply {
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var pb partialBody
	partial := action == "partialSettlements" || action == "partialRefunds"
	if partial {
		if err := json.Unmarshal(raw, &pb); err != nil || pb.Value.Amount <= 0 {
			return errReply(http.StatusBadRequest, "bodyDoesNotMatchSchema", "value.amount is required")
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.payments[id]
	if !ok {
		return errReply(http.StatusNotFound, "resourceNotFound", "Payment not found")
	}
	if partial && pb.Value.Currency != p.currency {
		return errReply(http.StatusBadRequest, "bodyDoesNotMatchSchema", "currency does not match the payment")
	}
	replayKey := action + "/" + pb.Reference
	if partial && pb.Reference != "" {
		if prev, ok := p.replies[replayKey]; ok {
			return reply{http.StatusAccepted, prev}
		}
	}
	acts := s.actionsLocked(p)
	allowed := map[string]string{"settlements": "settlePayment", "partialSettlements": "partiallySettlePayment", "refunds": "refundPayment",
		"partialRefunds": "partiallyRefundPayment", "cancellations": "cancelPayment", "3dsDeviceData": "supply3dsDeviceData"}[action]
	if _, ok := acts[allowed]; !ok || allowed == "" {
		return errReply(http.StatusConflict, "actionNotAllowed", "This action is not available for the payment in its current state")
	}
	var outcome string
	switch action {
	case "settlements":
		amt := p.amount - p.captured
		p.captured = p.amount
		outcome = "sentForSettlement"
		s.emitLocked(p, outcome, amt)
	case "partialSettlements":
		if pb.Value.Amount > p.amount-p.captured {
			return errReply(http.StatusBadRequest, "bodyDoesNotMatchSchema", "amount exceeds what is left to settle")
		}
		p.captured += pb.Value.Amount
		outcome = "sentForSettlement"
		s.emitLocked(p, outcome, pb.Value.Amount)
	case "refunds":
		amt := p.captured - p.refunded
		p.refunded = p.captured
		outcome = "sentForRefund"
		s.emitLocked(p, outcome, amt)
	case "partialRefunds":
		if pb.Value.Amount > p.captured-p.refunded {
			return errReply(http.StatusBadRequest, "bodyDoesNotMatchSchema", "amount exceeds what is left to refund")
		}
		p.refunded += pb.Value.Amount
		outcome = "sentForPartialRefund"
		s.emitLocked(p, "sentForRefund", pb.Value.Amount)
	case "cancellations":
		p.cancelled = true
		outcome = "sentForCancellation"
		s.emitLocked(p, outcome, p.amount-p.captured)
	case "3dsDeviceData":
		p.outcome, p.lastEvent = "3dsChallenged", "3dsChallenged"
		b := map[string]any{"outcome": "3dsChallenged", "transactionReference": p.txRef,
			"challenge": map[string]string{"reference": p.id, "url": s.ts.URL + "/challenge/" + p.id, "jwt": "fake.jwt.value"},
			"_actions":  map[string]any{"complete3dsChallenge": s.href(p, "3dsChallenges")}}
		return jsonReply(http.StatusOK, b)
	}
	if outcome != "sentForPartialRefund" {
		p.outcome = outcome
	} else {
		p.outcome = "sentForRefund"
	}
	p.lastEvent = p.outcome
	body, _ := json.Marshal(map[string]any{
		"outcome":  outcome,
		"_links":   map[string]any{"self": map[string]string{"href": s.ts.URL + "/api/payments/" + p.id}},
		"_actions": s.actionsLocked(p),
	})
	if partial && pb.Reference != "" {
		p.replies[replayKey] = body
	}
	return reply{http.StatusAccepted, body}
}

func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func newUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
