package braintree

import (
	"context"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // Braintree's webhook scheme is HMAC-SHA1 keyed by SHA1(private key).
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/paymux/paymux"
)

// Webhooks
//
// Braintree POSTs application/x-www-form-urlencoded fields bt_signature and
// bt_payload. bt_signature is "public_key|hex_hmac" pairs joined by "&" (one
// per API key of the merchant); the pair with our public key is checked:
// hex(HMAC-SHA1(key = SHA1(private key), msg = bt_payload as received)).
//
// Trailing newline (vector braintree-5): the official Python and Ruby SDKs
// also accept an HMAC over bt_payload+"\n"; braintree-go does not. paymux
// accepts it, like the official SDKs. Braintree's payloads end in "\n", and
// some form parsers and proxies strip the final newline; refusing those would
// drop genuine notifications (their payment would wait for the reconciler).
// Accepting them costs no security: only the holder of the private key can
// produce an HMAC over payload+"\n" either, and the base64 content decodes
// to the same XML.

// ParseWebhook implements paymux.WebhookParser.
func (p *Provider) ParseWebhook(_ context.Context, _ http.Header, body []byte) ([]paymux.Event, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("%w: braintree: body is not a form: %v", paymux.ErrWebhookMalformed, err)
	}
	sig, payload := form.Get("bt_signature"), form.Get("bt_payload")
	if sig == "" {
		return nil, fmt.Errorf("%w: braintree: no bt_signature", paymux.ErrWebhookNotSigned)
	}
	if err := p.VerifySignature(sig, payload); err != nil {
		return nil, err
	}
	ev, err := p.parseNotification(payload, body)
	if err != nil {
		return nil, err
	}
	return []paymux.Event{*ev}, nil
}

// ErrNoMatchingKey is wrapped (with paymux.ErrWebhookBadSignature) when no
// public_key|signature pair names our public key.
var ErrNoMatchingKey = errors.New("braintree: no signature pair for our public key")

// VerifySignature checks bt_signature against bt_payload exactly as received
// (after form decoding). Errors wrap paymux.ErrWebhookBadSignature.
func (p *Provider) VerifySignature(btSignature, btPayload string) error {
	var ours string
	found := false
	for _, pair := range strings.Split(btSignature, "&") {
		key, sig, ok := strings.Cut(pair, "|")
		if ok && key == p.publicKey {
			ours, found = sig, true
			break
		}
	}
	if !found {
		return fmt.Errorf("%w: %w", paymux.ErrWebhookBadSignature, ErrNoMatchingKey)
	}
	got, err := hex.DecodeString(ours)
	if err != nil || len(got) != sha1.Size {
		return fmt.Errorf("%w: braintree: signature is not a hex SHA1 HMAC", paymux.ErrWebhookBadSignature)
	}
	exact := p.hmac(btPayload)
	withNL := p.hmac(btPayload + "\n")
	// Both comparisons always run, in constant time.
	if subtle.ConstantTimeCompare(got, exact)|subtle.ConstantTimeCompare(got, withNL) != 1 {
		return fmt.Errorf("%w: braintree: signature does not match payload", paymux.ErrWebhookBadSignature)
	}
	return nil
}

func (p *Provider) hmac(msg string) []byte {
	return signHMAC(p.privateKey.Reveal(), msg)
}

// signHMAC is Braintree's primitive: HMAC-SHA1 keyed by the raw 20-byte
// SHA1 of the private key.
func signHMAC(privateKey, msg string) []byte {
	key := sha1.Sum([]byte(privateKey)) //nolint:gosec // required by Braintree's scheme
	m := hmac.New(sha1.New, key[:])
	m.Write([]byte(msg))
	return m.Sum(nil)
}

var challengePattern = regexp.MustCompile(`^[a-f0-9]{20,32}$`)

// ErrBadChallenge is returned by VerifyChallenge for a challenge that is not
// 20 to 32 lower-case hex digits.
var ErrBadChallenge = errors.New("braintree: challenge must match ^[a-f0-9]{20,32}$")

// VerifyChallenge answers Braintree's webhook endpoint challenge (the
// bt_challenge query parameter of a GET): "public_key|hex(HMAC-SHA1(SHA1(private
// key), challenge))".
func (p *Provider) VerifyChallenge(challenge string) (string, error) {
	if !challengePattern.MatchString(challenge) {
		return "", ErrBadChallenge
	}
	return p.publicKey + "|" + hex.EncodeToString(p.hmac(challenge)), nil
}

// payloadPattern is the character set the official SDKs allow in bt_payload.
var payloadPattern = regexp.MustCompile(`^[A-Za-z0-9+=/\n]+$`)

// notification is the part of Braintree's webhook XML paymux reads.
type notification struct {
	XMLName   xml.Name `xml:"notification"`
	Kind      string   `xml:"kind"`
	Timestamp string   `xml:"timestamp"`
	Subject   struct {
		Transaction *xmlTransaction `xml:"transaction"`
		Dispute     *struct {
			ID              string          `xml:"id"`
			Amount          string          `xml:"amount"`
			CurrencyIsoCode string          `xml:"currency-iso-code"`
			Transaction     *xmlTransaction `xml:"transaction"`
		} `xml:"dispute"`
		Check *string `xml:"check"`
	} `xml:"subject"`
}

type xmlTransaction struct {
	ID                    string `xml:"id"`
	OrderID               string `xml:"order-id"`
	Amount                string `xml:"amount"`
	CurrencyIsoCode       string `xml:"currency-iso-code"`
	Status                string `xml:"status"`
	ProcessorResponseCode string `xml:"processor-response-code"`
	SettlementResponse    string `xml:"processor-settlement-response-code"`
	RefundedTransactionID string `xml:"refunded-transaction-id"`
}

// maxPayload bounds the decoded notification.
const maxPayload = 1 << 20

func (p *Provider) parseNotification(payload string, raw []byte) (*paymux.Event, error) {
	if !payloadPattern.MatchString(payload) {
		return nil, fmt.Errorf("%w: braintree: bt_payload has characters outside base64", paymux.ErrWebhookMalformed)
	}
	xmlBytes, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(payload, "\n", ""))
	if err != nil {
		return nil, fmt.Errorf("%w: braintree: bt_payload is not base64", paymux.ErrWebhookMalformed)
	}
	if len(xmlBytes) > maxPayload {
		return nil, fmt.Errorf("%w: braintree: notification too large", paymux.ErrWebhookMalformed)
	}
	var n notification
	dec := xml.NewDecoder(strings.NewReader(string(xmlBytes)))
	dec.Strict = true
	if err := dec.Decode(&n); err != nil {
		return nil, fmt.Errorf("%w: braintree: notification XML: %v", paymux.ErrWebhookMalformed, err)
	}
	n.Kind = strings.TrimSpace(n.Kind)
	if n.Kind == "" {
		return nil, fmt.Errorf("%w: braintree: notification without kind", paymux.ErrWebhookMalformed)
	}
	ev := &paymux.Event{Provider: p.name, Type: paymux.EventOther, Success: true, Raw: raw}
	if ts := strings.TrimSpace(n.Timestamp); ts != "" {
		t, err := time.Parse(time.RFC3339, ts)
		if err != nil {
			return nil, fmt.Errorf("%w: braintree: bad timestamp", paymux.ErrWebhookMalformed)
		}
		ev.OccurredAt = t.UTC()
	}
	txn := n.Subject.Transaction
	subjectID := ""
	amount, currency := "", ""
	switch {
	case txn != nil:
		subjectID, amount, currency = txn.ID, txn.Amount, txn.CurrencyIsoCode
		ev.ProviderRef = globalID("transaction", txn.ID)
		ev.PaymentKey, _ = splitOrderID(txn.OrderID)
	case n.Subject.Dispute != nil:
		d := n.Subject.Dispute
		subjectID, amount, currency = d.ID, d.Amount, d.CurrencyIsoCode
		if d.Transaction != nil {
			ev.ProviderRef = globalID("transaction", d.Transaction.ID)
			ev.PaymentKey, _ = splitOrderID(d.Transaction.OrderID)
			if currency == "" {
				currency = d.Transaction.CurrencyIsoCode
			}
		}
	}
	switch n.Kind {
	case "transaction_settled":
		ev.Type = paymux.EventCaptured
	case "transaction_settlement_declined":
		ev.Type, ev.Success = paymux.EventCaptureFailed, false
		if txn != nil {
			ev.Code = firstNonEmpty(txn.SettlementResponse, txn.ProcessorResponseCode, "settlement_declined")
		}
	case "refund_failed":
		ev.Type, ev.Success = paymux.EventRefundFailed, false
		if txn != nil && txn.RefundedTransactionID != "" {
			// The subject is the refund; the payment is the refunded transaction.
			ev.ProviderRef = globalID("transaction", txn.RefundedTransactionID)
		}
	case "dispute_opened":
		ev.Type = paymux.EventDisputeOpened
	}
	if ev.Type != paymux.EventOther && ev.ProviderRef == "" {
		return nil, fmt.Errorf("%w: braintree: %s without a transaction id", paymux.ErrWebhookMalformed, n.Kind)
	}
	if amount != "" && currency != "" {
		if m, err := paymux.ParseMoney(amount, paymux.Currency(currency)); err == nil {
			ev.Amount = m
		}
	}
	ev.Code = firstNonEmpty(ev.Code, n.Kind)
	// Braintree notifications carry no id; a redelivery repeats kind,
	// subject and timestamp, so together they de-duplicate.
	ev.ID = n.Kind + ":" + subjectID + ":" + strings.TrimSpace(n.Timestamp)
	return ev, nil
}

// globalID converts the legacy id a notification carries to the GraphQL id
// paymux stored as the payment's reference: base64("<type>_<legacy id>")
// without padding. Braintree calls its ids opaque, so this is a best effort:
// should it ever not match, the orchestrator finds the payment by
// PaymentKey (from orderId) instead, and never overwrites a reference.
func globalID(typ, legacy string) string {
	if legacy == "" {
		return ""
	}
	return base64.RawStdEncoding.EncodeToString([]byte(typ + "_" + legacy))
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
