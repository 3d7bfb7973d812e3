package sqlstore_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/paymux/paymux/internal/testplan"
	"github.com/paymux/paymux/store/sql"
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
	for _, d := range []sqlstore.Dialect{sqlstore.Postgres, sqlstore.SQLite} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			pl := migratedForPlans(t, d)
			pl.scansUsePartialIndexes(t)
			// A claim's lookups name its key and its state: they must go by
			// the key, not scan the in-flight index, which PostgreSQL
			// preferred on young tables while that index held the key too.
			now := time.Now().UnixNano()
			lookups := map[string][]any{"heldBy": {"k", "t", now}}
			if d == sqlstore.Postgres {
				lookups["completePG"] = []any{"k", "t", now, "id", "p", "r", "authorized", now, int64(1), "{}", int64(0)}
			}
			for name, args := range lookups {
				testplan.CheckIndexes(t, name, pl.explain(t, name, args), pl.prefix, "", "idempotency_in_flight")
			}
		})
	}
}

// TestSharedCommitPlansForAnyValueUseIndexes guards planOnce: the
// shared-commit connections run one plan of each statement, made for any
// values of its parameters. Each statement that runs there must still find
// its rows by their key, and the outbox's claim must still read its partial
// index, which a plan for any value can use only because the state is
// written into the statement.
func TestSharedCommitPlansForAnyValueUseIndexes(t *testing.T) {
	t.Parallel()
	pl := migratedForPlans(t, sqlstore.Postgres)
	now := time.Now().UnixNano()
	delivery := []any{"d", "id", 0, now, "", now, "{}", now}
	for _, st := range []struct {
		name      string
		args      []any
		want, not string // an index the plan must name, one it must not
	}{
		{"claimInsert", []any{"k", "f", "t", "id", "{}", now, now, now, "id"}, "", ""},
		{"claimRetake", []any{"k", "f", "t", "id", "{}", now, now, now}, "", "idempotency_in_flight"},
		{"checkpoint", []any{"k", "t", "{}", "id", now, now}, "", "idempotency_in_flight"},
		{"release", []any{"k", "t", now}, "", "idempotency_in_flight"},
		{"completePG", []any{"k", "t", now, "id", "p", "r", "authorized", now, 1, "{}", 0}, "", "idempotency_in_flight"},
		{"paymentUpdate", []any{"id", "p", "r", "captured", now, 2, "{}", 1}, "", ""},
		{"eventClaimForPaymentPG", []any{"p", "ev", now, "r"}, "", ""},
		{"eventCompletePG", append(delivery, "p", "ev", now), "", ""},
		{"eventCompleteUnchangedPG", append(delivery, "p", "ev", now, "id", 1), "", ""},
		{"deliveryInsert", delivery, "", ""},
		{"deliveryClaimPG", []any{now, 10, now, now}, "deliveries_pending", ""},
		{"deliveryComplete", []any{"d", now}, "", ""},
		{"deliveryRetry", []any{"d", "error", now, now}, "", ""},
	} {
		text, args := pl.s.Statement(st.name, st.args...)
		plan := testplan.ExplainGeneric(t, pl.conn, text, args...)
		testplan.CheckNoWholeTableRead(t, st.name, plan)
		testplan.CheckIndexes(t, st.name, plan, pl.prefix, st.want, st.not)
	}
}

// TestMigrationToPartialIndexesUpgrades takes a database at version 1,
// with its indexes, to version 2.
func TestMigrationToPartialIndexesUpgrades(t *testing.T) {
	t.Parallel()
	for _, d := range []sqlstore.Dialect{sqlstore.Postgres, sqlstore.SQLite} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			pl := migratedForPlans(t, d)
			p, conn := pl.prefix, pl.conn
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
			if d == sqlstore.Postgres {
				// An operator may build one beforehand, without blocking
				// writes (the migration file says how).
				st := "CREATE INDEX CONCURRENTLY " + p + "payments_unsettled ON " + p + "payments (updated_at, id) WHERE status IN ('pending', 'unknown', 'requires_action')"
				if _, err := conn.ExecContext(ctx, st); err != nil {
					t.Fatalf("%s: %v", st, err)
				}
			}
			if err := pl.s.Migrate(ctx); err != nil {
				t.Fatalf("Migrate from version 1: %v", err)
			}
			pl.scansUsePartialIndexes(t)
			var old int
			q := "SELECT count(*) FROM pg_indexes WHERE indexname IN ($1, $2, $3)"
			if d == sqlstore.SQLite {
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

// planned is a migrated store with tables of its own, and a connection to
// its database to read plans on.
type planned struct {
	s      *sqlstore.Store
	d      sqlstore.Dialect
	prefix string
	conn   *sql.Conn
}

// migratedForPlans returns a planned store of dialect d (the harness's),
// on whose connection PostgreSQL avoids sequential scans wherever it can
// (its tables are empty, so it would prefer them).
func migratedForPlans(t *testing.T, d sqlstore.Dialect) *planned {
	t.Helper()
	ctx := context.Background()
	pl := &planned{d: d, prefix: randomPrefix()}
	pl.s = newHarness(t, d, nil).store(t, sqlstore.Options{TablePrefix: pl.prefix})
	var err error
	if pl.conn, err = pl.s.DB().Conn(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pl.conn.Close() })
	if d == sqlstore.Postgres {
		if _, err := pl.conn.ExecContext(ctx, "SET enable_seqscan = off"); err != nil {
			t.Fatal(err)
		}
	}
	return pl
}

// scansUsePartialIndexes checks the plan of each scan that migration 0002
// gave a partial index.
func (pl *planned) scansUsePartialIndexes(t *testing.T) {
	t.Helper()
	now := time.Now().UnixNano()
	for _, scan := range []struct {
		index, statement string
		args             []any
	}{
		{"idempotency_in_flight", "listStale", []any{now, now, 10}},
		{"payments_unsettled", "unsettled", []any{now, 10}},
		{"deliveries_pending", "deliveryDue", []any{now, 10}},
		{"deliveries_delivered", "purgeDeliveries", []any{now}},
	} {
		testplan.CheckIndexes(t, scan.statement, pl.explain(t, scan.statement, scan.args), pl.prefix, scan.index, "")
	}
}

// explain returns the plan of the store's statement with args, one line a
// row.
func (pl *planned) explain(t *testing.T, statement string, args []any) string {
	t.Helper()
	text, args := pl.s.Statement(statement, args...)
	explain := "EXPLAIN "
	if pl.d == sqlstore.SQLite {
		explain = "EXPLAIN QUERY PLAN "
	}
	return testplan.Explain(t, pl.conn, explain, text, args...)
}
