package integration

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/sim"
	redisstore "github.com/paymux/paymux/store/redis"
	sqlstore "github.com/paymux/paymux/store/sql"
)

// Where the servers are, and the variables that move them.
const (
	envRedis    = "PAYMUX_REDIS_URL"
	envPostgres = "PAYMUX_POSTGRES_DSN"
	envMySQL    = "PAYMUX_MYSQL_DSN"
	envRequire  = "PAYMUX_REQUIRE_SERVICES"

	defaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	defaultMySQLDSN    = "root@tcp(127.0.0.1:3306)/test"
)

// unreachable skips the test, or fails it when the servers are required.
func unreachable(tb testing.TB, what, envVar string, err error) {
	tb.Helper()
	msg := fmt.Sprintf("%s unreachable (%v); set %s to point at a server", what, err, envVar)
	if os.Getenv(envRequire) == "1" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
}

// redisOptions returns the options of the test Redis server.
func redisOptions(tb testing.TB) *redis.Options {
	tb.Helper()
	opts := &redis.Options{Addr: "127.0.0.1:6379"}
	if u := os.Getenv(envRedis); u != "" {
		var err error
		if opts, err = redis.ParseURL(u); err != nil {
			tb.Fatalf("%s: %v", envRedis, err)
		}
	}
	opts.PoolSize = 80
	return opts
}

// redisClient connects to the test Redis server, or skips.
func redisClient(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(redisOptions(tb))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		unreachable(tb, "redis", envRedis, err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// randomName returns a fresh name with the given start, made of lower case
// letters, digits and underscores (valid as Redis prefix and SQL prefix).
func randomName(start string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return start + hex.EncodeToString(b[:])
}

// redisPrefix returns a fresh key prefix whose keys are deleted when the
// test ends.
func redisPrefix(tb testing.TB, c *redis.Client) string {
	tb.Helper()
	p := randomName("pmxit_")
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

// serverDSN returns the DSN of a SQL server dialect and its variable.
func serverDSN(d sqlstore.Dialect) (dsn, envVar string) {
	switch d {
	case sqlstore.Postgres:
		dsn, envVar = defaultPostgresDSN, envPostgres
	case sqlstore.MySQL:
		dsn, envVar = defaultMySQLDSN, envMySQL
	default:
		return "", ""
	}
	if v := os.Getenv(envVar); v != "" {
		dsn = v
	}
	return dsn, envVar
}

// sqlDB opens a SQL test database: the server's for postgres and mysql, a
// fresh file for sqlite. counter may be nil.
func sqlDB(tb testing.TB, d sqlstore.Dialect, counter *sqlstore.Counter) *sql.DB {
	tb.Helper()
	dsn, envVar := serverDSN(d)
	if d == sqlstore.SQLite {
		dsn = filepath.Join(tb.TempDir(), "paymux.db")
	}
	var db *sql.DB
	var err error
	if counter != nil {
		db, err = sqlstore.OpenCountingDB(d, dsn, counter)
	} else {
		db, err = sqlstore.OpenDB(d, dsn)
	}
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
		unreachable(tb, string(d), envVar, err)
	}
	if d != sqlstore.SQLite {
		// Other tests share the server; stay well under its limits.
		db.SetMaxOpenConns(24)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// sqlStore returns a migrated store on db with a fresh table prefix whose
// tables are dropped when the test ends.
func sqlStore(tb testing.TB, db *sql.DB, d sqlstore.Dialect) (*sqlstore.Store, string) {
	tb.Helper()
	prefix := randomName("pmxit_") + "_"
	st, err := sqlstore.New(db, sqlstore.Options{Dialect: d, TablePrefix: prefix})
	if err != nil {
		tb.Fatal(err)
	}
	if err := st.Migrate(context.Background()); err != nil {
		tb.Fatalf("Migrate: %v", err)
	}
	if d != sqlstore.SQLite {
		tb.Cleanup(func() { dropTables(tb, db, prefix) })
	}
	return st, prefix
}

func dropTables(tb testing.TB, db *sql.DB, prefix string) {
	names := []string{"idempotency", "payments", "events", "deliveries", "migrations"}
	for i, n := range names {
		names[i] = prefix + n
	}
	if _, err := db.ExecContext(context.Background(), "DROP TABLE IF EXISTS "+strings.Join(names, ", ")); err != nil {
		tb.Errorf("drop tables of %s: %v", prefix, err)
	}
}

// newRedisStore returns a Redis store with a fresh prefix on c.
func newRedisStore(tb testing.TB, c *redis.Client) *redisstore.Store {
	return redisstore.New(c, redisstore.Options{Prefix: redisPrefix(tb, c)})
}

// cardRequest is a happy-path authorisation with key.
func cardRequest(key string) paymux.PaymentRequest {
	return paymux.PaymentRequest{
		IdempotencyKey: key,
		Amount:         paymux.NewMoney(4999, "EUR"),
		Method:         paymux.PaymentMethod{Type: paymux.MethodCard, Token: sim.TokenApprove},
		Country:        "DE",
	}
}
