package sqlstore

import (
	"context"
	"testing"
)

// Only the first pipeline connection takes statements on hot rows, so two
// pipelines never hold such rows at once; the other takes the rest, oldest
// first, and leaves the hot ones queued in order.
func TestPipelineHotRowsStayOnOneConnection(t *testing.T) {
	p := newPipeliner(nil)
	var queued []*piped
	for i := range 6 {
		s := &piped{query: string(rune('a' + i)), hot: i%2 == 0, done: make(chan struct{})}
		queued = append(queued, s)
	}
	p.queue = append(p.queue, queued...)

	other := p.take(false)
	if got := pipedQueries(other); got != "bdf" {
		t.Fatalf("the second connection took %q, want the statements not on hot rows, bdf", got)
	}
	if got := pipedQueries(p.queue); got != "ace" {
		t.Fatalf("left queued %q, want ace", got)
	}
	first := p.take(true)
	if got := pipedQueries(first); got != "ace" {
		t.Fatalf("the first connection took %q, want ace", got)
	}
	for _, s := range append(other, first...) {
		if !s.taken {
			t.Errorf("%s taken but not marked so: its caller could withdraw a statement that was sent", s.query)
		}
	}
}

func TestMayShareCommitMarks(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		ctx  context.Context
		want shareCommitMark
	}{
		{ctx, 0},
		{MayShareCommit(ctx), sharesCommit},
		{MayShareCommitOnHotRows(ctx), sharesCommitOnHotRows},
	} {
		if got := shareCommitMarkOf(tc.ctx); got != tc.want {
			t.Errorf("mark %d, want %d", got, tc.want)
		}
	}
	c := &pipelineConn{}
	marked := MayShareCommit(ctx)
	for q, want := range map[string]bool{
		"INSERT INTO t VALUES (1)":             true,
		"  update t SET x = 1":                 true,
		"\nWITH a AS (SELECT 1) DELETE FROM t": true,
		"delete from t":                        true,
		"SELECT 1":                             false,
		"/* c */ INSERT INTO t":                false,
		"SET x = 1":                            false,
		"":                                     false,
	} {
		if got := c.sharing(marked, q) != 0; got != want {
			t.Errorf("sharing(%q) = %v, want %v", q, got, want)
		}
		if c.sharing(ctx, q) != 0 {
			t.Errorf("sharing(%q) without the mark", q)
		}
	}
	c.sharing(marked, "begin")
	if c.sharing(marked, "INSERT INTO t VALUES (1)") != 0 {
		t.Error("a statement after a text BEGIN left its transaction")
	}
	c.sharing(marked, "COMMIT")
	if c.sharing(marked, "INSERT INTO t VALUES (1)") == 0 {
		t.Error("a statement after COMMIT stayed on the connection")
	}
}

func pipedQueries(batch []*piped) string {
	var b []byte
	for _, s := range batch {
		b = append(b, s.query...)
	}
	return string(b)
}
