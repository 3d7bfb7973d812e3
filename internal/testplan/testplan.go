// Package testplan reads query plans for the tests that hold a query to
// an index.
package testplan

import (
	"context"
	"database/sql"
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
