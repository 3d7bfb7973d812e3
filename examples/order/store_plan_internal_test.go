package order

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/paymux/paymux/examples/internal/sqlutil"
	"github.com/paymux/paymux/examples/internal/testenv"
	"github.com/paymux/paymux/internal/testplan"
)

// TestScansUseTheirPartialIndexes checks, on the databases with partial
// indexes, that the expiry sweep and the recovery scans read their index
// and that a settlement's lookup of a reservation by order id goes by the
// primary key. A partial index serves only a query whose WHERE clause
// implies its predicate, and an edit that breaks that turns the scan into a
// read of the whole table, which nothing else notices on small tables.
func TestScansUseTheirPartialIndexes(t *testing.T) {
	t.Parallel()
	for name, open := range map[sqlutil.Dialect]func(testing.TB) *sql.DB{
		sqlutil.Postgres: testenv.Postgres,
		sqlutil.SQLite:   testenv.SQLite,
	} {
		t.Run(string(name), func(t *testing.T) {
			t.Parallel()
			s, conn := migratedForPlans(t, name, open(t))
			explain := "EXPLAIN QUERY PLAN "
			if name == sqlutil.Postgres {
				explain = "EXPLAIN "
			}
			now := time.Now().UnixMilli()
			for _, c := range []struct {
				q       string
				args    []any
				want    string // an index the plan names
				wantNot string // an index it must not
			}{
				{expiredReservationsSQL, []any{now, 10}, "res_held", ""},
				{s.ordersInStatusSQL(StatusQueued), []any{string(StatusQueued), now, 10}, "orders_unsettled", ""},
				{s.ordersInStatusSQL(StatusPaymentPending), []any{string(StatusPaymentPending), now, 10}, "orders_unsettled", ""},
				{`SELECT state FROM {p}reservations WHERE order_id = ? AND state = 'held'`, []any{"o1"}, "", "res_held"},
			} {
				testplan.CheckIndexes(t, c.q, testplan.Explain(t, conn, explain, s.q(c.q), c.args...), s.prefix, c.want, c.wantNot)
			}
		})
	}
}

// TestSharedCommitPlansForAnyValueUseIndexes: on PostgreSQL the placement
// and the settlement share commits, on connections that plan each
// statement once for any values (sqlstore's planOnce). Such a plan must
// still reach orders, reservations and stock by their keys.
func TestSharedCommitPlansForAnyValueUseIndexes(t *testing.T) {
	t.Parallel()
	s, conn := migratedForPlans(t, sqlutil.Postgres, testenv.Postgres(t))
	now := time.Now().UnixMilli()
	for name, c := range map[string]struct {
		q    string
		args []any
	}{
		"placement":  {placeOrderPostgresSQL, []any{"{p1}", "{0}", "{1}", 1, "o1", "u1", string(StatusQueued), now, now, "{}", "[]", now, 1, "o1"}},
		"settlement": {commitAndSavePostgresSQL, []any{"o1", "{}", string(StatusPaid), now, "o1", 1, "o1", "{p1}", "{1}"}},
	} {
		testplan.CheckNoWholeTableRead(t, "the "+name, testplan.ExplainGeneric(t, conn, s.q(c.q), c.args...))
	}
}

// migratedForPlans returns a migrated store on db with tables of its own,
// and a connection to read plans on, on which PostgreSQL avoids sequential
// scans wherever it can (its tables are empty, so it would prefer them).
func migratedForPlans(t *testing.T, d sqlutil.Dialect, db *sql.DB) (*SQLStore, *sql.Conn) {
	t.Helper()
	ctx := context.Background()
	s := NewSQLStore(db, d, testenv.Prefix("plan"))
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Drop(context.Background()) })
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if d == sqlutil.Postgres {
		if _, err := conn.ExecContext(ctx, "SET enable_seqscan = off"); err != nil {
			t.Fatal(err)
		}
	}
	return s, conn
}
