package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/paymux/paymux"
)

const (
	deliveryPending   = paymux.DeliveryPending
	deliveryDelivered = paymux.DeliveryDelivered
	deliveryDeadState = paymux.DeliveryDead
)

// deliveryArgs checks d and returns the arguments of deliveryInsert.
func (s *Store) deliveryArgs(d *paymux.Delivery) ([]any, error) {
	if d == nil || d.ID == "" {
		return nil, errors.New("sqlstore: delivery without an id")
	}
	if err := checkLen("delivery id", d.ID, maxDeliveryLen); err != nil {
		return nil, err
	}
	if err := checkLen("payment id", d.PaymentID, maxIDLen); err != nil {
		return nil, err
	}
	event, err := json.Marshal(&d.Event)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: encode event: %w", err)
	}
	now := s.now()
	created := d.CreatedAt
	if created.IsZero() {
		created = now
	}
	return []any{d.ID, d.PaymentID, d.Attempts, nanos(d.NextAttemptAt), d.LastError,
		nanos(created), string(event), nanos(now)}, nil
}

// EnqueueDelivery implements paymux.OutboxStore.
func (s *Store) EnqueueDelivery(ctx context.Context, d *paymux.Delivery) error {
	ctx = s.shareCommits(ctx)
	args, err := s.deliveryArgs(d)
	if err != nil {
		return err
	}
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := s.exec(ctx, s.q.deliveryInsert, args...); err != nil {
		return fmt.Errorf("sqlstore: enqueue delivery: %w", err)
	}
	return nil
}

// maxInList bounds the ids of one IN list; longer lists are split into
// several statements.
const maxInList = 500

// inList completes tmpl with an IN list of n placeholders numbered from
// first, and compiles it.
func (s *Store) inList(tmpl string, first, n int) query {
	var b strings.Builder
	b.WriteString(tmpl)
	b.WriteByte('(')
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$" + strconv.Itoa(first+i))
	}
	b.WriteByte(')')
	return compile(s.dialect, s.prefix, b.String())
}

// CompleteDeliveries implements paymux.DeliveryCompleter: one UPDATE ...
// WHERE id IN (...) per maxInList ids, so one round trip for a dispatcher
// batch.
func (s *Store) CompleteDeliveries(ctx context.Context, ids []string) error {
	ctx = s.shareCommits(ctx)
	if len(ids) == 0 {
		return nil
	}
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	nowN := nanos(s.now())
	for chunk := range slices.Chunk(ids, maxInList) {
		args := make([]any, 0, len(chunk)+1)
		args = append(args, nowN)
		for _, id := range chunk {
			args = append(args, id)
		}
		if _, err := s.exec(ctx, s.inList(s.q.deliveriesComplete, 2, len(chunk)), args...); err != nil {
			return fmt.Errorf("sqlstore: complete deliveries: %w", err)
		}
	}
	return nil
}

func scanDelivery(sc scanner) (*paymux.Delivery, error) {
	var (
		d             paymux.Delivery
		state         string
		next, created int64
		event         []byte
	)
	if err := sc.Scan(&d.ID, &d.PaymentID, &state, &d.Attempts, &next, &d.LastError, &created, &event); err != nil {
		return nil, err
	}
	d.State = paymux.DeliveryState(state)
	d.NextAttemptAt, d.CreatedAt = fromNanos(next), fromNanos(created)
	if err := json.Unmarshal(event, &d.Event); err != nil {
		return nil, fmt.Errorf("decode event of delivery %q: %w", d.ID, err)
	}
	return &d, nil
}

func scanDeliveries(rows *sql.Rows) ([]*paymux.Delivery, error) {
	defer rows.Close()
	var out []*paymux.Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// ClaimDueDeliveries implements paymux.OutboxStore. PostgreSQL does it in
// one statement with FOR UPDATE SKIP LOCKED; MySQL in a transaction with
// SKIP LOCKED; SQLite in a transaction holding the write lock.
func (s *Store) ClaimDueDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*paymux.Delivery, error) {
	ctx = s.shareCommits(ctx)
	if limit <= 0 {
		return nil, nil
	}
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	nowN, until, wall := nanos(now), nanos(now.Add(lease)), nanos(s.now())

	if s.dialect == Postgres {
		q := s.q.deliveryClaimPG
		var out []*paymux.Delivery
		for attempt := 1; ; attempt++ {
			var rows *sql.Rows
			rows, err = s.db.QueryContext(ctx, q.text, q.args([]any{nowN, limit, until, wall})...)
			if err == nil {
				out, err = scanDeliveries(rows)
			}
			if err == nil || attempt == maxAttempts || !Retryable(err) {
				break
			}
		}
		if err != nil {
			return nil, fmt.Errorf("sqlstore: claim deliveries: %w", err)
		}
		return out, nil
	}

	var out []*paymux.Delivery
	err = s.inTx(ctx, func(tx execer) error {
		q := s.q.deliveryDue
		rows, err := tx.QueryContext(ctx, q.text, q.args([]any{nowN, limit})...)
		if err != nil {
			return err
		}
		out, err = scanDeliveries(rows)
		if err != nil || len(out) == 0 {
			return err
		}
		// UPDATE ... WHERE id IN ($3, $4, ...): one placeholder per id.
		args := []any{until, wall}
		for _, d := range out {
			args = append(args, d.ID)
		}
		lq := s.inList(s.q.deliveryLease, 3, len(out))
		if _, err := tx.ExecContext(ctx, lq.text, lq.args(args)...); err != nil {
			return err
		}
		for _, d := range out {
			d.NextAttemptAt = fromNanos(until)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: claim deliveries: %w", err)
	}
	return out, nil
}

// updateDelivery runs an update of one entry; ErrNotFound if there is none.
func (s *Store) updateDelivery(ctx context.Context, what string, q query, a ...any) error {
	ctx = s.shareCommits(ctx)
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	n, err := s.affected(ctx, q, a...)
	if err != nil {
		return fmt.Errorf("sqlstore: %s: %w", what, err)
	}
	if n > 0 {
		return nil
	}
	// MySQL reports 0 for a row whose values did not change (completing a
	// delivered entry again); tell that apart from a missing one.
	var one int
	ex := s.q.deliveryExists
	err = s.db.QueryRowContext(ctx, ex.text, ex.args([]any{a[0]})...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return paymux.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("sqlstore: %s: %w", what, err)
	}
	return nil
}

// CompleteDelivery implements paymux.OutboxStore.
func (s *Store) CompleteDelivery(ctx context.Context, id string) error {
	return s.updateDelivery(ctx, "complete delivery", s.q.deliveryComplete, id, nanos(s.now()))
}

// RetryDelivery implements paymux.OutboxStore.
func (s *Store) RetryDelivery(ctx context.Context, id string, next time.Time, lastErr string) error {
	return s.updateDelivery(ctx, "retry delivery", s.q.deliveryRetry, id, lastErr, nanos(next), nanos(s.now()))
}

// DeadLetterDelivery implements paymux.OutboxStore.
func (s *Store) DeadLetterDelivery(ctx context.Context, id string, lastErr string) error {
	return s.updateDelivery(ctx, "dead-letter delivery", s.q.deliveryDead, id, lastErr, nanos(s.now()))
}

// GetDelivery implements paymux.OutboxStore.
func (s *Store) GetDelivery(ctx context.Context, id string) (*paymux.Delivery, error) {
	q := s.q.deliveryGet
	d, err := scanDelivery(s.db.QueryRowContext(ctx, q.text, q.args([]any{id})...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, paymux.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get delivery: %w", err)
	}
	return d, nil
}
