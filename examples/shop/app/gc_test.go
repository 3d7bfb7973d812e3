package app

import (
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)

	t.Setenv("GOGC", "")
	TuneGC()
	if got := debug.SetGCPercent(100); got != DefaultGCPercent {
		t.Fatalf("GC percent %d with GOGC unset, want %d", got, DefaultGCPercent)
	}
	t.Setenv("GOGC", "50")
	TuneGC()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("TuneGC changed the GC percent to %d although GOGC is set", got)
	}
}
