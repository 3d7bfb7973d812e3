package memory_test

import (
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/store/memory"
	"github.com/paymux/paymux/store/storetest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) paymux.Store { return memory.New(memory.Options{}) },
	})
}

// The suite again with a sweep on every write, so sweeping runs under the
// same load and must not drop live records.
func TestConformanceEagerSweep(t *testing.T) {
	t.Parallel()
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) paymux.Store { return memory.New(memory.Options{SweepInterval: time.Nanosecond}) },
	})
}
