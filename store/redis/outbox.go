package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/paymux/paymux"
)

// A delivery is a hash: "j" holds the JSON of the parts that never change
// (id, event, payment id, created at); the fields the dispatcher changes are
// kept apart so scripts can update them without decoding JSON. Times are
// nanoseconds as decimal strings, so they round-trip exactly.

func nanos(t time.Time) string { return strconv.FormatInt(t.UnixNano(), 10) }

// enqueueArgs are the ARGV of enqueueScript for d.
func enqueueArgs(d *paymux.Delivery) ([]any, error) {
	c := *d
	if c.CreatedAt.IsZero() {
		c.CreatedAt = time.Now()
	}
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("redisstore: encode delivery: %w", err)
	}
	return []any{d.ID, b, string(paymux.DeliveryPending), d.Attempts, nanos(d.NextAttemptAt), d.LastError, micros(d.NextAttemptAt)}, nil
}

// EnqueueDelivery implements paymux.OutboxStore.
func (s *Store) EnqueueDelivery(ctx context.Context, d *paymux.Delivery) error {
	args, err := enqueueArgs(d)
	if err != nil {
		return err
	}
	return enqueueScript.Run(ctx, s.once, []string{s.deliveryKey(d.ID), s.dueKey()}, args...).Err()
}

// CompleteEventWithDelivery implements paymux.EventCompleter.
//
// On a *redis.Client (a single server, or Sentinel) it is one script that
// enqueues d and then marks the event: one round trip, atomic. Event keys
// are untagged (they spread over a Cluster) while the outbox sits in the
// store's hash-tag slot, and a Cluster refuses a script whose keys span
// slots; so on any other client (Cluster, Ring) the delivery is enqueued
// first and the event marked after it, in two round trips, as a caller
// without this method would: an error between them leaves the event
// unmarked, never marked without its delivery.
func (s *Store) CompleteEventWithDelivery(ctx context.Context, provider, eventID string, ttl time.Duration, d *paymux.Delivery) error {
	if ttl <= 0 {
		ttl = s.opts.EventTTL
	}
	if !s.oneServer() {
		if err := s.EnqueueDelivery(ctx, d); err != nil {
			return err
		}
		return s.CompleteEvent(ctx, provider, eventID, ttl)
	}
	args, err := enqueueArgs(d)
	if err != nil {
		return err
	}
	return completeEventScript.Run(ctx, s.once,
		[]string{s.deliveryKey(d.ID), s.dueKey(), s.eventKey(provider, eventID)},
		append(args, ms(ttl))...).Err()
}

// CompletesUnchangedEvents implements paymux.UnchangedEventCompleter: on a
// single server or Sentinel, where one script may touch every key.
func (s *Store) CompletesUnchangedEvents() bool { return s.oneServer() }

// CompleteUnchangedEvent implements paymux.UnchangedEventCompleter: one
// script on a single server or Sentinel. On Cluster (or a Ring) the keys
// span slots, so it answers false and the caller goes the usual way.
func (s *Store) CompleteUnchangedEvent(ctx context.Context, provider, eventID string, ttl time.Duration, d *paymux.Delivery, paymentID string, version int64) (bool, error) {
	if !s.CompletesUnchangedEvents() {
		return false, nil
	}
	if ttl <= 0 {
		ttl = s.opts.EventTTL
	}
	args, err := enqueueArgs(d)
	if err != nil {
		return false, err
	}
	done, err := completeUnchangedEventScript.Run(ctx, s.once,
		[]string{s.deliveryKey(d.ID), s.dueKey(), s.eventKey(provider, eventID), s.payKey(paymentID)},
		append(args, ms(ttl), version)...).Int64()
	if err != nil {
		return false, err
	}
	return done == 1, nil
}

func decodeDelivery(reply any) (*paymux.Delivery, error) {
	f, err := fields(reply)
	if err != nil {
		return nil, err
	}
	if len(f) == 0 {
		return nil, paymux.ErrNotFound
	}
	return deliveryFromFields(f)
}

func deliveryFromFields(f map[string]string) (*paymux.Delivery, error) {
	var d paymux.Delivery
	if err := json.Unmarshal([]byte(f["j"]), &d); err != nil {
		return nil, fmt.Errorf("redisstore: decode delivery: %w", err)
	}
	d.State = paymux.DeliveryState(f["st"])
	d.Attempts, _ = strconv.Atoi(f["att"])
	d.LastError = f["le"]
	if n, err := strconv.ParseInt(f["nx"], 10, 64); err == nil {
		d.NextAttemptAt = time.Unix(0, n).UTC()
	}
	return &d, nil
}

// ClaimDueDeliveries implements paymux.OutboxStore in one script.
func (s *Store) ClaimDueDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*paymux.Delivery, error) {
	if limit <= 0 {
		return nil, nil
	}
	until := now.Add(lease)
	res, err := claimDueScript.Run(ctx, s.once, []string{s.dueKey()},
		s.tagged, micros(now), limit, nanos(until), micros(until)).Slice()
	if err != nil {
		return nil, err
	}
	out := make([]*paymux.Delivery, 0, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		d, err := decodeDelivery(res[i+1])
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func (s *Store) updateDelivery(ctx context.Context, id, op, lastErr string, next time.Time) error {
	code, err := deliveryUpdateScript.Run(ctx, s.once, []string{s.deliveryKey(id), s.dueKey()},
		id, op, lastErr, nanos(next), micros(next), ms(s.opts.EventTTL)).Int64()
	if err != nil {
		return err
	}
	return codeErr(code)
}

// CompleteDelivery implements paymux.OutboxStore. The entry is kept for
// EventTTL, as long as the event it carries is de-duplicated.
func (s *Store) CompleteDelivery(ctx context.Context, id string) error {
	return s.updateDelivery(ctx, id, "done", "", time.Time{})
}

// CompleteDeliveries implements paymux.DeliveryCompleter in one script.
// Every delivery key shares the store's hash tag, so it works on Cluster.
func (s *Store) CompleteDeliveries(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	keys := make([]string, 0, len(ids)+1)
	args := make([]any, 0, len(ids)+1)
	keys = append(keys, s.dueKey())
	args = append(args, ms(s.opts.EventTTL))
	for _, id := range ids {
		keys = append(keys, s.deliveryKey(id))
		args = append(args, id)
	}
	return completeDeliveriesScript.Run(ctx, s.once, keys, args...).Err()
}

// RetryDelivery implements paymux.OutboxStore.
func (s *Store) RetryDelivery(ctx context.Context, id string, next time.Time, lastErr string) error {
	return s.updateDelivery(ctx, id, "retry", lastErr, next)
}

// DeadLetterDelivery implements paymux.OutboxStore. Dead entries never
// expire: an operator must look at them.
func (s *Store) DeadLetterDelivery(ctx context.Context, id string, lastErr string) error {
	return s.updateDelivery(ctx, id, "dead", lastErr, time.Time{})
}

// GetDelivery implements paymux.OutboxStore.
func (s *Store) GetDelivery(ctx context.Context, id string) (*paymux.Delivery, error) {
	m, err := s.c.HGetAll(ctx, s.deliveryKey(id)).Result()
	if err != nil {
		return nil, err
	}
	if len(m) == 0 {
		return nil, paymux.ErrNotFound
	}
	return deliveryFromFields(m)
}
