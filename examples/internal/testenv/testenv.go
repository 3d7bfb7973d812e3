// Package testenv connects example tests to the real servers on this machine,
// skipping (or, with PAYMUX_REQUIRE_SERVICES=1, failing) when one is down.
package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"
	_ "modernc.org/sqlite"
)

// Unavailable skips or fails the test for a missing server.
func Unavailable(t testing.TB, what, envVar string, err error) {
	t.Helper()
	skipOrFail(t, fmt.Sprintf("%s unreachable (%v); set %s to point at one", what, err, envVar))
}

func skipOrFail(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("PAYMUX_REQUIRE_SERVICES") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// PostgresDSN is the DSN the tests use.
func PostgresDSN() string {
	return env("PAYMUX_POSTGRES_DSN", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
}

// MySQLDSN is the DSN the tests use.
func MySQLDSN() string {
	return env("PAYMUX_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/test?parseTime=true&multiStatements=true")
}

// RedisURL is the URL the tests use.
func RedisURL() string { return env("PAYMUX_REDIS_URL", "redis://127.0.0.1:6379/0") }

// NATSURL is the URL the tests use.
func NATSURL() string { return env("PAYMUX_NATS_URL", "nats://127.0.0.1:4222") }

// maxTestConns bounds each test database's pool: go test runs packages in
// parallel and tests run subtests in parallel, and unbounded pools under a
// race of goroutines exhausted the servers' connection limits (PostgreSQL's
// default is 100) and failed unrelated tests.
const maxTestConns = 12

func ping(t testing.TB, db *sql.DB, what, envVar string) {
	t.Helper()
	db.SetMaxOpenConns(maxTestConns)
	db.SetMaxIdleConns(maxTestConns)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		Unavailable(t, what, envVar, err)
	}
	t.Cleanup(func() { db.Close() })
}

// Postgres opens the test database.
func Postgres(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", PostgresDSN())
	if err != nil {
		t.Fatal(err)
	}
	ping(t, db, "PostgreSQL", "PAYMUX_POSTGRES_DSN")
	return db
}

// MySQL opens the test database.
func MySQL(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", MySQLDSN())
	if err != nil {
		t.Fatal(err)
	}
	ping(t, db, "MySQL/MariaDB", "PAYMUX_MYSQL_DSN")
	return db
}

// SQLite opens a fresh database file in a temporary directory.
func SQLite(t testing.TB) *sql.DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// Redis connects to the test server.
func Redis(t testing.TB) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		Unavailable(t, "Redis", "PAYMUX_REDIS_URL", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// RedisClusterAddrs are the seed addresses of the test Redis Cluster:
// PAYMUX_REDIS_CLUSTER (comma-separated), or the three masters that
// scripts/redis-cluster.sh starts.
func RedisClusterAddrs() []string {
	return envList("PAYMUX_REDIS_CLUSTER", "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003")
}

// envList is the comma-separated list in the environment variable name, or
// def.
func envList(name, def string) []string {
	var list []string
	for _, a := range strings.Split(env(name, def), ",") {
		if a = strings.TrimSpace(a); a != "" {
			list = append(list, a)
		}
	}
	return list
}

// RedisCluster connects to the test Redis Cluster. One that is unreachable,
// not cluster_state:ok on every master, or of a single master (where keys of
// different hash tags would share a node, hiding what Cluster changes)
// skips the test, or fails it with PAYMUX_REQUIRE_SERVICES=1.
func RedisCluster(t testing.TB) *redis.ClusterClient {
	t.Helper()
	addrs := RedisClusterAddrs()
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, DialTimeout: 2 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var masters atomic.Int32
	err := c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		info, err := m.ClusterInfo(ctx).Result()
		if err == nil && !strings.Contains(info, "cluster_state:ok") {
			err = fmt.Errorf("%s: not cluster_state:ok", m.Options().Addr)
		}
		masters.Add(1)
		return err
	})
	if err == nil && masters.Load() < 2 {
		err = fmt.Errorf("%d master, the tests need at least 2", masters.Load())
	}
	if err != nil {
		c.Close()
		skipOrFail(t, fmt.Sprintf("Redis Cluster unusable at %s (%v); start it with `bash scripts/redis-cluster.sh` "+
			"or set PAYMUX_REDIS_CLUSTER to its addresses", strings.Join(addrs, ","), err))
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// DropClusterKeys deletes every key starting with prefix on every master of
// c. Keys of one node may be in different slots, which a multi-key DEL
// refuses (CROSSSLOT), so each key goes in its own UNLINK.
func DropClusterKeys(c *redis.ClusterClient, prefix string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		var keys []string
		iter := m.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil || len(keys) == 0 {
			return err
		}
		_, err := m.Pipelined(ctx, func(pl redis.Pipeliner) error {
			for _, k := range keys {
				pl.Unlink(ctx, k)
			}
			return nil
		})
		return err
	})
}

// Prefix returns a unique table or key prefix for one test.
func Prefix(name string) string {
	return fmt.Sprintf("t%s%x_", name, rand.Uint32())
}
