package paymux

import (
	"context"
	"time"
)

// Store is everything the orchestrator and the webhook pipeline keep. Each
// backend (store/memory, store/redis, store/sql) implements all of it and
// passes store/storetest.
//
// Stores return ErrNotFound, ErrVersionConflict and ErrClaimLost for the
// conditions they name; any other error means the store could not answer,
// and the orchestrator fails closed with ErrStoreUnavailable.
type Store interface {
	IdempotencyStore
	PaymentStore
	EventStore
	OutboxStore
}

// ClaimState is the state of an idempotency record.
type ClaimState string

const (
	// ClaimInFlight: a request holds the key; its lease says until when.
	ClaimInFlight ClaimState = "in_flight"
	// ClaimCompleted: the request finished; replays return its payment.
	ClaimCompleted ClaimState = "completed"
)

// IdempotencyRecord is what a store keeps per idempotency key.
type IdempotencyRecord struct {
	Key         string
	Fingerprint string
	// Token identifies the holder of an in-flight claim; only it may
	// checkpoint, complete or release.
	Token     string
	State     ClaimState
	PaymentID string
	// Payment is the snapshot saved with the claim: while in flight, the
	// payment with its attempts and their provider keys (saved before each
	// provider call); once completed, the payment as it was completed.
	Payment *Payment
	// TakenOver is set on the record returned by a claim that took over an
	// in-flight record whose lease had expired: its holder crashed or hung,
	// and Payment says which provider calls it may have made.
	TakenOver  bool
	LeaseUntil time.Time
	ExpiresAt  time.Time
	CreatedAt  time.Time
}

// ClaimParams are the inputs of ClaimIdempotency.
type ClaimParams struct {
	Key         string
	Fingerprint string
	Token       string
	// Lease is how long the claim stays in flight before another request
	// with the same key and fingerprint may take it over.
	Lease time.Duration
	// TTL is how long the record lives once created (default 24 h).
	TTL time.Duration
	// Payment is the snapshot to store with a fresh claim.
	Payment *Payment
}

// IdempotencyStore implements claim -> execute -> complete.
type IdempotencyStore interface {
	// ClaimIdempotency atomically claims p.Key.
	//   - No record (or an expired one): store a new in-flight record with
	//     p's fields; claimed = true.
	//   - An in-flight record whose lease has expired and whose fingerprint
	//     equals p.Fingerprint: take it over (new Token and lease, keep its
	//     Payment snapshot, TakenOver = true); claimed = true.
	//   - Otherwise: return the existing record unchanged; claimed = false.
	//
	// A claim for a new payment (p.Payment set, with Version 0) whose
	// payment already exists is refused even when no live record is left
	// (the key's record expired after the payment was made): the store
	// returns a completed record with that PaymentID and p.Fingerprint, and
	// claimed = false, so a retry after the TTL replays instead of charging
	// again. Stores check this inside the claim's own round trip.
	ClaimIdempotency(ctx context.Context, p ClaimParams) (rec *IdempotencyRecord, claimed bool, err error)
	// CheckpointIdempotency replaces the snapshot of the in-flight record held
	// by token and renews its lease. ErrClaimLost if token no longer holds it.
	CheckpointIdempotency(ctx context.Context, key, token string, p *Payment, lease time.Duration) error
	// CompleteIdempotency atomically saves p to the payment store with
	// compare-and-set on p.Version (0 means the payment must not exist yet),
	// increments p.Version, and marks the record completed with p's id and
	// snapshot. ErrClaimLost if token no longer holds the record,
	// ErrVersionConflict if the payment moved; in both cases nothing changes.
	CompleteIdempotency(ctx context.Context, key, token string, p *Payment) error
	// ReleaseIdempotency deletes the in-flight record held by token, so the
	// key can be used again. Only for requests that made no provider call.
	ReleaseIdempotency(ctx context.Context, key, token string) error
	// GetIdempotency returns the record for key, or ErrNotFound.
	GetIdempotency(ctx context.Context, key string) (*IdempotencyRecord, error)
	// ListStaleClaims returns up to limit in-flight records whose lease ended
	// before the given time, for crash recovery.
	ListStaleClaims(ctx context.Context, leaseEndedBefore time.Time, limit int) ([]*IdempotencyRecord, error)
}

// PaymentStore keeps payments with compare-and-set on Version.
type PaymentStore interface {
	// GetPayment returns the payment with id, or ErrNotFound.
	GetPayment(ctx context.Context, id string) (*Payment, error)
	// GetPaymentByProviderRef finds a payment by its provider's reference,
	// or ErrNotFound.
	GetPaymentByProviderRef(ctx context.Context, provider, ref string) (*Payment, error)
	// SavePayment stores p if the stored version equals expectedVersion (0:
	// p must not exist yet) and sets p.Version = expectedVersion+1; otherwise
	// ErrVersionConflict and nothing changes.
	SavePayment(ctx context.Context, p *Payment, expectedVersion int64) error
	// ListUnsettledPayments returns up to limit payments in status pending,
	// unknown or requires_action that were last updated before the given
	// time, oldest first, for the reconciler.
	ListUnsettledPayments(ctx context.Context, updatedBefore time.Time, limit int) ([]*Payment, error)
}

// EventClaim is the result of claiming a webhook event for processing.
type EventClaim int

const (
	// EventClaimed: this caller processes the event.
	EventClaimed EventClaim = iota
	// EventDuplicate: the event was processed already; acknowledge it.
	EventDuplicate
	// EventBusy: another caller is processing it right now; do not
	// acknowledge, so the provider redelivers if that caller fails.
	EventBusy
)

// EventStore de-duplicates webhook events by (provider, event id).
type EventStore interface {
	// ClaimEvent claims an event for lease. An in-flight claim whose lease
	// ended can be claimed again.
	ClaimEvent(ctx context.Context, provider, eventID string, lease time.Duration) (EventClaim, error)
	// CompleteEvent marks the event processed; it is remembered for ttl
	// (default 30 days).
	CompleteEvent(ctx context.Context, provider, eventID string, ttl time.Duration) error
	// ReleaseEvent forgets an in-flight claim so a redelivery is processed.
	ReleaseEvent(ctx context.Context, provider, eventID string) error
}

// DeliveryState is the state of an outbox entry.
type DeliveryState string

const (
	DeliveryPending   DeliveryState = "pending"
	DeliveryDelivered DeliveryState = "delivered"
	DeliveryDead      DeliveryState = "dead"
)

// Delivery is one event waiting to be handed to the shop's subscriber.
type Delivery struct {
	// ID is unique per (provider, event id): enqueueing twice is a no-op.
	ID            string
	Event         Event
	PaymentID     string
	State         DeliveryState
	Attempts      int
	NextAttemptAt time.Time
	LastError     string
	CreatedAt     time.Time
}

// OutboxStore holds deliveries to the subscriber, so delivery is at least
// once even across a crash.
type OutboxStore interface {
	// EnqueueDelivery inserts d as pending unless an entry with d.ID exists.
	EnqueueDelivery(ctx context.Context, d *Delivery) error
	// ClaimDueDeliveries returns up to limit pending entries whose
	// NextAttemptAt is not after now, oldest first, and moves their
	// NextAttemptAt to now+lease so that no other worker takes them until the
	// lease ends (a crashed worker's entries come back then).
	ClaimDueDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*Delivery, error)
	// CompleteDelivery marks the entry delivered.
	CompleteDelivery(ctx context.Context, id string) error
	// RetryDelivery records a failed attempt: Attempts+1, LastError, and the
	// time of the next attempt.
	RetryDelivery(ctx context.Context, id string, next time.Time, lastErr string) error
	// DeadLetterDelivery records a final failed attempt and parks the entry
	// in the dead state for an operator.
	DeadLetterDelivery(ctx context.Context, id string, lastErr string) error
	// GetDelivery returns the entry with id, or ErrNotFound.
	GetDelivery(ctx context.Context, id string) (*Delivery, error)
}

// Optional store capabilities. A store may implement any of these to save
// round trips on the webhook path; paymux finds them by type assertion and
// falls back to the methods of Store when they are missing, so a store that
// has none keeps working. A wrapper that embeds a Store hides them unless it
// forwards them too.

// EventCompleter is the optional interface of stores that can finish a
// webhook event in one round trip: enqueue its delivery and mark it
// processed together.
type EventCompleter interface {
	// CompleteEventWithDelivery inserts d as pending unless an entry with
	// d.ID exists (as EnqueueDelivery does) and marks the event processed
	// for ttl (as CompleteEvent does; zero means the store's default).
	//
	// The event must never be marked processed while d is not stored: the
	// provider would then stop redelivering an event whose delivery is
	// lost. Stores make the two one atomic step, or at the very least store
	// d first; when an error is returned the caller assumes neither
	// happened and releases its claim on the event.
	CompleteEventWithDelivery(ctx context.Context, provider, eventID string, ttl time.Duration, d *Delivery) error
}

// UnchangedEventCompleter is the optional interface of stores that can
// finish, in one step (one round trip, or one transaction where a
// statement cannot do it) and without a claim, a webhook event known to
// change nothing: one about a payment this process just recorded, at the
// version it recorded (Config.RecentPayments).
type UnchangedEventCompleter interface {
	// CompletesUnchangedEvents reports whether CompleteUnchangedEvent can
	// answer true with this store at all (a type that serves several
	// databases may do it for some only). When it cannot, the
	// orchestrator keeps no copies of payments for it.
	CompletesUnchangedEvents() bool
	// CompleteUnchangedEvent does what CompleteEventWithDelivery does,
	// inserting d and marking the event processed for ttl in one atomic
	// step, but only if the store holds no record of the event at all
	// (no claim, in flight or expired, and no processed mark) and the
	// payment paymentID is stored at version. It reports whether it did.
	// When it reports false it wrote nothing; when it returns an error
	// it may or may not have written both. Either way the caller goes the
	// usual way (claim, apply, complete), which finds a processed event a
	// duplicate.
	CompleteUnchangedEvent(ctx context.Context, provider, eventID string, ttl time.Duration, d *Delivery, paymentID string, version int64) (bool, error)
}

// EventPaymentClaimer is the optional interface of stores that claim a
// webhook event and read the payment it is about in one round trip.
type EventPaymentClaimer interface {
	// ClaimEventForPayment claims the event exactly as ClaimEvent does.
	// When the claim is EventClaimed it may also return the payment of
	// provider with providerRef, as GetPaymentByProviderRef would, read in
	// the same step as the claim. A nil payment means "not read here" (there is
	// none, or the store took its slower path): the caller looks it up as
	// usual. The payment is the caller's to keep and change.
	ClaimEventForPayment(ctx context.Context, provider, eventID string, lease time.Duration, providerRef string) (EventClaim, *Payment, error)
}

// DeliveryCompleter is the optional interface of stores that mark many
// outbox entries delivered in one round trip.
type DeliveryCompleter interface {
	// CompleteDeliveries marks every entry in ids delivered, as
	// CompleteDelivery does for one. Ids without an entry are skipped (an
	// entry may have been purged since it was claimed); a nil error means
	// every entry that exists is marked.
	CompleteDeliveries(ctx context.Context, ids []string) error
}

// PaymentsGetter is the optional interface of stores that read many
// payments in one round trip.
type PaymentsGetter interface {
	// GetPayments returns the payments with the given ids, keyed by id.
	// Ids without a payment are missing from the map; that is not an error.
	// Every returned payment is the caller's to keep and change.
	GetPayments(ctx context.Context, ids []string) (map[string]*Payment, error)
}

// Store defaults.
const (
	DefaultIdempotencyTTL = 24 * time.Hour
	DefaultEventTTL       = 30 * 24 * time.Hour
)
