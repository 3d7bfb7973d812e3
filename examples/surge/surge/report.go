package surge

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/examples/shop/app"
)

// Quantiles of one step's latency.
type Quantiles struct {
	N             int           `json:"n"`
	P50, P95, P99 time.Duration `json:"-"`
	Max           time.Duration `json:"-"`
}

func quantiles(ds []time.Duration) Quantiles {
	if len(ds) == 0 {
		return Quantiles{}
	}
	slices.Sort(ds)
	q := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
	return Quantiles{N: len(ds), P50: q(0.50), P95: q(0.95), P99: q(0.99), Max: ds[len(ds)-1]}
}

// ProductSold is the oversell check of one product.
type ProductSold struct {
	ID    string
	Stock int // initial stock
	Sold  int // committed units
}

// Report is what a drop did.
type Report struct {
	Config    Config
	InProcess bool
	Setup     time.Duration // seeding and signing in, before the drop
	Wall      time.Duration // from the drop's opening to the last buyer's final status (lost orders aside)
	// EventsDrained is from the drop's opening until every webhook the
	// providers sent was ingested and its event delivered to the order
	// service (in-process runs only; the buyers never wait for it).
	EventsDrained time.Duration
	// Ordered counts buyers whose checkout answered 2xx; OrdersPerSec is
	// Ordered / Wall.
	Ordered      int
	OrdersPerSec float64
	Cart         Quantiles
	Checkout     Quantiles
	ToFinal      Quantiles // from checkout's answer to a final status
	EndToEnd     Quantiles // from the cart to a final status
	// Queued is from a buyer's scheduled arrival until one of the
	// Concurrency buyer slots was free and it started. A closed loop that
	// measured only from the start would hide a stall: buyers who cannot
	// start do not time out, they just arrive late (coordinated omission).
	Queued Quantiles
	// ArrivalToFinal is from the scheduled arrival to a final status:
	// Queued plus EndToEnd, what a buyer arriving at that moment would see.
	ArrivalToFinal Quantiles
	// Statuses counts each buyer's outcome: a final order status, or
	// sold_out, lost, vanished, error.
	Statuses map[string]int

	// The three zeros.
	Oversells     int
	DoubleCharges int
	Lost          int // told the order exists, never final within FinalDeadline
	Vanished      int // told the order exists, then not found
	TwoOrders     int // a double-click or retry that produced two orders
	LostDetail    []string
	LostBooks     []string // the shop's books on lost orders

	Sold           []ProductSold
	Charges        int // authorisations across the sims
	ChargedNotPaid int // orders that moved money but are not paid (informational)
	Fallbacks      int // payments settled on a provider reached by failover
	PaidOnFallback int // paid orders on sim-b (the default route's fallback)
	Providers      []app.ProviderView
	// Reconciled is what the shop's reconciler did: payments whose outcome
	// was unknown (or still pending) settled by asking their provider.
	Reconciled *paymux.ReconcileReport
	Chaos      *ChaosReport

	SignedIn, DoubleClicks, TimeoutRetries, Reconnects, SSE int
	Retries                                                 int
	Errors                                                  map[string]int
	Notes                                                   []string
}

func (rep *Report) addResults(open time.Time, results []result) {
	var cart, checkout, toFinal, e2e, queued, fromArrival []time.Duration
	var last time.Time
	for i := range results {
		res := &results[i]
		if res.start.IsZero() {
			continue // never launched (cancelled)
		}
		rep.Statuses[res.outcome]++
		rep.Retries += res.retries
		// Lost orders wait out the deadline: they would only measure it.
		if res.outcome != "lost" && res.end.After(last) {
			last = res.end
		}
		cart = append(cart, res.cart)
		queued = append(queued, res.start.Sub(res.arrivedAt()))
		if res.checkout > 0 {
			checkout = append(checkout, res.checkout)
		}
		if res.otherID != "" {
			rep.TwoOrders++
		}
		switch res.outcome {
		case "lost":
			rep.Lost++
			if rep.Lost <= 20 {
				rep.LostDetail = append(rep.LostDetail, res.detail)
			}
		case "vanished":
			rep.Vanished++
		case "error":
			rep.Errors[firstLine(res.detail)]++
		}
		if res.told {
			rep.Ordered++
			if buyerFinal(res.outcome) {
				toFinal = append(toFinal, res.toFinal)
				e2e = append(e2e, res.end.Sub(res.start))
				fromArrival = append(fromArrival, res.end.Sub(res.arrivedAt()))
			}
			if res.provider == "sim-b" && res.outcome == "paid" {
				rep.PaidOnFallback++
			}
		}
	}
	if !last.IsZero() {
		rep.Wall = last.Sub(open)
	}
	if rep.Wall > 0 {
		rep.OrdersPerSec = float64(rep.Ordered) / rep.Wall.Seconds()
	}
	rep.Cart, rep.Checkout, rep.ToFinal, rep.EndToEnd = quantiles(cart), quantiles(checkout), quantiles(toFinal), quantiles(e2e)
	rep.Queued, rep.ArrivalToFinal = quantiles(queued), quantiles(fromArrival)
}

func firstLine(s string) string {
	// Group errors by their text without ids and numbers.
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 160 {
		s = s[:160]
	}
	return s
}

// Check returns an error naming every broken invariant: oversells, double
// charges, lost (or vanished, or duplicated) orders, and buyers that hit an
// error.
func (rep *Report) Check() error {
	var errs []error
	if rep.Oversells != 0 {
		errs = append(errs, fmt.Errorf("%d units oversold", rep.Oversells))
	}
	if rep.DoubleCharges != 0 {
		errs = append(errs, fmt.Errorf("%d orders charged more than once", rep.DoubleCharges))
	}
	if n := rep.Lost + rep.Vanished + rep.TwoOrders; n != 0 {
		errs = append(errs, fmt.Errorf("%d lost orders (%d never final, %d vanished, %d duplicated)", n, rep.Lost, rep.Vanished, rep.TwoOrders))
	}
	if n := rep.Statuses["error"]; n != 0 {
		errs = append(errs, fmt.Errorf("%d buyers hit errors: %v", n, rep.Errors))
	}
	return errors.Join(errs...)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }

// WriteText writes the human report.
func (rep *Report) WriteText(w io.Writer) {
	c := rep.Config
	mode := "in process, store " + c.Store
	if !rep.InProcess {
		mode = "remote shop " + c.URL
	}
	fmt.Fprintf(w, "surge: %d buyers, profile %s over %s, concurrency %d, %s", c.Orders, c.Profile, c.Window, c.Concurrency, mode)
	if c.Chaos {
		fmt.Fprintf(w, ", CHAOS (scale %.2f)", c.ChaosScale)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "setup (seed + sign in %d accounts): %s\n", rep.SignedIn, rep.Setup.Round(time.Millisecond))
	fmt.Fprintf(w, "drop: %s wall, %d orders placed, %.0f orders/s\n", rep.Wall.Round(time.Millisecond), rep.Ordered, rep.OrdersPerSec)
	if rep.EventsDrained > 0 {
		fmt.Fprintf(w, "webhooks: all ingested and delivered %s after the drop opened (%s after the last buyer)\n",
			rep.EventsDrained.Round(time.Millisecond), max(0, rep.EventsDrained-rep.Wall).Round(time.Millisecond))
	}
	fmt.Fprintf(w, "%-13s %8s %10s %10s %10s %10s\n", "step", "n", "p50", "p95", "p99", "max")
	for _, s := range []struct {
		name string
		q    Quantiles
	}{{"cart", rep.Cart}, {"checkout", rep.Checkout}, {"to-final", rep.ToFinal}, {"end-to-end", rep.EndToEnd},
		{"queued", rep.Queued}, {"arrival-final", rep.ArrivalToFinal}} {
		fmt.Fprintf(w, "%-13s %8d %10s %10s %10s %10s\n", s.name, s.q.N, ms(s.q.P50), ms(s.q.P95), ms(s.q.P99), ms(s.q.Max))
	}
	var names []string
	for k := range rep.Statuses {
		names = append(names, k)
	}
	sort.Strings(names)
	fmt.Fprint(w, "outcomes:")
	for _, k := range names {
		fmt.Fprintf(w, " %s=%d", k, rep.Statuses[k])
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "buyers: %d signed in, %d double-clicks, %d time-out retries, %d reconnects, %d on SSE; %d retried requests\n",
		rep.SignedIn, rep.DoubleClicks, rep.TimeoutRetries, rep.Reconnects, rep.SSE, rep.Retries)
	for _, s := range rep.Sold {
		fmt.Fprintf(w, "stock %-16s initial %6d  sold %6d\n", s.ID, s.Stock, s.Sold)
	}
	zero := func(n int) string {
		if n == 0 {
			return "0  ok"
		}
		return fmt.Sprintf("%d  FAIL", n)
	}
	fmt.Fprintf(w, "oversells:      %s\n", zero(rep.Oversells))
	if rep.InProcess {
		fmt.Fprintf(w, "double charges: %s   (%d authorisations across the sims; %d on orders not paid)\n", zero(rep.DoubleCharges), rep.Charges, rep.ChargedNotPaid)
	} else {
		fmt.Fprintf(w, "double charges: not counted (remote shop)\n")
	}
	fmt.Fprintf(w, "lost orders:    %s   (%d never final, %d vanished, %d duplicated)\n", zero(rep.Lost+rep.Vanished+rep.TwoOrders), rep.Lost, rep.Vanished, rep.TwoOrders)
	if rep.InProcess {
		fmt.Fprintf(w, "fallback: %d payments settled via failover (paymux observer), %d paid orders on sim-b\n", rep.Fallbacks, rep.PaidOnFallback)
		for _, p := range rep.Providers {
			fmt.Fprintf(w, "  %-6s breaker %-9s routed %6d settled %6d via failover %6d\n", p.Name, p.Breaker, p.Routed, p.Settled, p.FailedOver)
		}
		if rc := rep.Reconciled; rc != nil {
			fmt.Fprintf(w, "reconciler: %d payments of unknown or pending outcome settled by asking their provider (%d checks), %d abandoned claims finished, %d errors\n",
				rc.Resolved, rc.Checked, rc.Claims, rc.Errors)
		}
	}
	if ch := rep.Chaos; ch != nil {
		if ch.BreakerOpenAfter >= 0 {
			fmt.Fprintf(w, "breaker: sim-a opened %s after its outage began\n", ms(ch.BreakerOpenAfter))
		} else {
			fmt.Fprintf(w, "breaker: sim-a never opened\n")
		}
		fmt.Fprintln(w, "chaos timeline:")
		for _, e := range ch.Events {
			fmt.Fprintf(w, "  %8s  %s\n", e.At.Round(time.Millisecond), e.Label)
		}
	}
	for _, d := range rep.LostDetail {
		fmt.Fprintf(w, "lost: %s\n", d)
	}
	for _, d := range rep.LostBooks {
		fmt.Fprintf(w, "lost, books: %s\n", d)
	}
	for k, n := range rep.Errors {
		fmt.Fprintf(w, "error x%d: %s\n", n, k)
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if err := rep.Check(); err != nil {
		fmt.Fprintf(w, "RESULT: FAIL: %v\n", err)
	} else {
		fmt.Fprintln(w, "RESULT: ok: no oversell, no double charge, no lost order")
	}
}
