package order_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/examples/internal/sqlutil"
	"github.com/paymux/paymux/examples/internal/testenv"
	"github.com/paymux/paymux/examples/order"
)

// stores returns every order.Store implementation, each on its own prefix.
func stores() map[string]func(t *testing.T) order.Store {
	return map[string]func(t *testing.T) order.Store{
		"memory":   func(t *testing.T) order.Store { return order.NewMemoryStore() },
		"sqlite":   func(t *testing.T) order.Store { return sqlStore(t, testenv.SQLite(t), sqlutil.SQLite) },
		"postgres": func(t *testing.T) order.Store { return sqlStore(t, testenv.Postgres(t), sqlutil.Postgres) },
		"mysql":    func(t *testing.T) order.Store { return sqlStore(t, testenv.MySQL(t), sqlutil.MySQL) },
		"redis": func(t *testing.T) order.Store {
			rdb := testenv.Redis(t)
			prefix := testenv.Prefix("ord") + ":"
			t.Cleanup(func() { dropRedis(rdb, prefix) })
			return order.NewRedisStore(rdb, prefix)
		},
		// Cluster takes other paths: checkout reserves then creates, and a
		// paid order settles step by step (see store_cluster_test.go).
		"redis-cluster": func(t *testing.T) order.Store {
			rdb := testenv.RedisCluster(t)
			prefix := testenv.Prefix("ordc") + ":"
			t.Cleanup(func() { _ = testenv.DropClusterKeys(rdb, prefix) })
			return order.NewRedisStore(rdb, prefix)
		},
	}
}

func sqlStore(t *testing.T, db *sql.DB, d sqlutil.Dialect) order.Store {
	t.Helper()
	s := order.NewSQLStore(db, d, testenv.Prefix("o"))
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Drop(context.Background()) })
	return s
}

func dropRedis(rdb *redis.Client, prefix string) {
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		rdb.Del(ctx, iter.Val())
	}
}

// eachStore runs fn as a parallel subtest against every store.
func eachStore(t *testing.T, fn func(t *testing.T, st order.Store)) {
	t.Helper()
	for name, open := range stores() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, open(t))
		})
	}
}

func seed(t *testing.T, st order.Store, id string, stock int) {
	t.Helper()
	now := time.Now()
	err := st.SeedProduct(context.Background(), order.Product{
		ID: id, Name: id, Prices: map[paymux.Currency]int64{"EUR": 1000}, Stock: stock,
		SaleStart: now.Add(-time.Hour), SaleEnd: now.Add(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
}

func stockOf(t *testing.T, st order.Store, id string) int {
	t.Helper()
	p, err := st.Product(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return p.Stock
}

func soldOf(t *testing.T, st order.Store, id string) int {
	t.Helper()
	n, err := st.Sold(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func one(id string, n int) []order.Item {
	return []order.Item{{ProductID: id, Quantity: n, UnitPrice: 1000}}
}

func TestStoreNeverOversells(t *testing.T) {
	eachStore(t, func(t *testing.T, st order.Store) {
		ctx := context.Background()
		const stock, buyers = 10, 64
		seed(t, st, "drop", stock)
		var won atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, buyers)
		start := make(chan struct{})
		for i := 0; i < buyers; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-start
				qty := 1 + i%2 // some buyers take two
				err := st.Reserve(ctx, fmt.Sprintf("o%d", i), one("drop", qty), time.Now().Add(time.Minute))
				switch {
				case err == nil:
					won.Add(int64(qty))
					if i%3 == 0 { // a third of the winners pay
						if err := st.Commit(ctx, fmt.Sprintf("o%d", i)); err != nil {
							errs <- err
						}
					}
				case errors.Is(err, order.ErrSoldOut):
				default:
					errs <- err
				}
			}(i)
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("reserve/commit: %v", err)
		}
		if got := won.Load(); got > stock {
			t.Fatalf("oversold: reserved %d units of %d", got, stock)
		}
		if left := stockOf(t, st, "drop"); int64(left)+won.Load() != stock {
			t.Fatalf("stock left %d + reserved %d != %d", left, won.Load(), stock)
		}
		// Sold equals exactly what was committed.
		var committed int
		for i := 0; i < buyers; i += 3 {
			if err := st.Commit(ctx, fmt.Sprintf("o%d", i)); err == nil {
				committed += 1 + i%2
			}
		}
		if sold := soldOf(t, st, "drop"); sold != committed {
			t.Fatalf("Sold = %d, committed %d", sold, committed)
		}
	})
}

func TestStoreReserveIdempotentAndRelease(t *testing.T) {
	eachStore(t, func(t *testing.T, st order.Store) {
		ctx := context.Background()
		seed(t, st, "p", 5)
		until := time.Now().Add(time.Minute)
		for i := 0; i < 3; i++ {
			if err := st.Reserve(ctx, "o1", one("p", 2), until); err != nil {
				t.Fatal(err)
			}
		}
		if got := stockOf(t, st, "p"); got != 3 {
			t.Fatalf("stock after reserving the same order thrice = %d, want 3", got)
		}
		if err := st.Reserve(ctx, "o2", one("p", 4), until); !errors.Is(err, order.ErrSoldOut) {
			t.Fatalf("reserve beyond stock: %v, want ErrSoldOut", err)
		}
		if got := stockOf(t, st, "p"); got != 3 {
			t.Fatalf("a sold-out reserve took stock: %d", got)
		}
		for i := 0; i < 3; i++ {
			if err := st.Release(ctx, "o1"); err != nil {
				t.Fatal(err)
			}
		}
		if got := stockOf(t, st, "p"); got != 5 {
			t.Fatalf("stock after releasing thrice = %d, want 5 (returned once)", got)
		}
		// A released order's id is spent: reserving it again takes nothing.
		if err := st.Reserve(ctx, "o1", one("p", 2), until); err != nil {
			t.Fatal(err)
		}
		if got := stockOf(t, st, "p"); got != 5 {
			t.Fatalf("re-reserving a released order took stock: %d", got)
		}
		if err := st.Commit(ctx, "o1"); !errors.Is(err, order.ErrNotFound) {
			t.Fatalf("commit of a released reservation: %v, want ErrNotFound", err)
		}
		if err := st.Release(ctx, "never"); err != nil {
			t.Fatalf("release of an unknown order: %v", err)
		}
		// Seeding again must not refill the drop.
		if err := st.Reserve(ctx, "o3", one("p", 5), until); err != nil {
			t.Fatal(err)
		}
		seed(t, st, "p", 5)
		if got := stockOf(t, st, "p"); got != 0 {
			t.Fatalf("re-seed refilled the stock to %d", got)
		}
	})
}

func TestStoreCommitThenRelease(t *testing.T) {
	eachStore(t, func(t *testing.T, st order.Store) {
		ctx := context.Background()
		seed(t, st, "p", 3)
		if err := st.Reserve(ctx, "o1", one("p", 2), time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			if err := st.Commit(ctx, "o1"); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.Release(ctx, "o1"); err != nil {
			t.Fatal(err)
		}
		if got, sold := stockOf(t, st, "p"), soldOf(t, st, "p"); got != 1 || sold != 2 {
			t.Fatalf("after commit, commit, release: stock %d sold %d; want 1 and 2", got, sold)
		}
		if err := st.Commit(ctx, "nothing"); !errors.Is(err, order.ErrNotFound) {
			t.Fatalf("commit without a reservation: %v, want ErrNotFound", err)
		}
	})
}

func TestStoreExpiredReservations(t *testing.T) {
	eachStore(t, func(t *testing.T, st order.Store) {
		ctx := context.Background()
		seed(t, st, "p", 10)
		now := time.Now()
		for id, until := range map[string]time.Time{
			"old1": now.Add(-2 * time.Minute), "old2": now.Add(-time.Minute), "paid": now.Add(-time.Minute),
			"gone": now.Add(-time.Minute), "fresh": now.Add(time.Minute),
		} {
			if err := st.Reserve(ctx, id, one("p", 1), until); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.Commit(ctx, "paid"); err != nil {
			t.Fatal(err)
		}
		if err := st.Release(ctx, "gone"); err != nil {
			t.Fatal(err)
		}
		ids, err := st.ExpiredReservations(ctx, now, 100)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, id := range ids {
			got[id] = true
		}
		if len(ids) != 2 || !got["old1"] || !got["old2"] {
			t.Fatalf("expired = %v, want old1 and old2", ids)
		}
		if ids, _ := st.ExpiredReservations(ctx, now, 1); len(ids) != 1 {
			t.Fatalf("limit 1 gave %v", ids)
		}
	})
}

func newOrder(id, user string, at time.Time) *order.Order {
	return &order.Order{
		ID: id, UserID: user, Items: one("p", 1), Amount: paymux.NewMoney(1000, "EUR"), Country: "DE",
		Method: paymux.PaymentMethod{Type: paymux.MethodCard, Token: "sim_ok"}, MethodType: paymux.MethodCard,
		Status: order.StatusQueued, CreatedAt: at, UpdatedAt: at,
	}
}

func TestStoreCreateOrderRace(t *testing.T) {
	eachStore(t, func(t *testing.T, st order.Store) {
		ctx := context.Background()
		now := time.Now().Truncate(time.Millisecond)
		var created atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 64; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				o := newOrder("race", "u1", now)
				o.Email = fmt.Sprint(i)
				stored, ok, err := st.CreateOrder(ctx, o)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					created.Add(1)
				}
				if stored.ID != "race" || stored.Method.Token != "sim_ok" {
					t.Errorf("stored = %+v", stored)
				}
			}(i)
		}
		wg.Wait()
		if n := created.Load(); n != 1 {
			t.Fatalf("%d goroutines created the order, want exactly 1", n)
		}
		if _, err := st.GetOrder(ctx, "absent"); !errors.Is(err, order.ErrNotFound) {
			t.Fatalf("GetOrder(absent): %v", err)
		}
	})
}

func TestStoreUpdateOrderCAS(t *testing.T) {
	eachStore(t, func(t *testing.T, st order.Store) {
		ctx := context.Background()
		if _, _, err := st.CreateOrder(ctx, newOrder("cas", "", time.Now())); err != nil {
			t.Fatal(err)
		}
		const n = 64
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Attempts counts the increments; a lost update would show.
				for {
					_, err := st.UpdateOrder(ctx, "cas", func(o *order.Order) bool {
						// FailureReason is the counter: it round-trips through every store.
						o.FailureReason = fmt.Sprint(atoiOr(o.FailureReason) + 1)
						return true
					})
					if errors.Is(err, order.ErrConflict) {
						continue // the contract allows giving up after many conflicts; try again
					}
					if err != nil {
						t.Error(err)
					}
					return
				}
			}()
		}
		wg.Wait()
		o, err := st.GetOrder(ctx, "cas")
		if err != nil {
			t.Fatal(err)
		}
		if o.FailureReason != fmt.Sprint(n) {
			t.Fatalf("counter = %s after %d concurrent increments: lost updates", o.FailureReason, n)
		}
		// fn returning false changes nothing.
		before := o.Version
		o2, err := st.UpdateOrder(ctx, "cas", func(o *order.Order) bool { o.Status = order.StatusPaid; return false })
		if err != nil {
			t.Fatal(err)
		}
		if cur, _ := st.GetOrder(ctx, "cas"); cur.Status != order.StatusQueued || cur.Version != before || o2 == nil {
			t.Fatalf("a declined update was saved: %+v", cur)
		}
		if _, err := st.UpdateOrder(ctx, "absent", func(*order.Order) bool { return true }); !errors.Is(err, order.ErrNotFound) {
			t.Fatalf("UpdateOrder(absent): %v", err)
		}
	})
}

func atoiOr(s string) int {
	var n int
	_, _ = fmt.Sscan(s, &n)
	return n
}

func TestStoreListings(t *testing.T) {
	eachStore(t, func(t *testing.T, st order.Store) {
		ctx := context.Background()
		base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
		for i := 0; i < 5; i++ {
			user := "u1"
			if i%2 == 1 {
				user = "u2"
			}
			at := base.Add(time.Duration(i) * time.Minute)
			if _, _, err := st.CreateOrder(ctx, newOrder(fmt.Sprintf("o%d", i), user, at)); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := st.CreateOrder(ctx, newOrder("guest", "", base)); err != nil {
			t.Fatal(err)
		}
		// o4 is paid now; o0..o3 and the guest order stay queued.
		if _, err := st.UpdateOrder(ctx, "o4", func(o *order.Order) bool {
			o.Status, o.UpdatedAt = order.StatusPaid, time.Now()
			return true
		}); err != nil {
			t.Fatal(err)
		}
		u1, err := st.OrdersByUser(ctx, "u1", 10)
		if err != nil {
			t.Fatal(err)
		}
		if ids := idsOf(u1); fmt.Sprint(ids) != "[o4 o2 o0]" {
			t.Fatalf("OrdersByUser(u1) = %v, want newest first [o4 o2 o0]", ids)
		}
		if u1[0].Status != order.StatusPaid {
			t.Fatalf("history shows %s for o4", u1[0].Status)
		}
		if u2, _ := st.OrdersByUser(ctx, "u2", 1); fmt.Sprint(idsOf(u2)) != "[o3]" {
			t.Fatalf("OrdersByUser(u2, 1) = %v", idsOf(u2))
		}
		queued, err := st.OrdersInStatus(ctx, order.StatusQueued, base.Add(150*time.Second), 10)
		if err != nil {
			t.Fatal(err)
		}
		ids := idsOf(queued)
		if len(ids) != 4 || ids[len(ids)-1] != "o2" || ids[len(ids)-2] != "o1" {
			t.Fatalf("OrdersInStatus(queued, before o3) = %v, want guest and o0 then o1, o2 (oldest first)", ids)
		}
		paid, _ := st.OrdersInStatus(ctx, order.StatusPaid, time.Now().Add(time.Minute), 10)
		if fmt.Sprint(idsOf(paid)) != "[o4]" {
			t.Fatalf("OrdersInStatus(paid) = %v", idsOf(paid))
		}
		if q, _ := st.OrdersInStatus(ctx, order.StatusQueued, time.Now(), 10); len(q) != 5 {
			t.Fatalf("o4 still listed as queued: %v", idsOf(q))
		}
	})
}

func idsOf(os []*order.Order) []string {
	out := make([]string, len(os))
	for i, o := range os {
		out[i] = o.ID
	}
	return out
}
