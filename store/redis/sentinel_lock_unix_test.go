//go:build unix

package redisstore_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// holdSentinelExclusively keeps every other user of the Sentinel setup,
// in this package or another (examples/internal/testenv.SentinelLockPath,
// taken shared), away until t ends: a failover moves the master under
// them.
func holdSentinelExclusively(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "paymux-redis-sentinel.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
}
