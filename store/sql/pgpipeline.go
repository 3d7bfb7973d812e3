package sqlstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"
)

// Shared commits for PostgreSQL.
//
// On PostgreSQL every write of a drop's order is already one statement in
// its own implicit transaction, about six of them an order, and each pays
// for a commit: a WAL flush, and on a small machine the context switches of
// waking a backend process and waiting for it. pgbench on the project's
// 2-core VM commits about 5,000 one-row updates a second from 16 clients,
// both cores busy, but 25,800 a second when one client sends them 16 at a
// time in one pipeline and one implicit transaction. So statements marked
// with MayShareCommit are queued, and a dedicated connection sends what
// is queued as one pipeline ending in one Sync: PostgreSQL runs them one
// after another in one implicit transaction and commits them together.
//
// What a caller is told keeps its meaning:
//   - A statement's result is handed back only after the shared commit,
//     with its outcome: nobody hears "done" about a write that is not
//     durable, and no caller sees a result computed from another caller's
//     write that was then rolled back.
//   - A statement that fails makes PostgreSQL roll back the whole implicit
//     transaction. The failed statement is then run again on its own and
//     its caller gets that outcome; the statements before and after it
//     never committed and go back to the head of the queue. So a failing
//     statement costs its neighbours a second trip, never their writes; a
//     statement expected to fail often should be written not to fail (the
//     reference platform's checkout reports sold out as a result, and
//     aborts on purpose only in a rare race).
//   - If the connection breaks while a pipeline is out, nobody can tell
//     whether it committed: every caller in it gets an error (not
//     driver.ErrBadConn, which would make database/sql send the write
//     again), as a single statement on a broken connection would.
//   - A caller whose context ends before its statement is sent withdraws
//     it. Once sent, the caller waits for the outcome (milliseconds), so
//     that it never returns an error for a write that committed.
//
// Only statements that may share a transaction with strangers' are marked:
// single-statement writes that hold no session state and that any
// interleaving with other callers' statements leaves correct, as two
// autocommit statements from two connections would be. Statements inside a
// transaction, unmarked ones and SELECTs run on the caller's own
// connection as before.

// maxPipeline bounds the statements of one shared commit. database/sql's
// pool (32 connections) bounds how many callers wait at once anyway.
const maxPipeline = 32

// pipelineConns is the number of dedicated connections sending pipelines:
// one, so that no two shared transactions ever wait for each other.
//
// With more than one, the first takes any marked statement and the others
// none marked MayShareCommitOnHotRows. Two transactions that each hold many
// callers' locks wait for each other in a cycle whenever two callers' rows
// cross: PostgreSQL breaks the cycle only after deadlock_timeout (1 s), by
// rolling one back, and every statement in both pipelines waits that second.
// The hot-rows lane kept the stock counters out of such cycles, but not a
// double-click's two claims of one key or the worker's and the webhook's
// settlement of one order. With two connections, a 50,000-buyer drop with
// 64 pool connections and 128 workers met such deadlocks (an idempotency
// claim against an order's settlement, two in one run, each a 1-s stall in
// its latency plot) and took 26.7-28.5 s; with one it met none and took
// 25.8 and 26.0 s. At the default pool and workers both took 30.8-31.3 s.
// (When PostgreSQL still planned every execution anew, one connection was
// the slower: 105.5 s against 87.4 s on a slower machine.) One connection
// runs all shared commits on one server process, so one core bounds them:
// at 1,800 orders a second, 5.4 statements an order and about 0.07 ms of
// execution each (pg_stat_statements), some 0.7 of a core.
const pipelineConns = 1

// pipelineTimeout bounds one pipeline's round trip. A pipeline can wait for
// a row lock that a transaction elsewhere holds, and every marked statement
// waits behind it; a connection that stopped answering must not hold them
// for ever. On time-out pgx closes the connection, so the callers hear that
// the outcome is unknown.
const pipelineTimeout = 30 * time.Second

// shareCommitKey marks a context: sharesCommit or sharesCommitOnHotRows.
type shareCommitKey struct{}

type shareCommitMark int

const (
	sharesCommit shareCommitMark = iota + 1
	sharesCommitOnHotRows
)

// MayShareCommit marks ctx: a single-statement write run with it, outside a
// transaction, on a PostgreSQL *sql.DB from OpenDB, may be sent in one
// pipeline with other callers' statements and committed in one transaction
// with them. The caller still gets its own statement's result, only after
// the commit, and its own error. Mark only statements that hold no session
// state (no temporary tables, no SET) and that would be correct whatever
// other callers' statements ran right before them in the same transaction.
// Elsewhere (other dialects, other databases, inside transactions) the
// mark changes nothing.
func MayShareCommit(ctx context.Context) context.Context {
	return context.WithValue(ctx, shareCommitKey{}, sharesCommit)
}

// MayShareCommitOnHotRows is MayShareCommit for a statement that locks rows
// that many callers' statements lock too, such as a product's stock
// counter. Such statements all go to the same pipeline connection: two
// pipelines that each held some of those rows could wait for each other,
// and PostgreSQL ends that only after deadlock_timeout, by rolling one of
// them back.
func MayShareCommitOnHotRows(ctx context.Context) context.Context {
	return context.WithValue(ctx, shareCommitKey{}, sharesCommitOnHotRows)
}

func shareCommitMarkOf(ctx context.Context) shareCommitMark {
	v, _ := ctx.Value(shareCommitKey{}).(shareCommitMark)
	return v
}

// pipelineConnector hands database/sql inner's connections, wrapped so that
// marked statements go to the shared pipelines.
type pipelineConnector struct {
	inner driver.Connector
	p     *pipeliner
}

func newPipelineConnector(inner driver.Connector) *pipelineConnector {
	return &pipelineConnector{inner: inner, p: newPipeliner(inner)}
}

func (c *pipelineConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	pc, ok := conn.(*stdlib.Conn)
	if !ok {
		return conn, nil
	}
	return &pipelineConn{pgxStdlibConn: pc, p: c.p}, nil
}

func (c *pipelineConnector) Driver() driver.Driver { return c.inner.Driver() }

// Close stops the pipelines (database/sql calls it from DB.Close).
func (c *pipelineConnector) Close() error {
	err := c.p.close()
	if cl, ok := c.inner.(io.Closer); ok {
		err = errors.Join(err, cl.Close())
	}
	return err
}

// pipelineConn is pgx's connection with marked statements sent elsewhere.
// database/sql uses a connection from one goroutine at a time, so inTx
// needs no lock.
type pipelineConn struct {
	*pgxStdlibConn
	p    *pipeliner
	inTx bool
}

// pgxStdlibConn names the embedded connection something other than Conn,
// so that its method Conn() *pgx.Conn is promoted for sql.Conn.Raw.
type pgxStdlibConn = stdlib.Conn

func (c *pipelineConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *pipelineConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	tx, err := c.pgxStdlibConn.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	c.inTx = true
	return pipelineTx{Tx: tx, c: c}, nil
}

type pipelineTx struct {
	driver.Tx
	c *pipelineConn
}

func (t pipelineTx) Commit() error   { t.c.inTx = false; return t.Tx.Commit() }
func (t pipelineTx) Rollback() error { t.c.inTx = false; return t.Tx.Rollback() }

func (c *pipelineConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	mark := c.sharing(ctx, query)
	if mark == 0 {
		return c.pgxStdlibConn.ExecContext(ctx, query, args)
	}
	out, err := c.p.run(ctx, query, args, false, mark == sharesCommitOnHotRows)
	if err != nil {
		return nil, err
	}
	return driver.RowsAffected(out.tag.RowsAffected()), nil
}

func (c *pipelineConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	mark := c.sharing(ctx, query)
	if mark == 0 {
		return c.pgxStdlibConn.QueryContext(ctx, query, args)
	}
	out, err := c.p.run(ctx, query, args, true, mark == sharesCommitOnHotRows)
	if err != nil {
		return nil, err
	}
	return out.rows, nil
}

// sharing returns ctx's mark if query goes to a pipeline, 0 if it runs on
// this connection. A transaction begun as text (BEGIN, START TRANSACTION)
// keeps the connection's statements on it until it ends.
func (c *pipelineConn) sharing(ctx context.Context, query string) shareCommitMark {
	word := firstWord(query)
	is := func(w string) bool { return strings.EqualFold(word, w) }
	switch {
	case is("BEGIN") || is("START"):
		c.inTx = true
	case is("COMMIT") || is("ROLLBACK") || is("END") || is("ABORT"):
		c.inTx = false
	case !c.inTx && (is("INSERT") || is("UPDATE") || is("DELETE") || is("WITH")):
		return shareCommitMarkOf(ctx)
	}
	return 0
}

// firstWord returns the statement's first word: "" if it starts with
// anything but a letter (a comment, a parenthesis).
func firstWord(q string) string {
	q = strings.TrimLeft(q, " \t\r\n")
	n := 0
	for n < len(q) && ('a' <= q[n]|0x20 && q[n]|0x20 <= 'z') {
		n++
	}
	return q[:n]
}

// pipeliner queues marked statements and runs them on its connections.
type pipeliner struct {
	connector driver.Connector

	mu      sync.Mutex
	ready   sync.Cond
	queue   []*piped
	started bool
	closed  bool
	workers sync.WaitGroup
}

// piped is one caller's statement and, once done is closed, its outcome.
type piped struct {
	query string
	args  []any
	rows  bool // the caller wants rows (QueryContext)
	hot   bool // MayShareCommitOnHotRows: only the first connection takes it

	taken bool // sent in a pipeline: the caller waits for the outcome
	done  chan struct{}
	out   pipedOutcome
}

type pipedOutcome struct {
	tag  pgconn.CommandTag
	rows *bufferedRows
	err  error
}

func newPipeliner(connector driver.Connector) *pipeliner {
	p := &pipeliner{connector: connector}
	p.ready.L = &p.mu
	return p
}

var errPipelineClosed = errors.New("sqlstore: database is closed")

// run queues one statement and waits for its outcome.
func (p *pipeliner) run(ctx context.Context, query string, named []driver.NamedValue, rows, hot bool) (pipedOutcome, error) {
	args := make([]any, len(named))
	for i, nv := range named {
		args[i] = nv.Value
	}
	s := &piped{query: query, args: args, rows: rows, hot: hot, done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return pipedOutcome{}, errPipelineClosed
	}
	if !p.started {
		p.started = true
		for conn := range pipelineConns {
			p.workers.Add(1)
			go p.work(conn == 0)
		}
	}
	p.queue = append(p.queue, s)
	// Broadcast: the connection that woke might not take s.
	p.ready.Broadcast()
	p.mu.Unlock()

	select {
	case <-s.done:
	case <-ctx.Done():
		p.mu.Lock()
		if !s.taken {
			p.queue = remove(p.queue, s)
			p.mu.Unlock()
			return pipedOutcome{}, ctx.Err()
		}
		p.mu.Unlock()
		<-s.done
	}
	return s.out, s.out.err
}

func remove(q []*piped, s *piped) []*piped {
	for i, t := range q {
		if t == s {
			return append(q[:i], q[i+1:]...)
		}
	}
	return q
}

// take waits for queued statements it may take (any, or only those not on
// hot rows) and takes up to maxPipeline of them, oldest first; nil once the
// pipeliner is closed.
func (p *pipeliner) take(anyStatement bool) []*piped {
	p.mu.Lock()
	defer p.mu.Unlock()
	for !p.closed && !p.queued(anyStatement) {
		p.ready.Wait()
	}
	if p.closed {
		return nil
	}
	var batch []*piped
	left := p.queue[:0]
	for _, s := range p.queue {
		if len(batch) < maxPipeline && (anyStatement || !s.hot) {
			s.taken = true
			batch = append(batch, s)
		} else {
			left = append(left, s)
		}
	}
	clear(p.queue[len(left):])
	p.queue = left
	if len(left) > 0 {
		p.ready.Broadcast() // for the other connection
	}
	return batch
}

func (p *pipeliner) queued(anyStatement bool) bool {
	if anyStatement {
		return len(p.queue) > 0
	}
	for _, s := range p.queue {
		if !s.hot {
			return true
		}
	}
	return false
}

// requeue puts statements that were rolled back, unanswered, at the head of
// the queue.
func (p *pipeliner) requeue(batch []*piped) {
	if len(batch) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, s := range batch {
			s.finish(pipedOutcome{err: errPipelineClosed})
		}
		return
	}
	for _, s := range batch {
		s.taken = false // rolled back: its caller may still withdraw it
	}
	p.queue = append(batch, p.queue...)
	p.ready.Broadcast()
}

func (s *piped) finish(out pipedOutcome) {
	s.out = out
	close(s.done)
}

func (p *pipeliner) close() error {
	p.mu.Lock()
	p.closed = true
	queued := p.queue
	p.queue = nil
	p.ready.Broadcast()
	p.mu.Unlock()
	for _, s := range queued {
		s.finish(pipedOutcome{err: errPipelineClosed})
	}
	p.workers.Wait()
	return nil
}

// work sends pipelines on a connection of its own until the pipeliner
// closes, and reconnects after a connection breaks. anyStatement: it takes
// statements on hot rows too.
func (p *pipeliner) work(anyStatement bool) {
	defer p.workers.Done()
	var conn *stdlib.Conn
	defer func() {
		if conn != nil {
			_ = conn.Close()
		}
	}()
	for {
		batch := p.take(anyStatement)
		if batch == nil {
			return
		}
		if conn != nil && conn.Conn().IsClosed() {
			_ = conn.Close()
			conn = nil
		}
		if conn == nil {
			c, err := p.connect()
			if err != nil {
				// Nothing was sent: the callers may safely try again.
				for _, s := range batch {
					s.finish(pipedOutcome{err: fmt.Errorf("sqlstore: connect for a shared commit: %w", err)})
				}
				continue
			}
			conn = c
		}
		p.requeue(send(conn.Conn(), batch))
	}
}

func (p *pipeliner) connect() (*stdlib.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := p.connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := c.(*stdlib.Conn)
	if !ok {
		_ = c.Close()
		return nil, fmt.Errorf("sqlstore: shared commits need pgx's connections, got %T", c)
	}
	if err := planOnce(ctx, sc.Conn()); err != nil {
		_ = sc.Close()
		return nil, err
	}
	return sc, nil
}

// planOnce makes conn plan each prepared statement once and reuse that
// plan (plan_cache_mode = force_generic_plan).
//
// Left to choose, PostgreSQL plans a prepared statement anew at every
// execution whenever it estimates that a plan for the given values would be
// cheaper than one for any values, and it does estimate that for the
// store's statements of several CTEs. A perf profile of a 30,000-buyer drop
// showed a third of the server's CPU in planning (GetCachedPlan 15 % of the
// machine's, the server 48 %), and forcing one plan took a 50,000-buyer drop
// from 37 s to 30.5 s. Only these connections are set: they run nothing but
// statements marked MayShareCommit, writes that find their rows by key,
// whose best plan does not depend on the key's value. The one that scans,
// the outbox's claim, reads a partial index whose predicate's value is a
// literal in its text (a plan for any value could not use the index
// otherwise), so it keeps that index here too.
//
// The setting lasts for the connection's session. Behind a pooler in
// transaction mode (PgBouncer's pool_mode = transaction) it would reach
// the other clients of the same server connection, and pgx's prepared
// statements would go missing there anyway: give the store a direct or a
// session-pooled connection.
func planOnce(ctx context.Context, conn *pgx.Conn) error {
	_, err := conn.Exec(ctx, "SET plan_cache_mode = force_generic_plan")
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42704" {
		return nil // PostgreSQL before 12 has no such setting: it keeps choosing
	}
	if err != nil {
		return fmt.Errorf("sqlstore: set up a shared-commit connection: %w", err)
	}
	return nil
}

// send runs batch as one pipeline and one implicit transaction and answers
// its callers. It returns the statements that were rolled back because
// another one failed: they were not answered and go back to the queue.
func send(conn *pgx.Conn, batch []*piped) (again []*piped) {
	// The callers' contexts are not used: cancelling one statement would
	// roll back the others'.
	ctx, cancel := context.WithTimeout(context.Background(), pipelineTimeout)
	defer cancel()
	b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(batch))}
	for _, s := range batch {
		b.Queue(s.query, s.args...)
	}
	results := make([]pipedResult, len(batch))
	failed, firstErr := -1, error(nil)
	br := conn.SendBatch(ctx, b)
	for i, s := range batch {
		results[i] = readResult(br, s.rows)
		if results[i].err != nil && failed < 0 {
			failed, firstErr = i, results[i].err
		}
	}
	closeErr := br.Close()
	if failed < 0 && closeErr == nil {
		for i, s := range batch {
			s.finish(results[i].outcome(conn.TypeMap()))
		}
		return nil
	}
	if firstErr == nil {
		failed, firstErr = 0, closeErr
	}
	if conn.IsClosed() || !rolledBack(firstErr) {
		// The connection broke with the pipeline out: it may or may not
		// have committed.
		err := outcomeUnknown(firstErr)
		for _, s := range batch {
			s.finish(pipedOutcome{err: err})
		}
		_ = conn.Close(ctx)
		return nil
	}
	// The server rolled everything back: the failed statement runs again
	// alone and its caller gets that outcome; the others go back to the
	// queue.
	s := batch[failed]
	s.finish(sendOne(ctx, conn, s))
	return append(batch[:failed:failed], batch[failed+1:]...)
}

// outcomeUnknown wraps the error of a connection that broke with statements
// out: they may or may not have committed.
func outcomeUnknown(err error) error {
	return fmt.Errorf("sqlstore: shared commit: outcome unknown: %w", err)
}

// rolledBack reports whether err means the server ended the pipeline's
// transaction without committing anything: an error the server sent, or a
// statement pgx could not prepare or encode before sending.
func rolledBack(err error) bool {
	var pe *pgconn.PgError
	var pre pgx.ErrPreprocessingBatch
	return errors.As(err, &pe) || errors.As(err, &pre)
}

// sendOne runs one statement in its own implicit transaction.
func sendOne(ctx context.Context, conn *pgx.Conn, s *piped) pipedOutcome {
	b := &pgx.Batch{}
	b.Queue(s.query, s.args...)
	br := conn.SendBatch(ctx, b)
	r := readResult(br, s.rows)
	if err := br.Close(); r.err == nil && err != nil {
		r.err = err
	}
	if r.err != nil {
		if conn.IsClosed() {
			r.err = outcomeUnknown(r.err)
		}
		return pipedOutcome{err: r.err}
	}
	return r.outcome(conn.TypeMap())
}

// pipedResult is a statement's result as read from the pipeline, before
// the commit said whether it counts.
type pipedResult struct {
	rows   bool // the caller wants rows, even none of no columns
	tag    pgconn.CommandTag
	fields []pgconn.FieldDescription
	raw    [][][]byte
	err    error
}

func readResult(br pgx.BatchResults, rows bool) pipedResult {
	if !rows {
		tag, err := br.Exec()
		return pipedResult{tag: tag, err: err}
	}
	r, err := br.Query()
	if err != nil {
		return pipedResult{err: err}
	}
	res := pipedResult{rows: true, fields: append([]pgconn.FieldDescription(nil), r.FieldDescriptions()...)}
	for r.Next() {
		// The row's bytes live in pgx's read buffer: copy them.
		row := make([][]byte, len(res.fields))
		for i, v := range r.RawValues() {
			if v != nil {
				row[i] = append(make([]byte, 0, len(v)), v...)
			}
		}
		res.raw = append(res.raw, row)
	}
	r.Close()
	res.err = r.Err()
	return res
}

// outcome decodes the rows as pgx's database/sql driver does, so a caller
// scans the same Go values from a shared commit as from its own. A value
// that does not decode fails that caller only: its statement committed.
func (r pipedResult) outcome(m *pgtype.Map) pipedOutcome {
	out := pipedOutcome{tag: r.tag}
	if !r.rows {
		return out
	}
	vr := &bufferedRows{cols: make([]string, len(r.fields)), rows: make([][]driver.Value, len(r.raw))}
	for i, f := range r.fields {
		vr.cols[i] = f.Name
	}
	for i, raw := range r.raw {
		row := make([]driver.Value, len(raw))
		for j, v := range raw {
			if v == nil {
				continue
			}
			var err error
			if row[j], err = decodeValue(m, r.fields[j], v); err != nil {
				out.err = fmt.Errorf("sqlstore: decode column %q: %w", r.fields[j].Name, err)
				return out
			}
		}
		vr.rows[i] = row
	}
	out.rows = vr
	return out
}

// decodeValue turns a column's bytes into the driver.Value pgx's stdlib
// would: integers as int64, floats as float64, times as time.Time, bytea,
// JSON and XML as []byte, anything else as its text.
func decodeValue(m *pgtype.Map, f pgconn.FieldDescription, src []byte) (driver.Value, error) {
	switch f.DataTypeOID {
	case pgtype.BoolOID:
		var d bool
		err := m.Scan(f.DataTypeOID, f.Format, src, &d)
		return d, err
	case pgtype.ByteaOID, pgtype.JSONOID, pgtype.JSONBOID, pgtype.XMLOID:
		var d []byte
		err := m.Scan(f.DataTypeOID, f.Format, src, &d)
		return d, err
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.OIDOID, pgtype.XIDOID, pgtype.CIDOID:
		var d int64
		err := m.Scan(f.DataTypeOID, f.Format, src, &d)
		return d, err
	case pgtype.Float4OID, pgtype.Float8OID:
		var d float64
		err := m.Scan(f.DataTypeOID, f.Format, src, &d)
		return d, err
	case pgtype.DateOID, pgtype.TimestampOID, pgtype.TimestamptzOID:
		var d time.Time
		err := m.Scan(f.DataTypeOID, f.Format, src, &d)
		return d, err
	}
	// pgx's stdlib asks for these in text; a pipeline gets what pgx
	// prefers, binary for the types it knows (arrays, for one): their
	// text is encoded from the decoded value then.
	var d string
	err := m.Scan(f.DataTypeOID, f.Format, src, &d)
	if err == nil || f.Format != pgtype.BinaryFormatCode {
		return d, err
	}
	var v any
	if err := m.Scan(f.DataTypeOID, f.Format, src, &v); err != nil {
		return nil, err
	}
	text, err := m.Encode(f.DataTypeOID, pgtype.TextFormatCode, v, nil)
	return string(text), err
}
