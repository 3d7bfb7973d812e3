package session

import (
	"context"
	"strings"
	"sync"
	"time"
)

// MemoryStore is an in-process Store for tests and single-process demos.
type MemoryStore struct {
	mu      sync.Mutex
	users   map[string]User // by id
	byEmail map[string]string
	refresh map[string]RefreshToken
	carts   map[string]Cart
	revoked map[string]bool // families
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{users: map[string]User{}, byEmail: map[string]string{}, refresh: map[string]RefreshToken{}, carts: map[string]Cart{}, revoked: map[string]bool{}}
}

var _ Store = (*MemoryStore)(nil)

func (m *MemoryStore) PutUser(_ context.Context, u User) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.users[u.ID] = u
	m.byEmail[strings.ToLower(u.Email)] = u.ID
	return nil
}

func (m *MemoryStore) UserByEmail(_ context.Context, email string) (User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id, ok := m.byEmail[strings.ToLower(email)]
	if !ok {
		return User{}, ErrNotFound
	}
	return m.users[id], nil
}

func (m *MemoryStore) UserByID(_ context.Context, id string) (User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[id]
	if !ok {
		return User{}, ErrNotFound
	}
	return u, nil
}

func (m *MemoryStore) BumpEpoch(_ context.Context, userID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[userID]
	if !ok {
		return ErrNotFound
	}
	u.Epoch++
	m.users[userID] = u
	return nil
}

func (m *MemoryStore) ConsumeRefresh(_ context.Context, hash string, now time.Time) (RefreshToken, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.refresh[hash]
	switch {
	case !ok:
		return RefreshToken{}, ErrRefreshDead
	case t.Revoked || now.After(t.ExpiresAt):
		return t, ErrRefreshDead
	case t.Used:
		return t, ErrRefreshReused
	}
	t.Used, t.UsedAt = true, now
	m.refresh[hash] = t
	return t, nil
}

func (m *MemoryStore) EnsureRefresh(_ context.Context, t RefreshToken) (RefreshToken, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if have, ok := m.refresh[t.Hash]; ok {
		return have, nil
	}
	m.refresh[t.Hash] = t
	return t, nil
}

func (m *MemoryStore) FamilyRevoked(_ context.Context, family string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.revoked[family], nil
}

func (m *MemoryStore) RevokeFamily(_ context.Context, family string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.revoked[family] = true
	for h, t := range m.refresh {
		if t.Family == family {
			t.Revoked = true
			m.refresh[h] = t
		}
	}
	return nil
}

func (m *MemoryStore) RevokeUser(_ context.Context, userID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for h, t := range m.refresh {
		if t.UserID == userID {
			t.Revoked = true
			m.refresh[h] = t
		}
	}
	return nil
}

func (m *MemoryStore) GetCart(_ context.Context, userID string) (Cart, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.carts[userID]
	return Cart{Items: append([]CartItem(nil), c.Items...)}, nil
}

func (m *MemoryStore) PutCart(_ context.Context, userID string, c Cart) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.carts[userID] = Cart{Items: append([]CartItem(nil), c.Items...)}
	return nil
}
