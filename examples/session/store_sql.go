package session

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

// SQLStore keeps sessions and carts in PostgreSQL, MySQL/MariaDB or SQLite.
type SQLStore struct {
	db      *sql.DB
	d       sqlutil.Dialect
	prefix  string
	queries *sqlutil.Queries
}

var _ Store = (*SQLStore)(nil)

// NewSQLStore wraps db. Tables are named prefix+"users" and so on (default
// prefix "shop_"). Call Migrate before use.
func NewSQLStore(db *sql.DB, d sqlutil.Dialect, prefix string) *SQLStore {
	if prefix == "" {
		prefix = "shop_"
	}
	return &SQLStore{db: db, d: d, prefix: prefix, queries: sqlutil.NewQueries(d, prefix)}
}

// Migrate creates the tables if they do not exist.
func (s *SQLStore) Migrate(ctx context.Context) error {
	k, t, b := s.d.Key(), s.d.Text(), s.d.Blob()
	stmts := []string{
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %susers (id %s PRIMARY KEY, email %s NOT NULL UNIQUE, password_hash %s NOT NULL, country %s NOT NULL, epoch BIGINT NOT NULL DEFAULT 0)`, s.prefix, k, k, b, t),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %srefresh_tokens (hash %s PRIMARY KEY, user_id %s NOT NULL, family %s NOT NULL, expires_at BIGINT NOT NULL, used INTEGER NOT NULL DEFAULT 0, revoked INTEGER NOT NULL DEFAULT 0, used_at BIGINT NOT NULL DEFAULT 0)`, s.prefix, k, k, k),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %scarts (user_id %s PRIMARY KEY, items %s NOT NULL)`, s.prefix, k, t),
	}
	for _, q := range stmts {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("session: migrate: %w", err)
		}
	}
	// Index creation and ADD COLUMN are not idempotent everywhere: ignore
	// "exists". used_at came after the first version of the table.
	for _, q := range []string{
		fmt.Sprintf(`CREATE INDEX %srefresh_family ON %srefresh_tokens (family)`, s.prefix, s.prefix),
		fmt.Sprintf(`CREATE INDEX %srefresh_user ON %srefresh_tokens (user_id)`, s.prefix, s.prefix),
		fmt.Sprintf(`ALTER TABLE %srefresh_tokens ADD COLUMN used_at BIGINT NOT NULL DEFAULT 0`, s.prefix),
	} {
		if _, err := s.db.ExecContext(ctx, q); err != nil && !strings.Contains(strings.ToLower(err.Error()), "exist") && !strings.Contains(strings.ToLower(err.Error()), "duplicate") {
			return fmt.Errorf("session: migrate: %w", err)
		}
	}
	return nil
}

// Drop removes the tables (tests).
func (s *SQLStore) Drop(ctx context.Context) error {
	for _, n := range []string{"users", "refresh_tokens", "carts"} {
		if _, err := s.db.ExecContext(ctx, "DROP TABLE IF EXISTS "+s.prefix+n); err != nil {
			return err
		}
	}
	return nil
}

func (s *SQLStore) q(q string) string { return s.queries.Get(q) }

func (s *SQLStore) PutUser(ctx context.Context, u User) error {
	_, err := s.db.ExecContext(ctx, s.d.Upsert(s.prefix+"users", []string{"id"}, []string{"email", "password_hash", "country", "epoch"}),
		u.ID, strings.ToLower(u.Email), u.PasswordHash, u.Country, u.Epoch)
	return err
}

func (s *SQLStore) user(ctx context.Context, where string, arg string) (User, error) {
	var u User
	err := s.db.QueryRowContext(ctx, s.q(`SELECT id, email, password_hash, country, epoch FROM {p}users WHERE `+where+` = ?`), arg).
		Scan(&u.ID, &u.Email, &u.PasswordHash, &u.Country, &u.Epoch)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrNotFound
	}
	return u, err
}

func (s *SQLStore) UserByEmail(ctx context.Context, email string) (User, error) {
	return s.user(ctx, "email", strings.ToLower(email))
}

func (s *SQLStore) UserByID(ctx context.Context, id string) (User, error) {
	return s.user(ctx, "id", id)
}

func (s *SQLStore) BumpEpoch(ctx context.Context, userID string) error {
	_, err := s.db.ExecContext(ctx, s.q(`UPDATE {p}users SET epoch = epoch + 1 WHERE id = ?`), userID)
	return err
}

func (s *SQLStore) EnsureRefresh(ctx context.Context, t RefreshToken) (RefreshToken, error) {
	pre, suf := s.d.InsertIgnore()
	if _, err := s.db.ExecContext(ctx, s.q(pre+` {p}refresh_tokens (hash, user_id, family, expires_at, used, revoked, used_at) VALUES (?, ?, ?, ?, 0, 0, 0)`+suf),
		t.Hash, t.UserID, t.Family, t.ExpiresAt.UnixMilli()); err != nil {
		return RefreshToken{}, err
	}
	have, err := s.refresh(ctx, t.Hash)
	if errors.Is(err, sql.ErrNoRows) {
		// Purged between the two statements: it existed and is gone.
		return RefreshToken{}, ErrRefreshDead
	}
	return have, err
}

func (s *SQLStore) ConsumeRefresh(ctx context.Context, hash string, now time.Time) (RefreshToken, error) {
	// The conditional UPDATE is the atomic step: of two concurrent uses of
	// one token exactly one sees a row change.
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE {p}refresh_tokens SET used = 1, used_at = ? WHERE hash = ? AND used = 0 AND revoked = 0 AND expires_at > ?`), now.UnixMilli(), hash, now.UnixMilli())
	if err != nil {
		return RefreshToken{}, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return RefreshToken{}, err
	}
	t, err := s.refresh(ctx, hash)
	if errors.Is(err, sql.ErrNoRows) {
		return RefreshToken{}, ErrRefreshDead
	}
	if err != nil {
		return RefreshToken{}, err
	}
	if n == 1 {
		return t, nil
	}
	if t.Revoked || !now.Before(t.ExpiresAt) {
		return t, ErrRefreshDead
	}
	return t, ErrRefreshReused
}

// refresh reads one token; sql.ErrNoRows when there is none.
func (s *SQLStore) refresh(ctx context.Context, hash string) (RefreshToken, error) {
	var t RefreshToken
	var exp, usedAt int64
	var used, revoked int
	err := s.db.QueryRowContext(ctx, s.q(`SELECT hash, user_id, family, expires_at, used, revoked, used_at FROM {p}refresh_tokens WHERE hash = ?`), hash).
		Scan(&t.Hash, &t.UserID, &t.Family, &exp, &used, &revoked, &usedAt)
	if err != nil {
		return RefreshToken{}, err
	}
	t.ExpiresAt, t.Used, t.Revoked = time.UnixMilli(exp), used != 0, revoked != 0
	if usedAt != 0 {
		t.UsedAt = time.UnixMilli(usedAt)
	}
	return t, nil
}

func (s *SQLStore) FamilyRevoked(ctx context.Context, family string) (bool, error) {
	var one int
	err := s.db.QueryRowContext(ctx, s.q(`SELECT 1 FROM {p}refresh_tokens WHERE family = ? AND revoked = 1 LIMIT 1`), family).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func (s *SQLStore) RevokeFamily(ctx context.Context, family string) error {
	_, err := s.db.ExecContext(ctx, s.q(`UPDATE {p}refresh_tokens SET revoked = 1 WHERE family = ?`), family)
	return err
}

func (s *SQLStore) RevokeUser(ctx context.Context, userID string) error {
	_, err := s.db.ExecContext(ctx, s.q(`UPDATE {p}refresh_tokens SET revoked = 1 WHERE user_id = ?`), userID)
	return err
}

func (s *SQLStore) GetCart(ctx context.Context, userID string) (Cart, error) {
	var raw string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT items FROM {p}carts WHERE user_id = ?`), userID).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return Cart{}, nil
	}
	if err != nil {
		return Cart{}, err
	}
	var c Cart
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		return Cart{}, fmt.Errorf("session: stored cart: %w", err)
	}
	return c, nil
}

func (s *SQLStore) PutCart(ctx context.Context, userID string, c Cart) error {
	raw, err := json.Marshal(c)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, s.d.Upsert(s.prefix+"carts", []string{"user_id"}, []string{"items"}), userID, string(raw))
	return err
}
