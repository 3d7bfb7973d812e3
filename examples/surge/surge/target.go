package surge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/examples/order"
	"github.com/paymux/paymux/examples/session"
	"github.com/paymux/paymux/examples/shop/app"
)

// target is the shop under test: in process (app != nil) or remote.
type target struct {
	base    string
	app     *app.App
	srv     *http.Server
	stock   map[string]int // initial stock per product
	main    string         // product with stock for everyone
	limited string         // product with less stock than demand
	tmpDir  string
	cancel  context.CancelFunc
	done    chan struct{}
}

// startInProcess builds the shop with app.New on a loopback listener, seeds
// the drop's products and the accounts (in parallel: bcrypt at production
// cost is slow), and starts its workers.
func startInProcess(ctx context.Context, cfg *Config, accounts []session.SeedUser) (*target, error) {
	t := &target{main: ProductMain, limited: ProductLimited, done: make(chan struct{})}
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = "s" + strconv.FormatInt(time.Now().UnixNano(), 36) + "_"
	}
	sqlitePath := cfg.SQLitePath
	if cfg.Store == "sqlite" && sqlitePath == "" {
		dir, err := os.MkdirTemp("", "paymux-surge-")
		if err != nil {
			return nil, err
		}
		t.tmpDir = dir
		sqlitePath = filepath.Join(dir, "surge.db")
	}
	now := time.Now()
	prices := map[paymux.Currency]int64{"EUR": 18900, "USD": 19900, "GBP": 16900}
	products := []order.Product{
		{ID: ProductMain, Name: "Surge Sneaker", Prices: prices, Stock: cfg.Orders, SaleStart: now.Add(-time.Minute), SaleEnd: now.Add(24 * time.Hour)},
		{ID: ProductLimited, Name: "Surge Collab (limited)", Prices: prices, Stock: cfg.LimitedStock, SaleStart: now.Add(-time.Minute), SaleEnd: now.Add(24 * time.Hour)},
	}
	t.stock = map[string]int{ProductMain: cfg.Orders, ProductLimited: cfg.LimitedStock}
	a, err := app.New(ctx, app.Config{
		Store: cfg.Store, SQLitePath: sqlitePath, RedisURL: cfg.RedisURL, PostgresDSN: cfg.PostgresDSN, MySQLDSN: cfg.MySQLDSN,
		MaxDBConns: cfg.MaxDBConns, Prefix: prefix, Dev: true,
		// A generated prefix is this run's alone: its tables and keys go
		// when it ends, so repeated runs do not fill a shared server.
		PurgeOnShutdown: cfg.Prefix == "", Workers: cfg.Workers, SimLatency: cfg.SimLatency, Products: products,
		Users: []session.SeedUser{}, BcryptCost: cfg.BcryptCost,
		// Every buyer comes from 127.0.0.1: the per-IP login limit would
		// throttle the sign-ins, which happen before the drop anyway.
		LoginRate: rate.Inf, Logger: cfg.Logger,
	})
	if err != nil {
		t.cleanup()
		return nil, err
	}
	t.app = a
	if err := seedParallel(ctx, a.Sessions, accounts); err != nil {
		_ = a.Shutdown(context.Background())
		t.cleanup()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = a.Shutdown(context.Background())
		t.cleanup()
		return nil, err
	}
	t.base = "http://" + ln.Addr().String()
	t.srv = &http.Server{Handler: a.Handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { defer close(t.done); _ = t.srv.Serve(ln) }()
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	t.cancel = cancel
	a.Start(actx)
	return t, nil
}

// seedParallel hashes and stores the accounts on every core.
func seedParallel(ctx context.Context, s *session.Service, users []session.SeedUser) error {
	const parts = 4
	var wg sync.WaitGroup
	errs := make([]error, parts)
	for p := 0; p < parts; p++ {
		var mine []session.SeedUser
		for i := p; i < len(users); i += parts {
			mine = append(mine, users[i])
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[p] = s.Seed(ctx, mine)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// stop shuts the server and the app down (the app drains its queue).
func (t *target) stop(ctx context.Context) error {
	var err error
	if t.srv != nil {
		_ = t.srv.Shutdown(ctx)
		<-t.done
	}
	if t.app != nil {
		err = t.app.Shutdown(ctx)
	}
	if t.cancel != nil {
		t.cancel()
	}
	t.cleanup()
	return err
}

func (t *target) cleanup() {
	if t.tmpDir != "" {
		_ = os.RemoveAll(t.tmpDir)
	}
}

// remoteTarget reads a running shop's products: the one with the most stock
// is the main product, the one with the least the limited one.
func remoteTarget(ctx context.Context, base string, c *http.Client) (*target, error) {
	var out struct {
		Products []order.Product `json:"products"`
	}
	if _, err := getJSON(ctx, c, base+"/api/products", &out); err != nil {
		return nil, fmt.Errorf("read products from %s: %w", base, err)
	}
	if len(out.Products) == 0 {
		return nil, fmt.Errorf("%s sells nothing", base)
	}
	t := &target{base: base, stock: map[string]int{}}
	for _, p := range out.Products {
		t.stock[p.ID] = p.Stock
		if t.main == "" || p.Stock > t.stock[t.main] {
			t.main = p.ID
		}
		if t.limited == "" || p.Stock < t.stock[t.limited] {
			t.limited = p.ID
		}
	}
	return t, nil
}
