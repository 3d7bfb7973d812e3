//go:build !unix

package testenv

import "testing"

// holdSentinel: without flock, the tests that share the Sentinel setup are
// not kept apart.
func holdSentinel(testing.TB) {}
