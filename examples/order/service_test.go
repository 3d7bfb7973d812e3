package order_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/examples/internal/testenv"
	"github.com/paymux/paymux/examples/order"
	"github.com/paymux/paymux/examples/session"
	"github.com/paymux/paymux/examples/shop/app"
	"github.com/paymux/paymux/providers/sim"
)

type shop struct {
	app *app.App
	srv *httptest.Server
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// setup starts the whole platform on the memory store (cfg may override).
func setup(t *testing.T, cfg app.Config) *shop {
	t.Helper()
	if cfg.Store == "" {
		cfg.Store = "memory"
	}
	cfg.Dev = true
	cfg.BcryptCost = bcrypt.MinCost
	cfg.LoginRate, cfg.LoginBurst = 1000, 1000
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	if cfg.Workers == 0 {
		cfg.Workers = 4
	}
	ctx := context.Background()
	a, err := app.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.Start(ctx)
	srv := httptest.NewServer(a.Handler)
	s := &shop{app: a, srv: srv}
	t.Cleanup(func() {
		srv.Close()
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = a.Shutdown(sctx)
	})
	return s
}

// buyer is one browser: a cookie jar and the CSRF header.
type buyer struct {
	t    *testing.T
	s    *shop
	http *http.Client
}

func (s *shop) buyer(t *testing.T, landing string) *buyer {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	b := &buyer{t: t, s: s, http: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
	resp, err := b.http.Get(s.srv.URL + landing)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", landing, resp.Status)
	}
	return b
}

func (b *buyer) csrf() string {
	u, _ := url.Parse(b.s.srv.URL)
	for _, c := range b.http.Jar.Cookies(u) {
		if c.Name == session.CSRFCookie {
			return c.Value
		}
	}
	return ""
}

// do sends a request and decodes the JSON answer into out (if not nil).
func (b *buyer) do(method, path string, body any, hdr map[string]string, out any) int {
	b.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, b.s.srv.URL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(session.CSRFHeader, b.csrf())
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.http.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			b.t.Fatalf("%s %s: %s: %q", method, path, err, raw)
		}
	}
	return resp.StatusCode
}

func (b *buyer) login(email string) {
	b.t.Helper()
	if st := b.do("POST", "/api/session/login", map[string]string{"email": email, "password": "drop-2026"}, nil, nil); st != http.StatusOK {
		b.t.Fatalf("login: %d", st)
	}
}

func (b *buyer) add(product string, qty int) {
	b.t.Helper()
	if st := b.do("POST", "/api/cart/items", map[string]any{"product_id": product, "quantity": qty}, nil, nil); st != http.StatusOK {
		b.t.Fatalf("add to cart: %d", st)
	}
}

type orderReply struct {
	Order    order.Order `json:"order"`
	Error    string      `json:"error"`
	Refunded int64       `json:"refunded"`
}

func (b *buyer) checkout(token, key string) (int, orderReply) {
	b.t.Helper()
	var r orderReply
	st := b.do("POST", "/api/checkout", map[string]any{"payment_method": map[string]string{"type": "card", "token": token}, "country": "DE"},
		map[string]string{"Idempotency-Key": key}, &r)
	return st, r
}

// waitStatus polls the order until it reaches want (or any final status).
func (b *buyer) waitStatus(id string, want order.Status) order.Order {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var r orderReply
		if st := b.do("GET", "/api/orders/"+id, nil, nil, &r); st != http.StatusOK {
			b.t.Fatalf("get order: %d", st)
		}
		if r.Order.Status == want {
			return r.Order
		}
		if r.Order.Status.Final() || time.Now().After(deadline) {
			b.t.Fatalf("order %s is %s (%s), want %s", id, r.Order.Status, r.Order.FailureReason, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *buyer) stock(product string) int {
	b.t.Helper()
	var r struct {
		Product order.Product `json:"product"`
	}
	b.do("GET", "/api/products/"+product, nil, nil, &r)
	return r.Product.Stock
}

func (s *shop) admin() map[string]string {
	return map[string]string{"Authorization": "Bearer " + s.app.AdminToken().Reveal()}
}

func (s *shop) sim(name string) *sim.Provider {
	for _, p := range s.app.Sims {
		if p.Name() == name {
			return p
		}
	}
	return nil
}

func TestGuestCheckoutPaid(t *testing.T) {
	t.Parallel()
	s := setup(t, app.Config{})
	b := s.buyer(t, "/")
	before := b.stock("nova-sneaker")
	b.add("nova-sneaker", 2)
	st, r := b.checkout(sim.TokenApprove, "k1")
	if st != http.StatusAccepted || r.Order.Status != order.StatusQueued {
		t.Fatalf("checkout: %d %+v", st, r)
	}
	o := b.waitStatus(r.Order.ID, order.StatusPaid)
	if o.Amount != paymux.NewMoney(2*18900, "EUR") || o.UserID != "" || o.PaymentID == "" {
		t.Fatalf("paid order = %+v", o)
	}
	if got := b.stock("nova-sneaker"); got != before-2 {
		t.Fatalf("stock %d, want %d", got, before-2)
	}
	if sold, _ := s.app.Orders.Store().Sold(context.Background(), "nova-sneaker"); sold != 2 {
		t.Fatalf("sold = %d, want 2", sold)
	}
	// The cart is empty after checkout; history needs a sign-in.
	var cart session.Cart
	b.do("GET", "/api/cart", nil, nil, &cart)
	if len(cart.Items) != 0 {
		t.Fatalf("cart after checkout: %+v", cart)
	}
	if st := b.do("GET", "/api/orders", nil, nil, nil); st != http.StatusUnauthorized {
		t.Fatalf("guest history: %d", st)
	}
}

func TestSignedInCheckoutHistory(t *testing.T) {
	t.Parallel()
	s := setup(t, app.Config{})
	b := s.buyer(t, "/")
	b.add("nova-hoodie", 1) // anonymous cart, merged at sign-in
	b.login("ana@example.com")
	st, r := b.checkout(sim.TokenApprove, "k1")
	if st != http.StatusAccepted {
		t.Fatalf("checkout: %d %+v", st, r)
	}
	b.waitStatus(r.Order.ID, order.StatusPaid)
	var h struct {
		Orders []order.Order `json:"orders"`
	}
	if st := b.do("GET", "/api/orders", nil, nil, &h); st != http.StatusOK {
		t.Fatalf("history: %d", st)
	}
	if len(h.Orders) != 1 || h.Orders[0].ID != r.Order.ID || h.Orders[0].Email != "ana@example.com" || h.Orders[0].Items[0].ProductID != "nova-hoodie" {
		t.Fatalf("history = %+v", h.Orders)
	}
}

func TestDoubleClickOneCharge(t *testing.T) {
	t.Parallel()
	for _, signedIn := range []bool{false, true} {
		t.Run(fmt.Sprint("signedIn=", signedIn), func(t *testing.T) {
			t.Parallel()
			s := setup(t, app.Config{})
			b := s.buyer(t, "/")
			if signedIn {
				b.login("ben@example.com")
			}
			b.add("nova-sneaker", 1)
			before := b.stock("nova-sneaker")
			const clicks = 8
			ids := make([]string, clicks)
			var wg sync.WaitGroup
			for i := 0; i < clicks; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					var r orderReply
					st := b.do("POST", "/api/checkout", map[string]any{"payment_method": map[string]string{"type": "card", "token": sim.TokenApprove}, "country": "US"},
						map[string]string{"Idempotency-Key": "same-click"}, &r)
					if st != http.StatusAccepted && st != http.StatusOK {
						t.Errorf("click %d: %d %s", i, st, r.Error)
					}
					ids[i] = r.Order.ID
				}(i)
			}
			wg.Wait()
			for _, id := range ids {
				if id != ids[0] {
					t.Fatalf("clicks made different orders: %v", ids)
				}
			}
			b.waitStatus(ids[0], order.StatusPaid)
			if got := b.stock("nova-sneaker"); got != before-1 {
				t.Fatalf("stock %d after one order, want %d (one reservation)", got, before-1)
			}
			charges := 0
			for _, p := range s.app.Sims {
				charges += p.Charges(ids[0])
			}
			if charges != 1 {
				t.Fatalf("%d charges for one order", charges)
			}
		})
	}
}

func TestDeclineReleasesStock(t *testing.T) {
	t.Parallel()
	s := setup(t, app.Config{})
	b := s.buyer(t, "/")
	before := b.stock("nova-sneaker")
	b.add("nova-sneaker", 3)
	_, r := b.checkout(sim.TokenHardDecline, "k")
	o := b.waitStatus(r.Order.ID, order.StatusFailed)
	if o.FailureReason == "" {
		t.Fatal("no failure reason")
	}
	if got := b.stock("nova-sneaker"); got != before {
		t.Fatalf("stock %d after a decline, want %d back", got, before)
	}
	if sold, _ := s.app.Orders.Store().Sold(context.Background(), "nova-sneaker"); sold != 0 {
		t.Fatalf("sold = %d", sold)
	}
}

func TestThreeDSecureThenWebhookPaid(t *testing.T) {
	t.Parallel()
	s := setup(t, app.Config{})
	b := s.buyer(t, "/")
	b.add("nova-sneaker", 1)
	_, r := b.checkout(sim.TokenThreeDS, "k")
	o := b.waitStatus(r.Order.ID, order.StatusRequiresAction)
	if o.NextActionURL == "" {
		t.Fatalf("requires_action without next_action_url: %+v", o)
	}
	p, err := s.app.Orch.GetByKey(context.Background(), o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.sim(p.Provider).CompleteAction(context.Background(), p.ProviderRef); err != nil {
		t.Fatal(err)
	}
	// Only the provider's webhook can tell the shop: nothing else polls.
	b.waitStatus(o.ID, order.StatusPaid)
}

func TestFulfilAndRefundOnce(t *testing.T) {
	t.Parallel()
	s := setup(t, app.Config{})
	b := s.buyer(t, "/")
	b.add("nova-hoodie", 1)
	_, r := b.checkout(sim.TokenApprove, "k")
	id := r.Order.ID
	b.waitStatus(id, order.StatusPaid)
	if st := b.do("POST", "/api/orders/"+id+"/fulfil", nil, nil, nil); st != http.StatusUnauthorized {
		t.Fatalf("fulfil without the admin token: %d", st)
	}
	if st := b.do("POST", "/api/orders/"+id+"/refund", nil, map[string]string{"Idempotency-Key": "r1"}, nil); st != http.StatusUnauthorized {
		t.Fatalf("refund without the admin token: %d", st)
	}
	var fr orderReply
	if st := b.do("POST", "/api/orders/"+id+"/fulfil", nil, s.admin(), &fr); st != http.StatusOK || fr.Order.Status != order.StatusCaptured {
		t.Fatalf("fulfil: %d %+v", st, fr)
	}
	hdr := s.admin()
	hdr["Idempotency-Key"] = "refund-1"
	for i := 0; i < 2; i++ {
		var rr orderReply
		if st := b.do("POST", "/api/orders/"+id+"/refund", nil, hdr, &rr); st != http.StatusOK || rr.Order.Status != order.StatusRefunded || rr.Refunded != 7900 {
			t.Fatalf("refund %d: %d %+v", i, st, rr)
		}
	}
	p, err := s.app.Orch.GetByKey(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Refunds) != 1 || p.Refunded != 7900 {
		t.Fatalf("payment refunds = %+v, refunded %d; want one refund of 7900", p.Refunds, p.Refunded)
	}
	b.waitStatus(id, order.StatusRefunded)
}

func TestSoldOut(t *testing.T) {
	t.Parallel()
	now := time.Now()
	s := setup(t, app.Config{Products: []order.Product{{ID: "last-pair", Name: "Last pair", Prices: map[paymux.Currency]int64{"EUR": 100},
		Stock: 1, SaleStart: now.Add(-time.Minute), SaleEnd: now.Add(time.Hour)}}})
	first, second := s.buyer(t, "/"), s.buyer(t, "/")
	first.add("last-pair", 1)
	second.add("last-pair", 1)
	if st, r := first.checkout(sim.TokenApprove, "a"); st != http.StatusAccepted {
		t.Fatalf("first: %d %+v", st, r)
	}
	if st, r := second.checkout(sim.TokenApprove, "b"); st != http.StatusConflict || r.Error != "sold out" {
		t.Fatalf("second: %d %+v, want 409 sold out", st, r)
	}
}

func TestCampaignCookieReachesPayment(t *testing.T) {
	t.Parallel()
	s := setup(t, app.Config{})
	b := s.buyer(t, "/?c=drop-nova")
	b.add("nova-sneaker", 1)
	_, r := b.checkout(sim.TokenApprove, "k")
	o := b.waitStatus(r.Order.ID, order.StatusPaid)
	if o.Campaign != "drop-nova" {
		t.Fatalf("order campaign %q", o.Campaign)
	}
	p, err := s.app.Orch.GetByKey(context.Background(), o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p.Campaign != "drop-nova" {
		t.Fatalf("payment campaign %q, want drop-nova", p.Campaign)
	}
}

func TestOrderEventsStream(t *testing.T) {
	t.Parallel()
	s := setup(t, app.Config{SimLatency: 100 * time.Millisecond})
	b := s.buyer(t, "/")
	b.add("nova-sneaker", 1)
	_, r := b.checkout(sim.TokenApprove, "k")
	resp, err := b.http.Get(s.srv.URL + "/api/orders/" + r.Order.ID + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	var seen []order.Status
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		var o order.Order
		if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &o); err != nil {
			t.Fatal(err)
		}
		seen = append(seen, o.Status)
		if o.Status == order.StatusPaid {
			break
		}
	}
	if len(seen) == 0 || seen[len(seen)-1] != order.StatusPaid {
		t.Fatalf("stream showed %v, want it to end with paid", seen)
	}
}

func TestShutdownLosesNoOrder(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "shop.db")
	ctx := context.Background()
	cfg := app.Config{Store: "sqlite", SQLitePath: path, Workers: 2, SimLatency: 30 * time.Millisecond, Logger: quietLogger(),
		Dev: true, BcryptCost: bcrypt.MinCost}
	a, err := app.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.Start(ctx)
	srv := httptest.NewServer(a.Handler)
	s := &shop{app: a, srv: srv}
	b := s.buyer(t, "/")
	const n = 40
	ids := map[string]bool{}
	for i := 0; i < n; i++ {
		b.add("nova-hoodie", 1)
		st, r := b.checkout(sim.TokenApprove, fmt.Sprint("order-", i))
		if st != http.StatusAccepted {
			t.Fatalf("checkout %d: %d %+v", i, st, r)
		}
		ids[r.Order.ID] = true
	}
	srv.Close()
	// Too little time to pay them all: some must stay queued.
	sctx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	serr := a.Shutdown(sctx)
	cancel()
	t.Logf("shutdown: %v", serr)

	a2, err := app.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	st := a2.Orders.Store()
	left := 0
	for id := range ids {
		o, err := st.GetOrder(ctx, id)
		if err != nil {
			t.Fatalf("order %s lost: %v", id, err)
		}
		switch o.Status {
		case order.StatusPaid:
		case order.StatusQueued:
			left++
		default:
			t.Fatalf("order %s is %s after shutdown", id, o.Status)
		}
	}
	t.Logf("%d of %d orders left queued at shutdown", left, n)
	a2.Start(ctx)
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		_ = a2.Shutdown(sctx)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for id := range ids {
		for {
			o, err := st.GetOrder(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if o.Status == order.StatusPaid {
				break
			}
			if o.Status.Final() || time.Now().After(deadline) {
				t.Fatalf("order %s is %s (%s) after restart", id, o.Status, o.FailureReason)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if sold, _ := st.Sold(ctx, "nova-hoodie"); sold != n {
		held, _ := st.ExpiredReservations(ctx, time.Now().Add(time.Hour), 100)
		for _, id := range held {
			o, _ := st.GetOrder(ctx, id)
			t.Logf("held: %s %+v", id, o)
		}
		t.Fatalf("sold %d, want %d", sold, n)
	}
}

func appConfigNATS(t *testing.T) app.Config {
	prefix := testenv.Prefix("nats")
	t.Cleanup(func() {
		// The app names its stream after the prefix; remove it.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		q, err := order.NewNATSQueue(ctx, testenv.NATSURL(), order.NATSOptions{
			Stream: strings.ToUpper(strings.TrimSuffix(prefix, "_")) + "PAYMUX_ORDERS", Subject: prefix + "paymux.orders.pay",
			Consumer: prefix + "payment-workers", Logger: quietLogger(),
		})
		if err == nil {
			_ = q.DeleteStream(ctx)
			q.Disconnect()
		}
	})
	return app.Config{NATSURL: testenv.NATSURL(), Prefix: prefix}
}

// TestThreeDSecureThroughSimPage completes (or fails) the step-up on the
// shop's simulated issuer page, as a buyer following next_action_url does.
func TestThreeDSecureThroughSimPage(t *testing.T) {
	t.Parallel()
	for _, result := range []string{"approve", "fail"} {
		t.Run(result, func(t *testing.T) {
			t.Parallel()
			s := setup(t, app.Config{})
			b := s.buyer(t, "/")
			before := b.stock("nova-sneaker")
			b.add("nova-sneaker", 1)
			_, r := b.checkout(sim.TokenThreeDS, "k")
			o := b.waitStatus(r.Order.ID, order.StatusRequiresAction)
			if !strings.HasPrefix(o.NextActionURL, "/sim/3ds/") {
				t.Fatalf("next_action_url %q", o.NextActionURL)
			}
			resp, err := b.http.PostForm(s.srv.URL+o.NextActionURL, url.Values{"result": {result}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK { // after the redirect to the shop page
				t.Fatalf("sim page: %s", resp.Status)
			}
			if result == "approve" {
				b.waitStatus(o.ID, order.StatusPaid)
				return
			}
			b.waitStatus(o.ID, order.StatusFailed)
			if got := b.stock("nova-sneaker"); got != before {
				t.Fatalf("stock %d after a failed 3-D Secure, want %d", got, before)
			}
		})
	}
}

// A long poll (?wait=) answers as soon as the status leaves ?after=, with
// one request, and a bad wait is refused.
func TestOrderLongPoll(t *testing.T) {
	t.Parallel()
	s := setup(t, app.Config{})
	b := s.buyer(t, "/")
	b.add("nova-sneaker", 1)
	_, r := b.checkout(sim.TokenThreeDS, "k")
	o := b.waitStatus(r.Order.ID, order.StatusRequiresAction)

	// Nothing changes: the wait ends with the same status.
	start := time.Now()
	var same orderReply
	if st := b.do("GET", "/api/orders/"+o.ID+"?wait=300ms", nil, nil, &same); st != http.StatusOK || same.Order.Status != order.StatusRequiresAction {
		t.Fatalf("idle long poll: %d %+v", st, same.Order)
	}
	if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Fatalf("idle long poll answered after %s, before its wait", waited)
	}

	// The webhook moves it while the poll waits: the poll answers "paid".
	got := make(chan orderReply, 1)
	go func() {
		var r orderReply
		b.do("GET", "/api/orders/"+o.ID+"?wait=20s&after=requires_action", nil, nil, &r)
		got <- r
	}()
	time.Sleep(100 * time.Millisecond) // let the poll start waiting
	p, err := s.app.Orch.GetByKey(context.Background(), o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.sim(p.Provider).CompleteAction(context.Background(), p.ProviderRef); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.Order.Status != order.StatusPaid {
			t.Fatalf("long poll answered %s, want paid", r.Order.Status)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the long poll did not answer when the order was paid")
	}

	// after= a status the order is not in: answered at once.
	var now orderReply
	if st := b.do("GET", "/api/orders/"+o.ID+"?wait=20s&after=queued", nil, nil, &now); st != http.StatusOK || now.Order.Status != order.StatusPaid {
		t.Fatalf("long poll after another status: %d %+v", st, now.Order)
	}
	if st := b.do("GET", "/api/orders/"+o.ID+"?wait=soon", nil, nil, nil); st != http.StatusBadRequest {
		t.Fatalf("wait=soon: %d, want 400", st)
	}
}

// A long poll that starts while the order is still queued in this process
// (answered from the copy checkout handed to the worker, with no store
// read) still hears the worker's result: no buyer is left waiting.
func TestOrderLongPollFromCheckoutsCopy(t *testing.T) {
	t.Parallel()
	for _, store := range []string{"memory", "sqlite"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			s := setup(t, app.Config{Store: store, SQLitePath: filepath.Join(t.TempDir(), "shop.db"), Workers: 2})
			const buyers = 24
			var wg sync.WaitGroup
			for i := 0; i < buyers; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					b := s.buyer(t, "/")
					b.add("nova-sneaker", 1)
					st, r := b.checkout(sim.TokenApprove, fmt.Sprintf("k%d", i))
					if st != http.StatusAccepted {
						t.Errorf("checkout: %d", st)
						return
					}
					var got orderReply
					if st := b.do("GET", "/api/orders/"+r.Order.ID+"?wait=10s&after="+string(r.Order.Status), nil, nil, &got); st != http.StatusOK {
						t.Errorf("long poll: %d", st)
						return
					}
					if got.Order.Status == r.Order.Status {
						t.Errorf("order %s: the long poll timed out at %s; the worker's result was not heard", r.Order.ID, got.Order.Status)
					}
				}()
			}
			wg.Wait()
		})
	}
}
