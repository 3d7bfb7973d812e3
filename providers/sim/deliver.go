package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"
)

// DelivererConfig configures a Deliverer. The zero value is usable:
//
//	Handler      nil: deliveries wait until SetHandler
//	Path         "/webhooks/sim"
//	Workers      2
//	MaxAttempts  10
//	MinBackoff   10ms, doubling up to MaxBackoff 2s
//	Logger       nil: no logs
type DelivererConfig struct {
	// Handler receives the webhooks, typically the shop's mux with the
	// orchestrator's webhook handler mounted on "POST /webhooks/{provider}".
	Handler     http.Handler
	Path        string
	Workers     int
	MaxAttempts int
	MinBackoff  time.Duration
	MaxBackoff  time.Duration
	// Delay holds each webhook back before its first attempt. Providers
	// send a webhook some time after the call that caused it has answered;
	// with no delay, most would race the caller's own bookkeeping of
	// that answer.
	Delay  time.Duration
	Logger *slog.Logger
}

// Deliverer posts a sim's webhooks to an http.Handler in process, in the
// background, and redelivers a webhook answered with anything but 2xx, with
// exponential backoff, as real providers do. Plug its Send into
// Config.OnEvent:
//
//	d := sim.NewDeliverer(sim.DelivererConfig{Path: "/webhooks/sim-a"})
//	p := sim.New(sim.Config{Name: "sim-a", WebhookSecret: secret, OnEvent: d.Send})
//	... build the orchestrator and the mux ...
//	d.SetHandler(mux)
//	defer d.Close()
type Deliverer struct {
	cfg DelivererConfig

	mu        sync.Mutex
	cond      *sync.Cond
	handler   http.Handler
	queue     []delivery
	pending   int // queued, in flight or waiting to be retried
	closed    bool
	delivered int
	failed    int
	timers    map[*time.Timer]struct{}
	wg        sync.WaitGroup
}

type delivery struct {
	header  http.Header
	body    []byte
	attempt int
}

// NewDeliverer starts a deliverer's workers.
func NewDeliverer(cfg DelivererConfig) *Deliverer {
	if cfg.Path == "" {
		cfg.Path = "/webhooks/" + DefaultName
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 10
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 10 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 2 * time.Second
	}
	d := &Deliverer{cfg: cfg, handler: cfg.Handler, timers: map[*time.Timer]struct{}{}}
	d.cond = sync.NewCond(&d.mu)
	for i := 0; i < cfg.Workers; i++ {
		d.wg.Add(1)
		go d.work()
	}
	return d
}

// SetHandler sets (or replaces) where webhooks go; queued ones follow.
func (d *Deliverer) SetHandler(h http.Handler) {
	d.mu.Lock()
	d.handler = h
	d.mu.Unlock()
	d.cond.Broadcast()
}

// Send queues a webhook. It never blocks, so it suits Config.OnEvent.
// After Close it drops the webhook.
func (d *Deliverer) Send(header http.Header, body []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.pending++
	w := delivery{header: header.Clone(), body: bytes.Clone(body)}
	if d.cfg.Delay > 0 {
		d.queueAfter(w, d.cfg.Delay)
		return
	}
	d.queue = append(d.queue, w)
	d.cond.Broadcast() // Flush waits on the same cond: Signal could wake it instead of a worker
}

// Flush waits until every webhook sent so far was acknowledged or given up,
// or ctx ends.
func (d *Deliverer) Flush(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		d.mu.Lock()
		d.cond.Broadcast()
		d.mu.Unlock()
	})
	defer stop()
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.pending > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		d.cond.Wait()
	}
	return nil
}

// Stats reports how many webhooks were acknowledged and how many were given
// up after MaxAttempts.
func (d *Deliverer) Stats() (delivered, failed int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.delivered, d.failed
}

// Close stops the workers and retries; webhooks not yet delivered are
// dropped. Call Flush first to deliver them.
func (d *Deliverer) Close() {
	d.mu.Lock()
	d.closed = true
	for t := range d.timers {
		if t.Stop() {
			d.pending--
		}
	}
	d.pending -= len(d.queue)
	d.queue = nil
	d.mu.Unlock()
	d.cond.Broadcast()
	d.wg.Wait()
}

func (d *Deliverer) work() {
	defer d.wg.Done()
	for {
		d.mu.Lock()
		for !d.closed && (len(d.queue) == 0 || d.handler == nil) {
			d.cond.Wait()
		}
		if d.closed {
			d.mu.Unlock()
			return
		}
		w := d.queue[0]
		d.queue[0] = delivery{}
		d.queue = d.queue[1:]
		h := d.handler
		d.mu.Unlock()

		status := d.post(h, w)
		w.attempt++

		d.mu.Lock()
		switch {
		case status >= 200 && status < 300:
			d.delivered++
			d.pending--
		case w.attempt >= d.cfg.MaxAttempts || d.closed:
			d.failed++
			d.pending--
			if d.cfg.Logger != nil {
				d.cfg.Logger.Warn("sim: webhook given up", "path", d.cfg.Path, "status", status, "attempts", w.attempt)
			}
		default:
			d.retryLater(w)
		}
		d.mu.Unlock()
		d.cond.Broadcast()
	}
}

// retryLater re-queues w after its backoff; d.mu is held.
func (d *Deliverer) retryLater(w delivery) {
	backoff := d.cfg.MinBackoff << min(w.attempt-1, 20)
	if backoff > d.cfg.MaxBackoff || backoff <= 0 {
		backoff = d.cfg.MaxBackoff
	}
	d.queueAfter(w, backoff)
}

// queueAfter queues w once after has passed; d.mu is held.
func (d *Deliverer) queueAfter(w delivery, after time.Duration) {
	var t *time.Timer
	t = time.AfterFunc(after, func() {
		d.mu.Lock()
		delete(d.timers, t)
		if d.closed {
			// Close could not stop this timer; the count is ours to fix.
			d.pending--
			d.mu.Unlock()
			d.cond.Broadcast()
			return
		}
		d.queue = append(d.queue, w)
		d.mu.Unlock()
		d.cond.Broadcast() // Flush waits on the same cond: Signal could wake it instead of a worker
	})
	d.timers[t] = struct{}{}
}

func (d *Deliverer) post(h http.Handler, w delivery) (status int) {
	defer func() {
		// A panicking handler is a 500 to a provider.
		if recover() != nil {
			status = http.StatusInternalServerError
		}
	}()
	req := httptest.NewRequest(http.MethodPost, d.cfg.Path, bytes.NewReader(w.body))
	for k, v := range w.header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

// HintReference implements paymux.WebhookHinter: it names the payment an
// unverified webhook is about, so the orchestrator can ask the sim itself.
// Nothing in the body is trusted beyond that.
func (p *Provider) HintReference(header http.Header, body []byte) (string, bool) {
	if len(body) > MaxWebhookBody {
		return "", false
	}
	var pl struct {
		Reference string `json:"reference"`
	}
	if json.Unmarshal(body, &pl) != nil || pl.Reference == "" || len(pl.Reference) > 128 {
		return "", false
	}
	return pl.Reference, true
}
