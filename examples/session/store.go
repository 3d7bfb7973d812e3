package session

import (
	"context"
	"errors"
	"time"
)

// User is a shop account.
type User struct {
	ID           string
	Email        string
	PasswordHash []byte
	Country      string
	// Epoch is bumped by revoke-all; access tokens carry the epoch they were
	// issued under and die with it.
	Epoch int64
}

// RefreshToken is stored by the SHA-256 of its value, never the value.
type RefreshToken struct {
	Hash      string
	UserID    string
	Family    string // every rotation of one login shares a family
	ExpiresAt time.Time
	Used      bool
	UsedAt    time.Time // when ConsumeRefresh spent it; zero while unused
	Revoked   bool
}

// CartItem is one line of a cart.
type CartItem struct {
	ProductID string `json:"product_id"`
	Quantity  int    `json:"quantity"`
}

// Cart is a buyer's cart.
type Cart struct {
	Items []CartItem `json:"items"`
}

// Store errors.
var (
	ErrNotFound      = errors.New("session: not found")
	ErrRefreshReused = errors.New("session: refresh token reused")
	ErrRefreshDead   = errors.New("session: refresh token expired or revoked")
)

// Store keeps users, refresh tokens and carts. Implementations: memory
// (tests), SQL and Redis, matching whichever store paymux uses.
type Store interface {
	PutUser(ctx context.Context, u User) error
	UserByEmail(ctx context.Context, email string) (User, error)
	UserByID(ctx context.Context, id string) (User, error)
	// BumpEpoch revokes every access token of the user.
	BumpEpoch(ctx context.Context, userID string) error

	// EnsureRefresh stores t unless a token with t.Hash exists, and returns
	// the stored token: t, or the existing one unchanged. Sending it twice
	// stores t once, so it is safe to retry after a lost reply.
	EnsureRefresh(ctx context.Context, t RefreshToken) (RefreshToken, error)
	// ConsumeRefresh atomically marks the token used at now and returns it.
	// A token used before gives ErrRefreshReused with the token, UsedAt
	// included (the caller decides between a retry and theft); an unknown,
	// expired or revoked one gives ErrRefreshDead.
	ConsumeRefresh(ctx context.Context, hash string, now time.Time) (RefreshToken, error)
	RevokeFamily(ctx context.Context, family string) error
	// FamilyRevoked reports whether a login's family was revoked (logout,
	// or a refresh token reused): its access tokens die with it.
	FamilyRevoked(ctx context.Context, family string) (bool, error)
	RevokeUser(ctx context.Context, userID string) error

	GetCart(ctx context.Context, userID string) (Cart, error)
	PutCart(ctx context.Context, userID string, c Cart) error
}
