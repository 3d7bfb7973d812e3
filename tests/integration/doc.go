// Package integration holds paymux's cross-process and failure tests against
// the real servers: two orchestrators in separate processes sharing a Redis
// or PostgreSQL store, a TCP proxy cut between the orchestrator and its store
// (fail closed), a breaker shared through Redis, and store round trips per
// authorisation. Everything is in test files; this package has no API.
//
// The servers default to Redis 127.0.0.1:6379, PostgreSQL 127.0.0.1:5432
// database test and MariaDB 127.0.0.1:3306 database test; PAYMUX_REDIS_URL,
// PAYMUX_POSTGRES_DSN and PAYMUX_MYSQL_DSN point the tests elsewhere. A test
// whose server does not answer skips, unless PAYMUX_REQUIRE_SERVICES=1.
package integration
