package sqlstore_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/paymux/paymux/store/sql"
)

// dialects are the databases every shared test runs against.
var dialects = []sqlstore.Dialect{sqlstore.Postgres, sqlstore.MySQL, sqlstore.SQLite}

// server says where a dialect's test database is and which variable moves it.
func server(d sqlstore.Dialect) (dsn, envVar string) {
	switch d {
	case sqlstore.Postgres:
		dsn, envVar = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PAYMUX_POSTGRES_DSN"
	case sqlstore.MySQL:
		dsn, envVar = "root@tcp(127.0.0.1:3306)/test", "PAYMUX_MYSQL_DSN"
	default:
		return "", ""
	}
	if v := os.Getenv(envVar); v != "" {
		dsn = v
	}
	return dsn, envVar
}

// openServerDB opens the shared test database of a server dialect, or
// skips (fails under PAYMUX_REQUIRE_SERVICES=1) when it does not answer.
// counter may be nil.
func openServerDB(t testing.TB, d sqlstore.Dialect, counter *sqlstore.Counter) *sql.DB {
	t.Helper()
	dsn, envVar := server(d)
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
			db.Close()
		}
		if os.Getenv("PAYMUX_REQUIRE_SERVICES") == "1" {
			t.Fatalf("%s unreachable: %v (set %s to point at another server)", d, err, envVar)
		}
		t.Skipf("%s unreachable: %v; set %s to point at another server", d, err, envVar)
	}
	// Enough for the 64-goroutine races of two parallel subtests, well
	// under the servers' default connection limits.
	db.SetMaxOpenConns(24)
	t.Cleanup(func() { db.Close() })
	return db
}

func randomPrefix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "paymux_t" + hex.EncodeToString(b[:]) + "_"
}

// harness makes isolated, migrated stores of one dialect: on the servers a
// fresh table prefix per store, dropped afterwards; on SQLite a fresh file.
type harness struct {
	dialect sqlstore.Dialect
	db      *sql.DB // shared by the server dialects
	counter *sqlstore.Counter
}

func newHarness(t testing.TB, d sqlstore.Dialect, counter *sqlstore.Counter) *harness {
	h := &harness{dialect: d, counter: counter}
	if d != sqlstore.SQLite {
		h.db = openServerDB(t, d, counter)
	}
	return h
}

// store returns a migrated store with its own tables.
func (h *harness) store(t testing.TB, opts sqlstore.Options) *sqlstore.Store {
	t.Helper()
	db := h.db
	if db == nil {
		var err error
		dsn := filepath.Join(t.TempDir(), "paymux.db")
		if h.counter != nil {
			db, err = sqlstore.OpenCountingDB(sqlstore.SQLite, dsn, h.counter)
		} else {
			db, err = sqlstore.OpenDB(sqlstore.SQLite, dsn)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
	}
	opts.Dialect = h.dialect
	if opts.TablePrefix == "" {
		opts.TablePrefix = randomPrefix()
	}
	st, err := sqlstore.New(db, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if h.db != nil {
		p := opts.TablePrefix
		t.Cleanup(func() {
			_, err := db.ExecContext(context.Background(), "DROP TABLE IF EXISTS "+p+"idempotency, "+p+"payments, "+p+"events, "+p+"deliveries, "+p+"migrations")
			if err != nil {
				t.Errorf("drop tables of %s: %v", p, err)
			}
		})
	}
	return st
}
