// Package sqlutil holds the little the example services need to speak three
// SQL dialects through database/sql.
package sqlutil

import (
	"strconv"
	"strings"
	"sync"
)

// Dialect names a SQL flavour.
type Dialect string

const (
	Postgres Dialect = "postgres"
	MySQL    Dialect = "mysql"
	SQLite   Dialect = "sqlite"
)

// Rebind turns ? placeholders into $1, $2, ... for PostgreSQL.
func (d Dialect) Rebind(q string) string {
	if d != Postgres {
		return q
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// Blob is the column type for opaque bytes.
func (d Dialect) Blob() string {
	switch d {
	case Postgres:
		return "BYTEA"
	case MySQL:
		return "LONGBLOB"
	}
	return "BLOB"
}

// Key is the column type for indexed string keys (MySQL cannot index TEXT).
func (d Dialect) Key() string {
	if d == MySQL {
		return "VARCHAR(191)"
	}
	return "TEXT"
}

// Text is the column type for unindexed strings.
func (d Dialect) Text() string {
	if d == MySQL {
		return "LONGTEXT"
	}
	return "TEXT"
}

// BigInt is the column type for int64.
func (d Dialect) BigInt() string { return "BIGINT" }

// InsertIgnore returns the statement prefix and suffix that make an INSERT
// do nothing on a duplicate key.
func (d Dialect) InsertIgnore() (prefix, suffix string) {
	switch d {
	case MySQL:
		return "INSERT IGNORE INTO", ""
	default:
		return "INSERT INTO", " ON CONFLICT DO NOTHING"
	}
}

// Upsert builds "insert or replace" for a table with the given key columns.
func (d Dialect) Upsert(table string, keys []string, cols []string) string {
	all := append(append([]string{}, keys...), cols...)
	ph := strings.TrimSuffix(strings.Repeat("?,", len(all)), ",")
	q := "INSERT INTO " + table + " (" + strings.Join(all, ",") + ") VALUES (" + ph + ")"
	sets := make([]string, len(cols))
	switch d {
	case MySQL:
		for i, c := range cols {
			sets[i] = c + "=VALUES(" + c + ")"
		}
		q += " ON DUPLICATE KEY UPDATE " + strings.Join(sets, ",")
	default:
		for i, c := range cols {
			sets[i] = c + "=excluded." + c
		}
		q += " ON CONFLICT (" + strings.Join(keys, ",") + ") DO UPDATE SET " + strings.Join(sets, ",")
	}
	return d.Rebind(q)
}

// Queries turns query templates into one dialect's SQL for one table
// prefix ({p} becomes the prefix, ? the dialect's placeholders), once per
// template: the stores run the same few dozen statements for every order,
// and rewriting each one every time showed in a drop's CPU profile.
type Queries struct {
	d      Dialect
	prefix string
	mu     sync.RWMutex
	done   map[string]string
}

// NewQueries returns an empty Queries for d and prefix.
func NewQueries(d Dialect, prefix string) *Queries {
	return &Queries{d: d, prefix: prefix, done: map[string]string{}}
}

// Get returns tmpl in the dialect, with the prefix. Templates must come
// from a fixed set (constants, or built from constants): each is kept for
// the life of the Queries.
func (q *Queries) Get(tmpl string) string {
	q.mu.RLock()
	s, ok := q.done[tmpl]
	q.mu.RUnlock()
	if ok {
		return s
	}
	s = q.d.Rebind(strings.ReplaceAll(tmpl, "{p}", q.prefix))
	q.mu.Lock()
	q.done[tmpl] = s
	q.mu.Unlock()
	return s
}
