package integration

import (
	"testing"

	"github.com/paymux/paymux"
	redisstore "github.com/paymux/paymux/store/redis"
	sqlstore "github.com/paymux/paymux/store/sql"

	"github.com/paymux/paymux/store/memory"
)

// storeNames are the backends the round-trip test and the benchmarks run on.
var storeNames = []string{"memory", "sqlite", "redis", "postgres", "mysql"}

// countedStore is a fresh store and a function that returns how many round
// trips it has made to its server so far (nil for memory).
type countedStore struct {
	paymux.Store
	roundTrips func() int64
	// counts returns the SQL counter's breakdown (nil elsewhere).
	counts func() sqlstore.Counts
}

// newCountedStore builds a fresh, isolated store of the named backend,
// counting its round trips with redisstore.CountingHook or sqlstore.Counter.
func newCountedStore(tb testing.TB, name string) countedStore {
	tb.Helper()
	switch name {
	case "memory":
		return countedStore{Store: memory.New(memory.Options{})}
	case "redis":
		c := redisClient(tb)
		hook := &redisstore.CountingHook{}
		c.AddHook(hook)
		return countedStore{Store: newRedisStore(tb, c), roundTrips: hook.RoundTrips}
	case "postgres", "mysql", "sqlite":
		d := sqlstore.Dialect(name)
		var n sqlstore.Counter
		db := sqlDB(tb, d, &n)
		st, _ := sqlStore(tb, db, d)
		return countedStore{Store: st, roundTrips: func() int64 { return n.Counts().RoundTrips() }, counts: n.Counts}
	}
	tb.Fatalf("unknown store %q", name)
	return countedStore{}
}
