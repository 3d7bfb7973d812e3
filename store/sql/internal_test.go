package sqlstore

import (
	"math"
	"reflect"
	"testing"
	"time"
)

func TestCompilePlaceholders(t *testing.T) {
	t.Parallel()
	tmpl := `UPDATE {p}x SET a = $2, b = $10 WHERE k = $1 AND c <= $2`
	pg := compile(Postgres, "pre_", tmpl)
	if pg.text != `UPDATE pre_x SET a = $2, b = $10 WHERE k = $1 AND c <= $2` || pg.order != nil {
		t.Fatalf("postgres: %+v", pg)
	}
	my := compile(MySQL, "pre_", tmpl)
	if my.text != `UPDATE pre_x SET a = ?, b = ? WHERE k = ? AND c <= ?` || !reflect.DeepEqual(my.order, []int{1, 9, 0, 1}) {
		t.Fatalf("mysql: %+v", my)
	}
	args := my.args([]any{"k", "two", 3, 4, 5, 6, 7, 8, 9, "ten"})
	if !reflect.DeepEqual(args, []any{"two", "ten", "k", "two"}) {
		t.Fatalf("args = %v", args)
	}
}

func TestNanosRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tm := range []time.Time{time.Unix(1, 2), time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), time.Unix(0, 0)} {
		if got := fromNanos(nanos(tm)); !got.Equal(tm) {
			t.Errorf("%v -> %v", tm, got)
		}
	}
	if n := nanos(time.Time{}); n != math.MinInt64 || !fromNanos(n).IsZero() {
		t.Errorf("zero time -> %d -> %v", n, fromNanos(n))
	}
	if nanos(time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)) != math.MaxInt64 {
		t.Error("far future not clamped")
	}
}

func TestSplitStatements(t *testing.T) {
	t.Parallel()
	got := splitStatements("-- c;\nCREATE a (x);\n\n-- only a comment\nCREATE b (\n y\n);\n")
	want := []string{"CREATE a (x)", "CREATE b (\n y\n)"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q", got)
	}
	for _, d := range []Dialect{Postgres, MySQL, SQLite} {
		m, err := migrations(d, "p_")
		if err != nil || len(m) == 0 || m[0].version != 1 || len(m[0].statements) < 4 {
			t.Fatalf("%s migrations: %+v %v", d, m, err)
		}
	}
}
