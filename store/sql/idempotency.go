package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/paymux/paymux"
)

// maxClaimRounds bounds how often a claim starts over when the record it
// was looking at changed under it (released, expired, taken over) between
// two of its statements. Each round means another request made progress,
// so a few rounds always settle.
const maxClaimRounds = 8

// ClaimIdempotency implements paymux.IdempotencyStore. A fresh claim costs
// one statement (insert-if-absent); a duplicate or a takeover costs three
// (the insert, a conditional update, a read).
func (s *Store) ClaimIdempotency(ctx context.Context, p paymux.ClaimParams) (*paymux.IdempotencyRecord, bool, error) {
	ctx = s.shareCommits(ctx)
	if err := s.checkClaim(p); err != nil {
		return nil, false, err
	}
	ttl := p.TTL
	if ttl <= 0 {
		ttl = s.idemTTL
	}
	var paymentID string
	var snapshot any
	if p.Payment != nil {
		paymentID = p.Payment.ID
		b, err := json.Marshal(p.Payment)
		if err != nil {
			return nil, false, fmt.Errorf("sqlstore: encode payment: %w", err)
		}
		snapshot = string(b)
	}
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return nil, false, err
	}
	defer unlock()

	newPayment := ""
	if p.Payment != nil && p.Payment.Version == 0 {
		newPayment = paymentID
	}
	replay := &paymux.IdempotencyRecord{Key: p.Key, Fingerprint: p.Fingerprint, State: paymux.ClaimCompleted, PaymentID: paymentID}
	for range maxClaimRounds {
		now := s.now()
		nowN := nanos(now)
		leaseN := nanos(now.Add(p.Lease))
		expN := nanos(now.Add(ttl))
		args := []any{p.Key, p.Fingerprint, p.Token, paymentID, snapshot, leaseN, expN, nowN, newPayment}

		n, err := s.affected(ctx, s.q.claimInsert, args...)
		if err != nil {
			return nil, false, fmt.Errorf("sqlstore: claim %q: %w", p.Key, err)
		}
		if n == 0 && newPayment != "" {
			// Off the happy path: was it the key or the payment that exists?
			var one int
			err := s.db.QueryRowContext(ctx, s.q.paymentExists.text, s.q.paymentExists.args([]any{newPayment})...).Scan(&one)
			if err == nil {
				return replay, false, nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return nil, false, fmt.Errorf("sqlstore: claim %q: %w", p.Key, err)
			}
		}
		if n == 1 {
			return &paymux.IdempotencyRecord{
				Key:         p.Key,
				Fingerprint: p.Fingerprint,
				Token:       p.Token,
				State:       paymux.ClaimInFlight,
				PaymentID:   paymentID,
				Payment:     p.Payment.Clone(),
				LeaseUntil:  fromNanos(leaseN),
				ExpiresAt:   fromNanos(expN),
				CreatedAt:   fromNanos(nowN),
			}, true, nil
		}

		// A record exists: re-take it if it expired or its lease ended.
		n, err = s.affected(ctx, s.q.claimRetake, args[:8]...)
		if err != nil {
			return nil, false, fmt.Errorf("sqlstore: claim %q: %w", p.Key, err)
		}
		rec, err := s.selectRecord(ctx, s.q.claimSelect, p.Key)
		if errors.Is(err, paymux.ErrNotFound) {
			continue // released or purged since the insert: start over
		}
		if err != nil {
			return nil, false, fmt.Errorf("sqlstore: claim %q: %w", p.Key, err)
		}
		if rec.Token == p.Token && n > 0 {
			return rec, true, nil
		}
		// Someone else holds it. If their claim is one we could take, it
		// changed between our statements; look again.
		if reached(nowN, rec.ExpiresAt) || (rec.State == paymux.ClaimInFlight && reached(nowN, rec.LeaseUntil) && rec.Fingerprint == p.Fingerprint) {
			continue
		}
		return rec, false, nil
	}
	return nil, false, fmt.Errorf("sqlstore: claim %q: the record kept changing; giving up after %d rounds", p.Key, maxClaimRounds)
}

// reached reports whether the instant now (nanoseconds) is at or past t.
func reached(now int64, t time.Time) bool { return now >= nanos(t) }

func (s *Store) checkClaim(p paymux.ClaimParams) error {
	if p.Key == "" || p.Token == "" {
		return errors.New("sqlstore: claim needs a key and a token")
	}
	if err := checkLen("idempotency key", p.Key, maxKeyLen); err != nil {
		return err
	}
	if err := checkLen("fingerprint", p.Fingerprint, maxIDLen); err != nil {
		return err
	}
	if err := checkLen("token", p.Token, maxIDLen); err != nil {
		return err
	}
	if p.Payment != nil {
		return checkPayment(p.Payment)
	}
	return nil
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

func scanRecord(sc scanner) (*paymux.IdempotencyRecord, error) {
	var (
		r                     paymux.IdempotencyRecord
		state                 string
		payment               sql.NullString
		takenOver             int64
		lease, expiry, create int64
	)
	if err := sc.Scan(&r.Key, &r.Fingerprint, &r.Token, &state, &r.PaymentID, &payment, &takenOver, &lease, &expiry, &create); err != nil {
		return nil, err
	}
	r.State = paymux.ClaimState(state)
	r.TakenOver = takenOver != 0
	r.LeaseUntil, r.ExpiresAt, r.CreatedAt = fromNanos(lease), fromNanos(expiry), fromNanos(create)
	if payment.Valid {
		r.Payment = new(paymux.Payment)
		if err := json.Unmarshal([]byte(payment.String), r.Payment); err != nil {
			return nil, fmt.Errorf("decode snapshot of %q: %w", r.Key, err)
		}
	}
	return &r, nil
}

func (s *Store) selectRecord(ctx context.Context, q query, a ...any) (*paymux.IdempotencyRecord, error) {
	rec, err := scanRecord(s.db.QueryRowContext(ctx, q.text, q.args(a)...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, paymux.ErrNotFound
	}
	return rec, err
}

// held reports whether token holds the in-flight record key. It settles an
// UPDATE that matched no row by its affected count: MySQL counts only rows
// whose values changed, so a write that changed nothing looks the same as a
// lost claim.
func (s *Store) held(ctx context.Context, key, token string) (bool, error) {
	var one int
	err := s.db.QueryRowContext(ctx, s.q.heldBy.text, s.q.heldBy.args([]any{key, token, nanos(s.now())})...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// CheckpointIdempotency implements paymux.IdempotencyStore.
func (s *Store) CheckpointIdempotency(ctx context.Context, key, token string, p *paymux.Payment, lease time.Duration) error {
	ctx = s.shareCommits(ctx)
	var paymentID string
	var snapshot any
	if p != nil {
		if err := checkPayment(p); err != nil {
			return err
		}
		paymentID = p.ID
		b, err := json.Marshal(p)
		if err != nil {
			return fmt.Errorf("sqlstore: encode payment: %w", err)
		}
		snapshot = string(b)
	}
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	now := s.now()
	n, err := s.affected(ctx, s.q.checkpoint, key, token, snapshot, paymentID, nanos(now.Add(lease)), nanos(now))
	if err != nil {
		return fmt.Errorf("sqlstore: checkpoint %q: %w", key, err)
	}
	if n > 0 {
		return nil
	}
	ok, err := s.held(ctx, key, token)
	if err != nil {
		return fmt.Errorf("sqlstore: checkpoint %q: %w", key, err)
	}
	if !ok {
		return paymux.ErrClaimLost
	}
	return nil
}

// CompleteIdempotency implements paymux.IdempotencyStore. On PostgreSQL it
// is one statement; on MySQL and SQLite a transaction of two.
func (s *Store) CompleteIdempotency(ctx context.Context, key, token string, p *paymux.Payment) error {
	ctx = s.shareCommits(ctx)
	if p == nil {
		return errors.New("sqlstore: complete needs a payment")
	}
	row, err := s.paymentRow(p, p.Version)
	if err != nil {
		return err
	}
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	nowN := nanos(s.now())

	if s.dialect == Postgres {
		var held, done bool
		args := s.q.completePG.args([]any{key, token, nowN, row.id, row.provider, row.ref, row.status, row.updated, row.version, row.data, p.Version})
		for attempt := 1; ; attempt++ {
			err = s.db.QueryRowContext(ctx, s.q.completePG.text, args...).Scan(&held, &done)
			if err == nil || attempt == maxAttempts || !Retryable(err) {
				break
			}
		}
		switch {
		case err != nil:
			return fmt.Errorf("sqlstore: complete %q: %w", key, err)
		case !held:
			return paymux.ErrClaimLost
		case !done:
			return paymux.ErrVersionConflict
		}
		p.Version = row.version
		return nil
	}

	err = s.inTx(ctx, func(tx execer) error {
		q := s.q.completeIdem
		res, err := tx.ExecContext(ctx, q.text, q.args([]any{key, token, row.id, row.data, nowN})...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return paymux.ErrClaimLost
		}
		return s.writePayment(ctx, tx, row, p.Version)
	})
	if errors.Is(err, paymux.ErrClaimLost) || errors.Is(err, paymux.ErrVersionConflict) {
		return err
	}
	if err != nil {
		return fmt.Errorf("sqlstore: complete %q: %w", key, err)
	}
	p.Version = row.version
	return nil
}

// ReleaseIdempotency implements paymux.IdempotencyStore.
func (s *Store) ReleaseIdempotency(ctx context.Context, key, token string) error {
	ctx = s.shareCommits(ctx)
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	n, err := s.affected(ctx, s.q.release, key, token, nanos(s.now()))
	if err != nil {
		return fmt.Errorf("sqlstore: release %q: %w", key, err)
	}
	if n == 0 {
		return paymux.ErrClaimLost
	}
	return nil
}

// GetIdempotency implements paymux.IdempotencyStore.
func (s *Store) GetIdempotency(ctx context.Context, key string) (*paymux.IdempotencyRecord, error) {
	rec, err := s.selectRecord(ctx, s.q.getIdem, key, nanos(s.now()))
	if err != nil && !errors.Is(err, paymux.ErrNotFound) {
		return nil, fmt.Errorf("sqlstore: get idempotency %q: %w", key, err)
	}
	return rec, err
}

// ListStaleClaims implements paymux.IdempotencyStore.
func (s *Store) ListStaleClaims(ctx context.Context, leaseEndedBefore time.Time, limit int) ([]*paymux.IdempotencyRecord, error) {
	if limit <= 0 {
		return nil, nil
	}
	q := s.q.listStale
	rows, err := s.db.QueryContext(ctx, q.text, q.args([]any{nanos(leaseEndedBefore), nanos(s.now()), limit})...)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list stale claims: %w", err)
	}
	defer rows.Close()
	var out []*paymux.IdempotencyRecord
	for rows.Next() {
		rec, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: list stale claims: %w", err)
		}
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: list stale claims: %w", err)
	}
	return out, nil
}
