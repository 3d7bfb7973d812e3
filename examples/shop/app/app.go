// Package app wires the reference platform: the session and order services,
// paymux with its webhook handler, dispatcher and reconciler, the stores, the
// web page and the admin views, into one http.Handler with a lifecycle. The
// shop binary and the surge tool both build it.
package app

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/examples/internal/sqlutil"
	"github.com/paymux/paymux/examples/order"
	"github.com/paymux/paymux/examples/session"
	"github.com/paymux/paymux/providers/providertest"
	"github.com/paymux/paymux/providers/sim"
	"github.com/paymux/paymux/store/memory"
	redisstore "github.com/paymux/paymux/store/redis"
	sqlstore "github.com/paymux/paymux/store/sql"
)

// Config configures the platform. Zero values mean:
//
//	Store          "sqlite": one of memory, sqlite, redis, redis-cluster, redis-sentinel, postgres, mysql
//	SQLitePath     "paymux-shop.db" in the working directory
//	RedisURL       redis://127.0.0.1:6379/0; for redis-cluster, DefaultRedisClusterURL;
//	               for redis-sentinel, DefaultRedisSentinelURL (paymux's store then waits
//	               for one replica on every write: redisstore.Options.MinReplicas)
//	PostgresDSN    postgres://postgres@127.0.0.1:5432/test?sslmode=disable
//	MySQLDSN       root@tcp(127.0.0.1:3306)/test
//	MaxDBConns     0: sqlstore.OpenDB's pool (32) on PostgreSQL and MySQL; tests that
//	               share a server with others set fewer
//	NATSURL        "": the in-process payment queue
//	Prefix         "": tables "shop_", "paymux_"; keys "shop:", "paymux" (tests set their own)
//	PurgeOnShutdown false: keep the data (true deletes every table and key
//	               under Prefix at Shutdown: for load runs on a shared server)
//	Dev            false: cookies are Secure (true relaxes that for plain-HTTP localhost)
//	SigningKey     random per process (sessions do not survive a restart)
//	AdminToken     random per process, printed by the shop binary
//	Providers      nil: two simulated providers, sim-a (primary) and sim-b (fallback)
//	Workers        32 payment workers
//	SimLatency     0 added to every simulated provider call
//	Products       the demo drop (see DefaultProducts)
//	Users          the demo accounts (see DefaultUsers)
//	BcryptCost     bcrypt's default (production cost)
//	LoginRate      5/s per IP; TrustProxy reads X-Forwarded-For
//	Logger         slog.Default()
type Config struct {
	Store       string
	SQLitePath  string
	RedisURL    string
	PostgresDSN string
	MySQLDSN    string
	MaxDBConns  int
	NATSURL     string
	Prefix      string
	// PurgeOnShutdown deletes every table and key under Prefix at Shutdown.
	PurgeOnShutdown bool
	Dev             bool
	SigningKey      paymux.Secret
	AdminToken      paymux.Secret
	Providers       []paymux.Provider
	Routes          []paymux.Rule
	Workers         int
	SimLatency      time.Duration
	Products        []order.Product
	Users           []session.SeedUser
	BcryptCost      int
	LoginRate       rate.Limit
	LoginBurst      int
	TrustProxy      bool
	Logger          *slog.Logger
}

// App is the running platform.
type App struct {
	cfg        Config
	Handler    http.Handler
	Orch       *paymux.Orchestrator
	Orders     *order.Service
	Sessions   *session.Service
	Sims       []*sim.Provider
	Deliverers []*sim.Deliverer
	Stats      *ProviderStats
	// WebhookChaos, when set, sends every sim webhook twice, out of order.
	WebhookChaos atomic.Bool
	// Store is paymux's store (wrapped so chaos can cut it).
	Store *CuttableStore

	dispatcher *paymux.Dispatcher
	reconciler *paymux.Reconciler
	queue      order.Queue
	closers    []func() error
	purge      func(context.Context) error // deletes what this app stored (nil: memory)
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	log        *slog.Logger
}

// DefaultUsers are the demo accounts. Their password is "drop-2026".
func DefaultUsers() []session.SeedUser {
	return []session.SeedUser{
		{Email: "ana@example.com", Password: "drop-2026", Country: "DE"},
		{Email: "ben@example.com", Password: "drop-2026", Country: "US"},
		{Email: "chloe@example.com", Password: "drop-2026", Country: "GB"},
	}
}

// DefaultProducts is the demo drop: a sneaker that opens now and a hoodie.
func DefaultProducts(now time.Time) []order.Product {
	return []order.Product{
		{ID: "nova-sneaker", Name: "Nova Sneaker — influencer drop", Description: "Limited run of 500 pairs.",
			Prices: map[paymux.Currency]int64{"EUR": 18900, "USD": 19900, "GBP": 16900, "JPY": 29900, "SEK": 219900},
			Stock:  500, SaleStart: now.Add(-time.Minute), SaleEnd: now.Add(30 * 24 * time.Hour)},
		{ID: "nova-hoodie", Name: "Nova Hoodie", Description: "Goes with the sneaker.",
			Prices: map[paymux.Currency]int64{"EUR": 7900, "USD": 8900, "GBP": 6900, "JPY": 12900, "SEK": 89900},
			Stock:  2000, SaleStart: now.Add(-time.Minute), SaleEnd: now.Add(30 * 24 * time.Hour)},
	}
}

// DefaultRoutes sends everything to sim-a with sim-b behind it, and splits
// the influencer campaign 70/30.
func DefaultRoutes() []paymux.Rule {
	return []paymux.Rule{
		{Name: "influencer-drop", Campaigns: []string{"drop-nova"}, Primaries: []paymux.Target{{Provider: "sim-a", Weight: 70}, {Provider: "sim-b", Weight: 30}}},
		{Name: "default", Primaries: []paymux.Target{{Provider: "sim-a"}}, Fallbacks: []string{"sim-b"}},
	}
}

func randomSecret() paymux.Secret {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return paymux.Secret(hex.EncodeToString(b[:]))
}

func envOr(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

// Breaker is the platform's circuit breaker for each provider.
//
// A drop sends a provider hundreds of calls a second, from many workers at
// once. At that rate a burst in which one call in five fails yields runs of
// five failures in a row every few thousand calls: with paymux's default of
// five consecutive failures, one such burst during a full-scale chaos drop
// opened the fallback provider's breaker while the primary was down, and no
// payment went through for the 10 s it stayed open, though four calls in
// five would have succeeded. Twenty in a row never happen by chance at that
// rate, and a provider that is down fails twenty calls within tens of
// milliseconds. A provider that fails half its calls over 10 s or more is
// cut off too, by the failure ratio.
var Breaker = paymux.BreakerSettings{
	ConsecutiveFailures: 20,
	FailureRatio:        0.5,
	MinRequests:         50,
	Window:              10 * time.Second,
	OpenTimeout:         10 * time.Second,
}

// New builds the platform: it connects to the stores, migrates them, seeds
// products and users, and wires the handler. Call Start, then Shutdown.
func New(ctx context.Context, cfg Config) (*App, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Store == "" {
		cfg.Store = "sqlite"
	}
	if cfg.SigningKey == "" {
		cfg.SigningKey = randomSecret()
	}
	if cfg.AdminToken == "" {
		cfg.AdminToken = randomSecret()
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 32
	}
	a := &App{cfg: cfg, log: cfg.Logger, Stats: NewProviderStats()}
	ok := false
	defer func() {
		if !ok {
			a.close()
		}
	}()

	pstore, sessStore, orderStore, err := a.openStores(ctx)
	if err != nil {
		return nil, err
	}
	a.Store = &CuttableStore{Store: pstore}

	providers := cfg.Providers
	routes := cfg.Routes
	if len(providers) == 0 {
		for _, name := range []string{"sim-a", "sim-b"} {
			// Webhooks leave 100 ms after the call, as a real provider's do
			// (later, mostly): not before the shop has stored the answer.
			d := sim.NewDeliverer(sim.DelivererConfig{Path: "/webhooks/" + name, Workers: 4, Delay: 100 * time.Millisecond, Logger: cfg.Logger})
			s := sim.New(sim.Config{
				Name: name, WebhookSecret: paymux.Secret("simsec_" + name + "_" + string(cfg.SigningKey.Reveal()[:8])),
				Latency: cfg.SimLatency, Faults: &providertest.Faults{}, OnEvent: a.chaosSend(d),
				ActionURL: simActionURL(name),
			})
			a.Sims = append(a.Sims, s)
			a.Deliverers = append(a.Deliverers, d)
			providers = append(providers, s)
		}
		if routes == nil {
			routes = DefaultRoutes()
		}
	}
	orch, err := paymux.New(paymux.Config{
		Providers: providers, Store: a.Store, Routes: routes, Logger: cfg.Logger, Observer: a.Stats,
		Breaker: Breaker,
		Retry:   paymux.RetrySettings{InitialInterval: 20 * time.Millisecond, MaxInterval: 200 * time.Millisecond},
		// A store cut mid-flight must not strand claims for minutes.
		ClaimLease:  30 * time.Second,
		CallTimeout: 10 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	a.Orch = orch

	sess, err := session.New(session.Config{
		Store: sessStore, SigningKey: cfg.SigningKey, Dev: cfg.Dev, BcryptCost: cfg.BcryptCost,
		LoginRate: cfg.LoginRate, LoginBurst: cfg.LoginBurst, TrustProxy: cfg.TrustProxy, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	a.Sessions = sess
	users := cfg.Users
	if users == nil {
		users = DefaultUsers()
	}
	if err := sess.Seed(ctx, users); err != nil {
		return nil, fmt.Errorf("seed users: %w", err)
	}

	if cfg.NATSURL != "" {
		q, err := order.NewNATSQueue(ctx, cfg.NATSURL, order.NATSOptions{
			Stream: strings.ToUpper(strings.TrimSuffix(cfg.Prefix, "_")) + "PAYMUX_ORDERS", Subject: cfg.Prefix + "paymux.orders.pay",
			Consumer: cfg.Prefix + "payment-workers", Logger: cfg.Logger,
		})
		if err != nil {
			return nil, err
		}
		a.queue = q
		a.closers = append(a.closers, func() error { q.Disconnect(); return nil })
	} else {
		a.queue = order.NewMemoryQueue(200_000, cfg.Logger)
	}
	orders, err := order.New(order.Config{
		Store: orderStore, Orchestrator: orch, Sessions: sess, Queue: a.queue, Workers: cfg.Workers,
		AdminToken: cfg.AdminToken, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	a.Orders = orders
	products := cfg.Products
	if products == nil {
		products = DefaultProducts(time.Now())
	}
	if err := orders.Seed(ctx, products); err != nil {
		return nil, fmt.Errorf("seed products: %w", err)
	}

	a.dispatcher, err = orch.NewDispatcher(paymux.DispatcherOptions{Subscriber: orders.OnPaymentEvent, PollInterval: 200 * time.Millisecond, Batch: 256})
	if err != nil {
		return nil, err
	}
	a.reconciler = orch.NewReconciler(paymux.ReconcileOptions{OlderThan: 30 * time.Second, Rate: 50, Burst: 50})

	mux := http.NewServeMux()
	sess.Register(mux)
	orders.Register(mux)
	mux.Handle("POST /webhooks/{provider}", orch.WebhookHandler(paymux.WebhookOptions{Dispatcher: a.dispatcher, UnverifiedAsHint: true}))
	mux.HandleFunc("GET /healthz", a.handleHealth)
	mux.HandleFunc("GET /admin/providers", a.handleAdminPage)
	mux.HandleFunc("GET /admin/providers.json", a.handleAdminJSON)
	mux.HandleFunc("GET /{$}", a.handlePage)
	if len(a.Sims) > 0 {
		mux.HandleFunc("GET "+simActionPath+"{provider}/{ref}", a.handleSimAction)
		mux.HandleFunc("POST "+simActionPath+"{provider}/{ref}", a.handleSimAction)
	}
	a.Handler = securityHeaders(mux)
	for _, d := range a.Deliverers {
		d.SetHandler(mux)
	}
	ok = true
	return a, nil
}

// AdminToken returns the token that opens the fulfil and refund endpoints.
func (a *App) AdminToken() paymux.Secret { return a.cfg.AdminToken }

// Queue returns the payment queue.
func (a *App) Queue() order.Queue { return a.queue }

func (a *App) openStores(ctx context.Context) (paymux.Store, session.Store, order.Store, error) {
	cfg := a.cfg
	switch cfg.Store {
	case "memory":
		return memory.New(memory.Options{}), session.NewMemoryStore(), order.NewMemoryStore(), nil
	case "redis", "redis-cluster", "redis-sentinel":
		rdb, err := openRedis(cfg)
		if err != nil {
			return nil, nil, nil, err
		}
		a.closers = append(a.closers, rdb.Close)
		a.purge = purgeRedis(rdb, cfg.Prefix)
		if err := rdb.Ping(ctx).Err(); err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", cfg.Store, err)
		}
		opts := redisstore.Options{Prefix: cfg.Prefix + "paymux"}
		if cfg.Store == "redis-sentinel" {
			// A failover loses what the old master acknowledged last;
			// a claim counts only once a replica has it.
			opts.MinReplicas = 1
		}
		return redisstore.New(rdb, opts),
			session.NewRedisStore(rdb, cfg.Prefix+"shop:"), order.NewRedisStore(rdb, cfg.Prefix+"shop:"), nil
	case "sqlite", "postgres", "mysql":
		var d sqlstore.Dialect
		var dsn string
		switch cfg.Store {
		case "sqlite":
			d = sqlstore.SQLite
			path := envOr(cfg.SQLitePath, "paymux-shop.db")
			if dir := filepath.Dir(path); dir != "." {
				_ = os.MkdirAll(dir, 0o755)
			}
			dsn = "file:" + path
		case "postgres":
			d, dsn = sqlstore.Postgres, envOr(cfg.PostgresDSN, "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
		case "mysql":
			d, dsn = sqlstore.MySQL, envOr(cfg.MySQLDSN, "root@tcp(127.0.0.1:3306)/test")
		}
		db, err := sqlstore.OpenDB(d, dsn)
		if err != nil {
			return nil, nil, nil, err
		}
		a.closers = append(a.closers, db.Close)
		if cfg.MaxDBConns > 0 && d != sqlstore.SQLite {
			db.SetMaxOpenConns(cfg.MaxDBConns)
			db.SetMaxIdleConns(cfg.MaxDBConns)
		}
		a.purge = purgeSQL(db, d, cfg.Prefix)
		if err := db.PingContext(ctx); err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", cfg.Store, err)
		}
		ps, err := sqlstore.New(db, sqlstore.Options{Dialect: d, TablePrefix: cfg.Prefix + "paymux_"})
		if err != nil {
			return nil, nil, nil, err
		}
		if err := ps.Migrate(ctx); err != nil {
			return nil, nil, nil, fmt.Errorf("migrate paymux: %w", err)
		}
		sd := sqlutil.Dialect(d)
		ss := session.NewSQLStore(db, sd, cfg.Prefix+"shop_")
		if err := ss.Migrate(ctx); err != nil {
			return nil, nil, nil, err
		}
		os := order.NewSQLStore(db, sd, cfg.Prefix+"shop_")
		if err := os.Migrate(ctx); err != nil {
			return nil, nil, nil, err
		}
		return ps, ss, os, nil
	}
	return nil, nil, nil, fmt.Errorf("unknown store %q (memory, sqlite, redis, redis-cluster, redis-sentinel, postgres, mysql)", cfg.Store)
}

// Start runs the payment workers, the event dispatcher and the reconciler.
func (a *App) Start(ctx context.Context) {
	ctx, a.cancel = context.WithCancel(ctx)
	a.Orders.Start(ctx)
	a.wg.Add(2)
	go func() { defer a.wg.Done(); _ = a.dispatcher.Run(ctx) }()
	go func() { defer a.wg.Done(); _ = a.reconciler.Run(ctx, 5*time.Second) }()
}

// Reconciled returns what the reconciler did since Start, in all: payments
// left unknown or pending that it checked with their provider and settled,
// and abandoned claims it finished.
func (a *App) Reconciled() paymux.ReconcileReport { return a.reconciler.Totals() }

// DrainEvents waits until every webhook the sims sent so far was ingested
// (or given up), then delivers the events that are due to the order service.
func (a *App) DrainEvents(ctx context.Context) error {
	for _, d := range a.Deliverers {
		if err := d.Flush(ctx); err != nil {
			return err
		}
	}
	// One last pass so events applied during the drain reach the orders.
	for i := 0; i < 100; i++ {
		n, err := a.dispatcher.DispatchDue(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
	}
	return nil
}

// Shutdown finishes in-flight and queued payments, delivers pending events,
// and closes the stores. Call it after the HTTP server stopped taking
// requests.
func (a *App) Shutdown(ctx context.Context) error {
	err := a.Orders.Shutdown(ctx)
	_ = a.DrainEvents(ctx)
	if a.cancel != nil {
		a.cancel()
	}
	a.wg.Wait()
	if a.cfg.PurgeOnShutdown && a.purge != nil && a.cfg.Prefix != "" {
		if perr := a.purge(ctx); perr != nil {
			err = errors.Join(err, fmt.Errorf("purge %s: %w", a.cfg.Prefix, perr))
		}
	}
	a.close()
	return err
}

// DefaultRedisClusterURL is the "redis-cluster" store's default: the three
// masters scripts/redis-cluster.sh starts.
const DefaultRedisClusterURL = "redis://127.0.0.1:7001?addr=127.0.0.1:7002&addr=127.0.0.1:7003"

// DefaultRedisSentinelURL is the "redis-sentinel" store's default: the
// sentinels scripts/redis-sentinel.sh starts, watching master "paymux".
const DefaultRedisSentinelURL = "redis://127.0.0.1:26379?master_name=paymux&addr=127.0.0.1:26380&addr=127.0.0.1:26381"

// openRedis connects to one Redis server (a redis:// URL); for the
// "redis-cluster" store, to a Cluster (go-redis's cluster URL: one address
// in the host, the others as addr parameters); for "redis-sentinel", to
// the master its sentinels name (go-redis's failover URL: the sentinels'
// addresses, and master_name).
func openRedis(cfg Config) (redis.UniversalClient, error) {
	if cfg.Store == "redis-sentinel" {
		opt, err := redis.ParseFailoverURL(envOr(cfg.RedisURL, DefaultRedisSentinelURL))
		if err != nil {
			return nil, fmt.Errorf("redis-sentinel URL: %w", err)
		}
		opt.PoolSize = 128
		return redis.NewFailoverClient(opt), nil
	}
	if cfg.Store == "redis-cluster" {
		opt, err := redis.ParseClusterURL(envOr(cfg.RedisURL, DefaultRedisClusterURL))
		if err != nil {
			return nil, fmt.Errorf("redis-cluster URL: %w", err)
		}
		opt.PoolSize = 128
		return redis.NewClusterClient(opt), nil
	}
	opt, err := redis.ParseURL(envOr(cfg.RedisURL, "redis://127.0.0.1:6379/0"))
	if err != nil {
		return nil, fmt.Errorf("redis URL: %w", err)
	}
	opt.PoolSize = 128
	return redis.NewClient(opt), nil
}

// purgeRedis deletes every key that starts with prefix, or with "{" and
// prefix (paymux's keys put their prefix in a hash tag), on every master
// of a Cluster.
func purgeRedis(rdb redis.UniversalClient, prefix string) func(context.Context) error {
	return func(ctx context.Context) error {
		if cc, ok := rdb.(*redis.ClusterClient); ok {
			return cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
				return purgeRedisNode(ctx, node, prefix)
			})
		}
		return purgeRedisNode(ctx, rdb, prefix)
	}
}

// purgeRedisNode unlinks one key per command: a Cluster refuses a
// multi-key UNLINK whose keys hash to different slots, and a pipeline
// keeps it to one round trip per batch anyway.
func purgeRedisNode(ctx context.Context, rdb redis.Cmdable, prefix string) error {
	for _, match := range []string{globEscape(prefix) + "*", globEscape("{"+prefix) + "*"} {
		iter := rdb.Scan(ctx, 0, match, 5000).Iterator()
		pipe := rdb.Pipeline()
		flush := func() error {
			if pipe.Len() == 0 {
				return nil
			}
			_, err := pipe.Exec(ctx)
			return err
		}
		for iter.Next(ctx) {
			pipe.Unlink(ctx, iter.Val())
			if pipe.Len() == 5000 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := iter.Err(); err != nil {
			return err
		}
		if err := flush(); err != nil {
			return err
		}
	}
	return nil
}

// globEscape quotes the characters SCAN MATCH treats as patterns.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// purgeSQL drops every table whose name starts with prefix.
func purgeSQL(db *sql.DB, d sqlstore.Dialect, prefix string) func(context.Context) error {
	return func(ctx context.Context) error {
		list := map[sqlstore.Dialect]string{
			sqlstore.Postgres: `SELECT tablename FROM pg_tables WHERE schemaname = current_schema()`,
			sqlstore.MySQL:    `SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()`,
			sqlstore.SQLite:   `SELECT name FROM sqlite_master WHERE type = 'table'`,
		}[d]
		rows, err := db.QueryContext(ctx, list)
		if err != nil {
			return err
		}
		var tables []string
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				rows.Close()
				return err
			}
			if strings.HasPrefix(name, prefix) {
				tables = append(tables, name)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, t := range tables {
			if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS "+t); err != nil {
				return err
			}
		}
		return nil
	}
}

func (a *App) close() {
	for _, d := range a.Deliverers {
		d.Close()
	}
	for i := len(a.closers) - 1; i >= 0; i-- {
		_ = a.closers[i]()
	}
	a.closers = nil
}

// chaosSend delivers a sim's webhooks, or, with WebhookChaos on, delivers
// each twice after random delays, so they arrive duplicated and reordered.
func (a *App) chaosSend(d *sim.Deliverer) func(http.Header, []byte) {
	return func(h http.Header, body []byte) {
		if !a.WebhookChaos.Load() {
			d.Send(h, body)
			return
		}
		for i := 0; i < 2; i++ {
			delay := time.Duration(mrand.IntN(300)) * time.Millisecond
			time.AfterFunc(delay, func() { d.Send(h.Clone(), body) })
		}
	}
}

func (a *App) handleHealth(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	_, err := a.Store.GetPayment(ctx, "pay_healthcheck")
	if err != nil && !errors.Is(err, paymux.ErrNotFound) {
		http.Error(w, "store unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"status":"ok","queue_depth":%d}`+"\n", a.queue.Depth())
}

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Referrer-Policy", "same-origin")
		h.ServeHTTP(w, r)
	})
}
