package sqlstore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// migrationFiles holds one directory of numbered SQL files per dialect:
// NNNN_name.sql, applied in order, {p} standing for the table prefix.
//
//go:embed migrations
var migrationFiles embed.FS

type migration struct {
	version    int
	name       string
	statements []string
}

// migrations returns the dialect's migrations in order.
func migrations(d Dialect, prefix string) ([]migration, error) {
	dir := path.Join("migrations", string(d))
	entries, err := fs.ReadDir(migrationFiles, dir)
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(name, ".sql") {
			return nil, fmt.Errorf("sqlstore: migration %s is not named NNNN_name.sql", name)
		}
		b, err := fs.ReadFile(migrationFiles, path.Join(dir, name))
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: name, statements: splitStatements(strings.ReplaceAll(string(b), "{p}", prefix))})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	return out, nil
}

// splitStatements splits a migration file into statements at semicolons
// that end a line, dropping comment lines. Migration files keep semicolons
// out of literals and comments.
func splitStatements(src string) []string {
	var b strings.Builder
	for line := range strings.Lines(src) {
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		b.WriteString(line)
	}
	var out []string
	for _, st := range strings.Split(b.String(), ";\n") {
		st = strings.TrimSuffix(strings.TrimSpace(st), ";")
		if st != "" {
			out = append(out, st)
		}
	}
	return out
}

// lockName is the name of the lock Migrate holds, the same for every
// process using this table prefix.
func (s *Store) lockName() (string, int64) {
	h := fnv.New64a()
	h.Write([]byte("paymux/sqlstore/migrate/" + s.prefix))
	sum := h.Sum64()
	return fmt.Sprintf("paymux_migrate_%016x", sum), int64(sum)
}

// Migrate creates or upgrades the store's tables. It applies the embedded
// migrations that the migrations table does not list yet and records each.
// It is idempotent, and safe when several processes call it at once: they
// take turns under a lock (an advisory lock on PostgreSQL, GET_LOCK on
// MySQL, the write lock on SQLite). On PostgreSQL and SQLite everything runs
// in one transaction; MySQL cannot roll DDL back, so its migrations are
// written to be re-run after a crash part way.
func (s *Store) Migrate(ctx context.Context) (err error) {
	migs, err := migrations(s.dialect, s.prefix)
	if err != nil {
		return err
	}
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	defer conn.Close()
	// Every start-up calls Migrate; when nothing is missing it costs one
	// read, takes no lock and needs no DDL privilege.
	if s.upToDate(ctx, conn, migs) {
		return nil
	}
	name, id := s.lockName()

	switch s.dialect {
	case Postgres:
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("sqlstore: migrate: %w", err)
		}
		defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", id); err != nil {
			return fmt.Errorf("sqlstore: migrate: lock: %w", err)
		}
		if err := s.applyMigrations(ctx, tx, migs); err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("sqlstore: migrate: commit: %w", err)
		}
		return nil

	case MySQL:
		var got *int64
		if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 60)", name).Scan(&got); err != nil {
			return fmt.Errorf("sqlstore: migrate: lock: %w", err)
		}
		if got == nil || *got != 1 {
			return errors.New("sqlstore: migrate: another process held the migration lock for 60 s")
		}
		defer func() {
			if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), "DO RELEASE_LOCK(?)", name); rerr != nil && err == nil {
				err = fmt.Errorf("sqlstore: migrate: unlock: %w", rerr)
			}
		}()
		return s.applyMigrations(ctx, conn, migs)

	default: // SQLite
		if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			return fmt.Errorf("sqlstore: migrate: %w", err)
		}
		if err := s.applyMigrations(ctx, conn, migs); err != nil {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
			return err
		}
		if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
			return fmt.Errorf("sqlstore: migrate: commit: %w", err)
		}
		return nil
	}
}

// upToDate reports whether every migration is recorded as applied. Any
// error (no migrations table yet, above all) means "not known to be", and
// the locked path finds out for sure.
func (s *Store) upToDate(ctx context.Context, e execer, migs []migration) bool {
	applied, err := s.appliedVersions(ctx, e)
	if err != nil {
		return false
	}
	for _, m := range migs {
		if !applied[m.version] {
			return false
		}
	}
	return true
}

func (s *Store) appliedVersions(ctx context.Context, e execer) (map[int]bool, error) {
	rows, err := e.QueryContext(ctx, s.q.migrationsList.text)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	applied := map[int]bool{}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		applied[v] = true
	}
	return applied, rows.Err()
}

func (s *Store) applyMigrations(ctx context.Context, e execer, migs []migration) error {
	if _, err := e.ExecContext(ctx, s.q.migrationsTable.text); err != nil {
		return fmt.Errorf("sqlstore: migrate: create migrations table: %w", err)
	}
	applied, err := s.appliedVersions(ctx, e)
	if err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	for _, m := range migs {
		if applied[m.version] {
			continue
		}
		for _, st := range m.statements {
			if _, err := e.ExecContext(ctx, st); err != nil {
				return fmt.Errorf("sqlstore: migrate: %s: %w", m.name, err)
			}
		}
		q := s.q.migrationsDone
		if _, err := e.ExecContext(ctx, q.text, q.args([]any{m.version, m.name, nanos(s.now())})...); err != nil {
			return fmt.Errorf("sqlstore: migrate: record %s: %w", m.name, err)
		}
	}
	return nil
}
