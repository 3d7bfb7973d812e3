package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"
)

// Connector returns a driver.Connector for dsn in dialect d, with the
// settings the store relies on:
//
//   - postgres: a pgx URL or keyword/value string, used as given.
//   - mysql: a go-sql-driver DSN ("user:pass@tcp(host:3306)/db"), used as
//     given. Statements are prepared on the server unless the DSN sets
//     interpolateParams=true, which halves the round trips per statement.
//   - sqlite: a file name or file: URI for modernc.org/sqlite. Unless the
//     DSN says otherwise, busy_timeout is 10 s (writers in other processes
//     wait instead of failing) and the journal is WAL (readers do not wait
//     for writers). synchronous stays FULL, so a commit survives a power
//     cut; _pragma=synchronous(NORMAL) is faster and may lose the last
//     commits then, which for idempotency records means relying on the
//     providers' own idempotency keys.
//
// Errors never repeat the DSN, which may hold a password.
func Connector(d Dialect, dsn string) (driver.Connector, error) {
	switch d {
	case Postgres:
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			return nil, errors.New("sqlstore: invalid postgres DSN")
		}
		return stdlib.GetConnector(*cfg), nil
	case MySQL:
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			return nil, errors.New("sqlstore: invalid mysql DSN")
		}
		return mysql.NewConnector(cfg)
	case SQLite:
		return dsnConnector{drv: &sqlite.Driver{}, dsn: sqliteDSN(dsn)}, nil
	}
	return nil, fmt.Errorf("sqlstore: unknown dialect %q", d)
}

// sqliteDSN adds busy_timeout and WAL to dsn unless it sets them.
func sqliteDSN(dsn string) string {
	lower := strings.ToLower(dsn)
	var add []string
	if !strings.Contains(lower, "busy_timeout") && !strings.Contains(lower, "_timeout=") {
		add = append(add, "_pragma=busy_timeout(10000)")
	}
	if !strings.Contains(lower, "journal_mode") && !strings.Contains(lower, "_journal=") && !sqliteInMemory(dsn) {
		add = append(add, "_pragma=journal_mode(WAL)")
	}
	if len(add) == 0 {
		return dsn
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + strings.Join(add, "&")
}

// sqliteInMemory reports whether dsn names an in-memory database, which
// exists once per connection.
func sqliteInMemory(dsn string) bool {
	return dsn == "" || strings.HasPrefix(dsn, ":memory:") || strings.HasPrefix(dsn, "file::memory:") || strings.Contains(dsn, "mode=memory")
}

// dsnConnector adapts a driver without driver.DriverContext.
type dsnConnector struct {
	drv driver.Driver
	dsn string
}

// Connect opens a connection. Opening runs the DSN's pragmas, and switching
// a fresh file to WAL needs its lock without waiting in the busy handler:
// processes that open one new file at once can get SQLITE_BUSY there. That
// one is waited out (up to about 10 s, like busy_timeout); any other error
// is returned at once.
func (c dsnConnector) Connect(ctx context.Context) (driver.Conn, error) {
	for attempt := 0; ; attempt++ {
		conn, err := c.drv.Open(c.dsn)
		if err == nil {
			return newStmtCacheConn(conn), nil
		}
		var se *sqlite.Error
		if !errors.As(err, &se) || se.Code()&0xff != sqliteBusy || attempt >= 200 {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Duration(5+attempt%10*5) * time.Millisecond):
		}
	}
}

// sqliteBusy is SQLITE_BUSY, the primary result code of "database is locked".
const sqliteBusy = 5

func (c dsnConnector) Driver() driver.Driver { return c.drv }

// OpenDB opens a *sql.DB for dsn in dialect d (see Connector) with a pool
// sized for a payment service: up to 32 connections, all kept idle, for
// PostgreSQL and MySQL, so bursts neither reconnect nor exhaust the server.
//
// For PostgreSQL it also opens, at the first statement marked with
// MayShareCommit, one more connection on which such statements from
// concurrent callers are sent together and committed together (see
// pgpipeline.go). The store marks its own single-statement writes. The
// driver connection that sql.Conn.Raw hands over wraps pgx's *stdlib.Conn
// and has its methods: reach pgx through interface{ Conn() *pgx.Conn }
// rather than by asserting *stdlib.Conn.
//
// For SQLite it opens one real connection that is never closed, and commits
// in groups on it (see groupcommit.go): database/sql's pool holds virtual
// connections, the callers queued for the one real connection join one
// transaction, each in a savepoint of its own, and each hears of its commit
// only after the shared COMMIT. SQLite has one writer at a time: with
// several real connections, writers that find the lock taken sleep in its
// busy handler (1, 2, 5 ... 100 ms) and retry, which halved a drop's
// throughput and stretched checkout's p99 from 17 to 60 ms; queued on one,
// each runs the moment the previous one ends, and sharing the commit writes
// the pages that they all change (and, at synchronous=FULL, fsyncs) once a
// group. In-process reads take microseconds, so readers lose little by
// queueing too. (An in-memory database needs the single connection anyway:
// it vanishes with its connection.) A file database in WAL mode also gets a
// second connection that only checkpoints, so that the writing connection
// never stops to copy the log (see checkpoint.go), and two read-only
// connections on which SELECTs outside transactions run, beside the writer
// (see readers.go); state that lives in one connection (TEMP tables,
// last_insert_rowid()) is therefore not visible to such a SELECT: read it
// inside a transaction.
func OpenDB(d Dialect, dsn string) (*sql.DB, error) {
	return openDB(d, dsn, nil)
}

// OpenCountingDB is OpenDB with every statement, prepare, begin, commit and
// rollback counted in c, for benchmarks that count store round trips.
func OpenCountingDB(d Dialect, dsn string, c *Counter) (*sql.DB, error) {
	if c == nil {
		return nil, errors.New("sqlstore: nil Counter")
	}
	return openDB(d, dsn, c)
}

func openDB(d Dialect, dsn string, c *Counter) (*sql.DB, error) {
	conn, err := Connector(d, dsn)
	if err != nil {
		return nil, err
	}
	if d == SQLite {
		var readers driver.Connector
		if checkpointsAside(sqliteDSN(dsn)) {
			pool, err := Connector(d, withBackstopCheckpoint(dsn))
			if err != nil {
				return nil, err
			}
			if readers, err = Connector(d, withQueryOnly(dsn)); err != nil {
				return nil, err
			}
			conn = newCheckpointingConnector(pool, conn, checkpointEvery)
		}
		conn = newGroupCommitConnector(conn, readers)
	}
	if d == Postgres {
		conn = newPipelineConnector(conn)
	}
	if c != nil {
		// Outside the group commit: what is counted is the store's own
		// statements, not the savepoints and commits that group them.
		conn = CountingConnector(conn, c)
	}
	db := sql.OpenDB(conn)
	switch {
	case d == SQLite:
		// Virtual connections, all on the one real one (groupcommit.go).
		db.SetMaxOpenConns(groupCommitConns)
		db.SetMaxIdleConns(groupCommitConns)
		db.SetConnMaxLifetime(0)
		db.SetConnMaxIdleTime(0)
	default:
		// Bounded: a spike must queue for connections in the pool, not
		// open one per request until the server refuses clients
		// (PostgreSQL's default max_connections is 100).
		db.SetMaxOpenConns(32)
		db.SetMaxIdleConns(32)
	}
	return db, nil
}
