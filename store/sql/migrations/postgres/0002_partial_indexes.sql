-- paymux schema, version 2: the indexes that the reconciler, the recovery
-- of abandoned claims and the outbox scan cover only the rows those scans
-- look for. Most rows leave them at once (a claim completes, a payment is
-- recorded final, a delivery is delivered), and every entry a row leaves
-- behind is one more index write per order and a larger index to scan.
-- Each scan's WHERE clause names the same literal states as its index.
--
-- The index of in-flight claims holds lease_until alone: with the key in
-- it too, PostgreSQL planning a claim's lookup by key and state on a young
-- table chose it over the primary key, and scanned every in-flight entry.
--
-- The new indexes are built while the migration holds its lock: on a large
-- table that blocks writes to it for the length of one scan of the table.
-- To avoid that, build them beforehand with CREATE INDEX CONCURRENTLY, under
-- the same names and definitions (with the table prefix in place of {p});
-- this migration then finds them and only drops the old indexes.

DROP INDEX IF EXISTS {p}idempotency_lease;
CREATE INDEX IF NOT EXISTS {p}idempotency_in_flight ON {p}idempotency (lease_until)
	WHERE state = 'in_flight';

DROP INDEX IF EXISTS {p}payments_status;
CREATE INDEX IF NOT EXISTS {p}payments_unsettled ON {p}payments (updated_at, id)
	WHERE status IN ('pending', 'unknown', 'requires_action');

DROP INDEX IF EXISTS {p}deliveries_due;
CREATE INDEX IF NOT EXISTS {p}deliveries_pending ON {p}deliveries (next_attempt_at, created_at, id)
	WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS {p}deliveries_delivered ON {p}deliveries (updated_at)
	WHERE state = 'delivered';
