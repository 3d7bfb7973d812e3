package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/paymux/paymux"
)

func checkEvent(provider, eventID string) error {
	if err := checkLen("provider", provider, maxProviderLen); err != nil {
		return err
	}
	return checkLen("event id", eventID, maxEventIDLen)
}

// ClaimEvent implements paymux.EventStore. Rows hold either an in-flight
// claim (expires_at is the lease end) or a processed event (expires_at is
// the end of its TTL); either counts only until expires_at.
func (s *Store) ClaimEvent(ctx context.Context, provider, eventID string, lease time.Duration) (paymux.EventClaim, error) {
	ctx = s.shareCommits(ctx)
	if err := checkEvent(provider, eventID); err != nil {
		return 0, err
	}
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return 0, err
	}
	defer unlock()
	for range maxClaimRounds {
		now := s.now()
		nowN, until := nanos(now), nanos(now.Add(lease))
		n, err := s.affected(ctx, s.q.eventInsert, provider, eventID, until)
		if err != nil {
			return 0, fmt.Errorf("sqlstore: claim event: %w", err)
		}
		if n == 1 {
			return paymux.EventClaimed, nil
		}
		n, err = s.affected(ctx, s.q.eventRetake, provider, eventID, until, nowN)
		if err != nil {
			return 0, fmt.Errorf("sqlstore: claim event: %w", err)
		}
		if n > 0 {
			return paymux.EventClaimed, nil
		}
		var state string
		var exp int64
		q := s.q.eventSelect
		err = s.db.QueryRowContext(ctx, q.text, q.args([]any{provider, eventID})...).Scan(&state, &exp)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			continue // released since the insert
		case err != nil:
			return 0, fmt.Errorf("sqlstore: claim event: %w", err)
		case exp <= nowN:
			continue // expired since the update
		case state == stateDone:
			return paymux.EventDuplicate, nil
		default:
			return paymux.EventBusy, nil
		}
	}
	return 0, fmt.Errorf("sqlstore: claim event: the record kept changing; giving up after %d rounds", maxClaimRounds)
}

// ClaimEventForPayment implements paymux.EventPaymentClaimer. On
// PostgreSQL the usual case, a first claim, and the payment's read are one
// statement; anything else (a redelivery, an expired claim) and the other
// databases go ClaimEvent's way and leave the payment to the caller.
func (s *Store) ClaimEventForPayment(ctx context.Context, provider, eventID string, lease time.Duration, providerRef string) (paymux.EventClaim, *paymux.Payment, error) {
	if s.dialect != Postgres || providerRef == "" {
		claim, err := s.ClaimEvent(ctx, provider, eventID, lease) // marks ctx itself
		return claim, nil, err
	}
	if err := checkEvent(provider, eventID); err != nil {
		return 0, nil, err
	}
	ctx = s.shareCommits(ctx)
	q := s.q.eventClaimForPaymentPG
	var claimed int
	var version sql.NullInt64
	var data []byte
	err := s.db.QueryRowContext(ctx, q.text, q.args([]any{provider, eventID, nanos(s.now().Add(lease)), providerRef})...).Scan(&claimed, &version, &data)
	if err != nil {
		return 0, nil, fmt.Errorf("sqlstore: claim event: %w", err)
	}
	if claimed != 1 {
		claim, err := s.ClaimEvent(ctx, provider, eventID, lease)
		return claim, nil, err
	}
	if !version.Valid {
		return paymux.EventClaimed, nil, nil
	}
	p, err := decodePayment(version.Int64, data)
	if err != nil {
		// Claimed all the same: the caller's own read reports the damage.
		return paymux.EventClaimed, nil, nil
	}
	return paymux.EventClaimed, p, nil
}

// CompleteEvent implements paymux.EventStore.
func (s *Store) CompleteEvent(ctx context.Context, provider, eventID string, ttl time.Duration) error {
	ctx = s.shareCommits(ctx)
	if err := checkEvent(provider, eventID); err != nil {
		return err
	}
	if ttl <= 0 {
		ttl = s.eventTTL
	}
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := s.exec(ctx, s.q.eventComplete, provider, eventID, nanos(s.now().Add(ttl))); err != nil {
		return fmt.Errorf("sqlstore: complete event: %w", err)
	}
	return nil
}

// CompleteEventWithDelivery implements paymux.EventCompleter: on
// PostgreSQL one statement (one round trip), on MySQL and SQLite one
// transaction of the delivery insert and the event completion (one commit
// instead of two). Either both are stored or neither is.
func (s *Store) CompleteEventWithDelivery(ctx context.Context, provider, eventID string, ttl time.Duration, d *paymux.Delivery) error {
	ctx = s.shareCommits(ctx)
	if err := checkEvent(provider, eventID); err != nil {
		return err
	}
	if ttl <= 0 {
		ttl = s.eventTTL
	}
	args, err := s.deliveryArgs(d)
	if err != nil {
		return err
	}
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	expires := nanos(s.now().Add(ttl))
	if s.dialect == Postgres {
		if _, err := s.exec(ctx, s.q.eventCompletePG, append(args, provider, eventID, expires)...); err != nil {
			return fmt.Errorf("sqlstore: complete event with delivery: %w", err)
		}
		return nil
	}
	err = s.inTx(ctx, func(tx execer) error {
		q := s.q.deliveryInsert
		if _, err := tx.ExecContext(ctx, q.text, q.args(args)...); err != nil {
			return err
		}
		q = s.q.eventComplete
		_, err := tx.ExecContext(ctx, q.text, q.args([]any{provider, eventID, expires})...)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlstore: complete event with delivery: %w", err)
	}
	return nil
}

// CompletesUnchangedEvents implements paymux.UnchangedEventCompleter:
// every database can.
func (s *Store) CompletesUnchangedEvents() bool { return true }

// errNotUnchanged rolls back a CompleteUnchangedEvent transaction that
// found the event stored or the payment moved on.
var errNotUnchanged = errors.New("sqlstore: event not new or payment moved on")

// CompleteUnchangedEvent implements paymux.UnchangedEventCompleter: one
// statement on PostgreSQL; on SQLite and MySQL one transaction, the event
// inserted as processed and then its delivery, so one commit where the
// usual way takes two and a read.
func (s *Store) CompleteUnchangedEvent(ctx context.Context, provider, eventID string, ttl time.Duration, d *paymux.Delivery, paymentID string, version int64) (bool, error) {
	if err := checkEvent(provider, eventID); err != nil {
		return false, err
	}
	if ttl <= 0 {
		ttl = s.eventTTL
	}
	args, err := s.deliveryArgs(d)
	if err != nil {
		return false, err
	}
	ctx = s.shareCommits(ctx)
	expires := nanos(s.now().Add(ttl))
	if s.dialect == Postgres {
		q := s.q.eventCompleteUnchangedPG
		var done int
		args = append(args, provider, eventID, expires, paymentID, version)
		if err := s.db.QueryRowContext(ctx, q.text, q.args(args)...).Scan(&done); err != nil {
			return false, fmt.Errorf("sqlstore: complete unchanged event: %w", err)
		}
		return done == 1, nil
	}
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return false, err
	}
	defer unlock()
	err = s.inTx(ctx, func(tx execer) error {
		if s.dialect == MySQL {
			q := s.q.paymentAtForShare
			var one int
			err := tx.QueryRowContext(ctx, q.text, q.args([]any{paymentID, version})...).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return errNotUnchanged
			}
			if err != nil {
				return err
			}
		}
		q := s.q.eventDoneIfPaymentAt
		res, err := tx.ExecContext(ctx, q.text, q.args([]any{provider, eventID, expires, paymentID, version})...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return errNotUnchanged
		}
		q = s.q.deliveryInsert
		_, err = tx.ExecContext(ctx, q.text, q.args(args)...)
		return err
	})
	switch {
	case errors.Is(err, errNotUnchanged):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("sqlstore: complete unchanged event: %w", err)
	}
	return true, nil
}

// ReleaseEvent implements paymux.EventStore. A processed event stays
// processed: only an in-flight claim is forgotten.
func (s *Store) ReleaseEvent(ctx context.Context, provider, eventID string) error {
	ctx = s.shareCommits(ctx)
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := s.exec(ctx, s.q.eventRelease, provider, eventID); err != nil {
		return fmt.Errorf("sqlstore: release event: %w", err)
	}
	return nil
}
