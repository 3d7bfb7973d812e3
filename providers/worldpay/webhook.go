package worldpay

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"net/http"
	"strings"
	"time"

	"github.com/paymux/paymux"
)

// SignatureHeader is the header Worldpay signs events in.
const SignatureHeader = "Event-Signature"

const maxWebhook = 1 << 20

// hashFunctions are the hashFunction values accepted. Worldpay's Events
// signature page lists SHA256 as the one currently supported; nothing else
// is accepted, so an attacker cannot pick a weaker hash.
var hashFunctions = map[string]func() hash.Hash{
	"SHA256": sha256.New,
}

// Sign returns an Event-Signature value for body: keyID/SHA256/signature,
// encoded as enc. Tests and fakes use it; so can shops testing their own
// webhook endpoints.
func Sign(keyID string, secret paymux.Secret, body []byte, enc SignatureEncoding) string {
	m := hmac.New(sha256.New, []byte(secret.Reveal()))
	m.Write(body)
	return keyID + "/SHA256/" + encode(m.Sum(nil), enc)
}

func encode(b []byte, enc SignatureEncoding) string {
	if enc == EncodingBase64 {
		return base64.StdEncoding.EncodeToString(b)
	}
	return hex.EncodeToString(b)
}

func decode(s string, enc SignatureEncoding) ([]byte, error) {
	if enc == EncodingBase64 {
		return base64.StdEncoding.DecodeString(s)
	}
	return hex.DecodeString(s)
}

// ParseWebhook implements paymux.WebhookParser. It verifies the
// Event-Signature over the exact body and only then reads the body.
// Worldpay's events carry no signed timestamp, so there is no age check; the
// event id de-duplicates replays.
func (p *Provider) ParseWebhook(ctx context.Context, header http.Header, body []byte) ([]paymux.Event, error) {
	if len(body) > maxWebhook {
		return nil, fmt.Errorf("worldpay: %w", paymux.ErrWebhookTooLarge)
	}
	if err := p.verify(header.Values(SignatureHeader), body); err != nil {
		return nil, err
	}
	ev, err := p.normalise(body)
	if err != nil {
		return nil, err
	}
	return []paymux.Event{ev}, nil
}

func (p *Provider) verify(values []string, body []byte) error {
	var entries []string
	for _, v := range values {
		for _, e := range strings.Split(v, ",") {
			if e = strings.TrimSpace(e); e != "" {
				entries = append(entries, e)
			}
		}
	}
	if len(entries) == 0 {
		return fmt.Errorf("worldpay: %w: no %s header", paymux.ErrWebhookNotSigned, SignatureHeader)
	}
	if len(p.cfg.EventSecrets) == 0 {
		return fmt.Errorf("worldpay: %w: no event secrets configured", paymux.ErrWebhookBadSignature)
	}
	known := false
	for _, e := range entries {
		keyID, rest, ok1 := strings.Cut(e, "/")
		fn, sig, ok2 := strings.Cut(rest, "/")
		if !ok1 || !ok2 {
			continue
		}
		secret, ok := p.cfg.EventSecrets[keyID]
		if !ok {
			continue
		}
		known = true
		newHash, ok := hashFunctions[strings.ToUpper(fn)]
		if !ok {
			continue
		}
		got, err := decode(sig, p.cfg.SignatureEncoding)
		if err != nil {
			continue
		}
		m := hmac.New(newHash, []byte(secret.Reveal()))
		m.Write(body)
		if hmac.Equal(m.Sum(nil), got) {
			return nil
		}
	}
	if !known {
		return fmt.Errorf("worldpay: %w: no signature with a known keyId", paymux.ErrWebhookBadSignature)
	}
	return fmt.Errorf("worldpay: %w", paymux.ErrWebhookBadSignature)
}

type eventBody struct {
	EventID        string `json:"eventId"`
	EventTimestamp string `json:"eventTimestamp"`
	EventDetails   *struct {
		Classification       string `json:"classification"`
		TransactionReference string `json:"transactionReference"`
		Type                 string `json:"type"`
		Date                 string `json:"date"`
		RefusalCode          string `json:"refusalCode"`
		Amount               *struct {
			Value        int64  `json:"value"`
			CurrencyCode string `json:"currencyCode"`
		} `json:"amount"`
	} `json:"eventDetails"`
}

func (p *Provider) normalise(body []byte) (paymux.Event, error) {
	var b eventBody
	if err := json.Unmarshal(body, &b); err != nil {
		return paymux.Event{}, fmt.Errorf("worldpay: %w: %v", paymux.ErrWebhookMalformed, err)
	}
	if b.EventID == "" || b.EventDetails == nil || b.EventDetails.Type == "" {
		return paymux.Event{}, fmt.Errorf("worldpay: %w: eventId and eventDetails.type are required", paymux.ErrWebhookMalformed)
	}
	d := b.EventDetails
	typ, success := eventType(d.Classification, d.Type)
	ev := paymux.Event{
		Provider:    p.cfg.Name,
		ID:          b.EventID,
		Type:        typ,
		ProviderRef: d.TransactionReference,
		Success:     success,
		Code:        d.Type,
		OccurredAt:  parseTime(b.EventTimestamp),
		Raw:         append([]byte(nil), body...),
	}
	if d.RefusalCode != "" {
		ev.Code = d.Type + ":" + d.RefusalCode
	}
	if d.Amount != nil {
		cur := paymux.Currency(strings.ToUpper(d.Amount.CurrencyCode))
		if d.Amount.Value < 0 || (cur != "" && !cur.Valid()) {
			return paymux.Event{}, fmt.Errorf("worldpay: %w: bad amount", paymux.ErrWebhookMalformed)
		}
		ev.Amount = paymux.Money{Amount: d.Amount.Value, Currency: cur}
	}
	if typ != paymux.EventOther && typ != paymux.EventDisputeOpened && ev.ProviderRef == "" {
		return paymux.Event{}, fmt.Errorf("worldpay: %w: payment event without transactionReference", paymux.ErrWebhookMalformed)
	}
	return ev, nil
}

// eventType maps Worldpay's eventDetails.type (within its classification)
// to a paymux event type and whether it reports a success.
func eventType(classification, typ string) (paymux.EventType, bool) {
	if strings.EqualFold(classification, "chargeback") || strings.HasPrefix(strings.ToLower(typ), "chargeback") {
		return paymux.EventDisputeOpened, true
	}
	if classification != "" && !strings.EqualFold(classification, "payment") {
		return paymux.EventOther, true // payouts and anything new
	}
	switch typ {
	case "authorized":
		return paymux.EventAuthorized, true
	case "sentForSettlement", "settled":
		return paymux.EventCaptured, true
	case "settlementFailed", "settlementRejected":
		return paymux.EventCaptureFailed, false
	case "sentForRefund", "refunded":
		return paymux.EventRefunded, true
	case "refundFailed", "refundRejected":
		return paymux.EventRefundFailed, false
	case "cancelled", "sentForCancellation", "expired":
		return paymux.EventVoided, true
	case "refused", "error":
		return paymux.EventFailed, false
	}
	return paymux.EventOther, true
}

// parseTime reads eventTimestamp ("2018-06-13T14:18:13.407", no zone: UTC).
func parseTime(s string) time.Time {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}
