package app

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/examples/internal/testenv"
)

// With PurgeOnShutdown, Shutdown leaves nothing under the app's prefix: no
// Redis key (paymux's keys put the prefix in a hash tag) and no table.
func TestPurgeOnShutdown(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	t.Run("redis keys", func(t *testing.T) {
		rdb := testenv.Redis(t)
		prefix := testenv.Prefix("purge")
		ctx := context.Background()
		cfg := Config{Store: "redis", RedisURL: testenv.RedisURL(), Prefix: prefix, PurgeOnShutdown: true, Dev: true, BcryptCost: 4, Logger: quiet}
		a, err := New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		a.Start(ctx)
		// A paymux key too: its prefix sits in a hash tag ("{prefix...}").
		if _, _, err := a.Store.ClaimIdempotency(ctx, paymux.ClaimParams{Key: "k_purge", Fingerprint: "f", Token: "t", Lease: time.Minute,
			Payment: &paymux.Payment{ID: "pay_purge", IdempotencyKey: "k_purge", Amount: paymux.NewMoney(100, "EUR"), Status: paymux.StatusPending}}); err != nil {
			t.Fatal(err)
		}
		if n := len(rdb.Keys(ctx, "{"+prefix+"*").Val()); n == 0 {
			t.Fatal("no paymux key under the prefix: the test checks nothing")
		}
		if n := len(rdb.Keys(ctx, prefix+"*").Val()); n == 0 {
			t.Fatal("no shop key under the prefix: the test checks nothing")
		}
		if err := a.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if left := rdb.Keys(ctx, "*"+prefix+"*").Val(); len(left) != 0 {
			t.Fatalf("%d keys left after the purge, e.g. %q", len(left), left[0])
		}
	})
	t.Run("sqlite tables", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "purge.db")
		prefix := testenv.Prefix("purge")
		ctx := context.Background()
		a, err := New(ctx, Config{Store: "sqlite", SQLitePath: path, Prefix: prefix, PurgeOnShutdown: true, Dev: true, BcryptCost: 4, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		a.Start(ctx)
		if n := countTables(t, path, prefix); n == 0 {
			t.Fatal("the app made no tables under its prefix: the test checks nothing")
		}
		if err := a.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if n := countTables(t, path, prefix); n != 0 {
			t.Fatalf("%d tables left after the purge", n)
		}
	})
}

func countTables(t *testing.T, path, prefix string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(name, prefix) {
			n++
		}
	}
	return n
}
