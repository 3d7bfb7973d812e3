package sqlstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"sync/atomic"
)

// Counter counts what a *sql.DB sends to its database, for benchmarks that
// measure store round trips per operation. Wrap a connector with
// CountingConnector (or use OpenCountingDB) and read Counts before and after.
// It is safe for concurrent use; the zero value is ready.
type Counter struct {
	queries, execs, prepares, begins, commits, rollbacks atomic.Int64
}

// Counts is a snapshot of a Counter.
type Counts struct {
	Queries   int64 // statements that return rows
	Execs     int64 // statements that do not
	Prepares  int64 // server-side prepares (go-sql-driver/mysql without interpolateParams)
	Begins    int64
	Commits   int64
	Rollbacks int64
}

// Counts returns the counts so far.
func (c *Counter) Counts() Counts {
	return Counts{
		Queries:   c.queries.Load(),
		Execs:     c.execs.Load(),
		Prepares:  c.prepares.Load(),
		Begins:    c.begins.Load(),
		Commits:   c.commits.Load(),
		Rollbacks: c.rollbacks.Load(),
	}
}

// Reset sets every count to zero.
func (c *Counter) Reset() {
	for _, n := range []*atomic.Int64{&c.queries, &c.execs, &c.prepares, &c.begins, &c.commits, &c.rollbacks} {
		n.Store(0)
	}
}

// RoundTrips is the number of requests the client waited on the server
// for: every statement, prepare, begin, commit and rollback. (Drivers may
// pipeline some of these, e.g. a MySQL statement close, which is not
// counted; pgx's one-off prepare of each new statement is cached per
// connection and not counted either.)
func (n Counts) RoundTrips() int64 {
	return n.Queries + n.Execs + n.Prepares + n.Begins + n.Commits + n.Rollbacks
}

// Sub returns n - m, the counts between two snapshots.
func (n Counts) Sub(m Counts) Counts {
	return Counts{
		Queries:   n.Queries - m.Queries,
		Execs:     n.Execs - m.Execs,
		Prepares:  n.Prepares - m.Prepares,
		Begins:    n.Begins - m.Begins,
		Commits:   n.Commits - m.Commits,
		Rollbacks: n.Rollbacks - m.Rollbacks,
	}
}

// CountingConnector wraps c so that every connection it makes counts its
// statements, prepares, begins, commits and rollbacks in n. Use it with
// sql.OpenDB.
func CountingConnector(c driver.Connector, n *Counter) driver.Connector {
	return &countingConnector{inner: c, n: n}
}

type countingConnector struct {
	inner driver.Connector
	n     *Counter
}

func (c *countingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &countingConn{inner: conn, n: c.n}, nil
}

func (c *countingConnector) Driver() driver.Driver { return c.inner.Driver() }

// Close closes inner if it needs closing: database/sql calls it from
// DB.Close, and OpenDB's connectors hold connections and goroutines.
func (c *countingConnector) Close() error {
	if cl, ok := c.inner.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

// countingConn forwards to the driver's connection and counts. It
// implements every optional interface database/sql looks for and answers
// driver.ErrSkip where the driver lacks one, which sends database/sql down
// the same path it would take without the wrapper.
type countingConn struct {
	inner driver.Conn
	n     *Counter
}

var (
	_ driver.ConnPrepareContext = (*countingConn)(nil)
	_ driver.ConnBeginTx        = (*countingConn)(nil)
	_ driver.ExecerContext      = (*countingConn)(nil)
	_ driver.QueryerContext     = (*countingConn)(nil)
	_ driver.Pinger             = (*countingConn)(nil)
	_ driver.SessionResetter    = (*countingConn)(nil)
	_ driver.Validator          = (*countingConn)(nil)
	_ driver.NamedValueChecker  = (*countingConn)(nil)
)

func (c *countingConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *countingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	var st driver.Stmt
	var err error
	if p, ok := c.inner.(driver.ConnPrepareContext); ok {
		st, err = p.PrepareContext(ctx, query)
	} else {
		st, err = c.inner.Prepare(query)
	}
	if err != nil {
		return nil, err
	}
	c.n.prepares.Add(1)
	return &countingStmt{inner: st, n: c.n}, nil
}

func (c *countingConn) Close() error { return c.inner.Close() }

func (c *countingConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *countingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	var tx driver.Tx
	var err error
	if b, ok := c.inner.(driver.ConnBeginTx); ok {
		tx, err = b.BeginTx(ctx, opts)
	} else {
		//nolint:staticcheck // the fallback database/sql itself uses
		tx, err = c.inner.Begin()
	}
	c.n.begins.Add(1)
	if err != nil {
		return nil, err
	}
	return &countingTx{inner: tx, n: c.n}, nil
}

func (c *countingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e, ok := c.inner.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	res, err := e.ExecContext(ctx, query, args)
	if !errors.Is(err, driver.ErrSkip) {
		c.n.execs.Add(1)
	}
	return res, err
}

func (c *countingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := c.inner.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	rows, err := q.QueryContext(ctx, query, args)
	if !errors.Is(err, driver.ErrSkip) {
		c.n.queries.Add(1)
	}
	return rows, err
}

func (c *countingConn) Ping(ctx context.Context) error {
	if p, ok := c.inner.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *countingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.inner.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *countingConn) IsValid() bool {
	if v, ok := c.inner.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (c *countingConn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.inner.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

type countingStmt struct {
	inner driver.Stmt
	n     *Counter
}

var (
	_ driver.StmtExecContext   = (*countingStmt)(nil)
	_ driver.StmtQueryContext  = (*countingStmt)(nil)
	_ driver.NamedValueChecker = (*countingStmt)(nil)
)

func (s *countingStmt) Close() error  { return s.inner.Close() }
func (s *countingStmt) NumInput() int { return s.inner.NumInput() }

func (s *countingStmt) Exec(args []driver.Value) (driver.Result, error) {
	s.n.execs.Add(1)
	//nolint:staticcheck // forwarding the deprecated method
	return s.inner.Exec(args)
}

func (s *countingStmt) Query(args []driver.Value) (driver.Rows, error) {
	s.n.queries.Add(1)
	//nolint:staticcheck // forwarding the deprecated method
	return s.inner.Query(args)
}

func (s *countingStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	s.n.execs.Add(1)
	if e, ok := s.inner.(driver.StmtExecContext); ok {
		return e.ExecContext(ctx, args)
	}
	vals, err := namedToValues(args)
	if err != nil {
		return nil, err
	}
	//nolint:staticcheck // the fallback database/sql itself uses
	return s.inner.Exec(vals)
}

func (s *countingStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	s.n.queries.Add(1)
	if q, ok := s.inner.(driver.StmtQueryContext); ok {
		return q.QueryContext(ctx, args)
	}
	vals, err := namedToValues(args)
	if err != nil {
		return nil, err
	}
	//nolint:staticcheck // the fallback database/sql itself uses
	return s.inner.Query(vals)
}

func (s *countingStmt) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := s.inner.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

func namedToValues(args []driver.NamedValue) ([]driver.Value, error) {
	out := make([]driver.Value, len(args))
	for i, a := range args {
		if a.Name != "" {
			return nil, errors.New("sqlstore: driver does not support named parameters")
		}
		out[i] = a.Value
	}
	return out, nil
}

type countingTx struct {
	inner driver.Tx
	n     *Counter
}

func (t *countingTx) Commit() error {
	t.n.commits.Add(1)
	return t.inner.Commit()
}

func (t *countingTx) Rollback() error {
	t.n.rollbacks.Add(1)
	return t.inner.Rollback()
}
