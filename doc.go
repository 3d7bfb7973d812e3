// Package paymux puts several payment providers behind one orchestrator.
//
// # Overview
//
// A shop calls Authorize, Capture, Refund and Void on an *Orchestrator. paymux
// picks a provider by country, currency, campaign and amount, calls it through a
// circuit breaker, a retry policy and idempotency keys, fails over only when
// money provably did not move, and keeps each payment's state current from
// verified, de-duplicated webhooks.
//
// # Routing
//
// Ordered rules, first match wins; see Router.
//
// # Idempotency
//
// Every request carries an idempotency key. The orchestrator claims it in the
// store before any provider call, derives one provider idempotency key per
// attempt and saves it before the call, and completes the claim with the
// payment. At most one charge is made per key.
//
// # Webhooks
//
// Provider webhooks are verified over their exact bytes, normalised into
// Events, de-duplicated, and applied with compare-and-set.
//
// # Stores
//
// State lives in a Store: store/memory, store/redis or store/sql. A store
// may also implement EventCompleter, EventPaymentClaimer,
// UnchangedEventCompleter, DeliveryCompleter and PaymentsGetter, which let
// the webhook path and the Dispatcher do in one round trip what otherwise
// takes several; paymux finds them by type assertion, so a type that wraps
// a Store should pass them through (or implement them by calling the
// wrapped store's plain methods; an UnchangedEventCompleter may also just
// answer false).
//
// # Errors
//
// Provider failures are *ProviderError with a Kind; errors.Is matches the
// Kind's sentinel (ErrDeclined, ErrOutcomeUnknown, ...), errors.As reaches the
// raw SDK error.
package paymux
