// Package paypal is the paymux adapter for PayPal Checkout (Orders v2 and
// Payments v2), built on github.com/plutov/paypal/v4.
//
// # Flow
//
// Authorize creates an order (intent CAPTURE for automatic capture,
// AUTHORIZE for manual) and returns StatusRequiresAction with the buyer's
// approval link as NextAction. Once the buyer has approved, Lookup (which
// paymux calls from Sync, and which a CHECKOUT.ORDER.APPROVED webhook should
// trigger) authorises or captures the order, so the payment moves on to
// authorized or captured. When the shop's page already created and had the
// order approved (PayPal's JavaScript buttons), pass its id as
// PaymentMethod{Type: paymux.MethodPayPal, Token: orderID}: Authorize then
// authorises or captures that order directly.
//
// The paymux Reference of a payment is the PayPal order id. Capture captures
// the order's authorisation (partly, several times), Refund refunds one of
// its captures, Void voids the authorisation.
//
// # Idempotency
//
// Every POST carries PayPal-Request-Id: the attempt's provider key for
// create, capture, refund and void, and a key derived from the order id for
// the authorise or capture step after approval. A retry with the same key
// gets PayPal's stored result, never a second movement of money.
//
// # Webhooks
//
// ParseWebhook verifies PayPal's signature offline by default (CRC32 of the
// raw body, RSA SHA-256 with the certificate from PAYPAL-CERT-URL, fetched only
// over https from PayPal hosts and cached), or online through
// /v1/notifications/verify-webhook-signature.
package paypal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	paypalapi "github.com/plutov/paypal/v4"

	"github.com/paymux/paymux"
)

// Base URLs of PayPal's REST API.
const (
	BaseURLSandbox = "https://api-m.sandbox.paypal.com"
	BaseURLLive    = "https://api-m.paypal.com"
)

// CheckoutToken as a method token (or an empty token) starts a new PayPal
// checkout: Authorize creates an order and returns its approval link. Any
// other token is taken as the id of an order the buyer already approved.
const CheckoutToken = "paypal_checkout"

// VerifyMode selects how webhooks are verified.
type VerifyMode int

const (
	// VerifyOffline checks the signature locally with PayPal's certificate
	// (the default): it works on the exact body bytes and needs no API call.
	VerifyOffline VerifyMode = iota
	// VerifyOnline asks /v1/notifications/verify-webhook-signature.
	VerifyOnline
)

// CertFetcher downloads a PEM certificate from an already allow-listed https
// URL. The default uses Config.HTTPClient.
type CertFetcher interface {
	FetchCert(ctx context.Context, url string) ([]byte, error)
}

// Config configures a Provider. The zero value of each field means:
//
//	Name             "paypal"
//	ClientID         required
//	ClientSecret     required
//	WebhookID        required for ParseWebhook (the listener's id from the dashboard)
//	BaseURL          BaseURLSandbox; set BaseURLLive in production
//	HTTPClient       a client with a 30 s timeout
//	Logger           slog.Default()
//	Clock            time.Now
//	VerifyMode       VerifyOffline
//	CertFetcher      GET with HTTPClient, 64 KiB limit
//	CertHosts        "paypal.com", "paypalobjects.com" (and their subdomains)
//	WebhookTolerance 15 minutes between PAYPAL-TRANSMISSION-TIME and the clock; negative disables
//	CertCacheTTL     24 hours (never past the certificate's NotAfter)
//	Currencies       PayPal's supported currencies
//	NoInvoiceID      false: the paymux key is sent as the order's invoice_id
type Config struct {
	Name         string
	ClientID     string
	ClientSecret paymux.Secret
	WebhookID    string
	BaseURL      string
	HTTPClient   *http.Client
	Logger       *slog.Logger
	Clock        func() time.Time
	VerifyMode   VerifyMode
	CertFetcher  CertFetcher
	// CertHosts lists the hosts (and, with their subdomains) that webhook
	// certificates may come from. Tests add their fake's host.
	CertHosts        []string
	WebhookTolerance time.Duration
	CertCacheTTL     time.Duration
	Currencies       []paymux.Currency
	// NoInvoiceID stops sending the paymux key as invoice_id. PayPal refuses a
	// second payment with the same invoice_id (DUPLICATE_INVOICE_ID), which
	// guards against paying one order twice; turn it off only when the shop
	// uses invoice ids for something else.
	NoInvoiceID bool
}

// Provider is the PayPal adapter. It is safe for concurrent use.
type Provider struct {
	name       string
	cfg        Config
	baseURL    string
	httpClient *http.Client
	api        *paypalapi.Client
	tokens     *tokenSource
	log        *slog.Logger
	clock      func() time.Time
	table      paymux.DecisionTable
	certs      *certCache

	// recent remembers, for this process only, which order an attempt's
	// provider key or paymux key went to, so that Lookup without a
	// reference can still find an approved order whose authorisation
	// outcome was lost. See Lookup.
	mu     sync.Mutex
	recent map[string]string
	order  []string
}

var (
	_ paymux.Provider       = (*Provider)(nil)
	_ paymux.WebhookParser  = (*Provider)(nil)
	_ paymux.DecisionTabler = (*Provider)(nil)
	_ paymux.WebhookHinter  = (*Provider)(nil)
)

// supportedCurrencies are PayPal's REST currencies that paymux knows.
var supportedCurrencies = []paymux.Currency{
	"AUD", "BRL", "CAD", "CNY", "CZK", "DKK", "EUR", "HKD", "HUF", "ILS", "JPY", "MYR",
	"MXN", "TWD", "NZD", "NOK", "PHP", "PLN", "GBP", "SGD", "SEK", "CHF", "THB", "USD",
}

// New returns a Provider. It makes no network call.
func New(cfg Config) (*Provider, error) {
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("paypal: ClientID and ClientSecret are required")
	}
	if cfg.Name == "" {
		cfg.Name = "paypal"
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = BaseURLSandbox
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.WebhookTolerance == 0 {
		cfg.WebhookTolerance = 15 * time.Minute
	}
	if cfg.CertCacheTTL <= 0 {
		cfg.CertCacheTTL = 24 * time.Hour
	}
	if len(cfg.CertHosts) == 0 {
		cfg.CertHosts = []string{"paypal.com", "paypalobjects.com"}
	}
	if len(cfg.Currencies) == 0 {
		cfg.Currencies = supportedCurrencies
	}
	base := strings.TrimRight(cfg.BaseURL, "/")
	api, err := paypalapi.NewClient(cfg.ClientID, cfg.ClientSecret.Reveal(), base)
	if err != nil {
		return nil, fmt.Errorf("paypal: %w", err)
	}
	api.SetHTTPClient(cfg.HTTPClient)
	p := &Provider{
		name: cfg.Name, cfg: cfg, baseURL: base, httpClient: cfg.HTTPClient, api: api,
		tokens: &tokenSource{api: api, clock: cfg.Clock},
		log:    cfg.Logger, clock: cfg.Clock,
		table:  DefaultDecisionTable(cfg.Name),
		recent: map[string]string{},
	}
	fetcher := cfg.CertFetcher
	if fetcher == nil {
		fetcher = httpCertFetcher{client: cfg.HTTPClient}
	}
	p.certs = &certCache{fetcher: fetcher, ttl: cfg.CertCacheTTL, entries: map[string]cachedCert{}}
	return p, nil
}

// Name returns the configured name.
func (p *Provider) Name() string { return p.name }

// String never shows the credentials.
func (p *Provider) String() string { return "paypal.Provider(" + p.name + ")" }

// Capabilities: PayPal wallet payments in PayPal's currencies, manual capture
// with several partial captures, several partial refunds, void.
func (p *Provider) Capabilities() paymux.Capabilities {
	return paymux.Capabilities{
		Currencies:     append([]paymux.Currency(nil), p.cfg.Currencies...),
		Methods:        []paymux.MethodType{paymux.MethodPayPal},
		ManualCapture:  true,
		PartialCapture: true,
		PartialRefund:  true,
		MultipleRefund: true,
		Void:           true,
	}
}

// DecisionTable returns the adapter's table (a copy).
func (p *Provider) DecisionTable() paymux.DecisionTable {
	t := make(paymux.DecisionTable, len(p.table))
	for k, v := range p.table {
		t[k] = v
	}
	return t
}

// Authorize creates an order and asks the buyer to approve it, or, when the
// method's token is an approved order id, authorises or captures that order.
func (p *Provider) Authorize(ctx context.Context, req *paymux.AuthorizeRequest) (*paymux.ProviderPayment, error) {
	const op = paymux.OpAuthorize
	if req.Method.Type != "" && req.Method.Type != paymux.MethodPayPal {
		return nil, p.perr(op, paymux.KindInvalidRequest, "unsupported_method", 0, "PayPal takes only paypal methods, got "+string(req.Method.Type), nil)
	}
	if req.ProviderKey == "" {
		return nil, p.perr(op, paymux.KindInvalidRequest, "missing_request_id", 0, "no provider key", nil)
	}
	value, err := formatAmount(req.Amount)
	if err != nil {
		return nil, p.perr(op, paymux.KindInvalidRequest, "unsupported_amount", 0, err.Error(), err)
	}
	intent := intentFor(req.Capture)
	if tok := strings.TrimSpace(req.Method.Token); tok != "" && tok != CheckoutToken {
		if paymux.LooksLikeCardNumber(tok) {
			return nil, p.perr(op, paymux.KindInvalidRequest, "unsupported_method", 0, "card number in token", paymux.ErrCardData)
		}
		p.remember(tok, req.ProviderKey, req.PaymentKey)
		return p.authorizeApproved(ctx, req, tok, intent)
	}
	body := createOrderRequest{
		Intent: intent,
		PurchaseUnits: []paypalapi.PurchaseUnitRequest{{
			ReferenceID: "default",
			Amount:      &paypalapi.PurchaseUnitAmount{Currency: string(req.Amount.Currency), Value: value},
			CustomID:    truncate(req.PaymentKey, 127),
		}},
	}
	if !p.cfg.NoInvoiceID {
		body.PurchaseUnits[0].InvoiceID = truncate(req.PaymentKey, 127)
	}
	if req.ReturnURL != "" {
		body.ApplicationContext = &paypalapi.ApplicationContext{
			ReturnURL: req.ReturnURL, CancelURL: req.ReturnURL, UserAction: paypalapi.UserActionPayNow,
		}
	}
	var o order
	if err := p.do(ctx, call{op: op, method: http.MethodPost, path: "/v2/checkout/orders", requestID: req.ProviderKey, body: body}, &o); err != nil {
		return nil, err
	}
	p.remember(o.ID, req.ProviderKey, req.PaymentKey)
	p.log.DebugContext(ctx, "paypal: order created", "provider", p.name, "order", o.ID, "status", o.Status)
	return p.toPayment(&o, req.Amount.Currency)
}

type createOrderRequest struct {
	Intent             string                          `json:"intent"`
	PurchaseUnits      []paypalapi.PurchaseUnitRequest `json:"purchase_units"`
	ApplicationContext *paypalapi.ApplicationContext   `json:"application_context,omitempty"`
}

func intentFor(m paymux.CaptureMode) string {
	if m == paymux.CaptureManual {
		return "AUTHORIZE"
	}
	return "CAPTURE"
}

// authorizeApproved finishes an order the buyer approved elsewhere.
func (p *Provider) authorizeApproved(ctx context.Context, req *paymux.AuthorizeRequest, orderID, intent string) (*paymux.ProviderPayment, error) {
	const op = paymux.OpAuthorize
	o, err := p.getOrder(ctx, op, orderID)
	if err != nil {
		return nil, err
	}
	// Never take a different amount than the shop asked for: the order was
	// built in the browser.
	if amt, ok := o.amount(); !ok || amt != req.Amount {
		return nil, p.perr(op, paymux.KindInvalidRequest, "amount_mismatch", 0, fmt.Sprintf("order %s is for %s, the request for %s", o.ID, amt, req.Amount), nil)
	}
	if o.Intent != "" && o.Intent != intent {
		return nil, p.perr(op, paymux.KindInvalidRequest, "intent_mismatch", 0, fmt.Sprintf("order %s has intent %s, the request needs %s", o.ID, o.Intent, intent), nil)
	}
	if o.Status == "APPROVED" {
		if err := p.complete(ctx, op, o, req.ProviderKey); err != nil {
			return nil, err
		}
	}
	res, err := p.toPayment(o, req.Amount.Currency)
	if err != nil {
		return nil, err
	}
	return res, declineError(p, op, res)
}

// complete authorises or captures an approved order in place. key is the
// PayPal-Request-Id; a replay returns PayPal's stored answer.
func (p *Provider) complete(ctx context.Context, op paymux.Operation, o *order, key string) error {
	action := "capture"
	if o.Intent == "AUTHORIZE" {
		action = "authorize"
	}
	var done order
	err := p.do(ctx, call{op: op, method: http.MethodPost, path: "/v2/checkout/orders/" + o.ID + "/" + action, requestID: key, body: struct{}{}}, &done)
	if err != nil {
		var pe *paymux.ProviderError
		if errors.As(err, &pe) && (pe.Code == "ORDER_ALREADY_CAPTURED" || pe.Code == "ORDER_ALREADY_AUTHORIZED" || pe.Code == "ORDER_ALREADY_COMPLETED") {
			// Someone (an earlier attempt whose answer was lost, another
			// process) completed it already: read what happened.
			fresh, gerr := p.getOrder(ctx, op, o.ID)
			if gerr != nil {
				return gerr
			}
			*o = *fresh
			return nil
		}
		return err
	}
	if done.ID == "" {
		done.ID = o.ID
	}
	if len(done.PurchaseUnits) == 0 {
		// Without return=representation PayPal may send a minimal body.
		fresh, gerr := p.getOrder(ctx, op, o.ID)
		if gerr != nil {
			return gerr
		}
		done = *fresh
	}
	if done.Intent == "" {
		done.Intent = o.Intent
	}
	*o = done
	return nil
}

// completeKey is the PayPal-Request-Id of the authorise or capture step after
// approval. It is derived from the order id, so Lookup in any process, and
// any retry, sends the same one.
func completeKey(orderID string) string { return "pmx-complete-" + orderID }

// declineError turns a declined capture or denied authorisation in a 2xx
// answer into the error the orchestrator needs.
func declineError(p *Provider, op paymux.Operation, res *paymux.ProviderPayment) error {
	if res.Status != paymux.StatusFailed {
		return nil
	}
	code := res.DeclineCode
	if code == "" {
		code = CodeCaptureDeclined
	}
	c, ok := p.table.Lookup(p.name, op, code)
	if !ok || (c.Kind != paymux.KindHardDecline && c.Kind != paymux.KindSoftDecline) {
		c = stop(paymux.KindHardDecline)
	}
	return &paymux.ProviderError{Provider: p.name, Operation: op, Kind: c.Kind, Code: code, Message: "PayPal declined the payment"}
}

func (p *Provider) getOrder(ctx context.Context, op paymux.Operation, id string) (*order, error) {
	if id == "" || strings.ContainsAny(id, "/?#") {
		return nil, p.perr(op, paymux.KindInvalidRequest, "INVALID_RESOURCE_ID", 0, "bad order id", nil)
	}
	var o order
	if err := p.do(ctx, call{op: op, method: http.MethodGet, path: "/v2/checkout/orders/" + id}, &o); err != nil {
		return nil, err
	}
	return &o, nil
}

// Capture captures Amount of the order's authorisation. Several partial
// captures may follow one another; Final releases the rest.
func (p *Provider) Capture(ctx context.Context, req *paymux.CaptureRequest) (*paymux.ProviderPayment, error) {
	const op = paymux.OpCapture
	value, err := formatAmount(req.Amount)
	if err != nil {
		return nil, p.perr(op, paymux.KindInvalidRequest, "unsupported_amount", 0, err.Error(), err)
	}
	o, err := p.getOrder(ctx, op, req.Reference)
	if err != nil {
		return nil, err
	}
	auth := o.authorization()
	if auth == nil {
		return nil, p.perr(op, paymux.KindConflict, "no_authorization", 0, "order "+o.ID+" has no authorization", nil)
	}
	body := paypalapi.PaymentCaptureRequest{
		Amount:       &paypalapi.Money{Currency: string(req.Amount.Currency), Value: value},
		FinalCapture: req.Final,
	}
	var c txn
	if err := p.do(ctx, call{op: op, method: http.MethodPost, path: "/v2/payments/authorizations/" + auth.ID + "/capture", requestID: req.ProviderKey, body: body}, &c); err != nil {
		return nil, err
	}
	res := &paymux.ProviderPayment{Reference: o.ID, UpdatedAt: p.clock()}
	if amt, ok := o.amount(); ok {
		res.Amount = amt
		res.Authorized = amt.Amount
	}
	got, _ := c.money(req.Amount.Currency)
	switch c.Status {
	case "COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED":
		res.Status, res.Captured = paymux.StatusCaptured, got
	case "PENDING":
		res.Status = paymux.StatusAuthorized // money not settled yet; webhooks and Lookup follow
	default:
		res.Status, res.DeclineCode = paymux.StatusFailed, c.declineCode()
		return nil, declineError(p, op, res)
	}
	return res, nil
}

// Refund refunds Amount from one capture of the order. With several
// captures, the first that still covers Amount is used; a refund carries the
// provider key as custom_id, so a retry after a lost answer finds it instead
// of refunding another capture.
func (p *Provider) Refund(ctx context.Context, req *paymux.RefundRequest) (*paymux.ProviderPayment, error) {
	const op = paymux.OpRefund
	value, err := formatAmount(req.Amount)
	if err != nil {
		return nil, p.perr(op, paymux.KindInvalidRequest, "unsupported_amount", 0, err.Error(), err)
	}
	o, err := p.getOrder(ctx, op, req.Reference)
	if err != nil {
		return nil, err
	}
	if r := o.refundWithCustomID(req.ProviderKey); r != nil {
		res, err := p.toPayment(o, req.Amount.Currency)
		if err != nil {
			return nil, err
		}
		res.RefundReference = r.ID
		return res, nil
	}
	capID := o.captureFor(req.Amount)
	if capID == "" {
		return nil, p.perr(op, paymux.KindConflict, "no_capture_to_refund", 0, "no capture of order "+o.ID+" covers "+req.Amount.String(), nil)
	}
	body := refundRequest{
		Amount:      &paypalapi.Money{Currency: string(req.Amount.Currency), Value: value},
		CustomID:    truncate(req.ProviderKey, 127),
		NoteToPayer: truncate(req.Reason, 255),
	}
	var r txn
	if err := p.do(ctx, call{op: op, method: http.MethodPost, path: "/v2/payments/captures/" + capID + "/refund", requestID: req.ProviderKey, body: body}, &r); err != nil {
		return nil, err
	}
	res, err := p.toPayment(o, req.Amount.Currency)
	if err != nil {
		return nil, err
	}
	got, _ := r.money(req.Amount.Currency)
	res.RefundReference = r.ID
	if r.Status == "COMPLETED" || r.Status == "PENDING" {
		res.Refunded += got
		res.Refunds = append(res.Refunds, paymux.ProviderRefund{Reference: r.ID, Amount: got, Status: strings.ToLower(r.Status)})
		res.Status = paymux.StatusRefunded
	}
	if r.Status == "FAILED" || r.Status == "CANCELLED" {
		return nil, p.perr(op, paymux.KindHardDecline, "REFUND_"+r.Status, 0, "refund "+r.ID+" "+strings.ToLower(r.Status), nil)
	}
	return res, nil
}

type refundRequest struct {
	Amount      *paypalapi.Money `json:"amount,omitempty"`
	CustomID    string           `json:"custom_id,omitempty"`
	NoteToPayer string           `json:"note_to_payer,omitempty"`
}

// Void voids the order's authorisation. An order that was never approved
// has nothing to void at PayPal: it expires on its own, so it is reported
// voided without a call.
func (p *Provider) Void(ctx context.Context, req *paymux.VoidRequest) (*paymux.ProviderPayment, error) {
	const op = paymux.OpVoid
	o, err := p.getOrder(ctx, op, req.Reference)
	if err != nil {
		return nil, err
	}
	switch o.Status {
	case "CREATED", "SAVED", "PAYER_ACTION_REQUIRED", "APPROVED", "VOIDED":
		// Nothing was authorised, so nothing can be taken. An APPROVED
		// order is not completed from here: it expires at PayPal.
		return &paymux.ProviderPayment{Reference: o.ID, Status: paymux.StatusVoided, UpdatedAt: p.clock()}, nil
	}
	auth := o.authorization()
	if auth == nil {
		return nil, p.perr(op, paymux.KindConflict, "no_authorization", 0, "order "+o.ID+" has no authorization to void", nil)
	}
	if auth.Status != "VOIDED" {
		if err := p.do(ctx, call{op: op, method: http.MethodPost, path: "/v2/payments/authorizations/" + auth.ID + "/void", requestID: req.ProviderKey}, nil); err != nil {
			var pe *paymux.ProviderError
			if !errors.As(err, &pe) || pe.Code != "PREVIOUSLY_VOIDED" && pe.Code != "AUTHORIZATION_VOIDED" {
				return nil, err
			}
		}
	}
	res := &paymux.ProviderPayment{Reference: o.ID, Status: paymux.StatusVoided, UpdatedAt: p.clock()}
	if amt, ok := o.amount(); ok {
		res.Amount = amt
	}
	return res, nil
}

// Lookup returns the order's state. An order the buyer approved is
// authorised or captured here (PayPal-Request-Id derived from the order id),
// which is how a paymux payment leaves requires_action.
//
// Without a Reference, PayPal offers no search by custom_id or request id, so
// only orders this process created or was given (kept in memory) can be
// found; otherwise Lookup answers OutcomeUnknown with code
// lookup_needs_reference. An order whose creation answer was lost cannot
// have been paid: its approval link never reached the buyer.
func (p *Provider) Lookup(ctx context.Context, req *paymux.LookupRequest) (*paymux.ProviderPayment, error) {
	const op = paymux.OpLookup
	ref := req.Reference
	if ref == "" {
		ref = p.recall(req.ProviderKey, req.PaymentKey)
	}
	if ref == "" {
		return nil, p.perr(op, paymux.KindOutcomeUnknown, "lookup_needs_reference", 0, "PayPal cannot search orders by key; the order id is needed", nil)
	}
	o, err := p.getOrder(ctx, op, ref)
	if err != nil {
		return nil, err
	}
	if o.Status == "APPROVED" {
		// A decline here (the buyer's funding source refused) comes back as
		// the error: the order stays open for the buyer to approve again
		// with another funding source.
		if err := p.complete(ctx, op, o, completeKey(o.ID)); err != nil {
			return nil, err
		}
	}
	return p.toPayment(o, req.Amount.Currency)
}

// remember maps keys to an order id for Lookup without a reference. Bounded.
func (p *Provider) remember(orderID string, keys ...string) {
	if orderID == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range keys {
		if k == "" {
			continue
		}
		if _, ok := p.recent[k]; !ok {
			p.order = append(p.order, k)
		}
		p.recent[k] = orderID
	}
	for len(p.order) > 10000 {
		delete(p.recent, p.order[0])
		p.order = p.order[1:]
	}
}

func (p *Provider) recall(keys ...string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range keys {
		if id := p.recent[k]; k != "" && id != "" {
			return id
		}
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// noDecimalCurrencies are currencies PayPal takes without decimals although
// ISO 4217 gives them two.
var noDecimalCurrencies = map[paymux.Currency]bool{"HUF": true, "TWD": true}

// formatAmount renders m as PayPal's decimal string.
func formatAmount(m paymux.Money) (string, error) {
	if err := m.Validate(); err != nil {
		return "", err
	}
	if noDecimalCurrencies[m.Currency] {
		if m.Amount%100 != 0 {
			return "", fmt.Errorf("paypal: %s takes whole units only, got %s", m.Currency, m)
		}
		return paymux.Money{Amount: m.Amount / 100, Currency: "JPY"}.Decimal(), nil
	}
	return m.Decimal(), nil
}

// parseAmount reads PayPal's decimal string.
func parseAmount(value, currency string) (paymux.Money, error) {
	return paymux.ParseMoney(value, paymux.Currency(currency))
}
