package sim_test

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/sim"
	"github.com/paymux/paymux/store/memory"
)

func TestDelivererRedeliversUntilAcknowledged(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		tries = map[string]int{}
		paths = map[string]bool{}
	)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /webhooks/{provider}", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		paths[r.PathValue("provider")] = true
		tries[string(body)]++
		if r.Header.Get(sim.SignatureHeader) == "" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if tries[string(body)] < 3 {
			// The payment is not known yet: the provider must come back.
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	d := sim.NewDeliverer(sim.DelivererConfig{Path: "/webhooks/sim-a", MinBackoff: time.Millisecond, MaxAttempts: 5})
	defer d.Close()
	p := sim.New(sim.Config{Name: "sim-a", WebhookSecret: testSecret, OnEvent: d.Send})
	for _, key := range []string{"order-1", "order-2"} {
		if _, err := p.Authorize(ctx, authReq(key, sim.TokenApprove, "")); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing moves before there is a handler; then everything does.
	d.SetHandler(mux)
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := d.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	delivered, failed := d.Stats()
	if delivered != 4 || failed != 0 {
		t.Fatalf("delivered %d, failed %d", delivered, failed)
	}
	mu.Lock()
	defer mu.Unlock()
	for body, n := range tries {
		if n != 3 {
			t.Errorf("%d tries for %s", n, body)
		}
	}
	if !paths["sim-a"] || len(paths) != 1 {
		t.Errorf("paths %v", paths)
	}
}

func TestDelivererGivesUp(t *testing.T) {
	t.Parallel()
	d := sim.NewDeliverer(sim.DelivererConfig{MinBackoff: time.Millisecond, MaxAttempts: 3,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic("boom") })})
	d.Send(http.Header{}, []byte(`{}`))
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := d.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	if delivered, failed := d.Stats(); delivered != 0 || failed != 1 {
		t.Fatalf("delivered %d, failed %d", delivered, failed)
	}
	d.Close()
	d.Send(http.Header{}, []byte(`{}`)) // dropped after Close, and no panic
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// The sim's webhooks, delivered to the orchestrator's webhook handler, move
// the orchestrator's payment: the buyer completes 3-D Secure at the sim and
// the payment becomes captured without anyone calling Sync.
func TestWebhooksDriveTheOrchestrator(t *testing.T) {
	t.Parallel()
	d := sim.NewDeliverer(sim.DelivererConfig{Path: "/webhooks/sim-a", MinBackoff: time.Millisecond})
	defer d.Close()
	p := sim.New(sim.Config{Name: "sim-a", WebhookSecret: testSecret, OnEvent: d.Send})
	o, err := paymux.New(paymux.Config{Providers: []paymux.Provider{p}, Store: memory.New(memory.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/{provider}", o.WebhookHandler(paymux.WebhookOptions{}))
	d.SetHandler(mux)

	pay, err := o.Authorize(ctx, paymux.PaymentRequest{
		IdempotencyKey: "order-3ds",
		Amount:         paymux.NewMoney(4999, "EUR"),
		Method:         paymux.PaymentMethod{Type: paymux.MethodCard, Token: sim.TokenThreeDSChallenge},
		Country:        "DE",
		ReturnURL:      "https://shop.example/return",
	})
	if err != nil || pay.Status != paymux.StatusRequiresAction {
		t.Fatalf("Authorize: %+v, %v", pay, err)
	}
	if err := p.CompleteAction(ctx, pay.ProviderRef); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := d.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	if _, failed := d.Stats(); failed != 0 {
		t.Fatalf("%d webhooks refused by the orchestrator", failed)
	}
	got, err := o.Get(ctx, pay.ID)
	if err != nil || got.Status != paymux.StatusCaptured || got.Captured != 4999 {
		t.Fatalf("after the buyer's action: %+v, %v", got, err)
	}
	if p.Charges("order-3ds") != 1 {
		t.Fatal("charges")
	}
}

func TestHintReference(t *testing.T) {
	t.Parallel()
	p := sim.New(sim.Config{})
	if ref, ok := p.HintReference(nil, []byte(`{"reference":"simpay_x_1","amount":5}`)); !ok || ref != "simpay_x_1" {
		t.Fatalf("%q %v", ref, ok)
	}
	for _, body := range []string{``, `{}`, `[]`, `{"reference":5}`} {
		if _, ok := p.HintReference(nil, []byte(body)); ok {
			t.Errorf("hint from %q", body)
		}
	}
}

// A delayed webhook is posted no sooner than its delay, Flush waits for it,
// and Close drops one still waiting without leaving Flush stuck.
func TestDelivererDelay(t *testing.T) {
	t.Parallel()
	const delay = 50 * time.Millisecond
	posted := make(chan time.Time, 1)
	d := sim.NewDeliverer(sim.DelivererConfig{Delay: delay,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { posted <- time.Now() })})
	sent := time.Now()
	d.Send(http.Header{}, []byte(`{}`))
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := d.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	if at := <-posted; at.Sub(sent) < delay {
		t.Fatalf("posted %v after Send, want at least %v", at.Sub(sent), delay)
	}
	d.Send(http.Header{}, []byte(`{}`))
	d.Close()
	if err := d.Flush(fctx); err != nil {
		t.Fatalf("Flush after Close with a webhook still delayed: %v", err)
	}
}
