package sqlstore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/store/sql"
)

// The embedded default: a SQLite file, migrated at start-up.
func Example() {
	dir, err := os.MkdirTemp("", "paymux-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	st, err := sqlstore.Open(sqlstore.SQLite, filepath.Join(dir, "paymux.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		log.Fatal(err)
	}

	p := &paymux.Payment{ID: "pay_1", IdempotencyKey: "order-1", Status: paymux.StatusPending, Amount: paymux.NewMoney(1299, "EUR")}
	_, claimed, err := st.ClaimIdempotency(ctx, paymux.ClaimParams{Key: "order-1", Fingerprint: "fp", Token: "tok-1", Lease: 30 * time.Second, Payment: p})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("claimed:", claimed)

	p.Status = paymux.StatusAuthorized
	if err := st.CompleteIdempotency(ctx, "order-1", "tok-1", p); err != nil {
		log.Fatal(err)
	}
	rec, _, _ := st.ClaimIdempotency(ctx, paymux.ClaimParams{Key: "order-1", Fingerprint: "fp", Token: "tok-2", Lease: 30 * time.Second})
	fmt.Println("replay:", rec.State, rec.Payment.Status, "version", rec.Payment.Version)
	// Output:
	// claimed: true
	// replay: completed authorized version 1
}

// Sharing a PostgreSQL database: New on your own *sql.DB, with a table
// prefix per application.
func ExampleNew() {
	db, err := sqlstore.OpenDB(sqlstore.Postgres, "postgres://paymux@db.internal:5432/shop")
	if err != nil {
		log.Fatal(err)
	}
	st, err := sqlstore.New(db, sqlstore.Options{Dialect: sqlstore.Postgres, TablePrefix: "payments_"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(st.Dialect(), st.TablePrefix())
	// Output: postgres payments_
}

// Counting store round trips in a benchmark.
func ExampleOpenCountingDB() {
	dir, _ := os.MkdirTemp("", "paymux-example")
	defer os.RemoveAll(dir)
	var n sqlstore.Counter
	db, err := sqlstore.OpenCountingDB(sqlstore.SQLite, filepath.Join(dir, "paymux.db"), &n)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	st, _ := sqlstore.New(db, sqlstore.Options{Dialect: sqlstore.SQLite})
	ctx := context.Background()
	if err := st.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	before := n.Counts()
	if _, err := st.GetPayment(ctx, "pay_missing"); err != nil {
		fmt.Println(err)
	}
	fmt.Println("round trips:", n.Counts().Sub(before).RoundTrips())
	// Output:
	// paymux: not found
	// round trips: 1
}

// A shop's own single-statement write on the PostgreSQL database that
// OpenDB opened may share its commit with the store's writes and other
// callers': the statement is correct whatever ran before it, and it holds
// no session state. The caller hears its own result, after the commit.
// (Needs a PostgreSQL server, so it has no output to check.)
func ExampleMayShareCommit() {
	db, err := sqlstore.OpenDB(sqlstore.Postgres, "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctx := sqlstore.MayShareCommit(context.Background())
	res, err := db.ExecContext(ctx, `UPDATE shop_orders SET status = 'shipped' WHERE id = $1 AND status = 'paid'`, "order-1")
	if err != nil {
		log.Fatal(err)
	}
	n, _ := res.RowsAffected()
	fmt.Println("shipped:", n)
}
