package sim

import (
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

// SignatureHeader carries a webhook's signature:
// "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">". Several v1 values
// may be given (a secret being rotated); one match is enough.
const SignatureHeader = "Sim-Signature"

// DefaultTolerance is how far a signed timestamp may be from the clock.
const DefaultTolerance = 5 * time.Minute

// MaxWebhookBody is the largest body ParseWebhook reads.
const MaxWebhookBody = 1 << 20

// maxSignatures bounds the work an attacker can ask for with one header.
const maxSignatures = 8

// WebhookPayload is the JSON body of a sim webhook.
type WebhookPayload struct {
	ID        string           `json:"id"`
	Type      paymux.EventType `json:"type"`
	Created   int64            `json:"created"` // unix seconds
	Reference string           `json:"reference"`
	// PaymentKey echoes AuthorizeRequest.PaymentKey.
	PaymentKey string `json:"payment_key,omitempty"`
	// Amount is the event's amount in minor units: the authorised amount,
	// or the running captured / refunded total.
	Amount   int64           `json:"amount"`
	Currency paymux.Currency `json:"currency"`
	Status   paymux.Status   `json:"status,omitempty"`
	Success  bool            `json:"success"`
	Code     string          `json:"code,omitempty"`
}

// EncodeWebhook returns the body the sim sends for pl.
func EncodeWebhook(pl WebhookPayload) []byte {
	b, err := json.Marshal(pl)
	if err != nil {
		// Only strings and numbers: cannot fail.
		panic("sim: encode webhook: " + err.Error())
	}
	return b
}

// Signature returns the Sim-Signature header value for body signed with
// secret at t.
func Signature(secret paymux.Secret, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

// SignWebhook returns the headers of a webhook with body signed with secret
// at t, as the sim sends it. Shops use it to sign test webhooks.
func SignWebhook(secret paymux.Secret, body []byte, t time.Time) http.Header {
	h := make(http.Header, 2)
	h.Set("Content-Type", "application/json")
	h.Set(SignatureHeader, Signature(secret, body, t))
	return h
}

// SignWebhook signs body with the provider's webhook secret at t.
func (p *Provider) SignWebhook(body []byte, t time.Time) http.Header {
	return SignWebhook(p.cfg.WebhookSecret, body, t)
}

func mac(secret paymux.Secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret.Reveal()))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifySignature checks the Sim-Signature of body against secret at now,
// allowing tolerance either way. Its errors wrap paymux.ErrWebhookNotSigned,
// paymux.ErrWebhookBadSignature or paymux.ErrWebhookTooOld; they never
// contain the secret or the expected signature.
func VerifySignature(secret paymux.Secret, header http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	values := header.Values(SignatureHeader)
	if len(values) == 0 || strings.TrimSpace(strings.Join(values, "")) == "" {
		return fmt.Errorf("sim: %w: no %s header", paymux.ErrWebhookNotSigned, SignatureHeader)
	}
	if secret == "" {
		// Fail closed: without a secret nothing can be trusted.
		return fmt.Errorf("sim: %w: no webhook secret configured", paymux.ErrWebhookBadSignature)
	}
	var (
		ts   string
		sigs [maxSignatures][]byte
		n    int
	)
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			k, val, ok := strings.Cut(strings.TrimSpace(item), "=")
			if !ok {
				continue
			}
			switch k {
			case "t":
				if ts != "" && ts != val {
					return fmt.Errorf("sim: %w: several timestamps", paymux.ErrWebhookBadSignature)
				}
				ts = val
			case "v1":
				if n == maxSignatures {
					continue
				}
				if s, err := hex.DecodeString(val); err == nil && len(s) == sha256.Size {
					sigs[n] = s
					n++
				}
			}
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || ts != strconv.FormatInt(unix, 10) {
		return fmt.Errorf("sim: %w: malformed timestamp", paymux.ErrWebhookBadSignature)
	}
	if n == 0 {
		return fmt.Errorf("sim: %w: no v1 signature", paymux.ErrWebhookBadSignature)
	}
	want := mac(secret, ts, body)
	match := false
	for i := 0; i < n; i++ {
		// Check every one, in constant time each.
		if hmac.Equal(sigs[i], want) {
			match = true
		}
	}
	if !match {
		return fmt.Errorf("sim: %w", paymux.ErrWebhookBadSignature)
	}
	// Checked after the signature, so an attacker learns nothing about the
	// clock from unsigned requests.
	signed := time.Unix(unix, 0)
	if d := now.Sub(signed); d > tolerance || d < -tolerance {
		return fmt.Errorf("sim: %w: signed at %s, now %s", paymux.ErrWebhookTooOld, signed.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// ParseWebhook implements paymux.WebhookParser: it verifies the signature
// and timestamp over the exact body, then decodes the one event it carries.
func (p *Provider) ParseWebhook(ctx context.Context, header http.Header, body []byte) ([]paymux.Event, error) {
	if len(body) > MaxWebhookBody {
		return nil, fmt.Errorf("sim: %w", paymux.ErrWebhookTooLarge)
	}
	if err := VerifySignature(p.cfg.WebhookSecret, header, body, p.clock(), p.cfg.WebhookTolerance); err != nil {
		return nil, err
	}
	pl, ok := decodePayload(body)
	if !ok {
		if err := json.Unmarshal(body, &pl); err != nil {
			return nil, fmt.Errorf("sim: %w: %v", paymux.ErrWebhookMalformed, err)
		}
	}
	if pl.ID == "" || pl.Reference == "" || pl.Type == "" {
		return nil, fmt.Errorf("sim: %w: id, type and reference are required", paymux.ErrWebhookMalformed)
	}
	if pl.Amount < 0 || (pl.Currency != "" && !pl.Currency.Valid()) {
		return nil, fmt.Errorf("sim: %w: bad amount", paymux.ErrWebhookMalformed)
	}
	typ := pl.Type
	switch typ {
	case paymux.EventAuthorized, paymux.EventCaptured, paymux.EventRefunded, paymux.EventFailed,
		paymux.EventVoided, paymux.EventActionRequired, paymux.EventDisputeOpened,
		paymux.EventCaptureFailed, paymux.EventRefundFailed:
	default:
		typ = paymux.EventOther
	}
	return []paymux.Event{{
		Provider:    p.cfg.Name,
		ID:          pl.ID,
		Type:        typ,
		ProviderRef: pl.Reference,
		PaymentKey:  pl.PaymentKey,
		Amount:      paymux.Money{Amount: pl.Amount, Currency: pl.Currency},
		Success:     pl.Success,
		Code:        pl.Code,
		OccurredAt:  time.Unix(pl.Created, 0).UTC(),
		Raw:         append([]byte(nil), body...),
	}}, nil
}

// emit sends the webhooks one call caused.
func (p *Provider) emit(ev *events) {
	if ev.n == 0 || p.cfg.OnEvent == nil {
		return
	}
	now := p.clock()
	for i := 0; i < ev.n; i++ {
		e := &ev.ev[i]
		p.mu.Lock()
		id := p.newID("simevt_")
		p.mu.Unlock()
		body := EncodeWebhook(WebhookPayload{
			ID: id, Type: e.typ, Created: now.Unix(), Reference: e.ref, PaymentKey: e.key,
			Amount: e.amount.Amount, Currency: e.amount.Currency, Status: e.status, Success: e.success, Code: e.code,
		})
		var h http.Header
		if p.cfg.WebhookSecret != "" {
			h = SignWebhook(p.cfg.WebhookSecret, body, now)
		} else {
			h = http.Header{"Content-Type": {"application/json"}}
		}
		p.cfg.OnEvent(h, body)
	}
}

// SendEvent sends a webhook of type typ for the payment at ref through
// OnEvent, as if the provider had raised it (a dispute, say). It does not
// change the payment.
func (p *Provider) SendEvent(typ paymux.EventType, ref string) error {
	p.mu.Lock()
	pay := p.payment(ref)
	var e eventData
	if pay != nil {
		e = eventData{typ: typ, ref: pay.ref, key: pay.paymentKey, amount: pay.amount, success: true, status: pay.status}
	}
	p.mu.Unlock()
	if pay == nil {
		return p.notFound(paymux.OpLookup)
	}
	ev := events{n: 1}
	ev.ev[0] = e
	p.emit(&ev)
	return nil
}
