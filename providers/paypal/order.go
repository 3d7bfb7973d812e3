package paypal

import (
	"time"

	paypalapi "github.com/plutov/paypal/v4"

	"github.com/paymux/paymux"
)

// order is the part of an Orders v2 order the adapter reads. plutov/paypal's
// Order type has no authorizations or refunds under payments, so we decode
// our own.
type order struct {
	ID            string           `json:"id"`
	Status        string           `json:"status"`
	Intent        string           `json:"intent"`
	PurchaseUnits []purchaseUnit   `json:"purchase_units"`
	Links         []paypalapi.Link `json:"links"`
	UpdateTime    *time.Time       `json:"update_time,omitempty"`
}

type purchaseUnit struct {
	ReferenceID string                        `json:"reference_id"`
	Amount      *paypalapi.PurchaseUnitAmount `json:"amount"`
	CustomID    string                        `json:"custom_id"`
	InvoiceID   string                        `json:"invoice_id"`
	Payments    *payments                     `json:"payments"`
}

type payments struct {
	Authorizations []txn `json:"authorizations"`
	Captures       []txn `json:"captures"`
	Refunds        []txn `json:"refunds"`
}

// txn is an authorization, capture or refund (Payments v2).
type txn struct {
	ID            string           `json:"id"`
	Status        string           `json:"status"`
	Amount        *paypalapi.Money `json:"amount"`
	CustomID      string           `json:"custom_id,omitempty"`
	InvoiceID     string           `json:"invoice_id,omitempty"`
	FinalCapture  bool             `json:"final_capture,omitempty"`
	StatusDetails *struct {
		Reason string `json:"reason"`
	} `json:"status_details,omitempty"`
	ProcessorResponse *struct {
		ResponseCode string `json:"response_code"`
	} `json:"processor_response,omitempty"`
	Links []paypalapi.Link `json:"links,omitempty"`
}

func (t *txn) money(cur paymux.Currency) (int64, bool) {
	if t.Amount == nil {
		return 0, false
	}
	if cur != "" && paymux.Currency(t.Amount.Currency) != cur {
		return 0, false
	}
	m, err := parseAmount(t.Amount.Value, t.Amount.Currency)
	if err != nil {
		return 0, false
	}
	return m.Amount, true
}

// declineCode is the most specific reason PayPal gives for a declined
// capture or denied authorisation.
func (t *txn) declineCode() string {
	if t.StatusDetails != nil && t.StatusDetails.Reason != "" {
		return t.StatusDetails.Reason
	}
	if t.Status == "DENIED" {
		return CodeAuthorizationDenied
	}
	return CodeCaptureDeclined
}

func (o *order) unit() *purchaseUnit {
	if len(o.PurchaseUnits) == 0 {
		return nil
	}
	return &o.PurchaseUnits[0]
}

func (o *order) amount() (paymux.Money, bool) {
	u := o.unit()
	if u == nil || u.Amount == nil {
		return paymux.Money{}, false
	}
	m, err := parseAmount(u.Amount.Value, u.Amount.Currency)
	return m, err == nil
}

func (o *order) payments() payments {
	var ps payments
	for _, u := range o.PurchaseUnits {
		if u.Payments != nil {
			ps.Authorizations = append(ps.Authorizations, u.Payments.Authorizations...)
			ps.Captures = append(ps.Captures, u.Payments.Captures...)
			ps.Refunds = append(ps.Refunds, u.Payments.Refunds...)
		}
	}
	return ps
}

// authorization returns the order's authorization (Orders v2 makes one per
// purchase unit; paymux orders have one unit).
func (o *order) authorization() *txn {
	ps := o.payments()
	if len(ps.Authorizations) == 0 {
		return nil
	}
	a := ps.Authorizations[len(ps.Authorizations)-1]
	return &a
}

func (o *order) refundWithCustomID(key string) *txn {
	if key == "" {
		return nil
	}
	for _, r := range o.payments().Refunds {
		if r.CustomID == key && r.Status != "FAILED" && r.Status != "CANCELLED" {
			r := r
			return &r
		}
	}
	return nil
}

// captureFor picks the first completed capture whose unrefunded rest covers
// amount.
func (o *order) captureFor(amount paymux.Money) string {
	ps := o.payments()
	refunded := map[string]int64{}
	for _, r := range ps.Refunds {
		if r.Status == "FAILED" || r.Status == "CANCELLED" {
			continue
		}
		v, ok := r.money(amount.Currency)
		if !ok {
			continue
		}
		refunded[r.upID()] += v
	}
	for _, c := range ps.Captures {
		switch c.Status {
		case "COMPLETED", "PARTIALLY_REFUNDED":
		default:
			continue
		}
		v, ok := c.money(amount.Currency)
		if ok && v-refunded[c.ID] >= amount.Amount {
			return c.ID
		}
	}
	return ""
}

// upID is the capture a refund belongs to (its "up" link ends in the id).
func (t *txn) upID() string {
	for _, l := range t.Links {
		if l.Rel == "up" {
			for i := len(l.Href) - 1; i >= 0; i-- {
				if l.Href[i] == '/' {
					return l.Href[i+1:]
				}
			}
		}
	}
	return ""
}

func (o *order) approveURL() string {
	for _, l := range o.Links {
		if l.Rel == "approve" || l.Rel == "payer-action" {
			return l.Href
		}
	}
	return ""
}

// toPayment maps an order to paymux's view of it.
func (p *Provider) toPayment(o *order, cur paymux.Currency) (*paymux.ProviderPayment, error) {
	res := &paymux.ProviderPayment{Reference: o.ID, UpdatedAt: p.clock()}
	if amt, ok := o.amount(); ok {
		res.Amount = amt
		cur = amt.Currency
	}
	ps := o.payments()
	var authPending, authVoided, authOK bool
	var failed string
	for _, a := range ps.Authorizations {
		v, _ := a.money(cur)
		switch a.Status {
		case "CREATED", "CAPTURED", "PARTIALLY_CAPTURED":
			res.Authorized += v
			authOK = true
		case "PENDING":
			authPending = true
		case "VOIDED", "EXPIRED":
			authVoided = true
			res.Authorized += 0
		case "DENIED":
			failed = a.declineCode()
		}
	}
	var capPending bool
	for _, c := range ps.Captures {
		v, _ := c.money(cur)
		switch c.Status {
		case "COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED":
			res.Captured += v
		case "PENDING":
			capPending = true
		case "DECLINED", "FAILED":
			if res.Captured == 0 && failed == "" {
				failed = c.declineCode()
			}
		}
	}
	for _, r := range ps.Refunds {
		v, _ := r.money(cur)
		res.Refunds = append(res.Refunds, paymux.ProviderRefund{Reference: r.ID, Amount: v, Status: lowerStatus(r.Status)})
		if r.Status == "COMPLETED" {
			res.Refunded += v
		}
	}
	if res.Captured > res.Authorized {
		res.Authorized = res.Captured
	}
	switch {
	case res.Refunded > 0:
		res.Status = paymux.StatusRefunded
	case res.Captured > 0:
		res.Status = paymux.StatusCaptured
	case authOK && !authVoided:
		res.Status = paymux.StatusAuthorized
	case authVoided:
		res.Status = paymux.StatusVoided
	case failed != "":
		res.Status, res.DeclineCode = paymux.StatusFailed, failed
	case authPending || capPending:
		res.Status = paymux.StatusPending
	default:
		switch o.Status {
		case "CREATED", "SAVED", "PAYER_ACTION_REQUIRED", "APPROVED":
			res.Status = paymux.StatusRequiresAction
			if u := o.approveURL(); u != "" {
				res.NextAction = &paymux.NextAction{Type: "approve", RedirectURL: u}
			}
		case "VOIDED":
			res.Status = paymux.StatusVoided
		case "COMPLETED":
			// Completed without a payment we can read: treat as pending
			// until a webhook or the next Lookup tells more.
			res.Status = paymux.StatusPending
		default:
			res.Status = paymux.StatusPending
		}
	}
	return res, nil
}

func lowerStatus(s string) string {
	switch s {
	case "COMPLETED":
		return "succeeded"
	case "PENDING":
		return "pending"
	case "FAILED", "CANCELLED":
		return "failed"
	}
	return s
}
