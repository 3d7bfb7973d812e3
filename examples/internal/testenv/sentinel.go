package testenv

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelLockPath keeps the users of the test Sentinel setup in different
// packages apart: store/redis's failover test moves the master and takes
// it exclusively; everyone else takes it shared.
const SentinelLockPath = "paymux-redis-sentinel.lock" // in os.TempDir()

// RedisSentinelURL is go-redis's failover URL of the test Sentinel setup:
// PAYMUX_REDIS_SENTINELS (comma-separated sentinel addresses), or the three
// scripts/redis-sentinel.sh starts, watching master "paymux".
func RedisSentinelURL() string {
	addrs := envList("PAYMUX_REDIS_SENTINELS", "127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381")
	q := url.Values{"master_name": {"paymux"}, "addr": addrs[1:]}
	return "redis://" + addrs[0] + "?" + q.Encode()
}

// RedisSentinel checks that the test Sentinel setup answers and holds it
// (shared) until the test ends, so that no failover moves its master
// meanwhile. A setup that does not answer skips the test, or fails it with
// PAYMUX_REQUIRE_SERVICES=1.
func RedisSentinel(t testing.TB) {
	t.Helper()
	opt, err := redis.ParseFailoverURL(RedisSentinelURL())
	if err != nil {
		t.Fatal(err)
	}
	opt.DialTimeout = 2 * time.Second
	holdSentinel(t)
	c := redis.NewFailoverClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		skipOrFail(t, fmt.Sprintf("Redis Sentinel setup unusable at %s (%v); start it with `bash scripts/redis-sentinel.sh` "+
			"or set PAYMUX_REDIS_SENTINELS to its sentinels", RedisSentinelURL(), err))
	}
}
