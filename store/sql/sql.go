// Package sqlstore is a paymux.Store on database/sql, for PostgreSQL (through
// github.com/jackc/pgx/v5/stdlib), MySQL and MariaDB (through
// github.com/go-sql-driver/mysql) and SQLite (through modernc.org/sqlite,
// pure Go: the embedded default).
//
// # Schema
//
// Tables are prefixed (paymux_ by default) and created by Migrate, which
// applies the embedded migrations in order, records them in a migrations
// table and is safe to call from several processes at once. Payments are
// stored as JSON next to the columns paymux looks them up by (provider and
// reference, status, time of the last update). Times are stored as Unix
// nanoseconds in BIGINT columns, so they round-trip exactly and never depend
// on a session time zone.
//
// # Concurrency
//
// Claims are insert-if-absent (ON CONFLICT DO NOTHING, INSERT IGNORE); an
// expired claim is re-taken with a conditional UPDATE, which the database
// serialises, so exactly one of any number of racing processes wins. Payments
// are saved with compare-and-set: UPDATE ... WHERE version = ?.
// CompleteIdempotency saves the payment and completes the claim atomically:
// on PostgreSQL in one statement (one round trip), on MySQL and SQLite in a
// transaction. The happy path of an authorisation costs two store round
// trips on PostgreSQL: the claim and the completion.
//
// On the webhook path, ClaimEventForPayment claims an event and reads its
// payment in one statement on PostgreSQL; CompleteEventWithDelivery
// enqueues an event's delivery and completes the event in one statement on
// PostgreSQL (data-modifying CTEs) and in one transaction on MySQL and
// SQLite; GetPayments and CompleteDeliveries read and complete a
// dispatcher batch with one statement each.
//
// SQLite allows one writer at a time. OpenDB (and Open) give a SQLite
// database one writing connection on which every write of the process
// queues, and whose callers share commits: those queued behind each other
// join one transaction, each in a savepoint, and hear of their commit only
// after the shared COMMIT (group commit; at synchronous=FULL one fsync
// serves them all). SELECTs outside transactions run beside it on
// read-only connections. So goroutines never see "database is locked";
// across processes the store relies on busy_timeout, which OpenDB sets.
// OpenDB also switches the database to WAL so that reads do not wait for
// writes. On a SQLite *sql.DB of the caller's own, the store queues its
// own writes in process instead.
//
// On PostgreSQL, OpenDB sends the store's single-statement writes (and any
// statement a caller marks with MayShareCommit) to a dedicated
// connection, which sends what is queued as one pipeline and one implicit
// transaction: concurrent callers share a commit and a round trip, and each
// hears of its statement's result only after that commit. A statement that
// fails is run again alone, so it fails only its own caller. Statements in
// transactions, unmarked ones and SELECTs run on the pool as before.
//
// # Time
//
// Leases and expiry are decided by Options.Clock of the process that makes
// the call, not by the database server, so processes that share a database
// should have synchronised clocks (NTP); leases are seconds long, so a skew
// of milliseconds does not matter.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/paymux/paymux"
)

// Dialect names the SQL database behind a Store.
type Dialect string

// Supported dialects.
const (
	Postgres Dialect = "postgres"
	MySQL    Dialect = "mysql" // MySQL 8 and MariaDB 10.6 or later
	SQLite   Dialect = "sqlite"
)

func (d Dialect) valid() bool { return d == Postgres || d == MySQL || d == SQLite }

// DefaultTablePrefix prefixes every table name unless Options say otherwise.
const DefaultTablePrefix = "paymux_"

// Options configures a Store. Zero values mean:
//
//	Dialect         required
//	TablePrefix     "paymux_"
//	IdempotencyTTL  paymux.DefaultIdempotencyTTL (24 h), for claims with no TTL
//	EventTTL        paymux.DefaultEventTTL (30 days), for events completed with no TTL
//	Clock           time.Now
type Options struct {
	// Dialect is the database behind the *sql.DB.
	Dialect Dialect
	// TablePrefix is put in front of every table and index name. It must be
	// lower case letters, digits and underscores, starting with a letter or
	// an underscore, at most 40 characters: it is spliced into SQL text,
	// since identifiers cannot be query parameters.
	TablePrefix string
	// IdempotencyTTL is how long an idempotency record lives when the claim
	// does not say.
	IdempotencyTTL time.Duration
	// EventTTL is how long a processed webhook event is remembered when
	// CompleteEvent does not say. Purge keeps delivered outbox entries this
	// long too.
	EventTTL time.Duration
	// Clock returns the current time. It decides leases and expiry.
	Clock func() time.Time
}

// Store is a paymux.Store on database/sql. It is safe for concurrent use.
// Use New or Open; the zero value is not usable.
type Store struct {
	db       *sql.DB
	ownsDB   bool
	dialect  Dialect
	prefix   string
	idemTTL  time.Duration
	eventTTL time.Duration
	clock    func() time.Time
	q        *queries
	// writes serialises writers on SQLite, which allows one at a time:
	// queueing here is cheaper and fairer than SQLite's busy handler, and a
	// context can cancel the wait. Nil for the other dialects.
	writes chan struct{}
}

var (
	_ paymux.Store                   = (*Store)(nil)
	_ paymux.EventCompleter          = (*Store)(nil)
	_ paymux.EventPaymentClaimer     = (*Store)(nil)
	_ paymux.UnchangedEventCompleter = (*Store)(nil)
	_ paymux.DeliveryCompleter       = (*Store)(nil)
	_ paymux.PaymentsGetter          = (*Store)(nil)
)

var prefixPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,39}$`)

// New returns a Store on db. It does not create tables: call Migrate once at
// start-up (it is idempotent).
//
// For SQLite, db should have busy_timeout set on every connection (OpenDB
// does it through the DSN), or writers in other processes fail at once with
// "database is locked" instead of waiting.
func New(db *sql.DB, opts Options) (*Store, error) {
	if db == nil {
		return nil, errors.New("sqlstore: nil *sql.DB")
	}
	if !opts.Dialect.valid() {
		return nil, fmt.Errorf("sqlstore: unknown dialect %q", opts.Dialect)
	}
	prefix := opts.TablePrefix
	if prefix == "" {
		prefix = DefaultTablePrefix
	}
	if !prefixPattern.MatchString(prefix) {
		return nil, fmt.Errorf("sqlstore: table prefix %q must match %s", prefix, prefixPattern)
	}
	s := &Store{
		db:       db,
		dialect:  opts.Dialect,
		prefix:   prefix,
		idemTTL:  opts.IdempotencyTTL,
		eventTTL: opts.EventTTL,
		clock:    opts.Clock,
	}
	if s.idemTTL <= 0 {
		s.idemTTL = paymux.DefaultIdempotencyTTL
	}
	if s.eventTTL <= 0 {
		s.eventTTL = paymux.DefaultEventTTL
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.dialect == SQLite && !groupCommitted(db) {
		s.writes = make(chan struct{}, 1)
	}
	s.q = buildQueries(s.dialect, prefix)
	return s, nil
}

// Open opens the database at dsn with OpenDB and returns a Store on it with
// default Options. Close closes the database.
func Open(d Dialect, dsn string) (*Store, error) {
	db, err := OpenDB(d, dsn)
	if err != nil {
		return nil, err
	}
	s, err := New(db, Options{Dialect: d})
	if err != nil {
		db.Close()
		return nil, err
	}
	s.ownsDB = true
	return s, nil
}

// Close closes the database if Open opened it; a *sql.DB given to New stays
// open, since its owner may share it.
func (s *Store) Close() error {
	if s.ownsDB {
		return s.db.Close()
	}
	return nil
}

// Dialect returns the store's dialect.
func (s *Store) Dialect() Dialect { return s.dialect }

// TablePrefix returns the prefix of the store's table names.
func (s *Store) TablePrefix() string { return s.prefix }

func (s *Store) now() time.Time { return s.clock() }

// lockWrites queues the caller behind other writers on a SQLite *sql.DB of
// the caller's own, whose several connections would otherwise meet in
// SQLite's busy handler; OpenDB's SQLite database queues writers itself
// (groupcommit.go), and elsewhere it does nothing. The returned function
// releases the turn.
func (s *Store) lockWrites(ctx context.Context) (func(), error) {
	if s.writes == nil {
		return func() {}, nil
	}
	select {
	case s.writes <- struct{}{}:
		return func() { <-s.writes }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Purge deletes rows that no longer mean anything at time before:
// idempotency records and webhook events whose expiry is not after before,
// and delivered outbox entries last changed more than EventTTL before it
// (by then the event store has forgotten the event too). Payments and
// dead-lettered deliveries are never purged. It returns how many rows it
// deleted. Run it now and then, for example hourly, with the current time.
func (s *Store) Purge(ctx context.Context, before time.Time) (int64, error) {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return 0, err
	}
	defer unlock()
	b := nanos(before)
	var total int64
	for _, st := range []struct {
		q    query
		args []any
	}{
		{s.q.purgeIdem, []any{b}},
		{s.q.purgeEvents, []any{b}},
		{s.q.purgeDeliveries, []any{nanos(before.Add(-s.eventTTL))}},
	} {
		res, err := s.exec(ctx, st.q, st.args...)
		if err != nil {
			return total, fmt.Errorf("sqlstore: purge: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
	}
	return total, nil
}
