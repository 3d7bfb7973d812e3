package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// defaultSentinels is where scripts/redis-sentinel.sh starts the sentinels
// of the test setup, and sentinelMaster the name they watch it under.
const (
	defaultSentinels = "127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381"
	sentinelMaster   = "paymux"
)

// sentinelAddrs is PAYMUX_REDIS_SENTINELS (comma-separated), or the three
// sentinels scripts/redis-sentinel.sh starts.
func sentinelAddrs() []string {
	list := os.Getenv("PAYMUX_REDIS_SENTINELS")
	if list == "" {
		list = defaultSentinels
	}
	var addrs []string
	for _, a := range strings.Split(list, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	return addrs
}

// sentinelClient connects, through the sentinels, to the master of the
// test Sentinel setup. A setup that is unreachable or not healthy (see
// sentinelHealthy) skips the test, unless PAYMUX_REQUIRE_SERVICES=1.
func sentinelClient(tb testing.TB) *redis.Client {
	tb.Helper()
	addrs := sentinelAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:    sentinelMaster,
		SentinelAddrs: addrs,
		PoolSize:      80, // the suite races 64 goroutines
		DialTimeout:   2 * time.Second,
	})
	// The sentinels first: asked directly they say what is wrong, where the
	// failover client would retry until the deadline and say only that.
	_, err := sentinelHealthy(ctx, addrs)
	if err == nil {
		err = c.Ping(ctx).Err()
	}
	if err != nil {
		_ = c.Close()
		msg := fmt.Sprintf("redis sentinel setup %q unusable at %s (%v); start it with `bash scripts/redis-sentinel.sh` "+
			"or set PAYMUX_REDIS_SENTINELS to its sentinels' addresses", sentinelMaster, strings.Join(addrs, ","), err)
		if os.Getenv("PAYMUX_REQUIRE_SERVICES") == "1" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// sentinelHealthy checks what scripts/redis-sentinel.sh waits for: every
// sentinel names the same master, which answers as a master with a replica
// connected and streaming. It returns the master's address. A test that
// forces a failover needs a replica to promote; the others would run on a
// master alone, but a setup without its replica is a broken one.
func sentinelHealthy(ctx context.Context, addrs []string) (string, error) {
	var master string
	for _, a := range addrs {
		s := redis.NewSentinelClient(&redis.Options{Addr: a, DialTimeout: 2 * time.Second, MaxRetries: -1})
		hp, err := s.GetMasterAddrByName(ctx, sentinelMaster).Result()
		_ = s.Close()
		if err != nil {
			return "", fmt.Errorf("sentinel %s: %w", a, err)
		}
		m := hp[0] + ":" + hp[1]
		if master != "" && m != master {
			return "", fmt.Errorf("sentinels disagree on the master: %s and %s", master, m)
		}
		master = m
	}
	if master == "" {
		return "", errors.New("no sentinel addresses")
	}
	m := redis.NewClient(&redis.Options{Addr: master, DialTimeout: 2 * time.Second, MaxRetries: -1})
	defer m.Close()
	info, err := replication(ctx, m)
	if err != nil {
		return "", fmt.Errorf("master %s: %w", master, err)
	}
	if info["role"] != "master" {
		return "", fmt.Errorf("master %s answers as %s", master, info["role"])
	}
	if n, _ := strconv.Atoi(info["connected_slaves"]); n < 1 {
		return "", fmt.Errorf("master %s has no replica connected", master)
	}
	// slave0:ip=...,port=...,state=online,...: connected but still in its
	// first sync counts as connected_slaves already.
	if !strings.Contains(info["slave0"], "state=online") {
		return "", fmt.Errorf("master %s: replica not online yet (%s)", master, info["slave0"])
	}
	return master, nil
}

// replication is INFO replication as a map.
func replication(ctx context.Context, c *redis.Client) (map[string]string, error) {
	s, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			out[k] = v
		}
	}
	return out, nil
}
