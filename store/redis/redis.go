// Package redisstore is a paymux.Store on Redis, through
// github.com/redis/go-redis/v9. It accepts any redis.UniversalClient: a
// single node, Sentinel or Cluster.
//
// # Keys
//
// Everything the orchestrator changes together (idempotency records, their
// leases, payments, the provider-reference index, the unsettled and stale
// sets, the outbox) lives under one hash tag, "{<prefix>}:", so each
// multi-key Lua script stays in one Cluster slot. The price is that one
// store's state sits on one Cluster shard; run several stores with different
// prefixes to spread shops. Webhook event claims touch one key each and are
// not tagged, so they spread over the cluster. A few read scripts (lookup by
// provider reference, the listings) read keys they find in an index rather
// than in KEYS; they are in the same slot, which Cluster allows.
//
// # Round trips
//
// Every operation is one round trip: a plain command or one Lua script
// (EVALSHA; the first call on a fresh server also sends EVAL). The
// orchestrator's happy path is ClaimIdempotency plus CompleteIdempotency:
// two round trips. CountingHook counts them.
//
// The webhook path has its own shortcuts: CompleteEventWithDelivery
// enqueues an event's delivery and marks the event processed in one script
// (two round trips on Cluster, see there), GetPayments reads a dispatcher
// batch's payments in one pipeline and CompleteDeliveries marks the batch
// delivered in one script.
//
// # Lost replies
//
// A script that writes is sent at most once, whatever the client's
// MaxRetries: go-redis would otherwise send it again after a connection
// failure or a reply time-out, and the second run would answer for the
// state the first one left (a fresh claim read as held by someone else, a
// retry counted twice). When the reply to a writing script is lost, the
// operation returns an *OutcomeUnknownError and the orchestrator fails
// closed; reads are still retried.
//
// # Replication
//
// Redis replicates asynchronously, so a failover can lose what the old
// master acknowledged last: on Sentinel, writes it took after its replica
// was promoted and before the client followed (about a second; 86 of 103
// claims in the failover test). A lost idempotency claim lets a retried
// request run again. Options.MinReplicas makes each write wait for that
// many replicas (WAIT, in the same round trip) and report an unconfirmed
// write as of unknown outcome, so the orchestrator fails closed instead;
// with it the failover test loses none.
//
// # Time
//
// Leases and TTLs are judged by the Redis server's clock (TIME inside the
// scripts, PX expiry), so instances with skewed clocks still agree on who
// holds a key. Times given by the caller (ClaimDueDeliveries' now,
// ListStaleClaims' bound, payment UpdatedAt) are compared at microsecond
// precision.
package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paymux/paymux"
)

// Options configures a Store. The zero value is ready to use.
type Options struct {
	// Prefix starts every key; "" means "paymux". Stores with different
	// prefixes share nothing. Braces would break the hash tag and are
	// replaced by underscores.
	Prefix string
	// IdempotencyTTL is how long an idempotency record lives when the claim
	// does not say (ClaimParams.TTL zero); zero means
	// paymux.DefaultIdempotencyTTL (24 h).
	IdempotencyTTL time.Duration
	// EventTTL is how long a processed webhook event is remembered when
	// CompleteEvent does not say, and how long a delivered outbox entry is
	// kept; zero means paymux.DefaultEventTTL (30 days).
	EventTTL time.Duration
	// MinReplicas is how many replicas must acknowledge each write before
	// the store reports it done (Redis WAIT, sent behind the write in the
	// same round trip); 0 does not wait. Redis replicates asynchronously:
	// on Sentinel, what the old master acknowledged after its replica was
	// promoted is gone when it rejoins, claims included, and a lost claim
	// lets a retried request run again. With MinReplicas such a write
	// returns an *OutcomeUnknownError wrapping ErrNotReplicated, and the
	// orchestrator fails closed. On a Cluster the write and its WAIT go to
	// the master of the write's slot. A Ring client is not supported:
	// every write fails with ErrMinReplicasUnsupported.
	MinReplicas int
	// ReplicaWait bounds the wait for MinReplicas; zero means 1 s. Keep it
	// below the client's ReadTimeout (3 s by default).
	ReplicaWait time.Duration
}

// Store is a paymux.Store on Redis. It is safe for concurrent use.
type Store struct {
	c      redis.UniversalClient
	once   onceScripter // c, sending each writing script at most once
	prefix string       // untagged prefix, "<prefix>:"
	tagged string       // "{<prefix>}:"
	opts   Options
}

var (
	_ paymux.Store                   = (*Store)(nil)
	_ paymux.EventCompleter          = (*Store)(nil)
	_ paymux.EventPaymentClaimer     = (*Store)(nil)
	_ paymux.UnchangedEventCompleter = (*Store)(nil)
	_ paymux.DeliveryCompleter       = (*Store)(nil)
	_ paymux.PaymentsGetter          = (*Store)(nil)
)

// oneServer reports whether every key lives on one server (a single node,
// or Sentinel), so that one script may touch keys of any hash tag. On
// Cluster or a Ring the scripts that would cross slots fall back to one
// call per slot.
func (s *Store) oneServer() bool {
	_, ok := s.c.(*redis.Client)
	return ok
}

// New returns a Store using c. It does not contact the server; the first
// operation does.
func New(c redis.UniversalClient, opts Options) *Store {
	if opts.Prefix == "" {
		opts.Prefix = "paymux"
	}
	opts.Prefix = strings.NewReplacer("{", "_", "}", "_").Replace(opts.Prefix)
	if opts.IdempotencyTTL <= 0 {
		opts.IdempotencyTTL = paymux.DefaultIdempotencyTTL
	}
	if opts.EventTTL <= 0 {
		opts.EventTTL = paymux.DefaultEventTTL
	}
	if opts.ReplicaWait <= 0 {
		opts.ReplicaWait = time.Second
	}
	once := onceScripter{UniversalClient: c, replicas: opts.MinReplicas, replicaWait: opts.ReplicaWait}
	return &Store{c: c, once: once, prefix: opts.Prefix + ":", tagged: "{" + opts.Prefix + "}:", opts: opts}
}

// Key layout. Variable parts that could contain ':' are length-prefixed so
// two different (provider, ref) pairs never map to one key.
func (s *Store) recKey(key string) string   { return s.tagged + "i:" + key }
func (s *Store) leaseKey(key string) string { return s.tagged + "l:" + key }
func (s *Store) staleKey() string           { return s.tagged + "stale" }
func (s *Store) payKey(id string) string    { return s.tagged + "p:" + id }
func (s *Store) unsettledKey() string       { return s.tagged + "unsettled" }
func (s *Store) refKey(provider, ref string) string {
	return s.tagged + "r:" + strconv.Itoa(len(provider)) + ":" + provider + ":" + ref
}
func (s *Store) deliveryKey(id string) string { return s.tagged + "d:" + id }
func (s *Store) dueKey() string               { return s.tagged + "due" }
func (s *Store) eventKey(provider, id string) string {
	return s.prefix + "e:" + strconv.Itoa(len(provider)) + ":" + provider + ":" + id
}

// ms converts a duration to whole milliseconds, at least 1: PX 0 is an error
// and a zero lease means "expired at once" anyway.
func ms(d time.Duration) int64 {
	return max(d.Milliseconds(), 1)
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n == 0 {
		return time.Time{}
	}
	return time.UnixMicro(n).UTC()
}

// codeErr maps a script's result code to the store's sentinels.
func codeErr(code int64) error {
	switch code {
	case codeOK:
		return nil
	case codeLost:
		return paymux.ErrClaimLost
	case codeConflict:
		return paymux.ErrVersionConflict
	case codeNotFound:
		return paymux.ErrNotFound
	}
	return fmt.Errorf("redisstore: unexpected script result %d", code)
}

// fields turns an HGETALL reply (a flat list) into a map.
func fields(v any) (map[string]string, error) {
	list, ok := v.([]any)
	if !ok || len(list)%2 != 0 {
		return nil, fmt.Errorf("redisstore: unexpected reply %T", v)
	}
	m := make(map[string]string, len(list)/2)
	for i := 0; i < len(list); i += 2 {
		k, _ := list[i].(string)
		val, _ := list[i+1].(string)
		m[k] = val
	}
	return m, nil
}

func encodePayment(p *paymux.Payment, version int64) ([]byte, error) {
	// A shallow copy is enough: Marshal only reads.
	c := *p
	c.Version = version
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("redisstore: encode payment: %w", err)
	}
	return b, nil
}

func decodePayment(s string) (*paymux.Payment, error) {
	var p paymux.Payment
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		return nil, fmt.Errorf("redisstore: decode payment: %w", err)
	}
	return &p, nil
}

func isNil(err error) bool { return errors.Is(err, redis.Nil) }

// Ping checks that the server answers.
func (s *Store) Ping(ctx context.Context) error { return s.c.Ping(ctx).Err() }
