// Package surge plays an influencer drop against the reference shop over
// real HTTP and checks the three numbers a drop must keep at zero: oversells,
// double charges and lost orders. Its chaos mode breaks the providers' fakes
// and the store during the drop; the same zeros must hold.
//
// The shop runs in process (app.New on a 127.0.0.1 listener) by default, so
// the tool can seed accounts, inject faults and count charges per order in
// the sims. With Config.URL it drives a shop running elsewhere; chaos and
// charge counting then are not available.
package surge

import (
	"io"
	"log/slog"
	"time"
)

// Profile is how buyers arrive over the drop window.
type Profile string

const (
	// ProfileRamp: the arrival rate grows linearly from zero to its peak at
	// the end of the window (the link spreads).
	ProfileRamp Profile = "ramp"
	// ProfileSpike: a fifth of the buyers trickle in over the window and the
	// rest arrive within a tenth of it (the influencer posts).
	ProfileSpike Profile = "spike"
)

// Config configures a drop. Zero values mean:
//
//	Orders           50,000 buyers, one checkout each
//	Profile          ProfileRamp
//	Window           15 s over which buyers arrive
//	Concurrency      512 buyers in flight at most (arrivals beyond wait)
//	Accounts         500 seeded accounts signed in before the drop; the other buyers are guests
//	BcryptCost       0: bcrypt's default (production) cost
//	Store            "memory": memory, sqlite, redis, postgres or mysql
//	SQLitePath       a temp file, removed afterwards
//	RedisURL, PostgresDSN, MySQLDSN   the app's defaults (local servers)
//	MaxDBConns       0: the app's default pool on PostgreSQL and MySQL
//	Prefix           "surge<unix nanos>_": fresh tables and keys per run
//	URL              "": run the shop in process; else drive the shop at URL
//	Workers          64 payment workers
//	SimLatency       2 ms per simulated provider call
//	DoubleClickRate  0.05 of buyers send checkout twice at once with one key
//	TimeoutRetryRate 0.03 of buyers time out on their first checkout and retry with the same key
//	ReconnectRate    0.03 of buyers switch to a new connection (same cookies) after checkout
//	DeclineRate      0.02 of buyers pay with a card that is declined
//	SSERate          0.1 of buyers follow their order over SSE instead of polling
//	LimitedShare     0.1 of buyers want the limited product (stock LimitedStock)
//	LimitedStock     Orders/50 (at least 1): less than its demand, so it sells out
//	Chaos            false
//	ChaosScale       0: min(1, Window/60 s), at least 0.1; scales the fault durations
//	FinalDeadline    60 s (120 s with Chaos) for an order to reach a final status
//	Progress         nil: no progress bar
//	PlotPath         "": no plot
//	Logger           a logger that discards (the shop logs a lot under chaos)
type Config struct {
	Orders           int
	Profile          Profile
	Window           time.Duration
	Concurrency      int
	Accounts         int
	BcryptCost       int
	Store            string
	SQLitePath       string
	RedisURL         string
	PostgresDSN      string
	MySQLDSN         string
	MaxDBConns       int
	Prefix           string
	URL              string
	Workers          int
	SimLatency       time.Duration
	DoubleClickRate  float64
	TimeoutRetryRate float64
	ReconnectRate    float64
	DeclineRate      float64
	SSERate          float64
	LimitedShare     float64
	LimitedStock     int
	Chaos            bool
	ChaosScale       float64
	FinalDeadline    time.Duration
	Progress         io.Writer
	PlotPath         string
	Logger           *slog.Logger
}

// Product ids of the drop.
const (
	ProductMain    = "surge-sneaker"   // stock for every buyer
	ProductLimited = "surge-collab"    // less stock than demand
	AccountPass    = "surge-drop-2026" // password of the seeded accounts
)

func (c *Config) defaults() {
	if c.Orders <= 0 {
		c.Orders = 50_000
	}
	if c.Profile == "" {
		c.Profile = ProfileRamp
	}
	if c.Window <= 0 {
		c.Window = 15 * time.Second
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 512
	}
	if c.Accounts < 0 {
		c.Accounts = 0
	} else if c.Accounts == 0 {
		c.Accounts = 500
	}
	c.Accounts = min(c.Accounts, c.Orders)
	if c.Store == "" {
		c.Store = "memory"
	}
	if c.Workers <= 0 {
		c.Workers = 64
	}
	if c.SimLatency == 0 {
		c.SimLatency = 2 * time.Millisecond
	}
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
		*v = max(0, min(1, *v))
	}
	def(&c.DoubleClickRate, 0.05)
	def(&c.TimeoutRetryRate, 0.03)
	def(&c.ReconnectRate, 0.03)
	def(&c.DeclineRate, 0.02)
	def(&c.SSERate, 0.1)
	def(&c.LimitedShare, 0.1)
	if c.LimitedStock <= 0 {
		c.LimitedStock = max(1, c.Orders/50)
	}
	if c.ChaosScale <= 0 {
		c.ChaosScale = max(0.1, min(1, c.Window.Seconds()/60))
	}
	if c.FinalDeadline <= 0 {
		c.FinalDeadline = 60 * time.Second
		if c.Chaos {
			c.FinalDeadline = 120 * time.Second
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}
