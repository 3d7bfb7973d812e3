// Package testplan reads query plans for the tests that hold a query to
// an index.
package testplan

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
)

// Explain runs explain+q with args on conn and returns the text columns of
// its rows, one line a row. explain is "EXPLAIN " on PostgreSQL and
// "EXPLAIN QUERY PLAN " on SQLite.
func Explain(t testing.TB, conn *sql.Conn, explain, q string, args ...any) string {
	t.Helper()
	rows, err := conn.QueryContext(context.Background(), explain+q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var plan strings.Builder
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			switch v := v.(type) {
			case string:
				plan.WriteString(v + "\n")
			case []byte:
				plan.WriteString(string(v) + "\n")
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan.String()
}

// ExplainGeneric returns PostgreSQL's plan of q for any values of its
// parameters, the plan a connection with plan_cache_mode =
// force_generic_plan runs, one line a row. args are only shown in the plan:
// strings, integers, booleans and nil, written as literals. It sets that
// mode on conn.
func ExplainGeneric(t testing.TB, conn *sql.Conn, q string, args ...any) string {
	t.Helper()
	ctx := context.Background()
	for _, st := range []string{"SET plan_cache_mode = force_generic_plan", "PREPARE testplan_generic AS " + q} {
		if _, err := conn.ExecContext(ctx, st); err != nil {
			t.Fatalf("%s: %v", st, err)
		}
	}
	defer func() {
		if _, err := conn.ExecContext(ctx, "DEALLOCATE testplan_generic"); err != nil {
			t.Fatal(err)
		}
	}()
	lits := make([]string, len(args))
	for i, a := range args {
		switch a := a.(type) {
		case nil:
			lits[i] = "NULL"
		case string:
			lits[i] = "'" + strings.ReplaceAll(a, "'", "''") + "'"
		case int, int64, bool:
			lits[i] = fmt.Sprint(a)
		default:
			t.Fatalf("ExplainGeneric: argument %d is a %T", i+1, a)
		}
	}
	return Explain(t, conn, "EXPLAIN ", "EXECUTE testplan_generic("+strings.Join(lits, ", ")+")")
}

// CheckIndexes fails t unless plan, the plan of what, names the index
// prefix+want and does not name prefix+not; an empty want or not is not
// checked.
func CheckIndexes(t testing.TB, what, plan, prefix, want, not string) {
	t.Helper()
	if want != "" && !strings.Contains(plan, prefix+want) {
		t.Errorf("%s does not use %s:\n%s", what, want, plan)
	}
	if not != "" && strings.Contains(plan, prefix+not) {
		t.Errorf("%s uses %s:\n%s", what, not, plan)
	}
}

// CheckNoWholeTableRead fails t if plan, the plan of what, reads a whole
// table (on a connection with enable_seqscan off, a plan does only when no
// index serves it).
func CheckNoWholeTableRead(t testing.TB, what, plan string) {
	t.Helper()
	if strings.Contains(plan, "Seq Scan") {
		t.Errorf("%s reads a whole table:\n%s", what, plan)
	}
}
