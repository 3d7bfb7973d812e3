package order

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/paymux/paymux/examples/internal/sqlutil"
	sqlstore "github.com/paymux/paymux/store/sql"
)

// SQLStore keeps products, reservations and orders in PostgreSQL,
// MySQL/MariaDB or SQLite. Stock is taken with
// UPDATE ... SET stock = stock - n WHERE id = ? AND stock >= n, so two
// buyers can never both take the last unit.
type SQLStore struct {
	db      *sql.DB
	d       sqlutil.Dialect
	prefix  string
	queries *sqlutil.Queries
	buckets sync.Map // product id -> stock buckets (int); set at seeding, never changed
}

var _ Store = (*SQLStore)(nil)

// NewSQLStore wraps db; tables are prefix+"products" and so on (default
// "shop_"). Call Migrate first.
func NewSQLStore(db *sql.DB, d sqlutil.Dialect, prefix string) *SQLStore {
	if prefix == "" {
		prefix = "shop_"
	}
	return &SQLStore{db: db, d: d, prefix: prefix, queries: sqlutil.NewQueries(d, prefix)}
}

func (s *SQLStore) q(q string) string { return s.queries.Get(q) }

// Migrate creates the tables if they do not exist.
func (s *SQLStore) Migrate(ctx context.Context) error {
	k, t := s.d.Key(), s.d.Text()
	stmts := []string{
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %sproducts (id %s PRIMARY KEY, data %s NOT NULL, buckets INTEGER NOT NULL)`, s.prefix, k, t),
		// Stock is split over buckets so that a drop's buyers do not queue on
		// one row lock: each reservation decrements one bucket.
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %sstock (product_id %s NOT NULL, bucket INTEGER NOT NULL, stock BIGINT NOT NULL, PRIMARY KEY (product_id, bucket))`, s.prefix, k),
		// Sales are rows, not a counter on the product, for the same reason.
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %ssales (order_id %s NOT NULL, product_id %s NOT NULL, qty BIGINT NOT NULL, PRIMARY KEY (order_id, product_id))`, s.prefix, k, k),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %sreservations (order_id %s PRIMARY KEY, items %s NOT NULL, until_ms BIGINT NOT NULL, state %s NOT NULL)`, s.prefix, k, t, k),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %sorders (id %s PRIMARY KEY, user_id %s NOT NULL, status %s NOT NULL, updated_ms BIGINT NOT NULL, created_ms BIGINT NOT NULL, version BIGINT NOT NULL, data %s NOT NULL)`, s.prefix, k, k, k, t),
	}
	for _, q := range stmts {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("order: migrate: %w", err)
		}
	}
	indexes := []string{
		fmt.Sprintf(`CREATE INDEX %sorders_user ON %sorders (user_id, created_ms)`, s.prefix, s.prefix),
		fmt.Sprintf(`CREATE INDEX %ssales_product ON %ssales (product_id)`, s.prefix, s.prefix),
	}
	if s.partialIndexes() {
		// The expiry sweep and the recovery scans look only for held
		// reservations and unsettled orders. Partial indexes hold just
		// those, so settling an order leaves no entry in them: two index
		// writes fewer per order. The reservation index holds until_ms
		// alone, so that no lookup by order id is tempted to scan it.
		indexes = append(indexes,
			fmt.Sprintf(`DROP INDEX IF EXISTS %sres_state`, s.prefix),
			fmt.Sprintf(`DROP INDEX IF EXISTS %sorders_status`, s.prefix),
			fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %sres_held ON %sreservations (until_ms) WHERE state = 'held'`, s.prefix, s.prefix),
			fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %sorders_unsettled ON %sorders (status, updated_ms) WHERE %s`, s.prefix, s.prefix, unsettledOrders),
		)
	} else {
		indexes = append(indexes,
			fmt.Sprintf(`CREATE INDEX %sres_state ON %sreservations (state, until_ms)`, s.prefix, s.prefix),
			fmt.Sprintf(`CREATE INDEX %sorders_status ON %sorders (status, updated_ms)`, s.prefix, s.prefix),
		)
	}
	for _, q := range indexes {
		if _, err := s.db.ExecContext(ctx, q); err != nil && !alreadyExists(err) {
			return fmt.Errorf("order: migrate: %w", err)
		}
	}
	return nil
}

// partialIndexes reports whether the database has partial indexes
// (PostgreSQL and SQLite do, MySQL does not).
func (s *SQLStore) partialIndexes() bool { return s.d == sqlutil.Postgres || s.d == sqlutil.SQLite }

// unsettledOrders is the predicate of the partial index of the statuses
// the service's recovery scans list. A scan repeats it word for word:
// SQLite uses a partial index only for a query whose WHERE clause holds
// each of the index's terms as written.
const unsettledOrders = `status IN ('queued', 'processing', 'payment_pending')`

// unsettledStatus reports whether st is one of unsettledOrders'.
func unsettledStatus(st Status) bool {
	return st == StatusQueued || st == StatusProcessing || st == StatusPaymentPending
}

func alreadyExists(err error) bool {
	m := strings.ToLower(err.Error())
	return strings.Contains(m, "exist") || strings.Contains(m, "duplicate")
}

// Drop removes the tables (tests).
func (s *SQLStore) Drop(ctx context.Context) error {
	for _, n := range []string{"products", "stock", "sales", "reservations", "orders"} {
		if _, err := s.db.ExecContext(ctx, "DROP TABLE IF EXISTS "+s.prefix+n); err != nil {
			return err
		}
	}
	return nil
}

// StockBuckets is how many rows a large stock is split over.
const StockBuckets = 16

// bucketsFor splits stock so that each bucket holds at least 256 units:
// small stocks stay in one row, where every unit is reachable by any order.
func bucketsFor(stock int) int {
	return min(StockBuckets, max(1, stock/256))
}

func (s *SQLStore) SeedProduct(ctx context.Context, p Product) error {
	stock := p.Stock
	p.Stock = 0
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		pre, suf := s.d.InsertIgnore()
		nb := bucketsFor(stock)
		res, err := tx.ExecContext(ctx, s.q(pre+` {p}products (id, data, buckets) VALUES (?, ?, ?)`+suf), p.ID, string(raw), nb)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			// Existing product: keep its stock (a restart must not refill a
			// sold-out drop); refresh its description.
			_, err = tx.ExecContext(ctx, s.q(`UPDATE {p}products SET data = ? WHERE id = ?`), string(raw), p.ID)
			return err
		}
		for b := 0; b < nb; b++ {
			share := stock / nb
			if b < stock%nb {
				share++
			}
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO {p}stock (product_id, bucket, stock) VALUES (?, ?, ?)`), p.ID, b, share); err != nil {
				return err
			}
		}
		return nil
	})
}

func scanProduct(raw string, stock int) (Product, error) {
	var p Product
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		return p, err
	}
	p.Stock = stock
	return p, nil
}

func (s *SQLStore) Products(ctx context.Context) ([]Product, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT p.data, COALESCE((SELECT SUM(st.stock) FROM {p}stock st WHERE st.product_id = p.id), 0) FROM {p}products p ORDER BY p.id`))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Product
	for rows.Next() {
		var raw string
		var stock int
		if err := rows.Scan(&raw, &stock); err != nil {
			return nil, err
		}
		p, err := scanProduct(raw, stock)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

func (s *SQLStore) Product(ctx context.Context, id string) (Product, error) {
	var raw string
	var stock int
	err := s.db.QueryRowContext(ctx, s.q(`SELECT p.data, COALESCE((SELECT SUM(st.stock) FROM {p}stock st WHERE st.product_id = p.id), 0) FROM {p}products p WHERE p.id = ?`), id).Scan(&raw, &stock)
	if errors.Is(err, sql.ErrNoRows) {
		return Product{}, ErrNotFound
	}
	if err != nil {
		return Product{}, err
	}
	return scanProduct(raw, stock)
}

// tx runs fn in a transaction, again when the database rolled it back to
// break a deadlock (see againOnDeadlock): fn must start from scratch each
// time.
func (s *SQLStore) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	return againOnDeadlock(ctx, func() error { return s.tx1(ctx, fn) })
}

// againOnDeadlock runs try, and again, up to 8 times in all, after a short
// random pause so that the deadlocked parties do not meet again, while the
// database rolled it back to break a deadlock.
func againOnDeadlock(ctx context.Context, try func() error) error {
	for attempt := 1; ; attempt++ {
		err := try()
		if err == nil || attempt == 8 || !sqlstore.Retryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(1+rand.IntN(2*attempt)) * time.Millisecond):
		}
	}
}

func (s *SQLStore) tx1(ctx context.Context, fn func(*sql.Tx) error) error {
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

// held is one item of a reservation, with the buckets its stock came from.
type held struct {
	Item
	Takes []take `json:"takes"`
}

type take struct {
	Bucket int `json:"b"`
	Qty    int `json:"q"`
}

func (s *SQLStore) Reserve(ctx context.Context, orderID string, items []Item, until time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		// The reservation row first: it makes the transaction a writer from
		// its first statement (SQLite), and a concurrent reserve of the same
		// order waits on its key instead of taking stock twice.
		pre, suf := s.d.InsertIgnore()
		res, err := tx.ExecContext(ctx, s.q(pre+` {p}reservations (order_id, items, until_ms, state) VALUES (?, '[]', ?, 'held')`+suf), orderID, until.UnixMilli())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err // reserved already: idempotent
		}
		raw, err := s.takeAll(ctx, tx, orderID, items)
		if err != nil {
			return err // rolls back the row and every take
		}
		_, err = tx.ExecContext(ctx, s.q(`UPDATE {p}reservations SET items = ? WHERE order_id = ?`), raw, orderID)
		return err
	})
}

// takeAll takes every item's stock for orderID in tx and returns what it
// took, as the reservation's items column. Products go in id order, so
// multi-product reservations lock rows in the same order and cannot
// deadlock. On an error the caller rolls back, which returns every take.
func (s *SQLStore) takeAll(ctx context.Context, tx *sql.Tx, orderID string, items []Item) (string, error) {
	sorted := append([]Item(nil), items...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].ProductID < sorted[j].ProductID })
	hs := make([]held, 0, len(sorted))
	for _, it := range sorted {
		takes, err := s.take(ctx, tx, orderID, it)
		if err != nil {
			return "", err
		}
		hs = append(hs, held{Item: it, Takes: takes})
	}
	raw, err := json.Marshal(hs)
	return string(raw), err
}

// take decrements the item's product's stock: the whole quantity from one
// bucket (picked by the order id, then the others) when one holds it, else
// unit by unit across buckets, so the last units of a drop are sold too.
// Each decrement is conditional (stock >= n): that is the whole oversell
// protection. Sold out rolls the transaction back, returning what was taken.
func (s *SQLStore) take(ctx context.Context, tx *sql.Tx, orderID string, it Item) ([]take, error) {
	var nb int
	if v, ok := s.buckets.Load(it.ProductID); ok {
		nb = v.(int) // a product's bucket count never changes: no read per checkout
	} else {
		err := tx.QueryRowContext(ctx, s.q(`SELECT buckets FROM {p}products WHERE id = ?`), it.ProductID).Scan(&nb)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		if err != nil {
			return nil, err
		}
		s.buckets.Store(it.ProductID, nb)
	}
	dec := func(b, q int) (bool, error) {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE {p}stock SET stock = stock - ? WHERE product_id = ? AND bucket = ? AND stock >= ?`), q, it.ProductID, b, q)
		if err != nil {
			return false, err
		}
		n, err := res.RowsAffected()
		return n == 1, err
	}
	// Fast path: the whole quantity from one bucket, starting at one picked
	// by the order id so concurrent buyers spread over the buckets.
	start := int(fnv32(orderID) % uint32(nb))
	for i := 0; i < nb; i++ {
		b := (start + i) % nb
		ok, err := dec(b, it.Quantity)
		if err != nil {
			return nil, err
		}
		if ok {
			return []take{{b, it.Quantity}}, nil
		}
	}
	// The last units are spread: take them one by one, in bucket order, so
	// two such transactions lock rows in the same order and cannot deadlock.
	var takes []take
	left := it.Quantity
	for b := 0; b < nb && left > 0; b++ {
		for left > 0 {
			ok, err := dec(b, 1)
			if err != nil {
				return nil, err
			}
			if !ok {
				break
			}
			left--
			if n := len(takes); n > 0 && takes[n-1].Bucket == b {
				takes[n-1].Qty++
			} else {
				takes = append(takes, take{b, 1})
			}
		}
	}
	if left > 0 {
		return nil, ErrSoldOut // the rollback returns what was taken
	}
	return takes, nil
}

func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

func (s *SQLStore) reservationItems(ctx context.Context, tx *sql.Tx, orderID string) ([]held, error) {
	var raw string
	if err := tx.QueryRowContext(ctx, s.q(`SELECT items FROM {p}reservations WHERE order_id = ?`), orderID).Scan(&raw); err != nil {
		return nil, err
	}
	var items []held
	return items, json.Unmarshal([]byte(raw), &items)
}

func (s *SQLStore) Release(ctx context.Context, orderID string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE {p}reservations SET state = 'released' WHERE order_id = ? AND state = 'held'`), orderID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		items, err := s.reservationItems(ctx, tx, orderID)
		if err != nil {
			return err
		}
		for _, it := range items {
			for _, tk := range it.Takes {
				if _, err := tx.ExecContext(ctx, s.q(`UPDATE {p}stock SET stock = stock + ? WHERE product_id = ? AND bucket = ?`), tk.Qty, it.ProductID, tk.Bucket); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func (s *SQLStore) Commit(ctx context.Context, orderID string) error {
	return s.tx(ctx, func(tx *sql.Tx) error { return s.commitIn(ctx, tx, orderID, nil) })
}

// commitIn commits orderID's reservation in tx and records its sales: items,
// or, when nil, the reserved ones. ErrNotFound: nothing held or committed
// (released, or never reserved); committed already: nil, nothing written.
func (s *SQLStore) commitIn(ctx context.Context, tx *sql.Tx, orderID string, items []Item) error {
	res, err := tx.ExecContext(ctx, s.q(`UPDATE {p}reservations SET state = 'committed' WHERE order_id = ? AND state = 'held'`), orderID)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		var state string
		err := tx.QueryRowContext(ctx, s.q(`SELECT state FROM {p}reservations WHERE order_id = ?`), orderID).Scan(&state)
		if errors.Is(err, sql.ErrNoRows) || err == nil && state != "committed" {
			return ErrNotFound
		}
		return err
	}
	if items == nil {
		hs, err := s.reservationItems(ctx, tx, orderID)
		if err != nil {
			return err
		}
		for _, h := range hs {
			items = append(items, h.Item)
		}
	}
	pre, suf := s.d.InsertIgnore()
	for _, it := range items {
		if _, err := tx.ExecContext(ctx, s.q(pre+` {p}sales (order_id, product_id, qty) VALUES (?, ?, ?)`+suf), orderID, it.ProductID, it.Quantity); err != nil {
			return err
		}
	}
	return nil
}

// expiredReservationsSQL lists held reservations past their end ($1),
// oldest first, at most $2.
const expiredReservationsSQL = `SELECT order_id FROM {p}reservations WHERE state = 'held' AND until_ms < ? ORDER BY until_ms LIMIT ?`

func (s *SQLStore) ExpiredReservations(ctx context.Context, now time.Time, limit int) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, s.q(expiredReservationsSQL), now.UnixMilli(), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

func encodeOrder(o *Order) (string, error) {
	b, err := json.Marshal(storedOrder{Order: *o, Token: o.Method.Token})
	return string(b), err
}

func decodeOrder(raw string, version int64) (*Order, error) {
	var so storedOrder
	if err := json.Unmarshal([]byte(raw), &so); err != nil {
		return nil, err
	}
	o := so.Order
	o.Method = methodOf(o.MethodType, so.Token)
	o.Version = version
	return &o, nil
}

func (s *SQLStore) CreateOrder(ctx context.Context, o *Order) (*Order, bool, error) {
	raw, err := encodeOrder(o)
	if err != nil {
		return nil, false, err
	}
	pre, suf := s.d.InsertIgnore()
	res, err := s.db.ExecContext(ctx, s.q(pre+insertOrderSQL+suf),
		o.ID, o.UserID, string(o.Status), o.UpdatedAt.UnixMilli(), o.CreatedAt.UnixMilli(), raw)
	if err != nil {
		return nil, false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return nil, false, err
	}
	if n == 1 {
		// Inserted: what is stored is o, at version 1. Reading it back would
		// be a round trip per checkout for nothing.
		cur := *o
		cur.Version = 1
		return &cur, true, nil
	}
	cur, err := s.GetOrder(ctx, o.ID)
	return cur, false, err
}

// PlaceOrder inserts the order, takes its stock and records the reservation
// in one transaction: one commit per checkout instead of two, and no read
// first.
func (s *SQLStore) PlaceOrder(ctx context.Context, o *Order, until time.Time) (*Order, bool, error) {
	raw, err := encodeOrder(o)
	if err != nil {
		return nil, false, err
	}
	if s.d == sqlutil.Postgres {
		switch placed, err := s.placeOrderPostgres(ctx, o, until, raw); {
		case err == nil && placed:
			cur := *o
			cur.Version = 1
			return &cur, true, nil
		case err == nil:
			cur, err := s.GetOrder(ctx, o.ID)
			return cur, false, err
		case !errors.Is(err, errStepByStep):
			return nil, false, err
		}
	}
	pre, suf := s.d.InsertIgnore()
	var exists, remnant bool
	err = s.tx(ctx, func(tx *sql.Tx) error {
		exists, remnant = false, false
		res, err := tx.ExecContext(ctx, s.q(pre+insertOrderSQL+suf),
			o.ID, o.UserID, string(o.Status), o.UpdatedAt.UnixMilli(), o.CreatedAt.UnixMilli(), raw)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			exists = true
			return errRollback
		}
		items, err := s.takeAll(ctx, tx, o.ID, o.Items)
		if err != nil {
			return err // rolls back the order and every take
		}
		res, err = tx.ExecContext(ctx, s.q(pre+` {p}reservations (order_id, items, until_ms, state) VALUES (?, ?, ?, 'held')`+suf), o.ID, items, until.UnixMilli())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			remnant = true // reserved earlier without its order: keep that one, take nothing twice
			return errRollback
		}
		return nil
	})
	switch {
	case exists:
		cur, err := s.GetOrder(ctx, o.ID)
		return cur, false, err
	case remnant:
		if err := s.Reserve(ctx, o.ID, o.Items, until); err != nil {
			return nil, false, err
		}
		return s.CreateOrder(ctx, o)
	case err != nil:
		return nil, false, err
	}
	cur := *o
	cur.Version = 1
	return &cur, true, nil
}

// placeOrderPostgres is PlaceOrder's usual case as one statement, one round
// trip instead of five (BEGIN, three statements, COMMIT): each item's whole
// quantity from the bucket its order id picks. It reports placed=false when
// the order exists already, ErrSoldOut, and errStepByStep when that is not
// the whole story (a bucket too low, a product whose bucket count is not
// known yet, a reservation left without its order), for the transaction in
// PlaceOrder, which spreads the last units over buckets.
//
// The order row is inserted only if every bucket held enough stock when the
// statement began. Otherwise nothing is written, and the statement reports
// sold out when a product's buckets hold less than the quantity in all and
// there is no order of this id to return (what the transaction would find
// at that moment), or leaves it to the transaction (the last units spread
// over buckets). Sold out is common in a drop, and it must not be an error:
// an error in a pipeline of shared commits rolls back every other caller's
// statement too, which then run again.
//
// The order row is inserted before any take, so a double-click's second
// statement waits on its key and then takes nothing. Every take and the
// reservation hang on that insert, and the reservation on every take. When
// the order went in but the reservation did not (a concurrent checkout took
// the units after the check), the statement divides by zero on purpose: an
// error is the only way for one statement to undo its own earlier writes,
// and it undoes all of them.
func (s *SQLStore) placeOrderPostgres(ctx context.Context, o *Order, until time.Time, raw string) (placed bool, err error) {
	// One statement that is correct whatever ran before it: it may share
	// its commit with other callers'. It locks stock rows that every
	// checkout locks.
	ctx = sqlstore.MayShareCommitOnHotRows(ctx)
	n := len(o.Items)
	products, buckets, qty := make([]string, n), make([]int64, n), make([]int64, n)
	hs := make([]held, n)
	for i, it := range o.Items {
		v, ok := s.buckets.Load(it.ProductID)
		if !ok {
			return false, errStepByStep
		}
		b := int(fnv32(o.ID) % uint32(v.(int)))
		products[i], buckets[i], qty[i] = it.ProductID, int64(b), int64(it.Quantity)
		hs[i] = held{Item: it, Takes: []take{{b, it.Quantity}}}
	}
	items, err := json.Marshal(hs)
	if err != nil {
		return false, err
	}
	q := s.q(placeOrderPostgresSQL)
	var made int
	var enough, soldOut bool
	err = againOnDeadlock(ctx, func() error {
		return s.db.QueryRowContext(ctx, q,
			products, buckets, qty, n,
			o.ID, o.UserID, string(o.Status), o.UpdatedAt.UnixMilli(), o.CreatedAt.UnixMilli(), raw,
			string(items), until.UnixMilli(), n, o.ID).Scan(&made, &enough, &soldOut)
	})
	switch pe := (*pgconn.PgError)(nil); {
	case errors.As(err, &pe) && pe.Code == "22012": // division_by_zero: see above
		return false, errStepByStep
	case err != nil:
		return false, err
	case soldOut:
		// What the transaction would find: a product whose buckets hold
		// less than the quantity in all, and no order of this id to
		// return instead. Nothing was written.
		return false, ErrSoldOut
	case !enough:
		return false, errStepByStep
	}
	return made == 1, nil
}

// commitAndSavePostgres is commitAndSave as one statement: no BEGIN and
// COMMIT round trips, and no row lock held while the shop waits for CPU
// between statements. The reservation row is locked first; the order is
// saved only if its version is unchanged and the reservation is held or
// committed; the reservation is committed and the sales recorded only if
// the order was saved.
func (s *SQLStore) commitAndSavePostgres(ctx context.Context, next *Order, before int64, raw string) error {
	// One statement that is correct whatever ran before it: it may share
	// its commit with other callers' (sqlstore.MayShareCommit).
	ctx = sqlstore.MayShareCommit(ctx)
	products := make([]string, len(next.Items))
	qty := make([]int64, len(next.Items))
	for i, it := range next.Items {
		products[i], qty[i] = it.ProductID, int64(it.Quantity)
	}
	var saved int
	var state string
	err := s.db.QueryRowContext(ctx, s.q(commitAndSavePostgresSQL),
		next.ID, raw, string(next.Status), next.UpdatedAt.UnixMilli(), next.ID, before, next.ID, products, qty).Scan(&saved, &state)
	switch {
	case sqlstore.Retryable(err):
		// A deadlock broken by the server: the step-by-step path retries.
		return ErrConflict
	case err != nil:
		return err
	case saved == 1:
		return nil
	case state != "held" && state != "committed":
		return ErrNotFound
	}
	return ErrConflict
}

// The two statements of a drop's order that share commits on PostgreSQL,
// placeOrderPostgres's and commitAndSavePostgres's (see there).
const (
	placeOrderPostgresSQL = `
WITH x AS (
  SELECT * FROM unnest(?::text[], ?::bigint[], ?::bigint[]) AS x(p, b, q)
), enough AS (
  SELECT count(*) = ? AS ok FROM {p}stock st JOIN x ON st.product_id = x.p AND st.bucket = x.b
  WHERE st.stock >= x.q
), o AS (
  INSERT INTO {p}orders (id, user_id, status, updated_ms, created_ms, version, data)
  SELECT ?::text, ?::text, ?::text, ?::bigint, ?::bigint, 1, ?::text WHERE (SELECT ok FROM enough)
  ON CONFLICT DO NOTHING
  RETURNING id
), t AS (
  UPDATE {p}stock SET stock = stock - x.q
  FROM x
  WHERE product_id = x.p AND bucket = x.b AND stock >= x.q AND EXISTS (SELECT 1 FROM o)
  RETURNING 1
), r AS (
  INSERT INTO {p}reservations (order_id, items, until_ms, state)
  SELECT id, ?, ?, 'held' FROM o WHERE (SELECT count(*) FROM t) = ?
  ON CONFLICT DO NOTHING
  RETURNING 1
)
SELECT (SELECT count(*) FROM r) / ((SELECT count(*) FROM r) + 1 - (SELECT count(*) FROM o)),
  (SELECT ok FROM enough),
  CASE WHEN (SELECT ok FROM enough) THEN false ELSE
    EXISTS (SELECT 1 FROM x WHERE x.q > (SELECT COALESCE(sum(st.stock), 0) FROM {p}stock st WHERE st.product_id = x.p))
    AND NOT EXISTS (SELECT 1 FROM {p}orders WHERE id = ?)
  END`
	commitAndSavePostgresSQL = `
WITH rs AS (
  SELECT state FROM {p}reservations WHERE order_id = ? FOR UPDATE
), o AS (
  UPDATE {p}orders SET data = ?, status = ?, updated_ms = ?, version = version + 1
  WHERE id = ? AND version = ? AND EXISTS (SELECT 1 FROM rs WHERE state IN ('held', 'committed'))
  RETURNING id
), r AS (
  UPDATE {p}reservations SET state = 'committed'
  WHERE order_id = ? AND state = 'held' AND EXISTS (SELECT 1 FROM o)
  RETURNING order_id
), sold AS (
  INSERT INTO {p}sales (order_id, product_id, qty)
  SELECT r.order_id, x.p, x.q FROM r, unnest(?::text[], ?::bigint[]) AS x(p, q)
  ON CONFLICT DO NOTHING
)
SELECT (SELECT count(*) FROM o), COALESCE((SELECT state FROM rs), '')`
)

// The order statements that more than one method runs: the insert of a
// new order (after the dialect's INSERT IGNORE prefix) and the
// compare-and-set save.
const (
	insertOrderSQL = ` {p}orders (id, user_id, status, updated_ms, created_ms, version, data) VALUES (?, ?, ?, ?, ?, 1, ?)`
	saveOrderSQL   = `UPDATE {p}orders SET data = ?, status = ?, updated_ms = ?, version = version + 1 WHERE id = ? AND version = ?`
)

// errRollback ends a transaction that found its work done already.
var errRollback = errors.New("order: nothing to do")

// commitAndSave commits the order's reservation and saves the order in one
// transaction: one commit for a paid order instead of two.
func (s *SQLStore) commitAndSave(ctx context.Context, next *Order, before int64, _ Status) error {
	raw, err := encodeOrder(next)
	if err != nil {
		return err
	}
	if s.d == sqlutil.Postgres {
		return s.commitAndSavePostgres(ctx, next, before, raw)
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(saveOrderSQL),
			raw, string(next.Status), next.UpdatedAt.UnixMilli(), next.ID, before)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return ErrConflict
		}
		// The order's items are what was reserved (PlaceOrder reserves
		// them): no read of the reservation's.
		return s.commitIn(ctx, tx, next.ID, next.Items)
	})
}

func (s *SQLStore) GetOrder(ctx context.Context, id string) (*Order, error) {
	var raw string
	var v int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT data, version FROM {p}orders WHERE id = ?`), id).Scan(&raw, &v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return decodeOrder(raw, v)
}

func (s *SQLStore) UpdateOrder(ctx context.Context, id string, fn func(*Order) bool) (*Order, error) {
	return s.updateOrder(ctx, id, nil, fn)
}

func (s *SQLStore) updateOrderFrom(ctx context.Context, o *Order, fn func(*Order) bool) (*Order, error) {
	return s.updateOrder(ctx, o.ID, o, fn)
}

// updateOrder is UpdateOrder, starting from first (as read) when not nil.
func (s *SQLStore) updateOrder(ctx context.Context, id string, first *Order, fn func(*Order) bool) (*Order, error) {
	return casUpdate(ctx, id, first, s.GetOrder, fn, func(o *Order, before int64, _ Status) (bool, error) {
		raw, err := encodeOrder(o)
		if err != nil {
			return false, err
		}
		res, err := s.db.ExecContext(ctx, s.q(saveOrderSQL),
			raw, string(o.Status), o.UpdatedAt.UnixMilli(), id, before)
		if err != nil {
			return false, err
		}
		n, err := res.RowsAffected()
		if err != nil || n != 1 {
			return false, err
		}
		o.Version = before + 1
		return true, nil
	})
}

func (s *SQLStore) listOrders(ctx context.Context, q string, args ...any) ([]*Order, error) {
	rows, err := s.db.QueryContext(ctx, s.q(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Order
	for rows.Next() {
		var raw string
		var v int64
		if err := rows.Scan(&raw, &v); err != nil {
			return nil, err
		}
		o, err := decodeOrder(raw, v)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

func (s *SQLStore) OrdersByUser(ctx context.Context, userID string, limit int) ([]*Order, error) {
	return s.listOrders(ctx, `SELECT data, version FROM {p}orders WHERE user_id = ? ORDER BY created_ms DESC LIMIT ?`, userID, limit)
}

func (s *SQLStore) OrdersInStatus(ctx context.Context, st Status, before time.Time, limit int) ([]*Order, error) {
	return s.listOrders(ctx, s.ordersInStatusSQL(st), string(st), before.UnixMilli(), limit)
}

// ordersInStatusSQL lists the orders in status $1 updated before $2,
// oldest first, at most $3. Statuses outside unsettledOrders (no caller in
// this service asks for one) have no index on PostgreSQL and SQLite, and
// scan the table.
func (s *SQLStore) ordersInStatusSQL(st Status) string {
	if s.partialIndexes() && unsettledStatus(st) {
		return `SELECT data, version FROM {p}orders WHERE status = ? AND ` + unsettledOrders + ` AND updated_ms < ? ORDER BY updated_ms LIMIT ?`
	}
	return `SELECT data, version FROM {p}orders WHERE status = ? AND updated_ms < ? ORDER BY updated_ms LIMIT ?`
}

func (s *SQLStore) Sold(ctx context.Context, productID string) (int, error) {
	var one int
	err := s.db.QueryRowContext(ctx, s.q(`SELECT 1 FROM {p}products WHERE id = ?`), productID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, err
	}
	var n int
	err = s.db.QueryRowContext(ctx, s.q(`SELECT COALESCE(SUM(qty), 0) FROM {p}sales WHERE product_id = ?`), productID).Scan(&n)
	return n, err
}
