package order_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paymux/paymux/examples/internal/testenv"
	"github.com/paymux/paymux/examples/order"
)

func natsQueue(t *testing.T) *order.NATSQueue {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	name := strings.ToUpper(strings.TrimSuffix(testenv.Prefix("Q"), "_"))
	q, err := order.NewNATSQueue(ctx, testenv.NATSURL(), order.NATSOptions{
		Stream: name, Subject: strings.ToLower(name) + ".pay", Consumer: strings.ToLower(name) + "-workers", Logger: quietLogger(),
	})
	if err != nil {
		testenv.Unavailable(t, "NATS JetStream", "PAYMUX_NATS_URL", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := q.DeleteStream(ctx); err != nil {
			t.Errorf("delete stream: %v", err)
		}
		q.Disconnect()
	})
	return q
}

// consume runs q's workers until stop, recording each delivery.
func consume(t *testing.T, q order.Queue, h order.Handler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = q.Consume(ctx, 8, h)
	}()
	return func() {
		_ = q.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cancel()
			<-done
		}
		cancel()
	}
}

func testQueueDeliversOnceAndRetries(t *testing.T, q order.Queue) {
	ctx := context.Background()
	var mu sync.Mutex
	seen := map[string]int{}
	h := func(_ context.Context, id string) error {
		mu.Lock()
		defer mu.Unlock()
		seen[id]++
		if id == "flaky" && seen[id] == 1 {
			return errors.New("provider busy") // asks for a redelivery
		}
		return nil
	}
	stop := consume(t, q, h)
	const n = 100
	for i := 0; i < n; i++ {
		if err := q.Publish(ctx, fmt.Sprint("o", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Publish(ctx, "flaky"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		got, flaky := len(seen), seen["flaky"]
		mu.Unlock()
		if got == n+1 && flaky >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivered %d of %d orders; flaky delivered %d times", got, n+1, flaky)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // room for a wrong extra delivery to show
	stop()
	mu.Lock()
	defer mu.Unlock()
	for id, c := range seen {
		if id != "flaky" && c != 1 {
			t.Errorf("%s delivered %d times", id, c)
		}
	}
	if seen["flaky"] != 2 {
		t.Errorf("flaky delivered %d times, want 2 (one failure, one redelivery)", seen["flaky"])
	}
	if err := q.Publish(ctx, "late"); !errors.Is(err, order.ErrQueueClosed) {
		t.Errorf("publish after close: %v", err)
	}
}

func TestNATSQueue(t *testing.T) {
	t.Parallel()
	testQueueDeliversOnceAndRetries(t, natsQueue(t))
}

func TestMemoryQueue(t *testing.T) {
	t.Parallel()
	testQueueDeliversOnceAndRetries(t, order.NewMemoryQueue(1000, quietLogger()))
}

func TestNATSQueueDedupesDoublePublish(t *testing.T) {
	t.Parallel()
	q := natsQueue(t)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if err := q.Publish(ctx, "double-click"); err != nil {
			t.Fatal(err)
		}
	}
	if d := q.Depth(); d != 1 {
		t.Fatalf("depth %d after publishing one order thrice, want 1", d)
	}
}

// TestNATSShopEndToEnd runs the whole platform on the JetStream queue.
func TestNATSShopEndToEnd(t *testing.T) {
	t.Parallel()
	natsQueue(t) // skips when NATS is down
	s := setup(t, appConfigNATS(t))
	b := s.buyer(t, "/")
	b.add("nova-sneaker", 1)
	_, r := b.checkout("sim_ok", "k")
	b.waitStatus(r.Order.ID, order.StatusPaid)
}
