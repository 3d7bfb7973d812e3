// Package stripe is the paymux adapter for Stripe PaymentIntents, on
// github.com/stripe/stripe-go/v76.
//
// # Overview
//
// Authorize creates and confirms a PaymentIntent with a PaymentMethod token
// in one call, with capture_method automatic or manual. Capture captures all
// or part of it (amount_to_capture), Refund creates refunds (partial, several
// per payment), Void cancels it. Lookup finds a PaymentIntent by id, or by the
// paymux keys stored in its metadata when the outcome of a create was lost.
//
// Every mutating call carries the provider key paymux derived as Stripe's
// Idempotency-Key. stripe-go's own network retries are switched off: paymux
// retries with the same key, after classifying the failure.
//
// # Errors
//
// Failures are *paymux.ProviderError classified through DecisionTable, built
// from Stripe's documented error types, codes, decline codes and advice codes.
// A request that certainly never left this process (dial refused, DNS, TLS
// handshake) is KindUnavailable; anything sent whose answer was lost is
// KindOutcomeUnknown.
//
// # Webhooks
//
// ParseWebhook verifies Stripe-Signature over the raw body (every v1 entry,
// every configured secret, 5-minute tolerance, constant-time comparison), then
// decodes only the fields it needs, whatever the event's API version.
package stripe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	stripeapi "github.com/stripe/stripe-go/v76"
	stripeclient "github.com/stripe/stripe-go/v76/client"

	"github.com/paymux/paymux"
)

// Metadata keys the adapter writes on every PaymentIntent and refund. Lookup
// and ParseWebhook read them back.
const (
	MetadataPaymentID   = "paymux_payment_id"
	MetadataPaymentKey  = "paymux_key"
	MetadataProviderKey = "paymux_provider_key"
	MetadataReason      = "paymux_reason"
)

// Stripe's metadata limits: 50 keys, values of at most 500 characters.
const (
	maxMetadataKeys  = 50
	maxMetadataValue = 500
)

// DefaultName is the provider name when Config.Name is empty.
const DefaultName = "stripe"

// Config configures the adapter. The zero value of every field but SecretKey
// is usable:
//
//	Name               "stripe"
//	SecretKey          required (sk_test_... / sk_live_... / rk_...)
//	WebhookSecret(s)   none: ParseWebhook refuses every webhook
//	BaseURL            https://api.stripe.com
//	HTTPClient         a client with a 30 s timeout
//	Logger             slog.Default()
//	Clock              time.Now
//	WebhookTolerance   5 minutes
//	Capabilities       cards in any currency paymux knows, every feature on
//	LookupListWindow   1 hour
//	LookupListPages    20 pages of 100
type Config struct {
	Name      string
	SecretKey paymux.Secret
	// WebhookSecret is the endpoint's signing secret (whsec_...).
	WebhookSecret paymux.Secret
	// WebhookSecrets are further secrets accepted while one is rolled.
	WebhookSecrets []paymux.Secret
	BaseURL        string
	HTTPClient     *http.Client
	Logger         *slog.Logger
	Clock          func() time.Time
	// WebhookTolerance bounds |now - t| of a signed webhook.
	WebhookTolerance time.Duration
	// Capabilities overrides what routing is told the account can serve.
	Capabilities *paymux.Capabilities
	// LookupListWindow and LookupListPages bound the strongly consistent
	// list scan Lookup falls back to when search (which lags writes by up to
	// a minute) finds nothing for a key.
	LookupListWindow time.Duration
	LookupListPages  int
}

// Provider is the Stripe adapter. It is safe for concurrent use.
type Provider struct {
	name      string
	api       *stripeclient.API
	secrets   []paymux.Secret
	log       *slog.Logger
	now       func() time.Time
	tolerance time.Duration
	caps      paymux.Capabilities
	table     paymux.DecisionTable
	window    time.Duration
	pages     int
}

var (
	_ paymux.Provider       = (*Provider)(nil)
	_ paymux.WebhookParser  = (*Provider)(nil)
	_ paymux.DecisionTabler = (*Provider)(nil)
	_ paymux.WebhookHinter  = (*Provider)(nil)
)

// New returns an adapter for the account of cfg.SecretKey.
func New(cfg Config) (*Provider, error) {
	if cfg.SecretKey == "" {
		return nil, errors.New("stripe: Config.SecretKey is required")
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = stripeapi.APIURL
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
	if cfg.WebhookTolerance <= 0 {
		cfg.WebhookTolerance = DefaultTolerance
	}
	if cfg.LookupListWindow <= 0 {
		cfg.LookupListWindow = time.Hour
	}
	if cfg.LookupListPages <= 0 {
		cfg.LookupListPages = 20
	}
	caps := paymux.Capabilities{
		Methods:        []paymux.MethodType{paymux.MethodCard, paymux.MethodApplePay, paymux.MethodGooglePay},
		ManualCapture:  true,
		PartialCapture: true,
		PartialRefund:  true,
		MultipleRefund: true,
		Void:           true,
	}
	if cfg.Capabilities != nil {
		caps = *cfg.Capabilities
	}
	// Our transport records whether a request was written and what status
	// came back: stripe-go does not keep either for transport errors or
	// non-JSON bodies, and both decide between Unavailable and
	// OutcomeUnknown.
	hc := *cfg.HTTPClient
	hc.Transport = &recordingTransport{base: cfg.HTTPClient.Transport}
	retries := int64(0) // paymux retries, with the same key, after classifying
	telemetry := false
	backend := stripeapi.GetBackendWithConfig(stripeapi.APIBackend, &stripeapi.BackendConfig{
		HTTPClient:        &hc,
		URL:               stripeapi.String(strings.TrimRight(cfg.BaseURL, "/")),
		MaxNetworkRetries: &retries,
		EnableTelemetry:   &telemetry,
		LeveledLogger:     slogLeveled{cfg.Logger.With("provider", cfg.Name)},
	})
	api := stripeclient.New(cfg.SecretKey.Reveal(), &stripeapi.Backends{API: backend, Connect: backend, Uploads: backend})
	secrets := make([]paymux.Secret, 0, 1+len(cfg.WebhookSecrets))
	for _, s := range append([]paymux.Secret{cfg.WebhookSecret}, cfg.WebhookSecrets...) {
		if s != "" {
			secrets = append(secrets, s)
		}
	}
	return &Provider{
		name: cfg.Name, api: api, secrets: secrets, log: cfg.Logger, now: cfg.Clock,
		tolerance: cfg.WebhookTolerance, caps: caps, table: DecisionTable(cfg.Name),
		window: cfg.LookupListWindow, pages: cfg.LookupListPages,
	}, nil
}

// Name implements paymux.Provider.
func (p *Provider) Name() string { return p.name }

// Capabilities implements paymux.Provider.
func (p *Provider) Capabilities() paymux.Capabilities { return p.caps }

// DecisionTable implements paymux.DecisionTabler.
func (p *Provider) DecisionTable() paymux.DecisionTable { return p.table }

// Authorize creates and confirms a PaymentIntent.
func (p *Provider) Authorize(ctx context.Context, req *paymux.AuthorizeRequest) (*paymux.ProviderPayment, error) {
	const op = paymux.OpAuthorize
	if req.Method.Token == "" {
		return nil, p.invalid(op, "payment method token is empty")
	}
	if paymux.LooksLikeCardNumber(req.Method.Token) {
		return nil, p.invalid(op, "payment method token looks like a card number")
	}
	amount, err := toStripeAmount(req.Amount)
	if err != nil {
		return nil, p.invalid(op, err.Error())
	}
	capture := stripeapi.PaymentIntentCaptureMethodAutomatic
	if req.Capture == paymux.CaptureManual {
		capture = stripeapi.PaymentIntentCaptureMethodManual
	}
	params := &stripeapi.PaymentIntentParams{
		Amount:        stripeapi.Int64(amount),
		Currency:      stripeapi.String(strings.ToLower(string(req.Amount.Currency))),
		PaymentMethod: stripeapi.String(req.Method.Token),
		Confirm:       stripeapi.Bool(true),
		CaptureMethod: stripeapi.String(string(capture)),
	}
	if req.ReturnURL != "" {
		params.ReturnURL = stripeapi.String(req.ReturnURL)
	} else {
		// Without a return URL Stripe refuses to confirm a payment that might
		// redirect; cards still authenticate in place (use_stripe_sdk).
		params.AutomaticPaymentMethods = &stripeapi.PaymentIntentAutomaticPaymentMethodsParams{
			Enabled:        stripeapi.Bool(true),
			AllowRedirects: stripeapi.String("never"),
		}
	}
	if req.ThreeDS {
		params.PaymentMethodOptions = &stripeapi.PaymentIntentPaymentMethodOptionsParams{
			Card: &stripeapi.PaymentIntentPaymentMethodOptionsCardParams{RequestThreeDSecure: stripeapi.String("any")},
		}
	}
	for _, v := range []string{req.PaymentID, req.PaymentKey, req.ProviderKey} {
		if len(v) > maxMetadataValue {
			return nil, p.invalid(op, "paymux keys longer than Stripe's 500-character metadata values")
		}
	}
	// Shop metadata first, so that it can never overwrite paymux's own keys.
	// Keys Stripe would refuse (or read as nested parameters) are dropped
	// rather than failing the payment; values are cut to Stripe's limit.
	n := 0
	for _, k := range sortedKeys(req.Metadata) {
		if n == maxMetadataKeys-3 || k == "" || len(k) > 40 || strings.ContainsAny(k, "[]") ||
			k == MetadataPaymentID || k == MetadataPaymentKey || k == MetadataProviderKey {
			continue
		}
		params.AddMetadata(k, truncate(req.Metadata[k], maxMetadataValue))
		n++
	}
	params.AddMetadata(MetadataPaymentID, req.PaymentID)
	params.AddMetadata(MetadataPaymentKey, req.PaymentKey)
	params.AddMetadata(MetadataProviderKey, req.ProviderKey)
	params.AddExpand("latest_charge")
	rec, _ := p.prepare(ctx, &params.Params, req.ProviderKey)
	pi, err := p.api.PaymentIntents.New(params)
	if err != nil {
		return nil, p.classify(op, rec, err)
	}
	res, err := p.fromIntent(pi)
	if err != nil {
		return nil, p.unknown(op, err)
	}
	if res.Status == paymux.StatusFailed {
		// A confirm that left the intent without a payment method is a
		// decline Stripe reported in the object rather than as an error.
		return nil, p.declineFromIntent(op, pi)
	}
	return res, nil
}

// Capture captures Amount of an authorised PaymentIntent. Without Stripe's
// multicapture, a partial capture releases the rest of the authorisation, so
// Final is implied.
func (p *Provider) Capture(ctx context.Context, req *paymux.CaptureRequest) (*paymux.ProviderPayment, error) {
	const op = paymux.OpCapture
	if req.Reference == "" {
		return nil, p.invalid(op, "capture needs the PaymentIntent id")
	}
	params := &stripeapi.PaymentIntentCaptureParams{}
	if req.Amount.Amount > 0 {
		amount, err := toStripeAmount(req.Amount)
		if err != nil {
			return nil, p.invalid(op, err.Error())
		}
		params.AmountToCapture = stripeapi.Int64(amount)
	}
	params.AddExpand("latest_charge")
	rec, _ := p.prepare(ctx, &params.Params, req.ProviderKey)
	pi, err := p.api.PaymentIntents.Capture(req.Reference, params)
	if err != nil {
		return nil, p.classify(op, rec, err)
	}
	res, err := p.fromIntent(pi)
	if err != nil {
		return nil, p.unknown(op, err)
	}
	return res, nil
}

var refundReasons = map[string]bool{"duplicate": true, "fraudulent": true, "requested_by_customer": true}

// Refund creates one refund of Amount on the PaymentIntent.
func (p *Provider) Refund(ctx context.Context, req *paymux.RefundRequest) (*paymux.ProviderPayment, error) {
	const op = paymux.OpRefund
	if req.Reference == "" {
		return nil, p.invalid(op, "refund needs the PaymentIntent id")
	}
	params := &stripeapi.RefundParams{PaymentIntent: stripeapi.String(req.Reference)}
	if req.Amount.Amount > 0 {
		amount, err := toStripeAmount(req.Amount)
		if err != nil {
			return nil, p.invalid(op, err.Error())
		}
		params.Amount = stripeapi.Int64(amount)
	}
	if refundReasons[req.Reason] {
		params.Reason = stripeapi.String(req.Reason)
	} else if req.Reason != "" {
		// Stripe accepts three reasons only; keep the shop's in metadata.
		params.AddMetadata(MetadataReason, truncate(req.Reason, 500))
	}
	params.AddMetadata(MetadataPaymentID, req.PaymentID)
	params.AddMetadata(MetadataProviderKey, req.ProviderKey)
	rec, _ := p.prepare(ctx, &params.Params, req.ProviderKey)
	r, err := p.api.Refunds.New(params)
	if err != nil {
		return nil, p.classify(op, rec, err)
	}
	if r.Status == stripeapi.RefundStatusFailed || r.Status == stripeapi.RefundStatusCanceled {
		return nil, &paymux.ProviderError{
			Provider: p.name, Operation: op, Kind: paymux.KindHardDecline, Code: "refund_" + string(r.Status),
			DeclineCode: string(r.FailureReason), Message: "refund " + r.ID + " " + string(r.Status),
		}
	}
	cur := req.Amount.Currency
	if cur == "" {
		cur = paymux.Currency(strings.ToUpper(string(r.Currency)))
	}
	amount := fromStripeAmount(r.Amount, cur)
	// The orchestrator adds this refund to the ones it knows; the totals
	// come from Lookup, so no second call can fail after the money moved.
	return &paymux.ProviderPayment{
		Reference:       req.Reference,
		Status:          paymux.StatusRefunded,
		Amount:          paymux.Money{Amount: amount, Currency: cur},
		RefundReference: r.ID,
		Refunds:         []paymux.ProviderRefund{{Reference: r.ID, Amount: amount, Status: string(r.Status)}},
		UpdatedAt:       p.now(),
	}, nil
}

// Void cancels a PaymentIntent that was not captured.
func (p *Provider) Void(ctx context.Context, req *paymux.VoidRequest) (*paymux.ProviderPayment, error) {
	const op = paymux.OpVoid
	if req.Reference == "" {
		return nil, p.invalid(op, "void needs the PaymentIntent id")
	}
	params := &stripeapi.PaymentIntentCancelParams{}
	params.AddExpand("latest_charge")
	rec, _ := p.prepare(ctx, &params.Params, req.ProviderKey)
	pi, err := p.api.PaymentIntents.Cancel(req.Reference, params)
	if err != nil {
		return nil, p.classify(op, rec, err)
	}
	res, err := p.fromIntent(pi)
	if err != nil {
		return nil, p.unknown(op, err)
	}
	return res, nil
}

// Lookup returns Stripe's view of a payment: by PaymentIntent id, else by the
// attempt's provider key, else by the paymux key, both read from metadata.
// Search lags writes by up to a minute, so a miss there is confirmed by a
// strongly consistent scan of recent PaymentIntents before NotFound is
// returned; a scan that cannot finish says OutcomeUnknown instead.
func (p *Provider) Lookup(ctx context.Context, req *paymux.LookupRequest) (*paymux.ProviderPayment, error) {
	const op = paymux.OpLookup
	if req.Reference != "" {
		params := &stripeapi.PaymentIntentParams{}
		params.AddExpand("latest_charge")
		rec, _ := p.prepare(ctx, &params.Params, "")
		pi, err := p.api.PaymentIntents.Get(req.Reference, params)
		if err != nil {
			return nil, p.classify(op, rec, err)
		}
		return p.lookupResult(op, pi)
	}
	field, value := MetadataPaymentKey, req.PaymentKey
	if req.ProviderKey != "" {
		field, value = MetadataProviderKey, req.ProviderKey
	}
	if value == "" {
		return nil, p.invalid(op, "lookup needs a reference, a provider key or a payment key")
	}
	match := func(pi *stripeapi.PaymentIntent) bool {
		if pi.Metadata[field] != value {
			return false
		}
		// Both keys given: the attempt must also belong to this payment.
		return req.PaymentKey == "" || field == MetadataPaymentKey || pi.Metadata[MetadataPaymentKey] == req.PaymentKey
	}

	sp := &stripeapi.PaymentIntentSearchParams{}
	sp.Query = fmt.Sprintf("metadata['%s']:'%s'", field, escapeSearch(value))
	sp.Limit = stripeapi.Int64(100)
	sp.AddExpand("data.latest_charge")
	rec, cctx := p.prepare(ctx, nil, "")
	sp.Context = cctx
	var found []*stripeapi.PaymentIntent
	it := p.api.PaymentIntents.Search(sp)
	for it.Next() {
		if pi := it.PaymentIntent(); match(pi) {
			found = append(found, pi)
		}
	}
	if err := it.Err(); err != nil {
		return nil, p.classify(op, rec, err)
	}
	if len(found) == 0 {
		lp := &stripeapi.PaymentIntentListParams{}
		lp.Limit = stripeapi.Int64(100)
		since := p.now().Add(-p.window)
		if !req.AttemptStartedAt.IsZero() {
			// Only intents created after the attempt began can be it; ten
			// minutes of slack cover clock skew between us and Stripe.
			since = req.AttemptStartedAt.Add(-10 * time.Minute)
		}
		lp.CreatedRange = &stripeapi.RangeQueryParams{GreaterThanOrEqual: since.Unix()}
		lp.AddExpand("data.latest_charge")
		rec, cctx := p.prepare(ctx, nil, "")
		lp.Context = cctx
		li := p.api.PaymentIntents.List(lp)
		seen, complete := 0, true
		for li.Next() {
			if pi := li.PaymentIntent(); match(pi) {
				found = append(found, pi)
			}
			seen++
			if seen >= 100*p.pages {
				complete = !li.Meta().HasMore
				break
			}
		}
		if err := li.Err(); err != nil {
			return nil, p.classify(op, rec, err)
		}
		if len(found) == 0 {
			if !complete {
				return nil, &paymux.ProviderError{Provider: p.name, Operation: op, Kind: paymux.KindOutcomeUnknown,
					Code: "lookup_incomplete", Message: fmt.Sprintf("no PaymentIntent for %s in search or the newest %d", field, seen)}
			}
			return nil, &paymux.ProviderError{Provider: p.name, Operation: op, Kind: paymux.KindNotFound,
				Code: "resource_missing", Message: "no PaymentIntent with " + field + " " + paymux.Redact(value)}
		}
	}
	return p.lookupResult(op, best(found))
}

func (p *Provider) lookupResult(op paymux.Operation, pi *stripeapi.PaymentIntent) (*paymux.ProviderPayment, error) {
	res, err := p.fromIntent(pi)
	if err != nil {
		return nil, p.unknown(op, err)
	}
	return res, nil
}

// best picks, among several attempts for one key, the one that went
// furthest, then the newest: a later step-up attempt that succeeded beats
// the declined attempt before it.
func best(pis []*stripeapi.PaymentIntent) *stripeapi.PaymentIntent {
	rank := func(s stripeapi.PaymentIntentStatus) int {
		switch s {
		case stripeapi.PaymentIntentStatusSucceeded:
			return 5
		case stripeapi.PaymentIntentStatusRequiresCapture:
			return 4
		case stripeapi.PaymentIntentStatusProcessing:
			return 3
		case stripeapi.PaymentIntentStatusRequiresAction, stripeapi.PaymentIntentStatusRequiresConfirmation:
			return 2
		case stripeapi.PaymentIntentStatusCanceled:
			return 1
		}
		return 0
	}
	sort.SliceStable(pis, func(i, j int) bool {
		if ri, rj := rank(pis[i].Status), rank(pis[j].Status); ri != rj {
			return ri > rj
		}
		return pis[i].Created > pis[j].Created
	})
	return pis[0]
}

// fromIntent maps a PaymentIntent onto paymux's view.
func (p *Provider) fromIntent(pi *stripeapi.PaymentIntent) (*paymux.ProviderPayment, error) {
	if pi == nil || pi.ID == "" {
		return nil, errors.New("stripe: response without a PaymentIntent")
	}
	cur := paymux.Currency(strings.ToUpper(string(pi.Currency)))
	conv := func(a int64) int64 { return fromStripeAmount(a, cur) }
	res := &paymux.ProviderPayment{
		Reference: pi.ID,
		Amount:    paymux.Money{Amount: conv(pi.Amount), Currency: cur},
		UpdatedAt: p.now(),
	}
	var refunded int64
	if ch := pi.LatestCharge; ch != nil {
		refunded = ch.AmountRefunded
		if ch.Refunds != nil {
			for _, r := range ch.Refunds.Data {
				res.Refunds = append(res.Refunds, paymux.ProviderRefund{Reference: r.ID, Amount: conv(r.Amount), Status: string(r.Status)})
			}
		}
	}
	switch pi.Status {
	case stripeapi.PaymentIntentStatusRequiresCapture:
		res.Status = paymux.StatusAuthorized
		res.Authorized = conv(pi.AmountCapturable)
	case stripeapi.PaymentIntentStatusSucceeded:
		res.Status = paymux.StatusCaptured
		res.Captured = conv(pi.AmountReceived)
		res.Authorized = max(conv(pi.Amount), res.Captured)
		if refunded > 0 {
			res.Status = paymux.StatusRefunded
			res.Refunded = conv(refunded)
		}
	case stripeapi.PaymentIntentStatusRequiresAction:
		res.Status = paymux.StatusRequiresAction
		res.NextAction = nextAction(pi)
	case stripeapi.PaymentIntentStatusProcessing, stripeapi.PaymentIntentStatusRequiresConfirmation:
		res.Status = paymux.StatusPending
	case stripeapi.PaymentIntentStatusCanceled:
		res.Status = paymux.StatusVoided
		if pi.AmountReceived > 0 {
			// A partially captured intent reports canceled for the rest.
			res.Status = paymux.StatusCaptured
			res.Captured = conv(pi.AmountReceived)
		}
	case stripeapi.PaymentIntentStatusRequiresPaymentMethod:
		// paymux always confirms on create, so an intent back at this state
		// was declined (or failed 3-D Secure) and cannot proceed.
		res.Status = paymux.StatusFailed
		if e := pi.LastPaymentError; e != nil {
			res.DeclineCode = string(e.DeclineCode)
			if res.DeclineCode == "" {
				res.DeclineCode = string(e.Code)
			}
		}
	default:
		return nil, fmt.Errorf("stripe: PaymentIntent %s has unknown status %q", pi.ID, pi.Status)
	}
	return res, nil
}

// nextAction turns Stripe's next_action into paymux's. Stripe.js handles
// use_stripe_sdk; its stripe_js URL, when the API gives one, is a redirect
// the shop can also use.
func nextAction(pi *stripeapi.PaymentIntent) *paymux.NextAction {
	na := pi.NextAction
	if na == nil {
		return &paymux.NextAction{Type: "three_ds"}
	}
	if na.RedirectToURL != nil && na.RedirectToURL.URL != "" {
		return &paymux.NextAction{Type: "redirect", RedirectURL: na.RedirectToURL.URL}
	}
	out := &paymux.NextAction{Type: "three_ds"}
	if pi.LastResponse != nil && len(pi.LastResponse.RawJSON) > 0 {
		var raw struct {
			NextAction struct {
				UseStripeSDK struct {
					StripeJS json.RawMessage `json:"stripe_js"`
				} `json:"use_stripe_sdk"`
			} `json:"next_action"`
		}
		if json.Unmarshal(pi.LastResponse.RawJSON, &raw) == nil {
			var s string
			if json.Unmarshal(raw.NextAction.UseStripeSDK.StripeJS, &s) == nil && strings.HasPrefix(s, "http") {
				out.RedirectURL = s
			}
		}
	}
	return out
}

func (p *Provider) declineFromIntent(op paymux.Operation, pi *stripeapi.PaymentIntent) error {
	code, decline := "card_declined", ""
	msg := "payment intent " + pi.ID + " requires a new payment method"
	if e := pi.LastPaymentError; e != nil {
		if e.Code != "" {
			code = string(e.Code)
		}
		decline = string(e.DeclineCode)
		if e.Msg != "" {
			msg = e.Msg
		}
	}
	c, deciding := p.lookupCodes(op, "", code, decline)
	if !deciding {
		c = paymux.Classification{Kind: paymux.KindHardDecline, Decision: paymux.DecisionStop}
	}
	return &paymux.ProviderError{Provider: p.name, Operation: op, Kind: c.Kind, Code: code, DeclineCode: decline,
		HTTPStatus: http.StatusOK, Message: paymux.Redact(msg), Reference: pi.ID}
}

// prepare sets the context and idempotency key of a call and returns the
// record the transport fills in.
func (p *Provider) prepare(ctx context.Context, params *stripeapi.Params, key string) (*callRecord, context.Context) {
	rec := &callRecord{}
	cctx := withRecord(ctx, rec)
	if params != nil {
		params.Context = cctx
		if key != "" {
			params.SetIdempotencyKey(key)
		}
	}
	return rec, cctx
}

func (p *Provider) invalid(op paymux.Operation, msg string) error {
	return &paymux.ProviderError{Provider: p.name, Operation: op, Kind: paymux.KindInvalidRequest, Code: "paymux_invalid_request", Message: msg}
}

func (p *Provider) unknown(op paymux.Operation, err error) error {
	return &paymux.ProviderError{Provider: p.name, Operation: op, Kind: paymux.KindOutcomeUnknown, Code: "invalid_response", Message: paymux.Redact(err.Error()), Err: err}
}

// escapeSearch escapes a value for a single-quoted Stripe search string.
func escapeSearch(s string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// slogLeveled routes stripe-go's logging to slog. Debug output (whole
// response bodies, with client secrets) is dropped.
type slogLeveled struct{ l *slog.Logger }

func (s slogLeveled) Debugf(string, ...interface{}) {}
func (s slogLeveled) Infof(format string, v ...interface{}) {
	s.l.Debug(paymux.Redact(fmt.Sprintf(format, v...)))
}
func (s slogLeveled) Warnf(format string, v ...interface{}) {
	s.l.Warn(paymux.Redact(fmt.Sprintf(format, v...)))
}
func (s slogLeveled) Errorf(format string, v ...interface{}) {
	// Declines are logged by stripe-go as errors; they are normal traffic.
	s.l.Info(paymux.Redact(fmt.Sprintf(format, v...)))
}
