package sqlstore_test

import (
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/paymux/paymux/store/sql"
)

// BenchmarkClaimComplete measures the store's share of one happy-path
// authorisation: ClaimIdempotency then CompleteIdempotency of a fresh key.
// It reports round trips per pair counted by the counting driver wrapper.
//
//	go test -run '^$' -bench ClaimComplete -benchtime 2s ./store/sql/
func BenchmarkClaimComplete(b *testing.B) {
	cases := []struct {
		name    string
		dialect sqlstore.Dialect
		dsnOpt  string
	}{
		{"postgres", sqlstore.Postgres, ""},
		{"mysql", sqlstore.MySQL, ""},
		{"mysql-interpolate", sqlstore.MySQL, "interpolateParams=true"},
		{"sqlite", sqlstore.SQLite, ""},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var n sqlstore.Counter
			h := newBenchHarness(b, c.dialect, c.dsnOpt, &n)
			st := h.store(b, sqlstore.Options{})
			claimComplete(b, st, "warm-up")
			n.Reset()
			b.ResetTimer()
			for i := range b.N {
				claimComplete(b, st, "bench-"+strconv.Itoa(i))
			}
			b.StopTimer()
			cnt := n.Counts()
			b.ReportMetric(float64(cnt.RoundTrips())/float64(b.N), "roundtrips/op")
			b.ReportMetric(float64(cnt.RoundTrips()-cnt.Prepares)/float64(b.N), "statements/op")
		})
	}
}

func newBenchHarness(b *testing.B, d sqlstore.Dialect, dsnOpt string, n *sqlstore.Counter) *harness {
	if dsnOpt == "" {
		return newHarness(b, d, n)
	}
	dsn, _ := server(d)
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	db, err := sqlstore.OpenCountingDB(d, dsn+sep+dsnOpt, n)
	if err != nil {
		b.Skip(err)
	}
	if err := db.Ping(); err != nil {
		db.Close()
		b.Skip(err)
	}
	b.Cleanup(func() { db.Close() })
	return &harness{dialect: d, db: db, counter: n}
}

// BenchmarkAuthorize measures a happy-path authorisation through the
// orchestrator with the sim provider, one at a time and with 64 goroutines.
//
//	go test -run '^$' -bench Authorize -benchtime 2s ./store/sql/
func BenchmarkAuthorize(b *testing.B) {
	for _, d := range dialects {
		for _, par := range []int{1, 64} {
			b.Run(string(d)+"/goroutines="+strconv.Itoa(par), func(b *testing.B) {
				var n sqlstore.Counter
				h := newHarness(b, d, &n)
				o := newOrchestrator(b, h.store(b, sqlstore.Options{}))
				authorize(b, o, "warm-up")
				n.Reset()
				var seq atomic.Int64
				b.ResetTimer()
				if par == 1 {
					for i := range b.N {
						authorize(b, o, "bench-"+strconv.Itoa(i))
					}
				} else {
					b.SetParallelism(par / runtime.GOMAXPROCS(0))
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							authorize(b, o, "bench-"+strconv.FormatInt(seq.Add(1), 10))
						}
					})
				}
				b.StopTimer()
				b.ReportMetric(float64(n.Counts().RoundTrips())/float64(b.N), "roundtrips/op")
			})
		}
	}
}
