package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/paymux/paymux"
)

// ClaimIdempotency implements paymux.IdempotencyStore in one script.
func (s *Store) ClaimIdempotency(ctx context.Context, p paymux.ClaimParams) (*paymux.IdempotencyRecord, bool, error) {
	ttl := p.TTL
	if ttl <= 0 {
		ttl = s.opts.IdempotencyTTL
	}
	var pid string
	var snap []byte
	if p.Payment != nil {
		pid = p.Payment.ID
		var err error
		if snap, err = encodePayment(p.Payment, p.Payment.Version); err != nil {
			return nil, false, err
		}
	}
	fresh := "0"
	if p.Payment != nil && p.Payment.Version == 0 && pid != "" {
		fresh = "1"
	}
	res, err := claimScript.Run(ctx, s.once,
		[]string{s.recKey(p.Key), s.leaseKey(p.Key), s.staleKey(), s.payKey(pid)},
		p.Key, p.Fingerprint, p.Token, ms(p.Lease), ms(ttl), pid, snap, fresh,
	).Slice()
	if err != nil {
		return nil, false, err
	}
	if len(res) != 2 {
		return nil, false, fmt.Errorf("redisstore: unexpected claim reply")
	}
	claimed, _ := res[0].(int64)
	if claimed == 2 {
		return &paymux.IdempotencyRecord{Key: p.Key, Fingerprint: p.Fingerprint, State: paymux.ClaimCompleted, PaymentID: pid}, false, nil
	}
	rec, err := s.decodeRecord(p.Key, res[1])
	if err != nil {
		return nil, false, err
	}
	return rec, claimed == 1, nil
}

func (s *Store) decodeRecord(key string, reply any) (*paymux.IdempotencyRecord, error) {
	f, err := fields(reply)
	if err != nil {
		return nil, err
	}
	if len(f) == 0 {
		return nil, paymux.ErrNotFound
	}
	rec := &paymux.IdempotencyRecord{
		Key:         key,
		Fingerprint: f["fp"],
		Token:       f["tok"],
		State:       paymux.ClaimInFlight,
		PaymentID:   f["pid"],
		TakenOver:   f["to"] == "1",
		LeaseUntil:  fromMicros(f["lu"]),
		ExpiresAt:   fromMicros(f["ex"]),
		CreatedAt:   fromMicros(f["ca"]),
	}
	if f["st"] == "c" {
		rec.State = paymux.ClaimCompleted
	}
	if j := f["pay"]; j != "" {
		if rec.Payment, err = decodePayment(j); err != nil {
			return nil, err
		}
	}
	return rec, nil
}

// CheckpointIdempotency implements paymux.IdempotencyStore in one script.
func (s *Store) CheckpointIdempotency(ctx context.Context, key, token string, p *paymux.Payment, lease time.Duration) error {
	var pid string
	var snap []byte
	if p != nil {
		pid = p.ID
		var err error
		if snap, err = encodePayment(p, p.Version); err != nil {
			return err
		}
	}
	code, err := checkpointScript.Run(ctx, s.once,
		[]string{s.recKey(key), s.leaseKey(key), s.staleKey()},
		key, token, ms(lease), pid, snap,
	).Int64()
	if err != nil {
		return err
	}
	return codeErr(code)
}

// saveArgs are the ARGV of the save part of saveScript and completeScript.
func (s *Store) saveArgs(p *paymux.Payment, expected int64) ([]any, error) {
	b, err := encodePayment(p, expected+1)
	if err != nil {
		return nil, err
	}
	unsettled := "0"
	if isUnsettled(p.Status) {
		unsettled = "1"
	}
	return []any{s.tagged, p.ID, expected, expected + 1, b, p.Provider, p.ProviderRef, unsettled, micros(p.UpdatedAt)}, nil
}

func isUnsettled(st paymux.Status) bool {
	return st == paymux.StatusPending || st == paymux.StatusUnknown || st == paymux.StatusRequiresAction
}

// CompleteIdempotency implements paymux.IdempotencyStore: the payment CAS,
// its indexes and the record's completion in one script, one round trip.
func (s *Store) CompleteIdempotency(ctx context.Context, key, token string, p *paymux.Payment) error {
	args, err := s.saveArgs(p, p.Version)
	if err != nil {
		return err
	}
	args = append(args, key, token)
	code, err := completeScript.Run(ctx, s.once,
		[]string{s.recKey(key), s.leaseKey(key), s.staleKey(), s.payKey(p.ID), s.unsettledKey(), s.refKey(p.Provider, p.ProviderRef)},
		args...,
	).Int64()
	if err != nil {
		return err
	}
	if err := codeErr(code); err != nil {
		return err
	}
	p.Version++
	return nil
}

// ReleaseIdempotency implements paymux.IdempotencyStore in one script.
func (s *Store) ReleaseIdempotency(ctx context.Context, key, token string) error {
	code, err := releaseScript.Run(ctx, s.once,
		[]string{s.recKey(key), s.leaseKey(key), s.staleKey()}, key, token).Int64()
	if err != nil {
		return err
	}
	return codeErr(code)
}

// GetIdempotency implements paymux.IdempotencyStore.
func (s *Store) GetIdempotency(ctx context.Context, key string) (*paymux.IdempotencyRecord, error) {
	m, err := s.c.HGetAll(ctx, s.recKey(key)).Result()
	if err != nil {
		return nil, err
	}
	if len(m) == 0 {
		return nil, paymux.ErrNotFound
	}
	flat := make([]any, 0, 2*len(m))
	for k, v := range m {
		flat = append(flat, k, v)
	}
	return s.decodeRecord(key, flat)
}

// ListStaleClaims implements paymux.IdempotencyStore from the set of
// in-flight keys scored by lease end.
func (s *Store) ListStaleClaims(ctx context.Context, leaseEndedBefore time.Time, limit int) ([]*paymux.IdempotencyRecord, error) {
	if limit <= 0 {
		return nil, nil
	}
	res, err := listStaleScript.Run(ctx, s.c, []string{s.staleKey()},
		s.tagged, micros(leaseEndedBefore), limit).Slice()
	if err != nil {
		return nil, err
	}
	out := make([]*paymux.IdempotencyRecord, 0, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		key, _ := res[i].(string)
		rec, err := s.decodeRecord(key, res[i+1])
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}
