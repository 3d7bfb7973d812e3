package order

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/paymux/paymux/examples/internal/sqlutil"
)

// SQLStore keeps products, reservations and orders in PostgreSQL,
// MySQL/MariaDB or SQLite. Stock is taken with
// UPDATE ... SET stock = stock - n WHERE id = ? AND stock >= n, so two
// buyers can never both take the last unit.
type SQLStore struct {
	db     *sql.DB
	d      sqlutil.Dialect
	prefix string
}

var _ Store = (*SQLStore)(nil)

// NewSQLStore wraps db; tables are prefix+"products" and so on (default
// "shop_"). Call Migrate first.
func NewSQLStore(db *sql.DB, d sqlutil.Dialect, prefix string) *SQLStore {
	if prefix == "" {
		prefix = "shop_"
	}
	return &SQLStore{db: db, d: d, prefix: prefix}
}

func (s *SQLStore) q(q string) string { return s.d.Rebind(strings.ReplaceAll(q, "{p}", s.prefix)) }

// Migrate creates the tables if they do not exist.
func (s *SQLStore) Migrate(ctx context.Context) error {
	k, t := s.d.Key(), s.d.Text()
	stmts := []string{
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %sproducts (id %s PRIMARY KEY, data %s NOT NULL, stock BIGINT NOT NULL, sold BIGINT NOT NULL DEFAULT 0)`, s.prefix, k, t),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %sreservations (order_id %s PRIMARY KEY, items %s NOT NULL, until_ms BIGINT NOT NULL, state %s NOT NULL)`, s.prefix, k, t, k),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %sorders (id %s PRIMARY KEY, user_id %s NOT NULL, status %s NOT NULL, updated_ms BIGINT NOT NULL, created_ms BIGINT NOT NULL, version BIGINT NOT NULL, data %s NOT NULL)`, s.prefix, k, k, k, t),
	}
	for _, q := range stmts {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("order: migrate: %w", err)
		}
	}
	for _, q := range []string{
		fmt.Sprintf(`CREATE INDEX %sres_state ON %sreservations (state, until_ms)`, s.prefix, s.prefix),
		fmt.Sprintf(`CREATE INDEX %sorders_user ON %sorders (user_id, created_ms)`, s.prefix, s.prefix),
		fmt.Sprintf(`CREATE INDEX %sorders_status ON %sorders (status, updated_ms)`, s.prefix, s.prefix),
	} {
		if _, err := s.db.ExecContext(ctx, q); err != nil && !alreadyExists(err) {
			return fmt.Errorf("order: migrate: %w", err)
		}
	}
	return nil
}

func alreadyExists(err error) bool {
	m := strings.ToLower(err.Error())
	return strings.Contains(m, "exist") || strings.Contains(m, "duplicate")
}

// Drop removes the tables (tests).
func (s *SQLStore) Drop(ctx context.Context) error {
	for _, n := range []string{"products", "reservations", "orders"} {
		if _, err := s.db.ExecContext(ctx, "DROP TABLE IF EXISTS "+s.prefix+n); err != nil {
			return err
		}
	}
	return nil
}

func (s *SQLStore) SeedProduct(ctx context.Context, p Product) error {
	stock := p.Stock
	p.Stock = 0
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	pre, suf := s.d.InsertIgnore()
	if _, err := s.db.ExecContext(ctx, s.q(pre+` {p}products (id, data, stock, sold) VALUES (?, ?, ?, 0)`+suf), p.ID, string(raw), stock); err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, s.q(`UPDATE {p}products SET data = ? WHERE id = ?`), string(raw), p.ID)
	return err
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
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT data, stock FROM {p}products ORDER BY id`))
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
	err := s.db.QueryRowContext(ctx, s.q(`SELECT data, stock FROM {p}products WHERE id = ?`), id).Scan(&raw, &stock)
	if errors.Is(err, sql.ErrNoRows) {
		return Product{}, ErrNotFound
	}
	if err != nil {
		return Product{}, err
	}
	return scanProduct(raw, stock)
}

func (s *SQLStore) tx(ctx context.Context, fn func(*sql.Tx) error) error {
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

func (s *SQLStore) Reserve(ctx context.Context, orderID string, items []Item, until time.Time) error {
	raw, err := json.Marshal(items)
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		pre, suf := s.d.InsertIgnore()
		res, err := tx.ExecContext(ctx, s.q(pre+` {p}reservations (order_id, items, until_ms, state) VALUES (?, ?, ?, 'held')`+suf), orderID, string(raw), until.UnixMilli())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err // reserved already: idempotent
		}
		for _, it := range items {
			// The conditional decrement is the whole oversell protection.
			res, err := tx.ExecContext(ctx, s.q(`UPDATE {p}products SET stock = stock - ? WHERE id = ? AND stock >= ?`), it.Quantity, it.ProductID, it.Quantity)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n != 1 {
				return ErrSoldOut
			}
		}
		return nil
	})
}

func (s *SQLStore) reservationItems(ctx context.Context, tx *sql.Tx, orderID string) ([]Item, error) {
	var raw string
	if err := tx.QueryRowContext(ctx, s.q(`SELECT items FROM {p}reservations WHERE order_id = ?`), orderID).Scan(&raw); err != nil {
		return nil, err
	}
	var items []Item
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
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE {p}products SET stock = stock + ? WHERE id = ?`), it.Quantity, it.ProductID); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *SQLStore) Commit(ctx context.Context, orderID string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
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
			if errors.Is(err, sql.ErrNoRows) || state == "released" {
				return ErrNotFound
			}
			return err
		}
		items, err := s.reservationItems(ctx, tx, orderID)
		if err != nil {
			return err
		}
		for _, it := range items {
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE {p}products SET sold = sold + ? WHERE id = ?`), it.Quantity, it.ProductID); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *SQLStore) ExpiredReservations(ctx context.Context, now time.Time, limit int) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT order_id FROM {p}reservations WHERE state = 'held' AND until_ms < ? ORDER BY until_ms LIMIT ?`), now.UnixMilli(), limit)
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
	res, err := s.db.ExecContext(ctx, s.q(pre+` {p}orders (id, user_id, status, updated_ms, created_ms, version, data) VALUES (?, ?, ?, ?, ?, 1, ?)`+suf),
		o.ID, o.UserID, string(o.Status), o.UpdatedAt.UnixMilli(), o.CreatedAt.UnixMilli(), raw)
	if err != nil {
		return nil, false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return nil, false, err
	}
	cur, err := s.GetOrder(ctx, o.ID)
	return cur, n == 1, err
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
	for tries := 0; tries < 32; tries++ {
		o, err := s.GetOrder(ctx, id)
		if err != nil {
			return nil, err
		}
		before := o.Version
		if !fn(o) {
			return o, nil
		}
		raw, err := encodeOrder(o)
		if err != nil {
			return nil, err
		}
		res, err := s.db.ExecContext(ctx, s.q(`UPDATE {p}orders SET data = ?, status = ?, updated_ms = ?, version = version + 1 WHERE id = ? AND version = ?`),
			raw, string(o.Status), o.UpdatedAt.UnixMilli(), id, before)
		if err != nil {
			return nil, err
		}
		if n, err := res.RowsAffected(); err != nil {
			return nil, err
		} else if n == 1 {
			o.Version = before + 1
			return o, nil
		}
	}
	return nil, ErrConflict
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
	return s.listOrders(ctx, `SELECT data, version FROM {p}orders WHERE status = ? AND updated_ms < ? ORDER BY updated_ms LIMIT ?`, string(st), before.UnixMilli(), limit)
}

func (s *SQLStore) Sold(ctx context.Context, productID string) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, s.q(`SELECT sold FROM {p}products WHERE id = ?`), productID).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	return n, err
}
