package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// query is one SQL statement compiled for a dialect. Templates are written
// with PostgreSQL's numbered placeholders ($1, $2, reusable); for MySQL and
// SQLite they become positional ? and order says which argument each one
// takes.
type query struct {
	text  string
	order []int
}

// compile turns a template into a query for d: {p} becomes the table prefix
// (validated by New, never user input at run time) and $N placeholders
// become ? where the dialect wants them.
func compile(d Dialect, prefix, tmpl string) query {
	s := strings.ReplaceAll(tmpl, "{p}", prefix)
	if d == Postgres {
		return query{text: s}
	}
	var b strings.Builder
	order := []int{}
	for i := 0; i < len(s); i++ {
		if s[i] == '$' && i+1 < len(s) && isDigit(s[i+1]) {
			j := i + 1
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			n, _ := strconv.Atoi(s[i+1 : j])
			order = append(order, n-1)
			b.WriteByte('?')
			i = j - 1
			continue
		}
		b.WriteByte(s[i])
	}
	return query{text: b.String(), order: order}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// args orders a for the query's placeholders.
func (q query) args(a []any) []any {
	if q.order == nil {
		return a
	}
	out := make([]any, len(q.order))
	for i, n := range q.order {
		out[i] = a[n]
	}
	return out
}

// execer is what a statement runs on: the pool, a connection or a
// transaction.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// maxAttempts bounds retries of statements the database rolled back to
// break a deadlock.
const maxAttempts = 3

// Retryable reports whether the database rolled the statement or
// transaction back to break a deadlock or a serialisation conflict, so that
// running it again is safe and likely to succeed. Code that keeps its own
// tables next to paymux's (the example services) uses it too.
func Retryable(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1213 // ER_LOCK_DEADLOCK
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40P01" || pe.Code == "40001"
	}
	return false
}

// exec runs a single statement on the pool, again if the database broke a
// deadlock by rolling it back.
func (s *Store) exec(ctx context.Context, q query, a ...any) (sql.Result, error) {
	args := q.args(a)
	for attempt := 1; ; attempt++ {
		res, err := s.db.ExecContext(ctx, q.text, args...)
		if err == nil || attempt == maxAttempts || !Retryable(err) {
			return res, err
		}
	}
}

// affected runs a statement and returns how many rows it changed.
func (s *Store) affected(ctx context.Context, q query, a ...any) (int64, error) {
	res, err := s.exec(ctx, q, a...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// inTx runs fn in a transaction and commits it, or rolls it back if fn
// fails. On SQLite the transaction starts with BEGIN IMMEDIATE, so it holds
// the write lock from the start and can never fail to upgrade a read lock
// half way. A transaction the database rolled back to break a deadlock is
// run again.
func (s *Store) inTx(ctx context.Context, fn func(tx execer) error) error {
	for attempt := 1; ; attempt++ {
		var err error
		if s.dialect == SQLite {
			err = s.sqliteTx(ctx, fn)
		} else {
			err = s.stdTx(ctx, fn)
		}
		if err == nil || attempt == maxAttempts || !Retryable(err) {
			return err
		}
	}
}

func (s *Store) stdTx(ctx context.Context, fn func(tx execer) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// sqliteTx runs fn between BEGIN IMMEDIATE and COMMIT on one connection.
// database/sql cannot say IMMEDIATE for a driver that was not opened with
// _txlock=immediate, and a *sql.DB given to New may not have been.
func (s *Store) sqliteTx(ctx context.Context, fn func(tx execer) error) (err error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		conn.Close()
		return err
	}
	defer func() {
		if err != nil {
			// Roll back even if ctx ended, so the connection goes back to
			// the pool outside a transaction; if that fails, drop it.
			if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
				_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			}
		}
		conn.Close()
	}()
	if err := fn(conn); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, "COMMIT")
	return err
}

// Times are stored as Unix nanoseconds. Times outside what an int64 of
// nanoseconds can hold (the zero time among them) are clamped, so they
// still sort first or last.
var (
	minNanosTime = time.Unix(0, math.MinInt64)
	maxNanosTime = time.Unix(0, math.MaxInt64)
)

func nanos(t time.Time) int64 {
	switch {
	case t.Before(minNanosTime):
		return math.MinInt64
	case t.After(maxNanosTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// fromNanos is the inverse of nanos; the clamped minimum reads back as the
// zero time.
func fromNanos(n int64) time.Time {
	if n == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// Column sizes (bytes) of the MySQL schema; checked for every dialect so
// that a store behaves the same on all of them, and because MySQL's INSERT
// IGNORE would otherwise truncate an over-long key into another key.
const (
	maxKeyLen      = 1024
	maxIDLen       = 255
	maxProviderLen = 128
	maxRefLen      = 512
	maxEventIDLen  = 512
	maxDeliveryLen = 768
	maxStatusLen   = 32
)

// ErrTooLong is returned for an identifier longer than its column.
var ErrTooLong = errors.New("sqlstore: value too long for its column")

func checkLen(what, v string, max int) error {
	if len(v) > max {
		return fmt.Errorf("%w: %s is %d bytes, at most %d", ErrTooLong, what, len(v), max)
	}
	return nil
}

// nullString maps "" to NULL.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// shareCommits marks ctx so that the store's single-statement writes may
// share their commits with other callers' on PostgreSQL (see pgpipeline.go).
// Each such write is correct whatever ran before it in the same
// transaction: they are the same statements that run on their own
// elsewhere, and none relies on session state.
func (s *Store) shareCommits(ctx context.Context) context.Context {
	if s.dialect != Postgres {
		return ctx
	}
	return MayShareCommit(ctx)
}
