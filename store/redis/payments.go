package redisstore

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paymux/paymux"
)

// GetPayment implements paymux.PaymentStore.
func (s *Store) GetPayment(ctx context.Context, id string) (*paymux.Payment, error) {
	j, err := s.c.HGet(ctx, s.payKey(id), "j").Result()
	if isNil(err) {
		return nil, paymux.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return decodePayment(j)
}

// GetPayments implements paymux.PaymentsGetter: one HGET per id, sent as
// one pipeline, so one round trip (on Cluster too: payment keys share the
// store's hash tag, so they live on one node).
func (s *Store) GetPayments(ctx context.Context, ids []string) (map[string]*paymux.Payment, error) {
	out := make(map[string]*paymux.Payment, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	cmds := make([]*redis.StringCmd, len(ids))
	_, err := s.c.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = pipe.HGet(ctx, s.payKey(id), "j")
		}
		return nil
	})
	if err != nil && !isNil(err) {
		return nil, err
	}
	for _, cmd := range cmds {
		j, err := cmd.Result()
		if isNil(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		p, err := decodePayment(j)
		if err != nil {
			return nil, err
		}
		out[p.ID] = p
	}
	return out, nil
}

// GetPaymentByProviderRef implements paymux.PaymentStore: the index lookup
// and the payment read in one script.
func (s *Store) GetPaymentByProviderRef(ctx context.Context, provider, ref string) (*paymux.Payment, error) {
	if ref == "" {
		return nil, paymux.ErrNotFound
	}
	j, err := byRefScript.Run(ctx, s.c, []string{s.refKey(provider, ref)}, s.tagged).Text()
	if isNil(err) {
		return nil, paymux.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	p, err := decodePayment(j)
	if err != nil {
		return nil, err
	}
	if p.Provider != provider || p.ProviderRef != ref {
		return nil, paymux.ErrNotFound
	}
	return p, nil
}

// SavePayment implements paymux.PaymentStore with a compare-and-set script.
func (s *Store) SavePayment(ctx context.Context, p *paymux.Payment, expectedVersion int64) error {
	args, err := s.saveArgs(p, expectedVersion)
	if err != nil {
		return err
	}
	code, err := saveScript.Run(ctx, s.once,
		[]string{s.payKey(p.ID), s.unsettledKey(), s.refKey(p.Provider, p.ProviderRef)}, args...).Int64()
	if err != nil {
		return err
	}
	if err := codeErr(code); err != nil {
		return err
	}
	p.Version = expectedVersion + 1
	return nil
}

// ListUnsettledPayments implements paymux.PaymentStore from the unsettled
// set scored by UpdatedAt.
func (s *Store) ListUnsettledPayments(ctx context.Context, updatedBefore time.Time, limit int) ([]*paymux.Payment, error) {
	if limit <= 0 {
		return nil, nil
	}
	res, err := listUnsettledScript.Run(ctx, s.c, []string{s.unsettledKey()},
		s.tagged, micros(updatedBefore), limit).StringSlice()
	if err != nil {
		return nil, err
	}
	out := make([]*paymux.Payment, 0, len(res))
	for _, j := range res {
		p, err := decodePayment(j)
		if err != nil {
			return nil, err
		}
		// The set has microsecond scores; the contract is exact.
		if p.UpdatedAt.Before(updatedBefore) {
			out = append(out, p)
		}
	}
	return out, nil
}
