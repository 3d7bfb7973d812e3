package app

import (
	"os"
	"runtime/debug"
)

// DefaultGCPercent is the garbage collector's target the shop's commands
// start with: the heap may grow to five times what is live before a cycle,
// instead of Go's default of twice. A drop allocates fast and keeps little
// (requests, JSON, store replies), so at Go's default a quarter of the CPU
// went to collecting; at 400 a 50,000-order drop on the memory store took
// 22.3 s instead of 28.1 s, for about twice the peak memory (430 MB instead
// of 190 MB in a 20,000-order PostgreSQL drop). See BENCHMARKS.md.
const DefaultGCPercent = 400

// TuneGC sets DefaultGCPercent unless the environment sets GOGC, which
// always wins (GOMEMLIMIT, if set, still caps the heap).
func TuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(DefaultGCPercent)
	}
}
