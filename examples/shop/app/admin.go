package app

import (
	"context"
	"encoding/json"
	"html/template"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/paymux/paymux"
)

// ProviderStats is a paymux.Observer that keeps, per provider, the attempts
// and successes of the last minute (in 6 buckets of 10 s) and how many
// payments each provider was routed first and settled.
type ProviderStats struct {
	mu        sync.Mutex
	providers map[string]*providerWindow
	clock     func() time.Time
}

type providerWindow struct {
	buckets [6]struct {
		start        time.Time
		attempts, ok int
	}
	routed   int // payments whose first attempt went here
	settled  int // payments that ended here successfully
	failover int // payments that reached this provider through a failover
}

// NewProviderStats returns empty stats.
func NewProviderStats() *ProviderStats {
	return &ProviderStats{providers: map[string]*providerWindow{}, clock: time.Now}
}

func (s *ProviderStats) window(name string) *providerWindow {
	w := s.providers[name]
	if w == nil {
		w = &providerWindow{}
		s.providers[name] = w
	}
	return w
}

// ObserveAttempt implements paymux.Observer.
func (s *ProviderStats) ObserveAttempt(_ context.Context, _ *paymux.Payment, a paymux.Attempt) {
	now := s.clock()
	slot := now.Truncate(10 * time.Second)
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.window(a.Provider)
	b := &w.buckets[(slot.Unix()/10)%6]
	if !b.start.Equal(slot) {
		b.start, b.attempts, b.ok = slot, 0, 0
	}
	b.attempts++
	// A decline is the provider working: only its own failures count.
	switch a.Kind {
	case paymux.KindUnavailable, paymux.KindOutcomeUnknown, paymux.KindRateLimited, paymux.KindAuthentication:
	default:
		b.ok++
	}
}

// ObservePayment implements paymux.Observer.
func (s *ProviderStats) ObservePayment(_ context.Context, op paymux.Operation, p *paymux.Payment, _ error) {
	if op != paymux.OpAuthorize || len(p.Attempts) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.window(p.Attempts[0].Provider).routed++
	switch p.Status {
	case paymux.StatusAuthorized, paymux.StatusCaptured, paymux.StatusRequiresAction:
		s.window(p.Provider).settled++
		if p.Provider != p.Attempts[0].Provider {
			s.window(p.Provider).failover++
		}
	}
}

// ProviderView is one row of the admin view.
type ProviderView struct {
	Name         string  `json:"name"`
	Breaker      string  `json:"breaker"`
	Attempts     int     `json:"attempts_last_minute"`
	SuccessRate  float64 `json:"success_rate_last_minute"`
	RoutingShare float64 `json:"routing_share"`
	Routed       int     `json:"routed"`
	Settled      int     `json:"settled"`
	FailedOver   int     `json:"reached_by_failover"`
}

// Snapshot returns the admin view of every provider.
func (a *App) Snapshot() []ProviderView {
	s := a.Stats
	now := s.clock()
	s.mu.Lock()
	defer s.mu.Unlock()
	total := 0
	for _, w := range s.providers {
		total += w.routed
	}
	var out []ProviderView
	for _, name := range a.Orch.ProviderNames() {
		v := ProviderView{Name: name, Breaker: a.Orch.BreakerState(name), SuccessRate: 1}
		if w := s.providers[name]; w != nil {
			ok := 0
			for _, b := range w.buckets {
				if now.Sub(b.start) < time.Minute {
					v.Attempts += b.attempts
					ok += b.ok
				}
			}
			if v.Attempts > 0 {
				v.SuccessRate = float64(ok) / float64(v.Attempts)
			}
			v.Routed, v.Settled, v.FailedOver = w.routed, w.settled, w.failover
			if total > 0 {
				v.RoutingShare = float64(w.routed) / float64(total)
			}
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (a *App) handleAdminJSON(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{"providers": a.Snapshot(), "queue_depth": a.queue.Depth()})
}

const adminSource = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>paymux — providers</title>
<meta http-equiv="refresh" content="2">
<style>body{font:15px system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse}
td,th{padding:.4rem .9rem;border-bottom:1px solid #ddd;text-align:right}th:first-child,td:first-child{text-align:left}
.open{color:#b00;font-weight:600}.closed{color:#080}.half-open{color:#a60}</style></head>
<body><h1>Providers</h1><p>Queue depth: {{.Depth}}. Refreshes every 2 s. JSON: <a href="/admin/providers.json">/admin/providers.json</a></p>
<table><tr><th>provider</th><th>breaker</th><th>attempts (1 min)</th><th>success rate (1 min)</th><th>routing share</th><th>routed</th><th>settled</th><th>via failover</th></tr>
{{range .Providers}}<tr><td>{{.Name}}</td><td class="{{.Breaker}}">{{.Breaker}}</td><td>{{.Attempts}}</td>
<td>{{printf "%.1f%%" (pct .SuccessRate)}}</td><td>{{printf "%.1f%%" (pct .RoutingShare)}}</td><td>{{.Routed}}</td><td>{{.Settled}}</td><td>{{.FailedOver}}</td></tr>{{end}}
</table></body></html>`

func (a *App) handleAdminPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	rows := a.Snapshot()
	_ = adminTmpl.Execute(w, map[string]any{"Providers": rows, "Depth": a.queue.Depth()})
}

var adminTmpl = template.Must(template.New("admin").Funcs(template.FuncMap{"pct": func(f float64) float64 { return f * 100 }}).Parse(adminSource))
