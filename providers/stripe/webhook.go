package stripe

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/paymux/paymux"
)

// DefaultTolerance is Stripe's: a signed timestamp more than five minutes
// from now is refused.
const DefaultTolerance = 300 * time.Second

// SignatureHeader is the name of Stripe's webhook signature header.
const SignatureHeader = "Stripe-Signature"

// ComputeSignature returns Stripe's v1 signature of body at t: lowercase hex
// of HMAC-SHA256 keyed by the whole secret string (whsec_ prefix included)
// over "<unix t>.<body>".
func ComputeSignature(t time.Time, body []byte, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(t.Unix(), 10)))
	mac.Write([]byte("."))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// SignHeader builds a Stripe-Signature value for body at t with one v1 entry
// per secret, as Stripe sends it while a secret is rolled. Tests and fakes
// use it to send webhooks a real endpoint would accept.
func SignHeader(t time.Time, body []byte, secrets ...string) string {
	var b strings.Builder
	b.WriteString("t=")
	b.WriteString(strconv.FormatInt(t.Unix(), 10))
	for _, s := range secrets {
		b.WriteString(",v1=")
		b.WriteString(ComputeSignature(t, body, s))
	}
	return b.String()
}

// verify checks header against body with every secret. Like stripe-go's
// parseSignatureHeader: parts are k=v, t must be an integer, only v1 entries
// count (v0 and unknown keys are ignored, non-hex v1 skipped).
func verify(header string, body []byte, secrets []paymux.Secret, now time.Time, tolerance time.Duration) error {
	if header == "" {
		return fmt.Errorf("%w: no %s header", paymux.ErrWebhookNotSigned, SignatureHeader)
	}
	var (
		ts   int64
		hasT bool
		sigs [][]byte
	)
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("%w: malformed %s header", paymux.ErrWebhookBadSignature, SignatureHeader)
		}
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("%w: malformed timestamp in %s", paymux.ErrWebhookBadSignature, SignatureHeader)
			}
			ts, hasT = n, true
		case "v1":
			if sig, err := hex.DecodeString(v); err == nil && len(sig) == sha256.Size {
				sigs = append(sigs, sig)
			}
		}
	}
	if !hasT {
		return fmt.Errorf("%w: no timestamp in %s", paymux.ErrWebhookBadSignature, SignatureHeader)
	}
	if len(sigs) == 0 {
		return fmt.Errorf("%w: no v1 signature", paymux.ErrWebhookBadSignature)
	}
	if len(secrets) == 0 {
		return fmt.Errorf("%w: no webhook secret configured", paymux.ErrWebhookBadSignature)
	}
	signed := make([]byte, 0, 21+len(body))
	signed = strconv.AppendInt(signed, ts, 10)
	signed = append(signed, '.')
	signed = append(signed, body...)
	match := false
	for _, s := range secrets {
		mac := hmac.New(sha256.New, []byte(s.Reveal()))
		mac.Write(signed)
		want := mac.Sum(nil)
		for _, sig := range sigs {
			// Check every pair, so timing says nothing about which matched.
			if hmac.Equal(want, sig) {
				match = true
			}
		}
	}
	if !match {
		return fmt.Errorf("%w: no v1 signature matches", paymux.ErrWebhookBadSignature)
	}
	// Signature first, then time: TooOld then means authentic but stale.
	// Both directions count, as in Stripe.net, so a skewed clock cannot
	// stretch the replay window.
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed %s from now", paymux.ErrWebhookTooOld, d.Truncate(time.Second))
	}
	return nil
}

// wireEvent holds the fields of a Stripe event paymux reads. Unknown fields
// are ignored, so events of any API version decode.
type wireEvent struct {
	ID         string `json:"id"`
	Object     string `json:"object"`
	Type       string `json:"type"`
	APIVersion string `json:"api_version"`
	Created    int64  `json:"created"`
	Data       struct {
		Object wireObject `json:"object"`
	} `json:"data"`
}

type wireObject struct {
	ID               string            `json:"id"`
	Object           string            `json:"object"`
	Amount           int64             `json:"amount"`
	AmountReceived   int64             `json:"amount_received"`
	AmountCapturable int64             `json:"amount_capturable"`
	AmountRefunded   int64             `json:"amount_refunded"`
	Currency         string            `json:"currency"`
	Status           string            `json:"status"`
	Metadata         map[string]string `json:"metadata"`
	// payment_intent and charge may be ids or expanded objects.
	PaymentIntent    json.RawMessage `json:"payment_intent"`
	Charge           json.RawMessage `json:"charge"`
	Reason           string          `json:"reason"`
	LastPaymentError *struct {
		Code        string `json:"code"`
		DeclineCode string `json:"decline_code"`
	} `json:"last_payment_error"`
	FailureCode string `json:"failure_code"`
}

// ParseWebhook implements paymux.WebhookParser: verify Stripe-Signature over
// the exact bytes, then normalise. It deliberately does not use
// stripe-go's ConstructEvent, whose API-version check refuses events from an
// account or endpoint on another version.
func (p *Provider) ParseWebhook(ctx context.Context, header http.Header, body []byte) ([]paymux.Event, error) {
	if err := verify(header.Get(SignatureHeader), body, p.secrets, p.now(), p.tolerance); err != nil {
		return nil, err
	}
	ev, err := normalise(p.name, body)
	if err != nil {
		return nil, err
	}
	return []paymux.Event{ev}, nil
}

func normalise(provider string, body []byte) (paymux.Event, error) {
	var w wireEvent
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&w); err != nil {
		return paymux.Event{}, fmt.Errorf("%w: %v", paymux.ErrWebhookMalformed, err)
	}
	if w.Object != "event" || w.ID == "" || w.Type == "" {
		return paymux.Event{}, fmt.Errorf("%w: not a Stripe event object", paymux.ErrWebhookMalformed)
	}
	o := &w.Data.Object
	cur := paymux.Currency(strings.ToUpper(o.Currency))
	amount := func(a int64) paymux.Money {
		if cur == "" {
			return paymux.Money{}
		}
		return paymux.Money{Amount: fromStripeAmount(a, cur), Currency: cur}
	}
	ev := paymux.Event{
		Provider: provider, ID: w.ID, Type: paymux.EventOther, Success: true,
		PaymentKey: o.Metadata[MetadataPaymentKey], Raw: body,
	}
	if w.Created > 0 {
		ev.OccurredAt = time.Unix(w.Created, 0).UTC()
	}
	if o.Object == "payment_intent" {
		ev.ProviderRef = o.ID
	} else {
		ev.ProviderRef = idOf(o.PaymentIntent)
	}
	switch w.Type {
	case "payment_intent.succeeded":
		ev.Type, ev.Amount = paymux.EventCaptured, amount(o.AmountReceived)
	case "payment_intent.amount_capturable_updated":
		ev.Type, ev.Amount = paymux.EventAuthorized, amount(o.AmountCapturable)
	case "payment_intent.payment_failed":
		ev.Type, ev.Success, ev.Amount = paymux.EventFailed, false, amount(o.Amount)
		// A failure names only its own attempt: matched by key, the decline
		// of an attempt paymux already replaced (a step-up to 3-D Secure)
		// would fail the payment. Unknown references are settled by Sync.
		ev.PaymentKey = ""
		if e := o.LastPaymentError; e != nil {
			ev.Code = e.DeclineCode
			if ev.Code == "" {
				ev.Code = e.Code
			}
		}
	case "payment_intent.canceled":
		ev.Type, ev.Amount = paymux.EventVoided, amount(o.Amount)
	case "payment_intent.requires_action":
		ev.Type, ev.Amount = paymux.EventActionRequired, amount(o.Amount)
	case "charge.refunded":
		// amount_refunded is the charge's running total; paymux keeps the
		// largest total it has seen, so events in any order converge.
		ev.Type, ev.Amount = paymux.EventRefunded, amount(o.AmountRefunded)
	case "charge.dispute.created":
		ev.Type, ev.Amount = paymux.EventDisputeOpened, amount(o.Amount)
		ev.PaymentKey = "" // a dispute's metadata is its own
	default:
		if o.Amount > 0 {
			ev.Amount = amount(o.Amount)
		}
	}
	if ev.Type != paymux.EventOther && ev.ProviderRef == "" && ev.PaymentKey == "" {
		return paymux.Event{}, fmt.Errorf("%w: %s without a payment intent", paymux.ErrWebhookMalformed, w.Type)
	}
	return ev, nil
}

// idOf reads an id from a field that is either "id" or {"id": ...}.
func idOf(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var o struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(raw, &o) == nil {
		return o.ID
	}
	return ""
}

// HintReference implements paymux.WebhookHinter: from an unverified body it
// names the PaymentIntent the event is about, which paymux only ever uses to
// ask Stripe itself (Sync). Nothing in the body is trusted.
func (p *Provider) HintReference(_ http.Header, body []byte) (string, bool) {
	var w wireEvent
	if json.Unmarshal(body, &w) != nil || w.Object != "event" {
		return "", false
	}
	ref := idOf(w.Data.Object.PaymentIntent)
	if w.Data.Object.Object == "payment_intent" {
		ref = w.Data.Object.ID
	}
	if !strings.HasPrefix(ref, "pi_") || len(ref) > 255 {
		return "", false
	}
	for _, c := range ref {
		if !(c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return "", false
		}
	}
	return ref, true
}
