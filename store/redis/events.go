package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/paymux/paymux"
)

// ClaimEvent implements paymux.EventStore with SET NX PX in one script.
func (s *Store) ClaimEvent(ctx context.Context, provider, eventID string, lease time.Duration) (paymux.EventClaim, error) {
	code, err := claimEventScript.Run(ctx, s.once, []string{s.eventKey(provider, eventID)}, ms(lease)).Int64()
	if err != nil {
		return 0, err
	}
	switch code {
	case 0:
		return paymux.EventClaimed, nil
	case 1:
		return paymux.EventDuplicate, nil
	case 2:
		return paymux.EventBusy, nil
	}
	return 0, fmt.Errorf("redisstore: unexpected event claim result %d", code)
}

// ClaimEventForPayment implements paymux.EventPaymentClaimer: on one
// server, the claim and the payment's lookup by reference are one script.
// On Cluster (or a Ring) the event key and the reference index may live on
// different servers, so it claims only and leaves the payment to the
// caller.
func (s *Store) ClaimEventForPayment(ctx context.Context, provider, eventID string, lease time.Duration, providerRef string) (paymux.EventClaim, *paymux.Payment, error) {
	if !s.oneServer() || providerRef == "" {
		claim, err := s.ClaimEvent(ctx, provider, eventID, lease)
		return claim, nil, err
	}
	reply, err := claimEventForPaymentScript.Run(ctx, s.once,
		[]string{s.eventKey(provider, eventID), s.refKey(provider, providerRef)}, ms(lease), s.tagged).Slice()
	if err != nil {
		return 0, nil, err
	}
	if len(reply) == 0 {
		return 0, nil, fmt.Errorf("redisstore: empty event claim reply")
	}
	code, ok := reply[0].(int64)
	if !ok {
		return 0, nil, fmt.Errorf("redisstore: unexpected event claim reply %v", reply[0])
	}
	switch code {
	case 1:
		return paymux.EventDuplicate, nil, nil
	case 2:
		return paymux.EventBusy, nil, nil
	case 0:
	default:
		return 0, nil, fmt.Errorf("redisstore: unexpected event claim result %d", code)
	}
	var j string
	if len(reply) > 1 {
		j, _ = reply[1].(string)
	}
	if j == "" {
		return paymux.EventClaimed, nil, nil // no such payment (yet)
	}
	p, err := decodePayment(j)
	if err != nil || p.Provider != provider || p.ProviderRef != providerRef {
		return paymux.EventClaimed, nil, nil // the caller's own lookup decides
	}
	return paymux.EventClaimed, p, nil
}

// CompleteEvent implements paymux.EventStore.
func (s *Store) CompleteEvent(ctx context.Context, provider, eventID string, ttl time.Duration) error {
	if ttl <= 0 {
		ttl = s.opts.EventTTL
	}
	return s.once.write(ctx, []any{"set", s.eventKey(provider, eventID), "2", "px", ms(ttl)}, 1).Err()
}

// ReleaseEvent implements paymux.EventStore. A processed event stays
// processed.
func (s *Store) ReleaseEvent(ctx context.Context, provider, eventID string) error {
	return releaseEventScript.Run(ctx, s.once, []string{s.eventKey(provider, eventID)}).Err()
}
