package redisstore

import (
	"context"
	"net"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// CountingHook is a go-redis hook that counts round trips: one per command
// sent on its own and one per pipeline. A script that the server has not
// cached yet counts twice (EVALSHA, then EVAL), as it costs twice.
//
//	hook := &redisstore.CountingHook{}
//	client.AddHook(hook)
//	... // one authorisation
//	fmt.Println(hook.RoundTrips())
type CountingHook struct {
	n atomic.Int64
}

var _ redis.Hook = (*CountingHook)(nil)

// RoundTrips returns the number of round trips counted so far.
func (h *CountingHook) RoundTrips() int64 { return h.n.Load() }

// Reset sets the count back to zero.
func (h *CountingHook) Reset() { h.n.Store(0) }

// DialHook implements redis.Hook; dialling is not counted.
func (h *CountingHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return next(ctx, network, addr)
	}
}

// ProcessHook implements redis.Hook.
func (h *CountingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook implements redis.Hook.
func (h *CountingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}
