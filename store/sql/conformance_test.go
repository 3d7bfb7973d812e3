package sqlstore_test

import (
	"testing"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/store/sql"
	"github.com/paymux/paymux/store/storetest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, d, nil)
			storetest.Run(t, storetest.Harness{
				New: func(t *testing.T) paymux.Store { return h.store(t, sqlstore.Options{}) },
			})
		})
	}
}
