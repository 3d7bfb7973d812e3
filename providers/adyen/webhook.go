package adyen

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/paymux/paymux"
)

// Notification is a standard webhook body:
// {"live":"false","notificationItems":[{"NotificationRequestItem":{...}}]}.
type Notification struct {
	Live              string             `json:"live"`
	NotificationItems []NotificationItem `json:"notificationItems"`
}

// NotificationItem wraps one item, as Adyen nests it.
type NotificationItem struct {
	Item json.RawMessage `json:"NotificationRequestItem"`
}

// NotificationRequestItem is one standard notification.
type NotificationRequestItem struct {
	AdditionalData      map[string]any `json:"additionalData,omitempty"`
	Amount              *ItemAmount    `json:"amount,omitempty"`
	EventCode           string         `json:"eventCode"`
	EventDate           string         `json:"eventDate,omitempty"`
	MerchantAccountCode string         `json:"merchantAccountCode"`
	MerchantReference   string         `json:"merchantReference"`
	OriginalReference   string         `json:"originalReference,omitempty"`
	PaymentMethod       string         `json:"paymentMethod,omitempty"`
	PSPReference        string         `json:"pspReference"`
	Reason              string         `json:"reason,omitempty"`
	Success             flexString     `json:"success"`
}

// ItemAmount is a notification amount. Value is kept as the decimal text
// Adyen signs; it arrives as a JSON number or, in some samples, a string.
type ItemAmount struct {
	Currency string     `json:"currency"`
	Value    flexString `json:"value"`
}

// flexString accepts a JSON string, number or boolean and keeps its text.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	switch s := string(b); {
	case s == "null":
		*f = ""
	case s == "true" || s == "false":
		*f = flexString(s)
	default:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("not an integer: %q", s)
		}
		*f = flexString(strconv.FormatInt(n, 10))
	}
	return nil
}

// SigningString is the text Adyen signs for a standard notification item:
// pspReference:originalReference:merchantAccountCode:merchantReference:
// amount.value:amount.currency:eventCode:success, with missing fields
// empty and no escaping (escaping belongs to the legacy HPP signing only).
func (it *NotificationRequestItem) SigningString() string {
	var value, currency string
	if it.Amount != nil {
		value, currency = string(it.Amount.Value), it.Amount.Currency
	}
	return strings.Join([]string{
		it.PSPReference, it.OriginalReference, it.MerchantAccountCode, it.MerchantReference,
		value, currency, it.EventCode, string(it.Success),
	}, ":")
}

// hmacSignature returns additionalData.hmacSignature, or "".
func (it *NotificationRequestItem) hmacSignature() string {
	s, _ := it.AdditionalData["hmacSignature"].(string)
	return s
}

// VerifyNotificationItem reports whether item's additionalData.hmacSignature
// is Base64(HMAC-SHA256(key, item.SigningString())), in constant time. key is
// the hex-decoded HMAC key. A signature of the wrong length is false.
func VerifyNotificationItem(key []byte, item *NotificationRequestItem) bool {
	return verifyBase64MAC(key, []byte(item.SigningString()), item.hmacSignature())
}

// VerifyHMACPayload reports whether signature (the HmacSignature header) is
// Base64(HMAC-SHA256(key, body)) over the exact body bytes.
func VerifyHMACPayload(key, body []byte, signature string) bool {
	return verifyBase64MAC(key, body, signature)
}

func verifyBase64MAC(key, msg []byte, sig string) bool {
	if len(key) == 0 || sig == "" {
		return false
	}
	got, err := base64.StdEncoding.DecodeString(strings.TrimSpace(sig))
	if err != nil || len(got) != sha256.Size {
		return false
	}
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return hmac.Equal(got, m.Sum(nil))
}

// Sign returns the Base64 HMAC-SHA256 of msg under the hex key, as Adyen
// computes it; for tests that build their own notifications.
func Sign(hexKey string, msg []byte) (string, error) {
	key, err := hex.DecodeString(hexKey)
	if err != nil {
		return "", errors.New("adyen: HMAC key is not hex")
	}
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return base64.StdEncoding.EncodeToString(m.Sum(nil)), nil
}

// ParseWebhook implements paymux.WebhookParser for standard notifications.
//
// Every item must carry a valid additionalData.hmacSignature; one item that
// fails rejects the whole request and nothing in it is applied. A request
// with an HmacSignature header (Adyen's raw-body scheme) is verified over
// the exact bytes first; then unsigned items are accepted, because the body
// as a whole is authenticated, but an item signature that is present must
// still match. A header-signed body that is not a standard notification
// (Balance Platform, Management API) yields one EventOther.
func (p *Provider) ParseWebhook(ctx context.Context, header http.Header, body []byte) ([]paymux.Event, error) {
	if len(p.hmacKey) == 0 {
		return nil, fmt.Errorf("%w: adyen: no HMAC key configured", paymux.ErrWebhookBadSignature)
	}
	bodySigned := false
	if sig := header.Get("HmacSignature"); sig != "" {
		if !VerifyHMACPayload(p.hmacKey, body, sig) {
			return nil, fmt.Errorf("%w: adyen: HmacSignature header does not match the body", paymux.ErrWebhookBadSignature)
		}
		bodySigned = true
	}
	var n Notification
	if err := json.Unmarshal(body, &n); err != nil {
		if bodySigned {
			return nil, fmt.Errorf("%w: adyen: signed body is not JSON", paymux.ErrWebhookMalformed)
		}
		// Nothing was verifiable: the body is not even a notification.
		return nil, fmt.Errorf("%w: adyen: body is not a notification", paymux.ErrWebhookMalformed)
	}
	if n.NotificationItems == nil && bodySigned {
		return []paymux.Event{p.otherEvent(body)}, nil
	}
	if len(n.NotificationItems) == 0 {
		return nil, fmt.Errorf("%w: adyen: no notificationItems", paymux.ErrWebhookMalformed)
	}
	items := make([]NotificationRequestItem, len(n.NotificationItems))
	unsigned := 0
	for i, w := range n.NotificationItems {
		if len(w.Item) == 0 {
			return nil, fmt.Errorf("%w: adyen: item %d has no NotificationRequestItem", paymux.ErrWebhookMalformed, i)
		}
		if err := json.Unmarshal(w.Item, &items[i]); err != nil {
			return nil, fmt.Errorf("%w: adyen: item %d: cannot read fields to verify", paymux.ErrWebhookMalformed, i)
		}
		it := &items[i]
		switch {
		case it.hmacSignature() != "":
			if !VerifyNotificationItem(p.hmacKey, it) {
				return nil, fmt.Errorf("%w: adyen: item %d hmacSignature does not match", paymux.ErrWebhookBadSignature, i)
			}
		case !bodySigned:
			unsigned++
		}
	}
	if unsigned == len(items) {
		return nil, fmt.Errorf("%w: adyen: no hmacSignature in additionalData", paymux.ErrWebhookNotSigned)
	}
	if unsigned > 0 {
		return nil, fmt.Errorf("%w: adyen: %d of %d items carry no hmacSignature", paymux.ErrWebhookBadSignature, unsigned, len(items))
	}
	// Everything is verified; only now is the content trusted.
	events := make([]paymux.Event, 0, len(items))
	for i := range items {
		ev, err := p.event(&items[i], n.NotificationItems[i].Item)
		if err != nil {
			return nil, err
		}
		events = append(events, ev)
	}
	return events, nil
}

// event normalises one verified item.
func (p *Provider) event(it *NotificationRequestItem, raw []byte) (paymux.Event, error) {
	if it.PSPReference == "" || it.EventCode == "" {
		return paymux.Event{}, fmt.Errorf("%w: adyen: item without pspReference or eventCode", paymux.ErrWebhookMalformed)
	}
	success := string(it.Success) == "true"
	ev := paymux.Event{
		Provider:    p.name,
		ID:          eventID(it),
		ProviderRef: it.PSPReference,
		Success:     success,
		Raw:         append([]byte(nil), raw...),
	}
	// Modifications (capture, refund, cancel, dispute) carry the payment's
	// pspReference as originalReference.
	if it.OriginalReference != "" {
		ev.ProviderRef = it.OriginalReference
	}
	if it.Amount != nil {
		if v, err := strconv.ParseInt(string(it.Amount.Value), 10, 64); err == nil && it.Amount.Value != "" {
			ev.Amount = paymux.Money{Amount: v, Currency: paymux.Currency(it.Amount.Currency)}
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, it.EventDate); err == nil {
		ev.OccurredAt = t
	}
	switch it.EventCode {
	case "AUTHORISATION":
		// The merchant reference is the paymux key only on the
		// authorisation; modifications carry the reference paymux gave them.
		ev.PaymentKey = it.MerchantReference
		ev.Type = paymux.EventAuthorized
		if !success {
			ev.Type = paymux.EventFailed
			ev.Code = refusalFromReason(it.Reason)
		}
	case "CAPTURE":
		ev.Type = paymux.EventCaptured
		if !success {
			ev.Type = paymux.EventCaptureFailed
		}
	case "CAPTURE_FAILED":
		ev.Type = paymux.EventCaptureFailed
	case "REFUND":
		ev.Type = paymux.EventRefunded
		// The amount is this refund's own, not a running total: name the
		// refund so paymux counts each once and sums them.
		ev.RefundRef = it.PSPReference
		if !success {
			ev.Type = paymux.EventRefundFailed
		}
	case "REFUND_FAILED":
		ev.Type = paymux.EventRefundFailed
	case "CANCELLATION":
		// success=false: the authorisation could not be cancelled (already
		// captured, for example); the payment does not move.
		ev.Type = paymux.EventVoided
	case "CHARGEBACK":
		ev.Type = paymux.EventDisputeOpened
	default:
		ev.Type = paymux.EventOther
	}
	return ev, nil
}

// eventID identifies a notification for de-duplication. Adyen's advice is
// eventCode + pspReference. A pspReference names one operation (the
// payment, or one capture, refund or cancel), so its own successful event is
// named by the pspReference alone; any other event on it (a failure, a
// CAPTURE_FAILED, a dispute) gets the event code and success added.
func eventID(it *NotificationRequestItem) string {
	if string(it.Success) == "true" {
		switch it.EventCode {
		case "AUTHORISATION", "CAPTURE", "REFUND", "CANCELLATION":
			return it.PSPReference
		}
	}
	return it.PSPReference + ":" + it.EventCode + ":" + string(it.Success)
}

// refusalFromReason keeps the reason of a failed AUTHORISATION as the
// failure code, redacted and short.
func refusalFromReason(reason string) string {
	r := paymux.Redact(strings.TrimSpace(reason))
	if len(r) > 64 {
		r = r[:64]
	}
	return r
}

// otherEvent is a verified header-signed webhook paymux does not act on
// (Balance Platform, Management API). Its id is the body's hash, so a
// redelivery is de-duplicated. OccurredAt is the body's own timestamp;
// without one it is the Unix epoch, so the webhook handler treats the event
// as an orphan and acknowledges it instead of asking Adyen to redeliver a
// webhook no payment will ever match.
func (p *Provider) otherEvent(body []byte) paymux.Event {
	sum := sha256.Sum256(body)
	var meta struct {
		Timestamp string `json:"timestamp"`
		CreatedAt string `json:"createdAt"`
	}
	_ = json.Unmarshal(body, &meta)
	at := time.Unix(0, 0).UTC()
	for _, s := range []string{meta.Timestamp, meta.CreatedAt} {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			at = t
			break
		}
	}
	return paymux.Event{Provider: p.name, ID: "body:" + hex.EncodeToString(sum[:16]), Type: paymux.EventOther, Success: true, Raw: append([]byte(nil), body...), OccurredAt: at}
}
