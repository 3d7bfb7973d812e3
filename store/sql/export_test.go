package sqlstore

import "database/sql"

// DB is the store's database, for the tests that read query plans.
func (s *Store) DB() *sql.DB { return s.db }

// Statement returns the store's statement name (a field of queries) and
// args in the order its text wants them, for the tests that read query
// plans.
func (s *Store) Statement(name string, args ...any) (string, []any) {
	q, ok := map[string]query{
		"listStale":       s.q.listStale,
		"unsettled":       s.q.unsettled,
		"deliveryDue":     s.q.deliveryDue,
		"purgeDeliveries": s.q.purgeDeliveries,
		"heldBy":          s.q.heldBy,
		"completePG":      s.q.completePG,
		// Statements that share commits, each on its own in an order's path.
		"claimInsert":              s.q.claimInsert,
		"claimRetake":              s.q.claimRetake,
		"checkpoint":               s.q.checkpoint,
		"release":                  s.q.release,
		"paymentUpdate":            s.q.paymentUpdate,
		"eventClaimForPaymentPG":   s.q.eventClaimForPaymentPG,
		"eventCompletePG":          s.q.eventCompletePG,
		"eventCompleteUnchangedPG": s.q.eventCompleteUnchangedPG,
		"deliveryInsert":           s.q.deliveryInsert,
		"deliveryClaimPG":          s.q.deliveryClaimPG,
		"deliveryComplete":         s.q.deliveryComplete,
		"deliveryRetry":            s.q.deliveryRetry,
	}[name]
	if !ok {
		panic("sqlstore: no statement " + name)
	}
	return q.text, q.args(args)
}
