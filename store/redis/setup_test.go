package redisstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// client connects to the test server: PAYMUX_REDIS_URL, or 127.0.0.1:6379.
// An unreachable server skips the test, unless PAYMUX_REQUIRE_SERVICES=1.
func client(tb testing.TB) *redis.Client {
	tb.Helper()
	opts := &redis.Options{Addr: "127.0.0.1:6379"}
	if u := os.Getenv("PAYMUX_REDIS_URL"); u != "" {
		var err error
		if opts, err = redis.ParseURL(u); err != nil {
			tb.Fatalf("PAYMUX_REDIS_URL: %v", err)
		}
	}
	opts.PoolSize = 80 // the suite races 64 goroutines
	c := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		msg := "redis unreachable at " + opts.Addr + " (" + err.Error() + "); set PAYMUX_REDIS_URL to point at a server"
		if os.Getenv("PAYMUX_REQUIRE_SERVICES") == "1" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// prefix returns a random key prefix and deletes every key under it when
// the test ends, so runs never collide and leave nothing behind.
func prefix(tb testing.TB, c *redis.Client) string {
	tb.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	p := "paymuxtest-" + hex.EncodeToString(b[:])
	tb.Cleanup(func() {
		ctx := context.Background()
		for _, pattern := range []string{p + ":*", "{" + p + "}:*"} {
			iter := c.Scan(ctx, 0, pattern, 500).Iterator()
			var keys []string
			for iter.Next(ctx) {
				keys = append(keys, iter.Val())
			}
			if len(keys) > 0 {
				_ = c.Del(ctx, keys...).Err()
			}
		}
	})
	return p
}
