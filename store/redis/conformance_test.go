package redisstore_test

import (
	"testing"

	"github.com/paymux/paymux"
	redisstore "github.com/paymux/paymux/store/redis"
	"github.com/paymux/paymux/store/storetest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	c := client(t)
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) paymux.Store {
			return redisstore.New(c, redisstore.Options{Prefix: prefix(t, c)})
		},
	})
}
