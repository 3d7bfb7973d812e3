package sqlstore_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/paymux/paymux/store/sql"
)

// pipelineTable makes a fresh table on the PostgreSQL test server: id, and
// the transaction that wrote the row.
func pipelineTable(t *testing.T) (*sql.DB, string) {
	t.Helper()
	db := openServerDB(t, sqlstore.Postgres, nil)
	table := randomPrefix() + "piped"
	if _, err := db.Exec(`CREATE TABLE ` + table + ` (id bigint PRIMARY KEY, tx bigint NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = db.Exec(`DROP TABLE IF EXISTS ` + table) })
	return db, table
}

// insertReturningTx inserts id and returns the transaction it ran in.
func insertReturningTx(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, table string, id int64) (int64, error) {
	var tx int64
	err := q.QueryRowContext(ctx, `INSERT INTO `+table+` (id, tx) VALUES ($1, txid_current()) RETURNING tx`, id).Scan(&tx)
	return tx, err
}

// rows returns the table's rows as id → transaction.
func rows(t *testing.T, db *sql.DB, table string) map[int64]int64 {
	t.Helper()
	r, err := db.Query(`SELECT id, tx FROM ` + table)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out := map[int64]int64{}
	for r.Next() {
		var id, tx int64
		if err := r.Scan(&id, &tx); err != nil {
			t.Fatal(err)
		}
		out[id] = tx
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Marked statements from concurrent callers commit in shared transactions,
// each caller gets its own statement's result, and every acknowledged row
// is there.
func TestSharedCommitsShareTransactions(t *testing.T) {
	db, table := pipelineTable(t)
	ctx := sqlstore.MayShareCommit(context.Background())
	const callers, each = 16, 25
	told := make(map[int64]int64)
	var mu sync.Mutex
	eachCaller(callers, each, func(id int64) {
		tx, err := insertReturningTx(ctx, db, table, id)
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		told[id] = tx
		mu.Unlock()
	})
	got := rows(t, db, table)
	if len(got) != callers*each {
		t.Fatalf("%d rows, want %d", len(got), callers*each)
	}
	txs := map[int64]bool{}
	for id, tx := range got {
		if told[id] != tx {
			t.Errorf("row %d: caller was told transaction %d, the row says %d", id, told[id], tx)
		}
		txs[tx] = true
	}
	if len(txs) == len(got) {
		t.Errorf("%d rows in %d transactions: no commit was shared", len(got), len(txs))
	}
	t.Logf("%d rows in %d transactions", len(got), len(txs))
}

// Unmarked statements, and marked ones inside a transaction, run on the
// caller's connection: a transaction's statements stay in it and roll back
// with it.
func TestSharedCommitsOnlyForMarkedStatementsOutsideTransactions(t *testing.T) {
	db, table := pipelineTable(t)
	ctx := context.Background()
	marked := sqlstore.MayShareCommit(ctx)

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var own int64
	if err := tx.QueryRowContext(ctx, `SELECT txid_current()`).Scan(&own); err != nil {
		t.Fatal(err)
	}
	got, err := insertReturningTx(marked, tx, table, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got != own {
		t.Errorf("a marked statement inside a transaction ran in transaction %d, not the caller's %d", got, own)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if n := len(rows(t, db, table)); n != 0 {
		t.Fatalf("%d rows after the rollback", n)
	}

	// A transaction begun as text keeps the connection's statements too.
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := insertReturningTx(marked, conn, table, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if n := len(rows(t, db, table)); n != 0 {
		t.Fatalf("%d rows after the text ROLLBACK", n)
	}

	// A marked query whose statement returns no columns gets no rows, as
	// on its own connection, and its write commits.
	var none int
	err = db.QueryRowContext(marked, `INSERT INTO `+table+` (id, tx) VALUES (3, 0)`).Scan(&none)
	if !errors.Is(err, sql.ErrNoRows) {
		t.Fatalf("a marked INSERT without RETURNING as a query: %v, want sql.ErrNoRows", err)
	}
	if _, err := db.Exec(`DELETE FROM ` + table + ` WHERE id = 3`); err != nil {
		t.Fatal(err)
	}

	// Unmarked statements from concurrent callers: one transaction each.
	eachCaller(8, 10, func(id int64) {
		if _, err := insertReturningTx(ctx, db, table, 100+id); err != nil {
			t.Error(err)
		}
	})
	txs := map[int64]bool{}
	for _, tx := range rows(t, db, table) {
		txs[tx] = true
	}
	if len(txs) != 80 {
		t.Errorf("80 unmarked inserts ran in %d transactions", len(txs))
	}
}

// A failing statement fails its own caller only, with the database's
// error; the statements that shared its pipeline are run again and commit.
func TestSharedCommitFailureFailsOnlyItsCaller(t *testing.T) {
	db, table := pipelineTable(t)
	ctx := sqlstore.MayShareCommit(context.Background())
	const taken = 1_000_000
	if _, err := db.Exec(`INSERT INTO `+table+` (id, tx) VALUES ($1, 0)`, taken); err != nil {
		t.Fatal(err)
	}
	const callers, each = 16, 30
	var (
		mu      sync.Mutex
		ok      = map[int64]int64{}
		refused = map[int64]bool{}
	)
	eachCaller(callers, each, func(id int64) {
		switch id % 5 {
		case 1: // a duplicate key
			_, err := db.ExecContext(ctx, `INSERT INTO `+table+` (id, tx) VALUES ($1, 1)`, taken)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "23505" {
				t.Errorf("duplicate insert: %v, want unique_violation", err)
			}
		case 2: // aborted on purpose after writing, as checkout's statement is when it loses a race
			_, err := db.ExecContext(ctx, `WITH w AS (INSERT INTO `+table+` (id, tx) VALUES ($1, 2) RETURNING 1)
				SELECT 1 / ((SELECT count(*) FROM w) - 1)`, id)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "22012" {
				t.Errorf("aborted statement: %v, want division_by_zero", err)
			}
			mu.Lock()
			refused[id] = true
			mu.Unlock()
		default:
			tx, err := insertReturningTx(ctx, db, table, id)
			if err != nil {
				t.Errorf("insert %d: %v", id, err)
				return
			}
			mu.Lock()
			ok[id] = tx
			mu.Unlock()
		}
	})
	got := rows(t, db, table)
	for id, tx := range ok {
		if got[id] != tx {
			t.Errorf("row %d: acknowledged in transaction %d, stored %d (present: %v)", id, tx, got[id], got[id] != 0)
		}
	}
	for id := range refused {
		if _, there := got[id]; there {
			t.Errorf("row %d of a failed statement was committed", id)
		}
	}
	if got[taken] != 0 {
		t.Errorf("the taken row was overwritten")
	}
	if len(got) != len(ok)+1 {
		t.Errorf("%d rows, want the %d acknowledged and the taken one", len(got), len(ok))
	}
}

// A marked statement returns the same Go values as the same statement run
// on the caller's own connection.
func TestSharedCommitDecodesLikePgx(t *testing.T) {
	db, table := pipelineTable(t)
	q := `WITH w AS (INSERT INTO ` + table + ` (id, tx) VALUES ($1, 7) RETURNING id)
		SELECT (SELECT id FROM w), true, 2::int2, 4::int4, 8::int8, 1.5::float4, 2.5::float8, 'text'::text,
			'\x0102'::bytea, '2026-12-01 10:00:00+00'::timestamptz, '2026-12-01'::date, '{"a": 1}'::jsonb,
			12.50::numeric, NULL::text, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, ARRAY[1, 2]::int[]`
	scan := func(ctx context.Context, id int64) []any {
		t.Helper()
		r, err := db.QueryContext(ctx, q, id)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		cols, err := r.Columns()
		if err != nil {
			t.Fatal(err)
		}
		if !r.Next() {
			t.Fatalf("no row: %v", r.Err())
		}
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := r.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		return vals
	}
	own := scan(context.Background(), 1)
	shared := scan(sqlstore.MayShareCommit(context.Background()), 2)
	own[0] = int64(2)
	if a, b := fmt.Sprintf("%#v", own), fmt.Sprintf("%#v", shared); a != b {
		t.Errorf("own connection:\n%s\nshared commit:\n%s", a, b)
	}
}

// The shared-commit connections plan each statement once (planOnce), and
// the pool's connections are left as the server set them.
func TestSharedCommitConnectionsPlanOnce(t *testing.T) {
	db := openServerDB(t, sqlstore.Postgres, nil)
	q := `WITH s AS (SELECT current_setting('plan_cache_mode') AS mode) SELECT mode FROM s`
	var shared, own string
	if err := db.QueryRowContext(sqlstore.MayShareCommit(context.Background()), q).Scan(&shared); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(context.Background(), q).Scan(&own); err != nil {
		t.Fatal(err)
	}
	if shared != "force_generic_plan" || own == shared {
		t.Errorf("plan_cache_mode: %q on the shared-commit connections, %q on the pool's; want force_generic_plan only on the former", shared, own)
	}
}

// A caller whose context ends before its statement was sent withdraws it:
// it returns at once and the statement never runs.
func TestSharedCommitWithdrawsUnsentStatement(t *testing.T) {
	db, table := pipelineTable(t)
	// On hot rows, so that both statements wait for the same connection.
	marked := sqlstore.MayShareCommitOnHotRows(context.Background())
	slow := make(chan error, 1)
	go func() {
		_, err := db.ExecContext(marked, `INSERT INTO `+table+` (id, tx) SELECT 1, 0 FROM pg_sleep(0.5)`)
		slow <- err
	}()
	waitForQuery(t, db, "pg_sleep(0.5)")
	ctx, cancel := context.WithTimeout(marked, 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := db.ExecContext(ctx, `INSERT INTO `+table+` (id, tx) VALUES (2, 0)`)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the caller's deadline", err)
	}
	if waited := time.Since(start); waited > 400*time.Millisecond {
		t.Errorf("the withdrawn caller waited %v, for the pipeline ahead of it", waited)
	}
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	// The next statement runs after the slow one; the withdrawn one never.
	if _, err := db.ExecContext(marked, `INSERT INTO `+table+` (id, tx) VALUES (3, 0)`); err != nil {
		t.Fatal(err)
	}
	got := rows(t, db, table)
	if _, there := got[2]; there || len(got) != 2 {
		t.Errorf("rows %v, want 1 and 3", got)
	}
}

// A pipeline whose connection breaks tells its callers that the outcome is
// unknown (not driver.ErrBadConn, on which database/sql would send the
// write again), and the next statement gets a new connection.
func TestSharedCommitBrokenConnection(t *testing.T) {
	db, table := pipelineTable(t)
	marked := sqlstore.MayShareCommit(context.Background())
	failed := make(chan error, 1)
	go func() {
		_, err := db.ExecContext(marked, `INSERT INTO `+table+` (id, tx) SELECT 1, 0 FROM pg_sleep(5)`)
		failed <- err
	}()
	pid := waitForQuery(t, db, "pg_sleep(5)")
	if _, err := db.Exec(`SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	err := <-failed
	if err == nil || errors.Is(err, driver.ErrBadConn) || !strings.Contains(err.Error(), "outcome unknown") {
		t.Fatalf("got %v, want an error saying the outcome is unknown", err)
	}
	if _, err := insertReturningTx(marked, db, table, 2); err != nil {
		t.Fatalf("after a broken connection: %v", err)
	}
	if got := rows(t, db, table); len(got) != 1 {
		t.Errorf("rows %v, want only 2", got)
	}
}

// Closing the database answers a statement in flight and refuses new ones.
func TestSharedCommitClose(t *testing.T) {
	dsn, _ := server(sqlstore.Postgres)
	probe := openServerDB(t, sqlstore.Postgres, nil) // skips without a server
	db, err := sqlstore.OpenDB(sqlstore.Postgres, dsn)
	if err != nil {
		t.Fatal(err)
	}
	marked := sqlstore.MayShareCommit(context.Background())
	table := randomPrefix() + "piped"
	if _, err := db.Exec(`CREATE TABLE ` + table + ` (id bigint PRIMARY KEY, tx bigint NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = probe.Exec(`DROP TABLE IF EXISTS ` + table) })
	done := make(chan error, 1)
	go func() {
		_, err := db.ExecContext(marked, `INSERT INTO `+table+` (id, tx) SELECT 1, 0 FROM pg_sleep(0.3)`)
		done <- err
	}()
	waitForQuery(t, probe, "pg_sleep(0.3)")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("the statement in flight: %v", err)
	}
	if _, err := db.ExecContext(marked, `INSERT INTO `+table+` (id, tx) VALUES (2, 0)`); err == nil {
		t.Error("a statement ran after Close")
	}
	if got := rows(t, probe, table); len(got) != 1 {
		t.Errorf("rows %v, want only 1", got)
	}
}

// waitForQuery waits until another backend runs a statement containing
// text and returns its process id.
func waitForQuery(t *testing.T, db *sql.DB, text string) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		var pid int
		err := db.QueryRow(`SELECT pid FROM pg_stat_activity
			WHERE state = 'active' AND pid <> pg_backend_pid() AND position($1 in query) > 0 LIMIT 1`, text).Scan(&pid)
		if err == nil {
			return pid
		}
		if !errors.Is(err, sql.ErrNoRows) {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no backend ran %q", text)
	return 0
}

// sql.Conn.Raw still reaches pgx's connection, as OpenDB documents.
func TestSharedCommitRawReachesPgx(t *testing.T) {
	db := openServerDB(t, sqlstore.Postgres, nil)
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		pc, ok := dc.(interface{ Conn() *pgx.Conn })
		if !ok {
			return fmt.Errorf("%T has no Conn() *pgx.Conn", dc)
		}
		return pc.Conn().Ping(context.Background())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// eachCaller runs callers goroutines at once, each calling fn for its own
// ids (c*each to c*each+each-1), and waits for them all.
func eachCaller(callers, each int, fn func(id int64)) {
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				fn(int64(c*each + i))
			}
		}()
	}
	wg.Wait()
}
