package paymux_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/internal/testclock"
	"github.com/paymux/paymux/providers/providertest"
	"github.com/paymux/paymux/providers/sim"
	"github.com/paymux/paymux/store/memory"
)

const simSecret = paymux.Secret("simsec_a")

// webhookBody builds a signed sim webhook for p.
func webhookBody(id string, typ paymux.EventType, p *paymux.Payment, amount int64, success bool, at time.Time) ([]byte, http.Header) {
	body := sim.EncodeWebhook(sim.WebhookPayload{
		ID: id, Type: typ, Created: at.Unix(), Reference: p.ProviderRef, PaymentKey: p.IdempotencyKey,
		Amount: amount, Currency: p.Amount.Currency, Success: success,
	})
	return body, sim.SignWebhook(simSecret, body, at)
}

type deliveries struct {
	mu   sync.Mutex
	seen map[string]int // payment id + "/" + event id
}

func (d *deliveries) subscriber(_ context.Context, ev paymux.Event, p *paymux.Payment) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	id := "orphan"
	if p != nil {
		id = p.ID
	}
	d.seen[id+"/"+ev.ID]++
	return nil
}

func (d *deliveries) count() (total int, maxPer int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, n := range d.seen {
		total += n
		maxPer = max(maxPer, n)
	}
	return
}

func post(t testing.TB, url string, body []byte, h http.Header) int {
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// StoreFactory builds a fresh store for the storm test; Redis and SQL
// register theirs in store_backends_test.go.
type storeFactory func(t testing.TB) paymux.Store

var stormStores = map[string]storeFactory{
	"memory": func(testing.TB) paymux.Store { return memory.New(memory.Options{}) },
}

// The storm test: the full event history of 1,000 payments, each event
// delivered 3 times, in random order, concurrently.
func TestWebhookStorm(t *testing.T) {
	t.Parallel()
	for name, mk := range stormStores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			runStorm(t, mk(t), 1000)
		})
	}
}

func runStorm(t *testing.T, st paymux.Store, n int) {
	ctx := context.Background()
	a := sim.New(sim.Config{Name: "a", WebhookSecret: simSecret})
	o, err := paymux.New(paymux.Config{Providers: []paymux.Provider{a}, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	subs := &deliveries{seen: map[string]int{}}
	disp, err := o.NewDispatcher(paymux.DispatcherOptions{Subscriber: subs.subscriber, PollInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/{provider}", o.WebhookHandler(paymux.WebhookOptions{Dispatcher: disp}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	type delivery struct {
		body []byte
		h    http.Header
	}
	var all []delivery
	want := map[string]struct {
		status             paymux.Status
		captured, refunded int64
	}{}
	now := time.Now()
	for i := 0; i < n; i++ {
		req := cardRequest(fmt.Sprintf("storm-%s-%d", t.Name(), i), sim.TokenApprove)
		req.Capture = paymux.CaptureManual
		p, err := o.Authorize(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		amt := p.Amount.Amount
		var hist []delivery
		add := func(typ paymux.EventType, amount int64) {
			b, h := webhookBody(fmt.Sprintf("ev-%d-%d", i, len(hist)), typ, p, amount, true, now)
			hist = append(hist, delivery{b, h})
		}
		add(paymux.EventAuthorized, amt)
		switch i % 3 {
		case 0:
			add(paymux.EventCaptured, amt)
			add(paymux.EventRefunded, 1000)
			add(paymux.EventRefunded, 1500) // running total
			want[p.ID] = struct {
				status             paymux.Status
				captured, refunded int64
			}{paymux.StatusRefunded, amt, 1500}
		case 1:
			add(paymux.EventCaptured, amt)
			want[p.ID] = struct {
				status             paymux.Status
				captured, refunded int64
			}{paymux.StatusCaptured, amt, 0}
		case 2:
			add(paymux.EventVoided, 0)
			want[p.ID] = struct {
				status             paymux.Status
				captured, refunded int64
			}{paymux.StatusVoided, 0, 0}
		}
		for r := 0; r < 3; r++ {
			all = append(all, hist...)
		}
	}
	rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	dctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = disp.Run(dctx); close(done) }()

	work := make(chan delivery)
	var wg sync.WaitGroup
	var non2xx atomic.Int32
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range work {
				// A 503 (the same event busy in another handler) is what a
				// provider retries, for hours: do the same, for a while. (A
				// budget of 50 quick tries ran out on a loaded CI machine
				// while the first handler was still committing.)
				deadline := time.Now().Add(20 * time.Second)
				for try := 0; ; try++ {
					code := post(t, srv.URL+"/webhooks/a", d.body, d.h)
					if code == 200 {
						break
					}
					if code != 503 || time.Now().After(deadline) {
						non2xx.Add(1)
						break
					}
					time.Sleep(time.Duration(min(1+try, 20)) * time.Millisecond)
				}
			}
		}()
	}
	for _, d := range all {
		work <- d
	}
	close(work)
	wg.Wait()
	if non2xx.Load() != 0 {
		t.Fatalf("%d deliveries were never acknowledged", non2xx.Load())
	}
	distinct := 0
	for _, w := range want {
		switch w.status {
		case paymux.StatusRefunded:
			distinct += 4
		case paymux.StatusCaptured, paymux.StatusVoided:
			distinct += 2
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		total, _ := subs.count()
		if total >= distinct || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	<-done
	for id, w := range want {
		p, err := o.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if p.Status != w.status || p.Captured != w.captured || p.Refunded != w.refunded {
			t.Errorf("payment %s: %s captured=%d refunded=%d, want %s %d %d", id, p.Status, p.Captured, p.Refunded, w.status, w.captured, w.refunded)
		}
		if p.Captured > p.Authorized || p.Refunded > p.Captured {
			t.Errorf("payment %s amounts out of order: %+v", id, p)
		}
	}
	total, maxPer := subs.count()
	if maxPer != 1 {
		t.Errorf("some (payment, event) was delivered %d times", maxPer)
	}
	if total != distinct {
		t.Errorf("subscriber saw %d deliveries, want %d distinct events exactly once", total, distinct)
	}
}

func TestWebhookRefusesWhatItCannotTrust(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := sim.New(sim.Config{Name: "a", WebhookSecret: simSecret})
	st := memory.New(memory.Options{})
	o, _ := paymux.New(paymux.Config{Providers: []paymux.Provider{a}, Store: st})
	req := cardRequest("order-forged", sim.TokenApprove)
	req.Capture = paymux.CaptureManual
	p, _ := o.Authorize(ctx, req)
	subs := &deliveries{seen: map[string]int{}}
	disp, _ := o.NewDispatcher(paymux.DispatcherOptions{Subscriber: subs.subscriber})
	h := o.WebhookHandler(paymux.WebhookOptions{Dispatcher: disp})
	srv := httptest.NewServer(h)
	defer srv.Close()
	url := srv.URL + "/webhooks/a"

	now := time.Now()
	body, good := webhookBody("ev-void", paymux.EventVoided, p, 0, true, now)
	forged := sim.SignWebhook("simsec_wrong", body, now)
	_, stale := webhookBody("ev-void", paymux.EventVoided, p, 0, true, now.Add(-time.Hour))
	staleBody, _ := webhookBody("ev-void", paymux.EventVoided, p, 0, true, now.Add(-time.Hour))
	huge := append(bytes.Repeat([]byte(" "), paymux.MaxWebhookBody), body...)
	hugeHeader := sim.SignWebhook(simSecret, huge, now)
	cases := []struct {
		name string
		body []byte
		h    http.Header
		path string
		want int
	}{
		{"not signed", body, http.Header{}, url, 401},
		{"forged signature", body, forged, url, 401},
		{"stale timestamp", staleBody, stale, url, 401},
		{"truncated body", body[:len(body)/2], good, url, 401},
		{"tampered body", bytes.Replace(body, []byte("voided"), []byte("failed"), 1), good, url, 401},
		{"over the limit", huge, hugeHeader, url, 413},
		{"unknown provider", body, good, srv.URL + "/webhooks/nosuch", 404},
	}
	for _, c := range cases {
		req, _ := http.NewRequest("POST", c.path, bytes.NewReader(c.body))
		for k, v := range c.h {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		msg := new(bytes.Buffer)
		_, _ = msg.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: status %d, want %d (%s)", c.name, resp.StatusCode, c.want, msg)
		}
		if strings.Contains(msg.String(), "simsec") {
			t.Errorf("%s: the answer echoes the secret", c.name)
		}
	}
	if got, _ := o.Get(ctx, p.ID); got.Status != paymux.StatusAuthorized {
		t.Fatalf("an untrusted event was applied: %s", got.Status)
	}
	if n, _ := disp.DispatchDue(ctx); n != 0 {
		t.Fatal("an untrusted event was enqueued")
	}
	// The genuine one is applied, once; its redelivery is acknowledged.
	for i := 0; i < 3; i++ {
		if code := post(t, url, body, good); code != 200 {
			t.Fatalf("genuine webhook: %d", code)
		}
	}
	if got, _ := o.Get(ctx, p.ID); got.Status != paymux.StatusVoided {
		t.Fatalf("genuine event not applied: %s", got.Status)
	}
	if n, _ := disp.DispatchDue(ctx); n != 1 {
		t.Fatalf("dispatched %d, want 1", n)
	}
}

func TestWebhookForUnknownPaymentIsRetriedThenOrphaned(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := testclock.New(time.Now())
	clock := clk.Now
	a := sim.New(sim.Config{Name: "a", WebhookSecret: simSecret, Clock: clock})
	o, _ := paymux.New(paymux.Config{Providers: []paymux.Provider{a}, Store: memory.New(memory.Options{Clock: clock}), Clock: clock})
	subs := &deliveries{seen: map[string]int{}}
	disp, _ := o.NewDispatcher(paymux.DispatcherOptions{Subscriber: subs.subscriber})
	h := o.WebhookHandler(paymux.WebhookOptions{Dispatcher: disp, OrphanAfter: time.Hour})
	ghost := &paymux.Payment{ProviderRef: "sim_ghost", IdempotencyKey: "never-seen", Amount: paymux.NewMoney(100, "EUR")}
	body, hdr := webhookBody("ev-ghost", paymux.EventCaptured, ghost, 100, true, clock())
	err := h.Ingest(ctx, "a", hdr, body)
	if !errors.Is(err, paymux.ErrPaymentUnknown) || paymux.WebhookStatus(err) != 503 {
		t.Fatalf("got %v", err)
	}
	// Redelivered two hours later: acknowledged, handed over without a payment.
	clk.Advance(2 * time.Hour)
	body2, hdr2 := webhookBody("ev-ghost", paymux.EventCaptured, ghost, 100, true, clock().Add(-2*time.Hour))
	hdr2 = sim.SignWebhook(simSecret, body2, clock())
	if err := h.Ingest(ctx, "a", hdr2, body2); err != nil {
		t.Fatal(err)
	}
	if n, err := disp.DispatchDue(ctx); n != 1 || err != nil {
		t.Fatal(n, err)
	}
	if subs.seen["orphan/ev-ghost"] != 1 {
		t.Fatalf("orphan not delivered: %v", subs.seen)
	}
}

// Delivery survives a crash: the first dispatcher dies halfway through, the
// second delivers everything; nothing is lost.
func TestDeliveryIsAtLeastOnceAcrossACrash(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := testclock.New(time.Now())
	clock := clk.Now
	st := memory.New(memory.Options{Clock: clock})
	a := sim.New(sim.Config{Name: "a", WebhookSecret: simSecret, Clock: clock})
	o, _ := paymux.New(paymux.Config{Providers: []paymux.Provider{a}, Store: st, Clock: clock})
	var pays []*paymux.Payment
	for i := 0; i < 20; i++ {
		req := cardRequest(fmt.Sprintf("crash-%d", i), sim.TokenApprove)
		req.Capture = paymux.CaptureManual
		p, _ := o.Authorize(ctx, req)
		pays = append(pays, p)
	}
	crashCtx, crash := context.WithCancel(ctx)
	var first atomic.Int32
	dying := func(ctx context.Context, ev paymux.Event, p *paymux.Payment) error {
		if first.Add(1) > 10 {
			crash() // the process dies mid-delivery
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}
	d1, _ := o.NewDispatcher(paymux.DispatcherOptions{Subscriber: dying, Lease: time.Minute})
	h := o.WebhookHandler(paymux.WebhookOptions{Dispatcher: d1})
	for i, p := range pays {
		body, hdr := webhookBody(fmt.Sprintf("cap-%d", i), paymux.EventCaptured, p, p.Amount.Amount, true, clock())
		if err := h.Ingest(ctx, "a", hdr, body); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = d1.DispatchDue(crashCtx)
	// A restarted process, after the crashed one's lease ran out.
	clk.Advance(2 * time.Minute)
	subs := &deliveries{seen: map[string]int{}}
	d2, _ := o.NewDispatcher(paymux.DispatcherOptions{Subscriber: subs.subscriber})
	for {
		n, err := d2.DispatchDue(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	total, _ := subs.count()
	if delivered := int(min(first.Load(), 10)) + total; delivered < 20 || total < 10 {
		t.Fatalf("first run delivered %d, second %d: events were lost", min(first.Load(), 10), total)
	}
}

func TestDeliveryDeadLettersAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := testclock.New(time.Now())
	clock := clk.Now
	st := memory.New(memory.Options{Clock: clock})
	a := sim.New(sim.Config{Name: "a", WebhookSecret: simSecret, Clock: clock})
	o, _ := paymux.New(paymux.Config{Providers: []paymux.Provider{a}, Store: st, Clock: clock})
	req := cardRequest("dead", sim.TokenApprove)
	req.Capture = paymux.CaptureManual
	p, _ := o.Authorize(ctx, req)
	failing := func(context.Context, paymux.Event, *paymux.Payment) error {
		return errors.New("subscriber down: token sk_live_abcdefghijkl")
	}
	d, _ := o.NewDispatcher(paymux.DispatcherOptions{Subscriber: failing, MaxAttempts: 3, BaseDelay: time.Second})
	h := o.WebhookHandler(paymux.WebhookOptions{Dispatcher: d})
	body, hdr := webhookBody("ev-dead", paymux.EventCaptured, p, 4999, true, clock())
	if err := h.Ingest(ctx, "a", hdr, body); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		_, _ = d.DispatchDue(ctx)
		clk.Advance(time.Hour)
	}
	del, err := st.GetDelivery(ctx, paymux.DeliveryID("a", "ev-dead"))
	if err != nil || del.State != paymux.DeliveryDead || del.Attempts != 3 {
		t.Fatalf("got %+v %v", del, err)
	}
	if strings.Contains(del.LastError, "sk_live") {
		t.Fatal("secret stored in the dead letter")
	}
}

func TestReconcilerResolvesUnknownPayments(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := testclock.New(time.Now())
	clock := clk.Now
	st := memory.New(memory.Options{Clock: clock})
	a := sim.New(sim.Config{Name: "a", Clock: clock})
	o, _ := paymux.New(paymux.Config{Providers: []paymux.Provider{a}, Store: st, Clock: clock})
	a.Faults().Set(providertestPlanTimeout(3))
	var ids []string
	for i := 0; i < 3; i++ {
		p, err := o.Authorize(ctx, cardRequest(fmt.Sprintf("unknown-%d", i), sim.TokenApprove))
		if !errors.Is(err, paymux.ErrOutcomeUnknown) {
			t.Fatal(err)
		}
		ids = append(ids, p.ID)
	}
	subs := &deliveries{seen: map[string]int{}}
	disp, _ := o.NewDispatcher(paymux.DispatcherOptions{Subscriber: subs.subscriber})
	r := o.NewReconciler(paymux.ReconcileOptions{OlderThan: time.Minute, Rate: 1000})
	if rep, _ := r.Reconcile(ctx); rep.Checked != 0 {
		t.Fatalf("fresh payments were reconciled: %+v", rep)
	}
	clk.Advance(2 * time.Minute)
	rep, err := r.Reconcile(ctx)
	if err != nil || rep.Resolved != 3 {
		t.Fatalf("report %+v %v", rep, err)
	}
	for _, id := range ids {
		if p, _ := o.Get(ctx, id); p.Status != paymux.StatusCaptured {
			t.Fatalf("%s still %s", id, p.Status)
		}
	}
	// No webhook will come for these: the subscriber hears of them anyway.
	if n, err := disp.DispatchDue(ctx); n != 3 || err != nil {
		t.Fatalf("dispatched %d sync events, want 3 (%v)", n, err)
	}
	if total, _ := subs.count(); total != 3 {
		t.Fatalf("subscriber saw %d", total)
	}
}

// Totals adds up the passes: what Run's loop did, for metrics and reports.
func TestReconcilerTotalsAddUpItsPasses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := testclock.New(time.Now())
	st := memory.New(memory.Options{Clock: clk.Now})
	a := sim.New(sim.Config{Name: "a", Clock: clk.Now})
	o, _ := paymux.New(paymux.Config{Providers: []paymux.Provider{a}, Store: st, Clock: clk.Now})
	a.Faults().Set(providertestPlanTimeout(2))
	for i := 0; i < 2; i++ {
		if _, err := o.Authorize(ctx, cardRequest(fmt.Sprintf("totals-%d", i), sim.TokenApprove)); !errors.Is(err, paymux.ErrOutcomeUnknown) {
			t.Fatal(err)
		}
	}
	r := o.NewReconciler(paymux.ReconcileOptions{OlderThan: time.Minute, Rate: 1000})
	for range 3 { // too fresh; settles both; finds nothing left
		if _, err := r.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		clk.Advance(2 * time.Minute)
	}
	if got := r.Totals(); got != (paymux.ReconcileReport{Checked: 2, Resolved: 2}) {
		t.Fatalf("totals %+v, want 2 checked and 2 resolved", got)
	}
}

func TestReconcilerFinishesAbandonedClaims(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := testclock.New(time.Now())
	clock := clk.Now
	st := memory.New(memory.Options{Clock: clock})
	a := sim.New(sim.Config{Name: "a", Clock: clock})
	o, _ := paymux.New(paymux.Config{Providers: []paymux.Provider{a}, Store: st, Clock: clock, ClaimLease: time.Minute})
	for i, charged := range []bool{true, false} {
		req := cardRequest(fmt.Sprintf("abandoned-%d", i), sim.TokenApprove)
		key1 := paymux.ProviderKey(req.IdempotencyKey, "a", paymux.OpAuthorize, 1)
		snap := &paymux.Payment{ID: paymux.PaymentID(req.IdempotencyKey), IdempotencyKey: req.IdempotencyKey, Provider: "a", Status: paymux.StatusPending, Amount: req.Amount,
			Attempts: []paymux.Attempt{{Number: 1, Provider: "a", Operation: paymux.OpAuthorize, ProviderKey: key1, Outcome: paymux.OutcomePending}}}
		if _, ok, err := st.ClaimIdempotency(ctx, paymux.ClaimParams{Key: "authorize/" + req.IdempotencyKey, Fingerprint: paymux.Fingerprint(&req), Token: "dead", Lease: time.Minute, TTL: time.Hour, Payment: snap}); !ok || err != nil {
			t.Fatal(ok, err)
		}
		if charged {
			if _, err := a.Authorize(ctx, &paymux.AuthorizeRequest{PaymentID: snap.ID, PaymentKey: req.IdempotencyKey, ProviderKey: key1, Amount: req.Amount, Method: req.Method, Capture: paymux.CaptureAutomatic}); err != nil {
				t.Fatal(err)
			}
		}
	}
	clk.Advance(5 * time.Minute)
	rep, err := o.NewReconciler(paymux.ReconcileOptions{Rate: 1000}).Reconcile(ctx)
	if err != nil || rep.Claims != 2 {
		t.Fatalf("report %+v %v", rep, err)
	}
	// The charged one is recorded; the other's key is free again.
	if p, err := o.GetByKey(ctx, "abandoned-0"); err != nil || p.Status != paymux.StatusCaptured {
		t.Fatalf("charged claim: %+v %v", p, err)
	}
	if _, err := st.GetIdempotency(ctx, "authorize/abandoned-1"); !errors.Is(err, paymux.ErrNotFound) {
		t.Fatalf("uncharged claim not freed: %v", err)
	}
	p, err := o.Authorize(ctx, cardRequest("abandoned-1", sim.TokenApprove))
	if err != nil || p.Status != paymux.StatusCaptured || a.Charges("abandoned-1") != 1 || a.Charges("abandoned-0") != 1 {
		t.Fatalf("after reconcile: %+v %v", p, err)
	}
}

func FuzzWebhookHandler(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	p := &paymux.Payment{ProviderRef: "sim_x", IdempotencyKey: "k", Amount: paymux.NewMoney(100, "EUR")}
	good, h := webhookBody("ev", paymux.EventCaptured, p, 100, true, now)
	f.Add(good, h.Get(sim.SignatureHeader))
	f.Add([]byte(`{}`), "t=1,v1=00")
	f.Add([]byte(``), "")
	f.Add(good[:10], h.Get(sim.SignatureHeader))
	f.Add(good, "t=abc,v1=zz,v1=,=,,")
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		clock := func() time.Time { return now }
		st := memory.New(memory.Options{Clock: clock})
		a := sim.New(sim.Config{Name: "a", WebhookSecret: simSecret, Clock: clock})
		o, _ := paymux.New(paymux.Config{Providers: []paymux.Provider{a}, Store: st, Clock: clock})
		hdr := http.Header{}
		hdr.Set(sim.SignatureHeader, sig)
		err := o.WebhookHandler(paymux.WebhookOptions{}).Ingest(context.Background(), "a", hdr, body)
		verified := sim.VerifySignature(simSecret, hdr, body, now, sim.DefaultTolerance) == nil
		if err == nil && !verified {
			t.Fatalf("an unverified body was accepted: %q %q", body, sig)
		}
		if !verified {
			if _, err := st.GetDelivery(context.Background(), "a/ev"); !errors.Is(err, paymux.ErrNotFound) {
				t.Fatal("unverified event reached the outbox")
			}
		}
		_ = paymux.WebhookStatus(err)
	})
}

func BenchmarkWebhookIngest(b *testing.B) {
	ctx := context.Background()
	a := sim.New(sim.Config{Name: "a", WebhookSecret: simSecret})
	o, _ := paymux.New(paymux.Config{Providers: []paymux.Provider{a}, Store: memory.New(memory.Options{})})
	req := cardRequest("bench-webhook", sim.TokenApprove)
	req.Capture = paymux.CaptureManual
	p, _ := o.Authorize(ctx, req)
	h := o.WebhookHandler(paymux.WebhookOptions{})
	now := time.Now()
	bodies := make([][]byte, 4096)
	headers := make([]http.Header, len(bodies))
	for i := range bodies {
		bodies[i], headers[i] = webhookBody(fmt.Sprintf("ev-%d", i), paymux.EventAuthorized, p, 4999, true, now)
	}
	b.Run("verify-only", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			j := i % len(bodies)
			if err := sim.VerifySignature(simSecret, headers[j], bodies[j], now, time.Hour); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ingest", func(b *testing.B) {
		// Fresh event ids, so every iteration verifies, claims, applies and
		// completes; bodies are signed before the timer starts.
		bodies := make([][]byte, b.N)
		headers := make([]http.Header, b.N)
		for i := range bodies {
			bodies[i], headers[i] = webhookBody(fmt.Sprintf("ev-%d", i), paymux.EventAuthorized, p, 4999, true, now)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := h.Ingest(ctx, "a", headers[i], bodies[i]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func providertestPlanTimeout(n int) providertest.FaultPlan {
	return providertest.FaultPlan{TimeoutAfterCommitNext: n}
}

// Providers that report each refund's own amount (Adyen) name the refund:
// each is counted once and they add up, however often they arrive.
func TestRefundEventsWithTheirOwnAmountsAddUp(t *testing.T) {
	t.Parallel()
	o, _ := setup(t, []string{"a"}, nil)
	ctx := context.Background()
	p, err := o.Authorize(ctx, cardRequest("order-refund-sum", sim.TokenApprove))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		for _, r := range []struct {
			id, ref string
			amount  int64
		}{{"rf1", "psp-r1", 1000}, {"rf2", "psp-r2", 1500}} {
			ev := paymux.Event{Provider: "a", ID: r.id, Type: paymux.EventRefunded, ProviderRef: p.ProviderRef, Success: true, Amount: paymux.NewMoney(r.amount, "EUR"), RefundRef: r.ref}
			if p, err = o.ApplyEvent(ctx, &ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	if p.Refunded != 2500 || len(p.Refunds) != 2 || p.Status != paymux.StatusRefunded {
		t.Fatalf("got refunded=%d refunds=%d status=%s", p.Refunded, len(p.Refunds), p.Status)
	}
}

// Invariant 5: a webhook is acknowledged only once applied durably. A store
// that fails while applying gets a 5xx and a released claim, so the
// provider's redelivery applies the event; a duplicate after that is
// acknowledged without being applied again.
func TestInvariant5WebhookAcknowledgedOnlyOnceAppliedDurably(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := &failingSaves{Store: memory.New(memory.Options{})}
	a := sim.New(sim.Config{Name: "a", WebhookSecret: simSecret})
	o, _ := paymux.New(paymux.Config{Providers: []paymux.Provider{a}, Store: st})
	req := cardRequest("order-durable", sim.TokenApprove)
	req.Capture = paymux.CaptureManual
	p, err := o.Authorize(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	subs := &deliveries{seen: map[string]int{}}
	disp, _ := o.NewDispatcher(paymux.DispatcherOptions{Subscriber: subs.subscriber})
	srv := httptest.NewServer(o.WebhookHandler(paymux.WebhookOptions{Dispatcher: disp}))
	defer srv.Close()
	body, h := webhookBody("ev-durable", paymux.EventCaptured, p, p.Amount.Amount, true, time.Now())

	st.failNext.Store(true)
	if code := post(t, srv.URL+"/webhooks/a", body, h); code != 503 {
		t.Fatalf("apply failed but the webhook was answered %d", code)
	}
	if got, _ := o.Get(ctx, p.ID); got.Status != paymux.StatusAuthorized {
		t.Fatalf("a failed apply changed the payment: %s", got.Status)
	}
	// The redelivery is applied (the claim was released), then acknowledged.
	if code := post(t, srv.URL+"/webhooks/a", body, h); code != 200 {
		t.Fatalf("redelivery: %d", code)
	}
	if got, _ := o.Get(ctx, p.ID); got.Status != paymux.StatusCaptured {
		t.Fatalf("redelivery not applied: %s", got.Status)
	}
	saves := st.saves.Load()
	if code := post(t, srv.URL+"/webhooks/a", body, h); code != 200 || st.saves.Load() != saves {
		t.Fatalf("duplicate: status %d, saves %d -> %d", code, saves, st.saves.Load())
	}
	if n, _ := disp.DispatchDue(ctx); n != 1 {
		t.Fatalf("delivered %d, want the event once", n)
	}
}

type failingSaves struct {
	paymux.Store
	failNext atomic.Bool
	saves    atomic.Int32
}

func (f *failingSaves) SavePayment(ctx context.Context, p *paymux.Payment, expected int64) error {
	if f.failNext.Swap(false) {
		return errors.New("connection reset by peer")
	}
	f.saves.Add(1)
	return f.Store.SavePayment(ctx, p, expected)
}

// An unverifiable webhook is never applied; with UnverifiedAsHint it only
// makes paymux ask the provider itself (Sync), rate-limited per provider.
func TestUnverifiedWebhookIsOnlyAHintToSync(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := sim.New(sim.Config{Name: "a", WebhookSecret: simSecret})
	o, _ := paymux.New(paymux.Config{Providers: []paymux.Provider{a}, Store: memory.New(memory.Options{})})
	req := cardRequest("order-hint", sim.TokenApprove)
	req.Capture = paymux.CaptureManual
	p, err := o.Authorize(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	// The payment is captured at the provider behind paymux's back (say, in
	// the provider's dashboard); its webhook arrives with a bad signature.
	if _, err := a.Capture(ctx, &paymux.CaptureRequest{PaymentID: p.ID, Reference: p.ProviderRef, ProviderKey: "dashboard", Amount: p.Amount}); err != nil {
		t.Fatal(err)
	}
	body, _ := webhookBody("ev-forged", paymux.EventRefunded, p, p.Amount.Amount, true, time.Now())
	forged := sim.SignWebhook("simsec_wrong", body, time.Now())
	h := o.WebhookHandler(paymux.WebhookOptions{UnverifiedAsHint: true, HintRate: 0.001, HintBurst: 1})
	for i := 0; i < 5; i++ {
		if err := h.Ingest(ctx, "a", forged, body); !errors.Is(err, paymux.ErrWebhookBadSignature) {
			t.Fatalf("forged webhook: %v", err)
		}
	}
	// The claimed refund is never applied; the provider's truth (captured) is.
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _ := o.Get(ctx, p.ID)
		if got.Status == paymux.StatusRefunded {
			t.Fatal("an unverified event was applied")
		}
		if got.Status == paymux.StatusCaptured {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Sync after the hint: %s", got.Status)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// claimCounter is the memory store with its event claims counted, made an
// UnchangedEventCompleter (the memory store itself is not one: a claim costs
// it no round trip, so the copies would buy nothing). One lock makes the
// check and the two writes one step for this test's callers.
type claimCounter struct {
	*memory.Store
	mu              sync.Mutex
	claims, oneStep atomic.Int32
}

func (c *claimCounter) ClaimEvent(ctx context.Context, provider, id string, lease time.Duration) (paymux.EventClaim, error) {
	c.claims.Add(1)
	return c.Store.ClaimEvent(ctx, provider, id, lease)
}

func (c *claimCounter) CompletesUnchangedEvents() bool { return true }

func (c *claimCounter) CompleteUnchangedEvent(ctx context.Context, provider, eventID string, ttl time.Duration, d *paymux.Delivery, paymentID string, version int64) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, err := c.Store.GetPayment(ctx, paymentID); err != nil || p.Version != version {
		return false, nil
	}
	// A claim that is not counted: it only asks whether the event is new.
	if claim, err := c.Store.ClaimEvent(ctx, provider, eventID, time.Minute); err != nil || claim != paymux.EventClaimed {
		return false, err
	}
	if err := c.Store.CompleteEventWithDelivery(ctx, provider, eventID, ttl, d); err != nil {
		return false, err
	}
	c.oneStep.Add(1)
	return true, nil
}

// The webhook that confirms a payment this process just recorded changes
// nothing, and is finished in one store call with no claim; anything else
// (a duplicate, an event that moves the payment, a payment another
// process moved since) goes the usual way, and every event is delivered
// once.
func TestWebhookConfirmingARecordedPaymentTakesOneStep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, remember := range []int{0, -1} {
		st := &claimCounter{Store: memory.New(memory.Options{})}
		a := sim.New(sim.Config{Name: "a", WebhookSecret: simSecret})
		o, err := paymux.New(paymux.Config{Providers: []paymux.Provider{a}, Store: st, RecentPayments: remember})
		if err != nil {
			t.Fatal(err)
		}
		subs := &deliveries{seen: map[string]int{}}
		disp, _ := o.NewDispatcher(paymux.DispatcherOptions{Subscriber: subs.subscriber})
		srv := httptest.NewServer(o.WebhookHandler(paymux.WebhookOptions{Dispatcher: disp}))
		req := cardRequest(fmt.Sprintf("order-one-step-%d", remember), sim.TokenApprove)
		req.Capture = paymux.CaptureManual
		p, err := o.Authorize(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		send := func(id string, typ paymux.EventType) {
			t.Helper()
			body, h := webhookBody(id, typ, p, p.Amount.Amount, true, time.Now())
			if code := post(t, srv.URL+"/webhooks/a", body, h); code != 200 {
				t.Fatalf("%s: answered %d", id, code)
			}
		}
		send("ev-authorised", paymux.EventAuthorized)
		wantOneStep := int32(1)
		if remember < 0 {
			wantOneStep = 0 // nothing remembered: every event is claimed
		}
		if st.oneStep.Load() != wantOneStep || st.claims.Load() != 1-wantOneStep {
			t.Fatalf("RecentPayments %d: %d one-step completions and %d claims, want %d and %d",
				remember, st.oneStep.Load(), st.claims.Load(), wantOneStep, 1-wantOneStep)
		}
		send("ev-authorised", paymux.EventAuthorized) // a duplicate: claimed, found processed
		send("ev-captured", paymux.EventCaptured)     // moves the payment: the usual way
		if got, _ := o.Get(ctx, p.ID); got.Status != paymux.StatusCaptured {
			t.Fatalf("the capture event was not applied: %s", got.Status)
		}
		// The remembered copy is now out of date (the capture above was
		// saved by the usual path): an event that changes nothing against
		// it is refused by the store and goes the usual way too.
		send("ev-authorised-again", paymux.EventAuthorized)
		if st.oneStep.Load() != wantOneStep {
			t.Fatalf("RecentPayments %d: %d one-step completions after the others, want %d", remember, st.oneStep.Load(), wantOneStep)
		}
		if n, _ := disp.DispatchDue(ctx); n != 3 {
			t.Fatalf("RecentPayments %d: delivered %d, want each of the 3 events once", remember, n)
		}
		if total, maxPer := subs.count(); total != 3 || maxPer != 1 {
			t.Fatalf("RecentPayments %d: %d deliveries, at most %d of one event; want 3 and 1", remember, total, maxPer)
		}
		srv.Close()
	}
}
