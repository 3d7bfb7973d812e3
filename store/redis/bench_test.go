package redisstore_test

import (
	"testing"

	redisstore "github.com/paymux/paymux/store/redis"
	"github.com/paymux/paymux/store/storetest"
)

func benchStore(b *testing.B) (*redisstore.Store, *redisstore.CountingHook) {
	c := client(b)
	hook := &redisstore.CountingHook{}
	c.AddHook(hook)
	return redisstore.New(c, redisstore.Options{Prefix: prefix(b, c)}), hook
}

// BenchmarkClaimComplete is the store's share of one authorisation; it
// also reports round trips per operation.
func BenchmarkClaimComplete(b *testing.B) {
	st, hook := benchStore(b)
	storetest.BenchClaimComplete(b, st)
	b.ReportMetric(float64(hook.RoundTrips())/float64(b.N), "roundtrips/op")
}

func BenchmarkSavePayment(b *testing.B) {
	st, hook := benchStore(b)
	storetest.BenchSavePayment(b, st)
	b.ReportMetric(float64(hook.RoundTrips())/float64(b.N), "roundtrips/op")
}
