package order_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paymux/paymux/examples/internal/testenv"
	"github.com/paymux/paymux/examples/order"
)

// On Redis Cluster an order's keys and the inventory's live in different
// slots, so RedisStore takes other paths than on one node: PlaceOrder
// reserves and then creates, and a paid order settles step by step. The
// shared store tests run there as "redis-cluster"; these check what is
// particular to it.

func clusterStore(t *testing.T) (order.Store, *redis.ClusterClient, string) {
	t.Helper()
	rdb := testenv.RedisCluster(t)
	prefix := testenv.Prefix("ordc") + ":"
	t.Cleanup(func() { _ = testenv.DropClusterKeys(rdb, prefix) })
	return order.NewRedisStore(rdb, prefix), rdb, prefix
}

// keysByMaster scans every master for the keys under prefix: key -> the
// address of the master that holds it.
func keysByMaster(t *testing.T, rdb *redis.ClusterClient, prefix string) map[string]string {
	t.Helper()
	var mu sync.Mutex
	where := map[string]string{}
	err := rdb.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
		iter := m.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			where[iter.Val()] = m.Options().Addr
			mu.Unlock()
		}
		return iter.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return where
}

// The inventory stays on one master (a multi-product reservation is one
// script) while orders spread over the others; checked where the keys
// really are, so the test fails if everything went to one node and the
// cross-slot paths were never taken.
func TestRedisClusterOrdersSpreadOverMasters(t *testing.T) {
	t.Parallel()
	st, rdb, prefix := clusterStore(t)
	ctx := context.Background()
	seed(t, st, "p", 100)
	now := time.Now().Truncate(time.Millisecond)
	const orders = 16
	for i := range orders {
		if _, ok, err := st.PlaceOrder(ctx, newOrder(fmt.Sprintf("o%d", i), fmt.Sprintf("u%d", i), now), now.Add(time.Minute)); err != nil || !ok {
			t.Fatalf("PlaceOrder: created=%v err=%v", ok, err)
		}
	}
	where := keysByMaster(t, rdb, prefix)
	inv := map[string]bool{}
	orderMasters := map[string]int{}
	var orderKeys int
	for k, addr := range where {
		switch {
		case strings.Contains(k, "{inv}"):
			inv[addr] = true
		case strings.HasPrefix(k, prefix+"order:"):
			orderKeys++
			orderMasters[addr]++
		}
	}
	if len(inv) != 1 {
		t.Fatalf("inventory keys on %d masters, want 1: %v", len(inv), inv)
	}
	if orderKeys != orders {
		t.Fatalf("%d order keys found on the masters, want %d", orderKeys, orders)
	}
	offInventory := 0
	for addr, n := range orderMasters {
		if !inv[addr] {
			offInventory += n
		}
	}
	// 16 random slots over three masters: all on one happens once in 10^7
	// runs, so a failure here means keys do not spread.
	if len(orderMasters) < 2 || offInventory == 0 {
		t.Fatalf("orders on %d master(s) %v, %d off the inventory's: they do not spread", len(orderMasters), orderMasters, offInventory)
	}
}

// A paid order on Cluster cannot be committed and saved in one script: the
// one-step commit declines (errStepByStep, so CommitAndSave reports ok =
// false) having changed nothing, and the worker's step-by-step way, Commit
// then a compare-and-set update, sells the stock once even when several
// settle the order at once.
func TestRedisClusterSettlesStepByStep(t *testing.T) {
	t.Parallel()
	st, _, _ := clusterStore(t)
	ctx := context.Background()
	seed(t, st, "p", 5)
	now := time.Now().Truncate(time.Millisecond)
	o, ok, err := st.PlaceOrder(ctx, newOrder("a", "u1", now), now.Add(time.Minute))
	if err != nil || !ok {
		t.Fatalf("PlaceOrder: created=%v err=%v", ok, err)
	}
	paid := *o
	paid.Status, paid.PaymentID, paid.UpdatedAt = order.StatusPaid, "pay_a", now.Add(time.Millisecond)

	// RedisStore has the one-step commit, so ok = false is errStepByStep.
	if ok, err := order.CommitAndSave(ctx, st, &paid, o.Version, o.Status); ok || err != nil {
		t.Fatalf("CommitAndSave on Cluster: ok=%v err=%v; want the step-by-step answer", ok, err)
	}
	cur, err := st.GetOrder(ctx, "a")
	if err != nil || cur.Status != order.StatusQueued || cur.Version != o.Version {
		t.Fatalf("the declined one-step commit changed the order: %+v %v", cur, err)
	}
	if sold, left := soldOf(t, st, "p"), stockOf(t, st, "p"); sold != 0 || left != 4 {
		t.Fatalf("the declined one-step commit moved stock: sold %d, left %d; want 0 and 4", sold, left)
	}
	if held, _ := st.ExpiredReservations(ctx, now.Add(2*time.Minute), 10); fmt.Sprint(held) != "[a]" {
		t.Fatalf("held reservations %v, want [a]", held)
	}

	// The worker and a webhook settle at once: each commits (idempotent)
	// and moves the order forward with compare-and-set.
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := st.Commit(ctx, "a"); err != nil {
				t.Error(err)
				return
			}
			if _, err := st.UpdateOrder(ctx, "a", func(o *order.Order) bool {
				if o.Status != order.StatusQueued {
					return false
				}
				o.Status, o.PaymentID, o.UpdatedAt = paid.Status, paid.PaymentID, paid.UpdatedAt
				return true
			}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	cur, err = st.GetOrder(ctx, "a")
	if err != nil || cur.Status != order.StatusPaid || cur.PaymentID != "pay_a" || cur.Version != o.Version+1 {
		t.Fatalf("after settling: %+v %v; want paid at version %d (one save)", cur, err, o.Version+1)
	}
	if sold, left := soldOf(t, st, "p"), stockOf(t, st, "p"); sold != 1 || left != 4 {
		t.Fatalf("after settling: sold %d, left %d; want 1 and 4", sold, left)
	}
	if held, _ := st.ExpiredReservations(ctx, now.Add(2*time.Minute), 10); len(held) != 0 {
		t.Fatalf("a committed reservation is still held: %v", held)
	}
	if err := st.Release(ctx, "a"); err != nil { // a late expiry sweep
		t.Fatal(err)
	}
	if left := stockOf(t, st, "p"); left != 4 {
		t.Fatalf("releasing a committed reservation returned stock: %d left", left)
	}
	inPaid, _ := st.OrdersInStatus(ctx, order.StatusPaid, now.Add(time.Second), 10)
	inQueued, _ := st.OrdersInStatus(ctx, order.StatusQueued, now.Add(time.Second), 10)
	if len(inPaid) != 1 || len(inQueued) != 0 {
		t.Fatalf("listings: %d paid, %d queued; want 1, 0", len(inPaid), len(inQueued))
	}
}

// Checkout on Cluster reserves first and creates the order after: a
// sold-out or unknown product stops it before any order exists, and an
// order created with its stock is found with it.
func TestRedisClusterPlaceOrderReservesThenCreates(t *testing.T) {
	t.Parallel()
	st, _, _ := clusterStore(t)
	ctx := context.Background()
	seed(t, st, "p", 2)
	now := time.Now().Truncate(time.Millisecond)
	big := newOrder("big", "u1", now)
	big.Items = one("p", 3)
	if _, _, err := st.PlaceOrder(ctx, big, now.Add(time.Minute)); !errors.Is(err, order.ErrSoldOut) {
		t.Fatalf("PlaceOrder beyond stock: %v, want ErrSoldOut", err)
	}
	odd := newOrder("odd", "u1", now)
	odd.Items = one("nope", 1)
	if _, _, err := st.PlaceOrder(ctx, odd, now.Add(time.Minute)); !errors.Is(err, order.ErrNotFound) {
		t.Fatalf("PlaceOrder of an unknown product: %v, want ErrNotFound", err)
	}
	for _, id := range []string{"big", "odd"} {
		if _, err := st.GetOrder(ctx, id); !errors.Is(err, order.ErrNotFound) {
			t.Fatalf("a refused checkout left order %s: %v", id, err)
		}
	}
	if mine, _ := st.OrdersByUser(ctx, "u1", 10); len(mine) != 0 {
		t.Fatalf("a refused checkout left %d orders in the user's history", len(mine))
	}
	if left := stockOf(t, st, "p"); left != 2 {
		t.Fatalf("a refused checkout took stock: %d left", left)
	}
	ok1, created, err := st.PlaceOrder(ctx, newOrder("fits", "u1", now), now.Add(time.Minute))
	if err != nil || !created || ok1.Version != 1 {
		t.Fatalf("PlaceOrder: %+v created=%v err=%v", ok1, created, err)
	}
	if held, _ := st.ExpiredReservations(ctx, now.Add(2*time.Minute), 10); fmt.Sprint(held) != "[fits]" {
		t.Fatalf("held reservations %v, want [fits]", held)
	}
	if mine, _ := st.OrdersByUser(ctx, "u1", 10); len(mine) != 1 || mine[0].ID != "fits" {
		t.Fatalf("user's history = %v, want [fits]", idsOf(mine))
	}
}
