package order

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Handler pays one order. An error asks for a redelivery after a delay.
type Handler func(ctx context.Context, orderID string) error

// Queue sits in front of payment and absorbs a spike: checkout enqueues and
// answers "queued" at once; workers pay at the rate the providers take.
type Queue interface {
	// Publish enqueues an order id.
	Publish(ctx context.Context, orderID string) error
	// Consume runs workers until Close (then it drains what is queued and
	// returns) or until ctx ends (then the workers take no more work, finish
	// what they hold, and Consume returns). Handlers run on a context that
	// ctx's end does not cancel: a payment is never cut half-way.
	Consume(ctx context.Context, workers int, h Handler) error
	// Close stops accepting work; Consume returns once in-flight work is done.
	Close() error
	// Depth is the number of orders waiting, where the queue can tell.
	Depth() int
}

// ErrQueueClosed is returned by Publish after Close.
var ErrQueueClosed = errors.New("order: queue closed")

// retryDelay backs off redeliveries: 100 ms, 200 ms, ... up to 5 s.
func retryDelay(attempt int) time.Duration {
	d := 100 * time.Millisecond << min(attempt, 6)
	return min(d, 5*time.Second)
}

// MemoryQueue is the in-process queue: a buffered channel and a worker pool.
// What it holds at a crash is not lost: those orders are still "queued" in
// the store, and the service re-publishes them at start.
type MemoryQueue struct {
	ch       chan string
	closed   atomic.Bool
	mu       sync.RWMutex // guards sends against close
	attempts sync.Map     // order id -> int, for the backoff
	timers   sync.WaitGroup
	log      *slog.Logger
}

// NewMemoryQueue returns a queue holding up to capacity orders.
func NewMemoryQueue(capacity int, log *slog.Logger) *MemoryQueue {
	if log == nil {
		log = slog.Default()
	}
	return &MemoryQueue{ch: make(chan string, capacity), log: log}
}

func (q *MemoryQueue) Publish(ctx context.Context, orderID string) error {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed.Load() {
		return ErrQueueClosed
	}
	select {
	case q.ch <- orderID:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (q *MemoryQueue) Depth() int { return len(q.ch) }

func (q *MemoryQueue) Consume(ctx context.Context, workers int, h Handler) error {
	hctx := context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				select {
				case <-ctx.Done():
					return
				case id, ok := <-q.ch:
					if !ok {
						return
					}
					if ctx.Err() != nil {
						return // not taken: still queued in the store for the next start
					}
					q.handle(hctx, id, h)
				}
			}
		}()
	}
	wg.Wait()
	return ctx.Err()
}

func (q *MemoryQueue) handle(ctx context.Context, id string, h Handler) {
	err := h(ctx, id)
	if err == nil {
		q.attempts.Delete(id)
		return
	}
	n := 1
	if v, ok := q.attempts.Load(id); ok {
		n = v.(int) + 1
	}
	q.attempts.Store(id, n)
	if q.closed.Load() {
		return // shutting down: the store still says queued; the next start re-publishes
	}
	q.timers.Add(1)
	time.AfterFunc(retryDelay(n), func() {
		defer q.timers.Done()
		pctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := q.Publish(pctx, id); err != nil && !errors.Is(err, ErrQueueClosed) {
			q.log.Warn("order: requeue failed; recovery will pick it up", "order", id, "err", err)
		}
	})
}

func (q *MemoryQueue) Close() error {
	if q.closed.Swap(true) {
		return nil
	}
	q.mu.Lock()
	close(q.ch)
	q.mu.Unlock()
	return nil
}

// NATSQueue is the queue on NATS JetStream: a work-queue stream and a durable
// pull consumer shared by every instance. A message is acknowledged only
// after its order is settled, so a crash leaves it to be redelivered.
type NATSQueue struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	stream  string
	subject string
	cons    jetstream.Consumer
	stop    chan struct{}
	once    sync.Once
	log     *slog.Logger
}

// NATSOptions configures NewNATSQueue. Zero values: stream "PAYMUX_ORDERS",
// subject "paymux.orders.pay", consumer "payment-workers".
type NATSOptions struct {
	Stream, Subject, Consumer string
	Logger                    *slog.Logger
}

// NewNATSQueue connects to url and makes sure the stream and consumer exist.
func NewNATSQueue(ctx context.Context, url string, opts NATSOptions) (*NATSQueue, error) {
	if opts.Stream == "" {
		opts.Stream = "PAYMUX_ORDERS"
	}
	if opts.Subject == "" {
		opts.Subject = "paymux.orders.pay"
	}
	if opts.Consumer == "" {
		opts.Consumer = "payment-workers"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	nc, err := nats.Connect(url, nats.Name("paymux-shop"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("order: nats: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: opts.Stream, Subjects: []string{opts.Subject},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage,
		Duplicates: 2 * time.Minute,
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("order: jetstream stream: %w", err)
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: opts.Consumer, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: time.Minute, MaxDeliver: -1, MaxAckPending: 4096,
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("order: jetstream consumer: %w", err)
	}
	return &NATSQueue{nc: nc, js: js, stream: opts.Stream, subject: opts.Subject, cons: cons, stop: make(chan struct{}), log: opts.Logger}, nil
}

func (q *NATSQueue) Publish(ctx context.Context, orderID string) error {
	select {
	case <-q.stop:
		return ErrQueueClosed
	default:
	}
	// The message id makes a double publish (a double-click that raced)
	// one message inside JetStream's duplicate window.
	_, err := q.js.Publish(ctx, q.subject, []byte(orderID), jetstream.WithMsgID(orderID))
	return err
}

func (q *NATSQueue) Depth() int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	info, err := q.cons.Info(ctx)
	if err != nil {
		return -1
	}
	return int(info.NumPending) + info.NumAckPending
}

func (q *NATSQueue) Consume(ctx context.Context, workers int, h Handler) error {
	msgs := make(chan jetstream.Msg)
	hctx := context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range msgs {
				q.handle(hctx, m, h)
			}
		}()
	}
	defer func() {
		close(msgs)
		wg.Wait()
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-q.stop:
			return nil
		default:
		}
		batch, err := q.cons.Fetch(workers, jetstream.FetchMaxWait(500*time.Millisecond))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			q.log.Warn("order: nats fetch failed", "err", err)
			time.Sleep(200 * time.Millisecond)
			continue
		}
		for m := range batch.Messages() {
			select {
			case msgs <- m:
			case <-ctx.Done():
				_ = m.Nak() // let another instance have it now
			}
		}
	}
}

func (q *NATSQueue) handle(ctx context.Context, m jetstream.Msg, h Handler) {
	if err := h(ctx, string(m.Data())); err != nil {
		n := 1
		if md, err := m.Metadata(); err == nil {
			n = int(md.NumDelivered)
		}
		_ = m.NakWithDelay(retryDelay(n))
		return
	}
	_ = m.Ack()
}

func (q *NATSQueue) Close() error {
	q.once.Do(func() { close(q.stop) })
	return nil
}

// Disconnect closes the NATS connection; call it after Consume returned.
func (q *NATSQueue) Disconnect() { q.nc.Close() }

// DeleteStream removes the stream (tests).
func (q *NATSQueue) DeleteStream(ctx context.Context) error { return q.js.DeleteStream(ctx, q.stream) }
