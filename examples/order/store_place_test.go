package order_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paymux/paymux/examples/order"
)

// PlaceOrder is checkout's only store step: under a race of buyers, some of
// them retrying, it never sells more than the stock, creates each order once,
// and a sold-out checkout leaves no order behind.
func TestStorePlaceOrderNeverOversells(t *testing.T) {
	eachStore(t, func(t *testing.T, st order.Store) {
		ctx := context.Background()
		const stock, buyers = 10, 48
		seed(t, st, "p", stock)
		now := time.Now().Truncate(time.Millisecond)
		var created, soldOut atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < buyers; i++ {
			for click := 0; click < 2; click++ { // every buyer double-clicks
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					o := newOrder(fmt.Sprintf("o%d", i), "", now)
					stored, ok, err := st.PlaceOrder(ctx, o, now.Add(time.Minute))
					switch {
					case errors.Is(err, order.ErrSoldOut):
						soldOut.Add(1)
					case err != nil:
						t.Error(err)
					case ok:
						created.Add(1)
						fallthrough
					default:
						if stored.ID != o.ID || stored.Version < 1 || stored.Method.Token != "sim_ok" {
							t.Errorf("stored = %+v", stored)
						}
					}
				}()
			}
		}
		close(start)
		wg.Wait()
		if n := created.Load(); n != stock {
			t.Fatalf("%d orders created from a stock of %d", n, stock)
		}
		if left := stockOf(t, st, "p"); left != 0 {
			t.Fatalf("stock left %d, want 0", left)
		}
		placed := 0
		for i := 0; i < buyers; i++ {
			if _, err := st.GetOrder(ctx, fmt.Sprintf("o%d", i)); err == nil {
				placed++
			} else if !errors.Is(err, order.ErrNotFound) {
				t.Fatal(err)
			}
		}
		if placed != stock {
			t.Fatalf("%d orders stored, want %d: a sold-out checkout left an order", placed, stock)
		}
		queued, err := st.OrdersInStatus(ctx, order.StatusQueued, now.Add(time.Second), 100)
		if err != nil || len(queued) != stock {
			t.Fatalf("OrdersInStatus(queued) = %d orders, %v; want %d", len(queued), err, stock)
		}
	})
}

// A retry of a placed order returns it and takes nothing, whatever became of
// its stock.
func TestStorePlaceOrderRetryTakesNothing(t *testing.T) {
	eachStore(t, func(t *testing.T, st order.Store) {
		ctx := context.Background()
		seed(t, st, "p", 5)
		now := time.Now().Truncate(time.Millisecond)
		o := newOrder("retry", "u1", now)
		if _, ok, err := st.PlaceOrder(ctx, o, now.Add(time.Minute)); err != nil || !ok {
			t.Fatalf("first PlaceOrder: created=%v err=%v", ok, err)
		}
		if err := st.Release(ctx, "retry"); err != nil { // say the payment failed
			t.Fatal(err)
		}
		again := newOrder("retry", "u1", now)
		again.Email = "other"
		stored, ok, err := st.PlaceOrder(ctx, again, now.Add(time.Minute))
		if err != nil || ok || stored.Email != "" {
			t.Fatalf("retry: created=%v err=%v stored=%+v; want the first order back", ok, err, stored)
		}
		if left := stockOf(t, st, "p"); left != 5 {
			t.Fatalf("stock left %d after a released order's retry, want 5", left)
		}
		mine, err := st.OrdersByUser(ctx, "u1", 10)
		if err != nil || len(mine) != 1 {
			t.Fatalf("OrdersByUser = %d, %v; want 1", len(mine), err)
		}
	})
}

// A checkout retried after its product sold out gets its own order back:
// the order took the last unit, so sold out is not its answer.
func TestStorePlaceOrderRetryAfterSellOutReturnsTheOrder(t *testing.T) {
	eachStore(t, func(t *testing.T, st order.Store) {
		ctx := context.Background()
		seed(t, st, "p", 1)
		now := time.Now().Truncate(time.Millisecond)
		if _, ok, err := st.PlaceOrder(ctx, newOrder("last", "u1", now), now.Add(time.Minute)); err != nil || !ok {
			t.Fatalf("first PlaceOrder: created=%v err=%v", ok, err)
		}
		stored, ok, err := st.PlaceOrder(ctx, newOrder("last", "u1", now), now.Add(time.Minute))
		if err != nil || ok || stored == nil || stored.ID != "last" {
			t.Fatalf("retry after sell-out: created=%v err=%v stored=%+v; want the first order back", ok, err, stored)
		}
		if _, _, err := st.PlaceOrder(ctx, newOrder("late", "u2", now), now.Add(time.Minute)); !errors.Is(err, order.ErrSoldOut) {
			t.Fatalf("another buyer after sell-out: %v, want ErrSoldOut", err)
		}
		if mine, err := st.OrdersByUser(ctx, "u2", 10); err != nil || len(mine) != 0 {
			t.Fatalf("a sold-out checkout left %d orders, %v", len(mine), err)
		}
		if left := stockOf(t, st, "p"); left != 0 {
			t.Fatalf("stock left %d, want 0", left)
		}
	})
}

// The one-step commit of a paid order: it sells the stock and saves the
// order together, or, on a stale version or a reservation that is gone,
// changes nothing at all.
func TestStoreCommitAndSave(t *testing.T) {
	eachStore(t, func(t *testing.T, st order.Store) {
		ctx := context.Background()
		seed(t, st, "p", 5)
		now := time.Now().Truncate(time.Millisecond)
		place := func(id string) *order.Order {
			o, ok, err := st.PlaceOrder(ctx, newOrder(id, "u1", now), now.Add(time.Minute))
			if err != nil || !ok {
				t.Fatalf("PlaceOrder(%s): created=%v err=%v", id, ok, err)
			}
			return o
		}
		paid := func(o *order.Order) *order.Order {
			n := *o
			n.Status, n.PaymentID, n.UpdatedAt = order.StatusPaid, "pay_"+o.ID, now.Add(time.Millisecond)
			return &n
		}

		a := place("a")
		ok, err := order.CommitAndSave(ctx, st, paid(a), a.Version, a.Status)
		if !ok {
			t.Skip("this store settles step by step")
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := st.GetOrder(ctx, "a")
		if err != nil || got.Status != order.StatusPaid || got.Version != a.Version+1 || got.PaymentID != "pay_a" {
			t.Fatalf("after commit: %+v, %v", got, err)
		}
		if sold := soldOf(t, st, "p"); sold != 1 {
			t.Fatalf("sold %d, want 1", sold)
		}
		inPaid, _ := st.OrdersInStatus(ctx, order.StatusPaid, now.Add(time.Second), 10)
		inQueued, _ := st.OrdersInStatus(ctx, order.StatusQueued, now.Add(time.Second), 10)
		if len(inPaid) != 1 || len(inQueued) != 0 {
			t.Fatalf("listings: %d paid, %d queued; want 1, 0", len(inPaid), len(inQueued))
		}

		// Stale version: nothing changes, not even the stock.
		b := place("b")
		if _, err := st.UpdateOrder(ctx, "b", func(o *order.Order) bool { o.Email = "moved"; return true }); err != nil {
			t.Fatal(err)
		}
		if _, err := order.CommitAndSave(ctx, st, paid(b), b.Version, b.Status); !errors.Is(err, order.ErrConflict) {
			t.Fatalf("stale version: %v, want ErrConflict", err)
		}
		if got, _ := st.GetOrder(ctx, "b"); got.Status != order.StatusQueued || soldOf(t, st, "p") != 1 {
			t.Fatalf("stale version changed something: %+v, sold %d", got, soldOf(t, st, "p"))
		}

		// Released reservation: ErrNotFound, the order stays as it was.
		c := place("c")
		if err := st.Release(ctx, "c"); err != nil {
			t.Fatal(err)
		}
		if _, err := order.CommitAndSave(ctx, st, paid(c), c.Version, c.Status); !errors.Is(err, order.ErrNotFound) {
			t.Fatalf("released reservation: %v, want ErrNotFound", err)
		}
		if got, _ := st.GetOrder(ctx, "c"); got.Status != order.StatusQueued || got.Version != c.Version || soldOf(t, st, "p") != 1 {
			t.Fatalf("released reservation changed something: %+v, sold %d", got, soldOf(t, st, "p"))
		}
	})
}

// The worker and a webhook may both try to settle one order: exactly one
// one-step commit wins and the stock is sold once.
func TestStoreCommitAndSaveRace(t *testing.T) {
	eachStore(t, func(t *testing.T, st order.Store) {
		ctx := context.Background()
		seed(t, st, "p", 5)
		now := time.Now().Truncate(time.Millisecond)
		o, _, err := st.PlaceOrder(ctx, newOrder("race", "", now), now.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		paid := *o
		paid.Status, paid.UpdatedAt = order.StatusPaid, now.Add(time.Millisecond)
		var won, conflicts atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				next := paid
				ok, err := order.CommitAndSave(ctx, st, &next, o.Version, o.Status)
				switch {
				case !ok:
				case err == nil:
					won.Add(1)
				case errors.Is(err, order.ErrConflict):
					conflicts.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if won.Load()+conflicts.Load() == 0 {
			t.Skip("this store settles step by step")
		}
		if won.Load() != 1 {
			t.Fatalf("%d one-step commits won, want exactly 1", won.Load())
		}
		if sold := soldOf(t, st, "p"); sold != 1 {
			t.Fatalf("sold %d, want 1", sold)
		}
	})
}

// A large stock is split over rows; an order whose own row runs low takes
// its units from the others, so a drop sells every unit it can, and two
// items of one order are taken together or not at all.
func TestStorePlaceOrderSellsTheLastUnits(t *testing.T) {
	eachStore(t, func(t *testing.T, st order.Store) {
		ctx := context.Background()
		const stock, qty = 1024, 7 // four rows of 256 on SQL stores
		seed(t, st, "p", stock)
		seed(t, st, "q", stock)
		now := time.Now().Truncate(time.Millisecond)
		var units atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					o := newOrder(fmt.Sprintf("w%d-%d", w, i), "", now)
					o.Items = []order.Item{{ProductID: "q", Quantity: 1, UnitPrice: 1000}, {ProductID: "p", Quantity: qty, UnitPrice: 1000}}
					_, ok, err := st.PlaceOrder(ctx, o, now.Add(time.Minute))
					if errors.Is(err, order.ErrSoldOut) {
						return
					}
					if err != nil || !ok {
						t.Errorf("PlaceOrder: created=%v err=%v", ok, err)
						return
					}
					units.Add(qty)
				}
			}()
		}
		wg.Wait()
		sold := units.Load()
		if left := stockOf(t, st, "p"); int64(left) != stock-sold || left >= qty {
			t.Fatalf("sold %d of %d, %d left: want every whole order sold and the stock to match", sold, stock, left)
		}
		if left := stockOf(t, st, "q"); int64(left) != stock-sold/qty {
			t.Fatalf("q: %d left after %d orders: an order took one item without the other", left, sold/qty)
		}
	})
}
