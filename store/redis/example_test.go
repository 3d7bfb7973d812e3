package redisstore_test

import (
	"context"
	"errors"
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

// A shop's own script that writes, sent at most once: if the reply is
// lost, the caller learns that the outcome is unknown instead of reading
// the answer of a second run ("already used").
func ExampleAtMostOnce() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	useCoupon := redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 1 end
return 0`)

	ctx := context.Background()
	first, err := useCoupon.Run(ctx, redisstore.AtMostOnce(client), []string{"shop:coupon:DROP10"}, "order_1").Int()
	var unknown *redisstore.OutcomeUnknownError
	switch {
	case errors.As(err, &unknown):
		// Ran once or not at all: look before trying again.
	case err != nil:
		// Redis refused it, or it never left this process.
	default:
		_ = first // 1: this order took the coupon
	}
}
