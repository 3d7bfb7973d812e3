package sqlstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"strings"
	"sync"
)

// Reads beside the writer.
//
// A file database in WAL mode lets readers run while a writer writes, each
// on a snapshot of what was committed when its read began. OpenDB's group
// commit therefore sends a caller's SELECT outside a transaction to one of
// a few read-only connections instead of the writing one: it runs on the
// other core, never waits for the writer, and never sees a write before its
// commit, so it need not wait for a group either. A caller whose write was
// acknowledged reads it back, since its commit came first. Reads inside a
// transaction stay on the writer, which is where the transaction is.
//
// The connections have query_only set: a statement routed here by mistake
// fails instead of writing outside the group.

// maxReaders bounds the read connections; the machine this is tuned on has
// two cores, and more connections than cores add nothing to in-process
// reads.
const maxReaders = 2

type readPool struct {
	connector driver.Connector
	idle      chan driver.Conn
	slots     chan struct{} // one per open connection

	mu     sync.Mutex // orders put against close, so no connection is left open
	closed bool
}

func newReadPool(c driver.Connector, n int) *readPool {
	return &readPool{connector: c, idle: make(chan driver.Conn, n), slots: make(chan struct{}, n)}
}

// readOnly reports a statement that reads and cannot write: a plain SELECT.
func readOnly(q string) bool {
	return strings.EqualFold(firstWord(strings.TrimLeft(q, " \t\r\n(")), "SELECT")
}

func (p *readPool) get(ctx context.Context) (driver.Conn, error) {
	select {
	case c := <-p.idle:
		return c, nil
	default:
	}
	select {
	case c := <-p.idle:
		return c, nil
	case p.slots <- struct{}{}:
		c, err := p.connector.Connect(ctx)
		if err != nil {
			<-p.slots
			return nil, err
		}
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *readPool) put(c driver.Conn, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || errors.Is(err, driver.ErrBadConn) {
		_ = c.Close()
		<-p.slots
		return
	}
	p.idle <- c // never blocks: idle holds as many as there are slots
}

// query runs q on a read connection and reads its rows to the end.
func (p *readPool) query(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	c, err := p.get(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := c.(driver.QueryerContext).QueryContext(ctx, q, args)
	var buf *bufferedRows
	if err == nil {
		buf, err = drain(rows)
	}
	p.put(c, err)
	if err != nil {
		return nil, err
	}
	return buf, nil
}

// close closes the idle connections; those in use close when put back.
func (p *readPool) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	var errs []error
	for {
		select {
		case c := <-p.idle:
			errs = append(errs, c.Close())
			<-p.slots
		default:
			return errors.Join(errs...)
		}
	}
}

// withQueryOnly makes dsn's connections refuse to write.
func withQueryOnly(dsn string) string {
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "_pragma=query_only(1)"
}
