package sqlstore

import (
	"context"
	"database/sql/driver"
	"path/filepath"
	"testing"
)

// The cache does cache: a statement run twice is prepared once.
func TestStmtCacheKeepsStatements(t *testing.T) {
	ctx := context.Background()
	connector, err := Connector(SQLite, "file:"+filepath.Join(t.TempDir(), "internal.db"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := connector.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c, ok := conn.(*stmtCacheConn)
	if !ok {
		t.Fatalf("a SQLite connection is %T, not cached", conn)
	}
	if _, err := c.ExecContext(ctx, "CREATE TABLE t (x INTEGER)", nil); err != nil {
		t.Fatal(err)
	}
	const ins = "INSERT INTO t (x) VALUES (?)"
	for i := 0; i < 3; i++ {
		if _, err := c.ExecContext(ctx, ins, []driver.NamedValue{{Ordinal: 1, Value: int64(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	first := c.stmts[ins]
	if first == nil {
		t.Fatal("the INSERT was not cached")
	}
	if _, err := c.ExecContext(ctx, ins, []driver.NamedValue{{Ordinal: 1, Value: int64(9)}}); err != nil {
		t.Fatal(err)
	}
	if c.stmts[ins] != first {
		t.Fatal("the INSERT was prepared again")
	}
}
