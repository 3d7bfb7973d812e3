// Command shop runs the paymux reference platform: the session and order
// services, paymux with its webhook handler, and a small web page, in one
// binary. With no flags it needs nothing but itself: a SQLite file and two
// simulated providers.
//
//	go run ./examples/shop                      # http://localhost:8080
//	go run ./examples/shop -store redis         # or postgres, mysql, memory
//	PAYMUX_NATS_URL=nats://127.0.0.1:4222 go run ./examples/shop
//
// Real providers' sandboxes are used instead of the simulated ones when their
// keys are in the environment: STRIPE_SECRET_KEY (+ STRIPE_WEBHOOK_SECRET),
// ADYEN_API_KEY + ADYEN_MERCHANT_ACCOUNT + ADYEN_HMAC_KEY, BRAINTREE_MERCHANT_ID +
// BRAINTREE_PUBLIC_KEY + BRAINTREE_PRIVATE_KEY, PAYPAL_CLIENT_ID +
// PAYPAL_CLIENT_SECRET (+ PAYPAL_WEBHOOK_ID), WORLDPAY_USERNAME +
// WORLDPAY_PASSWORD + WORLDPAY_ENTITY. PAYMUX_ROUTES names a routes YAML file;
// without it the providers are tried in that order.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/examples/shop/app"
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func main() {
	var (
		addr    = flag.String("addr", env("PAYMUX_ADDR", "localhost:8080"), "listen address")
		store   = flag.String("store", env("PAYMUX_STORE", "sqlite"), "store: sqlite, memory, redis, redis-cluster, redis-sentinel, postgres, mysql")
		sqlite  = flag.String("sqlite", env("PAYMUX_SQLITE_PATH", "paymux-shop.db"), "SQLite file")
		redis   = flag.String("redis", env("PAYMUX_REDIS_URL", "redis://127.0.0.1:6379/0"), "Redis URL")
		pg      = flag.String("postgres", env("PAYMUX_POSTGRES_DSN", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"), "PostgreSQL DSN")
		mysql   = flag.String("mysql", env("PAYMUX_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/test"), "MySQL/MariaDB DSN")
		nats    = flag.String("nats", env("PAYMUX_NATS_URL", ""), "NATS URL for the payment queue (empty: in-process)")
		dev     = flag.Bool("dev", env("PAYMUX_DEV", "true") == "true", "development mode: cookies without Secure on plain-HTTP localhost")
		workers = flag.Int("workers", 32, "payment workers")
		dbConns = flag.Int("db-conns", 0, "connections in the pool on PostgreSQL and MySQL (default 32)")
	)
	flag.Parse()
	app.TuneGC()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	providers, err := realProviders(log)
	if err != nil {
		log.Error("provider configuration", "err", err)
		os.Exit(1)
	}
	var routes []paymux.Rule
	if path := os.Getenv("PAYMUX_ROUTES"); path != "" {
		data, err := os.ReadFile(path)
		if err == nil {
			routes, err = paymux.ParseRoutesYAML(data)
		}
		if err != nil {
			log.Error("routes", "file", path, "err", err)
			os.Exit(1)
		}
	}
	if err := run(log, app.Config{
		Providers: providers, Routes: routes,
		Store: *store, SQLitePath: *sqlite, RedisURL: *redis, PostgresDSN: *pg, MySQLDSN: *mysql, NATSURL: *nats,
		Dev: *dev, Workers: *workers, MaxDBConns: *dbConns, Logger: log,
		SigningKey: paymux.Secret(os.Getenv("PAYMUX_SIGNING_KEY")), AdminToken: paymux.Secret(os.Getenv("PAYMUX_ADMIN_TOKEN")),
	}, *addr); err != nil {
		log.Error("shop stopped", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger, cfg app.Config, addr string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := app.New(ctx, cfg)
	if err != nil {
		return err
	}
	a.Start(context.Background())
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = a.Shutdown(context.Background())
		return err
	}
	srv := &http.Server{Handler: a.Handler, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}
	token := "from PAYMUX_ADMIN_TOKEN"
	if cfg.AdminToken == "" {
		// Generated for this run only: shown once so the operator can use
		// the fulfil and refund endpoints.
		token = a.AdminToken().Reveal()
	}
	fmt.Fprintf(os.Stderr, "paymux shop on http://%s  (store %s; admin token for fulfil/refund: %s)\n", ln.Addr(), cfg.Store, token)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight checkouts and queued payments")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Stop taking requests and let in-flight ones finish, then drain the
	// payment queue; what is left stays queued in the store for next start.
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("http shutdown", "err", err)
	}
	return a.Shutdown(sctx)
}
