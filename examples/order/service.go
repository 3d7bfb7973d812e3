// Package order is the reference platform's order service: flash-sale
// products with limited stock, atomic reservations that never oversell,
// guest and signed-in checkout through paymux with the order id as the
// idempotency key, a queue in front of payment, and order status driven by
// webhooks.
package order

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/examples/internal/httpjson"
	"github.com/paymux/paymux/examples/session"
)

// Config configures the service. Zero values mean:
//
//	Store, Orchestrator, Sessions  required
//	Queue            an in-process MemoryQueue of 100,000 orders
//	Workers          32 payment workers
//	ReservationTTL   10 min: unpaid stock comes back after this
//	MaxPayAttempts   8 worker attempts before an order fails
//	AdminToken       "": the fulfil and refund endpoints are closed
//	ReturnURL        "http://localhost:8080/": where 3-D Secure comes back to
//	Clock            time.Now
//	Logger           slog.Default()
type Config struct {
	Store          Store
	Orchestrator   *paymux.Orchestrator
	Sessions       *session.Service
	Queue          Queue
	Workers        int
	ReservationTTL time.Duration
	MaxPayAttempts int
	AdminToken     paymux.Secret
	ReturnURL      string
	Clock          func() time.Time
	Logger         *slog.Logger
}

// Service serves /api/products, /api/checkout and /api/orders.
type Service struct {
	cfg    Config
	broker *broker
	wg     sync.WaitGroup
	cancel context.CancelFunc
	// stopTaking tells the queue's workers to take no more orders; the
	// ones they hold still finish (see Shutdown).
	stopTaking context.CancelFunc

	// paying holds the ids of orders this process's workers are paying
	// now (the expiry sweep leaves them alone); attempts counts each
	// order's worker attempts, for MaxPayAttempts.
	paying   sync.Map
	attempts sync.Map
	placed   *justWritten // orders checkout placed, for this process's workers
	settled  *justWritten // orders a worker saved as sold, for the webhook that follows

	catMu   sync.Mutex
	catalog map[string]Product // product definitions, without stock
	catAt   time.Time
}

// New checks cfg and builds the service. Call Start to run its workers.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Orchestrator == nil || cfg.Sessions == nil {
		return nil, errors.New("order: Store, Orchestrator and Sessions are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Queue == nil {
		cfg.Queue = NewMemoryQueue(100_000, cfg.Logger)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 32
	}
	if cfg.ReservationTTL <= 0 {
		cfg.ReservationTTL = 10 * time.Minute
	}
	if cfg.MaxPayAttempts <= 0 {
		cfg.MaxPayAttempts = 8
	}
	if cfg.ReturnURL == "" {
		cfg.ReturnURL = "http://localhost:8080/"
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &Service{cfg: cfg, broker: newBroker(), placed: newJustWritten(justWrittenSize, placedTTL), settled: newJustWritten(justWrittenSize, settledTTL)}, nil
}

// Register mounts the service's routes on mux.
func (s *Service) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/products", s.handleProducts)
	mux.HandleFunc("GET /api/products/{id}", s.handleProduct)
	mux.HandleFunc("POST /api/checkout", s.handleCheckout)
	mux.HandleFunc("GET /api/orders", s.handleHistory)
	mux.HandleFunc("GET /api/orders/{id}", s.handleOrder)
	mux.HandleFunc("GET /api/orders/{id}/events", s.handleOrderEvents)
	mux.HandleFunc("POST /api/orders/{id}/fulfil", s.handleFulfil)
	mux.HandleFunc("POST /api/orders/{id}/refund", s.handleRefund)
}

// Start runs the payment workers and the recovery sweeps until Shutdown.
func (s *Service) Start(ctx context.Context) {
	// The workers outlive ctx: Shutdown decides when they stop taking work.
	consumeCtx, stopTaking := context.WithCancel(context.WithoutCancel(ctx))
	ctx, s.cancel = context.WithCancel(ctx)
	s.stopTaking = stopTaking
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		_ = s.cfg.Queue.Consume(consumeCtx, s.cfg.Workers, s.pay)
	}()
	go func() {
		defer s.wg.Done()
		s.sweep(ctx)
	}()
}

// Shutdown stops taking new work and lets the workers drain the queue. If
// ctx ends first, the workers take no more orders but still finish the
// payments they are making, and Shutdown returns ctx.Err() after them.
// Whatever was not taken stays "queued" in the store and is picked up at
// the next start.
//
// Shutdown never returns while a payment is in flight: the caller closes the
// stores next, and a payment cut there would leave its paymux claim held
// (so the next start could not pay the order until the claim lease ran
// out) and its order stuck in "processing". Each payment is bounded by the
// orchestrator's call time-outs.
func (s *Service) Shutdown(ctx context.Context) error {
	_ = s.cfg.Queue.Close() // the workers drain the queue, then Consume returns
	if s.cancel != nil {
		s.cancel() // the sweeper stops; workers run on a context of their own
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	if s.stopTaking != nil {
		s.stopTaking()
	}
	<-done
	return ctx.Err()
}

// Seed creates products (leaving the stock of existing ones alone).
func (s *Service) Seed(ctx context.Context, products []Product) error {
	for _, p := range products {
		if err := s.cfg.Store.SeedProduct(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) now() time.Time { return s.cfg.Clock() }

// product returns a product's definition from a short-lived cache: prices
// and windows do not change during a drop, and checkout should not read
// them from the store every time.
func (s *Service) product(ctx context.Context, id string) (Product, error) {
	s.catMu.Lock()
	if s.catalog == nil || s.now().Sub(s.catAt) > 5*time.Second {
		s.catMu.Unlock()
		all, err := s.cfg.Store.Products(ctx)
		if err != nil {
			return Product{}, err
		}
		m := make(map[string]Product, len(all))
		for _, p := range all {
			m[p.ID] = p
		}
		s.catMu.Lock()
		s.catalog, s.catAt = m, s.now()
	}
	p, ok := s.catalog[id]
	s.catMu.Unlock()
	if !ok {
		return Product{}, ErrNotFound
	}
	return p, nil
}

func (s *Service) handleProducts(w http.ResponseWriter, r *http.Request) {
	ps, err := s.cfg.Store.Products(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "try again")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"products": ps, "now": s.now()})
}

func (s *Service) handleProduct(w http.ResponseWriter, r *http.Request) {
	p, err := s.cfg.Store.Product(r.Context(), r.PathValue("id"))
	if errors.Is(err, ErrNotFound) {
		writeError(w, http.StatusNotFound, "no such product")
		return
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "try again")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"product": p, "now": s.now()})
}

// CheckoutRequest is the body of POST /api/checkout.
type CheckoutRequest struct {
	PaymentMethod paymux.PaymentMethod `json:"payment_method"`
	Country       string               `json:"country"`
	Currency      paymux.Currency      `json:"currency"`
	Campaign      string               `json:"campaign"`
	Email         string               `json:"email"`
}

// CampaignCookie remembers the campaign link the buyer arrived by.
const CampaignCookie = "shop_campaign"

// currencyOf is the currency a buyer from country pays in.
func currencyOf(country string) paymux.Currency {
	switch country {
	case "US":
		return "USD"
	case "GB":
		return "GBP"
	case "JP":
		return "JPY"
	case "SE":
		return "SEK"
	}
	return "EUR"
}

func (s *Service) handleCheckout(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Sessions.CheckCSRF(r); err != nil {
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	idem := r.Header.Get("Idempotency-Key")
	if idem == "" || len(idem) > 128 {
		writeError(w, http.StatusBadRequest, "an Idempotency-Key header (one per checkout attempt) is required")
		return
	}
	var in CheckoutRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8192)).Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, "malformed body")
		return
	}
	if in.PaymentMethod.Token == "" {
		writeError(w, http.StatusBadRequest, "payment_method.token is required")
		return
	}
	if paymux.LooksLikeCardNumber(in.PaymentMethod.Token) {
		writeError(w, http.StatusBadRequest, "send a provider token, never a card number")
		return
	}
	cart, who, err := s.cfg.Sessions.CartOf(r)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "try again")
		return
	}
	// The order id is derived from who is buying and the checkout attempt's
	// key, so a double-click or a retry after a time-out finds the same order.
	scope := "guest:"
	if who != nil {
		scope = "user:" + who.UserID
	} else if c, err := r.Cookie(session.CSRFCookie); err == nil {
		scope += c.Value
	}
	orderID := "ord_" + shortHash(scope+"\x00"+idem)
	// A retry or a double-click of an order that exists is answered by
	// PlaceOrder below, which returns it without taking stock; there is no
	// read first, as most checkouts are new.
	if len(cart.Items) == 0 {
		// A signed-in double-click: the other click may have created the
		// order and cleared the saved cart between our two reads.
		if existing, err := s.cfg.Store.GetOrder(r.Context(), orderID); err == nil {
			writeJSON(w, http.StatusOK, map[string]any{"order": existing})
			return
		}
		writeError(w, http.StatusBadRequest, "the cart is empty")
		return
	}
	country := strings.ToUpper(in.Country)
	if country == "" && who != nil {
		country = who.Country
	}
	if len(country) != 2 {
		writeError(w, http.StatusBadRequest, "country (ISO 3166-1 alpha-2) is required")
		return
	}
	cur := paymux.Currency(strings.ToUpper(string(in.Currency)))
	if cur == "" {
		cur = currencyOf(country)
	}
	campaign := in.Campaign
	if campaign == "" {
		if c, err := r.Cookie(CampaignCookie); err == nil {
			campaign = c.Value
		}
	}
	now := s.now()
	var items []Item
	var total int64
	for _, line := range cart.Items {
		p, err := s.product(r.Context(), line.ProductID)
		if err != nil {
			writeError(w, http.StatusBadRequest, "unknown product "+line.ProductID)
			return
		}
		if now.Before(p.SaleStart) || (!p.SaleEnd.IsZero() && !now.Before(p.SaleEnd)) {
			// The retry of a checkout placed before the sale closed gets
			// its order, not a refusal.
			if existing, err := s.cfg.Store.GetOrder(r.Context(), orderID); err == nil {
				writeJSON(w, http.StatusOK, map[string]any{"order": existing})
				return
			}
			writeError(w, http.StatusConflict, "the sale for "+p.Name+" is not open")
			return
		}
		price, ok := p.Prices[cur]
		if !ok {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%s is not sold in %s", p.Name, cur))
			return
		}
		items = append(items, Item{ProductID: p.ID, Quantity: line.Quantity, UnitPrice: price})
		total += price * int64(line.Quantity)
	}
	// From here the order is being committed: finish it even if the buyer
	// hangs up, so that no half-made order waits for a sweep.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	until := now.Add(s.cfg.ReservationTTL)
	o := &Order{
		ID: orderID, Items: items, Amount: paymux.NewMoney(total, cur), Country: country, Campaign: campaign,
		Method: in.PaymentMethod, MethodType: in.PaymentMethod.Type, Status: StatusQueued,
		ReservedUntil: until, CreatedAt: now, UpdatedAt: now, Email: in.Email,
	}
	if o.MethodType == "" {
		o.MethodType = paymux.MethodCard
		o.Method.Type = paymux.MethodCard
	}
	if who != nil {
		o.UserID, o.Email = who.UserID, who.Email
	}
	stored, created, err := s.cfg.Store.PlaceOrder(cctx, o, until)
	if errors.Is(err, ErrSoldOut) {
		writeError(w, http.StatusConflict, "sold out")
		return
	}
	if err != nil {
		// Both or neither: a retry with the same key places it again.
		s.cfg.Logger.Error("order: placing failed", "order", orderID, "err", err)
		writeError(w, http.StatusServiceUnavailable, "try again")
		return
	}
	// Publish whenever the order is still queued, not only when this request
	// created it: two racing requests for one order must not each assume the
	// other published, and a retry may follow a lost publish. Paying is
	// idempotent by order id.
	if stored.Status == StatusQueued {
		if _, inProcess := s.cfg.Queue.(*MemoryQueue); created && inProcess {
			s.placed.put(stored, now) // this process's workers take it
		}
		if err := s.cfg.Queue.Publish(cctx, orderID); err != nil {
			s.placed.drop(orderID)
			// Still queued in the store: the recovery sweep publishes it.
			s.cfg.Logger.Warn("order: publish failed; recovery will pick it up", "order", orderID, "err", err)
		}
	}
	if !created {
		writeJSON(w, http.StatusOK, map[string]any{"order": stored})
		return
	}
	_ = s.cfg.Sessions.ClearCart(w, r, who)
	writeJSON(w, http.StatusAccepted, map[string]any{"order": stored})
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:12])
}

// maxOrderWait bounds a long poll, below common proxy idle time-outs.
const maxOrderWait = 25 * time.Second

// handleOrder answers GET /api/orders/{id}. With ?wait=<duration> (at most
// 25s) it is a long poll: it answers as soon as the order's status differs
// from ?after=<status> (default: the status it has now), or when the wait
// ends, so a client follows an order with one request per status change
// instead of a poll loop.
func (s *Service) handleOrder(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var wait time.Duration
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			writeError(w, http.StatusBadRequest, "wait must be a duration such as 20s")
			return
		}
		wait = min(d, maxOrderWait)
	}
	var updates chan *Order
	if wait > 0 {
		// Subscribe before reading, so that a change between the read and
		// the wait is not missed.
		ch, unsubscribe := s.broker.subscribe(id)
		defer unsubscribe()
		updates = ch
	}
	o, err := s.orderNow(r.Context(), id)
	if err == nil && wait > 0 {
		after := Status(r.URL.Query().Get("after"))
		if after == "" {
			after = o.Status
		}
		o = s.awaitChange(r.Context(), id, o, after, wait, updates)
	}
	if errors.Is(err, ErrNotFound) {
		writeError(w, http.StatusNotFound, "no such order")
		return
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "try again")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"order": o})
}

// orderNow returns the order as it is now: from s.placed while this
// process's workers hold it (it is still as checkout placed it: those
// workers drop it there before they publish a change), else from the store.
// A caller that waits for changes subscribes first, so that a change
// published after this returns reaches it.
func (s *Service) orderNow(ctx context.Context, id string) (*Order, error) {
	if o, ok := s.placed.peek(id, s.now()); ok {
		return o, nil
	}
	return s.cfg.Store.GetOrder(ctx, id)
}

// awaitChange waits until the order's status is not after, for at most
// wait, and returns the order as last seen. Changes made in this process
// arrive on updates; a read every second catches those of other instances,
// except while this process's own workers hold the order.
func (s *Service) awaitChange(ctx context.Context, id string, o *Order, after Status, wait time.Duration, updates chan *Order) *Order {
	if o.Status != after || o.Status.Final() {
		return o
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return o
		case <-timer.C:
			return o
		case u := <-updates:
			if u.Version >= o.Version {
				o = u
			}
		case <-tick.C:
			if s.placed.has(id, s.now()) || s.busy(id) {
				// Queued for or being paid by this process's workers: its
				// next change is published here.
				continue
			}
			if cur, err := s.cfg.Store.GetOrder(ctx, id); err == nil {
				o = cur
			}
		}
		if o.Status != after {
			return o
		}
	}
}

func (s *Service) handleHistory(w http.ResponseWriter, r *http.Request) {
	who, err := s.cfg.Sessions.Authenticate(r)
	if err != nil {
		writeError(w, http.StatusUnauthorized, "sign in to see your orders")
		return
	}
	orders, err := s.cfg.Store.OrdersByUser(r.Context(), who.UserID, 50)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "try again")
		return
	}
	if orders == nil {
		orders = []*Order{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"orders": orders})
}

// handleOrderEvents streams an order's status as server-sent events until it
// is final. Updates come from this process's workers and webhooks at once,
// and from a one-second poll for changes made by other instances.
func (s *Service) handleOrderEvents(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	// Subscribe before reading, so that a change in between is not missed.
	ch, unsubscribe := s.broker.subscribe(id)
	defer unsubscribe()
	o, err := s.orderNow(r.Context(), id)
	if err != nil {
		writeError(w, http.StatusNotFound, "no such order")
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	last := Status("")
	send := func(o *Order) bool {
		if o.Status != last {
			last = o.Status
			b, _ := json.Marshal(o)
			fmt.Fprintf(w, "event: status\ndata: %s\n\n", b)
			fl.Flush()
		}
		return o.Status.Final()
	}
	if send(o) {
		return
	}
	for {
		// The long poll's wait: this process's updates at once, other
		// instances' within a second; a comment line after 15 s of quiet
		// keeps proxies from closing the stream.
		next := s.awaitChange(r.Context(), id, o, last, 15*time.Second, ch)
		if r.Context().Err() != nil {
			return
		}
		if next.Status == last {
			fmt.Fprint(w, ": keep-alive\n\n")
			fl.Flush()
			continue
		}
		o = next
		if send(o) {
			return
		}
	}
}

func (s *Service) admin(r *http.Request) bool {
	tok := s.cfg.AdminToken.Reveal()
	h := r.Header.Get("Authorization")
	return tok != "" && strings.HasPrefix(h, "Bearer ") && subtle.ConstantTimeCompare([]byte(strings.TrimPrefix(h, "Bearer ")), []byte(tok)) == 1
}

// handleFulfil ships an order: it captures the authorised payment.
func (s *Service) handleFulfil(w http.ResponseWriter, r *http.Request) {
	if !s.admin(r) {
		writeError(w, http.StatusUnauthorized, "admin token required")
		return
	}
	o, err := s.cfg.Store.GetOrder(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusNotFound, "no such order")
		return
	}
	if o.Status == StatusCaptured || o.Status == StatusRefunded {
		writeJSON(w, http.StatusOK, map[string]any{"order": o})
		return
	}
	if o.Status != StatusPaid || o.PaymentID == "" {
		writeError(w, http.StatusConflict, "only paid orders can be fulfilled; this one is "+string(o.Status))
		return
	}
	p, err := s.cfg.Orchestrator.Capture(r.Context(), o.PaymentID, paymux.CaptureParams{Key: "fulfil-" + o.ID, Final: true})
	if err != nil {
		writeError(w, statusOfPaymentError(err), "capture failed: "+err.Error())
		return
	}
	o, err = s.applyPayment(r.Context(), o.ID, p, nil)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "captured; the order will catch up")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"order": o})
}

// handleRefund refunds an order, fully or by {"amount": n} minor units. The
// Idempotency-Key header makes a repeat refund nothing more.
func (s *Service) handleRefund(w http.ResponseWriter, r *http.Request) {
	if !s.admin(r) {
		writeError(w, http.StatusUnauthorized, "admin token required")
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		writeError(w, http.StatusBadRequest, "an Idempotency-Key header is required")
		return
	}
	var in struct {
		Amount int64  `json:"amount"`
		Reason string `json:"reason"`
	}
	if r.ContentLength != 0 {
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&in); err != nil {
			writeError(w, http.StatusBadRequest, "malformed body")
			return
		}
	}
	o, err := s.cfg.Store.GetOrder(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusNotFound, "no such order")
		return
	}
	if o.PaymentID == "" || (o.Status != StatusCaptured && o.Status != StatusRefunded) {
		writeError(w, http.StatusConflict, "only captured orders can be refunded; this one is "+string(o.Status))
		return
	}
	p, err := s.cfg.Orchestrator.Refund(r.Context(), o.PaymentID, paymux.RefundParams{Key: key, Amount: in.Amount, Reason: in.Reason})
	if err != nil {
		writeError(w, statusOfPaymentError(err), "refund failed: "+err.Error())
		return
	}
	o, err = s.applyPayment(r.Context(), o.ID, p, nil)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "refunded; the order will catch up")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"order": o, "refunded": p.Refunded})
}

func statusOfPaymentError(err error) int {
	switch {
	case errors.Is(err, paymux.ErrAmountExceeded), errors.Is(err, paymux.ErrInvalidState), errors.Is(err, paymux.ErrInvalidRequest):
		return http.StatusConflict
	case errors.Is(err, paymux.ErrInProgress):
		return http.StatusConflict
	case errors.Is(err, paymux.ErrDeclined):
		return http.StatusPaymentRequired
	}
	return http.StatusBadGateway
}

func writeJSON(w http.ResponseWriter, status int, v any) { httpjson.Write(w, status, v) }

func writeError(w http.ResponseWriter, status int, msg string) { httpjson.Error(w, status, msg) }

func methodOf(t paymux.MethodType, token string) paymux.PaymentMethod {
	return paymux.PaymentMethod{Type: t, Token: token}
}

// Products lists the products with their stock left.
func (s *Service) Products(ctx context.Context) ([]Product, error) { return s.cfg.Store.Products(ctx) }

// Store returns the order store (the surge tool counts oversells with it).
func (s *Service) Store() Store { return s.cfg.Store }
