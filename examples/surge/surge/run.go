package surge

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/paymux/paymux/examples/order"
	"github.com/paymux/paymux/examples/session"
	"github.com/paymux/paymux/examples/shop/app"
	"github.com/paymux/paymux/providers/sim"
)

// runner holds one drop's state.
type runner struct {
	cfg   Config
	t     *target
	base  *url.URL
	tr    *http.Transport
	runID string

	started, finished, told, soldOut, failed, errs atomic.Int64
}

// Run plays a drop and returns its report. The error is for a drop that
// could not be played (the shop did not start, sign-ins failed); a drop that
// broke an invariant returns a report whose Check says so.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.defaults()
	r := &runner{cfg: cfg, runID: "surge" + strconv.FormatInt(time.Now().UnixNano(), 36)}
	r.tr = &http.Transport{
		MaxIdleConns: cfg.Concurrency * 2, MaxIdleConnsPerHost: cfg.Concurrency * 2,
		IdleConnTimeout: 90 * time.Second, DisableCompression: true,
	}
	defer r.tr.CloseIdleConnections()
	setupStart := time.Now()

	var accounts []session.SeedUser
	var passwords []string
	if cfg.URL == "" {
		countries := []string{"DE", "US", "GB", "FR"}
		for i := 0; i < cfg.Accounts; i++ {
			accounts = append(accounts, session.SeedUser{Email: fmt.Sprintf("buyer%05d@surge.example", i), Password: AccountPass, Country: countries[i%len(countries)]})
		}
		if cfg.Chaos && cfg.Store != "memory" {
			cfg.Logger.Info("surge: chaos cuts paymux's store wrapper, not the database connection itself")
		}
		t, err := startInProcess(ctx, &cfg, accounts)
		if err != nil {
			return nil, err
		}
		r.t = t
	} else {
		if cfg.Chaos {
			return nil, errors.New("surge: chaos needs the shop in process (drop -url): it injects faults into the sims and the store")
		}
		// A remote shop has its own accounts: the demo ones.
		for i, u := range []session.SeedUser{{Email: "ana@example.com"}, {Email: "ben@example.com"}, {Email: "chloe@example.com"}} {
			if i >= cfg.Accounts {
				break
			}
			accounts = append(accounts, u)
			passwords = append(passwords, "drop-2026")
		}
		t, err := remoteTarget(ctx, cfg.URL, &http.Client{Transport: r.tr, Timeout: 10 * time.Second})
		if err != nil {
			return nil, err
		}
		r.t = t
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		return r.t.stop(sctx)
	}
	defer func() { _ = stop() }()
	var err error
	if r.base, err = url.Parse(r.t.base); err != nil {
		return nil, err
	}

	// Sign the accounts in before the drop opens, a few at a time: bcrypt
	// at production cost is what this waits for.
	jars := make([]http.CookieJar, len(accounts))
	{
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		errs := make([]error, len(accounts))
		for i, u := range accounts {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				jars[i] = newJar()
				c := &http.Client{Jar: jars[i], Transport: r.tr, Timeout: 30 * time.Second}
				pw := AccountPass
				if i < len(passwords) {
					pw = passwords[i]
				}
				lctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				errs[i] = login(lctx, c, r.base, u.Email, pw)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("sign-in before the drop: %w", err)
		}
	}
	rep := &Report{Config: cfg, Setup: time.Since(setupStart), InProcess: r.t.app != nil, Statuses: map[string]int{}, Errors: map[string]int{}}

	specs := r.plan(jars)
	for _, s := range specs {
		switch {
		case s.doubleClick:
			rep.DoubleClicks++
		}
		if s.timeoutRetry {
			rep.TimeoutRetries++
		}
		if s.reconnect {
			rep.Reconnects++
		}
		if s.sse {
			rep.SSE++
		}
		if s.jar != nil {
			rep.SignedIn++
		}
	}
	offsets := arrivals(cfg.Profile, cfg.Orders, cfg.Window)

	// The drop.
	open := time.Now()
	dropCtx, stopDrop := context.WithCancel(ctx)
	defer stopDrop()
	var chaos *chaosRun
	if cfg.Chaos {
		chaos = r.startChaos(dropCtx, open)
	}
	var prog *progress
	if cfg.Progress != nil {
		prog = startProgress(cfg.Progress, r, open)
	}
	results := make([]result, len(specs))
	sem := make(chan struct{}, cfg.Concurrency)
	var wg sync.WaitGroup
launch:
	for i, s := range specs {
		arrival := open.Add(offsets[i])
		if d := time.Until(arrival); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				break launch
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break launch
		}
		wg.Add(1)
		r.started.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			res := r.buy(ctx, s)
			res.arrival = arrival
			results[i] = res
			r.count(&res)
		}()
	}
	wg.Wait()
	rep.Wall = time.Since(open)
	if chaos != nil {
		chaos.stop()
		rep.Chaos = chaos.report()
	}
	if prog != nil {
		prog.stop()
	}
	rep.addResults(open, results)
	if r.t.app != nil {
		rep.Providers = r.t.app.Snapshot()
		for _, p := range rep.Providers {
			rep.Fallbacks += p.FailedOver
		}
		rec := r.t.app.Reconciled()
		rep.Reconciled = &rec
	}
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}

	// Verify against the shop's own books, once every webhook sent during
	// the drop reached them.
	if r.t.app != nil {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		if err := r.t.app.DrainEvents(dctx); err != nil {
			rep.Errors["draining webhooks: "+err.Error()]++
		}
		cancel()
		rep.EventsDrained = time.Since(open)
		r.verify(ctx, rep, results)
		if err := stop(); err != nil {
			rep.Errors["shutdown: "+err.Error()]++
		}
	} else {
		r.verifyRemote(ctx, rep, results)
	}
	if cfg.PlotPath != "" {
		if err := writePlot(cfg.PlotPath, rep, results, open); err != nil {
			return rep, fmt.Errorf("plot: %w", err)
		}
	}
	return rep, nil
}

func (r *runner) count(res *result) {
	r.finished.Add(1)
	if res.told {
		r.told.Add(1)
	}
	switch res.outcome {
	case "sold_out":
		r.soldOut.Add(1)
	case "failed", "expired", "cancelled":
		r.failed.Add(1)
	case "error", "lost", "vanished":
		r.errs.Add(1)
	}
}

// plan decides, reproducibly, what each buyer does.
func (r *runner) plan(jars []http.CookieJar) []buyerSpec {
	cfg := r.cfg
	rng := rand.New(rand.NewPCG(20260, uint64(cfg.Orders)))
	countries := []string{"DE", "US", "GB", "FR", "NL"}
	specs := make([]buyerSpec, cfg.Orders)
	// Signed-in buyers are spread evenly over the drop, one per account.
	signed := map[int]int{}
	for j := range jars {
		signed[j*cfg.Orders/len(jars)] = j
	}
	for i := range specs {
		s := buyerSpec{id: i, product: r.t.main, token: sim.TokenApprove, country: countries[rng.IntN(len(countries))]}
		if j, ok := signed[i]; ok {
			s.jar = jars[j]
			s.country = "" // the account's country
		}
		if rng.Float64() < cfg.LimitedShare {
			s.product = r.t.limited
		}
		if rng.Float64() < cfg.DeclineRate {
			s.token = sim.TokenHardDecline
		}
		s.doubleClick = rng.Float64() < cfg.DoubleClickRate
		s.timeoutRetry = rng.Float64() < cfg.TimeoutRetryRate
		s.reconnect = rng.Float64() < cfg.ReconnectRate
		s.sse = rng.Float64() < cfg.SSERate
		specs[i] = s
	}
	return specs
}

// arrivals returns each buyer's arrival offset from the drop's opening.
func arrivals(p Profile, n int, window time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	w := float64(window)
	switch p {
	case ProfileSpike:
		// 20% evenly over the window, 80% within [0.3, 0.4] of it.
		base := n / 5
		for i := 0; i < n; i++ {
			var f float64
			if i%5 == 0 && i/5 < base {
				f = float64(i/5) / float64(max(1, base))
			} else {
				f = 0.3 + 0.1*float64(i)/float64(n)
			}
			out[i] = time.Duration(f * w)
		}
		// Launch in time order.
		slices.Sort(out)
	default:
		// A linear ramp: the rate grows from 0 to its peak, so the i-th
		// arrival is at W * sqrt(i/n).
		for i := 0; i < n; i++ {
			out[i] = time.Duration(w * math.Sqrt(float64(i)/float64(n)))
		}
	}
	return out
}

// verify checks the three zeros against the shop's stores and the sims.
func (r *runner) verify(ctx context.Context, rep *Report, results []result) {
	a := r.t.app
	st := a.Orders.Store()
	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()

	// Oversells: committed units against the initial stock.
	for id, initial := range r.t.stock {
		sold, err := st.Sold(vctx, id)
		if err != nil {
			rep.Errors["sold("+id+"): "+err.Error()]++
			continue
		}
		rep.Sold = append(rep.Sold, ProductSold{ID: id, Stock: initial, Sold: sold})
		if sold > initial {
			rep.Oversells += sold - initial
		}
	}

	// Every order a buyer was told about must still exist, be final, and
	// have moved money at most once across all providers.
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				res := &results[i]
				ids := []string{res.orderID}
				if res.otherID != "" {
					ids = append(ids, res.otherID)
				}
				for _, id := range ids {
					o, err := st.GetOrder(vctx, id)
					charges := 0
					for _, s := range a.Sims {
						charges += s.Charges(id)
					}
					mu.Lock()
					switch {
					case errors.Is(err, order.ErrNotFound):
						rep.Vanished++
					case err != nil:
						rep.Errors["verify: "+err.Error()]++
					case !buyerFinal(string(o.Status)) && res.outcome != "lost":
						// The buyer saw it final; the books must agree.
						rep.Errors["order "+string(o.Status)+" after the buyer saw "+res.outcome]++
					}
					if charges > 1 {
						rep.DoubleCharges++
					}
					if res.outcome == "lost" && err == nil && len(rep.LostBooks) < 20 {
						rep.LostBooks = append(rep.LostBooks, describeBooks(vctx, a, o, charges))
					}
					if charges > 0 && err == nil && o.Status != order.StatusPaid && o.Status != order.StatusCaptured && o.Status != order.StatusRefunded {
						rep.ChargedNotPaid++
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range results {
		if results[i].told {
			work <- i
		}
	}
	close(work)
	wg.Wait()
	for _, s := range a.Sims {
		rep.Charges += s.TotalCharges()
	}
}

// describeBooks says where a lost order stands in the shop's books, to
// find why it did not settle.
func describeBooks(ctx context.Context, a *app.App, o *order.Order, charges int) string {
	s := fmt.Sprintf("order %s %s, %d charges in the sims", o.ID, o.Status, charges)
	if o.PaymentID == "" {
		return s + ", no payment id"
	}
	p, err := a.Store.GetPayment(ctx, o.PaymentID)
	if err != nil {
		return s + ", payment: " + err.Error()
	}
	s += fmt.Sprintf(", payment %s %s on %s updated %s ago; attempts:", p.ID, p.Status, p.Provider, time.Since(p.UpdatedAt).Round(time.Millisecond))
	for _, at := range p.Attempts {
		s += fmt.Sprintf(" [%s %s %s %s %s]", at.Provider, at.Operation, at.Outcome, at.Kind, at.Code)
	}
	return s
}

// verifyRemote checks what a buyer can see of a remote shop: the units
// bought per product against the stock left at the start.
func (r *runner) verifyRemote(_ context.Context, rep *Report, results []result) {
	// Without the shop's books the best oversell check is the buyers' own:
	// paid orders per product against the stock they started with.
	rep.Notes = append(rep.Notes, "remote shop: double charges and vanished orders are not counted (they need the shop in process); oversells are counted from the buyers' paid orders")
	paid := map[string]int{}
	for _, res := range results {
		if res.outcome == "paid" || res.outcome == "captured" {
			paid[res.product]++
		}
	}
	for id, initial := range r.t.stock {
		rep.Sold = append(rep.Sold, ProductSold{ID: id, Stock: initial, Sold: paid[id]})
		if paid[id] > initial {
			rep.Oversells += paid[id] - initial
		}
	}
}
