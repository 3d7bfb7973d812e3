package redisstore_test

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"

	redisstore "github.com/paymux/paymux/store/redis"
)

// A store for the orchestrator's Config.Store, and a shared breaker state
// store for gobreaker, on one Redis. Any redis.UniversalClient works:
// redis.NewClusterClient or redis.NewFailoverClient as well.
func Example() {
	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{"127.0.0.1:6379"}})
	defer client.Close()

	store := redisstore.New(client, redisstore.Options{
		Prefix:         "shop",
		IdempotencyTTL: 24 * time.Hour,
	})
	_ = store // paymux.Config{Store: store, ...}

	breakers := redisstore.NewBreakerStore(client, redisstore.BreakerOptions{Prefix: "shop"})
	cb, err := gobreaker.NewDistributedCircuitBreaker[int](breakers, gobreaker.Settings{Name: "stripe"})
	if err != nil {
		fmt.Println("redis unavailable:", err != nil)
		return
	}
	_ = cb
	_ = context.Background()
}
