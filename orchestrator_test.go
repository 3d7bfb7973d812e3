package paymux_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// bundle is what setup builds: an orchestrator over sims named a, b, ...
// routed in that order, on a memory store.
type bundle struct {
	orch  *paymux.Orchestrator
	store paymux.Store
	sims  map[string]*sim.Provider
	logs  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func setup(t testing.TB, names []string, mutate func(*paymux.Config)) (*paymux.Orchestrator, *bundle) {
	t.Helper()
	b := &bundle{sims: map[string]*sim.Provider{}, logs: &syncBuffer{}}
	var provs []paymux.Provider
	for _, n := range names {
		s := sim.New(sim.Config{Name: n, WebhookSecret: "simsec_" + paymux.Secret(n)})
		b.sims[n] = s
		provs = append(provs, s)
	}
	cfg := paymux.Config{
		Providers: provs,
		Store:     memory.New(memory.Options{}),
		Logger:    slog.New(slog.NewTextHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Retry:     paymux.RetrySettings{InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	b.store = cfg.Store
	o, err := paymux.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.orch = o
	return o, b
}

func cardRequest(key, token string) paymux.PaymentRequest {
	return paymux.PaymentRequest{
		IdempotencyKey: key,
		Amount:         paymux.NewMoney(4999, "EUR"),
		Method:         paymux.PaymentMethod{Type: paymux.MethodCard, Token: token},
		Country:        "DE",
	}
}

func (b *bundle) charges(key string) map[string]int {
	out := map[string]int{}
	for n, s := range b.sims {
		out[n] = s.Charges(key)
	}
	return out
}

func (b *bundle) totalCharges(key string) int {
	n := 0
	for _, s := range b.sims {
		n += s.Charges(key)
	}
	return n
}

// Invariant 1: at most one charge per idempotency key.
func TestInvariant1AtMostOneChargePerKey(t *testing.T) {
	t.Parallel()
	o, b := setup(t, []string{"a", "b"}, nil)
	ctx := context.Background()
	req := cardRequest("order-race", sim.TokenApprove)
	var wg sync.WaitGroup
	var ok, inProgress atomic.Int32
	ids := sync.Map{}
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := o.Authorize(ctx, req)
			switch {
			case err == nil:
				ok.Add(1)
				ids.Store(p.ID, true)
			case errors.Is(err, paymux.ErrInProgress):
				inProgress.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := b.totalCharges(req.IdempotencyKey); got != 1 {
		t.Fatalf("64 racing requests made %d charges: %v", got, b.charges(req.IdempotencyKey))
	}
	if ok.Load() == 0 || ok.Load()+inProgress.Load() != 64 {
		t.Fatalf("ok=%d in-progress=%d", ok.Load(), inProgress.Load())
	}
	// Retries after completion replay the same payment.
	for i := 0; i < 5; i++ {
		p, err := o.Authorize(ctx, req)
		if err != nil || p.Status != paymux.StatusCaptured {
			t.Fatalf("replay %d: %v %v", i, p, err)
		}
		ids.Store(p.ID, true)
	}
	n := 0
	ids.Range(func(_, _ any) bool { n++; return true })
	if n != 1 || b.totalCharges(req.IdempotencyKey) != 1 {
		t.Fatalf("%d payment ids, %d charges", n, b.totalCharges(req.IdempotencyKey))
	}
}

func TestInvariant1ManyKeysEachSentFourTimesAcrossFailover(t *testing.T) {
	t.Parallel()
	o, b := setup(t, []string{"a", "b"}, func(c *paymux.Config) {
		c.Breaker = paymux.BreakerSettings{ConsecutiveFailures: 1 << 30} // keep calling a
	})
	b.sims["a"].Faults().Set(providertest.FaultPlan{Outage: true})
	ctx := context.Background()
	const keys = 300
	var wg sync.WaitGroup
	for k := 0; k < keys; k++ {
		for r := 0; r < 4; r++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					_, err := o.Authorize(ctx, cardRequest(fmt.Sprintf("order-%d", k), sim.TokenApprove))
					if !errors.Is(err, paymux.ErrInProgress) {
						if err != nil {
							t.Error(err)
						}
						return
					}
					time.Sleep(time.Millisecond)
				}
			}()
		}
	}
	wg.Wait()
	if a, bb := b.sims["a"].TotalCharges(), b.sims["b"].TotalCharges(); a != 0 || bb != keys {
		t.Fatalf("charges a=%d b=%d, want 0 and %d", a, bb, keys)
	}
}

func TestIdempotencyMismatchIsRefused(t *testing.T) {
	t.Parallel()
	o, b := setup(t, []string{"a"}, nil)
	ctx := context.Background()
	req := cardRequest("order-mismatch", sim.TokenApprove)
	if _, err := o.Authorize(ctx, req); err != nil {
		t.Fatal(err)
	}
	req.Amount.Amount++
	if _, err := o.Authorize(ctx, req); !errors.Is(err, paymux.ErrIdempotencyMismatch) {
		t.Fatalf("got %v, want ErrIdempotencyMismatch", err)
	}
	if b.totalCharges(req.IdempotencyKey) != 1 {
		t.Fatal("mismatch charged")
	}
}

// Invariant 2: fail over only when money provably did not move.
func TestInvariant2TimeoutAfterCommitNeverFailsOver(t *testing.T) {
	t.Parallel()
	o, b := setup(t, []string{"a", "b"}, nil)
	ctx := context.Background()
	b.sims["a"].Faults().Set(providertest.FaultPlan{TimeoutAfterCommitNext: 1})
	req := cardRequest("order-timeout", sim.TokenApprove)
	p, err := o.Authorize(ctx, req)
	if !errors.Is(err, paymux.ErrOutcomeUnknown) || p == nil || p.Status != paymux.StatusUnknown || p.Provider != "a" {
		t.Fatalf("got %+v, %v; want an unknown payment at a", p, err)
	}
	if c := b.charges(req.IdempotencyKey); c["a"] != 1 || c["b"] != 0 {
		t.Fatalf("charges %v: b must never be tried after an unknown outcome", c)
	}
	// A retry of the same key does not move on either.
	if p2, _ := o.Authorize(ctx, req); p2.Status != paymux.StatusUnknown || b.sims["b"].Charges(req.IdempotencyKey) != 0 {
		t.Fatalf("retry: %+v", p2)
	}
	// Sync finds the charge at a.
	p, err = o.Sync(ctx, p.ID)
	if err != nil || p.Status != paymux.StatusCaptured || p.ProviderRef == "" {
		t.Fatalf("after sync: %+v %v", p, err)
	}
	if got, _ := o.Authorize(ctx, req); got.Status != paymux.StatusCaptured {
		t.Fatalf("replay after sync: %+v", got)
	}
	if b.totalCharges(req.IdempotencyKey) != 1 {
		t.Fatal("double charge")
	}
}

func TestInvariant2ServerErrorOfUnknownEffectStops(t *testing.T) {
	t.Parallel()
	o, b := setup(t, []string{"a", "b"}, nil)
	b.sims["a"].Faults().Set(providertest.FaultPlan{ServerErrorRate: 1})
	p, err := o.Authorize(context.Background(), cardRequest("order-5xx", sim.TokenApprove))
	if !errors.Is(err, paymux.ErrOutcomeUnknown) || p.Status != paymux.StatusUnknown || b.sims["b"].Charges("order-5xx") != 0 {
		t.Fatalf("got %+v %v", p, err)
	}
}

func TestInvariant2UnavailableFailsOver(t *testing.T) {
	t.Parallel()
	o, b := setup(t, []string{"a", "b"}, nil)
	b.sims["a"].Faults().Set(providertest.FaultPlan{Outage: true})
	p, err := o.Authorize(context.Background(), cardRequest("order-outage", sim.TokenApprove))
	if err != nil || p.Provider != "b" || p.Status != paymux.StatusCaptured {
		t.Fatalf("got %+v %v", p, err)
	}
	if len(p.Attempts) != 2 || p.Attempts[0].Kind != paymux.KindUnavailable || p.Attempts[1].Outcome != paymux.OutcomeSucceeded {
		t.Fatalf("attempts %+v", p.Attempts)
	}
}

func TestInvariant2DeclinesCascadeOnlyWhenClassified(t *testing.T) {
	t.Parallel()
	cases := []struct {
		token        string
		wantProvider string
		wantErr      error
	}{
		{sim.TokenSoftDecline, "b", nil},                      // issuer unavailable: another acquirer may succeed
		{sim.TokenInsufficientFunds, "a", paymux.ErrDeclined}, // another acquirer will not find the money
		{sim.TokenHardDecline, "a", paymux.ErrHardDecline},
	}
	for _, c := range cases {
		t.Run(c.token, func(t *testing.T) {
			o, b := setup(t, []string{"a", "b"}, nil)
			req := cardRequest("order-"+c.token, c.token)
			p, err := o.Authorize(context.Background(), req)
			if c.wantErr == nil {
				// The soft decline cascades to b, which declines it the same
				// way: the sim is one issuer. What matters is that b was tried.
				if len(p.Attempts) != 2 || p.Attempts[1].Provider != "b" {
					t.Fatalf("soft decline did not cascade: %+v %v", p.Attempts, err)
				}
				return
			}
			if !errors.Is(err, c.wantErr) || p.Status != paymux.StatusFailed || len(p.Attempts) != 1 {
				t.Fatalf("got %+v %v", p, err)
			}
			if b.totalCharges(req.IdempotencyKey) != 0 {
				t.Fatal("declined payment charged")
			}
		})
	}
}

// Invariant 3: provider keys are derived and saved before the call; a retry
// of the same attempt reuses the key; a new attempt gets a new one.
func TestInvariant3ProviderKeySavedBeforeCall(t *testing.T) {
	t.Parallel()
	st := memory.New(memory.Options{})
	inner := sim.New(sim.Config{Name: "a"})
	spy := &keySpy{Provider: inner, store: st, failFirst: 2}
	o, err := paymux.New(paymux.Config{
		Providers: []paymux.Provider{spy}, Store: st,
		Retry: paymux.RetrySettings{InitialInterval: time.Millisecond, MaxRetries: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := o.Authorize(context.Background(), cardRequest("order-keys", sim.TokenApprove))
	if err != nil {
		t.Fatal(err)
	}
	if spy.unsaved.Load() != 0 {
		t.Fatalf("%d calls were made with a key the store did not hold", spy.unsaved.Load())
	}
	keys := spy.keys()
	// Two retryable failures, then success: three calls, one key.
	if len(keys) != 3 || keys[0] != keys[1] || keys[1] != keys[2] {
		t.Fatalf("retries of one attempt used keys %v, want one key three times", keys)
	}
	want := paymux.ProviderKey("order-keys", "a", paymux.OpAuthorize, 1)
	if keys[0] != want || p.Attempts[0].ProviderKey != want {
		t.Fatalf("key %s, want %s", keys[0], want)
	}
	if inner.Charges("order-keys") != 1 {
		t.Fatal("retries charged twice")
	}
}

func TestInvariant3NewAttemptAfterDeclineGetsNewKey(t *testing.T) {
	t.Parallel()
	o, b := setup(t, []string{"a"}, nil)
	// authentication_required steps up to 3-D Secure on the same provider.
	p, _ := o.Authorize(context.Background(), cardRequest("order-stepup", sim.TokenAuthenticationRequired))
	if len(p.Attempts) != 2 || p.Attempts[0].ProviderKey == p.Attempts[1].ProviderKey {
		t.Fatalf("attempts %+v: a step-up must use a new key", p.Attempts)
	}
	if p.Attempts[1].ProviderKey != paymux.ProviderKey("order-stepup", "a", paymux.OpAuthorize, 2) {
		t.Fatal("second attempt key is not derived from attempt number 2")
	}
	_ = b
}

// keySpy checks, at call time, that the store's in-flight record already
// holds the provider key of the attempt, and fails the first calls with a
// retryable error.
type keySpy struct {
	paymux.Provider
	store     paymux.Store
	failFirst int32
	calls     atomic.Int32
	unsaved   atomic.Int32
	mu        sync.Mutex
	seen      []string
}

func (s *keySpy) DecisionTable() paymux.DecisionTable {
	t := s.Provider.(paymux.DecisionTabler).DecisionTable()
	t[paymux.DecisionKey{Provider: "a", Code: "lock_timeout"}] = paymux.Classification{Kind: paymux.KindRateLimited, Decision: paymux.DecisionRetry}
	return t
}

func (s *keySpy) keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

func (s *keySpy) Authorize(ctx context.Context, req *paymux.AuthorizeRequest) (*paymux.ProviderPayment, error) {
	s.mu.Lock()
	s.seen = append(s.seen, req.ProviderKey)
	s.mu.Unlock()
	rec, err := s.store.GetIdempotency(ctx, "authorize/"+req.PaymentKey)
	saved := false
	if err == nil && rec.Payment != nil {
		for _, a := range rec.Payment.Attempts {
			saved = saved || a.ProviderKey == req.ProviderKey
		}
	}
	if !saved {
		s.unsaved.Add(1)
	}
	if s.calls.Add(1) <= s.failFirst {
		return nil, &paymux.ProviderError{Provider: "a", Kind: paymux.KindRateLimited, Code: "lock_timeout"}
	}
	return s.Provider.Authorize(ctx, req)
}

// Invariant 4 at the orchestrator: a capture is never undone by a late
// authorisation event, and amounts keep their order.
func TestInvariant4StateNeverMovesBackwards(t *testing.T) {
	t.Parallel()
	o, _ := setup(t, []string{"a"}, nil)
	ctx := context.Background()
	req := cardRequest("order-backwards", sim.TokenApprove)
	req.Capture = paymux.CaptureManual
	p, err := o.Authorize(ctx, req)
	if err != nil || p.Status != paymux.StatusAuthorized {
		t.Fatal(p, err)
	}
	if p, err = o.Capture(ctx, p.ID, paymux.CaptureParams{Key: "c1"}); err != nil || p.Status != paymux.StatusCaptured {
		t.Fatal(p, err)
	}
	late := []paymux.Event{
		{Provider: "a", ID: "e1", Type: paymux.EventAuthorized, ProviderRef: p.ProviderRef, Success: true, Amount: paymux.NewMoney(10, "EUR")},
		{Provider: "a", ID: "e2", Type: paymux.EventFailed, ProviderRef: p.ProviderRef},
		{Provider: "a", ID: "e3", Type: paymux.EventVoided, ProviderRef: p.ProviderRef, Success: true},
		{Provider: "a", ID: "e4", Type: paymux.EventActionRequired, ProviderRef: p.ProviderRef},
	}
	for _, ev := range late {
		got, err := o.ApplyEvent(ctx, &ev)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != paymux.StatusCaptured || got.Captured != 4999 || got.Authorized != 4999 {
			t.Fatalf("after late %s: %+v", ev.Type, got)
		}
	}
	// A refund event beyond the capture lifts nothing past it... and a
	// second partial refund never lowers the total.
	ev := paymux.Event{Provider: "a", ID: "r1", Type: paymux.EventRefunded, ProviderRef: p.ProviderRef, Success: true, Amount: paymux.NewMoney(1000, "EUR")}
	got, _ := o.ApplyEvent(ctx, &ev)
	ev2 := paymux.Event{Provider: "a", ID: "r0", Type: paymux.EventRefunded, ProviderRef: p.ProviderRef, Success: true, Amount: paymux.NewMoney(500, "EUR")}
	got, _ = o.ApplyEvent(ctx, &ev2)
	if got.Refunded != 1000 || got.Refunded > got.Captured || got.Captured > got.Authorized {
		t.Fatalf("amounts %+v", got)
	}
}

// Invariant 6: no card data, no secrets in the clear.
func TestInvariant6CardNumbersRefusedAndSecretsNeverPrinted(t *testing.T) {
	t.Parallel()
	o, b := setup(t, []string{"a"}, nil)
	ctx := context.Background()
	for _, pan := range []string{"4242424242424242", "4242 4242 4242 4242", "5555-5555-5555-4444"} {
		_, err := o.Authorize(ctx, cardRequest("order-pan", pan))
		if !errors.Is(err, paymux.ErrCardData) || strings.Contains(err.Error(), "4242") || strings.Contains(err.Error(), "5555") {
			t.Fatalf("%q: %v", pan, err)
		}
	}
	req := cardRequest("order-pan-meta", sim.TokenApprove)
	req.Metadata = map[string]string{"note": "4000056655665556"}
	if _, err := o.Authorize(ctx, req); !errors.Is(err, paymux.ErrCardData) {
		t.Fatalf("PAN in metadata: %v", err)
	}
	if b.sims["a"].TotalCharges() != 0 {
		t.Fatal("a card number reached the provider")
	}
	// A provider message echoing a card number or a key is redacted.
	pe := &paymux.ProviderError{Provider: "a", Kind: paymux.KindInvalidRequest, Message: "bad card 4242424242424242 for key sk_live_abcdefghijkl"}
	if s := pe.Error(); strings.Contains(s, "4242424242424242") || strings.Contains(s, "sk_live_abcdefghijkl") {
		t.Fatalf("leak: %s", s)
	}
	// The sims' webhook secrets never reach the logs.
	_, _ = o.Authorize(ctx, cardRequest("order-log", sim.TokenApprove))
	if strings.Contains(b.logs.String(), "simsec_") {
		t.Fatal("a webhook secret reached the log")
	}
}

// Invariant 7: fail closed.
func TestInvariant7FailClosedWithoutStore(t *testing.T) {
	t.Parallel()
	a := sim.New(sim.Config{Name: "a"})
	o, err := paymux.New(paymux.Config{Providers: []paymux.Provider{a}, Store: brokenStore{memory.New(memory.Options{})}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = o.Authorize(context.Background(), cardRequest("order-nostore", sim.TokenApprove))
	if !errors.Is(err, paymux.ErrStoreUnavailable) {
		t.Fatalf("got %v, want ErrStoreUnavailable", err)
	}
	if a.TotalCharges() != 0 {
		t.Fatal("charged without an idempotency claim")
	}
}

type brokenStore struct{ paymux.Store }

func (brokenStore) ClaimIdempotency(context.Context, paymux.ClaimParams) (*paymux.IdempotencyRecord, bool, error) {
	return nil, false, errors.New("dial tcp 127.0.0.1:6379: connection refused")
}

// A request whose holder crashed mid-call is recovered by the next request
// for its key: it asks the provider first, and finds the charge.
func TestCrashedClaimIsRecoveredFromTheProvider(t *testing.T) {
	t.Parallel()
	clk := testclock.New(time.Now())
	advance := clk.Advance
	st := memory.New(memory.Options{Clock: clk.Now})
	a := sim.New(sim.Config{Name: "a"})
	bb := sim.New(sim.Config{Name: "b"})
	o, err := paymux.New(paymux.Config{Providers: []paymux.Provider{a, bb}, Store: st, ClaimLease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	req := cardRequest("order-crash", sim.TokenApprove)
	// The crashed process: it claimed the key with attempt 1 at a, called a
	// (the charge went through), and died before completing.
	key1 := paymux.ProviderKey(req.IdempotencyKey, "a", paymux.OpAuthorize, 1)
	snap := &paymux.Payment{ID: paymux.PaymentID(req.IdempotencyKey), IdempotencyKey: req.IdempotencyKey, Provider: "a", Status: paymux.StatusPending, Amount: req.Amount,
		Attempts: []paymux.Attempt{{Number: 1, Provider: "a", Operation: paymux.OpAuthorize, ProviderKey: key1, Outcome: paymux.OutcomePending}}}
	if _, ok, err := st.ClaimIdempotency(ctx, paymux.ClaimParams{Key: "authorize/" + req.IdempotencyKey, Fingerprint: paymux.Fingerprint(&req), Token: "dead", Lease: time.Minute, TTL: time.Hour, Payment: snap}); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if _, err := a.Authorize(ctx, &paymux.AuthorizeRequest{PaymentID: snap.ID, PaymentKey: req.IdempotencyKey, ProviderKey: key1, Amount: req.Amount, Method: req.Method, Capture: paymux.CaptureAutomatic}); err != nil {
		t.Fatal(err)
	}
	// While the lease lives, the key is in progress.
	if _, err := o.Authorize(ctx, req); !errors.Is(err, paymux.ErrInProgress) {
		t.Fatalf("during lease: %v", err)
	}
	advance(2 * time.Minute)
	p, err := o.Authorize(ctx, req)
	if err != nil || p.Status != paymux.StatusCaptured || p.Provider != "a" {
		t.Fatalf("recovered: %+v %v", p, err)
	}
	if a.Charges(req.IdempotencyKey) != 1 || bb.Charges(req.IdempotencyKey) != 0 {
		t.Fatal("recovery charged again")
	}
}

func TestBreakerOpensAndNextChargeGoesStraightToFallback(t *testing.T) {
	t.Parallel()
	o, b := setup(t, []string{"a", "b"}, func(c *paymux.Config) {
		c.Breaker = paymux.BreakerSettings{ConsecutiveFailures: 3, OpenTimeout: time.Hour}
	})
	ctx := context.Background()
	b.sims["a"].Faults().Set(providertest.FaultPlan{Outage: true})
	for i := 0; i < 3; i++ {
		if _, err := o.Authorize(ctx, cardRequest(fmt.Sprintf("trip-%d", i), sim.TokenApprove)); err != nil {
			t.Fatal(err)
		}
	}
	if o.BreakerState("a") != "open" {
		t.Fatalf("breaker %s after 3 failures", o.BreakerState("a"))
	}
	// Heal a: the open breaker must still keep calls away from it.
	b.sims["a"].Faults().Set(providertest.FaultPlan{})
	start := time.Now()
	p, err := o.Authorize(ctx, cardRequest("after-trip", sim.TokenApprove))
	if err != nil || p.Provider != "b" || len(p.Attempts) != 1 {
		t.Fatalf("got %+v %v: the open provider must be skipped, not tried", p, err)
	}
	if b.sims["a"].TotalCharges() != 0 || time.Since(start) > time.Second {
		t.Fatal("a was called or the charge waited")
	}
}

func TestDeclinesNeverTripTheBreaker(t *testing.T) {
	t.Parallel()
	o, _ := setup(t, []string{"a"}, func(c *paymux.Config) {
		c.Breaker = paymux.BreakerSettings{ConsecutiveFailures: 2}
	})
	for i := 0; i < 5; i++ {
		_, _ = o.Authorize(context.Background(), cardRequest(fmt.Sprintf("decl-%d", i), sim.TokenHardDecline))
	}
	if o.BreakerState("a") != "closed" {
		t.Fatalf("declines tripped the breaker: %s", o.BreakerState("a"))
	}
}

func TestCaptureRefundVoidFlows(t *testing.T) {
	t.Parallel()
	o, b := setup(t, []string{"a"}, nil)
	ctx := context.Background()
	req := cardRequest("order-flow", sim.TokenApprove)
	req.Capture = paymux.CaptureManual
	p, err := o.Authorize(ctx, req)
	if err != nil || p.Status != paymux.StatusAuthorized || p.Authorized != 4999 {
		t.Fatal(p, err)
	}
	if _, err := o.Capture(ctx, p.ID, paymux.CaptureParams{Key: "c1", Amount: 5000}); !errors.Is(err, paymux.ErrAmountExceeded) {
		t.Fatalf("over-capture: %v", err)
	}
	p, err = o.Capture(ctx, p.ID, paymux.CaptureParams{Key: "c1", Amount: 3000})
	if err != nil || p.Status != paymux.StatusCaptured || p.Captured != 3000 {
		t.Fatal(p, err)
	}
	// The same capture key again is a replay, not a second capture.
	p, err = o.Capture(ctx, p.ID, paymux.CaptureParams{Key: "c1", Amount: 3000})
	if err != nil || p.Captured != 3000 {
		t.Fatal(p, err)
	}
	p, err = o.Refund(ctx, p.ID, paymux.RefundParams{Key: "r1", Amount: 1000})
	if err != nil || p.Refunded != 1000 || p.Status != paymux.StatusRefunded {
		t.Fatal(p, err)
	}
	p, err = o.Refund(ctx, p.ID, paymux.RefundParams{Key: "r2", Amount: 1500})
	if err != nil || p.Refunded != 2500 || len(p.Refunds) != 2 {
		t.Fatal(p, err)
	}
	if _, err := o.Refund(ctx, p.ID, paymux.RefundParams{Key: "r3", Amount: 501}); !errors.Is(err, paymux.ErrAmountExceeded) {
		t.Fatalf("over-refund: %v", err)
	}
	p, _ = o.Refund(ctx, p.ID, paymux.RefundParams{Key: "r2", Amount: 1500})
	if p.Refunded != 2500 {
		t.Fatalf("replayed refund counted twice: %+v", p)
	}

	// Void of another authorisation.
	req2 := cardRequest("order-void", sim.TokenApprove)
	req2.Capture = paymux.CaptureManual
	p2, _ := o.Authorize(ctx, req2)
	p2, err = o.Void(ctx, p2.ID, paymux.VoidParams{Key: "v1"})
	if err != nil || p2.Status != paymux.StatusVoided {
		t.Fatal(p2, err)
	}
	if _, err := o.Capture(ctx, p2.ID, paymux.CaptureParams{Key: "late"}); !errors.Is(err, paymux.ErrInvalidState) {
		t.Fatalf("capture after void: %v", err)
	}
	_ = b
}

func TestRiskHookRefusesOrStepsUp(t *testing.T) {
	t.Parallel()
	o, b := setup(t, []string{"a"}, func(c *paymux.Config) {
		c.Risk = func(_ context.Context, r *paymux.PaymentRequest) (paymux.RiskDecision, error) {
			switch r.Campaign {
			case "fraudy":
				return paymux.RiskDecision{Refuse: true, Reason: "velocity"}, nil
			case "sca":
				return paymux.RiskDecision{RequireThreeDS: true}, nil
			}
			return paymux.RiskDecision{}, nil
		}
	})
	req := cardRequest("order-risk", sim.TokenApprove)
	req.Campaign = "fraudy"
	if _, err := o.Authorize(context.Background(), req); !errors.Is(err, paymux.ErrRiskRefused) {
		t.Fatalf("got %v", err)
	}
	if b.sims["a"].TotalCharges() != 0 {
		t.Fatal("refused payment reached the provider")
	}
	req2 := cardRequest("order-sca", sim.TokenThreeDS)
	req2.Campaign = "sca"
	p, err := o.Authorize(context.Background(), req2)
	if err != nil || p.Status != paymux.StatusCaptured {
		t.Fatalf("3DS requested up front should pass a 3DS card: %+v %v", p, err)
	}
}

func TestThreeDSReturnsNextAction(t *testing.T) {
	t.Parallel()
	o, _ := setup(t, []string{"a"}, nil)
	p, err := o.Authorize(context.Background(), cardRequest("order-3ds", sim.TokenThreeDS))
	if err != nil || p.Status != paymux.StatusRequiresAction || p.NextAction == nil || p.NextAction.RedirectURL == "" {
		t.Fatalf("got %+v %v", p, err)
	}
}

func TestObserverSeesAttemptsAndPayments(t *testing.T) {
	t.Parallel()
	obs := &recordingObserver{}
	o, b := setup(t, []string{"a", "b"}, func(c *paymux.Config) { c.Observer = obs })
	b.sims["a"].Faults().Set(providertest.FaultPlan{Outage: true})
	if _, err := o.Authorize(context.Background(), cardRequest("order-obs", sim.TokenApprove)); err != nil {
		t.Fatal(err)
	}
	if obs.attempts.Load() != 2 || obs.payments.Load() != 1 {
		t.Fatalf("attempts=%d payments=%d", obs.attempts.Load(), obs.payments.Load())
	}
}

type recordingObserver struct{ attempts, payments atomic.Int32 }

func (r *recordingObserver) ObserveAttempt(context.Context, *paymux.Payment, paymux.Attempt) {
	r.attempts.Add(1)
}
func (r *recordingObserver) ObservePayment(context.Context, paymux.Operation, *paymux.Payment, error) {
	r.payments.Add(1)
}

func TestAllProvidersDownFreesTheKey(t *testing.T) {
	t.Parallel()
	o, b := setup(t, []string{"a", "b"}, nil)
	for _, s := range b.sims {
		s.Faults().Set(providertest.FaultPlan{Outage: true})
	}
	ctx := context.Background()
	req := cardRequest("order-alldown", sim.TokenApprove)
	if _, err := o.Authorize(ctx, req); !errors.Is(err, paymux.ErrAllProvidersFailed) || !errors.Is(err, paymux.ErrUnavailable) {
		t.Fatalf("got %v", err)
	}
	for _, s := range b.sims {
		s.Faults().Set(providertest.FaultPlan{})
	}
	// Nothing moved, so the same order can be paid once the providers are back.
	p, err := o.Authorize(ctx, req)
	if err != nil || p.Status != paymux.StatusCaptured || b.totalCharges(req.IdempotencyKey) != 1 {
		t.Fatalf("retry: %+v %v", p, err)
	}
}

// Invariant 1 across the idempotency TTL: the key's record expired (a day
// later), but the payment exists, so a retry replays it.
func TestInvariant1RetryAfterIdempotencyTTLReplays(t *testing.T) {
	t.Parallel()
	clk := testclock.New(time.Now())
	clock := clk.Now
	st := memory.New(memory.Options{Clock: clock})
	a := sim.New(sim.Config{Name: "a"})
	o, err := paymux.New(paymux.Config{Providers: []paymux.Provider{a}, Store: st, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	req := cardRequest("order-next-day", sim.TokenApprove)
	p1, err := o.Authorize(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(25 * time.Hour)
	if _, err := st.GetIdempotency(ctx, "authorize/"+req.IdempotencyKey); !errors.Is(err, paymux.ErrNotFound) {
		t.Fatalf("record still there: %v", err)
	}
	p2, err := o.Authorize(ctx, req)
	if err != nil || p2.ID != p1.ID || a.Charges(req.IdempotencyKey) != 1 {
		t.Fatalf("retry after TTL: %+v %v, charges %d", p2, err, a.Charges(req.IdempotencyKey))
	}
}
