package stripetest

import (
	"bytes"
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/paymux/paymux/providers/stripe"
)

func signHeader(t time.Time, body []byte, secret string) string {
	return stripe.SignHeader(t, body, secret)
}

// delivery sends events one at a time, in order, from one goroutine, as
// Stripe does for one endpoint (order is still not guaranteed by Stripe;
// tests that need disorder can replay Events themselves).
type delivery struct {
	opts   Options
	mu     sync.Mutex
	cond   *sync.Cond
	queue  [][]byte
	log    [][]byte
	sent   int
	closed bool
	done   chan struct{}
}

func newDelivery(opts Options) *delivery {
	d := &delivery{opts: opts, done: make(chan struct{})}
	d.cond = sync.NewCond(&d.mu)
	go d.run()
	return d
}

func (d *delivery) push(body []byte) {
	d.mu.Lock()
	d.queue = append(d.queue, body)
	d.log = append(d.log, body)
	d.mu.Unlock()
	d.cond.Broadcast()
}

func (d *delivery) all() [][]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([][]byte(nil), d.log...)
}

func (d *delivery) run() {
	defer close(d.done)
	for {
		d.mu.Lock()
		for len(d.queue) == 0 && !d.closed {
			d.cond.Wait()
		}
		if len(d.queue) == 0 && d.closed {
			d.mu.Unlock()
			return
		}
		body := d.queue[0]
		d.queue = d.queue[1:]
		d.mu.Unlock()
		d.send(body)
		d.mu.Lock()
		d.sent++
		d.mu.Unlock()
		d.cond.Broadcast()
	}
}

func (d *delivery) send(body []byte) {
	h := http.Header{}
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
	h.Set("Stripe-Signature", signHeader(d.opts.Clock(), body, d.opts.WebhookSecret))
	if d.opts.WebhookSink != nil {
		d.opts.WebhookSink(h.Clone(), bytes.Clone(body))
	}
	if d.opts.WebhookURL == "" {
		return
	}
	c := d.opts.WebhookClient
	if c == nil {
		c = http.DefaultClient
	}
	// Stripe retries failed deliveries for days; the fake tries three
	// times, quickly, so tests see a redelivery without waiting.
	for attempt := 0; attempt < 3; attempt++ {
		req, err := http.NewRequest(http.MethodPost, d.opts.WebhookURL, bytes.NewReader(body))
		if err != nil {
			d.opts.Logger.Error("stripetest: bad webhook URL", "err", err)
			return
		}
		req.Header = h.Clone()
		res, err := c.Do(req)
		if err == nil {
			res.Body.Close()
			if res.StatusCode < 300 {
				return
			}
		}
		time.Sleep(time.Duration(attempt+1) * 20 * time.Millisecond)
	}
}

// flush waits until everything pushed so far was sent.
func (d *delivery) flush(ctx context.Context) error {
	d.mu.Lock()
	target := len(d.log)
	d.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		d.mu.Lock()
		d.cond.Broadcast()
		d.mu.Unlock()
	})
	defer stop()
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.sent < target && !d.closed {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.cond.Wait()
	}
	return nil
}

func (d *delivery) close() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.cond.Broadcast()
	<-d.done
}
