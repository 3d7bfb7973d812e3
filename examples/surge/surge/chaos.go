package surge

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/paymux/paymux/examples/shop/app"
	"github.com/paymux/paymux/providers/providertest"
	"github.com/paymux/paymux/providers/sim"
)

// ChaosEvent is one fault injected during the drop.
type ChaosEvent struct {
	At    time.Duration `json:"at"` // from the drop's opening
	Label string        `json:"label"`
}

// ChaosReport says what chaos did and how the platform took it.
type ChaosReport struct {
	Scale  float64      `json:"scale"`
	Events []ChaosEvent `json:"events"`
	// BreakerOpenAfter is how long sim-a's breaker took to open after its
	// outage began; negative if it never opened.
	BreakerOpenAfter time.Duration `json:"breaker_open_after"`
	OutageAt         time.Duration `json:"outage_at"`
}

type chaosRun struct {
	app    *app.App
	mu     sync.Mutex
	rep    ChaosReport
	open   time.Time
	cancel context.CancelFunc
	wg     sync.WaitGroup
	clear  func()
}

// startChaos runs the fault schedule, anchored to the drop's opening and
// laid out over its window; durations are the (30 s outage, 5 s
// store cut, ...) times the scale, so a short drop still sees each fault
// begin and end:
//
//	0          webhooks duplicated and reordered; 1% of calls time out after the charge
//	0.10 W     sim-a (primary) down for 30 s x scale
//	0.35 W     5xx burst (20% of calls) on both sims for 3 s x scale
//	0.50 W     10x latency on both sims for 5 s x scale
//	0.65 W     paymux's store connection cut for 5 s x scale
//	0.80 W     a second 5xx burst for 2 s x scale
//
// Everything is undone when the last buyer arrives plus the longest fault,
// and at the latest by stop.
func (r *runner) startChaos(ctx context.Context, open time.Time) *chaosRun {
	a := r.t.app
	scale := r.cfg.ChaosScale
	w := r.cfg.Window
	c := &chaosRun{app: a, open: open, rep: ChaosReport{Scale: scale, BreakerOpenAfter: -1}}
	ctx, c.cancel = context.WithCancel(ctx)
	var primary *sim.Provider
	for _, s := range a.Sims {
		if s.Name() == "sim-a" {
			primary = s
		}
	}
	all := func(fn func(*providertest.FaultPlan)) {
		for _, s := range a.Sims {
			s.Faults().Update(fn)
		}
	}
	scaled := func(d time.Duration) time.Duration { return time.Duration(float64(d) * scale) }
	tenX := 9 * r.cfg.SimLatency // added to the base latency: 10x in all
	c.clear = func() {
		for _, s := range a.Sims {
			s.Faults().Set(providertest.FaultPlan{})
		}
		a.Store.Restore()
	}

	at := func(frac float64, label string, fn func()) {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			t := time.NewTimer(time.Until(open.Add(time.Duration(frac * float64(w)))))
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
			c.event(label)
			fn()
		}()
	}
	after := func(d time.Duration, label string, fn func()) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		c.event(label)
		fn()
	}

	c.event("webhooks duplicated and reordered; 1% of calls time out after the charge")
	a.WebhookChaos.Store(true)
	all(func(p *providertest.FaultPlan) { p.TimeoutAfterCommitRate = 0.01 })

	c.watchBreakers(ctx)
	if primary != nil {
		outage := scaled(30 * time.Second)
		at(0.10, fmt.Sprintf("sim-a down for %s", outage.Round(time.Millisecond)), func() {
			primary.Faults().Update(func(p *providertest.FaultPlan) { p.Outage = true })
			c.mu.Lock()
			c.rep.OutageAt = time.Since(open)
			c.mu.Unlock()
			after(outage, "sim-a back", func() {
				primary.Faults().Update(func(p *providertest.FaultPlan) { p.Outage = false })
			})
		})
	}
	burst := func(frac, rate float64, d time.Duration) {
		d = scaled(d)
		at(frac, fmt.Sprintf("5xx burst (%.0f%%) for %s", rate*100, d.Round(time.Millisecond)), func() {
			all(func(p *providertest.FaultPlan) { p.ServerErrorRate = rate })
			after(d, "5xx burst over", func() { all(func(p *providertest.FaultPlan) { p.ServerErrorRate = 0 }) })
		})
	}
	burst(0.35, 0.2, 3*time.Second)
	lat := scaled(5 * time.Second)
	at(0.50, fmt.Sprintf("10x latency for %s", lat.Round(time.Millisecond)), func() {
		all(func(p *providertest.FaultPlan) { p.Latency = tenX })
		after(lat, "latency back", func() { all(func(p *providertest.FaultPlan) { p.Latency = 0 }) })
	})
	cut := scaled(5 * time.Second)
	at(0.65, fmt.Sprintf("store connection cut for %s", cut.Round(time.Millisecond)), func() {
		a.Store.Cut()
		after(cut, "store back", func() {
			a.Store.Restore()
			c.event(fmt.Sprintf("%d store calls in flight at the cut had done their work and lost their replies", a.Store.LostReplies()))
		})
	})
	burst(0.80, 0.2, 2*time.Second)
	// The time-outs after commit last as long as buyers arrive.
	at(1.0, "time-outs after commit stop", func() {
		all(func(p *providertest.FaultPlan) { p.TimeoutAfterCommitRate = 0 })
	})
	return c
}

// watchBreakers puts every change of a sim's breaker in the timeline, so
// that a stall in the plot can be read against the breakers, and records
// how long sim-a's took to open once its outage began. The breakers are
// polled every 2 ms: the orchestrator reports state changes only to its log.
func (c *chaosRun) watchBreakers(ctx context.Context) {
	a := c.app
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		last := make([]string, len(a.Sims))
		for i, s := range a.Sims {
			last[i] = a.Orch.BreakerState(s.Name())
		}
		tk := time.NewTicker(2 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-tk.C:
			case <-ctx.Done():
				return
			}
			for i, s := range a.Sims {
				st := a.Orch.BreakerState(s.Name())
				if st == last[i] {
					continue
				}
				last[i] = st
				c.mu.Lock()
				if s.Name() == "sim-a" && st == "open" && c.rep.OutageAt > 0 && c.rep.BreakerOpenAfter < 0 {
					c.rep.BreakerOpenAfter = time.Since(c.open) - c.rep.OutageAt
				}
				c.mu.Unlock()
				c.event(s.Name() + " breaker " + st)
			}
		}
	}()
}

func (c *chaosRun) event(label string) {
	c.mu.Lock()
	c.rep.Events = append(c.rep.Events, ChaosEvent{At: time.Since(c.open), Label: label})
	c.mu.Unlock()
}

// stop ends the schedule and clears every fault, so that whatever is left
// can settle.
func (c *chaosRun) stop() {
	c.cancel()
	c.wg.Wait()
	c.clear()
}

func (c *chaosRun) report() *ChaosReport {
	c.mu.Lock()
	defer c.mu.Unlock()
	rep := c.rep
	rep.Events = append([]ChaosEvent(nil), c.rep.Events...)
	return &rep
}
