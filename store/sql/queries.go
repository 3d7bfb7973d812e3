package sqlstore

import "github.com/paymux/paymux"

// queries holds every statement the store runs, compiled once for its
// dialect and table prefix. All values travel as parameters; only the
// validated table prefix is spliced into the text.
type queries struct {
	claimInsert, claimRetake, claimSelect query
	paymentExists                         query
	checkpoint, release, getIdem          query
	heldBy, listStale                     query
	completeIdem, completePG              query

	paymentInsert, paymentUpdate    query
	getPayment, getByRef, unsettled query

	eventInsert, eventRetake, eventSelect query
	eventComplete, eventRelease           query
	// eventCompletePG enqueues a delivery and completes its event in one
	// statement.
	eventCompletePG query
	// eventClaimForPaymentPG claims an event and reads its payment in
	// one statement.
	eventClaimForPaymentPG query
	// eventCompleteUnchangedPG marks a new event processed and enqueues
	// its delivery in one statement, if its payment is at a version.
	eventCompleteUnchangedPG query
	// eventDoneIfPaymentAt marks a new event processed if its payment is
	// at a version, and paymentAtForShare locks that payment's row for
	// it on MySQL: the first statement of the transaction that does on
	// SQLite and MySQL what eventCompleteUnchangedPG does.
	eventDoneIfPaymentAt, paymentAtForShare query

	deliveryInsert, deliveryGet, deliveryExists query
	deliveryDue, deliveryClaimPG                query
	// deliveryLease, deliveriesComplete and paymentsIn are templates
	// completed with an IN list at run time.
	deliveryLease, deliveriesComplete, paymentsIn   string
	deliveryComplete, deliveryRetry, deliveryDead   query
	purgeIdem, purgeEvents, purgeDeliveries         query
	migrationsTable, migrationsList, migrationsDone query
}

const idemCols = `idem_key, fingerprint, token, state, payment_id, payment, taken_over, lease_until, expires_at, created_at`

const deliveryCols = `id, payment_id, state, attempts, next_attempt_at, last_error, created_at, event`

// States as stored.
const (
	stateInFlight  = "in_flight"
	stateCompleted = "completed"
	stateDone      = "done"
)

func buildQueries(d Dialect, prefix string) *queries {
	c := func(tmpl string) query { return compile(d, prefix, tmpl) }
	// insertIfAbsent is the dialect's insert that does nothing when the
	// primary key exists. MySQL's INSERT IGNORE also downgrades some errors
	// to warnings (truncation above all), which is why identifier lengths
	// are checked before every write.
	insertIfAbsent := func(table, cols, values, conflict string) query {
		if d == MySQL {
			return c(`INSERT IGNORE INTO {p}` + table + ` (` + cols + `) VALUES (` + values + `)`)
		}
		return c(`INSERT INTO {p}` + table + ` (` + cols + `) VALUES (` + values + `) ON CONFLICT (` + conflict + `) DO NOTHING`)
	}
	q := &queries{}

	// Idempotency.
	//
	// Claim parameters: $1 key, $2 fingerprint, $3 token, $4 payment id,
	// $5 payment JSON, $6 lease end, $7 expiry, $8 now.
	// The insert is also refused when $9 names a payment that exists: a new
	// payment's key whose record expired after the payment was made must
	// replay, not charge again. $9 is "" for claims of existing payments.
	claimValues := `$1, $2, $3, '` + stateInFlight + `', $4, $5, 0, $6, $7, $8`
	if d == Postgres {
		claimValues = `$1::text, $2::text, $3::text, '` + stateInFlight + `', $4::text, $5::text, 0, $6::bigint, $7::bigint, $8::bigint`
	}
	claimGuard := ` WHERE NOT EXISTS (SELECT 1 FROM {p}payments WHERE id = $9)`
	switch d {
	case MySQL:
		q.claimInsert = c(`INSERT IGNORE INTO {p}idempotency (` + idemCols + `) SELECT ` + claimValues + ` FROM DUAL` + claimGuard)
	default:
		q.claimInsert = c(`INSERT INTO {p}idempotency (` + idemCols + `) SELECT ` + claimValues + claimGuard + ` ON CONFLICT (idem_key) DO NOTHING`)
	}
	q.paymentExists = c(`SELECT 1 FROM {p}payments WHERE id = $1`)
	// claimRetake takes over a record whose lease ended (same fingerprint,
	// in flight: keep its snapshot) or replaces one that expired (a fresh
	// record). expires_at is assigned last because MySQL evaluates SET
	// left to right with the new values, and every CASE reads it.
	q.claimRetake = c(`UPDATE {p}idempotency SET
		token = $3,
		lease_until = $6,
		state = '` + stateInFlight + `',
		taken_over = CASE WHEN expires_at <= $8 THEN 0 ELSE 1 END,
		fingerprint = CASE WHEN expires_at <= $8 THEN $2 ELSE fingerprint END,
		payment_id = CASE WHEN expires_at <= $8 THEN $4 ELSE payment_id END,
		payment = CASE WHEN expires_at <= $8 THEN $5 ELSE payment END,
		created_at = CASE WHEN expires_at <= $8 THEN $8 ELSE created_at END,
		expires_at = CASE WHEN expires_at <= $8 THEN $7 ELSE expires_at END
		WHERE idem_key = $1 AND (expires_at <= $8
			OR (state = '` + stateInFlight + `' AND lease_until <= $8 AND fingerprint = $2))`)
	q.claimSelect = c(`SELECT ` + idemCols + ` FROM {p}idempotency WHERE idem_key = $1`)
	q.getIdem = c(`SELECT ` + idemCols + ` FROM {p}idempotency WHERE idem_key = $1 AND expires_at > $2`)
	q.heldBy = c(`SELECT 1 FROM {p}idempotency WHERE idem_key = $1 AND token = $2 AND state = '` + stateInFlight + `' AND expires_at > $3`)
	q.checkpoint = c(`UPDATE {p}idempotency SET payment = $3, payment_id = COALESCE(NULLIF($4, ''), payment_id), lease_until = $5
		WHERE idem_key = $1 AND token = $2 AND state = '` + stateInFlight + `' AND expires_at > $6`)
	q.release = c(`DELETE FROM {p}idempotency WHERE idem_key = $1 AND token = $2 AND state = '` + stateInFlight + `' AND expires_at > $3`)
	q.listStale = c(`SELECT ` + idemCols + ` FROM {p}idempotency
		WHERE state = '` + stateInFlight + `' AND lease_until < $1 AND expires_at > $2
		ORDER BY lease_until, idem_key LIMIT $3`)
	// completeIdem is the first statement of the MySQL and SQLite complete
	// transaction: it checks the claim and locks its row.
	q.completeIdem = c(`UPDATE {p}idempotency SET state = '` + stateCompleted + `', payment_id = $3, payment = $4
		WHERE idem_key = $1 AND token = $2 AND state = '` + stateInFlight + `' AND expires_at > $5`)
	// completePG does the whole completion in one statement, so one round
	// trip: held locks the claim (FOR UPDATE re-reads the newest row, so a
	// takeover that committed first empties it); ins or upd saves the
	// payment with compare-and-set only if held; done completes the claim
	// only if the payment was saved. Everything runs in the statement's
	// implicit transaction, so either both change or neither does.
	//
	// $1 key, $2 token, $3 now, $4 id, $5 provider, $6 ref, $7 status,
	// $8 updated, $9 new version, $10 JSON, $11 expected version.
	if d == Postgres {
		q.completePG = c(`WITH held AS (
			SELECT idem_key FROM {p}idempotency
			WHERE idem_key = $1::text AND token = $2::text AND state = '` + stateInFlight + `' AND expires_at > $3::bigint
			FOR UPDATE
		), ins AS (
			INSERT INTO {p}payments (id, provider, provider_ref, status, updated_at, version, data)
			SELECT $4::text, $5::text, $6::text, $7::text, $8::bigint, $9::bigint, $10::text FROM held WHERE $11::bigint = 0
			ON CONFLICT (id) DO NOTHING
			RETURNING id
		), upd AS (
			UPDATE {p}payments SET provider = $5::text, provider_ref = $6::text, status = $7::text,
				updated_at = $8::bigint, version = $9::bigint, data = $10::text
			WHERE id = $4::text AND version = $11::bigint AND $11::bigint > 0 AND EXISTS (SELECT 1 FROM held)
			RETURNING id
		), done AS (
			UPDATE {p}idempotency SET state = '` + stateCompleted + `', payment_id = $4::text, payment = $10::text
			WHERE idem_key = $1::text AND token = $2::text
				AND EXISTS (SELECT 1 FROM held) AND EXISTS (SELECT 1 FROM ins UNION ALL SELECT 1 FROM upd)
			RETURNING idem_key
		)
		SELECT EXISTS (SELECT 1 FROM held), EXISTS (SELECT 1 FROM done)`)
	}

	// Payments. $1 id, $2 provider, $3 ref, $4 status, $5 updated,
	// $6 new version, $7 JSON, $8 expected version.
	q.paymentInsert = insertIfAbsent("payments", `id, provider, provider_ref, status, updated_at, version, data`,
		`$1, $2, $3, $4, $5, $6, $7`, "id")
	q.paymentUpdate = c(`UPDATE {p}payments SET provider = $2, provider_ref = $3, status = $4, updated_at = $5, version = $6, data = $7
		WHERE id = $1 AND version = $8`)
	q.getPayment = c(`SELECT version, data FROM {p}payments WHERE id = $1`)
	// $1 ... $n: the ids.
	q.paymentsIn = `SELECT version, data FROM {p}payments WHERE id IN `
	q.getByRef = c(`SELECT version, data FROM {p}payments WHERE provider = $1 AND provider_ref = $2
		ORDER BY updated_at DESC, id LIMIT 1`)
	q.unsettled = c(`SELECT version, data FROM {p}payments
		WHERE status IN ('` + string(paymux.StatusPending) + `', '` + string(paymux.StatusUnknown) + `', '` + string(paymux.StatusRequiresAction) + `')
		AND updated_at < $1
		ORDER BY updated_at, id LIMIT $2`)

	// Events. $1 provider, $2 event id, $3 until, $4 now.
	q.eventInsert = insertIfAbsent("events", `provider, event_id, state, expires_at`,
		`$1, $2, '`+stateInFlight+`', $3`, "provider, event_id")
	q.eventRetake = c(`UPDATE {p}events SET state = '` + stateInFlight + `', expires_at = $3
		WHERE provider = $1 AND event_id = $2 AND expires_at <= $4`)
	q.eventSelect = c(`SELECT state, expires_at FROM {p}events WHERE provider = $1 AND event_id = $2`)
	if d == MySQL {
		// VALUES() is deprecated in MySQL 8.0.20 but is the only spelling
		// MariaDB and MySQL share.
		q.eventComplete = c(`INSERT INTO {p}events (provider, event_id, state, expires_at) VALUES ($1, $2, '` + stateDone + `', $3)
			ON DUPLICATE KEY UPDATE state = VALUES(state), expires_at = VALUES(expires_at)`)
	} else {
		q.eventComplete = c(`INSERT INTO {p}events (provider, event_id, state, expires_at) VALUES ($1, $2, '` + stateDone + `', $3)
			ON CONFLICT (provider, event_id) DO UPDATE SET state = excluded.state, expires_at = excluded.expires_at`)
	}
	q.eventRelease = c(`DELETE FROM {p}events WHERE provider = $1 AND event_id = $2 AND state = '` + stateInFlight + `'`)
	// $1 provider, $2 event id, $3 expiry, $4 payment id, $5 version.
	// On SQLite the transaction holds the write lock from its start
	// (BEGIN IMMEDIATE), so no writer, in this process or another, moves
	// the payment between this check and the commit. MySQL's writers
	// could, so its transaction first takes a shared lock on the payment's
	// row (paymentAtForShare, $1 id, $2 version) and then inserts without a
	// check of its own.
	// PostgreSQL does it all in eventCompleteUnchangedPG.
	switch d {
	case MySQL:
		q.paymentAtForShare = c(`SELECT 1 FROM {p}payments WHERE id = $1 AND version = $2 LOCK IN SHARE MODE`)
		q.eventDoneIfPaymentAt = c(`INSERT IGNORE INTO {p}events (provider, event_id, state, expires_at) VALUES ($1, $2, '` + stateDone + `', $3)`)
	case SQLite:
		q.eventDoneIfPaymentAt = c(`INSERT INTO {p}events (provider, event_id, state, expires_at)
			SELECT $1, $2, '` + stateDone + `', $3
			WHERE EXISTS (SELECT 1 FROM {p}payments WHERE id = $4 AND version = $5)
			ON CONFLICT (provider, event_id) DO NOTHING`)
	}

	// Outbox.
	q.deliveryInsert = insertIfAbsent("deliveries", deliveryCols+`, updated_at`,
		`$1, $2, '`+string(deliveryPending)+`', $3, $4, $5, $6, $7, $8`, "id")
	q.deliveryGet = c(`SELECT ` + deliveryCols + ` FROM {p}deliveries WHERE id = $1`)
	q.deliveryExists = c(`SELECT 1 FROM {p}deliveries WHERE id = $1`)
	due := `SELECT ` + deliveryCols + ` FROM {p}deliveries
		WHERE state = '` + string(deliveryPending) + `' AND next_attempt_at <= $1
		ORDER BY next_attempt_at, created_at, id LIMIT $2`
	if d == MySQL {
		// Concurrent workers skip each other's rows instead of queueing.
		due += ` FOR UPDATE SKIP LOCKED`
	}
	q.deliveryDue = c(due)
	// $1 lease end, $2 now, then one placeholder per id.
	q.deliveryLease = `UPDATE {p}deliveries SET next_attempt_at = $1, updated_at = $2 WHERE id IN `
	if d == Postgres {
		// One statement: lock the due rows other workers have not locked,
		// move their next attempt, return them oldest first.
		q.deliveryClaimPG = c(`WITH due AS (
			SELECT id, next_attempt_at AS old_next FROM {p}deliveries
			WHERE state = '` + string(deliveryPending) + `' AND next_attempt_at <= $1::bigint
			ORDER BY next_attempt_at, created_at, id LIMIT $2::bigint
			FOR UPDATE SKIP LOCKED
		), leased AS (
			UPDATE {p}deliveries d SET next_attempt_at = $3::bigint, updated_at = $4::bigint
			FROM due WHERE d.id = due.id
			RETURNING d.id, d.payment_id, d.state, d.attempts, d.next_attempt_at, d.last_error, d.created_at, d.event, due.old_next
		)
		SELECT id, payment_id, state, attempts, next_attempt_at, last_error, created_at, event FROM leased
		ORDER BY old_next, created_at, id`)
	}
	if d == Postgres {
		// The delivery insert ($1 ... $8 as deliveryInsert) and the event
		// completion ($9 provider, $10 event id, $11 expiry) in one
		// statement, so one round trip and one implicit transaction: the
		// event is never processed without its delivery. A data-modifying
		// CTE runs to completion whether or not anything reads it.
		// The event insert as eventInsert ($1 provider, $2 event id, $3
		// until), then the payment as getByRef ($1 provider, $4 reference).
		q.eventClaimForPaymentPG = c(`WITH claimed AS (
			INSERT INTO {p}events (provider, event_id, state, expires_at) VALUES ($1::text, $2::text, '` + stateInFlight + `', $3::bigint)
			ON CONFLICT (provider, event_id) DO NOTHING
			RETURNING 1
		)
		SELECT (SELECT count(*) FROM claimed), p.version, p.data
		FROM (SELECT 1) AS one LEFT JOIN LATERAL (
			SELECT version, data FROM {p}payments WHERE provider = $1::text AND provider_ref = $4::text
			ORDER BY updated_at DESC, id LIMIT 1
		) AS p ON true`)
		// A new delivery's values on PostgreSQL, $1 ... $8 as deliveryInsert.
		const pgDeliveryValues = `$1::text, $2::text, '` + string(deliveryPending) + `', $3::integer, $4::bigint, $5::text, $6::bigint, $7::text, $8::bigint`
		// The delivery insert ($1 ... $8) and the event ($9 provider, $10
		// event id, $11 expiry) as in eventCompletePG, but only for an
		// event with no row yet and a payment ($12 id) at version $13.
		// It returns 1 if it wrote both, 0 if neither.
		q.eventCompleteUnchangedPG = c(`WITH done AS (
			INSERT INTO {p}events (provider, event_id, state, expires_at)
			SELECT $9::text, $10::text, '` + stateDone + `', $11::bigint
			WHERE EXISTS (SELECT 1 FROM {p}payments WHERE id = $12::text AND version = $13::bigint)
			ON CONFLICT (provider, event_id) DO NOTHING
			RETURNING 1
		), enqueued AS (
			INSERT INTO {p}deliveries (` + deliveryCols + `, updated_at)
			SELECT ` + pgDeliveryValues + `
			WHERE EXISTS (SELECT 1 FROM done)
			ON CONFLICT (id) DO NOTHING
		)
		SELECT count(*) FROM done`)
		q.eventCompletePG = c(`WITH enqueued AS (
			INSERT INTO {p}deliveries (` + deliveryCols + `, updated_at)
			VALUES (` + pgDeliveryValues + `)
			ON CONFLICT (id) DO NOTHING
		)
		INSERT INTO {p}events (provider, event_id, state, expires_at) VALUES ($9::text, $10::text, '` + stateDone + `', $11::bigint)
		ON CONFLICT (provider, event_id) DO UPDATE SET state = excluded.state, expires_at = excluded.expires_at`)
	}
	// $1 now, then one placeholder per id.
	q.deliveriesComplete = `UPDATE {p}deliveries SET state = '` + string(deliveryDelivered) + `', updated_at = $1 WHERE id IN `
	q.deliveryComplete = c(`UPDATE {p}deliveries SET state = '` + string(deliveryDelivered) + `', updated_at = $2 WHERE id = $1`)
	q.deliveryRetry = c(`UPDATE {p}deliveries SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3, updated_at = $4 WHERE id = $1`)
	q.deliveryDead = c(`UPDATE {p}deliveries SET attempts = attempts + 1, last_error = $2, state = '` + string(deliveryDeadState) + `', updated_at = $3 WHERE id = $1`)

	// Purge.
	q.purgeIdem = c(`DELETE FROM {p}idempotency WHERE expires_at <= $1`)
	q.purgeEvents = c(`DELETE FROM {p}events WHERE expires_at <= $1`)
	q.purgeDeliveries = c(`DELETE FROM {p}deliveries WHERE state = '` + string(deliveryDelivered) + `' AND updated_at <= $1`)

	// Migrations.
	switch d {
	case MySQL:
		q.migrationsTable = c(`CREATE TABLE IF NOT EXISTS {p}migrations (
			version INT NOT NULL PRIMARY KEY, name VARCHAR(255) NOT NULL, applied_at BIGINT NOT NULL
		) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`)
	default:
		q.migrationsTable = c(`CREATE TABLE IF NOT EXISTS {p}migrations (
			version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`)
	}
	q.migrationsList = c(`SELECT version FROM {p}migrations`)
	q.migrationsDone = c(`INSERT INTO {p}migrations (version, name, applied_at) VALUES ($1, $2, $3)`)
	return q
}
