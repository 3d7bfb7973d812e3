// Command surge plays an influencer drop against the reference shop over
// HTTP on loopback and checks that nothing is oversold, charged twice or
// lost; -chaos breaks the providers and the store while it runs.
//
//	go run ./examples/surge                          # 50,000 orders, memory store
//	go run ./examples/surge -store sqlite -n 50000 -plot /tmp/surge.svg
//	go run ./examples/surge -chaos -n 20000 -window 20s
//	go run ./examples/surge -chaos -window 60s       # chaos at full length: 30 s outage, 5 s store cut
//	go run ./examples/surge -url http://127.0.0.1:8080 -n 2000   # a running shop (started with -dev)
//	go run ./examples/surge -store postgres -db-conns 64         # a larger pool (see BENCHMARKS.md)
//
// The shop runs in process by default; with -url it drives a running shop,
// and then chaos and the per-order charge count (which read the sims) are
// not available. Chaos durations scale with -window (window / 60 s, from
// 0.1 to 1; -chaos-scale sets it), so that a short drop sees every fault
// begin and end. The exit status is 1 when an invariant broke.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/paymux/paymux/examples/shop/app"
	"github.com/paymux/paymux/examples/surge/surge"
)

func main() {
	var cfg surge.Config
	var profile, cpuprofile, jsonOut string
	flag.IntVar(&cfg.Orders, "n", 50_000, "buyers (one checkout each)")
	flag.StringVar(&profile, "profile", "ramp", "arrival profile: ramp or spike")
	flag.DurationVar(&cfg.Window, "window", 0, "window over which buyers arrive (default 15s)")
	flag.IntVar(&cfg.Concurrency, "c", 0, "buyers in flight at most (default 512)")
	flag.IntVar(&cfg.Accounts, "accounts", 0, "accounts signed in before the drop, bcrypt at production cost (default 500; -1 none)")
	flag.IntVar(&cfg.BcryptCost, "bcrypt-cost", 0, "bcrypt cost of the seeded accounts (default: production cost)")
	flag.StringVar(&cfg.Store, "store", "memory", "memory, sqlite, redis, redis-cluster, redis-sentinel, postgres or mysql")
	flag.StringVar(&cfg.SQLitePath, "sqlite", "", "SQLite file (default: a temp file)")
	flag.StringVar(&cfg.RedisURL, "redis", os.Getenv("PAYMUX_REDIS_URL"), "Redis URL (default redis://127.0.0.1:6379/0)")
	flag.StringVar(&cfg.PostgresDSN, "postgres", os.Getenv("PAYMUX_POSTGRES_DSN"), "PostgreSQL DSN")
	flag.StringVar(&cfg.MySQLDSN, "mysql", os.Getenv("PAYMUX_MYSQL_DSN"), "MySQL DSN")
	flag.StringVar(&cfg.Prefix, "prefix", "", "table and key prefix (default: fresh per run)")
	flag.StringVar(&cfg.URL, "url", "", "drive a running shop at this URL instead (no chaos, no charge count)")
	flag.IntVar(&cfg.Workers, "workers", 0, "payment workers (default 64)")
	flag.IntVar(&cfg.MaxDBConns, "db-conns", 0, "connections in the shop's pool on PostgreSQL and MySQL (default: sqlstore.OpenDB's, 32)")
	flag.DurationVar(&cfg.SimLatency, "sim-latency", 0, "latency of each simulated provider call (default 2ms)")
	flag.Float64Var(&cfg.DoubleClickRate, "double-click", 0, "share of buyers who double-click checkout (default 0.05; negative: none)")
	flag.Float64Var(&cfg.TimeoutRetryRate, "timeout-retry", 0, "share of buyers who time out and retry (default 0.03)")
	flag.Float64Var(&cfg.ReconnectRate, "reconnect", 0, "share of buyers who reconnect after checkout (default 0.03)")
	flag.Float64Var(&cfg.DeclineRate, "decline", 0, "share of buyers whose card is declined (default 0.02)")
	flag.Float64Var(&cfg.SSERate, "sse", 0, "share of buyers who follow their order over SSE (default 0.1)")
	flag.Float64Var(&cfg.LimitedShare, "limited-share", 0, "share of buyers who want the limited product (default 0.1)")
	flag.IntVar(&cfg.LimitedStock, "limited-stock", 0, "stock of the limited product (default n/50)")
	flag.BoolVar(&cfg.Chaos, "chaos", false, "inject provider outage, time-outs, 5xx, latency, webhook chaos and a store cut")
	flag.Float64Var(&cfg.ChaosScale, "chaos-scale", 0, "scale of the chaos durations (default window/60s, 0.1..1)")
	flag.DurationVar(&cfg.FinalDeadline, "deadline", 0, "time for an order to reach a final status (default 60s, 120s with -chaos)")
	flag.StringVar(&cfg.PlotPath, "plot", "surge.svg", "latency-over-time SVG (empty: none)")
	flag.StringVar(&jsonOut, "json", "", "also write the report as JSON here")
	flag.StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile of the whole run here")
	quiet := flag.Bool("q", false, "no progress bar")
	flag.Parse()
	app.TuneGC() // the shop runs in this process: measure it as its command runs
	cfg.Profile = surge.Profile(profile)
	if cfg.Profile != surge.ProfileRamp && cfg.Profile != surge.ProfileSpike {
		fmt.Fprintln(os.Stderr, "surge: -profile is ramp or spike")
		os.Exit(2)
	}
	if !*quiet {
		cfg.Progress = os.Stderr
	}
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "surge:", err)
			os.Exit(2)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "surge:", err)
			os.Exit(2)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := surge.Run(ctx, cfg)
	if rep != nil {
		rep.WriteText(os.Stdout)
		if jsonOut != "" {
			b, _ := json.MarshalIndent(rep, "", "  ")
			_ = os.WriteFile(jsonOut, b, 0o644)
		}
		if cfg.PlotPath != "" && err == nil {
			fmt.Printf("plot: %s\n", cfg.PlotPath)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "surge:", err)
		pprof.StopCPUProfile()
		os.Exit(2)
	}
	if rep.Check() != nil {
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}
