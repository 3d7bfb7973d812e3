// Package adyen is the paymux adapter for Adyen's Checkout API v71, spoken
// over net/http and encoding/json (the Adyen Go SDK is not available here).
//
// It authorises with POST /payments (automatic or manual capture), captures
// (partially) with POST /payments/{pspReference}/captures, refunds with
// /refunds and cancels with /cancels. Every call carries X-API-Key and the
// attempt's provider key as Idempotency-Key. The paymux key is the payment's
// merchant reference, so webhooks find the payment even when the
// authorisation's answer was lost.
//
// Adyen Checkout has no call that returns a card payment's state, so Lookup
// answers Unimplemented unless Config.Lookup plugs in a source of truth (a
// shop's own record of Adyen's webhooks or reports; adyentest's ledger in
// tests). A payment whose outcome is unknown is settled by the AUTHORISATION
// webhook (which carries the merchant reference) or by a retry of the same
// attempt with the same Idempotency-Key, which Adyen answers from its
// idempotency store without authorising again.
package adyen

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/paymux/paymux"
)

// DefaultBaseURL is the Checkout API v71 test endpoint.
const DefaultBaseURL = "https://checkout-test.adyen.com/v71"

// LiveBaseURL returns the live Checkout API v71 endpoint for the account's
// live URL prefix (Customer Area > Developers > API URLs).
func LiveBaseURL(prefix string) string {
	return "https://" + prefix + "-checkout-live.adyenpayments.com/checkout/v71"
}

// Config configures the adapter.
type Config struct {
	// Name is the provider name in routes and payments; default "adyen".
	Name string
	// APIKey is the web service user's API key, sent as X-API-Key.
	APIKey paymux.Secret
	// MerchantAccount is the merchant account payments are made on.
	MerchantAccount string
	// HMACKey is the webhook HMAC key as the Customer Area shows it (hex).
	// Without it every webhook is refused.
	HMACKey paymux.Secret
	// BaseURL overrides the endpoint (tests point it at adyentest). Empty
	// means LiveBaseURL(LivePrefix) when LivePrefix is set, else the test
	// endpoint.
	BaseURL    string
	LivePrefix string
	// ReturnURL is used when a request has none; Adyen requires one for
	// redirects and 3-D Secure.
	ReturnURL string
	// Lookup, when set, answers Lookup: Adyen Checkout offers no call that
	// returns a payment's state. Errors it returns should be
	// *paymux.ProviderError; Provider and Operation are filled in.
	Lookup     func(ctx context.Context, req *paymux.LookupRequest) (*paymux.ProviderPayment, error)
	HTTPClient *http.Client
	Logger     *slog.Logger
	Clock      func() time.Time
}

// Provider is the Adyen adapter.
type Provider struct {
	name            string
	apiKey          paymux.Secret
	merchantAccount string
	hmacKey         []byte
	baseURL         string
	returnURL       string
	lookup          func(ctx context.Context, req *paymux.LookupRequest) (*paymux.ProviderPayment, error)
	http            *http.Client
	log             *slog.Logger
	clock           func() time.Time
}

var (
	_ paymux.Provider         = (*Provider)(nil)
	_ paymux.WebhookParser    = (*Provider)(nil)
	_ paymux.WebhookResponder = (*Provider)(nil)
	_ paymux.DecisionTabler   = (*Provider)(nil)
)

// New checks cfg and returns the adapter.
func New(cfg Config) (*Provider, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("adyen: APIKey is required")
	}
	if cfg.MerchantAccount == "" {
		return nil, errors.New("adyen: MerchantAccount is required")
	}
	p := &Provider{
		name:            cfg.Name,
		apiKey:          cfg.APIKey,
		merchantAccount: cfg.MerchantAccount,
		baseURL:         strings.TrimRight(cfg.BaseURL, "/"),
		returnURL:       cfg.ReturnURL,
		lookup:          cfg.Lookup,
		http:            cfg.HTTPClient,
		log:             cfg.Logger,
		clock:           cfg.Clock,
	}
	if cfg.HMACKey != "" {
		k, err := hex.DecodeString(strings.TrimSpace(cfg.HMACKey.Reveal()))
		if err != nil || len(k) == 0 {
			// Never echo the key or the decoder's message (it quotes bytes).
			return nil, errors.New("adyen: HMACKey must be the hex key from the Customer Area")
		}
		p.hmacKey = k
	}
	if p.name == "" {
		p.name = "adyen"
	}
	if p.baseURL == "" {
		p.baseURL = DefaultBaseURL
		if cfg.LivePrefix != "" {
			p.baseURL = LiveBaseURL(cfg.LivePrefix)
		}
	}
	if p.http == nil {
		p.http = &http.Client{Timeout: 60 * time.Second}
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.clock == nil {
		p.clock = time.Now
	}
	return p, nil
}

// Name implements paymux.Provider.
func (p *Provider) Name() string { return p.name }

// Capabilities implements paymux.Provider. Partial captures need Adyen to
// enable multiple partial captures on the merchant account.
func (p *Provider) Capabilities() paymux.Capabilities {
	return paymux.Capabilities{
		Methods:        []paymux.MethodType{paymux.MethodCard, paymux.MethodApplePay, paymux.MethodGooglePay, paymux.MethodIDEAL, paymux.MethodSEPA, paymux.MethodPayPal},
		ManualCapture:  true,
		PartialCapture: true,
		PartialRefund:  true,
		MultipleRefund: true,
		Void:           true,
	}
}

// WebhookAck implements paymux.WebhookResponder: Adyen's documented answer.
func (p *Provider) WebhookAck() (string, []byte) {
	return "text/plain; charset=utf-8", []byte("[accepted]")
}

// Authorize implements paymux.Provider with POST /payments.
func (p *Provider) Authorize(ctx context.Context, req *paymux.AuthorizeRequest) (*paymux.ProviderPayment, error) {
	op := paymux.OpAuthorize
	if err := req.Amount.Validate(); err != nil {
		return nil, p.fail(op, paymux.KindInvalidRequest, "amount", 0, "invalid amount", err)
	}
	method, stored, err := paymentMethod(req.Method)
	if err != nil {
		return nil, p.fail(op, paymux.KindInvalidRequest, "payment_method", 0, err.Error(), err)
	}
	reference := req.PaymentKey
	if reference == "" {
		reference = req.PaymentID
	}
	body := PaymentRequest{
		MerchantAccount: p.merchantAccount,
		Reference:       reference,
		Amount:          Amount{Currency: string(req.Amount.Currency), Value: req.Amount.Amount},
		PaymentMethod:   method,
		ReturnURL:       req.ReturnURL,
		CountryCode:     req.Country,
		ShopperEmail:    req.Customer.Email,
		ShopperIP:       req.Customer.IP,
		ShopperRef:      req.Customer.ID,
		Channel:         "Web",
	}
	if body.ReturnURL == "" {
		body.ReturnURL = p.returnURL
	}
	if stored {
		if req.Customer.ID == "" {
			err := errors.New("a stored payment method needs Customer.ID (Adyen's shopperReference)")
			return nil, p.fail(op, paymux.KindInvalidRequest, "payment_method", 0, err.Error(), err)
		}
		body.ShopperInteraction = "ContAuth"
		body.RecurringProcessingModel = "CardOnFile"
	}
	if req.Capture == paymux.CaptureManual {
		body.AdditionalData = map[string]string{"manualCapture": "true"}
	} else {
		zero := 0 // capture at once, whatever the account's capture delay
		body.CaptureDelayHours = &zero
	}
	if req.ThreeDS {
		body.AuthenticationData = &AuthenticationData{AttemptAuthentication: "always"}
	}
	body.Metadata = p.metadata(req.PaymentID, req.Metadata)
	if len(body.ShopperRef) < 3 && !stored {
		body.ShopperRef = "" // Adyen wants 3 to 256 characters; it is optional here
	}
	var resp PaymentResponse
	if err := p.post(ctx, op, "/payments", req.ProviderKey, &body, &resp); err != nil {
		return nil, err
	}
	return p.paymentResult(op, req.Amount, req.Capture, &resp)
}

// Adyen's documented metadata limits: 20 entries, keys up to 20 characters,
// values up to 80. Going over them is a 422 that would fail the payment, so
// entries that do not fit are dropped (keys) or shortened (values).
const (
	maxMetadataEntries = 20
	maxMetadataKey     = 20
	maxMetadataValue   = 80
)

func (p *Provider) metadata(paymentID string, in map[string]string) map[string]string {
	if len(in) == 0 && paymentID == "" {
		return nil
	}
	out := make(map[string]string, min(len(in)+1, maxMetadataEntries))
	if paymentID != "" {
		out["paymuxPaymentId"] = paymentID
	}
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	sort.Strings(keys) // which entries survive must not depend on map order
	dropped := 0
	for _, k := range keys {
		v := in[k]
		if len(k) > maxMetadataKey || len(out) >= maxMetadataEntries || k == "paymuxPaymentId" {
			dropped++
			continue
		}
		if len(v) > maxMetadataValue {
			v = v[:maxMetadataValue]
		}
		out[k] = v
	}
	if dropped > 0 {
		p.log.Warn("adyen: metadata entries dropped to fit Adyen's limits", "dropped", dropped)
	}
	return out
}

// paymentMethod turns a paymux method into Adyen's paymentMethod object.
// The token is either the paymentMethod object the Adyen web or mobile
// component produced (JSON with encrypted fields, or a wallet token), or a
// storedPaymentMethodId. Unencrypted card fields are refused: card data
// never passes through paymux.
func paymentMethod(m paymux.PaymentMethod) (json.RawMessage, bool, error) {
	tok := strings.TrimSpace(m.Token)
	if tok == "" {
		return nil, false, errors.New("payment method token is empty")
	}
	if strings.HasPrefix(tok, "{") {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(tok), &obj); err != nil {
			return nil, false, errors.New("payment method token is not a JSON object")
		}
		for _, f := range []string{"number", "cvc", "expiryMonth", "expiryYear"} {
			if _, ok := obj[f]; ok {
				return nil, false, fmt.Errorf("%w: unencrypted %q in the payment method", paymux.ErrCardData, f)
			}
		}
		for f, v := range obj {
			var str string
			// Adyen's test mode takes "test_" plus a plain card number in
			// the encrypted fields: that is card data in the clear.
			if json.Unmarshal(v, &str) == nil && paymux.LooksLikeCardNumber(strings.TrimPrefix(str, "test_")) {
				return nil, false, fmt.Errorf("%w: a card number in %q", paymux.ErrCardData, f)
			}
		}
		if _, ok := obj["type"]; !ok {
			return nil, false, errors.New("payment method object has no type")
		}
		return json.RawMessage(tok), false, nil
	}
	if paymux.LooksLikeCardNumber(tok) {
		return nil, false, paymux.ErrCardData
	}
	typ := "scheme"
	if m.Type != "" && m.Type != paymux.MethodCard {
		typ = string(m.Type)
	}
	b, err := json.Marshal(map[string]string{"type": typ, "storedPaymentMethodId": tok})
	return b, true, err
}

// paymentResult maps a /payments answer to paymux's view. Refusals are
// errors whose DeclineCode is the refusalReasonCode, so the decision table
// decides what follows.
func (p *Provider) paymentResult(op paymux.Operation, asked paymux.Money, mode paymux.CaptureMode, r *PaymentResponse) (*paymux.ProviderPayment, error) {
	res := &paymux.ProviderPayment{Reference: r.PSPReference, Amount: asked, UpdatedAt: p.clock()}
	amount := asked.Amount
	if r.Amount != nil && r.Amount.Currency == string(asked.Currency) && r.Amount.Value > 0 {
		amount = r.Amount.Value // a partial authorisation gives less
	}
	switch r.ResultCode {
	case "Authorised", "PartiallyAuthorised":
		res.Authorized = amount
		res.Status = paymux.StatusAuthorized
		if mode != paymux.CaptureManual {
			// captureDelayHours 0: Adyen captures right after authorising.
			res.Status = paymux.StatusCaptured
			res.Captured = amount
		}
		return res, nil
	case "Pending", "Received", "AuthenticationFinished", "AuthenticationNotRequired":
		// The final result arrives by webhook.
		res.Status = paymux.StatusPending
		return res, nil
	case "RedirectShopper", "IdentifyShopper", "ChallengeShopper", "PresentToShopper":
		res.Status = paymux.StatusRequiresAction
		res.NextAction = nextAction(r)
		return res, nil
	case "Refused", "Error", "Cancelled":
		kind := paymux.KindSoftDecline
		decline := ""
		if r.RefusalReasonCode != "" {
			decline = refusalCode(r.RefusalReasonCode)
			kind = refusalKind(r.RefusalReasonCode)
		} else if r.ResultCode == "Cancelled" {
			kind = paymux.KindHardDecline
		}
		msg := r.RefusalReason
		if msg == "" {
			msg = r.ResultCode
		}
		return nil, &paymux.ProviderError{
			Provider: p.name, Operation: op, Kind: kind, Code: r.ResultCode, DeclineCode: decline,
			HTTPStatus: http.StatusOK, Message: msg, Reference: r.PSPReference, Err: &RefusalError{PSPReference: r.PSPReference, ResultCode: r.ResultCode, RefusalReason: r.RefusalReason, RefusalReasonCode: r.RefusalReasonCode, RefusalReasonRaw: r.AdditionalData["refusalReasonRaw"]},
		}
	}
	// A resultCode nobody classified: Adyen answered 200, so it may have
	// authorised. Stop and reconcile.
	return nil, p.fail(op, paymux.KindOutcomeUnknown, CodeBadResponse, http.StatusOK, "unknown resultCode "+fmt.Sprintf("%q", r.ResultCode), nil)
}

func nextAction(r *PaymentResponse) *paymux.NextAction {
	na := &paymux.NextAction{Type: "redirect"}
	if r.ResultCode == "IdentifyShopper" || r.ResultCode == "ChallengeShopper" {
		na.Type = "three_ds"
	}
	if r.Action != nil {
		if r.Action.Type == "threeDS2" {
			na.Type = "three_ds"
		}
		na.RedirectURL = r.Action.URL
		if r.Action.Method != "" && r.Action.Method != "GET" {
			na.Method = r.Action.Method
		}
		// The shop's Adyen component needs the whole action (3DS2 token,
		// payment data), passed through as Adyen sent it.
		if raw, err := json.Marshal(r.Action); err == nil {
			na.Data = raw
		}
	}
	return na
}

// RefusalError is the raw refusal behind a decline, for errors.As.
type RefusalError struct {
	PSPReference      string
	ResultCode        string
	RefusalReason     string
	RefusalReasonCode string
	RefusalReasonRaw  string
}

func (e *RefusalError) Error() string {
	return fmt.Sprintf("adyen: %s (refusalReasonCode %s: %s)", e.ResultCode, e.RefusalReasonCode, paymux.Redact(e.RefusalReason))
}

// Capture implements paymux.Provider with POST /payments/{pspReference}/captures.
// Captured is this capture's amount: Adyen does not report the total.
func (p *Provider) Capture(ctx context.Context, req *paymux.CaptureRequest) (*paymux.ProviderPayment, error) {
	mr, err := p.modify(ctx, paymux.OpCapture, req.Reference, "captures", req.ProviderKey, &req.Amount)
	if err != nil {
		return nil, err
	}
	return &paymux.ProviderPayment{Reference: mr.PaymentPSPReference, Status: paymux.StatusCaptured, Amount: req.Amount, Captured: req.Amount.Amount, UpdatedAt: p.clock()}, nil
}

// Refund implements paymux.Provider with POST /payments/{pspReference}/refunds.
func (p *Provider) Refund(ctx context.Context, req *paymux.RefundRequest) (*paymux.ProviderPayment, error) {
	mr, err := p.modify(ctx, paymux.OpRefund, req.Reference, "refunds", req.ProviderKey, &req.Amount)
	if err != nil {
		return nil, err
	}
	// Refunded stays 0 ("not reported"): Adyen answers with this refund's
	// amount only, not the payment's total; Refunds carries this one.
	return &paymux.ProviderPayment{
		Reference: mr.PaymentPSPReference, Status: paymux.StatusRefunded, Amount: req.Amount,
		RefundReference: mr.PSPReference,
		Refunds:         []paymux.ProviderRefund{{Reference: mr.PSPReference, Amount: req.Amount.Amount, Status: "pending"}},
		UpdatedAt:       p.clock(),
	}, nil
}

// Void implements paymux.Provider with POST /payments/{pspReference}/cancels.
func (p *Provider) Void(ctx context.Context, req *paymux.VoidRequest) (*paymux.ProviderPayment, error) {
	mr, err := p.modify(ctx, paymux.OpVoid, req.Reference, "cancels", req.ProviderKey, nil)
	if err != nil {
		return nil, err
	}
	return &paymux.ProviderPayment{Reference: mr.PaymentPSPReference, Status: paymux.StatusVoided, UpdatedAt: p.clock()}, nil
}

// modify sends a capture, refund or cancel. Adyen answers "received": the
// request is accepted and its outcome arrives as a CAPTURE / REFUND /
// CANCELLATION webhook (success=false, CAPTURE_FAILED, REFUND_FAILED when it
// fails later).
func (p *Provider) modify(ctx context.Context, op paymux.Operation, pspRef, what, key string, amount *paymux.Money) (*ModificationResponse, error) {
	if pspRef == "" {
		return nil, p.fail(op, paymux.KindInvalidRequest, "reference", 0, "no pspReference to "+string(op), nil)
	}
	body := ModificationRequest{MerchantAccount: p.merchantAccount, Reference: key}
	if amount != nil {
		if err := amount.Validate(); err != nil {
			return nil, p.fail(op, paymux.KindInvalidRequest, "amount", 0, "invalid amount", err)
		}
		body.Amount = &Amount{Currency: string(amount.Currency), Value: amount.Amount}
	}
	var mr ModificationResponse
	if err := p.post(ctx, op, "/payments/"+url.PathEscape(pspRef)+"/"+what, key, &body, &mr); err != nil {
		return nil, err
	}
	if !strings.EqualFold(mr.Status, "received") {
		return nil, p.fail(op, paymux.KindOutcomeUnknown, CodeBadResponse, http.StatusOK, fmt.Sprintf("unexpected modification status %q", mr.Status), nil)
	}
	if mr.PaymentPSPReference == "" {
		mr.PaymentPSPReference = pspRef
	}
	return &mr, nil
}

// Lookup implements paymux.Provider. Adyen Checkout v71 has no endpoint that
// returns a card payment's state by pspReference or merchant reference, and
// replaying POST /payments is only documented as safe with the original
// request, which Lookup does not have (a shortened replay for a key Adyen
// never saw would be a new authorisation request). So, without
// Config.Lookup, Lookup answers Unimplemented, and a payment whose outcome
// is unknown stays unknown until the AUTHORISATION webhook arrives (it
// carries the merchant reference, the paymux key) or the same attempt is
// retried with the same Idempotency-Key.
func (p *Provider) Lookup(ctx context.Context, req *paymux.LookupRequest) (*paymux.ProviderPayment, error) {
	if p.lookup == nil {
		return nil, p.fail(paymux.OpLookup, paymux.KindUnimplemented, CodeLookupUnsupported, 0,
			"Adyen Checkout has no payment lookup; the state arrives by webhook", paymux.ErrUnimplemented)
	}
	res, err := p.lookup(ctx, req)
	if err != nil {
		var pe *paymux.ProviderError
		if !errors.As(err, &pe) {
			return nil, p.fail(paymux.OpLookup, paymux.KindOutcomeUnknown, "lookup", 0, "lookup source failed", err)
		}
		if pe.Provider == "" {
			pe.Provider = p.name
		}
		if pe.Operation == "" {
			pe.Operation = paymux.OpLookup
		}
		return nil, err
	}
	return res, nil
}
