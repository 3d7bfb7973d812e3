package sqlstore_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/internal/testclock"
	"github.com/paymux/paymux/store/sql"
)

// setup returns a store of dialect d driven by a fake clock.
func setup(t *testing.T, d sqlstore.Dialect) (*sqlstore.Store, *testclock.Clock) {
	t.Helper()
	clock := testclock.New(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	h := newHarness(t, d, nil)
	return h.store(t, sqlstore.Options{Clock: clock.Now}), clock
}

// forEachDialect runs fn as a parallel subtest per dialect.
func forEachDialect(t *testing.T, fn func(t *testing.T, d sqlstore.Dialect)) {
	t.Helper()
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			fn(t, d)
		})
	}
}

func payment(id, key string) *paymux.Payment {
	return &paymux.Payment{ID: id, IdempotencyKey: key, Provider: "sim", Status: paymux.StatusPending,
		Amount: paymux.NewMoney(1000, "EUR"), CreatedAt: time.Unix(0, 0).UTC(), UpdatedAt: time.Unix(0, 0).UTC()}
}

func TestNewValidatesOptions(t *testing.T) {
	t.Parallel()
	db, err := sqlstore.OpenDB(sqlstore.SQLite, filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, o := range []sqlstore.Options{
		{},
		{Dialect: "oracle"},
		{Dialect: sqlstore.SQLite, TablePrefix: "x; DROP TABLE users; --"},
		{Dialect: sqlstore.SQLite, TablePrefix: "Upper_"},
		{Dialect: sqlstore.SQLite, TablePrefix: "9lives_"},
	} {
		if _, err := sqlstore.New(db, o); err == nil {
			t.Errorf("New(%+v) accepted invalid options", o)
		}
	}
	if _, err := sqlstore.New(nil, sqlstore.Options{Dialect: sqlstore.SQLite}); err == nil {
		t.Error("New(nil db) succeeded")
	}
	st, err := sqlstore.New(db, sqlstore.Options{Dialect: sqlstore.SQLite})
	if err != nil || st.TablePrefix() != sqlstore.DefaultTablePrefix || st.Dialect() != sqlstore.SQLite {
		t.Fatalf("New with defaults: %v, %v", st, err)
	}
}

func TestOpenDBDoesNotLeakTheDSN(t *testing.T) {
	t.Parallel()
	for _, d := range []sqlstore.Dialect{sqlstore.Postgres, sqlstore.MySQL} {
		_, err := sqlstore.OpenDB(d, "::not a dsn:: password=hunter2 user:hunter2@")
		if err == nil {
			continue // some drivers accept anything until they connect
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: error repeats the DSN: %v", d, err)
		}
	}
}

// Several processes start at once and each calls Migrate: the tables are
// created once, and calling Migrate again changes nothing.
func TestMigrateConcurrentAndIdempotent(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		prefix := randomPrefix()
		h := newHarness(t, d, nil)
		var dsn string
		if d == sqlstore.SQLite {
			dsn = filepath.Join(t.TempDir(), "shared.db")
		}
		const processes = 4
		var wg sync.WaitGroup
		errs := make(chan error, processes*2)
		stores := make([]*sqlstore.Store, processes)
		for i := range processes {
			db := h.db
			if d == sqlstore.SQLite {
				// Separate pools on one file stand in for processes.
				var err error
				db, err = sqlstore.OpenDB(sqlstore.SQLite, dsn)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
			}
			st, err := sqlstore.New(db, sqlstore.Options{Dialect: d, TablePrefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			stores[i] = st
		}
		if h.db != nil {
			t.Cleanup(func() {
				h.db.Exec("DROP TABLE IF EXISTS " + prefix + "idempotency, " + prefix + "payments, " + prefix + "events, " + prefix + "deliveries, " + prefix + "migrations")
			})
		}
		for _, st := range stores {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- st.Migrate(t.Context())
				errs <- st.Migrate(t.Context())
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("Migrate: %v", err)
			}
		}
		// Every "process" sees the same working tables.
		p := payment("pay_migrate", "k")
		if err := stores[0].SavePayment(t.Context(), p, 0); err != nil {
			t.Fatal(err)
		}
		got, err := stores[processes-1].GetPayment(t.Context(), p.ID)
		if err != nil || got.Version != 1 {
			t.Fatalf("GetPayment through another store: %+v, %v", got, err)
		}
	})
}

// An idempotency key is compared byte for byte: case and trailing spaces
// make another key (MySQL's default collations would merge them).
func TestKeysAreExactBytes(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		st, _ := setup(t, d)
		for _, k := range []string{"order-1", "Order-1", "order-1 ", "order-1\u00a0", "ordér-1", "orde\u0301r-1"} {
			_, claimed, err := st.ClaimIdempotency(t.Context(), paymux.ClaimParams{Key: k, Fingerprint: "fp", Token: "tok-" + k, Lease: time.Minute})
			if err != nil || !claimed {
				t.Fatalf("claim %q: claimed %v, err %v", k, claimed, err)
			}
		}
	})
}

func TestTooLongValuesAreRefusedNotTruncated(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		st, _ := setup(t, d)
		long := strings.Repeat("k", 1025)
		_, _, err := st.ClaimIdempotency(t.Context(), paymux.ClaimParams{Key: long, Fingerprint: "fp", Token: "t", Lease: time.Minute})
		if !errors.Is(err, sqlstore.ErrTooLong) {
			t.Fatalf("claim with a 1025-byte key: %v, want ErrTooLong", err)
		}
		// The longest allowed key works and is not confused with a prefix of it.
		k := strings.Repeat("k", 1024)
		for _, key := range []string{k, k[:1023]} {
			if _, claimed, err := st.ClaimIdempotency(t.Context(), paymux.ClaimParams{Key: key, Fingerprint: "fp", Token: "t" + key[:3], Lease: time.Minute}); err != nil || !claimed {
				t.Fatalf("claim of a %d-byte key: %v %v", len(key), claimed, err)
			}
		}
		p := payment(strings.Repeat("p", 256), "k")
		if err := st.SavePayment(t.Context(), p, 0); !errors.Is(err, sqlstore.ErrTooLong) {
			t.Fatalf("save with a 256-byte id: %v", err)
		}
	})
}

// The injected clock decides leases and expiry, so expiry needs no sleep.
func TestInjectedClockDrivesExpiry(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		st, clock := setup(t, d)
		ctx := t.Context()
		p := paymux.ClaimParams{Key: "k", Fingerprint: "fp", Token: "t1", Lease: 10 * time.Second, TTL: time.Hour, Payment: payment("pay_1", "k")}
		rec, claimed, err := st.ClaimIdempotency(ctx, p)
		if err != nil || !claimed || !rec.LeaseUntil.Equal(clock.Now().Add(10*time.Second)) {
			t.Fatalf("claim: %+v %v %v", rec, claimed, err)
		}
		p2 := p
		p2.Token = "t2"
		if _, claimed, _ := st.ClaimIdempotency(ctx, p2); claimed {
			t.Fatal("claimed within the lease")
		}
		clock.Advance(10 * time.Second)
		rec, claimed, err = st.ClaimIdempotency(ctx, p2)
		if err != nil || !claimed || !rec.TakenOver || rec.Token != "t2" {
			t.Fatalf("takeover at lease end: %+v %v %v", rec, claimed, err)
		}
		got, err := st.GetIdempotency(ctx, "k")
		if err != nil || !got.TakenOver || !got.LeaseUntil.Equal(rec.LeaseUntil) {
			t.Fatalf("GetIdempotency after takeover: %+v %v", got, err)
		}
		clock.Advance(time.Hour)
		if _, err := st.GetIdempotency(ctx, "k"); !errors.Is(err, paymux.ErrNotFound) {
			t.Fatalf("GetIdempotency after the TTL: %v", err)
		}
		if err := st.CompleteIdempotency(ctx, "k", "t2", payment("pay_1", "k")); !errors.Is(err, paymux.ErrClaimLost) {
			t.Fatalf("complete after the TTL: %v", err)
		}
	})
}

func TestPurge(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		st, clock := setup(t, d)
		ctx := t.Context()
		t0 := clock.Now()
		claim := func(key string, ttl time.Duration) {
			t.Helper()
			if _, ok, err := st.ClaimIdempotency(ctx, paymux.ClaimParams{Key: key, Fingerprint: "fp", Token: key, Lease: time.Minute, TTL: ttl}); err != nil || !ok {
				t.Fatalf("claim %s: %v %v", key, ok, err)
			}
		}
		claim("short", time.Hour)
		claim("long", 48*time.Hour)
		for _, e := range []struct {
			id  string
			ttl time.Duration
		}{{"e-short", time.Hour}, {"e-long", 48 * time.Hour}} {
			if _, err := st.ClaimEvent(ctx, "sim", e.id, time.Minute); err != nil {
				t.Fatal(err)
			}
			if err := st.CompleteEvent(ctx, "sim", e.id, e.ttl); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := st.ClaimEvent(ctx, "sim", "e-inflight", time.Minute); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"d-delivered", "d-pending", "d-dead"} {
			if err := st.EnqueueDelivery(ctx, &paymux.Delivery{ID: id, Event: paymux.Event{Provider: "sim", ID: id}, NextAttemptAt: t0}); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.CompleteDelivery(ctx, "d-delivered"); err != nil {
			t.Fatal(err)
		}
		if err := st.DeadLetterDelivery(ctx, "d-dead", "gave up"); err != nil {
			t.Fatal(err)
		}
		p := payment("pay_purge", "short")
		if err := st.SavePayment(ctx, p, 0); err != nil {
			t.Fatal(err)
		}

		n, err := st.Purge(ctx, t0)
		if err != nil || n != 0 {
			t.Fatalf("Purge(now) = %d, %v; want nothing deleted", n, err)
		}
		// Two hours on: the short records and the in-flight event claim are
		// gone; the delivered entry is kept for the event TTL (30 days).
		clock.Advance(2 * time.Hour)
		n, err = st.Purge(ctx, clock.Now())
		if err != nil || n != 3 {
			t.Fatalf("Purge(+2h) = %d, %v; want 3", n, err)
		}
		if _, err := st.GetIdempotency(ctx, "long"); err != nil {
			t.Fatalf("unexpired record purged: %v", err)
		}
		if c, _ := st.ClaimEvent(ctx, "sim", "e-long", time.Minute); c != paymux.EventDuplicate {
			t.Fatalf("unexpired event purged: %v", c)
		}
		if c, _ := st.ClaimEvent(ctx, "sim", "e-short", time.Minute); c != paymux.EventClaimed {
			t.Fatalf("expired event still there: %v", c)
		}
		clock.Advance(31 * 24 * time.Hour)
		if _, err := st.Purge(ctx, clock.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := st.GetDelivery(ctx, "d-delivered"); !errors.Is(err, paymux.ErrNotFound) {
			t.Fatalf("delivered entry not purged after the event TTL: %v", err)
		}
		for _, id := range []string{"d-pending", "d-dead"} {
			if _, err := st.GetDelivery(ctx, id); err != nil {
				t.Fatalf("%s purged: %v", id, err)
			}
		}
		if _, err := st.GetPayment(ctx, p.ID); err != nil {
			t.Fatalf("payment purged: %v", err)
		}
	})
}

// The happy path of an authorisation is a claim and a completion. On
// PostgreSQL that must be two round trips; MySQL and SQLite complete in a
// transaction (BEGIN, two statements, COMMIT). go-sql-driver/mysql also
// prepares each statement on the server unless the DSN sets
// interpolateParams=true; those prepares are counted but not held against
// the store here.
func TestHappyPathRoundTrips(t *testing.T) {
	t.Parallel()
	want := map[sqlstore.Dialect]int64{sqlstore.Postgres: 2, sqlstore.MySQL: 5, sqlstore.SQLite: 5}
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		var n sqlstore.Counter
		h := newHarness(t, d, &n)
		st := h.store(t, sqlstore.Options{})
		// Warm up: the first use of a statement may prepare it.
		for i := range 2 {
			key := "warm-" + string(rune('a'+i))
			claimComplete(t, st, key)
		}
		before := n.Counts()
		claimComplete(t, st, "measured")
		got := n.Counts().Sub(before)
		t.Logf("%s: claim+complete = %d round trips (%+v)", d, got.RoundTrips(), got)
		if got.RoundTrips()-got.Prepares > want[d] {
			t.Fatalf("%s: claim+complete took %d round trips, want at most %d: %+v", d, got.RoundTrips(), want[d], got)
		}
	})
}

func claimComplete(t testing.TB, st *sqlstore.Store, key string) {
	t.Helper()
	ctx := context.Background()
	p := payment("pay_"+key, key)
	rec, claimed, err := st.ClaimIdempotency(ctx, paymux.ClaimParams{Key: key, Fingerprint: "fp", Token: "tok-" + key, Lease: time.Minute, Payment: p})
	if err != nil || !claimed {
		t.Fatalf("claim %s: %+v %v %v", key, rec, claimed, err)
	}
	p.Status = paymux.StatusAuthorized
	if err := st.CompleteIdempotency(ctx, key, "tok-"+key, p); err != nil {
		t.Fatalf("complete %s: %v", key, err)
	}
}

// Two pools on one SQLite file stand in for two processes: their writers
// wait for each other through busy_timeout, never failing with "database is
// locked", and exactly one claim wins.
func TestSQLiteTwoProcessesOneFile(t *testing.T) {
	t.Parallel()
	dsn := filepath.Join(t.TempDir(), "shared.db")
	var stores []*sqlstore.Store
	for range 2 {
		db, err := sqlstore.OpenDB(sqlstore.SQLite, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		st, err := sqlstore.New(db, sqlstore.Options{Dialect: sqlstore.SQLite})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		stores = append(stores, st)
	}
	const keys, perStore = 20, 16
	var wins [keys]atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 2*perStore)
	for si, st := range stores {
		for g := range perStore {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range keys {
					key := "key-" + string(rune('a'+k))
					tok := key + "-" + string(rune('A'+si)) + string(rune('a'+g))
					p := payment("pay_"+key, key)
					_, claimed, err := st.ClaimIdempotency(t.Context(), paymux.ClaimParams{Key: key, Fingerprint: "fp", Token: tok, Lease: time.Minute, Payment: p})
					if err != nil {
						errs <- err
						return
					}
					if claimed {
						wins[k].Add(1)
						if err := st.CompleteIdempotency(t.Context(), key, tok, p); err != nil {
							errs <- err
							return
						}
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for k := range keys {
		if w := wins[k].Load(); w != 1 {
			t.Fatalf("key %d: %d winners", k, w)
		}
	}
}

func TestCountingConnectorCountsTransactions(t *testing.T) {
	t.Parallel()
	var n sqlstore.Counter
	db, err := sqlstore.OpenCountingDB(sqlstore.SQLite, filepath.Join(t.TempDir(), "c.db"), &n)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO t VALUES (?)", 1); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var x int
	if err := db.QueryRowContext(ctx, "SELECT x FROM t WHERE x = ?", 1).Scan(&x); err != nil || x != 1 {
		t.Fatalf("select: %d %v", x, err)
	}
	c := n.Counts()
	if c.Begins != 1 || c.Commits != 1 || c.Execs+c.Queries < 3 {
		t.Fatalf("counts = %+v", c)
	}
	n.Reset()
	if n.Counts().RoundTrips() != 0 {
		t.Fatal("Reset left counts")
	}
}

// Without a working database there is no claim: every call fails with an
// error that is none of the store's answers (not found, claim lost,
// version conflict), which the orchestrator turns into
// ErrStoreUnavailable, and a claim is never reported as won.
func TestFailsClosedWithoutDatabase(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		// A closed pool stands in for a database that went away.
		dsn, _ := server(d)
		if d == sqlstore.SQLite {
			dsn = filepath.Join(t.TempDir(), "gone.db")
		}
		db, err := sqlstore.OpenDB(d, dsn)
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
		dead, err := sqlstore.New(db, sqlstore.Options{Dialect: d})
		if err != nil {
			t.Fatal(err)
		}
		ctx := t.Context()
		p := payment("pay_dead", "k")
		rec, claimed, err := dead.ClaimIdempotency(ctx, paymux.ClaimParams{Key: "k", Fingerprint: "fp", Token: "t", Lease: time.Minute, Payment: p})
		if err == nil || claimed || rec != nil {
			t.Fatalf("claim without a database: %+v, %v, %v", rec, claimed, err)
		}
		for what, err := range map[string]error{
			"complete": dead.CompleteIdempotency(ctx, "k", "t", p),
			"save":     dead.SavePayment(ctx, p, 0),
			"release":  dead.ReleaseIdempotency(ctx, "k", "t"),
			"get":      func() error { _, err := dead.GetPayment(ctx, "x"); return err }(),
			"event":    func() error { _, err := dead.ClaimEvent(ctx, "sim", "e", time.Minute); return err }(),
		} {
			if err == nil || errors.Is(err, paymux.ErrNotFound) || errors.Is(err, paymux.ErrClaimLost) || errors.Is(err, paymux.ErrVersionConflict) {
				t.Errorf("%s without a database: %v, want a store failure", what, err)
			}
		}
	})
}

// A holder whose lease ended completes at the moment another request
// takes the key over: exactly one of them wins, and a holder that lost
// saved nothing. (On PostgreSQL the completion is one statement whose
// FOR UPDATE must see a takeover that committed first.)
func TestCompleteRacesTakeover(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		st, clock := setup(t, d)
		ctx := t.Context()
		const rounds = 40
		for i := range rounds {
			key := "race-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
			p := payment("pay_"+key, key)
			if _, ok, err := st.ClaimIdempotency(ctx, paymux.ClaimParams{Key: key, Fingerprint: "fp", Token: "old", Lease: time.Second, Payment: p}); err != nil || !ok {
				t.Fatalf("claim: %v %v", ok, err)
			}
		}
		clock.Advance(time.Second) // every lease has ended
		var completions, takeovers int
		defer func() { t.Logf("%s: %d completions, %d takeovers", d, completions, takeovers) }()
		for i := range rounds {
			key := "race-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
			var completeErr, claimErr error
			var claimed bool
			var wg sync.WaitGroup
			wg.Add(2)
			go func() {
				defer wg.Done()
				completeErr = st.CompleteIdempotency(ctx, key, "old", payment("pay_"+key, key))
			}()
			go func() {
				defer wg.Done()
				_, claimed, claimErr = st.ClaimIdempotency(ctx, paymux.ClaimParams{Key: key, Fingerprint: "fp", Token: "new", Lease: time.Minute})
			}()
			wg.Wait()
			if claimErr != nil || (completeErr != nil && !errors.Is(completeErr, paymux.ErrClaimLost)) {
				t.Fatalf("%s: complete %v, claim %v", key, completeErr, claimErr)
			}
			if (completeErr == nil) == claimed {
				t.Fatalf("%s: complete succeeded = %v and takeover = %v; want exactly one", key, completeErr == nil, claimed)
			}
			if claimed {
				takeovers++
			} else {
				completions++
			}
			_, err := st.GetPayment(ctx, "pay_"+key)
			if claimed && !errors.Is(err, paymux.ErrNotFound) {
				t.Fatalf("%s: the holder lost the key yet its payment was saved (%v)", key, err)
			}
		}
	})
}
