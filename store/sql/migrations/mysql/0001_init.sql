-- paymux schema, version 1. {p} is the table prefix (default paymux_).
-- Times are BIGINT Unix nanoseconds: exact, portable across the three
-- dialects, and free of session time zones.
--
-- Identifiers are VARBINARY so that comparisons are exact byte comparisons:
-- the default collations would make "Order-1" equal "order-1 " and merge two
-- idempotency keys. Indexes are declared inside CREATE TABLE because MySQL
-- (unlike MariaDB) has no CREATE INDEX IF NOT EXISTS, and every statement
-- here must be safe to run again after a crash (MySQL DDL is not
-- transactional).

CREATE TABLE IF NOT EXISTS {p}idempotency (
	idem_key    VARBINARY(1024) NOT NULL,
	fingerprint VARBINARY(255) NOT NULL,
	token       VARBINARY(255) NOT NULL,
	state       VARBINARY(16) NOT NULL,
	payment_id  VARBINARY(255) NOT NULL DEFAULT '',
	payment     LONGTEXT NULL,
	taken_over  INT NOT NULL DEFAULT 0,
	lease_until BIGINT NOT NULL,
	expires_at  BIGINT NOT NULL,
	created_at  BIGINT NOT NULL,
	PRIMARY KEY (idem_key),
	INDEX {p}idempotency_lease (state, lease_until),
	INDEX {p}idempotency_expiry (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS {p}payments (
	id           VARBINARY(255) NOT NULL,
	provider     VARBINARY(128) NOT NULL DEFAULT '',
	provider_ref VARBINARY(512) NULL,
	status       VARBINARY(32) NOT NULL,
	updated_at   BIGINT NOT NULL,
	version      BIGINT NOT NULL,
	data         LONGTEXT NOT NULL,
	PRIMARY KEY (id),
	INDEX {p}payments_ref (provider, provider_ref),
	INDEX {p}payments_status (status, updated_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS {p}events (
	provider   VARBINARY(128) NOT NULL,
	event_id   VARBINARY(512) NOT NULL,
	state      VARBINARY(16) NOT NULL,
	expires_at BIGINT NOT NULL,
	PRIMARY KEY (provider, event_id),
	INDEX {p}events_expiry (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS {p}deliveries (
	id              VARBINARY(768) NOT NULL,
	payment_id      VARBINARY(255) NOT NULL DEFAULT '',
	state           VARBINARY(16) NOT NULL,
	attempts        INT NOT NULL DEFAULT 0,
	next_attempt_at BIGINT NOT NULL,
	last_error      MEDIUMTEXT NOT NULL,
	created_at      BIGINT NOT NULL,
	updated_at      BIGINT NOT NULL,
	event           LONGTEXT NOT NULL,
	PRIMARY KEY (id),
	INDEX {p}deliveries_due (state, next_attempt_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
