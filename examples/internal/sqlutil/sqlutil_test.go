package sqlutil

import "testing"

func TestQueriesCompileOnce(t *testing.T) {
	const tmpl = `UPDATE {p}orders SET data = ? WHERE id = ? AND version = ?`
	for d, want := range map[Dialect]string{
		Postgres: `UPDATE shop_orders SET data = $1 WHERE id = $2 AND version = $3`,
		SQLite:   `UPDATE shop_orders SET data = ? WHERE id = ? AND version = ?`,
		MySQL:    `UPDATE shop_orders SET data = ? WHERE id = ? AND version = ?`,
	} {
		q := NewQueries(d, "shop_")
		if got := q.Get(tmpl); got != want {
			t.Errorf("%s: %q, want %q", d, got, want)
		}
		// Once compiled, a template costs a map lookup and no allocation.
		if n := testing.AllocsPerRun(100, func() { q.Get(tmpl) }); n != 0 {
			t.Errorf("%s: %v allocations a call after the first", d, n)
		}
	}
}
