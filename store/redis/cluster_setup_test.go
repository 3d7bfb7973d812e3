package redisstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// defaultCluster is where scripts/redis-cluster.sh starts the test cluster.
const defaultCluster = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"

// clusterClient connects to the test Redis Cluster: PAYMUX_REDIS_CLUSTER
// (comma-separated seed addresses), or the three masters that
// scripts/redis-cluster.sh starts. A cluster that is unreachable, not
// cluster_state:ok on every master, or of one master only (which could not
// show keys landing on different servers) skips the test, unless
// PAYMUX_REQUIRE_SERVICES=1.
func clusterClient(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	list := os.Getenv("PAYMUX_REDIS_CLUSTER")
	if list == "" {
		list = defaultCluster
	}
	var addrs []string
	for _, a := range strings.Split(list, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:       addrs,
		PoolSize:    80, // the suite races 64 goroutines
		DialTimeout: 2 * time.Second,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := clusterHealthy(ctx, c); err != nil {
		_ = c.Close()
		msg := fmt.Sprintf("redis cluster unusable at %s (%v); start it with `bash scripts/redis-cluster.sh` "+
			"or set PAYMUX_REDIS_CLUSTER to its addresses", strings.Join(addrs, ","), err)
		if os.Getenv("PAYMUX_REQUIRE_SERVICES") == "1" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

func clusterHealthy(ctx context.Context, c *redis.ClusterClient) error {
	var masters atomic.Int32
	err := c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		info, err := m.ClusterInfo(ctx).Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("%s: not cluster_state:ok", m.Options().Addr)
		}
		masters.Add(1)
		return nil
	})
	if err != nil {
		return err
	}
	if n := masters.Load(); n < 2 {
		return fmt.Errorf("%d master, the tests need at least 2", n)
	}
	return nil
}

// clusterPrefix is prefix for a cluster: the keys under it sit on every
// master, so the cleanup scans each one.
func clusterPrefix(tb testing.TB, c *redis.ClusterClient) string {
	tb.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	p := "paymuxtest-" + hex.EncodeToString(b[:])
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := sweepCluster(ctx, c, p+":*", "{"+p+"}:*"); err != nil {
			tb.Logf("cleanup of %s: %v", p, err)
		}
	})
	return p
}

// sweepCluster deletes the keys matching the patterns on every master. Keys
// of one node may still be in different slots, which a multi-key DEL
// refuses (CROSSSLOT), so each key goes in its own UNLINK.
func sweepCluster(ctx context.Context, c *redis.ClusterClient, patterns ...string) error {
	return c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		for _, pattern := range patterns {
			var keys []string
			iter := m.Scan(ctx, 0, pattern, 500).Iterator()
			for iter.Next(ctx) {
				keys = append(keys, iter.Val())
			}
			if err := iter.Err(); err != nil {
				return err
			}
			if len(keys) == 0 {
				continue
			}
			if _, err := m.Pipelined(ctx, func(pl redis.Pipeliner) error {
				for _, k := range keys {
					pl.Unlink(ctx, k)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
}

// keysByMaster finds where the keys matching pattern really are: key ->
// address of the master that holds it, by scanning every master. Unlike
// computing slots, it would catch keys written to a node that does not own
// them.
func keysByMaster(tb testing.TB, c *redis.ClusterClient, pattern string) map[string]string {
	tb.Helper()
	var mu sync.Mutex
	where := map[string]string{}
	err := c.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
		iter := m.Scan(ctx, 0, pattern, 500).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			where[iter.Val()] = m.Options().Addr
			mu.Unlock()
		}
		return iter.Err()
	})
	if err != nil {
		tb.Fatal(err)
	}
	return where
}

// masterOf returns the address of the master that owns key's slot.
func masterOf(tb testing.TB, c *redis.ClusterClient, key string) string {
	tb.Helper()
	m, err := c.MasterForKey(context.Background(), key)
	if err != nil {
		tb.Fatal(err)
	}
	return m.Options().Addr
}
