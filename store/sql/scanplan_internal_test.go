package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paymux/paymux/internal/testplan"
)

// TestScansUseTheirPartialIndexes guards migration 0002: the recovery of
// abandoned claims, the reconciler's list, the outbox's due scan and the
// purge of delivered entries each read only the rows their partial index
// holds. A partial index serves a query only if the query's WHERE clause
// implies the index's predicate; an edit to either that breaks the match
// turns the scan into a read of the whole table, which no other test
// would notice on tables this small.
func TestScansUseTheirPartialIndexes(t *testing.T) {
	t.Parallel()
	for _, d := range []Dialect{Postgres, SQLite} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			s, conn := migratedForPlans(t, d)
			scansUsePartialIndexes(t, s, conn)
			// A claim's lookups name its key and its state: they must go by
			// the key, not scan the in-flight index, which PostgreSQL
			// preferred on young tables while that index held the key too.
			now := time.Now().UnixNano()
			lookups := []struct {
				name string
				q    query
				args []any
			}{{"heldBy", s.q.heldBy, []any{"k", "t", now}}}
			if d == Postgres {
				lookups = append(lookups, struct {
					name string
					q    query
					args []any
				}{"completePG", s.q.completePG, []any{"k", "t", now, "id", "p", "r", "authorized", now, int64(1), "{}", int64(0)}})
			}
			for _, l := range lookups {
				if plan := explain(t, conn, d, l.q, l.args); strings.Contains(plan, s.prefix+"idempotency_in_flight") {
					t.Errorf("%s scans the in-flight index:\n%s", l.name, plan)
				}
			}
		})
	}
}

// TestMigrationToPartialIndexesUpgrades takes a database at version 1,
// with its indexes, to version 2.
func TestMigrationToPartialIndexesUpgrades(t *testing.T) {
	t.Parallel()
	for _, d := range []Dialect{Postgres, SQLite} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s, conn := migratedForPlans(t, d)
			p := s.prefix
			for _, st := range []string{
				"DROP INDEX " + p + "idempotency_in_flight",
				"DROP INDEX " + p + "payments_unsettled",
				"DROP INDEX " + p + "deliveries_pending",
				"DROP INDEX " + p + "deliveries_delivered",
				"CREATE INDEX " + p + "idempotency_lease ON " + p + "idempotency (state, lease_until)",
				"CREATE INDEX " + p + "payments_status ON " + p + "payments (status, updated_at)",
				"CREATE INDEX " + p + "deliveries_due ON " + p + "deliveries (state, next_attempt_at)",
				"DELETE FROM " + p + "migrations WHERE version = 2",
			} {
				if _, err := conn.ExecContext(ctx, st); err != nil {
					t.Fatalf("back to version 1: %s: %v", st, err)
				}
			}
			if d == Postgres {
				// An operator may build one beforehand, without blocking
				// writes (the migration file says how).
				st := "CREATE INDEX CONCURRENTLY " + p + "payments_unsettled ON " + p + "payments (updated_at, id) WHERE status IN ('pending', 'unknown', 'requires_action')"
				if _, err := conn.ExecContext(ctx, st); err != nil {
					t.Fatalf("%s: %v", st, err)
				}
			}
			if err := s.Migrate(ctx); err != nil {
				t.Fatalf("Migrate from version 1: %v", err)
			}
			scansUsePartialIndexes(t, s, conn)
			var old int
			q := "SELECT count(*) FROM pg_indexes WHERE indexname IN ($1, $2, $3)"
			if d == SQLite {
				q = "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN (?, ?, ?)"
			}
			if err := conn.QueryRowContext(ctx, q, p+"idempotency_lease", p+"payments_status", p+"deliveries_due").Scan(&old); err != nil {
				t.Fatal(err)
			}
			if old != 0 {
				t.Errorf("%d of version 1's indexes are still there", old)
			}
		})
	}
}

// scansUsePartialIndexes checks the plan of each scan that migration 0002
// gave a partial index.
func scansUsePartialIndexes(t *testing.T, s *Store, conn *sql.Conn) {
	t.Helper()
	now := time.Now().UnixNano()
	for _, scan := range []struct {
		index string
		q     query
		args  []any
	}{
		{"idempotency_in_flight", s.q.listStale, []any{now, now, 10}},
		{"payments_unsettled", s.q.unsettled, []any{now, 10}},
		{"deliveries_pending", s.q.deliveryDue, []any{now, 10}},
		{"deliveries_delivered", s.q.purgeDeliveries, []any{now}},
	} {
		plan := explain(t, conn, s.dialect, scan.q, scan.args)
		if !strings.Contains(plan, s.prefix+scan.index) {
			t.Errorf("the scan of %s does not use it:\n%s\n%s", scan.index, scan.q.text, plan)
		}
	}
}

// explain returns the plan of q with args, one line a row.
func explain(t *testing.T, conn *sql.Conn, d Dialect, q query, args []any) string {
	t.Helper()
	prefix := "EXPLAIN "
	if d == SQLite {
		prefix = "EXPLAIN QUERY PLAN "
	}
	return testplan.Explain(t, conn, prefix, q.text, q.args(args)...)
}

// migratedForPlans returns a migrated store with tables of its own and a
// connection to its database on which PostgreSQL avoids sequential scans
// wherever it can (its tables are empty, so it would prefer them).
func migratedForPlans(t *testing.T, d Dialect) (*Store, *sql.Conn) {
	t.Helper()
	ctx := context.Background()
	var db *sql.DB
	var err error
	if d == Postgres {
		dsn := "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
		if v := os.Getenv("PAYMUX_POSTGRES_DSN"); v != "" {
			dsn = v
		}
		db, err = OpenDB(d, dsn)
		if err == nil {
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			err = db.PingContext(pctx)
			cancel()
		}
		if err != nil {
			if os.Getenv("PAYMUX_REQUIRE_SERVICES") == "1" {
				t.Fatalf("postgres unreachable: %v (set PAYMUX_POSTGRES_DSN to point at another server)", err)
			}
			t.Skipf("postgres unreachable: %v; set PAYMUX_POSTGRES_DSN to point at another server", err)
		}
	} else {
		db, err = OpenDB(d, filepath.Join(t.TempDir(), "plans.db"))
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { db.Close() })
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "paymux_p" + hex.EncodeToString(b[:]) + "_"
	s, err := New(db, Options{Dialect: d, TablePrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if d == Postgres {
		t.Cleanup(func() {
			_, err := db.ExecContext(context.Background(), "DROP TABLE IF EXISTS "+prefix+"idempotency, "+prefix+"payments, "+prefix+"events, "+prefix+"deliveries, "+prefix+"migrations")
			if err != nil {
				t.Errorf("drop tables of %s: %v", prefix, err)
			}
		})
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if d == Postgres {
		if _, err := conn.ExecContext(ctx, "SET enable_seqscan = off"); err != nil {
			t.Fatal(err)
		}
	}
	return s, conn
}
