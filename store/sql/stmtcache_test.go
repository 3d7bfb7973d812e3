package sqlstore_test

import (
	"context"
	"path/filepath"
	"testing"

	sqlstore "github.com/paymux/paymux/store/sql"
)

// The SQLite statement cache is invisible: repeated statements, the same
// query run again while its own rows are open (inside a transaction), and a
// table dropped and made again with other columns all behave as uncached.
func TestSQLiteStatementCache(t *testing.T) {
	ctx := context.Background()
	db, err := sqlstore.OpenDB(sqlstore.SQLite, "file:"+filepath.Join(t.TempDir(), "cache.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mustExec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	mustExec(`CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)`)
	for i := 0; i < 50; i++ {
		mustExec(`INSERT INTO t (k, v) VALUES (?, ?)`, i, "v")
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM t WHERE k >= ?`, 10).Scan(&n); err != nil || n != 40 {
		t.Fatalf("count = %d, %v; want 40", n, err)
	}

	// The same query again while its rows are open, in one transaction.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	const q = `SELECT k FROM t WHERE k < ? ORDER BY k`
	outer, err := tx.QueryContext(ctx, q, 3)
	if err != nil {
		t.Fatal(err)
	}
	var pairs int
	for outer.Next() {
		var k int
		if err := outer.Scan(&k); err != nil {
			t.Fatal(err)
		}
		inner, err := tx.QueryContext(ctx, q, k)
		if err != nil {
			t.Fatal(err)
		}
		for inner.Next() {
			pairs++
		}
		if err := inner.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE t SET v = ? WHERE k = ?`, "seen", k); err != nil {
			t.Fatal(err)
		}
	}
	if err := outer.Err(); err != nil {
		t.Fatal(err)
	}
	outer.Close()
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if pairs != 0+1+2 {
		t.Fatalf("nested rows: %d pairs, want 3", pairs)
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM t WHERE v = ?`, "seen").Scan(&n); err != nil || n != 3 {
		t.Fatalf("updated rows = %d, %v; want 3", n, err)
	}

	// The schema changes under a cached statement.
	mustExec(`DROP TABLE t`)
	mustExec(`CREATE TABLE t (k INTEGER PRIMARY KEY, extra TEXT, v TEXT)`)
	mustExec(`INSERT INTO t (k, v) VALUES (?, ?)`, 1, "after")
	var v string
	if err := db.QueryRowContext(ctx, `SELECT v FROM t WHERE k = ?`, 1).Scan(&v); err != nil || v != "after" {
		t.Fatalf("after the schema change: %q, %v", v, err)
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM t WHERE k >= ?`, 0).Scan(&n); err != nil || n != 1 {
		t.Fatalf("cached count after the schema change = %d, %v; want 1", n, err)
	}
}

// A script of several statements still runs every statement.
func TestSQLiteStatementCacheScripts(t *testing.T) {
	ctx := context.Background()
	db, err := sqlstore.OpenDB(sqlstore.SQLite, "file:"+filepath.Join(t.TempDir(), "script.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := 0; i < 2; i++ {
		if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS a (x INTEGER); CREATE TABLE IF NOT EXISTS b (y INTEGER); INSERT INTO b VALUES (1);`); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM b`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("script ran its last statement %d times, %v; want 2", n, err)
	}
}
