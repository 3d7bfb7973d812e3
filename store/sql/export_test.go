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
	}[name]
	if !ok {
		panic("sqlstore: no statement " + name)
	}
	return q.text, q.args(args)
}
