package memory_test

import (
	"testing"

	"github.com/paymux/paymux/store/memory"
	"github.com/paymux/paymux/store/storetest"
)

func BenchmarkClaimComplete(b *testing.B) {
	storetest.BenchClaimComplete(b, memory.New(memory.Options{}))
}

func BenchmarkSavePayment(b *testing.B) {
	storetest.BenchSavePayment(b, memory.New(memory.Options{}))
}
