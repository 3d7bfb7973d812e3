package sqlstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
)

// Group commit for SQLite.
//
// OpenDB gives SQLite one connection, so writes already run one after
// another; what they do not share is the commit. Every commit writes each
// page it changed to the write-ahead log (two write calls a page) and, at
// synchronous=FULL, fsyncs it: a drop's order made about six of them, and
// the commits of 50,000 orders took most of the run. Here a commit is
// shared: while one caller's work runs, the callers queued behind it join
// the same SQLite transaction, each inside a SAVEPOINT of its own, and the
// last of them to run commits for all. Pages that many callers change (the
// tables' hot index pages) go to the log once a group, and FULL costs one
// fsync a group.
//
// What a caller is told keeps its meaning:
//   - A caller's commit returns only after the group's COMMIT did, with its
//     outcome: nobody hears "done" about a write that is not durable.
//   - A caller's rollback undoes its own savepoint and nothing else.
//   - A read that ran inside an open group (and so may have seen the writes
//     of callers still waiting) returns only after that group committed; if
//     the group failed, the read fails too, so no caller acts on a write that
//     never happened.
//   - A statement that fails alone leaves the group be (SQLite undoes a
//     failed statement by itself); one that makes SQLite roll back the whole
//     transaction fails every caller of the group.
//   - Statements on the shared transaction never see the callers' contexts:
//     SQLite answers an interrupted write by rolling back the whole
//     transaction, which would undo the others' work. A caller's context
//     still ends its wait for the connection and its own transaction
//     (database/sql rolls that back).
//
// Another process on the same file waits for the write lock in SQLite's
// busy handler, as before, but a group holds the lock for longer than one
// transaction did (up to maxGroupMembers callers' work): under a steady load
// in this process, the other one's writes wait longer, and fail after
// busy_timeout. A database that several busy processes write is better on
// PostgreSQL or MySQL.
//
// The group commits when no caller waits for the connection (after letting
// the goroutines ready to run go first), or when it holds maxGroupMembers
// callers, which bounds the first caller's wait. In a 15,000-order drop at
// synchronous=NORMAL the yield took the drop from 9.4 s to 8.7 s (about 4
// callers a commit without it). A timer instead (commit 300 µs after the
// last caller joined) made groups of 11 but stretched every chain of calls
// that waits for its commits: the drop's webhooks drained 20 s late.

const (
	// maxGroupMembers bounds the callers of one commit.
	maxGroupMembers = 48
	// groupCommitConns is the size of database/sql's pool of virtual
	// connections: more than maxGroupMembers, so that a full group never
	// holds all of them while it waits for its commit.
	groupCommitConns = 64
	// memberSavepoint is each caller's SAVEPOINT. Callers run one at a time,
	// so one name serves them all; it differs from any name a caller would
	// choose for its own nested savepoints.
	memberSavepoint = "paymux_group_member"
)

// groupCommitConnector hands database/sql virtual connections that all run
// on one connection of inner, which it opens at the first Connect and
// closes with the DB.
type groupCommitConnector struct {
	inner driver.Connector
	reads *readPool // nil: reads run on the writer too

	mu     sync.Mutex
	writer *groupWriter
}

// newGroupCommitConnector groups the commits of inner's one connection;
// with readers, SELECTs outside transactions run on those (readers.go).
func newGroupCommitConnector(inner, readers driver.Connector) *groupCommitConnector {
	c := &groupCommitConnector{inner: inner}
	if readers != nil {
		c.reads = newReadPool(readers, maxReaders)
	}
	return c
}

func (c *groupCommitConnector) Connect(ctx context.Context) (driver.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writer == nil {
		conn, err := c.inner.Connect(ctx)
		if err != nil {
			return nil, err
		}
		e, eok := conn.(driver.ExecerContext)
		q, qok := conn.(driver.QueryerContext)
		if !eok || !qok {
			_ = conn.Close()
			return nil, errors.New("sqlstore: group commit needs a driver with ExecerContext and QueryerContext")
		}
		c.writer = &groupWriter{conn: conn, exec: e, query: q, turn: make(chan struct{}, 1)}
	}
	return &groupMember{w: c.writer, reads: c.reads}, nil
}

func (c *groupCommitConnector) Driver() driver.Driver { return groupedDriver{c.inner.Driver()} }

// groupedDriver marks a *sql.DB whose writes are grouped (see
// groupCommitted); it is the driver underneath for everything else.
type groupedDriver struct{ driver.Driver }

// groupCommitted reports whether db runs on one group-committing SQLite
// connection, which queues writers by itself.
func groupCommitted(db interface{ Driver() driver.Driver }) bool {
	_, ok := db.Driver().(groupedDriver)
	return ok
}

// Close closes the shared connection; database/sql calls it from DB.Close.
// A group left open for callers still to join is committed first: its
// callers are waiting to hear that it was.
func (c *groupCommitConnector) Close() error {
	c.mu.Lock()
	w := c.writer
	c.writer = nil
	c.mu.Unlock()
	var errs []error
	if c.reads != nil {
		errs = append(errs, c.reads.close())
	}
	if w != nil {
		_ = w.lock(background)
		if w.group != nil {
			w.commit()
		}
		errs = append(errs, w.conn.Close())
		w.release()
	}
	if cl, ok := c.inner.(io.Closer); ok {
		errs = append(errs, cl.Close())
	}
	return errors.Join(errs...)
}

// groupWriter is the one connection and the group open on it.
type groupWriter struct {
	conn  driver.Conn
	exec  driver.ExecerContext
	query driver.QueryerContext

	waiting atomic.Int32 // callers blocked in lock
	commits atomic.Int64 // groups committed, for tests

	turn  chan struct{} // holds a token while a caller uses conn
	group *txGroup      // the open transaction, or nil; only the turn's holder touches it
}

// txGroup is one shared transaction.
type txGroup struct {
	members int           // callers whose work it holds
	done    chan struct{} // closed when it committed or failed
	err     error         // why it failed; set before done closes
}

// lock waits for the connection, or until ctx ends. A holder that saw this
// caller waiting may have left the group open for it to join, and callers
// already wait for that group's commit: a caller that gives up therefore
// leaves a turn behind, taken only to commit the group if nobody else does.
func (w *groupWriter) lock(ctx context.Context) error {
	select {
	case w.turn <- struct{}{}:
		return nil
	default:
	}
	w.waiting.Add(1)
	select {
	case w.turn <- struct{}{}:
		w.waiting.Add(-1)
		return nil
	case <-ctx.Done():
		w.waiting.Add(-1)
		go func() {
			_ = w.lock(background)
			w.unlock()
		}()
		return ctx.Err()
	}
}

// release lets the next caller run, leaving the group as it is.
func (w *groupWriter) release() { <-w.turn }

// unlock commits the open group if nobody else is waiting to join it, or if
// it is full, and lets the next caller run.
func (w *groupWriter) unlock() {
	if g := w.group; g != nil && g.members < maxGroupMembers && w.waiting.Load() == 0 {
		// Before committing for nobody else, let the goroutines that are
		// ready to run go first: under load some are on their way here
		// and join. Alone, it returns at once.
		runtime.Gosched()
	}
	if g := w.group; g != nil && (g.members >= maxGroupMembers || w.waiting.Load() == 0) {
		w.commit()
	}
	w.release()
}

var background = context.Background()

func (w *groupWriter) run(q string) error {
	_, err := w.exec.ExecContext(background, q, nil)
	return err
}

// begin opens a group unless one is open.
func (w *groupWriter) begin() error {
	if w.group != nil {
		return nil
	}
	if err := w.run("BEGIN IMMEDIATE"); err != nil {
		return err
	}
	w.group = &txGroup{done: make(chan struct{})}
	return nil
}

func (w *groupWriter) commit() {
	if err := w.run("COMMIT"); err != nil {
		_ = w.run("ROLLBACK")
		w.end(fmt.Errorf("sqlstore: commit: %w", err))
		return
	}
	w.commits.Add(1)
	w.end(nil)
}

// fail rolls the open group back and tells its callers why.
func (w *groupWriter) fail(cause error) {
	_ = w.run("ROLLBACK")
	w.end(fmt.Errorf("sqlstore: transaction rolled back: %w", cause))
}

// end closes the open group with its outcome, for the callers waiting on it.
func (w *groupWriter) end(err error) {
	g := w.group
	w.group = nil
	g.err = err
	close(g.done)
}

// failIfGone checks, after a statement in the open group failed, whether
// SQLite rolled the whole transaction back (it does for some errors: a
// full disk, an I/O error, an interrupt). BEGIN fails inside a transaction
// and succeeds outside one.
func (w *groupWriter) failIfGone(cause error) {
	if w.group == nil {
		return
	}
	if err := w.run("BEGIN"); err != nil {
		return // still in the transaction
	}
	_ = w.run("ROLLBACK")
	w.end(fmt.Errorf("sqlstore: transaction rolled back by the database: %w", cause))
}

// flush commits the open group now, for a statement that cannot run in a
// transaction, and reports the group's outcome.
func (w *groupWriter) flush() error {
	g := w.group
	if g == nil {
		return nil
	}
	w.commit()
	return g.err
}

// outcome waits for g to end and returns its error.
func outcome(g *txGroup) error {
	<-g.done
	return g.err
}

// groupMember is one of database/sql's virtual connections.
type groupMember struct {
	w     *groupWriter
	reads *readPool
	tx    *txGroup // set while this connection holds the writer in a transaction
}

var (
	_ driver.ExecerContext      = (*groupMember)(nil)
	_ driver.QueryerContext     = (*groupMember)(nil)
	_ driver.ConnPrepareContext = (*groupMember)(nil)
	_ driver.ConnBeginTx        = (*groupMember)(nil)
	_ driver.SessionResetter    = (*groupMember)(nil)
)

// txControl recognises the transaction statements that callers (such as
// Store.sqliteTx, which needs BEGIN IMMEDIATE) send as text; they mean this
// caller's part of the group.
func txControl(q string) string {
	s := strings.ToUpper(strings.Join(strings.Fields(strings.TrimRight(q, "; \t\r\n")), " "))
	s = strings.TrimSuffix(s, " TRANSACTION")
	switch s {
	case "BEGIN", "BEGIN IMMEDIATE", "BEGIN DEFERRED", "BEGIN EXCLUSIVE":
		return "begin"
	case "COMMIT", "END":
		return "commit"
	case "ROLLBACK":
		return "rollback"
	}
	return ""
}

// outsideTx reports statements that SQLite refuses, or ignores, inside a
// transaction: they run after the open group commits.
func outsideTx(q string) bool {
	switch strings.ToUpper(firstWord(q)) {
	case "PRAGMA", "VACUUM", "ATTACH", "DETACH":
		return true
	}
	return false
}

func (m *groupMember) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	if len(args) == 0 {
		switch txControl(q) {
		case "begin":
			if _, err := m.BeginTx(ctx, driver.TxOptions{}); err != nil {
				return nil, err
			}
			return driver.ResultNoRows, nil
		case "commit":
			return driver.ResultNoRows, m.commit()
		case "rollback":
			return driver.ResultNoRows, m.rollback()
		}
	}
	w := m.w
	run := func(ctx context.Context) (driver.Result, error) { return w.exec.ExecContext(ctx, q, args) }
	if m.tx != nil {
		return ownTx(m, ctx, run)
	}
	return shared(ctx, w, q, true, run)
}

func (m *groupMember) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	w := m.w
	if m.tx != nil {
		return ownTx(m, ctx, func(ctx context.Context) (driver.Rows, error) { return w.query.QueryContext(ctx, q, args) })
	}
	if m.reads != nil && readOnly(q) {
		return m.reads.query(ctx, q, args)
	}
	// A read runs in the open group, if there is one, and then waits for it;
	// with none open it runs on its own. A statement that writes (RETURNING)
	// commits on its own then, as it would without grouping.
	return shared(ctx, w, q, false, func(ctx context.Context) (driver.Rows, error) {
		rows, err := w.query.QueryContext(ctx, q, args)
		if err != nil {
			return nil, err
		}
		return drain(rows)
	})
}

// ownTx runs a statement of the caller's own transaction, which holds the
// writer already.
func ownTx[T any](m *groupMember, ctx context.Context, run func(context.Context) (T, error)) (T, error) {
	if err := m.inTx(); err != nil {
		var zero T
		return zero, err
	}
	v, err := run(context.WithoutCancel(ctx))
	if err != nil {
		m.w.failIfGone(err)
	}
	return v, err
}

// shared runs a caller's statement outside a transaction of its own: in the
// open group (opening one first if open is set), and returns once the group
// has committed. A statement that cannot run in a transaction runs after
// the open group commits.
func shared[T any](ctx context.Context, w *groupWriter, q string, open bool, run func(context.Context) (T, error)) (T, error) {
	var zero T
	if err := w.lock(ctx); err != nil {
		return zero, err
	}
	ctx = context.WithoutCancel(ctx)
	if outsideTx(q) {
		if err := w.flush(); err != nil {
			w.release()
			return zero, err
		}
		v, err := run(ctx)
		w.release()
		return v, err
	}
	if open {
		if err := w.begin(); err != nil {
			w.unlock()
			return zero, err
		}
	}
	g := w.group
	v, err := run(ctx)
	if err != nil {
		w.failIfGone(err)
		w.unlock()
		return zero, err
	}
	if g != nil {
		g.members++
	}
	w.unlock()
	if g != nil {
		if err := outcome(g); err != nil {
			return zero, err
		}
	}
	return v, nil
}

// inTx refuses statements in a transaction that the database already rolled
// back: run outside it, each would commit on its own.
func (m *groupMember) inTx() error {
	if m.tx != m.w.group {
		<-m.tx.done
		return m.tx.err
	}
	return nil
}

func (m *groupMember) Begin() (driver.Tx, error) {
	return m.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx joins the open group, or opens one, and marks where this caller's
// work starts. The caller holds the connection until it commits or rolls
// back, as it would hold a connection of its own.
func (m *groupMember) BeginTx(ctx context.Context, _ driver.TxOptions) (driver.Tx, error) {
	if m.tx != nil {
		return nil, errors.New("sqlstore: cannot start a transaction within a transaction")
	}
	w := m.w
	if err := w.lock(ctx); err != nil {
		return nil, err
	}
	if err := w.begin(); err != nil {
		w.unlock()
		return nil, err
	}
	if err := w.run("SAVEPOINT " + memberSavepoint); err != nil {
		w.failIfGone(err)
		w.unlock()
		return nil, err
	}
	m.tx = w.group
	return memberTx{m}, nil
}

// commit ends this caller's part and waits for the group's commit.
func (m *groupMember) commit() error {
	g := m.tx
	if g == nil {
		return errors.New("sqlstore: commit without a transaction")
	}
	m.tx = nil
	w := m.w
	if err := w.run("RELEASE " + memberSavepoint); err != nil {
		// The savepoint is gone, and the transaction with it, or it
		// could not be released: either way this work is not committed.
		m.undo(err)
		w.unlock()
		return err
	}
	g.members++
	w.unlock()
	return outcome(g)
}

// rollback undoes this caller's part; the group goes on without it.
func (m *groupMember) rollback() error {
	if m.tx == nil {
		return errors.New("sqlstore: rollback without a transaction")
	}
	m.tx = nil
	m.undo(nil)
	m.w.unlock()
	return nil
}

// undo rolls back to this caller's savepoint and drops it; if that is not
// possible the transaction is not what the group thinks it is, and the
// whole group fails.
func (m *groupMember) undo(cause error) {
	w := m.w
	err := w.run("ROLLBACK TO " + memberSavepoint)
	if err == nil {
		err = w.run("RELEASE " + memberSavepoint)
	}
	if err != nil && w.group != nil {
		w.fail(errors.Join(cause, err))
	}
}

func (m *groupMember) Prepare(q string) (driver.Stmt, error) {
	return m.PrepareContext(context.Background(), q)
}

// PrepareContext returns a statement that runs its text through this
// connection: the shared connection keeps its own prepared statements.
func (m *groupMember) PrepareContext(_ context.Context, q string) (driver.Stmt, error) {
	return memberStmt{m: m, q: q}, nil
}

// ResetSession ends a transaction that its caller left open before the
// connection went back to the pool.
func (m *groupMember) ResetSession(context.Context) error {
	if m.tx != nil {
		_ = m.rollback()
	}
	return nil
}

func (m *groupMember) Close() error {
	if m.tx != nil {
		_ = m.rollback()
	}
	return nil
}

type memberTx struct{ m *groupMember }

func (t memberTx) Commit() error   { return t.m.commit() }
func (t memberTx) Rollback() error { return t.m.rollback() }

type memberStmt struct {
	m *groupMember
	q string
}

func (s memberStmt) Close() error  { return nil }
func (s memberStmt) NumInput() int { return -1 }

func (s memberStmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.ExecContext(context.Background(), named(args))
}

func (s memberStmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.QueryContext(context.Background(), named(args))
}

func (s memberStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.m.ExecContext(ctx, s.q, args)
}

func (s memberStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.m.QueryContext(ctx, s.q, args)
}

func named(args []driver.Value) []driver.NamedValue {
	nv := make([]driver.NamedValue, len(args))
	for i, v := range args {
		nv[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return nv
}

// bufferedRows holds a result read to its end, so that the connection is
// free before the caller reads it (a group's member's, or a pipelined
// statement's).
type bufferedRows struct {
	cols []string
	rows [][]driver.Value
	next int
}

func drain(r driver.Rows) (*bufferedRows, error) {
	b := &bufferedRows{cols: r.Columns()}
	for {
		row := make([]driver.Value, len(b.cols))
		err := r.Next(row)
		if err == io.EOF {
			break
		}
		if err != nil {
			_ = r.Close()
			return nil, err
		}
		for i, v := range row {
			if p, ok := v.([]byte); ok { // the driver may reuse its buffer
				row[i] = append([]byte(nil), p...)
			}
		}
		b.rows = append(b.rows, row)
	}
	return b, r.Close()
}

func (b *bufferedRows) Columns() []string { return b.cols }
func (b *bufferedRows) Close() error      { return nil }

func (b *bufferedRows) Next(dest []driver.Value) error {
	if b.next >= len(b.rows) {
		return io.EOF
	}
	copy(dest, b.rows[b.next])
	b.next++
	return nil
}
