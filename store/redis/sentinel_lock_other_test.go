//go:build !unix

package redisstore_test

import "testing"

// holdSentinelExclusively: without flock, nothing keeps other packages'
// Sentinel tests away.
func holdSentinelExclusively(*testing.T) {}
