package integration

import (
	"context"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"
)

type quietRedisLogger struct{}

func (quietRedisLogger) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	// go-redis logs every failed dial through a package-level logger; the
	// fail-closed tests fail hundreds on purpose. This binary holds tests
	// only, so silencing it here touches nobody else.
	redis.SetLogger(quietRedisLogger{})
	os.Exit(m.Run())
}
