package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// groupDB opens a group-committed SQLite database in a temp dir, on inner
// (the plain connector when nil), with a table t of unique names.
func groupDB(t *testing.T, wrap func(driver.Connector) driver.Connector) (*sql.DB, *groupWriter) {
	t.Helper()
	inner, err := Connector(SQLite, "file:"+filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		inner = wrap(inner)
	}
	c := newGroupCommitConnector(inner, nil)
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(groupCommitConns)
	db.SetMaxIdleConns(groupCommitConns)
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec("CREATE TABLE t (name TEXT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	return db, c.writer
}

func names(t *testing.T, db *sql.DB) map[string]bool {
	t.Helper()
	rows, err := db.Query("SELECT name FROM t")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		got[n] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// waitForWaiting returns once n callers wait for the connection.
func waitForWaiting(t *testing.T, w *groupWriter, n int32) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for w.waiting.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d callers wait for the connection, want %d", w.waiting.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// inBackground runs fn in a goroutine and returns its error on a channel.
func inBackground(fn func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- fn() }()
	return ch
}

// holding begins a transaction that inserts name and holds the writer.
func holding(t *testing.T, db *sql.DB, name string) *sql.Tx {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO t (name) VALUES (?)", name); err != nil {
		t.Fatal(err)
	}
	return tx
}

// within returns what ch gives within 5 s, and fails the test with stuck
// otherwise.
func within(t *testing.T, ch <-chan error, stuck string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal(stuck)
		return nil
	}
}

func insert(db *sql.DB, name string) func() error {
	return func() error {
		_, err := db.Exec("INSERT INTO t (name) VALUES (?)", name)
		return err
	}
}

// OpenDB's SQLite database is group-committed, and the paymux store then
// leaves the queueing of writers to it.
func TestOpenDBGroupsSQLiteCommits(t *testing.T) {
	db, err := OpenDB(SQLite, "file:"+filepath.Join(t.TempDir(), "o.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if !groupCommitted(db) {
		t.Fatal("OpenDB's SQLite database is not group-committed")
	}
	s, err := New(db, Options{Dialect: SQLite})
	if err != nil {
		t.Fatal(err)
	}
	if s.writes != nil {
		t.Error("the store queues its writers itself on a group-committed database")
	}
	plain, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if s, err := New(plain, Options{Dialect: SQLite}); err != nil || s.writes == nil {
		t.Errorf("a SQLite *sql.DB of the caller's own: writers not queued (err %v)", err)
	}
}

// Concurrent callers share commits, and every write that was acknowledged
// is in the database, in single statements and in transactions alike.
func TestGroupCommitSharesCommits(t *testing.T) {
	db, w := groupDB(t, nil)
	const callers, each = 32, 40
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				name := fmt.Sprintf("c%d-%d", c, i)
				if i%2 == 0 {
					if err := insert(db, name)(); err != nil {
						errs <- err
						return
					}
					continue
				}
				tx, err := db.Begin()
				if err != nil {
					errs <- err
					return
				}
				for _, n := range []string{name, name + "-b"} {
					if _, err := tx.Exec("INSERT INTO t (name) VALUES (?)", n); err != nil {
						errs <- err
						return
					}
				}
				if err := tx.Commit(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := names(t, db)
	if want := callers * each * 3 / 2; len(got) != want {
		t.Fatalf("%d rows, want %d", len(got), want)
	}
	ops := int64(callers * each)
	if c := w.commits.Load(); c >= ops {
		t.Errorf("%d commits for %d writes: none shared", c, ops)
	} else {
		t.Logf("%d writes in %d commits", ops, c)
	}
}

// A caller's commit returns once the group committed; a caller's rollback
// undoes its own work and nobody else's.
func TestGroupCommitRollbackUndoesOnlyItsOwn(t *testing.T) {
	db, w := groupDB(t, nil)
	keep, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keep.Exec("INSERT INTO t (name) VALUES ('kept')"); err != nil {
		t.Fatal(err)
	}
	undone := inBackground(func() error {
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		if _, err := tx.Exec("INSERT INTO t (name) VALUES ('undone')"); err != nil {
			return err
		}
		return tx.Rollback()
	})
	waitForWaiting(t, w, 1)
	other := inBackground(insert(db, "other"))
	waitForWaiting(t, w, 2)
	commits := w.commits.Load()
	if err := keep.Commit(); err != nil { // the others join, and the last commits
		t.Fatal(err)
	}
	for _, ch := range []<-chan error{undone, other} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	if c := w.commits.Load() - commits; c != 1 {
		t.Errorf("%d commits, want the one shared", c)
	}
	got := names(t, db)
	if !got["kept"] || !got["other"] || got["undone"] || len(got) != 2 {
		t.Errorf("rows %v, want kept and other", got)
	}
}

// A statement that fails alone fails its caller and leaves the group's other
// work be.
func TestGroupCommitFailedStatementLeavesTheGroup(t *testing.T) {
	db, w := groupDB(t, nil)
	if err := insert(db, "taken")(); err != nil {
		t.Fatal(err)
	}
	tx := holding(t, db, "first")
	dup := inBackground(insert(db, "taken"))
	waitForWaiting(t, w, 1)
	last := inBackground(insert(db, "last"))
	waitForWaiting(t, w, 2)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-dup; err == nil {
		t.Error("a duplicate key was accepted")
	}
	if err := <-last; err != nil {
		t.Fatal(err)
	}
	if got := names(t, db); len(got) != 3 || !got["first"] || !got["last"] {
		t.Errorf("rows %v, want taken, first and last", got)
	}
}

// faultyConnector's connections fail COMMIT (without running it) while
// failCommit is set, and every failEvery-th COMMIT if failEvery is set; they
// answer the statement doom by rolling back the transaction and failing, as
// SQLite does after some errors (a full disk, an I/O error).
type faultyConnector struct {
	driver.Connector
	failCommit *atomic.Bool
	failEvery  int64
}

const doom = "INSERT INTO t (name) VALUES ('doom')"

func (c faultyConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &faultyConn{stmtCacheConn: conn.(*stmtCacheConn), faultyConnector: c}, nil
}

type faultyConn struct {
	*stmtCacheConn
	faultyConnector
	commits atomic.Int64
}

func (c *faultyConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	switch {
	case q == "COMMIT" && (c.failCommit.Load() || c.failEvery > 0 && c.commits.Add(1)%c.failEvery == 0):
		return nil, errors.New("disk I/O error (injected)")
	case q == doom:
		if _, err := c.stmtCacheConn.ExecContext(ctx, "ROLLBACK", nil); err != nil {
			return nil, err
		}
		return nil, errors.New("database or disk is full (injected)")
	}
	return c.stmtCacheConn.ExecContext(ctx, q, args)
}

func faulty(failCommit *atomic.Bool, failEvery int64) func(driver.Connector) driver.Connector {
	return func(c driver.Connector) driver.Connector { return faultyConnector{c, failCommit, failEvery} }
}

// When the group's COMMIT fails, every caller in it hears so, readers that
// may have seen its writes included, and none of its writes is there.
func TestGroupCommitFailureFailsEveryCaller(t *testing.T) {
	var failCommit atomic.Bool
	db, w := groupDB(t, faulty(&failCommit, 0))
	tx := holding(t, db, "a")
	b := inBackground(insert(db, "b"))
	waitForWaiting(t, w, 1)
	read := inBackground(func() error {
		var n int
		return db.QueryRow("SELECT count(*) FROM t").Scan(&n)
	})
	waitForWaiting(t, w, 2)
	failCommit.Store(true)
	if err := tx.Commit(); err == nil {
		t.Error("a transaction's commit succeeded in a group whose COMMIT failed")
	}
	if err := <-b; err == nil {
		t.Error("a statement succeeded in a group whose COMMIT failed")
	}
	if err := <-read; err == nil {
		t.Error("a read inside a group whose COMMIT failed returned")
	}
	failCommit.Store(false)
	if got := names(t, db); len(got) != 0 {
		t.Errorf("rows %v after the failed commit", got)
	}
	if err := insert(db, "after")(); err != nil {
		t.Fatalf("the next write after a failed group: %v", err)
	}
}

// When the database rolls the whole transaction back under one caller's
// statement, the others in the group hear so, and a caller whose own
// transaction went with it cannot go on writing outside it.
func TestGroupCommitDatabaseRollbackFailsTheGroup(t *testing.T) {
	db, w := groupDB(t, faulty(new(atomic.Bool), 0))
	tx := holding(t, db, "a")
	doomed := inBackground(func() error { _, err := db.Exec(doom); return err })
	waitForWaiting(t, w, 1)
	if err := tx.Commit(); err == nil {
		t.Error("a commit succeeded in a group the database rolled back")
	}
	if err := <-doomed; err == nil {
		t.Error("the statement that failed returned no error")
	}

	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(doom); err == nil {
		t.Fatal("doom returned no error")
	}
	if _, err := tx.Exec("INSERT INTO t (name) VALUES ('stray')"); err == nil {
		t.Error("a statement ran after its transaction was rolled back")
	}
	if err := tx.Commit(); err == nil {
		t.Error("a transaction the database rolled back committed")
	}
	if got := names(t, db); len(got) != 0 {
		t.Errorf("rows %v, want none", got)
	}
}

// A caller whose context ends while it waits, or in its transaction, does
// not take the group's other work with it.
func TestGroupCommitCancelledCallerLeavesTheGroup(t *testing.T) {
	db, w := groupDB(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO t (name) VALUES ('cancelled')"); err != nil {
		t.Fatal(err)
	}
	other := inBackground(insert(db, "other"))
	waitForWaiting(t, w, 1)
	cancel() // database/sql rolls the transaction back
	if err := <-other; err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err == nil {
		t.Error("a cancelled transaction committed")
	}
	if got := names(t, db); len(got) != 1 || !got["other"] {
		t.Errorf("rows %v, want other", got)
	}
}

// Store.sqliteTx and Migrate send BEGIN IMMEDIATE and COMMIT as text on a
// *sql.Conn: that is a transaction of the caller's in the group too.
func TestGroupCommitTransactionAsText(t *testing.T) {
	db, w := groupDB(t, nil)
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{"BEGIN IMMEDIATE", "INSERT INTO t (name) VALUES ('text')"} {
		if _, err := conn.ExecContext(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	other := inBackground(insert(db, "other"))
	waitForWaiting(t, w, 1)
	if _, err := conn.ExecContext(context.Background(), "COMMIT;"); err != nil {
		t.Fatal(err)
	}
	if err := <-other; err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"begin", "INSERT INTO t (name) VALUES ('rolled back')", "ROLLBACK"} {
		if _, err := conn.ExecContext(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	if got := names(t, db); len(got) != 2 || !got["text"] || !got["other"] {
		t.Errorf("rows %v, want text and other", got)
	}
	// A PRAGMA runs outside any group.
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode %q, %v", mode, err)
	}
}

func TestTxControl(t *testing.T) {
	for q, want := range map[string]string{
		"BEGIN IMMEDIATE":      "begin",
		"begin transaction;":   "begin",
		" BEGIN   EXCLUSIVE ":  "begin",
		"COMMIT":               "commit",
		"end transaction":      "commit",
		"ROLLBACK;":            "rollback",
		"ROLLBACK TO sp":       "",
		"SAVEPOINT sp":         "",
		"INSERT INTO t VALUES": "",
	} {
		if got := txControl(q); got != want {
			t.Errorf("txControl(%q) = %q, want %q", q, got, want)
		}
	}
}

// A SELECT outside a transaction runs on a read connection: it neither
// waits for a caller holding the writer nor sees that caller's writes
// before their commit, and sees them after.
func TestReadsRunBesideTheWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	db, err := OpenDB(SQLite, "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t (name TEXT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	tx := holding(t, db, "a")
	defer tx.Rollback() //nolint:errcheck // frees the writer if the test fails first
	count := func() int {
		var n int
		read := inBackground(func() error { return db.QueryRow("SELECT count(*) FROM t").Scan(&n) })
		if err := within(t, read, "a read waited 5 s for the caller holding the writer"); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != 0 {
		t.Errorf("a read saw %d rows before their commit", n)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Errorf("a read after the commit saw %d rows, want 1", n)
	}
	// A write sent to a read connection fails rather than writing outside
	// the group.
	rc, err := Connector(SQLite, withQueryOnly("file:"+path))
	if err != nil {
		t.Fatal(err)
	}
	ro := sql.OpenDB(rc)
	defer ro.Close()
	if _, err := ro.Exec("CREATE TABLE u (x)"); err == nil {
		t.Error("a query_only connection wrote")
	}
}

func TestReadOnly(t *testing.T) {
	for q, want := range map[string]bool{
		"SELECT 1":                             true,
		"  select data FROM t":                 true,
		"(SELECT 1) UNION (SELECT 2)":          true,
		"WITH x AS (SELECT 1) SELECT * FROM x": false, // could end in a write
		"INSERT INTO t SELECT 1":               false,
		"PRAGMA journal_mode":                  false,
		"SEL":                                  false,
	} {
		if got := readOnly(q); got != want {
			t.Errorf("readOnly(%q) = %v, want %v", q, got, want)
		}
	}
}

// A caller whose context ends while it waits for the writer gives up at
// once, and the group it would have joined still commits.
func TestGroupCommitCallerGivesUpWaiting(t *testing.T) {
	db, w := groupDB(t, nil)
	tx := holding(t, db, "kept")
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := inBackground(func() error {
		_, err := db.ExecContext(ctx, "INSERT INTO t (name) VALUES ('gave up')")
		return err
	})
	waitForWaiting(t, w, 1)
	cancel()
	if err := within(t, gaveUp, "a caller whose context ended still waits for the writer"); !errors.Is(err, context.Canceled) {
		t.Errorf("gave up with %v, want context.Canceled", err)
	}
	if err := within(t, inBackground(tx.Commit), "the group was left open for a caller that gave up"); err != nil {
		t.Fatal(err)
	}
	if got := names(t, db); len(got) != 1 || !got["kept"] {
		t.Errorf("rows %v, want kept", got)
	}
}

// Closing the database commits a group that was left open for a caller
// still to join.
func TestGroupCommitCloseCommitsTheOpenGroup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	inner, err := Connector(SQLite, "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	c := newGroupCommitConnector(inner, nil)
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(groupCommitConns)
	if _, err := db.Exec("CREATE TABLE t (name TEXT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	tx := holding(t, db, "before close")
	w := c.writer
	closed := inBackground(db.Close) // waits for the writer, and counts as waiting
	waitForWaiting(t, w, 1)
	if err := tx.Commit(); err != nil {
		t.Fatalf("commit of a group closed behind it: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	db, err = OpenDB(SQLite, "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := names(t, db); len(got) != 1 {
		t.Errorf("rows %v after reopening, want the one committed before close", got)
	}
}

// Many callers at once, and every fifth group's COMMIT fails: every write
// acknowledged is there afterwards, and nothing that failed, or was rolled
// back, is there at all, in single statements and transactions alike.
func TestGroupCommitAcknowledgedMeansCommitted(t *testing.T) {
	db, w := groupDB(t, faulty(new(atomic.Bool), 5))
	const callers, each = 16, 60
	var (
		mu     sync.Mutex
		acked  = map[string]bool{}
		absent = map[string]bool{}
		failed int // writes that reported an error
		wg     sync.WaitGroup
	)
	note := func(ok bool, names ...string) {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range names {
			if ok {
				acked[n] = true
			} else {
				absent[n] = true
			}
		}
	}
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				name := fmt.Sprintf("c%d-%d", c, i)
				switch i % 4 {
				case 0: // one statement
					ok := insert(db, name)() == nil
					if !ok {
						mu.Lock()
						failed++
						mu.Unlock()
					}
					note(ok, name)
				case 1, 2: // a transaction of two
					tx, err := db.Begin()
					if err != nil {
						note(false, name, name+"-b")
						continue
					}
					_, err1 := tx.Exec("INSERT INTO t (name) VALUES (?)", name)
					_, err2 := tx.Exec("INSERT INTO t (name) VALUES (?)", name+"-b")
					if err1 != nil || err2 != nil {
						_ = tx.Rollback()
						note(false, name, name+"-b")
						continue
					}
					ok := tx.Commit() == nil
					if !ok {
						mu.Lock()
						failed++
						mu.Unlock()
					}
					note(ok, name, name+"-b")
				case 3: // a transaction rolled back on purpose, and a read
					tx, err := db.Begin()
					if err == nil {
						_, _ = tx.Exec("INSERT INTO t (name) VALUES (?)", name)
						_ = tx.Rollback()
					}
					note(false, name)
					var n int
					_ = db.QueryRow("SELECT count(*) FROM t").Scan(&n)
				}
			}
		}()
	}
	wg.Wait()
	got := names(t, db)
	for n := range acked {
		if !got[n] {
			t.Errorf("%s was acknowledged and is not there", n)
		}
	}
	for n := range absent {
		if got[n] {
			t.Errorf("%s failed or was rolled back and is there", n)
		}
	}
	if len(got) != len(acked) {
		t.Errorf("%d rows, %d acknowledged", len(got), len(acked))
	}
	if failed == 0 || w.commits.Load() == 0 {
		t.Fatalf("%d writes failed, %d groups committed: the test tested nothing", failed, w.commits.Load())
	}
	t.Logf("%d rows acknowledged, %d absent (%d writes failed), %d groups committed", len(acked), len(absent), failed, w.commits.Load())
}
