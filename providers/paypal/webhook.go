package paypal

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/paymux/paymux"
)

// PayPal's webhook headers.
const (
	HeaderTransmissionID   = "Paypal-Transmission-Id"
	HeaderTransmissionTime = "Paypal-Transmission-Time"
	HeaderTransmissionSig  = "Paypal-Transmission-Sig"
	HeaderCertURL          = "Paypal-Cert-Url"
	HeaderAuthAlgo         = "Paypal-Auth-Algo"
	// AuthAlgo is the only algorithm accepted.
	AuthAlgo = "SHA256withRSA"
)

const maxCertBytes = 64 << 10

// ErrCertUnavailable: the signing certificate could not be fetched. It is
// not a verdict on the signature, so the handler answers 5xx and PayPal
// retries the delivery.
var ErrCertUnavailable = errors.New("paypal: webhook certificate unavailable")

// ParseWebhook verifies a PayPal webhook over the exact body bytes and
// normalises it. Unknown event types come back as EventOther.
func (p *Provider) ParseWebhook(ctx context.Context, header http.Header, body []byte) ([]paymux.Event, error) {
	if err := p.VerifyWebhook(ctx, header, body); err != nil {
		return nil, err
	}
	ev, err := p.normalise(body)
	if err != nil {
		return nil, err
	}
	return []paymux.Event{ev}, nil
}

// transmission is the signed envelope of one delivery.
type transmission struct {
	id, timeRaw, sig, certURL, algo string
	at                              time.Time
}

func readTransmission(h http.Header) (transmission, error) {
	t := transmission{
		id:      strings.TrimSpace(h.Get(HeaderTransmissionID)),
		timeRaw: strings.TrimSpace(h.Get(HeaderTransmissionTime)),
		sig:     strings.TrimSpace(h.Get(HeaderTransmissionSig)),
		certURL: strings.TrimSpace(h.Get(HeaderCertURL)),
		algo:    strings.TrimSpace(h.Get(HeaderAuthAlgo)),
	}
	if t.sig == "" && t.id == "" && t.certURL == "" {
		return t, paymux.ErrWebhookNotSigned
	}
	if t.sig == "" || t.id == "" || t.timeRaw == "" || t.certURL == "" {
		return t, fmt.Errorf("%w: incomplete PAYPAL-TRANSMISSION headers", paymux.ErrWebhookBadSignature)
	}
	if t.algo != "" && t.algo != AuthAlgo {
		// Never verify with a weaker algorithm the sender chose.
		return t, fmt.Errorf("%w: auth algorithm %q is not %s", paymux.ErrWebhookBadSignature, truncate(t.algo, 32), AuthAlgo)
	}
	at, err := time.Parse(time.RFC3339, t.timeRaw)
	if err != nil {
		return t, fmt.Errorf("%w: bad transmission time", paymux.ErrWebhookBadSignature)
	}
	t.at = at
	return t, nil
}

// VerifyWebhook checks the delivery's signature (offline or online, as
// configured) and its transmission time.
func (p *Provider) VerifyWebhook(ctx context.Context, header http.Header, body []byte) error {
	if p.cfg.WebhookID == "" {
		return errors.New("paypal: Config.WebhookID is not set; cannot verify webhooks")
	}
	t, err := readTransmission(header)
	if err != nil {
		return err
	}
	if tol := p.cfg.WebhookTolerance; tol > 0 {
		if d := p.clock().Sub(t.at); d > tol || d < -tol {
			return fmt.Errorf("%w: transmitted %s", paymux.ErrWebhookTooOld, t.timeRaw)
		}
	}
	if p.cfg.VerifyMode == VerifyOnline {
		return p.verifyOnline(ctx, t, body)
	}
	return p.verifyOffline(ctx, t, body)
}

// signedMessage is transmissionId|timeStamp|webhookId|crc32, the CRC32
// (IEEE) of the raw body in unsigned decimal.
func signedMessage(transmissionID, transmissionTime, webhookID string, body []byte) []byte {
	return []byte(transmissionID + "|" + transmissionTime + "|" + webhookID + "|" + strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10))
}

func (p *Provider) verifyOffline(ctx context.Context, t transmission, body []byte) error {
	u, err := p.checkCertURL(t.certURL)
	if err != nil {
		return err
	}
	cert, err := p.certs.get(ctx, u, p.clock())
	if err != nil {
		return err
	}
	now := p.clock()
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return fmt.Errorf("%w: certificate not valid at %s", paymux.ErrWebhookBadSignature, now.UTC().Format(time.RFC3339))
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: certificate key is not RSA", paymux.ErrWebhookBadSignature)
	}
	sig, err := base64.StdEncoding.DecodeString(t.sig)
	if err != nil {
		return fmt.Errorf("%w: signature is not base64", paymux.ErrWebhookBadSignature)
	}
	digest := sha256.Sum256(signedMessage(t.id, t.timeRaw, p.cfg.WebhookID, body))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
		return fmt.Errorf("%w: RSA signature does not verify", paymux.ErrWebhookBadSignature)
	}
	return nil
}

// checkCertURL allows only https URLs on the configured PayPal hosts, so a
// forged header cannot make us trust a key of the sender's choosing or fetch
// from an internal address.
func (p *Provider) checkCertURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.User != nil || u.Host == "" {
		return nil, fmt.Errorf("%w: certificate URL is not an https URL", paymux.ErrWebhookBadSignature)
	}
	host := strings.ToLower(u.Hostname())
	for _, allowed := range p.cfg.CertHosts {
		a := strings.ToLower(strings.TrimPrefix(allowed, "."))
		if host == a || strings.HasSuffix(host, "."+a) {
			return u, nil
		}
	}
	return nil, fmt.Errorf("%w: certificate host %q is not a PayPal host", paymux.ErrWebhookBadSignature, truncate(host, 64))
}

// certCache keeps parsed certificates by URL.
type certCache struct {
	fetcher CertFetcher
	ttl     time.Duration
	mu      sync.Mutex
	entries map[string]cachedCert
}

type cachedCert struct {
	cert    *x509.Certificate
	expires time.Time
}

func (c *certCache) get(ctx context.Context, u *url.URL, now time.Time) (*x509.Certificate, error) {
	key := u.String()
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.cert, nil
	}
	raw, err := c.fetcher.FetchCert(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCertUnavailable, err)
	}
	cert, err := parseCert(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", paymux.ErrWebhookBadSignature, err)
	}
	exp := now.Add(c.ttl)
	if cert.NotAfter.Before(exp) {
		exp = cert.NotAfter
	}
	c.mu.Lock()
	if len(c.entries) > 256 {
		// PayPal rotates certificates rarely; a flood of URLs is an attack.
		clear(c.entries)
	}
	c.entries[key] = cachedCert{cert: cert, expires: exp}
	c.mu.Unlock()
	return cert, nil
}

// parseCert reads the first certificate of a PEM bundle (the leaf).
func parseCert(raw []byte) (*x509.Certificate, error) {
	for rest := raw; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("no PEM certificate")
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}

type httpCertFetcher struct{ client *http.Client }

func (f httpCertFetcher) FetchCert(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	client := *f.client
	// A redirect could leave the allow-listed host.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET certificate: HTTP %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxCertBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxCertBytes {
		return nil, errors.New("certificate larger than 64 KiB")
	}
	return b, nil
}

// verifyOnline asks PayPal. The event goes out as the raw body bytes:
// re-encoding it (1.0 -> 1, key order) is the classic cause of FAILURE.
func (p *Provider) verifyOnline(ctx context.Context, t transmission, body []byte) error {
	if !json.Valid(body) || len(bytes.TrimSpace(body)) == 0 || bytes.TrimSpace(body)[0] != '{' {
		return fmt.Errorf("%w: body is not a JSON object", paymux.ErrWebhookMalformed)
	}
	fields := []struct{ k, v string }{
		{"auth_algo", orDefault(t.algo, AuthAlgo)}, {"cert_url", t.certURL},
		{"transmission_id", t.id}, {"transmission_sig", t.sig},
		{"transmission_time", t.timeRaw}, {"webhook_id", p.cfg.WebhookID},
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for _, f := range fields {
		k, _ := json.Marshal(f.k)
		v, _ := json.Marshal(f.v)
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
		b.WriteByte(',')
	}
	b.WriteString(`"webhook_event":`)
	b.Write(body)
	b.WriteByte('}')
	var out struct {
		VerificationStatus string `json:"verification_status"`
	}
	key := "pmx-verify-" + t.id
	err := p.do(ctx, call{op: "verify_webhook", method: http.MethodPost, path: "/v1/notifications/verify-webhook-signature", requestID: key, rawBody: b.Bytes()}, &out)
	if err != nil {
		var pe *paymux.ProviderError
		if errors.As(err, &pe) && pe.HTTPStatus == http.StatusBadRequest {
			return fmt.Errorf("%w: PayPal refused the verification request (%s)", paymux.ErrWebhookBadSignature, pe.Code)
		}
		// Not a verdict: let PayPal deliver again.
		return fmt.Errorf("paypal: verify-webhook-signature: %w", err)
	}
	if out.VerificationStatus != "SUCCESS" {
		return fmt.Errorf("%w: PayPal says %s", paymux.ErrWebhookBadSignature, truncate(out.VerificationStatus, 32))
	}
	return nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// webhookEvent is the part of a PayPal event the adapter reads.
type webhookEvent struct {
	ID           string    `json:"id"`
	EventType    string    `json:"event_type"`
	ResourceType string    `json:"resource_type"`
	CreateTime   time.Time `json:"create_time"`
	Resource     struct {
		ID            string   `json:"id"`
		Status        string   `json:"status"`
		CustomID      string   `json:"custom_id"`
		InvoiceID     string   `json:"invoice_id"`
		Amount        *wireAmt `json:"amount"`
		PurchaseUnits []struct {
			CustomID string   `json:"custom_id"`
			Amount   *wireAmt `json:"amount"`
		} `json:"purchase_units"`
		SupplementaryData *struct {
			RelatedIDs struct {
				OrderID string `json:"order_id"`
			} `json:"related_ids"`
		} `json:"supplementary_data"`
		StatusDetails *struct {
			Reason string `json:"reason"`
		} `json:"status_details"`
		// Disputes.
		DisputeID            string   `json:"dispute_id"`
		DisputeAmount        *wireAmt `json:"dispute_amount"`
		DisputedTransactions []struct {
			SellerTransactionID string `json:"seller_transaction_id"`
			Custom              string `json:"custom"`
			InvoiceNumber       string `json:"invoice_number"`
		} `json:"disputed_transactions"`
	} `json:"resource"`
}

type wireAmt struct {
	CurrencyCode string `json:"currency_code"`
	Value        string `json:"value"`
	// v1 resources (PAYMENT.SALE.*) use total/currency.
	Total    string `json:"total"`
	Currency string `json:"currency"`
}

func (a *wireAmt) money() paymux.Money {
	if a == nil {
		return paymux.Money{}
	}
	cur, val := a.CurrencyCode, a.Value
	if cur == "" {
		cur, val = a.Currency, a.Total
	}
	m, err := parseAmount(val, cur)
	if err != nil {
		return paymux.Money{}
	}
	return m
}

// normalise maps a verified body to an Event. The Event's ProviderRef is the
// order id, which is the paymux reference of PayPal payments.
func (p *Provider) normalise(body []byte) (paymux.Event, error) {
	var w webhookEvent
	if err := json.Unmarshal(body, &w); err != nil {
		return paymux.Event{}, fmt.Errorf("%w: %v", paymux.ErrWebhookMalformed, err)
	}
	if w.ID == "" || w.EventType == "" {
		return paymux.Event{}, fmt.Errorf("%w: event without id or event_type", paymux.ErrWebhookMalformed)
	}
	r := &w.Resource
	ev := paymux.Event{
		Provider: p.name, ID: w.ID, Type: paymux.EventOther, OccurredAt: w.CreateTime,
		Amount: r.Amount.money(), PaymentKey: r.CustomID, Code: w.EventType,
		Raw: append([]byte(nil), body...),
	}
	if r.SupplementaryData != nil {
		ev.ProviderRef = r.SupplementaryData.RelatedIDs.OrderID
	}
	switch w.EventType {
	case "CHECKOUT.ORDER.APPROVED", "CHECKOUT.ORDER.COMPLETED":
		ev.ProviderRef = r.ID
		if len(r.PurchaseUnits) > 0 {
			ev.PaymentKey = r.PurchaseUnits[0].CustomID
			ev.Amount = r.PurchaseUnits[0].Amount.money()
		}
		// Approved is not paid: the order still has to be authorised or
		// captured, which Sync (Lookup) does. The event says "look now".
		ev.Type, ev.Success = paymux.EventActionRequired, true
		if w.EventType == "CHECKOUT.ORDER.COMPLETED" {
			ev.Type = paymux.EventOther
		}
	case "PAYMENT.AUTHORIZATION.CREATED":
		ev.Type, ev.Success = paymux.EventAuthorized, true
	case "PAYMENT.AUTHORIZATION.VOIDED":
		ev.Type, ev.Success = paymux.EventVoided, true
	case "PAYMENT.CAPTURE.COMPLETED":
		ev.Type, ev.Success = paymux.EventCaptured, true
	case "PAYMENT.CAPTURE.PENDING":
		ev.Type = paymux.EventOther
	case "PAYMENT.CAPTURE.DENIED", "PAYMENT.CAPTURE.DECLINED":
		ev.Type, ev.Success = paymux.EventFailed, false
		if r.StatusDetails != nil && r.StatusDetails.Reason != "" {
			ev.Code = r.StatusDetails.Reason
		}
	case "PAYMENT.CAPTURE.REFUNDED":
		ev.Type, ev.Success = paymux.EventRefunded, true
		// A refund's custom_id is the provider key of the refund call, not
		// the paymux key.
		ev.PaymentKey = ""
	case "PAYMENT.CAPTURE.REVERSED":
		// PayPal took the money back (a chargeback or reversal): for the
		// payment's ledger it is a refund.
		ev.Type, ev.Success = paymux.EventRefunded, true
	case "CUSTOMER.DISPUTE.CREATED":
		ev.Type, ev.Success = paymux.EventDisputeOpened, true
		ev.ProviderRef, ev.PaymentKey = "", ""
		if len(r.DisputedTransactions) > 0 {
			ev.PaymentKey = r.DisputedTransactions[0].Custom
		}
		ev.Amount = r.DisputeAmount.money()
	}
	if ev.Amount.Amount < 0 {
		ev.Amount.Amount = -ev.Amount.Amount
	}
	ev.PaymentKey = truncate(ev.PaymentKey, 255)
	return ev, nil
}

// HintReference points at the order an unverified webhook is about, so paymux
// can Sync that payment from the API instead of trusting the body.
func (p *Provider) HintReference(_ http.Header, body []byte) (string, bool) {
	var w webhookEvent
	if json.Unmarshal(body, &w) != nil {
		return "", false
	}
	if strings.HasPrefix(w.EventType, "CHECKOUT.ORDER.") && w.Resource.ID != "" {
		return w.Resource.ID, true
	}
	if w.Resource.SupplementaryData != nil && w.Resource.SupplementaryData.RelatedIDs.OrderID != "" {
		return w.Resource.SupplementaryData.RelatedIDs.OrderID, true
	}
	return "", false
}
