// Package adyentest is a stateful fake of the Adyen Checkout API v71 calls
// paymux makes: POST /payments, /payments/{pspReference}/captures, /refunds
// and /cancels. It listens on loopback (httptest), speaks Adyen's JSON,
// honours Idempotency-Key, injects faults from a *providertest.Faults and
// sends standard notifications signed with Adyen's HMAC scheme.
//
// # Test values
//
// Adyen's documented test card numbers are card data and never pass through
// paymux, so the fake takes the paymentMethod object a checkout component
// produces with placeholder encrypted fields (see Method) or a
// storedPaymentMethodId, and reads Adyen's documented test triggers:
//
//   - paymentMethod.holderName set to a value from Adyen's "values for
//     testing refusal reasons" table (DECLINED, BLOCK_CARD, CARD_EXPIRED,
//     ISSUER_UNAVAILABLE, NOT_ENOUGH_BALANCE, FRAUD, PENDING, ERROR, ...);
//   - additionalData.RequestedTestAcquirerResponseCode set to the matching
//     number ("2", "5", "9", ...).
//
// Adyen triggers 3-D Secure with specific test cards, which paymux cannot
// carry; the fake uses its own holder names instead: HolderChallenge answers
// ChallengeShopper with a threeDS2 action, HolderRedirect answers
// RedirectShopper with a redirect action. authenticationData.
// attemptAuthentication "always" also asks for a challenge. CompleteAction
// plays the shopper finishing it.
package adyentest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/providertest"
)

// Defaults used when Options leaves a field empty.
const (
	DefaultAPIKey          = "adyentest_api_key"
	DefaultMerchantAccount = "PaymuxTestMerchant"
	// DefaultHMACKey is a made-up 32-byte key in the Customer Area's hex form.
	DefaultHMACKey = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
)

// Fake-only holder names for buyer actions (see the package doc).
const (
	HolderChallenge = "3DS_CHALLENGE"
	HolderRedirect  = "3DS_REDIRECT"
)

// Options configures the fake.
type Options struct {
	APIKey          string
	MerchantAccount string
	HMACKey         string // hex
	// Faults drives fault injection; nil injects nothing.
	Faults *providertest.Faults
	// WebhookURL receives signed notifications (one item per request, as
	// Adyen's JSON webhooks send them); empty sends none.
	WebhookURL    string
	WebhookClient *http.Client
	Clock         func() time.Time
	// RejectInvalidModifications answers a capture, refund or cancel that
	// the payment's state or amounts cannot allow with 422 at once. Adyen
	// itself answers "received" and reports the refusal later in a CAPTURE,
	// REFUND or CANCELLATION notification with success=false, which is what
	// the fake does when this is false. The conformance suite expects the
	// synchronous refusal.
	RejectInvalidModifications bool
}

// Server is the fake. Close it when done.
type Server struct {
	// URL is the Checkout API base URL to give the adapter (ends in /v71).
	URL string

	srv    *httptest.Server
	opts   Options
	hmac   []byte
	faults *providertest.Faults
	hooks  sync.WaitGroup

	mu       sync.Mutex
	seq      int
	payments map[string]*Payment
	idem     map[string]stored
	charges  map[string]int
	sent     []Notification
}

// Payment is the fake's record of one payment.
type Payment struct {
	PSPReference string
	Reference    string
	Currency     string
	Amount       int64
	ResultCode   string
	// RefusalReasonCode is set on refused payments.
	RefusalReasonCode string
	ManualCapture     bool
	Authorised        int64
	Captured          int64
	Refunded          int64
	Cancelled         bool
}

type stored struct {
	path   string
	status int
	body   []byte
}

// NewServer starts the fake on loopback.
func NewServer(opts Options) *Server {
	if opts.APIKey == "" {
		opts.APIKey = DefaultAPIKey
	}
	if opts.MerchantAccount == "" {
		opts.MerchantAccount = DefaultMerchantAccount
	}
	if opts.HMACKey == "" {
		opts.HMACKey = DefaultHMACKey
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.WebhookClient == nil {
		opts.WebhookClient = &http.Client{Timeout: 10 * time.Second}
	}
	key, err := hex.DecodeString(opts.HMACKey)
	if err != nil {
		panic("adyentest: HMACKey is not hex")
	}
	s := &Server{
		opts: opts, hmac: key, faults: opts.Faults,
		payments: map[string]*Payment{}, idem: map[string]stored{}, charges: map[string]int{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v71/payments", s.handle(s.payment))
	mux.HandleFunc("POST /v71/payments/{psp}/captures", s.handle(s.capture))
	mux.HandleFunc("POST /v71/payments/{psp}/refunds", s.handle(s.refund))
	mux.HandleFunc("POST /v71/payments/{psp}/cancels", s.handle(s.cancel))
	// The action URLs: opening one plays the shopper completing it.
	mux.HandleFunc("GET /3ds/{psp}", s.completePage)
	mux.HandleFunc("GET /redirect/{psp}", s.completePage)
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL + "/v71"
	return s
}

// Close stops the server and waits for webhooks in flight.
func (s *Server) Close() {
	s.srv.Close()
	s.hooks.Wait()
}

// WaitWebhooks blocks until every notification sent so far was delivered
// (or failed).
func (s *Server) WaitWebhooks() { s.hooks.Wait() }

// Options returns the effective options (defaults filled in).
func (s *Server) Options() Options { return s.opts }

// Charges reports how many authorisations moved money for a merchant
// reference (the paymux key).
func (s *Server) Charges(reference string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.charges[reference]
}

// Payment returns a copy of the payment at pspReference.
func (s *Server) Payment(psp string) (Payment, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.payments[psp]
	if !ok {
		return Payment{}, false
	}
	return *p, true
}

// Notifications returns the notifications sent so far.
func (s *Server) Notifications() []Notification {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Notification(nil), s.sent...)
}

// apiResult is one handler's answer.
type apiResult struct {
	status    int
	body      any
	transient bool
	hooks     []Item // notifications to send once the answer is committed
}

type handlerFunc func(r *http.Request, body []byte) apiResult

// handle wraps an endpoint with auth, faults and idempotency.
func (s *Server) handle(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		fault, latency := s.faults.Next(true)
		if latency > 0 {
			select {
			case <-time.After(latency):
			case <-r.Context().Done():
				return
			}
		}
		if r.Header.Get("X-API-Key") != s.opts.APIKey {
			writeJSON(w, http.StatusUnauthorized, nil, errBody(401, "000", "HTTP Status Response - Unauthorized", "security"))
			return
		}
		switch fault {
		case providertest.FaultOutage:
			// Nothing reached the issuer; Adyen says so with Transient-Error.
			writeJSON(w, http.StatusServiceUnavailable, http.Header{"Transient-Error": {"true"}}, errBody(503, "", "Service unavailable (simulated outage)", "internal"))
			return
		case providertest.FaultRateLimit:
			writeJSON(w, http.StatusTooManyRequests, nil, errBody(429, "", "Too many requests (simulated)", "security"))
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			return
		}
		key := r.Header.Get("Idempotency-Key")
		s.mu.Lock()
		st, replay := s.idem[key]
		var res apiResult
		if !replay {
			if fault == providertest.FaultServerError {
				// Not processed, but a non-transient error: Adyen stores it
				// as the key's final result.
				res = apiResult{status: 500, body: errBody(500, "", "Internal error (simulated)", "internal")}
			} else {
				res = h(r, body)
			}
			b, _ := json.Marshal(res.body)
			st = stored{path: r.URL.Path, status: res.status, body: b}
			if key != "" && !res.transient {
				s.idem[key] = st
			}
		}
		s.mu.Unlock()
		for _, it := range res.hooks {
			s.notify(it)
		}
		if fault == providertest.FaultTimeoutAfterCommit {
			// Processed and stored; the client never hears back.
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					_ = conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		}
		hdr := http.Header{}
		if key != "" {
			hdr.Set("Idempotency-Key", key)
		}
		if res.transient {
			hdr.Set("Transient-Error", "true")
		}
		w.Header().Set("Content-Type", "application/json")
		for k, v := range hdr {
			w.Header()[k] = v
		}
		w.WriteHeader(st.status)
		_, _ = w.Write(st.body)
	}
}

func writeJSON(w http.ResponseWriter, status int, hdr http.Header, v any) {
	for k, vs := range hdr {
		w.Header()[k] = vs
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func errBody(status int, code, msg, typ string) map[string]any {
	m := map[string]any{"status": status, "message": msg, "errorType": typ}
	if code != "" {
		m["errorCode"] = code
	}
	return m
}

func validation(msg string) apiResult {
	return apiResult{status: http.StatusUnprocessableEntity, body: errBody(422, "", msg, "validation")}
}

func (s *Server) nextPSP() string {
	s.seq++
	return fmt.Sprintf("FK%014d", s.seq)
}

type amount struct {
	Currency string `json:"currency"`
	Value    int64  `json:"value"`
}

type paymentReq struct {
	MerchantAccount    string            `json:"merchantAccount"`
	Reference          string            `json:"reference"`
	Amount             *amount           `json:"amount"`
	PaymentMethod      map[string]any    `json:"paymentMethod"`
	ReturnURL          string            `json:"returnUrl"`
	AdditionalData     map[string]string `json:"additionalData"`
	ShopperReference   string            `json:"shopperReference"`
	AuthenticationData *struct {
		AttemptAuthentication string `json:"attemptAuthentication"`
	} `json:"authenticationData"`
}

// outcome is one row of Adyen's testing table.
type outcome struct {
	resultCode, code, reason string
}

// testOutcomes is Adyen's "values for testing refusal reasons" table, by
// holderName, with the RequestedTestAcquirerResponseCode as code.
var testOutcomes = map[string]outcome{
	"UNKNOWN":                     {"Error", "0", "Unknown"},
	"APPROVED":                    {"Authorised", "", ""},
	"DECLINED":                    {"Refused", "2", "Refused"},
	"REFERRAL":                    {"Refused", "3", "Referral"},
	"ERROR":                       {"Error", "4", "Acquirer Error"},
	"BLOCK_CARD":                  {"Refused", "5", "Blocked Card"},
	"CARD_EXPIRED":                {"Refused", "6", "Expired Card"},
	"INVALID_AMOUNT":              {"Refused", "7", "Invalid Amount"},
	"INVALID_CARD_NUMBER":         {"Refused", "8", "Invalid Card Number"},
	"ISSUER_UNAVAILABLE":          {"Refused", "9", "Issuer Unavailable"},
	"NOT_SUPPORTED":               {"Refused", "10", "Not supported"},
	"NOT_3D_AUTHENTICATED":        {"Refused", "11", "3D Not Authenticated"},
	"NOT_ENOUGH_BALANCE":          {"Refused", "12", "Not enough balance"},
	"PENDING":                     {"Received", "", ""},
	"ACQUIRER_FRAUD":              {"Refused", "14", "Acquirer Fraud"},
	"CANCELLED":                   {"Refused", "15", "Cancelled"},
	"SHOPPER_CANCELLED":           {"Refused", "16", "Shopper Cancelled"},
	"INVALID_PIN":                 {"Refused", "17", "Invalid Pin"},
	"PIN_TRIES_EXCEEDED":          {"Refused", "18", "Pin tries exceeded"},
	"PIN_VALIDATION_NOT_POSSIBLE": {"Refused", "19", "Pin validation not possible"},
	"FRAUD":                       {"Refused", "20", "FRAUD"},
	"NOT_SUBMITTED":               {"Refused", "21", "Not Submitted"},
	"FRAUD_CANCELLED":             {"Cancelled", "22", "FRAUD-CANCELLED"},
	"TRANSACTION_NOT_PERMITTED":   {"Refused", "23", "Transaction Not Permitted"},
	"CVC_DECLINED":                {"Refused", "24", "CVC Declined"},
	"RESTRICTED_CARD":             {"Refused", "25", "Restricted Card"},
	"REVOCATION_OF_AUTH":          {"Refused", "26", "Revocation Of Auth"},
	"DECLINED_NON_GENERIC":        {"Refused", "27", "Declined Non Generic"},
	"WITHDRAWAL_AMOUNT_EXCEEDED":  {"Refused", "28", "Withdrawal amount exceeded"},
	"WITHDRAWAL_COUNT_EXCEEDED":   {"Refused", "29", "Withdrawal count exceeded"},
	"ISSUER_SUSPECTED_FRAUD":      {"Refused", "31", "Issuer Suspected Fraud"},
	"AVS_DECLINED":                {"Refused", "32", "AVS Declined"},
}

func outcomeByCode(code string) (outcome, bool) {
	if code == "1" {
		return testOutcomes["APPROVED"], true
	}
	if code == "13" {
		return testOutcomes["PENDING"], true
	}
	for _, o := range testOutcomes {
		if o.code == code {
			return o, true
		}
	}
	return outcome{}, false
}

func (s *Server) payment(r *http.Request, raw []byte) apiResult {
	var req paymentReq
	if err := json.Unmarshal(raw, &req); err != nil {
		return validation("Structure of PaymentRequest contains the following unknown fields or is not valid JSON")
	}
	switch {
	case req.MerchantAccount != s.opts.MerchantAccount:
		return apiResult{status: http.StatusForbidden, body: errBody(403, "901", "Invalid Merchant Account", "security")}
	case req.Reference == "":
		return validation("Required field 'reference' is not provided.")
	case req.Amount == nil || req.Amount.Value <= 0 || len(req.Amount.Currency) != 3:
		return validation("Required field 'amount' is not provided or invalid.")
	case req.PaymentMethod == nil:
		return validation("Required field 'paymentMethod' is not provided.")
	}
	if cardDataIn(req.PaymentMethod) {
		return validation("Unencrypted card data is not accepted by this fake")
	}
	o := testOutcomes["APPROVED"]
	holder, _ := req.PaymentMethod["holderName"].(string)
	if stored, _ := req.PaymentMethod["storedPaymentMethodId"].(string); stored != "" && holder == "" {
		holder = stored
	}
	if v, ok := testOutcomes[holder]; ok {
		o = v
	}
	if c := req.AdditionalData["RequestedTestAcquirerResponseCode"]; c != "" {
		if v, ok := outcomeByCode(c); ok {
			o = v
		}
	}
	wants3DS := req.AuthenticationData != nil && req.AuthenticationData.AttemptAuthentication == "always"
	switch {
	case holder == HolderChallenge || (wants3DS && o.resultCode == "Authorised"):
		o = outcome{resultCode: "ChallengeShopper"}
	case holder == HolderRedirect:
		o = outcome{resultCode: "RedirectShopper"}
	}
	p := &Payment{
		PSPReference: s.nextPSP(), Reference: req.Reference, Currency: req.Amount.Currency, Amount: req.Amount.Value,
		ResultCode: o.resultCode, RefusalReasonCode: o.code, ManualCapture: req.AdditionalData["manualCapture"] == "true",
	}
	s.payments[p.PSPReference] = p
	resp := map[string]any{
		"pspReference":      p.PSPReference,
		"resultCode":        o.resultCode,
		"merchantReference": req.Reference,
		"amount":            amount{req.Amount.Currency, req.Amount.Value},
	}
	var hooks []Item
	switch o.resultCode {
	case "Authorised":
		s.authorise(p)
		resp["additionalData"] = map[string]string{"refusalReasonRaw": "AUTHORISED"}
		hooks = append(hooks, s.item(p, p.PSPReference, "", "AUTHORISATION", p.Amount, true, ""))
	case "Refused", "Error", "Cancelled":
		resp["refusalReason"] = o.reason
		resp["refusalReasonCode"] = o.code
		hooks = append(hooks, s.item(p, p.PSPReference, "", "AUTHORISATION", p.Amount, false, o.reason))
	case "ChallengeShopper":
		resp["action"] = map[string]any{
			"type": "threeDS2", "subtype": "challenge", "paymentMethodType": "scheme",
			"token": base64.StdEncoding.EncodeToString([]byte(`{"acsURL":"https://acs.example/challenge"}`)),
			"url":   s.srv.URL + "/3ds/" + p.PSPReference,
		}
	case "RedirectShopper":
		resp["action"] = map[string]any{
			"type": "redirect", "method": "GET", "paymentMethodType": "scheme",
			"url": s.srv.URL + "/redirect/" + p.PSPReference,
		}
	}
	return apiResult{status: http.StatusOK, body: resp, hooks: hooks}
}

// authorise moves money; callers hold s.mu.
func (s *Server) authorise(p *Payment) {
	p.ResultCode = "Authorised"
	p.Authorised = p.Amount
	if !p.ManualCapture {
		p.Captured = p.Amount
	}
	s.charges[p.Reference]++
}

// cardDataIn reports unencrypted card fields or a card number anywhere in
// the method: the fake holds paymux to its promise.
func cardDataIn(m map[string]any) bool {
	for k, v := range m {
		if k == "number" || k == "cvc" {
			return true
		}
		if s, ok := v.(string); ok && paymux.LooksLikeCardNumber(strings.TrimPrefix(s, "test_")) {
			return true
		}
	}
	return false
}

// CompleteAction plays the shopper finishing 3-D Secure or the redirect for
// the payment at psp: it is authorised and an AUTHORISATION notification is
// sent.
func (s *Server) CompleteAction(ctx context.Context, psp string) error {
	s.mu.Lock()
	p, ok := s.payments[psp]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("adyentest: no payment %q", psp)
	}
	if p.ResultCode != "ChallengeShopper" && p.ResultCode != "RedirectShopper" && p.ResultCode != "IdentifyShopper" {
		s.mu.Unlock()
		return fmt.Errorf("adyentest: payment %q is %s, not waiting for the shopper", psp, p.ResultCode)
	}
	s.authorise(p)
	it := s.item(p, p.PSPReference, "", "AUTHORISATION", p.Amount, true, "")
	s.mu.Unlock()
	s.notify(it)
	return nil
}

func (s *Server) completePage(w http.ResponseWriter, r *http.Request) {
	if err := s.CompleteAction(r.Context(), r.PathValue("psp")); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	_, _ = io.WriteString(w, "authorised\n")
}

type modReq struct {
	MerchantAccount string  `json:"merchantAccount"`
	Reference       string  `json:"reference"`
	Amount          *amount `json:"amount"`
}

// modification runs the checks common to captures, refunds and cancels.
func (s *Server) modification(r *http.Request, raw []byte, needAmount bool) (*Payment, *modReq, *apiResult) {
	var req modReq
	if err := json.Unmarshal(raw, &req); err != nil {
		res := validation("Request is not valid JSON")
		return nil, nil, &res
	}
	if req.MerchantAccount != s.opts.MerchantAccount {
		res := apiResult{status: http.StatusForbidden, body: errBody(403, "901", "Invalid Merchant Account", "security")}
		return nil, nil, &res
	}
	p, ok := s.payments[r.PathValue("psp")]
	if !ok {
		res := validation("Original pspReference is invalid for this environment")
		return nil, nil, &res
	}
	if needAmount && (req.Amount == nil || req.Amount.Value <= 0 || req.Amount.Currency != p.Currency) {
		res := validation("Required field 'amount' is not provided or invalid.")
		return nil, nil, &res
	}
	return p, &req, nil
}

// Adyen accepts a well-formed modification with "received" and reports a
// refusal later (success=false); the fake does the same.
func (s *Server) capture(r *http.Request, raw []byte) apiResult {
	p, req, bad := s.modification(r, raw, true)
	if bad != nil {
		return *bad
	}
	psp := s.nextPSP()
	ok := p.ResultCode == "Authorised" && !p.Cancelled && p.Captured+req.Amount.Value <= p.Authorised
	if ok {
		p.Captured += req.Amount.Value
	}
	if !ok && s.opts.RejectInvalidModifications {
		return validation("Capture amount exceeds what is authorised and not yet captured, or the payment cannot be captured")
	}
	return s.received(p, psp, req, "CAPTURE", ok)
}

func (s *Server) refund(r *http.Request, raw []byte) apiResult {
	p, req, bad := s.modification(r, raw, true)
	if bad != nil {
		return *bad
	}
	psp := s.nextPSP()
	ok := p.Refunded+req.Amount.Value <= p.Captured
	if ok {
		p.Refunded += req.Amount.Value
	}
	if !ok && s.opts.RejectInvalidModifications {
		return validation("Refund amount exceeds what is captured and not yet refunded")
	}
	return s.received(p, psp, req, "REFUND", ok)
}

func (s *Server) cancel(r *http.Request, raw []byte) apiResult {
	p, req, bad := s.modification(r, raw, false)
	if bad != nil {
		return *bad
	}
	psp := s.nextPSP()
	ok := p.ResultCode == "Authorised" && p.Captured == 0 && !p.Cancelled
	if ok {
		p.Cancelled = true
	}
	if !ok && s.opts.RejectInvalidModifications {
		return validation("Payment cannot be cancelled in its state")
	}
	return s.received(p, psp, req, "CANCELLATION", ok)
}

func (s *Server) received(p *Payment, psp string, req *modReq, event string, ok bool) apiResult {
	body := map[string]any{
		"merchantAccount": s.opts.MerchantAccount, "paymentPspReference": p.PSPReference,
		"pspReference": psp, "reference": req.Reference, "status": "received",
	}
	var value int64
	if req.Amount != nil {
		body["amount"] = req.Amount
		value = req.Amount.Value
	}
	reason := ""
	if !ok {
		reason = "Modification refused by the fake (state or amount)"
	}
	it := s.item(p, psp, p.PSPReference, event, value, ok, reason)
	it.MerchantReference = req.Reference
	it.Signature = s.sign(it)
	return apiResult{status: http.StatusOK, body: body, hooks: []Item{it}}
}

// Item is a standard notification item as the fake builds it.
type Item struct {
	PSPReference      string
	OriginalReference string
	MerchantReference string
	EventCode         string
	Currency          string
	Value             int64
	Success           bool
	Reason            string
	EventDate         time.Time
	Signature         string
}

// Notification is one sent notification: the body and its delivery result.
type Notification struct {
	Item   Item
	Body   []byte
	Status int
	Err    error
}

func (s *Server) item(p *Payment, psp, original, event string, value int64, success bool, reason string) Item {
	it := Item{
		PSPReference: psp, OriginalReference: original, MerchantReference: p.Reference, EventCode: event,
		Currency: p.Currency, Value: value, Success: success, Reason: reason, EventDate: s.opts.Clock().UTC(),
	}
	it.Signature = s.sign(it)
	return it
}

// signingString is Adyen's: psp:original:merchantAccount:merchantRef:value:currency:eventCode:success.
func (s *Server) signingString(it Item) string {
	return strings.Join([]string{
		it.PSPReference, it.OriginalReference, s.opts.MerchantAccount, it.MerchantReference,
		strconv.FormatInt(it.Value, 10), it.Currency, it.EventCode, strconv.FormatBool(it.Success),
	}, ":")
}

func (s *Server) sign(it Item) string {
	m := hmac.New(sha256.New, s.hmac)
	m.Write([]byte(s.signingString(it)))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// NotificationBody renders it as Adyen's JSON webhook body, signed.
func (s *Server) NotificationBody(it Item) []byte {
	if it.Signature == "" {
		it.Signature = s.sign(it)
	}
	return s.notificationBody(it, true)
}

func (s *Server) notificationBody(it Item, itemSigned bool) []byte {
	if it.EventDate.IsZero() {
		it.EventDate = s.opts.Clock().UTC()
	}
	item := map[string]any{
		"amount":              amount{it.Currency, it.Value},
		"eventCode":           it.EventCode,
		"eventDate":           it.EventDate.Format(time.RFC3339),
		"merchantAccountCode": s.opts.MerchantAccount,
		"merchantReference":   it.MerchantReference,
		"paymentMethod":       "visa",
		"pspReference":        it.PSPReference,
		"reason":              it.Reason,
		"success":             strconv.FormatBool(it.Success),
	}
	if it.OriginalReference != "" {
		item["originalReference"] = it.OriginalReference
	}
	if itemSigned {
		item["additionalData"] = map[string]string{"hmacSignature": it.Signature}
	}
	b, _ := json.Marshal(map[string]any{
		"live":              "false",
		"notificationItems": []any{map[string]any{"NotificationRequestItem": item}},
	})
	return b
}

// SignedItem builds a notification for it with the item signature in
// additionalData.hmacSignature, as Adyen sends standard webhooks.
func (s *Server) SignedItem(it Item) (http.Header, []byte) {
	it.Signature = ""
	return http.Header{"Content-Type": {"application/json"}}, s.NotificationBody(it)
}

// HeaderSignedItem builds a notification for it whose item carries no
// hmacSignature and whose raw body is signed in the HmacSignature header
// under hexKey ("" means the fake's key), Adyen's scheme for the webhooks
// it signs in a header.
func (s *Server) HeaderSignedItem(it Item, hexKey string) (http.Header, []byte) {
	key := s.hmac
	if hexKey != "" {
		k, err := hex.DecodeString(hexKey)
		if err != nil {
			panic("adyentest: key is not hex")
		}
		key = k
	}
	body := s.notificationBody(it, false)
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return http.Header{"Content-Type": {"application/json"}, "Hmacsignature": {base64.StdEncoding.EncodeToString(m.Sum(nil))}}, body
}

// Lookup answers from the fake's ledger, with the signature of
// adyen.Config.Lookup: Adyen has no lookup call, so tests plug this in.
func (s *Server) Lookup(ctx context.Context, req *paymux.LookupRequest) (*paymux.ProviderPayment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.payments[req.Reference]
	if p == nil && req.Reference == "" && req.PaymentKey != "" {
		for _, c := range s.payments {
			if c.Reference == req.PaymentKey && (p == nil || c.PSPReference > p.PSPReference) {
				p = c
			}
		}
	}
	if p == nil {
		return nil, &paymux.ProviderError{Kind: paymux.KindNotFound, Code: "not_found", Message: "no such payment at the fake", Err: paymux.ErrNotFound}
	}
	res := &paymux.ProviderPayment{
		Reference: p.PSPReference, Amount: paymux.Money{Amount: p.Amount, Currency: paymux.Currency(p.Currency)},
		Authorized: p.Authorised, Captured: p.Captured, Refunded: p.Refunded, UpdatedAt: s.opts.Clock(),
	}
	switch {
	case p.Cancelled:
		res.Status = paymux.StatusVoided
	case p.Refunded > 0:
		res.Status = paymux.StatusRefunded
	case p.Captured > 0:
		res.Status = paymux.StatusCaptured
	case p.ResultCode == "Authorised":
		res.Status = paymux.StatusAuthorized
	case p.ResultCode == "ChallengeShopper" || p.ResultCode == "RedirectShopper":
		res.Status = paymux.StatusRequiresAction
	case p.ResultCode == "Received":
		res.Status = paymux.StatusPending
	default:
		res.Status = paymux.StatusFailed
		res.DeclineCode = p.RefusalReasonCode
	}
	return res, nil
}

// notify delivers one notification to the webhook URL in the background,
// as Adyen does after answering the API call.
func (s *Server) notify(it Item) {
	body := s.NotificationBody(it)
	s.mu.Lock()
	idx := len(s.sent)
	s.sent = append(s.sent, Notification{Item: it, Body: body})
	s.mu.Unlock()
	if s.opts.WebhookURL == "" {
		return
	}
	s.hooks.Add(1)
	go func() {
		defer s.hooks.Done()
		status, err := s.deliver(body)
		s.mu.Lock()
		s.sent[idx].Status, s.sent[idx].Err = status, err
		s.mu.Unlock()
	}()
}

// RedeliverFailed sends every notification whose delivery failed again, as
// Adyen's retry queue would, and returns how many still fail.
func (s *Server) RedeliverFailed() int {
	s.mu.Lock()
	var idx []int
	for i, n := range s.sent {
		if n.Err != nil {
			idx = append(idx, i)
		}
	}
	s.mu.Unlock()
	failing := 0
	for _, i := range idx {
		s.mu.Lock()
		body := s.sent[i].Body
		s.mu.Unlock()
		status, err := s.deliver(body)
		s.mu.Lock()
		s.sent[i].Status, s.sent[i].Err = status, err
		s.mu.Unlock()
		if err != nil {
			failing++
		}
	}
	return failing
}

func (s *Server) deliver(body []byte) (int, error) {
	req, err := http.NewRequest(http.MethodPost, s.opts.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.opts.WebhookClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	ack, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode/100 != 2 || !bytes.Contains(ack, []byte("[accepted]")) {
		return resp.StatusCode, fmt.Errorf("adyentest: webhook not accepted: HTTP %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// Method returns a paymux payment method carrying the paymentMethod object
// Adyen's card component would produce, with placeholder encrypted fields
// and the given holder name (a test trigger such as "DECLINED", or "" to
// approve).
func Method(holderName string) paymux.PaymentMethod {
	m := map[string]string{
		"type":                  "scheme",
		"encryptedCardNumber":   "adyenjs_0_1_25$placeholder-number",
		"encryptedExpiryMonth":  "adyenjs_0_1_25$placeholder-month",
		"encryptedExpiryYear":   "adyenjs_0_1_25$placeholder-year",
		"encryptedSecurityCode": "adyenjs_0_1_25$placeholder-cvc",
	}
	if holderName != "" {
		m["holderName"] = holderName
	}
	b, _ := json.Marshal(m)
	return paymux.PaymentMethod{Type: paymux.MethodCard, Token: string(b)}
}
