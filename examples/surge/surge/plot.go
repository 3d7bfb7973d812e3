package surge

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"os"
	"slices"
	"time"
)

// writePlot draws latency over time as a hand-written SVG: per second of the
// drop (by when the buyer finished), the p50 and p99 of checkout and of cart
// to final status on top, orders finished per second below, and chaos
// events as vertical lines.
func writePlot(path string, rep *Report, results []result, open time.Time) error {
	secs := int(math.Ceil(rep.Wall.Seconds())) + 1
	type bucket struct {
		checkout, e2e []time.Duration
		done          int
	}
	b := make([]bucket, secs)
	for i := range results {
		r := &results[i]
		if r.start.IsZero() {
			continue
		}
		s := min(secs-1, max(0, int(r.end.Sub(open).Seconds())))
		b[s].done++
		if r.checkout > 0 {
			b[s].checkout = append(b[s].checkout, r.checkout)
		}
		if r.told && buyerFinal(r.outcome) {
			b[s].e2e = append(b[s].e2e, r.end.Sub(r.start))
		}
	}
	pct := func(ds []time.Duration, p float64) float64 {
		if len(ds) == 0 {
			return math.NaN()
		}
		slices.Sort(ds)
		return float64(ds[min(len(ds)-1, int(p*float64(len(ds))))]) / 1e6
	}
	series := []struct {
		name, color string
		v           []float64
	}{
		{"checkout p50", "#4a90d9", nil}, {"checkout p99", "#1f4e8c", nil},
		{"cart→final p50", "#e39b3b", nil}, {"cart→final p99", "#b4451f", nil},
	}
	maxLat, maxDone := 1.0, 1
	for i := range b {
		vals := []float64{pct(b[i].checkout, .5), pct(b[i].checkout, .99), pct(b[i].e2e, .5), pct(b[i].e2e, .99)}
		for k, v := range vals {
			series[k].v = append(series[k].v, v)
			if !math.IsNaN(v) {
				maxLat = max(maxLat, v)
			}
		}
		maxDone = max(maxDone, b[i].done)
	}

	const W, H, left, right, top, latH, gap, doneH = 960, 560, 70, 20, 40, 300, 50, 120
	pw := float64(W - left - right)
	x := func(sec float64) float64 { return left + pw*sec/float64(max(1, secs-1)) }
	yLat := func(v float64) float64 { return top + latH - latH*v/maxLat }
	doneTop := float64(top + latH + gap)
	var out bytes.Buffer
	fmt.Fprintf(&out, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	fmt.Fprintf(&out, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	title := fmt.Sprintf("surge: %d buyers, %s, store %s%s, %.0f orders/s", rep.Config.Orders, rep.Config.Profile, rep.Config.Store, map[bool]string{true: ", chaos"}[rep.Config.Chaos], rep.OrdersPerSec)
	fmt.Fprintf(&out, `<text x="%d" y="22" font-size="15">%s</text>`+"\n", left, html.EscapeString(title))
	// Axes and grid.
	for i := 0; i <= 4; i++ {
		v := maxLat * float64(i) / 4
		y := yLat(v)
		fmt.Fprintf(&out, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%.0f ms</text>`+"\n", left, W-right, y, y, left-6, y+4, v)
	}
	for s := 0; s < secs; s += max(1, secs/12) {
		fmt.Fprintf(&out, `<text x="%.1f" y="%d" text-anchor="middle">%ds</text>`+"\n", x(float64(s)), H-8, s)
	}
	// Chaos events.
	if rep.Chaos != nil {
		// Each label goes on the first row where it clears the one before
		// it, or else on the row that frees up first; a label is about 5.6
		// px a character at font-size 10.
		const rows = 10
		var freeAt [rows]float64
		for _, e := range rep.Chaos.Events {
			ex := x(e.At.Seconds())
			row := 0
			for r := range freeAt {
				if freeAt[r] <= ex {
					row = r
					break
				}
				if freeAt[r] < freeAt[row] {
					row = r
				}
			}
			freeAt[row] = ex + 3 + 5.6*float64(len(e.Label)) + 6
			fmt.Fprintf(&out, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#c33" stroke-dasharray="3,3"/><text x="%.1f" y="%d" fill="#c33" font-size="10">%s</text>`+"\n",
				ex, ex, top, H-24, ex+3, top+12+12*row, html.EscapeString(e.Label))
		}
	}
	// Latency lines.
	for k, s := range series {
		var pts bytes.Buffer
		for i, v := range s.v {
			if math.IsNaN(v) {
				continue
			}
			fmt.Fprintf(&pts, "%.1f,%.1f ", x(float64(i)), yLat(v))
		}
		fmt.Fprintf(&out, `<polyline fill="none" stroke="%s" stroke-width="1.8" points="%s"/>`+"\n", s.color, pts.String())
		fmt.Fprintf(&out, `<rect x="%d" y="%d" width="12" height="3" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", W-right-150, top+8+16*k, s.color, W-right-134, top+12+16*k, html.EscapeString(s.name))
	}
	// Orders finished per second.
	fmt.Fprintf(&out, `<text x="%d" y="%.1f">buyers finished per second (max %d)</text>`+"\n", left, doneTop-6, maxDone)
	bw := pw / float64(max(1, secs))
	for i := range b {
		h := float64(doneH) * float64(b[i].done) / float64(maxDone)
		fmt.Fprintf(&out, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#7a7"/>`+"\n", x(float64(i))-bw/2, doneTop+doneH-h, max(1, bw-1), h)
	}
	out.WriteString("</svg>\n")
	return os.WriteFile(path, out.Bytes(), 0o644)
}
