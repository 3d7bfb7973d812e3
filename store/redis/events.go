package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/paymux/paymux"
)

// ClaimEvent implements paymux.EventStore with SET NX PX in one script.
func (s *Store) ClaimEvent(ctx context.Context, provider, eventID string, lease time.Duration) (paymux.EventClaim, error) {
	code, err := claimEventScript.Run(ctx, s.c, []string{s.eventKey(provider, eventID)}, ms(lease)).Int64()
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

// CompleteEvent implements paymux.EventStore.
func (s *Store) CompleteEvent(ctx context.Context, provider, eventID string, ttl time.Duration) error {
	if ttl <= 0 {
		ttl = s.opts.EventTTL
	}
	return s.c.Set(ctx, s.eventKey(provider, eventID), "2", time.Duration(ms(ttl))*time.Millisecond).Err()
}

// ReleaseEvent implements paymux.EventStore. A processed event stays
// processed.
func (s *Store) ReleaseEvent(ctx context.Context, provider, eventID string) error {
	return releaseEventScript.Run(ctx, s.c, []string{s.eventKey(provider, eventID)}).Err()
}
