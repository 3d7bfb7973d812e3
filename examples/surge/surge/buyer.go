package surge

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/paymux/paymux/examples/session"
)

// buyerSpec is what one buyer does.
type buyerSpec struct {
	id           int
	jar          http.CookieJar // a signed-in account's jar, or nil for a guest
	product      string
	token        string
	country      string
	doubleClick  bool
	timeoutRetry bool
	reconnect    bool
	sse          bool
}

// result is what happened to one buyer.
type result struct {
	arrival                 time.Time // when the arrival profile brought the buyer
	start                   time.Time // when a buyer slot was free and it started
	end                     time.Time
	cart, checkout, toFinal time.Duration
	orderID                 string
	otherID                 string // a second order id from a double-click: must never happen
	told                    bool   // checkout answered 2xx: the buyer believes the order exists
	outcome                 string // final order status, "sold_out", "lost", "vanished" or "error"
	provider                string
	product                 string
	detail                  string
	retries                 int
}

// arrivedAt is when the buyer arrived: its scheduled arrival, or its start
// if it has none or started early.
func (r *result) arrivedAt() time.Time {
	if r.arrival.IsZero() || r.arrival.After(r.start) {
		return r.start
	}
	return r.arrival
}

// orderView is the part of GET /api/orders/{id} the buyer reads.
type orderView struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Provider string `json:"provider"`
}

// buyerFinal reports whether the buyer stops watching: "paid" is final for
// the buyer (capture happens at fulfilment).
func buyerFinal(s string) bool {
	switch s {
	case "paid", "captured", "refunded", "failed", "expired", "cancelled":
		return true
	}
	return false
}

// errRetryable marks an answer worth retrying with the same key.
var errRetryable = errors.New("retryable")

type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.msg) }

func newJar() http.CookieJar {
	j, _ := cookiejar.New(nil)
	return j
}

func csrfOf(jar http.CookieJar, base *url.URL) string {
	for _, c := range jar.Cookies(base) {
		if c.Name == session.CSRFCookie {
			return c.Value
		}
	}
	return ""
}

// do sends one JSON request and decodes a 2xx answer into out.
func do(ctx context.Context, c *http.Client, method, u string, hdr map[string]string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errRetryable, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%w: %v", errRetryable, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		he := &httpError{status: resp.StatusCode, msg: e.Error}
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
			return resp.StatusCode, fmt.Errorf("%w: %w", errRetryable, he)
		}
		return resp.StatusCode, he
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s %s: %w", method, u, err)
		}
	}
	return resp.StatusCode, nil
}

func getJSON(ctx context.Context, c *http.Client, u string, out any) (int, error) {
	return do(ctx, c, http.MethodGet, u, nil, nil, out)
}

// backoff sleeps before retry n (0-based), bounded, or returns ctx's error.
func backoff(ctx context.Context, n int, initial, ceiling time.Duration) error {
	d := initial << min(n, 10)
	d = min(d, ceiling)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retry calls fn until it succeeds, fails for good or ctx ends.
func retry(ctx context.Context, res *result, fn func() error) error {
	for n := 0; ; n++ {
		err := fn()
		if err == nil || !errors.Is(err, errRetryable) {
			return err
		}
		res.retries++
		if berr := backoff(ctx, n, 20*time.Millisecond, time.Second); berr != nil {
			return fmt.Errorf("%w (last: %v)", berr, err)
		}
	}
}

// login signs an account in: fetch the CSRF cookie, then post the password.
func login(ctx context.Context, c *http.Client, base *url.URL, email, password string) error {
	var res result
	return retry(ctx, &res, func() error {
		if _, err := getJSON(ctx, c, base.String()+"/api/session/csrf", nil); err != nil {
			return err
		}
		_, err := do(ctx, c, http.MethodPost, base.String()+"/api/session/login",
			map[string]string{session.CSRFHeader: csrfOf(c.Jar, base)},
			map[string]string{"email": email, "password": password}, nil)
		return err
	})
}

// checkoutBody is POST /api/checkout's body.
type checkoutBody struct {
	PaymentMethod struct {
		Type  string `json:"type"`
		Token string `json:"token"`
	} `json:"payment_method"`
	Country string `json:"country"`
	Email   string `json:"email,omitempty"`
}

type checkoutAnswer struct {
	Order orderView `json:"order"`
}

// buy plays one buyer: cart, checkout, then follow the order to a final
// status. It never panics on a bad answer; it reports it.
func (r *runner) buy(ctx context.Context, s buyerSpec) result {
	res := r.buyOnce(ctx, s)
	res.end = time.Now()
	return res
}

func (r *runner) buyOnce(ctx context.Context, s buyerSpec) result {
	res := result{start: time.Now(), product: s.product}
	jar := s.jar
	if jar == nil {
		jar = newJar()
	}
	client := &http.Client{Jar: jar, Transport: r.tr, Timeout: 20 * time.Second}
	base := r.base.String()
	hdr := func() map[string]string {
		return map[string]string{session.CSRFHeader: csrfOf(jar, r.base)}
	}
	deadline, cancel := context.WithTimeout(ctx, r.cfg.FinalDeadline)
	defer cancel()

	// 1. Cart.
	err := retry(deadline, &res, func() error {
		_, err := do(deadline, client, http.MethodPost, base+"/api/cart/items", hdr(),
			map[string]any{"product_id": s.product, "quantity": 1}, nil)
		return err
	})
	res.cart = time.Since(res.start)
	if err != nil {
		res.outcome, res.detail = "error", "cart: "+err.Error()
		return res
	}

	// 2. Checkout, with one Idempotency-Key for this attempt, whatever the
	// retries and double-clicks.
	key := fmt.Sprintf("%s-buyer-%d", r.runID, s.id)
	var body checkoutBody
	body.PaymentMethod.Type, body.PaymentMethod.Token = "card", s.token
	body.Country = s.country
	if s.jar == nil {
		body.Email = fmt.Sprintf("guest%d@surge.example", s.id)
	}
	post := func(c *http.Client, cctx context.Context) (checkoutAnswer, error) {
		var out checkoutAnswer
		h := hdr()
		h["Idempotency-Key"] = key
		_, err := do(cctx, c, http.MethodPost, base+"/api/checkout", h, body, &out)
		return out, err
	}
	t1 := time.Now()
	var ans checkoutAnswer
	if s.timeoutRetry {
		// The first attempt gives up after a few milliseconds; it may or
		// may not have reached the shop. The retry below uses the same key.
		short, cancelShort := context.WithTimeout(deadline, time.Duration(1+s.id%4)*time.Millisecond)
		if a, err := post(client, short); err == nil {
			ans = a
		}
		cancelShort()
		res.retries++
	}
	if ans.Order.ID == "" && s.doubleClick {
		var wg sync.WaitGroup
		var answers [2]checkoutAnswer
		var errs [2]error
		for k := 0; k < 2; k++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[k] = retry(deadline, &result{}, func() error {
					var err error
					answers[k], err = post(client, deadline)
					return err
				})
			}()
		}
		wg.Wait()
		switch {
		case errs[0] == nil && errs[1] == nil:
			ans = answers[0]
			if answers[0].Order.ID != answers[1].Order.ID {
				res.otherID = answers[1].Order.ID
			}
		case errs[0] == nil:
			ans, err = answers[0], errs[1]
		case errs[1] == nil:
			ans, err = answers[1], errs[0]
		default:
			err = errs[0]
		}
		// One click may see "sold out" while the other sees the order
		// only if the shop is broken; the order id wins and is checked.
		if ans.Order.ID != "" {
			err = nil
		}
	} else if ans.Order.ID == "" {
		err = retry(deadline, &res, func() error {
			var err error
			ans, err = post(client, deadline)
			return err
		})
	}
	res.checkout = time.Since(t1)
	if err != nil {
		var he *httpError
		switch {
		case errors.As(err, &he) && he.status == http.StatusConflict && strings.Contains(he.msg, "sold out"):
			res.outcome = "sold_out"
		default:
			res.outcome, res.detail = "error", "checkout: "+err.Error()
		}
		return res
	}
	res.told, res.orderID = true, ans.Order.ID

	// 3. Follow the order. A reconnecting buyer comes back on a new
	// connection with the same cookies.
	if s.reconnect {
		client = &http.Client{Jar: jar, Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 20 * time.Second}
	}
	t2 := time.Now()
	st := ans.Order
	if !buyerFinal(st.Status) {
		if s.sse {
			st, err = r.followSSE(deadline, jar, s.reconnect, st)
		}
		if err != nil || !buyerFinal(st.Status) {
			st, err = r.poll(deadline, client, st, &res)
		}
	}
	res.toFinal = time.Since(t2)
	switch {
	case err != nil && strings.Contains(err.Error(), "vanished"):
		res.outcome, res.detail = "vanished", err.Error()
	case !buyerFinal(st.Status):
		res.outcome = "lost"
		res.detail = fmt.Sprintf("order %s last seen %q (buyer: timeout-retry=%v double-click=%v sse=%v reconnect=%v)",
			st.ID, st.Status, s.timeoutRetry, s.doubleClick, s.sse, s.reconnect)
		if err != nil {
			res.detail += ": " + err.Error()
		}
	default:
		res.outcome, res.provider = st.Status, st.Provider
	}
	return res
}

// poll follows an order with long polls of GET /api/orders/{id}?wait=,
// each answered when the status changes, until it is final for the buyer
// or the deadline; after an error it backs off from 25 ms to 500 ms.
func (r *runner) poll(ctx context.Context, c *http.Client, st orderView, res *result) (orderView, error) {
	u := r.base.String() + "/api/orders/" + url.PathEscape(st.ID) + "?wait=10s&after="
	var lastErr error
	pause := false // after an error, or an answer without news (a shop that does not long-poll)
	for n := 0; ; {
		if pause {
			if err := backoff(ctx, n, 25*time.Millisecond, 500*time.Millisecond); err != nil {
				return st, cmp.Or(lastErr, err)
			}
			n++
		}
		if err := ctx.Err(); err != nil {
			return st, cmp.Or(lastErr, err)
		}
		var out checkoutAnswer
		_, err := getJSON(ctx, c, u+url.QueryEscape(st.Status), &out)
		var he *httpError
		switch {
		case errors.As(err, &he) && he.status == http.StatusNotFound:
			return st, fmt.Errorf("order %s vanished after checkout answered %s", st.ID, st.Status)
		case err != nil:
			lastErr, pause = err, true
			res.retries++
			continue
		}
		lastErr, pause = nil, out.Order.Status == st.Status
		st = out.Order
		if buyerFinal(st.Status) {
			return st, nil
		}
	}
}

// followSSE reads the order's server-sent events until a final status. It
// returns what it last saw; the caller polls if the stream ends early.
func (r *runner) followSSE(ctx context.Context, jar http.CookieJar, fresh bool, st orderView) (orderView, error) {
	tr := r.tr
	if fresh {
		tr = &http.Transport{DisableKeepAlives: true}
	}
	c := &http.Client{Jar: jar, Transport: tr} // no client time-out: the stream is long-lived
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base.String()+"/api/orders/"+url.PathEscape(st.ID)+"/events", nil)
	if err != nil {
		return st, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, &httpError{status: resp.StatusCode}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var o orderView
		if json.Unmarshal([]byte(data), &o) == nil && o.Status != "" {
			st = o
			if buyerFinal(st.Status) {
				return st, nil
			}
		}
	}
	return st, sc.Err()
}
