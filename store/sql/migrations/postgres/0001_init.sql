-- paymux schema, version 1. {p} is the table prefix (default paymux_).
-- Times are BIGINT Unix nanoseconds: exact, portable across the three
-- dialects, and free of session time zones.

CREATE TABLE IF NOT EXISTS {p}idempotency (
	idem_key    TEXT PRIMARY KEY,
	fingerprint TEXT NOT NULL,
	token       TEXT NOT NULL,
	state       TEXT NOT NULL,
	payment_id  TEXT NOT NULL DEFAULT '',
	payment     TEXT,
	taken_over  INTEGER NOT NULL DEFAULT 0,
	lease_until BIGINT NOT NULL,
	expires_at  BIGINT NOT NULL,
	created_at  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS {p}idempotency_lease ON {p}idempotency (state, lease_until);
CREATE INDEX IF NOT EXISTS {p}idempotency_expiry ON {p}idempotency (expires_at);

CREATE TABLE IF NOT EXISTS {p}payments (
	id           TEXT PRIMARY KEY,
	provider     TEXT NOT NULL DEFAULT '',
	provider_ref TEXT,
	status       TEXT NOT NULL,
	updated_at   BIGINT NOT NULL,
	version      BIGINT NOT NULL,
	data         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS {p}payments_ref ON {p}payments (provider, provider_ref);
CREATE INDEX IF NOT EXISTS {p}payments_status ON {p}payments (status, updated_at);

CREATE TABLE IF NOT EXISTS {p}events (
	provider   TEXT NOT NULL,
	event_id   TEXT NOT NULL,
	state      TEXT NOT NULL,
	expires_at BIGINT NOT NULL,
	PRIMARY KEY (provider, event_id)
);
CREATE INDEX IF NOT EXISTS {p}events_expiry ON {p}events (expires_at);

CREATE TABLE IF NOT EXISTS {p}deliveries (
	id              TEXT PRIMARY KEY,
	payment_id      TEXT NOT NULL DEFAULT '',
	state           TEXT NOT NULL,
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at BIGINT NOT NULL,
	last_error      TEXT NOT NULL DEFAULT '',
	created_at      BIGINT NOT NULL,
	updated_at      BIGINT NOT NULL,
	event           TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS {p}deliveries_due ON {p}deliveries (state, next_attempt_at);
