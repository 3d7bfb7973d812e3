package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/paymux/paymux"
)

// paymentRow is a payment as its row: the indexed columns and the JSON of
// the whole payment at its new version.
type paymentRow struct {
	id, provider, status string
	ref                  any // nil (NULL) when there is no reference yet
	updated, version     int64
	data                 string
}

func checkPayment(p *paymux.Payment) error {
	if p.ID == "" {
		return errors.New("sqlstore: payment without an id")
	}
	for _, c := range []struct {
		what, v string
		max     int
	}{
		{"payment id", p.ID, maxIDLen},
		{"provider", p.Provider, maxProviderLen},
		{"provider reference", p.ProviderRef, maxRefLen},
		{"status", string(p.Status), maxStatusLen},
	} {
		if err := checkLen(c.what, c.v, c.max); err != nil {
			return err
		}
	}
	return nil
}

// paymentRow encodes p as it will be stored after a save that expects
// version expected.
func (s *Store) paymentRow(p *paymux.Payment, expected int64) (paymentRow, error) {
	if err := checkPayment(p); err != nil {
		return paymentRow{}, err
	}
	c := *p // shallow: only Version changes, and only for encoding
	c.Version = expected + 1
	b, err := json.Marshal(&c)
	if err != nil {
		return paymentRow{}, fmt.Errorf("sqlstore: encode payment: %w", err)
	}
	return paymentRow{
		id:       p.ID,
		provider: p.Provider,
		ref:      nullString(p.ProviderRef),
		status:   string(p.Status),
		updated:  nanos(p.UpdatedAt),
		version:  c.Version,
		data:     string(b),
	}, nil
}

// writePayment inserts (expected 0) or updates with compare-and-set;
// ErrVersionConflict if the stored version is not expected.
func (s *Store) writePayment(ctx context.Context, e execer, row paymentRow, expected int64) error {
	var res sql.Result
	var err error
	if expected == 0 {
		q := s.q.paymentInsert
		res, err = e.ExecContext(ctx, q.text, q.args([]any{row.id, row.provider, row.ref, row.status, row.updated, row.version, row.data})...)
	} else {
		q := s.q.paymentUpdate
		res, err = e.ExecContext(ctx, q.text, q.args([]any{row.id, row.provider, row.ref, row.status, row.updated, row.version, row.data, expected})...)
	}
	if err != nil {
		return err
	}
	// The version always changes, so MySQL's count of changed rows is the
	// count of matched rows here.
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return paymux.ErrVersionConflict
	}
	return nil
}

// SavePayment implements paymux.PaymentStore.
func (s *Store) SavePayment(ctx context.Context, p *paymux.Payment, expectedVersion int64) error {
	ctx = s.shareCommits(ctx)
	row, err := s.paymentRow(p, expectedVersion)
	if err != nil {
		return err
	}
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	for attempt := 1; ; attempt++ {
		err = s.writePayment(ctx, s.db, row, expectedVersion)
		if err == nil || attempt == maxAttempts || !Retryable(err) {
			break
		}
	}
	if errors.Is(err, paymux.ErrVersionConflict) {
		return err
	}
	if err != nil {
		return fmt.Errorf("sqlstore: save payment %q: %w", p.ID, err)
	}
	p.Version = row.version
	return nil
}

func scanPayment(sc scanner) (*paymux.Payment, error) {
	var version int64
	var data []byte
	if err := sc.Scan(&version, &data); err != nil {
		return nil, err
	}
	return decodePayment(version, data)
}

// decodePayment is a payment row's version and data columns as a Payment.
func decodePayment(version int64, data []byte) (*paymux.Payment, error) {
	p := new(paymux.Payment)
	if err := json.Unmarshal(data, p); err != nil {
		return nil, fmt.Errorf("decode payment: %w", err)
	}
	p.Version = version // the column is the truth
	return p, nil
}

func (s *Store) selectPayment(ctx context.Context, what string, q query, a ...any) (*paymux.Payment, error) {
	p, err := scanPayment(s.db.QueryRowContext(ctx, q.text, q.args(a)...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, paymux.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: %s: %w", what, err)
	}
	return p, nil
}

// GetPayment implements paymux.PaymentStore.
func (s *Store) GetPayment(ctx context.Context, id string) (*paymux.Payment, error) {
	return s.selectPayment(ctx, "get payment", s.q.getPayment, id)
}

// GetPayments implements paymux.PaymentsGetter: one SELECT ... WHERE id IN
// (...) per maxInList ids, so one round trip for a dispatcher batch.
func (s *Store) GetPayments(ctx context.Context, ids []string) (map[string]*paymux.Payment, error) {
	out := make(map[string]*paymux.Payment, len(ids))
	for chunk := range slices.Chunk(ids, maxInList) {
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		q := s.inList(s.q.paymentsIn, 1, len(chunk))
		rows, err := s.db.QueryContext(ctx, q.text, q.args(args)...)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: get payments: %w", err)
		}
		err = func() error {
			defer rows.Close()
			for rows.Next() {
				p, err := scanPayment(rows)
				if err != nil {
					return err
				}
				out[p.ID] = p
			}
			return rows.Err()
		}()
		if err != nil {
			return nil, fmt.Errorf("sqlstore: get payments: %w", err)
		}
	}
	return out, nil
}

// GetPaymentByProviderRef implements paymux.PaymentStore. References are
// indexed but not unique (two providers may reuse one, and a provider may
// in theory too); the most recently updated payment wins.
func (s *Store) GetPaymentByProviderRef(ctx context.Context, provider, ref string) (*paymux.Payment, error) {
	if ref == "" {
		return nil, paymux.ErrNotFound
	}
	return s.selectPayment(ctx, "get payment by reference", s.q.getByRef, provider, ref)
}

// ListUnsettledPayments implements paymux.PaymentStore.
func (s *Store) ListUnsettledPayments(ctx context.Context, updatedBefore time.Time, limit int) ([]*paymux.Payment, error) {
	if limit <= 0 {
		return nil, nil
	}
	q := s.q.unsettled
	rows, err := s.db.QueryContext(ctx, q.text, q.args([]any{nanos(updatedBefore), limit})...)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list unsettled payments: %w", err)
	}
	defer rows.Close()
	var out []*paymux.Payment
	for rows.Next() {
		p, err := scanPayment(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: list unsettled payments: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: list unsettled payments: %w", err)
	}
	return out, nil
}
