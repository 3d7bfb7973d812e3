package order

import (
	"context"
	"sort"
	"sync"
	"time"
)

// MemoryStore is an in-process Store.
type MemoryStore struct {
	mu       sync.Mutex
	products map[string]Product
	stock    map[string]int
	sold     map[string]int
	res      map[string]*reservation
	orders   map[string]*storedOrder
}

type reservation struct {
	items     []Item
	until     time.Time
	committed bool
	released  bool
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{products: map[string]Product{}, stock: map[string]int{}, sold: map[string]int{}, res: map[string]*reservation{}, orders: map[string]*storedOrder{}}
}

var _ Store = (*MemoryStore)(nil)

func (m *MemoryStore) SeedProduct(_ context.Context, p Product) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.products[p.ID]; !ok {
		m.stock[p.ID] = p.Stock
	}
	m.products[p.ID] = p
	return nil
}

func (m *MemoryStore) Products(_ context.Context) ([]Product, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Product, 0, len(m.products))
	for id, p := range m.products {
		p.Stock = m.stock[id]
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (m *MemoryStore) Product(_ context.Context, id string) (Product, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.products[id]
	if !ok {
		return Product{}, ErrNotFound
	}
	p.Stock = m.stock[id]
	return p, nil
}

func (m *MemoryStore) Reserve(_ context.Context, orderID string, items []Item, until time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reserveLocked(orderID, items, until)
}

func (m *MemoryStore) reserveLocked(orderID string, items []Item, until time.Time) error {
	if _, ok := m.res[orderID]; ok {
		return nil
	}
	for _, it := range items {
		if _, ok := m.products[it.ProductID]; !ok {
			return ErrNotFound
		}
		if m.stock[it.ProductID] < it.Quantity {
			return ErrSoldOut
		}
	}
	for _, it := range items {
		m.stock[it.ProductID] -= it.Quantity
	}
	m.res[orderID] = &reservation{items: append([]Item(nil), items...), until: until}
	return nil
}

func (m *MemoryStore) Release(_ context.Context, orderID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.res[orderID]
	if !ok || r.committed || r.released {
		return nil
	}
	r.released = true
	for _, it := range r.items {
		m.stock[it.ProductID] += it.Quantity
	}
	return nil
}

func (m *MemoryStore) Commit(_ context.Context, orderID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.commitLocked(orderID)
}

func (m *MemoryStore) commitLocked(orderID string) error {
	r, ok := m.res[orderID]
	if !ok || r.released {
		return ErrNotFound
	}
	if !r.committed {
		r.committed = true
		for _, it := range r.items {
			m.sold[it.ProductID] += it.Quantity
		}
	}
	return nil
}

func (m *MemoryStore) ExpiredReservations(_ context.Context, now time.Time, limit int) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for id, r := range m.res {
		if !r.committed && !r.released && r.until.Before(now) {
			out = append(out, id)
			if len(out) >= limit {
				break
			}
		}
	}
	return out, nil
}

func cloneOrder(o *storedOrder) *Order {
	c := o.Order
	c.Items = append([]Item(nil), o.Items...)
	c.Method.Token = o.Token
	return &c
}

func (m *MemoryStore) CreateOrder(_ context.Context, o *Order) (*Order, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.createLocked(o)
}

func (m *MemoryStore) PlaceOrder(_ context.Context, o *Order, until time.Time) (*Order, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.orders[o.ID]; ok {
		return cloneOrder(cur), false, nil
	}
	if err := m.reserveLocked(o.ID, o.Items, until); err != nil {
		return nil, false, err
	}
	return m.createLocked(o)
}

func (m *MemoryStore) commitAndSave(_ context.Context, next *Order, before int64, _ Status) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	so, ok := m.orders[next.ID]
	if !ok {
		return ErrNotFound
	}
	if so.Version != before {
		return ErrConflict
	}
	if err := m.commitLocked(next.ID); err != nil {
		return err
	}
	saved := &storedOrder{Order: *next, Token: next.Method.Token}
	saved.Items = append([]Item(nil), next.Items...)
	saved.Version = before + 1
	m.orders[next.ID] = saved
	return nil
}

func (m *MemoryStore) createLocked(o *Order) (*Order, bool, error) {
	if cur, ok := m.orders[o.ID]; ok {
		return cloneOrder(cur), false, nil
	}
	so := &storedOrder{Order: *o, Token: o.Method.Token}
	so.Items = append([]Item(nil), o.Items...)
	so.Version = 1
	m.orders[o.ID] = so
	return cloneOrder(so), true, nil
}

func (m *MemoryStore) GetOrder(_ context.Context, id string) (*Order, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.orders[id]
	if !ok {
		return nil, ErrNotFound
	}
	return cloneOrder(o), nil
}

func (m *MemoryStore) UpdateOrder(_ context.Context, id string, fn func(*Order) bool) (*Order, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	so, ok := m.orders[id]
	if !ok {
		return nil, ErrNotFound
	}
	c := cloneOrder(so)
	if !fn(c) {
		return c, nil
	}
	c.Version = so.Version + 1
	m.orders[id] = &storedOrder{Order: *c, Token: c.Method.Token}
	return cloneOrder(m.orders[id]), nil
}

func (m *MemoryStore) OrdersByUser(_ context.Context, userID string, limit int) ([]*Order, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*Order
	for _, o := range m.orders {
		if o.UserID == userID {
			out = append(out, cloneOrder(o))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (m *MemoryStore) OrdersInStatus(_ context.Context, s Status, before time.Time, limit int) ([]*Order, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*Order
	for _, o := range m.orders {
		if o.Status == s && o.UpdatedAt.Before(before) {
			out = append(out, cloneOrder(o))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UpdatedAt.Before(out[j].UpdatedAt) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (m *MemoryStore) Sold(_ context.Context, productID string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sold[productID], nil
}
