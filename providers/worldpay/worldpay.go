// Package worldpay is the paymux adapter for the Access Worldpay Payments API
// (WP-Api-Version 2024-06-01), spoken directly over net/http and
// encoding/json.
//
// # Overview
//
// Authorize posts to /api/payments. Settle, partial settle, refund, partial
// refund and cancel are never built from URL templates: they follow the
// _actions links Worldpay returned for the payment (settlePayment,
// partiallySettlePayment, refundPayment, partiallyRefundPayment,
// cancelPayment). The adapter keeps the latest links per payment in memory
// and, when it does not have them (another process, a restart), looks them up
// again with the recovery query by transactionReference and entity.
//
// # Idempotency
//
// The Access Payments API documents no idempotency header. The
// transactionReference is Worldpay's handle for a payment: the adapter sends
// the attempt's paymux ProviderKey as the transactionReference, so each attempt
// has its own. A retry with the same transactionReference is not documented
// as safe, so the decision table never says Retry for an outcome that may
// have been processed: it stops, and paymux reconciles through Lookup (the
// documented recovery query). See README.md.
//
// # Webhooks
//
// Events carry an Event-Signature header, {keyId}/{hashFunction}/{signature},
// possibly several comma-separated; the adapter picks the one whose keyId it
// has a secret for and compares the HMAC in constant time.
package worldpay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/paymux/paymux"
)

// APIVersion is the WP-Api-Version the adapter speaks.
const APIVersion = "2024-06-01"

// DefaultBaseURL is Worldpay's test ("Try") environment. Live is
// https://access.worldpay.com.
const DefaultBaseURL = "https://try.access.worldpay.com"

// SignatureEncoding is the text encoding of the HMAC in Event-Signature.
type SignatureEncoding int

const (
	// EncodingHex: lower- or upper-case hex. Worldpay's Account Payouts
	// HMAC page calls the signature "HMAC hex output"; the Events page does
	// not say, so hex is the default. Switch to EncodingBase64 if Worldpay
	// tells you otherwise.
	EncodingHex SignatureEncoding = iota
	// EncodingBase64: standard base64 with padding.
	EncodingBase64
)

// ThreeDSMode says when the adapter asks Worldpay to authenticate the buyer.
type ThreeDSMode int

const (
	// ThreeDSWhenAsked sends the threeDS object only when paymux asks for it
	// (AuthorizeRequest.ThreeDS, set by the risk hook or a step-up).
	ThreeDSWhenAsked ThreeDSMode = iota
	// ThreeDSAlways sends it on every authorisation (Worldpay "mode: always").
	ThreeDSAlways
)

// Config configures a Provider. The zero value of every field is usable
// except Username, Password and Entity:
//
//	Name               "worldpay"
//	BaseURL            DefaultBaseURL (https://try.access.worldpay.com)
//	HTTPClient         a client with a 30 s timeout
//	Logger             slog.Default()
//	Clock              time.Now
//	EventSecrets       none: every webhook is refused as unverifiable
//	SignatureEncoding  EncodingHex
//	Narrative          "paymux" (instruction.narrative.line1, on the statement)
//	ThreeDS            ThreeDSWhenAsked
//	ThreeDSReturnURL   none: AuthorizeRequest.ReturnURL is used
//	Currencies         any
//	LookupAttempts     4 (paymux's default MaxAttempts)
type Config struct {
	Name       string
	Username   string
	Password   paymux.Secret
	Entity     string
	BaseURL    string
	HTTPClient *http.Client
	Logger     *slog.Logger
	Clock      func() time.Time
	// EventSecrets maps an Event-Signature keyId to its shared secret. Keep
	// the old key during a renewal so both verify.
	EventSecrets      map[string]paymux.Secret
	SignatureEncoding SignatureEncoding
	Narrative         string
	ThreeDS           ThreeDSMode
	ThreeDSReturnURL  string
	Currencies        []paymux.Currency
	// LookupAttempts bounds Lookup by the paymux key alone: Worldpay never
	// sees that key, so the adapter derives the transactionReferences of
	// attempts 1..LookupAttempts (paymux.ProviderKey) and queries each. Set
	// it to the orchestrator's MaxAttempts.
	LookupAttempts int
}

// Provider is the Worldpay adapter.
type Provider struct {
	cfg   Config
	http  *http.Client
	log   *slog.Logger
	now   func() time.Time
	base  string
	table paymux.DecisionTable

	mu    sync.Mutex
	cache map[string]*state // by transactionReference
	// unknown holds the ProviderKeys of follow-up calls whose outcome was
	// lost. Worldpay documents no de-duplication of a repeated settlement or
	// refund, so this process never sends one of them again: the caller must
	// reconcile (Sync) and decide with a new key.
	unknown map[string]bool
}

// state is what the adapter remembers of a payment: the latest action links
// and the amounts it moved. It is an optimisation only: every entry can be
// rebuilt with the recovery query.
type state struct {
	actions    actions
	currency   paymux.Currency
	authorized int64
	captured   int64
	refunded   int64
}

const maxCache = 10000

var (
	_ paymux.Provider       = (*Provider)(nil)
	_ paymux.WebhookParser  = (*Provider)(nil)
	_ paymux.DecisionTabler = (*Provider)(nil)
)

// New returns a Provider. It fails when credentials or the entity are missing.
func New(cfg Config) (*Provider, error) {
	if cfg.Username == "" || cfg.Password == "" {
		return nil, errors.New("worldpay: Username and Password are required")
	}
	if cfg.Entity == "" {
		return nil, errors.New("worldpay: Entity is required")
	}
	if cfg.Name == "" {
		cfg.Name = "worldpay"
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.LookupAttempts <= 0 {
		cfg.LookupAttempts = 4
	}
	if cfg.Narrative == "" {
		cfg.Narrative = "paymux"
	}
	p := &Provider{
		cfg:     cfg,
		http:    cfg.HTTPClient,
		log:     cfg.Logger,
		now:     cfg.Clock,
		base:    strings.TrimRight(cfg.BaseURL, "/"),
		cache:   make(map[string]*state),
		unknown: make(map[string]bool),
	}
	if p.http == nil {
		p.http = &http.Client{Timeout: 30 * time.Second}
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.now == nil {
		p.now = time.Now
	}
	p.table = DecisionTable(cfg.Name)
	return p, nil
}

// Name implements paymux.Provider.
func (p *Provider) Name() string { return p.cfg.Name }

// Capabilities implements paymux.Provider.
func (p *Provider) Capabilities() paymux.Capabilities {
	return paymux.Capabilities{
		Currencies:     p.cfg.Currencies,
		Methods:        []paymux.MethodType{paymux.MethodCard},
		ManualCapture:  true,
		PartialCapture: true,
		PartialRefund:  true,
		MultipleRefund: true,
		Void:           true,
	}
}

// DecisionTable implements paymux.DecisionTabler.
func (p *Provider) DecisionTable() paymux.DecisionTable { return p.table }

// Authorize implements paymux.Provider. The transactionReference is the
// attempt's ProviderKey, and it becomes the payment's reference: it is what
// Worldpay's events carry.
func (p *Provider) Authorize(ctx context.Context, req *paymux.AuthorizeRequest) (*paymux.ProviderPayment, error) {
	if err := checkTxRef(req.ProviderKey); err != nil {
		return nil, p.invalid(paymux.OpAuthorize, err.Error())
	}
	instr, err := instrumentFor(req.Method)
	if err != nil {
		return nil, p.invalid(paymux.OpAuthorize, err.Error())
	}
	body := paymentRequest{
		TransactionReference: req.ProviderKey,
		Merchant:             merchant{Entity: p.cfg.Entity},
		Instruction: instruction{
			Method:            "card",
			PaymentInstrument: instr,
			Narrative:         narrative{Line1: p.cfg.Narrative},
			Value:             value{Currency: string(req.Amount.Currency), Amount: req.Amount.Amount},
		},
	}
	if req.Capture != paymux.CaptureManual {
		body.Instruction.Settlement = &settlement{Auto: true}
	}
	if req.ThreeDS || p.cfg.ThreeDS == ThreeDSAlways {
		ret := req.ReturnURL
		if ret == "" {
			ret = p.cfg.ThreeDSReturnURL
		}
		if ret == "" {
			return nil, p.invalid(paymux.OpAuthorize, "3-D Secure needs a ReturnURL")
		}
		body.Instruction.ThreeDS = &threeDS{
			Type: "integrated", Mode: "always",
			Challenge:  threeDSChallenge{ReturnURL: ret},
			DeviceData: deviceData{AcceptHeader: "text/html", UserAgentHeader: "paymux"},
		}
	}
	var res paymentResponse
	if err := p.do(ctx, paymux.OpAuthorize, http.MethodPost, p.base+"/api/payments", body, &res); err != nil {
		return nil, err
	}
	return p.authorizeResult(req, &res)
}

func (p *Provider) authorizeResult(req *paymux.AuthorizeRequest, res *paymentResponse) (*paymux.ProviderPayment, error) {
	ref := req.ProviderKey
	out := &paymux.ProviderPayment{Reference: ref, Amount: req.Amount, UpdatedAt: p.now()}
	acts := res.actions()
	switch res.Outcome {
	case "authorized":
		out.Status, out.Authorized = paymux.StatusAuthorized, req.Amount.Amount
	case "sentForSettlement":
		out.Status, out.Authorized, out.Captured = paymux.StatusCaptured, req.Amount.Amount, req.Amount.Amount
	case "3dsDeviceDataRequired":
		out.Status = paymux.StatusRequiresAction
		out.NextAction = &paymux.NextAction{Type: "three_ds"}
		if res.DeviceDataCollection != nil {
			out.NextAction.RedirectURL = res.DeviceDataCollection.URL
		}
	case "3dsChallenged":
		out.Status = paymux.StatusRequiresAction
		out.NextAction = &paymux.NextAction{Type: "three_ds"}
		if res.Challenge != nil {
			out.NextAction.RedirectURL = res.Challenge.URL
		}
	case "refused":
		return nil, p.refusal(paymux.OpAuthorize, res)
	case "":
		return nil, &paymux.ProviderError{Provider: p.cfg.Name, Operation: paymux.OpAuthorize, Kind: paymux.KindOutcomeUnknown,
			Code: "no_outcome", HTTPStatus: res.httpStatus, Message: "response without an outcome"}
	default:
		// 3dsAuthenticationFailed, 3dsUnavailable, fraudHighRisk,
		// sentForCancellation (auto-cancel on AVS/CVC): no money moved.
		k := paymux.KindHardDecline
		if c, ok := p.table.Lookup(p.cfg.Name, paymux.OpAuthorize, res.Outcome); ok {
			k = c.Kind
		}
		return nil, &paymux.ProviderError{Provider: p.cfg.Name, Operation: paymux.OpAuthorize, Kind: k,
			Code: res.Outcome, HTTPStatus: res.httpStatus, Message: "outcome " + res.Outcome}
	}
	p.remember(ref, func(s *state) {
		s.actions = acts
		s.currency = req.Amount.Currency
		s.authorized = out.Authorized
		s.captured = out.Captured
	})
	return out, nil
}

// refusal turns a refused outcome into a decline. The advice code, when
// Worldpay gives one, takes precedence over the refusal code: it is the
// scheme telling the merchant whether to try again.
func (p *Provider) refusal(op paymux.Operation, res *paymentResponse) error {
	pe := &paymux.ProviderError{Provider: p.cfg.Name, Operation: op, Kind: paymux.KindHardDecline,
		Code: "refused", DeclineCode: res.RefusalCode, HTTPStatus: res.httpStatus, Message: res.RefusalDescription}
	if res.Advice != nil && res.Advice.Code != "" {
		pe.Code = "advice:" + res.Advice.Code
	}
	for _, code := range [2]string{pe.Code, pe.DeclineCode} {
		if c, ok := p.table.Lookup(p.cfg.Name, op, code); ok {
			pe.Kind = c.Kind
			break
		}
	}
	return pe
}

// Capture implements paymux.Provider: full settlement when it takes what is
// left of the authorisation, partial settlement otherwise.
func (p *Provider) Capture(ctx context.Context, req *paymux.CaptureRequest) (*paymux.ProviderPayment, error) {
	if err := p.resend(paymux.OpCapture, req.ProviderKey); err != nil {
		return nil, err
	}
	st, err := p.links(ctx, paymux.OpCapture, req.Reference)
	if err != nil {
		return nil, err
	}
	full := st.authorized > 0 && req.Amount.Amount == st.authorized-st.captured
	var (
		act  link
		body any
	)
	switch {
	case full && st.actions.has(actSettle):
		act = st.actions[actSettle]
	case st.actions.has(actPartialSettle):
		act = st.actions[actPartialSettle]
		body = partialRequest{Value: value{Currency: string(req.Amount.Currency), Amount: req.Amount.Amount}, Reference: shortRef(req.ProviderKey)}
	default:
		// Without a partial settlement link, and without proof that the
		// amount is all that is left, a full settlement could move more
		// money than asked: refuse.
		return nil, p.noAction(paymux.OpCapture, "settle")
	}
	var res paymentResponse
	if err := p.do(ctx, paymux.OpCapture, act.method(), act.Href, body, &res); err != nil {
		p.forget(req.Reference, req.ProviderKey, err)
		return nil, err
	}
	if res.Outcome == "refused" {
		return nil, p.refusal(paymux.OpCapture, &res)
	}
	var cur state
	p.remember(req.Reference, func(s *state) {
		s.actions = res.actions()
		s.captured += req.Amount.Amount
		cur = *s
	})
	return &paymux.ProviderPayment{Reference: req.Reference, Status: paymux.StatusCaptured, Amount: paymux.Money{Amount: cur.authorized, Currency: req.Amount.Currency},
		Authorized: cur.authorized, Captured: cur.captured, Refunded: cur.refunded, UpdatedAt: p.now()}, nil
}

// Refund implements paymux.Provider: a full refund when it returns all that
// was captured and nothing was refunded yet, partial refunds otherwise.
func (p *Provider) Refund(ctx context.Context, req *paymux.RefundRequest) (*paymux.ProviderPayment, error) {
	if err := p.resend(paymux.OpRefund, req.ProviderKey); err != nil {
		return nil, err
	}
	st, err := p.links(ctx, paymux.OpRefund, req.Reference)
	if err != nil {
		return nil, err
	}
	full := st.captured > 0 && st.refunded == 0 && req.Amount.Amount == st.captured
	var (
		act  link
		body any
	)
	refRef := shortRef(req.ProviderKey)
	switch {
	case full && st.actions.has(actRefund):
		act = st.actions[actRefund]
	case st.actions.has(actPartialRefund):
		act = st.actions[actPartialRefund]
		body = partialRequest{Value: value{Currency: string(req.Amount.Currency), Amount: req.Amount.Amount}, Reference: refRef}
	default:
		return nil, p.noAction(paymux.OpRefund, "refund")
	}
	var res paymentResponse
	if err := p.do(ctx, paymux.OpRefund, act.method(), act.Href, body, &res); err != nil {
		p.forget(req.Reference, req.ProviderKey, err)
		return nil, err
	}
	if res.Outcome == "refused" {
		return nil, p.refusal(paymux.OpRefund, &res)
	}
	var cur state
	p.remember(req.Reference, func(s *state) {
		s.actions = res.actions()
		s.refunded += req.Amount.Amount
		cur = *s
	})
	return &paymux.ProviderPayment{Reference: req.Reference, Status: paymux.StatusRefunded, Amount: paymux.Money{Amount: cur.authorized, Currency: req.Amount.Currency},
		Authorized: cur.authorized, Captured: cur.captured, Refunded: cur.refunded, RefundReference: refRef, UpdatedAt: p.now()}, nil
}

// Void implements paymux.Provider by following cancelPayment.
func (p *Provider) Void(ctx context.Context, req *paymux.VoidRequest) (*paymux.ProviderPayment, error) {
	if err := p.resend(paymux.OpVoid, req.ProviderKey); err != nil {
		return nil, err
	}
	st, err := p.links(ctx, paymux.OpVoid, req.Reference)
	if err != nil {
		return nil, err
	}
	if !st.actions.has(actCancel) {
		return nil, p.noAction(paymux.OpVoid, "cancel")
	}
	act := st.actions[actCancel]
	var res paymentResponse
	if err := p.do(ctx, paymux.OpVoid, act.method(), act.Href, nil, &res); err != nil {
		p.forget(req.Reference, req.ProviderKey, err)
		return nil, err
	}
	p.remember(req.Reference, func(s *state) { s.actions = res.actions() })
	return &paymux.ProviderPayment{Reference: req.Reference, Status: paymux.StatusVoided, UpdatedAt: p.now()}, nil
}

// Lookup implements paymux.Provider. With a cached self link it queries the
// payment; otherwise it runs Worldpay's recovery query by
// transactionReference (the Reference, or the attempt's ProviderKey, which
// is the same string) and entity. With only the paymux key it derives the
// transactionReferences of the first LookupAttempts attempts and queries
// each: Worldpay never sees the paymux key itself.
func (p *Provider) Lookup(ctx context.Context, req *paymux.LookupRequest) (*paymux.ProviderPayment, error) {
	ref := req.Reference
	if ref == "" {
		ref = req.ProviderKey
	}
	var (
		q   *queryResponse
		err error
	)
	switch {
	case ref != "":
		q, err = p.query(ctx, ref)
	case req.PaymentKey != "":
		for n := 1; n <= p.cfg.LookupAttempts; n++ {
			ref = paymux.ProviderKey(req.PaymentKey, p.cfg.Name, paymux.OpAuthorize, n)
			if q, err = p.query(ctx, ref); paymux.KindOf(err) != paymux.KindNotFound {
				break
			}
		}
	default:
		return nil, p.invalid(paymux.OpLookup, "Lookup needs a Reference, a ProviderKey or a PaymentKey")
	}
	if err != nil {
		return nil, err
	}
	st := p.snapshot(ref)
	out := &paymux.ProviderPayment{Reference: ref, Amount: req.Amount, UpdatedAt: p.now()}
	out.Status = statusOfEvent(q.LastEvent)
	auth := st.authorized
	if auth == 0 {
		auth = req.Amount.Amount
	}
	switch out.Status {
	case paymux.StatusAuthorized:
		out.Authorized = auth
	case paymux.StatusCaptured:
		out.Authorized, out.Captured = auth, st.captured
	case paymux.StatusRefunded:
		out.Authorized, out.Captured, out.Refunded = auth, st.captured, st.refunded
	case paymux.StatusFailed:
		out.DeclineCode = q.RefusalCode
	case "":
		return nil, &paymux.ProviderError{Provider: p.cfg.Name, Operation: paymux.OpLookup, Kind: paymux.KindOutcomeUnknown,
			Code: "unknown_last_event", Message: "lastEvent " + q.LastEvent}
	}
	return out, nil
}

// query asks Worldpay for the payment's last event and links, and caches the
// links.
func (p *Provider) query(ctx context.Context, ref string) (*queryResponse, error) {
	st := p.snapshot(ref)
	u := ""
	if self, ok := st.actions[actSelf]; ok {
		u = self.Href
	} else {
		u = p.base + "/payments/events?transactionRef=" + urlQueryEscape(ref) + "&entity=" + urlQueryEscape(p.cfg.Entity)
	}
	var q queryResponse
	if err := p.do(ctx, paymux.OpLookup, http.MethodGet, u, nil, &q); err != nil {
		return nil, err
	}
	acts := q.actions()
	if _, ok := acts[actSelf]; !ok && st.actions.has(actSelf) {
		acts[actSelf] = st.actions[actSelf]
	}
	p.remember(ref, func(s *state) { s.actions = acts })
	return &q, nil
}

// links returns the payment's state with fresh enough action links: cached
// ones, or the recovery query's.
func (p *Provider) links(ctx context.Context, op paymux.Operation, ref string) (state, error) {
	if ref == "" {
		return state{}, p.invalid(op, "missing payment reference")
	}
	if st := p.snapshot(ref); len(st.actions) > 1 || (len(st.actions) == 1 && !st.actions.has(actSelf)) {
		return st, nil
	}
	if _, err := p.query(ctx, ref); err != nil {
		return state{}, err
	}
	return p.snapshot(ref), nil
}

func (p *Provider) snapshot(ref string) state {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.cache[ref]; ok {
		c := *s
		c.actions = s.actions.clone()
		return c
	}
	return state{}
}

func (p *Provider) remember(ref string, fn func(*state)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.cache[ref]
	if !ok {
		if len(p.cache) >= maxCache {
			for k := range p.cache { // drop an arbitrary entry; it can be looked up again
				delete(p.cache, k)
				break
			}
		}
		s = &state{}
		p.cache[ref] = s
	}
	fn(s)
}

// forget drops cached links after a failure whose effect is unknown, so the
// next call asks Worldpay which actions are still open, and remembers the
// call's key so that it is not sent again.
func (p *Provider) forget(ref, key string, err error) {
	if paymux.KindOf(err) != paymux.KindOutcomeUnknown {
		return
	}
	p.mu.Lock()
	delete(p.cache, ref)
	if key != "" {
		if len(p.unknown) >= maxCache {
			clear(p.unknown)
		}
		p.unknown[key] = true
	}
	p.mu.Unlock()
}

// resend refuses a follow-up whose earlier try with the same key may have
// been processed.
func (p *Provider) resend(op paymux.Operation, key string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if key == "" || !p.unknown[key] {
		return nil
	}
	return &paymux.ProviderError{Provider: p.cfg.Name, Operation: op, Kind: paymux.KindOutcomeUnknown, Code: "unknown_not_resent",
		Message: "an earlier call with this key may have been processed and Worldpay documents no de-duplication; Sync the payment and retry with a new key"}
}

func (p *Provider) invalid(op paymux.Operation, msg string) error {
	return &paymux.ProviderError{Provider: p.cfg.Name, Operation: op, Kind: paymux.KindInvalidRequest, Code: "invalid_request", Message: msg}
}

func (p *Provider) noAction(op paymux.Operation, what string) error {
	return &paymux.ProviderError{Provider: p.cfg.Name, Operation: op, Kind: paymux.KindConflict, Code: "action_unavailable",
		Message: fmt.Sprintf("Worldpay offers no %s action for this payment in its current state", what)}
}

func checkTxRef(s string) error {
	if len(s) < 1 || len(s) > 64 {
		return errors.New("transactionReference must be 1-64 characters")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_!@#$%()*=.:;?[]{}~`/+", c) >= 0) {
			return fmt.Errorf("transactionReference has a character Worldpay refuses: %q", c)
		}
	}
	return nil
}

// shortRef turns a ProviderKey into a partial settlement / refund reference.
func shortRef(key string) string {
	if len(key) > 64 {
		return key[:64]
	}
	return key
}

// statusOfEvent maps a query's lastEvent ("Authorized", "Sent for
// Settlement", "sentForSettlement", ...) to a paymux status; "" when unknown.
func statusOfEvent(ev string) paymux.Status {
	k := strings.ToLower(strings.ReplaceAll(ev, " ", ""))
	switch k {
	case "authorized", "authorised":
		return paymux.StatusAuthorized
	case "sentforsettlement", "settled", "sentforpartialsettlement", "partiallysettled":
		return paymux.StatusCaptured
	case "sentforrefund", "refunded", "sentforpartialrefund", "partiallyrefunded":
		return paymux.StatusRefunded
	case "sentforcancellation", "cancelled", "canceled", "expired":
		return paymux.StatusVoided
	case "refused", "error", "3dsauthenticationfailed", "fraudhighrisk":
		return paymux.StatusFailed
	case "3dsdevicedatarequired", "3dschallenged":
		return paymux.StatusRequiresAction
	case "sentforauthorization":
		return paymux.StatusPending
	case "settlementfailed":
		return paymux.StatusAuthorized
	case "refundfailed":
		return paymux.StatusCaptured
	}
	return ""
}
