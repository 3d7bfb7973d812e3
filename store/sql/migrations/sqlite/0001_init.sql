-- paymux schema, version 1. {p} is the table prefix (default paymux_).
-- Times are INTEGER Unix nanoseconds: exact, portable across the three
-- dialects, and free of time zones.

CREATE TABLE IF NOT EXISTS {p}idempotency (
	idem_key    TEXT NOT NULL PRIMARY KEY,
	fingerprint TEXT NOT NULL,
	token       TEXT NOT NULL,
	state       TEXT NOT NULL,
	payment_id  TEXT NOT NULL DEFAULT '',
	payment     TEXT,
	taken_over  INTEGER NOT NULL DEFAULT 0,
	lease_until INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL,
	created_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {p}idempotency_lease ON {p}idempotency (state, lease_until);
CREATE INDEX IF NOT EXISTS {p}idempotency_expiry ON {p}idempotency (expires_at);

CREATE TABLE IF NOT EXISTS {p}payments (
	id           TEXT NOT NULL PRIMARY KEY,
	provider     TEXT NOT NULL DEFAULT '',
	provider_ref TEXT,
	status       TEXT NOT NULL,
	updated_at   INTEGER NOT NULL,
	version      INTEGER NOT NULL,
	data         TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {p}payments_ref ON {p}payments (provider, provider_ref);
CREATE INDEX IF NOT EXISTS {p}payments_status ON {p}payments (status, updated_at);

CREATE TABLE IF NOT EXISTS {p}events (
	provider   TEXT NOT NULL,
	event_id   TEXT NOT NULL,
	state      TEXT NOT NULL,
	expires_at INTEGER NOT NULL,
	PRIMARY KEY (provider, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {p}events_expiry ON {p}events (expires_at);

CREATE TABLE IF NOT EXISTS {p}deliveries (
	id              TEXT NOT NULL PRIMARY KEY,
	payment_id      TEXT NOT NULL DEFAULT '',
	state           TEXT NOT NULL,
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at INTEGER NOT NULL,
	last_error      TEXT NOT NULL DEFAULT '',
	created_at      INTEGER NOT NULL,
	updated_at      INTEGER NOT NULL,
	event           TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {p}deliveries_due ON {p}deliveries (state, next_attempt_at);
