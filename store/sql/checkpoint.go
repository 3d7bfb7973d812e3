package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"io"
	"strings"
	"sync"
	"time"
)

// SQLite writes commits to its write-ahead log and copies them into the
// database file at checkpoints. By default the connection whose commit
// crosses 1,000 log pages runs the checkpoint itself, fsync included, and
// with OpenDB's single connection every other statement of the process
// waits meanwhile: in a 15,000-order drop the checkpoints took a third of
// the wall time (30.9 s; 21.0 s with none at all). OpenDB therefore runs
// them beside the pool, on a connection of their own: a PASSIVE checkpoint
// copies what is committed while the writer goes on appending, and the
// writer rewinds the log once everything is copied. The pool's connections
// keep an automatic checkpoint only as a backstop, at a log far larger than
// the checkpointer lets it grow.
const (
	checkpointEvery    = 200 * time.Millisecond
	backstopCheckpoint = 20000 // pages (80 MB with 4 KiB pages)
)

// checkpointsAside reports whether OpenDB runs dsn's checkpoints on a
// connection of their own: a file database in WAL mode whose DSN leaves
// wal_autocheckpoint alone.
func checkpointsAside(dsn string) bool {
	lower := strings.ToLower(dsn)
	return !sqliteInMemory(dsn) && strings.Contains(lower, "journal_mode(wal)") && !strings.Contains(lower, "wal_autocheckpoint")
}

// withBackstopCheckpoint sets the pool's connections' automatic checkpoint
// to the backstop.
func withBackstopCheckpoint(dsn string) string {
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "_pragma=wal_autocheckpoint(" + itoa(backstopCheckpoint) + ")"
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// checkpointingConnector is the pool's connector, plus the goroutine that
// checkpoints on its own connection (side) from the first Connect until
// the pool's DB is closed (database/sql calls Close on a connector that is
// an io.Closer).
type checkpointingConnector struct {
	driver.Connector
	side  driver.Connector
	every time.Duration

	start     sync.Once
	closeOnce sync.Once
	stop      chan struct{}
	done      chan struct{}
}

func newCheckpointingConnector(pool, side driver.Connector, every time.Duration) *checkpointingConnector {
	return &checkpointingConnector{Connector: pool, side: side, every: every, stop: make(chan struct{}), done: make(chan struct{})}
}

func (c *checkpointingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err == nil {
		c.start.Do(func() { go c.run() })
	}
	return conn, err
}

func (c *checkpointingConnector) run() {
	defer close(c.done)
	db := sql.OpenDB(c.side)
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	defer db.Close()
	t := time.NewTicker(c.every)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		// A failed checkpoint is retried at the next tick; meanwhile the
		// log grows, and the backstop bounds it.
		_ = checkpoint(db, c.every*10)
	}
}

// checkpoint copies what the log holds into the database file, without
// waiting for readers or writers (PASSIVE).
func checkpoint(db *sql.DB, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var busy, logPages, copied int
	return db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logPages, &copied)
}

// Close stops the checkpointer and waits for it.
func (c *checkpointingConnector) Close() error {
	c.closeOnce.Do(func() { close(c.stop) })
	c.start.Do(func() { close(c.done) }) // never started: nothing to wait for
	<-c.done
	if cl, ok := c.Connector.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}
