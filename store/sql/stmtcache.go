package sqlstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"strings"
)

// maxCachedStmts bounds a connection's statement cache. The store runs a few
// dozen distinct statements; text beyond the bound is prepared per call.
const maxCachedStmts = 256

// stmtCacheConn keeps each statement a SQLite connection runs prepared, by
// its text, and runs it again from there. modernc.org/sqlite compiles the
// SQL of every ExecContext and QueryContext call anew, and with one
// connection (see OpenDB) that compiling is done one call after another:
// it was 14 % of a drop's CPU. A prepared SQLite statement is recompiled by
// SQLite itself when the schema changes.
//
// database/sql uses a connection from one goroutine at a time, but a
// transaction may run a statement while the rows of another are still open;
// a cached statement whose rows are open is therefore busy, and the call
// runs uncached.
type stmtCacheConn struct {
	inner driver.Conn
	stmts map[string]*cachedStmt
}

type cachedStmt struct {
	stmt driver.Stmt
	busy bool // rows from it are open
}

func newStmtCacheConn(c driver.Conn) driver.Conn {
	// Only a driver with the context interfaces the cache relies on.
	if _, ok := c.(driver.ConnPrepareContext); !ok {
		return c
	}
	if _, ok := c.(driver.ExecerContext); !ok {
		return c
	}
	if _, ok := c.(driver.QueryerContext); !ok {
		return c
	}
	return &stmtCacheConn{inner: c, stmts: map[string]*cachedStmt{}}
}

var (
	_ driver.ExecerContext      = (*stmtCacheConn)(nil)
	_ driver.QueryerContext     = (*stmtCacheConn)(nil)
	_ driver.ConnPrepareContext = (*stmtCacheConn)(nil)
	_ driver.ConnBeginTx        = (*stmtCacheConn)(nil)
	_ driver.Pinger             = (*stmtCacheConn)(nil)
	_ driver.SessionResetter    = (*stmtCacheConn)(nil)
	_ driver.Validator          = (*stmtCacheConn)(nil)
)

// cached returns the idle prepared statement for query, preparing it if
// there is room; nil means run the call uncached.
func (c *stmtCacheConn) cached(ctx context.Context, query string) (*cachedStmt, error) {
	if cs, ok := c.stmts[query]; ok {
		if cs.busy {
			return nil, nil
		}
		return cs, nil
	}
	if len(c.stmts) >= maxCachedStmts || strings.Contains(strings.TrimRight(query, "; \t\n"), ";") {
		// A script of several statements runs uncached (the driver runs
		// them one by one); so does a ';' in a literal, to be safe.
		return nil, nil
	}
	st, err := c.inner.(driver.ConnPrepareContext).PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	_, execs := st.(driver.StmtExecContext)
	_, queries := st.(driver.StmtQueryContext)
	if !execs || !queries {
		_ = st.Close()
		return nil, nil
	}
	cs := &cachedStmt{stmt: st}
	c.stmts[query] = cs
	return cs, nil
}

func (c *stmtCacheConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	cs, err := c.cached(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.inner.(driver.ExecerContext).ExecContext(ctx, query, args)
	}
	return cs.stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (c *stmtCacheConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	cs, err := c.cached(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.inner.(driver.QueryerContext).QueryContext(ctx, query, args)
	}
	rows, err := cs.stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	cs.busy = true
	return &cachedRows{Rows: rows, done: func() { cs.busy = false }}, nil
}

// cachedRows frees its statement for the next call when closed.
type cachedRows struct {
	driver.Rows
	done func()
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	if r.done != nil {
		r.done()
		r.done = nil
	}
	return err
}

func (c *stmtCacheConn) Prepare(query string) (driver.Stmt, error) { return c.inner.Prepare(query) }

func (c *stmtCacheConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.inner.(driver.ConnPrepareContext).PrepareContext(ctx, query)
}

func (c *stmtCacheConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *stmtCacheConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if b, ok := c.inner.(driver.ConnBeginTx); ok {
		return b.BeginTx(ctx, opts)
	}
	return c.inner.Begin() //nolint:staticcheck // the driver has nothing newer
}

func (c *stmtCacheConn) Ping(ctx context.Context) error {
	if p, ok := c.inner.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *stmtCacheConn) ResetSession(ctx context.Context) error {
	if r, ok := c.inner.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *stmtCacheConn) IsValid() bool {
	if v, ok := c.inner.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

// Close finalizes the cached statements, then closes the connection.
func (c *stmtCacheConn) Close() error {
	var errs []error
	for q, cs := range c.stmts {
		errs = append(errs, cs.stmt.Close())
		delete(c.stmts, q)
	}
	errs = append(errs, c.inner.Close())
	return errors.Join(errs...)
}
