package surge

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress redraws one status line on w (a terminal's stderr) with \r.
type progress struct {
	w    io.Writer
	r    *runner
	open time.Time
	done chan struct{}
	quit chan struct{}
}

func startProgress(w io.Writer, r *runner, open time.Time) *progress {
	p := &progress{w: w, r: r, open: open, done: make(chan struct{}), quit: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.draw()
			case <-p.quit:
				p.draw()
				fmt.Fprintln(p.w)
				return
			}
		}
	}()
	return p
}

func (p *progress) draw() {
	n := p.r.cfg.Orders
	fin := int(p.r.finished.Load())
	const width = 30
	filled := width * fin / max(1, n)
	el := time.Since(p.open)
	fmt.Fprintf(p.w, "\r[%s%s] %6d/%d done %6.0f/s  in flight %5d  sold out %5d  failed %4d  errors %3d  %5.1fs ",
		strings.Repeat("#", filled), strings.Repeat(".", width-filled), fin, n,
		float64(p.r.told.Load())/max(el.Seconds(), 0.001), p.r.started.Load()-int64(fin),
		p.r.soldOut.Load(), p.r.failed.Load(), p.r.errs.Load(), el.Seconds())
}

func (p *progress) stop() {
	close(p.quit)
	<-p.done
}
