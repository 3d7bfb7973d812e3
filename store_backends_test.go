package paymux_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paymux/paymux"
	redisstore "github.com/paymux/paymux/store/redis"
	sqlstore "github.com/paymux/paymux/store/sql"
)

// The webhook storm runs on every store backend, not only memory. Each
// factory gives the test a fresh, isolated store (its own key or table
// prefix, removed afterwards); a server that does not answer skips the
// subtest, or fails it under PAYMUX_REQUIRE_SERVICES=1.
func init() {
	stormStores["redis"] = backendRedis
	stormStores["postgres"] = func(tb testing.TB) paymux.Store { return backendSQL(tb, sqlstore.Postgres) }
	// MySQL and SQLite take 15 to 30 s for the storm's ~10,000 writes;
	// -short leaves them out.
	stormStores["mysql"] = func(tb testing.TB) paymux.Store { return backendSQL(tb, sqlstore.MySQL) }
	stormStores["sqlite"] = func(tb testing.TB) paymux.Store { return backendSQL(tb, sqlstore.SQLite) }
}

func backendUnreachable(tb testing.TB, what, envVar string, err error) {
	tb.Helper()
	msg := fmt.Sprintf("%s unreachable (%v); set %s to point at a server", what, err, envVar)
	if os.Getenv("PAYMUX_REQUIRE_SERVICES") == "1" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
}

func backendName() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "pmxstorm_" + hex.EncodeToString(b[:])
}

func backendRedis(tb testing.TB) paymux.Store {
	tb.Helper()
	opts := &redis.Options{Addr: "127.0.0.1:6379"}
	if u := os.Getenv("PAYMUX_REDIS_URL"); u != "" {
		var err error
		if opts, err = redis.ParseURL(u); err != nil {
			tb.Fatalf("PAYMUX_REDIS_URL: %v", err)
		}
	}
	opts.PoolSize = 64
	c := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		backendUnreachable(tb, "redis", "PAYMUX_REDIS_URL", err)
	}
	prefix := backendName()
	tb.Cleanup(func() {
		ctx := context.Background()
		for _, pattern := range []string{prefix + ":*", "{" + prefix + "}:*"} {
			iter := c.Scan(ctx, 0, pattern, 500).Iterator()
			var keys []string
			for iter.Next(ctx) {
				keys = append(keys, iter.Val())
			}
			if len(keys) > 0 {
				_ = c.Del(ctx, keys...).Err()
			}
		}
		_ = c.Close()
	})
	return redisstore.New(c, redisstore.Options{Prefix: prefix})
}

func backendSQL(tb testing.TB, d sqlstore.Dialect) paymux.Store {
	tb.Helper()
	if testing.Short() && (d == sqlstore.MySQL || d == sqlstore.SQLite) {
		tb.Skipf("the %s storm is slow; skipped in -short mode", d)
	}
	var dsn, envVar string
	switch d {
	case sqlstore.Postgres:
		dsn, envVar = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PAYMUX_POSTGRES_DSN"
	case sqlstore.MySQL:
		dsn, envVar = "root@tcp(127.0.0.1:3306)/test", "PAYMUX_MYSQL_DSN"
	case sqlstore.SQLite:
		dsn = filepath.Join(tb.TempDir(), "paymux.db")
	}
	if v := os.Getenv(envVar); envVar != "" && v != "" {
		dsn = v
	}
	db, err := sqlstore.OpenDB(d, dsn)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err = db.PingContext(ctx)
		cancel()
	}
	if err != nil {
		if db != nil {
			_ = db.Close()
		}
		if d == sqlstore.SQLite {
			tb.Fatal(err)
		}
		backendUnreachable(tb, string(d), envVar, err)
	}
	if d != sqlstore.SQLite {
		db.SetMaxOpenConns(24) // the server is shared with other tests
	}
	prefix := backendName() + "_"
	st, err := sqlstore.New(db, sqlstore.Options{Dialect: d, TablePrefix: prefix})
	if err == nil {
		err = st.Migrate(context.Background())
	}
	if err != nil {
		_ = db.Close()
		tb.Fatalf("%s store: %v", d, err)
	}
	tb.Cleanup(func() {
		if d != sqlstore.SQLite {
			backendDropTables(tb, db, prefix)
		}
		_ = db.Close()
	})
	return st
}

func backendDropTables(tb testing.TB, db *sql.DB, prefix string) {
	q := "DROP TABLE IF EXISTS "
	for i, n := range []string{"idempotency", "payments", "events", "deliveries", "migrations"} {
		if i > 0 {
			q += ", "
		}
		q += prefix + n
	}
	if _, err := db.ExecContext(context.Background(), q); err != nil {
		tb.Errorf("drop tables of %s: %v", prefix, err)
	}
}
