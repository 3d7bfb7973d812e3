// Package braintree is the paymux adapter for Braintree, speaking its GraphQL
// API (https://payments.braintree-api.com/graphql) over net/http: the Go SDK
// module is not available here, and paymux needs only six calls.
//
// Authorize uses authorizeCreditCard / chargeCreditCard for cards (they take
// the 3-D Secure options) and authorizePaymentMethod / chargePaymentMethod for
// other methods. Every mutating call that Braintree documents with an
// apiRequestKey ("At-Most-Once Processing", a top-level input field, 30-day
// window) carries paymux's provider key there, so a retry of the same attempt
// returns the same transaction instead of charging twice.
//
// The transaction's orderId is "<paymux key>#<provider key>" (the paymux key
// alone when that would pass Braintree's limit), so that Lookup can find a
// payment whose reference was lost by searching orderId: by the attempt's
// provider key (endsWith) or by the paymux key (startsWith). Braintree does
// not expose apiRequestKey in search. A distinct orderId per attempt also
// keeps PayPal, which refuses duplicate invoice numbers, from refusing a
// second attempt of the same order.
package braintree

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/paymux/paymux"
)

// Endpoints and the API version this adapter was written against.
const (
	SandboxURL    = "https://payments.sandbox.braintree-api.com/graphql"
	ProductionURL = "https://payments.braintree-api.com/graphql"
	// APIVersion is sent as the Braintree-Version header.
	APIVersion = "2019-01-01"
)

// Config configures a Provider. The zero value of each field:
//
//	Name             "braintree"
//	MerchantID       required for webhooks' sake only (not sent on GraphQL calls)
//	PublicKey        required; also selects our pair in bt_signature
//	PrivateKey       required; Basic auth password and webhook HMAC key
//	BaseURL          SandboxURL
//	HTTPClient       a client with a 30 s timeout
//	Logger           slog.Default()
//	Clock            time.Now
//	MerchantAccounts nil: the default merchant account, for DefaultCurrency only
//	DefaultCurrency  "USD"
type Config struct {
	Name       string
	MerchantID string
	PublicKey  string
	PrivateKey paymux.Secret
	BaseURL    string
	HTTPClient *http.Client
	Logger     *slog.Logger
	Clock      func() time.Time
	// MerchantAccounts maps a currency to the Braintree merchant account that
	// settles in it. Braintree takes the currency from the merchant account,
	// never from the request, so paymux only routes currencies listed here.
	MerchantAccounts map[paymux.Currency]string
	// DefaultCurrency is the currency of the default merchant account, used
	// when MerchantAccounts is empty.
	DefaultCurrency paymux.Currency
}

// Provider is the Braintree adapter.
type Provider struct {
	name       string
	merchantID string
	publicKey  string
	privateKey paymux.Secret
	baseURL    string
	http       *http.Client
	log        *slog.Logger
	now        func() time.Time
	accounts   map[paymux.Currency]string
	currencies []paymux.Currency
	table      paymux.DecisionTable
}

var (
	_ paymux.Provider       = (*Provider)(nil)
	_ paymux.WebhookParser  = (*Provider)(nil)
	_ paymux.DecisionTabler = (*Provider)(nil)
)

// New returns a Provider for cfg.
func New(cfg Config) (*Provider, error) {
	if cfg.PublicKey == "" || cfg.PrivateKey == "" {
		return nil, errors.New("braintree: PublicKey and PrivateKey are required")
	}
	p := &Provider{
		name:       cfg.Name,
		merchantID: cfg.MerchantID,
		publicKey:  cfg.PublicKey,
		privateKey: cfg.PrivateKey,
		baseURL:    cfg.BaseURL,
		http:       cfg.HTTPClient,
		log:        cfg.Logger,
		now:        cfg.Clock,
		accounts:   map[paymux.Currency]string{},
	}
	if p.name == "" {
		p.name = "braintree"
	}
	if p.baseURL == "" {
		p.baseURL = SandboxURL
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
	for cur, acct := range cfg.MerchantAccounts {
		if !cur.Valid() {
			return nil, fmt.Errorf("braintree: unknown currency %q in MerchantAccounts", string(cur))
		}
		p.accounts[cur] = acct
		p.currencies = append(p.currencies, cur)
	}
	if len(p.currencies) == 0 {
		cur := cfg.DefaultCurrency
		if cur == "" {
			cur = "USD"
		}
		if !cur.Valid() {
			return nil, fmt.Errorf("braintree: unknown DefaultCurrency %q", string(cur))
		}
		p.currencies = []paymux.Currency{cur}
	}
	p.table = decisionTable(p.name)
	return p, nil
}

// String names the provider without any credential: fmt would otherwise
// print the private key, an unexported field whose String it cannot call.
func (p *Provider) String() string { return "braintree.Provider(" + p.name + ")" }

// GoString keeps %#v from printing the fields.
func (p *Provider) GoString() string { return p.String() }

// Name implements paymux.Provider.
func (p *Provider) Name() string { return p.name }

// Capabilities implements paymux.Provider. Braintree captures once per
// authorisation with captureTransaction (partial amount allowed) and refunds
// settled transactions, several times up to the captured amount.
func (p *Provider) Capabilities() paymux.Capabilities {
	return paymux.Capabilities{
		Currencies:     append([]paymux.Currency(nil), p.currencies...),
		Methods:        []paymux.MethodType{paymux.MethodCard, paymux.MethodPayPal, paymux.MethodApplePay, paymux.MethodGooglePay},
		ManualCapture:  true,
		PartialCapture: true,
		PartialRefund:  true,
		MultipleRefund: true,
		Void:           true,
	}
}

// DecisionTable implements paymux.DecisionTabler.
func (p *Provider) DecisionTable() paymux.DecisionTable {
	t := make(paymux.DecisionTable, len(p.table))
	for k, v := range p.table {
		t[k] = v
	}
	return t
}

func (p *Provider) currencyOK(m paymux.Money) bool {
	for _, c := range p.currencies {
		if c == m.Currency {
			return true
		}
	}
	return false
}

// Authorize implements paymux.Provider.
func (p *Provider) Authorize(ctx context.Context, req *paymux.AuthorizeRequest) (*paymux.ProviderPayment, error) {
	const op = paymux.OpAuthorize
	if err := req.Amount.Validate(); err != nil {
		return nil, p.invalid(op, err.Error())
	}
	if !p.currencyOK(req.Amount) {
		return nil, p.invalid(op, "no merchant account for currency "+string(req.Amount.Currency))
	}
	if req.Method.Token == "" || paymux.LooksLikeCardNumber(req.Method.Token) {
		// Never send what looks like a card number, not even in an error.
		return nil, p.invalid(op, "payment method must be a Braintree nonce or token")
	}
	if req.ProviderKey == "" {
		return nil, p.invalid(op, "provider key is required for at-most-once processing")
	}
	manual := req.Capture == paymux.CaptureManual
	card := req.Method.Type == paymux.MethodCard || req.Method.Type == ""
	var mutation, inputType string
	switch {
	case card && manual:
		mutation, inputType = "authorizeCreditCard", "AuthorizeCreditCardInput"
	case card:
		mutation, inputType = "chargeCreditCard", "ChargeCreditCardInput"
	case manual:
		mutation, inputType = "authorizePaymentMethod", "AuthorizePaymentMethodInput"
	default:
		mutation, inputType = "chargePaymentMethod", "ChargePaymentMethodInput"
	}
	txn := map[string]any{
		"amount":  req.Amount.Decimal(),
		"orderId": orderID(req.PaymentKey, req.ProviderKey, req.Method.Type),
	}
	if acct := p.accounts[req.Amount.Currency]; acct != "" {
		txn["merchantAccountId"] = acct
	}
	input := map[string]any{
		"apiRequestKey":   req.ProviderKey,
		"paymentMethodId": req.Method.Token,
		"transaction":     txn,
	}
	if card && req.ThreeDS {
		// Braintree authenticates in the browser; the server can only insist
		// that the nonce carries a successful authentication.
		input["options"] = map[string]any{"threeDSecureAuthentication": map[string]any{"required": true}}
	}
	query := "mutation " + mutation + "($input: " + inputType + "!) { " + mutation +
		"(input: $input) { transaction { " + transactionFields + " } } }"
	var data map[string]struct {
		Transaction *gqlTransaction `json:"transaction"`
	}
	if err := p.do(ctx, op, true, query, map[string]any{"input": input}, &data); err != nil {
		return nil, err
	}
	t := data[mutation].Transaction
	if t == nil {
		return nil, p.malformed(op, "no transaction in "+mutation+" payload")
	}
	if err := p.transactionError(op, t, req.ThreeDS); err != nil {
		return nil, err
	}
	return p.toPayment(op, t, req.Amount.Currency)
}

// Capture implements paymux.Provider with captureTransaction; a smaller
// amount than authorised is a partial capture.
func (p *Provider) Capture(ctx context.Context, req *paymux.CaptureRequest) (*paymux.ProviderPayment, error) {
	const op = paymux.OpCapture
	if req.Reference == "" {
		return nil, p.invalid(op, "reference is required")
	}
	if err := req.Amount.Validate(); err != nil {
		return nil, p.invalid(op, err.Error())
	}
	input := map[string]any{
		"transactionId": req.Reference,
		"transaction":   map[string]any{"amount": req.Amount.Decimal()},
	}
	if req.ProviderKey != "" {
		input["apiRequestKey"] = req.ProviderKey
	}
	query := "mutation captureTransaction($input: CaptureTransactionInput!) { captureTransaction(input: $input) { transaction { " + transactionFields + " } } }"
	var data struct {
		CaptureTransaction struct {
			Transaction *gqlTransaction `json:"transaction"`
		} `json:"captureTransaction"`
	}
	if err := p.do(ctx, op, true, query, map[string]any{"input": input}, &data); err != nil {
		return nil, err
	}
	t := data.CaptureTransaction.Transaction
	if t == nil {
		return nil, p.malformed(op, "no transaction in captureTransaction payload")
	}
	if err := p.transactionError(op, t, false); err != nil {
		return nil, err
	}
	return p.toPayment(op, t, req.Amount.Currency)
}

// Refund implements paymux.Provider with refundTransaction. Braintree
// refunds only settling or settled transactions; an earlier refund is refused
// with a VALIDATION error, classified as Conflict.
func (p *Provider) Refund(ctx context.Context, req *paymux.RefundRequest) (*paymux.ProviderPayment, error) {
	const op = paymux.OpRefund
	if req.Reference == "" {
		return nil, p.invalid(op, "reference is required")
	}
	if err := req.Amount.Validate(); err != nil {
		return nil, p.invalid(op, err.Error())
	}
	input := map[string]any{
		"transactionId": req.Reference,
		"refund":        map[string]any{"amount": req.Amount.Decimal()},
	}
	if req.ProviderKey != "" {
		input["apiRequestKey"] = req.ProviderKey
	}
	query := "mutation refundTransaction($input: RefundTransactionInput!) { refundTransaction(input: $input) { refund { id status amount { value currencyCode } refundedTransaction { " + transactionFields + " } } } }"
	var data struct {
		RefundTransaction struct {
			Refund *struct {
				ID                  string          `json:"id"`
				Status              string          `json:"status"`
				Amount              gqlMoney        `json:"amount"`
				RefundedTransaction *gqlTransaction `json:"refundedTransaction"`
			} `json:"refund"`
		} `json:"refundTransaction"`
	}
	if err := p.do(ctx, op, true, query, map[string]any{"input": input}, &data); err != nil {
		return nil, err
	}
	r := data.RefundTransaction.Refund
	if r == nil || r.ID == "" {
		return nil, p.malformed(op, "no refund in refundTransaction payload")
	}
	switch r.Status {
	case "PROCESSOR_DECLINED", "GATEWAY_REJECTED", "FAILED", "SETTLEMENT_DECLINED":
		return nil, &paymux.ProviderError{Provider: p.name, Operation: op, Kind: paymux.KindConflict,
			Code: "refund_" + strings.ToLower(r.Status), Message: "refund " + r.ID + " " + strings.ToLower(r.Status)}
	}
	amount, err := r.Amount.money(req.Amount.Currency)
	if err != nil {
		return nil, p.malformed(op, err.Error())
	}
	res := &paymux.ProviderPayment{Reference: req.Reference, Status: paymux.StatusRefunded, Amount: req.Amount,
		RefundReference: r.ID, UpdatedAt: p.now(),
		Refunds: []paymux.ProviderRefund{{Reference: r.ID, Amount: amount.Amount, Status: "succeeded"}}}
	if t := r.RefundedTransaction; t != nil {
		if pp, err := p.toPayment(op, t, req.Amount.Currency); err == nil {
			res.Amount, res.Authorized, res.Captured = pp.Amount, pp.Authorized, pp.Captured
		}
	}
	return res, nil
}

// Void implements paymux.Provider with voidTransaction, never
// reverseTransaction: a reversal of a settled transaction is a full refund,
// and Void must not move money back by surprise. voidTransaction takes no
// apiRequestKey; a repeated void is refused, so a refusal is checked against
// the transaction's status and a voided one is success.
func (p *Provider) Void(ctx context.Context, req *paymux.VoidRequest) (*paymux.ProviderPayment, error) {
	const op = paymux.OpVoid
	if req.Reference == "" {
		return nil, p.invalid(op, "reference is required")
	}
	query := "mutation voidTransaction($input: VoidTransactionInput!) { voidTransaction(input: $input) { transaction { " + transactionFields + " } } }"
	var data struct {
		VoidTransaction struct {
			Transaction *gqlTransaction `json:"transaction"`
		} `json:"voidTransaction"`
	}
	err := p.do(ctx, op, true, query, map[string]any{"input": map[string]any{"transactionId": req.Reference}}, &data)
	if err != nil {
		var pe *paymux.ProviderError
		if errors.As(err, &pe) && pe.Kind == paymux.KindConflict {
			if cur, lerr := p.Lookup(ctx, &paymux.LookupRequest{Reference: req.Reference}); lerr == nil && cur.Status == paymux.StatusVoided {
				return cur, nil
			}
		}
		return nil, err
	}
	t := data.VoidTransaction.Transaction
	if t == nil {
		return nil, p.malformed(op, "no transaction in voidTransaction payload")
	}
	return p.toPayment(op, t, "")
}

// Lookup implements paymux.Provider: node(id) by reference, otherwise a
// transaction search by orderId (the paymux key). Braintree does not expose
// apiRequestKey in search, so ProviderKey alone cannot find a transaction.
func (p *Provider) Lookup(ctx context.Context, req *paymux.LookupRequest) (*paymux.ProviderPayment, error) {
	const op = paymux.OpLookup
	if req.Reference != "" {
		query := "query node($id: ID!) { node(id: $id) { __typename ... on Transaction { " + transactionFields + " } } }"
		var data struct {
			Node *gqlTransaction `json:"node"`
		}
		if err := p.do(ctx, op, false, query, map[string]any{"id": req.Reference}, &data); err != nil {
			return nil, err
		}
		if data.Node == nil || data.Node.ID == "" {
			return nil, &paymux.ProviderError{Provider: p.name, Operation: op, Kind: paymux.KindNotFound, Code: "NOT_FOUND", Message: "no transaction " + req.Reference}
		}
		return p.toPayment(op, data.Node, req.Amount.Currency)
	}
	if req.PaymentKey == "" && req.ProviderKey == "" {
		return nil, p.invalid(op, "reference, provider key or payment key is required")
	}
	if req.ProviderKey != "" {
		// The attempt's own transaction, whatever its outcome.
		best, err := p.searchOrderID(ctx, map[string]any{"endsWith": orderIDSep + req.ProviderKey}, func(id string) bool {
			_, pk := splitOrderID(id)
			return pk == req.ProviderKey
		})
		if err != nil {
			return nil, err
		}
		if best != nil {
			return p.toPayment(op, best, req.Amount.Currency)
		}
	}
	if req.PaymentKey != "" {
		// The attempts of this payment: "<key>#pmx_..." (narrow, so one page
		// holds them), then the bare key that orderID falls back to.
		for _, cond := range []map[string]any{{"startsWith": req.PaymentKey + orderIDSep + "pmx_"}, {"is": req.PaymentKey}} {
			best, err := p.searchOrderID(ctx, cond, func(id string) bool {
				key, _ := splitOrderID(id)
				return key == req.PaymentKey
			})
			if err != nil {
				return nil, err
			}
			if best != nil {
				return p.toPayment(op, best, req.Amount.Currency)
			}
		}
	}
	return nil, &paymux.ProviderError{Provider: p.name, Operation: op, Kind: paymux.KindNotFound, Code: "NOT_FOUND", Message: "no transaction with that order id"}
}

// searchOrderID searches transactions by orderId and returns the best of
// those match accepts: one that did not fail (money moved on it), else the
// newest.
func (p *Provider) searchOrderID(ctx context.Context, cond map[string]any, match func(orderID string) bool) (*gqlTransaction, error) {
	query := "query search($input: TransactionSearchInput!) { search { transactions(input: $input) { edges { node { " + transactionFields + " } } } } }"
	var data struct {
		Search struct {
			Transactions struct {
				Edges []struct {
					Node *gqlTransaction `json:"node"`
				} `json:"edges"`
			} `json:"transactions"`
		} `json:"search"`
	}
	if err := p.do(ctx, paymux.OpLookup, false, query, map[string]any{"input": map[string]any{"orderId": cond}}, &data); err != nil {
		return nil, err
	}
	var best *gqlTransaction
	for _, e := range data.Search.Transactions.Edges {
		n := e.Node
		if n == nil || !match(n.OrderID) {
			continue
		}
		if best == nil || (isFailedStatus(best.Status) && !isFailedStatus(n.Status)) ||
			(isFailedStatus(best.Status) == isFailedStatus(n.Status) && n.CreatedAt > best.CreatedAt) {
			best = n
		}
	}
	return best, nil
}

// orderIDSep separates the paymux key from the provider key in orderId.
// Provider keys ("pmx_" + hex) never contain it, so the last one splits.
const orderIDSep = "#"

// orderID builds the transaction's orderId; Braintree allows 255
// characters, 127 for PayPal.
func orderID(paymentKey, providerKey string, m paymux.MethodType) string {
	limit := 255
	if m == paymux.MethodPayPal {
		limit = 127
	}
	id := paymentKey
	if providerKey != "" {
		id = paymentKey + orderIDSep + providerKey
	}
	if len(id) > limit {
		return paymentKey
	}
	return id
}

// splitOrderID is the inverse of orderID: the paymux key and the provider
// key ("" when orderId holds the paymux key alone).
func splitOrderID(id string) (paymentKey, providerKey string) {
	i := strings.LastIndex(id, orderIDSep)
	if i < 0 || !strings.HasPrefix(id[i+1:], "pmx_") || strings.ContainsAny(id[i+1:], orderIDSep) {
		return id, ""
	}
	return id[:i], id[i+1:]
}

func (p *Provider) invalid(op paymux.Operation, msg string) error {
	return &paymux.ProviderError{Provider: p.name, Operation: op, Kind: paymux.KindInvalidRequest, Code: "client_validation", Message: msg}
}

// malformed is a 200 answer paymux cannot read. For a mutation the request
// may well have been processed, so it is OutcomeUnknown.
func (p *Provider) malformed(op paymux.Operation, msg string) error {
	return &paymux.ProviderError{Provider: p.name, Operation: op, Kind: paymux.KindOutcomeUnknown, Code: "malformed_response", Message: msg}
}
