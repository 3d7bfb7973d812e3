// Package session is the reference platform's session service: login for
// seeded users, a short-lived JWT access token in a cookie, rotating refresh
// tokens with reuse detection, logout and revoke-all, CSRF protection, a
// per-IP rate limit, and carts (server-side when signed in, a signed cookie
// when not, merged on login).
package session

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/time/rate"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/examples/internal/httpjson"
)

// Cookie names.
const (
	AccessCookie  = "shop_access"
	RefreshCookie = "shop_refresh"
	CSRFCookie    = "shop_csrf"
	CartCookie    = "shop_cart"
	CSRFHeader    = "X-CSRF-Token"
)

// Config configures the service. Zero values mean:
//
//	Store        required
//	SigningKey   required, at least 32 bytes: signs access tokens and cart cookies
//	Dev          false: cookies are Secure; true relaxes Secure for plain-HTTP localhost only
//	AccessTTL    15 min
//	RefreshTTL   30 days
//	RefreshRetryWindow 30 s: a spent refresh token sent again this soon is
//	             a retry, answered with its successor while that is unused
//	             (see handleRefresh); negative: every reuse revokes the login
//	LoginRate    5 per second per IP, burst 10 (login and refresh)
//	TrustProxy   false: the client IP is the connection's; true reads X-Forwarded-For
//	BcryptCost   bcrypt.DefaultCost (production cost)
//	Clock        time.Now
//	Logger       slog.Default()
type Config struct {
	Store      Store
	SigningKey paymux.Secret
	Dev        bool
	AccessTTL  time.Duration
	RefreshTTL time.Duration
	// RefreshRetryWindow: see handleRefresh.
	RefreshRetryWindow time.Duration
	LoginRate          rate.Limit
	LoginBurst         int
	TrustProxy         bool
	BcryptCost         int
	Clock              func() time.Time
	Logger             *slog.Logger
}

// Service serves /api/session/* and /api/cart*.
type Service struct {
	cfg          Config
	key          []byte
	successorKey []byte // derives rotated refresh tokens (successor)
	ips          ipLimiter
	epochs       sync.Map // user id -> epochCache
	families     sync.Map // family -> familyCache
}

type epochCache struct {
	epoch int64
	at    time.Time
}

// New checks cfg and builds the service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("session: Config.Store is required")
	}
	if len(cfg.SigningKey.Reveal()) < 32 {
		return nil, errors.New("session: Config.SigningKey must be at least 32 bytes")
	}
	if cfg.AccessTTL <= 0 {
		cfg.AccessTTL = 15 * time.Minute
	}
	if cfg.RefreshTTL <= 0 {
		cfg.RefreshTTL = 30 * 24 * time.Hour
	}
	if cfg.RefreshRetryWindow == 0 {
		cfg.RefreshRetryWindow = 30 * time.Second
	}
	if cfg.LoginRate <= 0 {
		cfg.LoginRate = 5
	}
	if cfg.LoginBurst <= 0 {
		cfg.LoginBurst = 10
	}
	if cfg.BcryptCost == 0 {
		cfg.BcryptCost = bcrypt.DefaultCost
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	key := []byte(cfg.SigningKey.Reveal())
	sk := hmac.New(sha256.New, key)
	sk.Write([]byte("paymux-shop refresh-token successor"))
	return &Service{cfg: cfg, key: key, successorKey: sk.Sum(nil), ips: ipLimiter{limit: cfg.LoginRate, burst: cfg.LoginBurst, m: map[string]*ipEntry{}}}, nil
}

// SeedUser is a demo account.
type SeedUser struct {
	Email, Password, Country string
}

// Seed creates (or updates) demo users with hashed passwords.
func (s *Service) Seed(ctx context.Context, users []SeedUser) error {
	for _, u := range users {
		hash, err := bcrypt.GenerateFromPassword([]byte(u.Password), s.cfg.BcryptCost)
		if err != nil {
			return err
		}
		id := "usr_" + hex.EncodeToString(sha256Sum([]byte(strings.ToLower(u.Email)))[:8])
		if existing, err := s.cfg.Store.UserByEmail(ctx, u.Email); err == nil {
			if bcrypt.CompareHashAndPassword(existing.PasswordHash, []byte(u.Password)) == nil {
				continue // already seeded; keep its epoch
			}
			id = existing.ID
		}
		if err := s.cfg.Store.PutUser(ctx, User{ID: id, Email: u.Email, PasswordHash: hash, Country: u.Country}); err != nil {
			return err
		}
	}
	return nil
}

// Register mounts the service's routes on mux.
func (s *Service) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/session/login", s.handleLogin)
	mux.HandleFunc("POST /api/session/refresh", s.handleRefresh)
	mux.HandleFunc("POST /api/session/logout", s.handleLogout)
	mux.HandleFunc("POST /api/session/logout-all", s.handleLogoutAll)
	mux.HandleFunc("GET /api/session/me", s.handleMe)
	mux.HandleFunc("GET /api/session/csrf", s.handleCSRF)
	mux.HandleFunc("GET /api/cart", s.handleGetCart)
	mux.HandleFunc("POST /api/cart/items", s.handleSetItem)
	mux.HandleFunc("DELETE /api/cart", s.handleClearCart)
}

// Claims are what an access token says.
type Claims struct {
	UserID  string `json:"sub"`
	Email   string `json:"email"`
	Country string `json:"country"`
	Epoch   int64  `json:"ep"`
	// Family is the login the token belongs to; logout revokes it.
	Family string `json:"fam,omitempty"`
	jwt.RegisteredClaims
}

// Principal is the signed-in user of a request.
type Principal struct {
	UserID, Email, Country string
}

// ErrUnauthenticated is returned when a request carries no valid access token.
var ErrUnauthenticated = errors.New("session: not signed in")

// ErrCSRF is returned when a cookie-authenticated write lacks the CSRF token.
var ErrCSRF = errors.New("session: missing or wrong CSRF token")

// Authenticate returns the signed-in user of r, from the access cookie or an
// Authorization: Bearer header.
func (s *Service) Authenticate(r *http.Request) (Principal, error) {
	raw := ""
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		raw = strings.TrimPrefix(h, "Bearer ")
	} else if c, err := r.Cookie(AccessCookie); err == nil {
		raw = c.Value
	}
	if raw == "" {
		return Principal{}, ErrUnauthenticated
	}
	var cl Claims
	_, err := jwt.ParseWithClaims(raw, &cl, func(t *jwt.Token) (any, error) { return s.key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithTimeFunc(s.cfg.Clock), jwt.WithIssuer("paymux-shop"))
	if err != nil {
		return Principal{}, ErrUnauthenticated
	}
	ep, err := s.currentEpoch(r.Context(), cl.UserID)
	if err != nil || ep != cl.Epoch {
		return Principal{}, ErrUnauthenticated
	}
	if cl.Family != "" && s.familyRevoked(r.Context(), cl.Family) {
		return Principal{}, ErrUnauthenticated
	}
	return Principal{UserID: cl.UserID, Email: cl.Email, Country: cl.Country}, nil
}

// currentEpoch reads the user's revocation epoch, cached for two seconds so
// that authenticated requests do not each cost a store read.
func (s *Service) currentEpoch(ctx context.Context, userID string) (int64, error) {
	now := s.cfg.Clock()
	if v, ok := s.epochs.Load(userID); ok {
		if c := v.(epochCache); now.Sub(c.at) < 2*time.Second {
			return c.epoch, nil
		}
	}
	u, err := s.cfg.Store.UserByID(ctx, userID)
	if err != nil {
		return 0, err
	}
	s.epochs.Store(userID, epochCache{u.Epoch, now})
	return u.Epoch, nil
}

// familyRevoked reports whether the login was ended (logout, or a stolen
// refresh token reused), cached for two seconds like the epoch. A store
// error counts as revoked: fail closed.
func (s *Service) familyRevoked(ctx context.Context, family string) bool {
	now := s.cfg.Clock()
	if v, ok := s.families.Load(family); ok {
		if c := v.(familyCache); now.Sub(c.at) < 2*time.Second {
			return c.revoked
		}
	}
	revoked, err := s.cfg.Store.FamilyRevoked(ctx, family)
	if err != nil {
		return true
	}
	s.families.Store(family, familyCache{revoked, now})
	return revoked
}

type familyCache struct {
	revoked bool
	at      time.Time
}

// CheckCSRF enforces the double-submit token on cookie-authenticated writes.
// Requests authenticated by an Authorization header carry no ambient
// credentials and need none.
func (s *Service) CheckCSRF(r *http.Request) error {
	if r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions {
		return nil
	}
	if strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		return nil
	}
	if !hasAnyCookie(r, AccessCookie, RefreshCookie, CartCookie) {
		return nil
	}
	c, err := r.Cookie(CSRFCookie)
	h := r.Header.Get(CSRFHeader)
	if err != nil || c.Value == "" || h == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(h)) != 1 {
		return ErrCSRF
	}
	return nil
}

func hasAnyCookie(r *http.Request, names ...string) bool {
	for _, n := range names {
		if _, err := r.Cookie(n); err == nil {
			return true
		}
	}
	return false
}

func (s *Service) secure(r *http.Request) bool {
	if !s.cfg.Dev {
		return true
	}
	// Development relaxes Secure only for plain HTTP on localhost.
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	local := host == "localhost" || host == "127.0.0.1" || host == "::1"
	return !(local && r.TLS == nil)
}

func (s *Service) setCookie(w http.ResponseWriter, r *http.Request, name, value, path string, maxAge time.Duration, httpOnly bool) {
	c := &http.Cookie{Name: name, Value: value, Path: path, HttpOnly: httpOnly, Secure: s.secure(r), SameSite: http.SameSiteLaxMode}
	if maxAge > 0 {
		c.MaxAge = int(maxAge / time.Second)
	} else if maxAge < 0 {
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}

// EnsureCSRF makes sure the browser holds a CSRF cookie and returns it.
func (s *Service) EnsureCSRF(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(CSRFCookie); err == nil && len(c.Value) >= 32 {
		return c.Value
	}
	v := randomToken()
	s.setCookie(w, r, CSRFCookie, v, "/", 0, false)
	return v
}

func (s *Service) handleCSRF(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"csrf_token": s.EnsureCSRF(w, r)})
}

func (s *Service) clientIP(r *http.Request) string {
	if s.cfg.TrustProxy {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			return strings.TrimSpace(strings.Split(xff, ",")[0])
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Service) handleLogin(w http.ResponseWriter, r *http.Request) {
	if !s.ips.allow(s.clientIP(r), s.cfg.Clock()) {
		writeError(w, http.StatusTooManyRequests, "too many attempts; slow down")
		return
	}
	if err := s.CheckCSRF(r); err != nil {
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	var in struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&in); err != nil || in.Email == "" || in.Password == "" {
		writeError(w, http.StatusBadRequest, "email and password are required")
		return
	}
	u, err := s.cfg.Store.UserByEmail(r.Context(), in.Email)
	if err != nil {
		// Compare against a fixed hash anyway, so timing does not reveal
		// which emails exist.
		_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(in.Password))
		writeError(w, http.StatusUnauthorized, "wrong email or password")
		return
	}
	if bcrypt.CompareHashAndPassword(u.PasswordHash, []byte(in.Password)) != nil {
		writeError(w, http.StatusUnauthorized, "wrong email or password")
		return
	}
	if err := s.issue(w, r, u, uuid.NewString()); err != nil {
		s.cfg.Logger.Error("session: issuing tokens failed", "err", err)
		writeError(w, http.StatusServiceUnavailable, "try again")
		return
	}
	// Merge the anonymous cart into the saved one, so nothing is lost.
	if anon, ok := s.anonCart(r); ok && len(anon.Items) > 0 {
		saved, err := s.cfg.Store.GetCart(r.Context(), u.ID)
		if err == nil {
			if err := s.cfg.Store.PutCart(r.Context(), u.ID, mergeCarts(saved, anon)); err == nil {
				s.setCookie(w, r, CartCookie, "", "/", -1, true)
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": map[string]string{"id": u.ID, "email": u.Email, "country": u.Country}})
}

// dummyHash is a bcrypt hash of a random password, for constant-time misses.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("not-a-real-password-"+randomToken()), bcrypt.MinCost)

// issue signs in u for a new login: a fresh access token and a random
// refresh token that starts the login's family.
func (s *Service) issue(w http.ResponseWriter, r *http.Request, u User, family string) error {
	refresh := randomToken()
	t := RefreshToken{Hash: hashToken(refresh), UserID: u.ID, Family: family, ExpiresAt: s.cfg.Clock().Add(s.cfg.RefreshTTL)}
	if _, err := s.cfg.Store.EnsureRefresh(r.Context(), t); err != nil {
		return err
	}
	return s.issueAccess(w, r, u, family, refresh, t.ExpiresAt)
}

// issueAccess sets a new access token for u and the given refresh token.
func (s *Service) issueAccess(w http.ResponseWriter, r *http.Request, u User, family, refresh string, refreshExpires time.Time) error {
	now := s.cfg.Clock()
	access, err := jwt.NewWithClaims(jwt.SigningMethodHS256, Claims{
		UserID: u.ID, Email: u.Email, Country: u.Country, Epoch: u.Epoch, Family: family,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: "paymux-shop", Subject: u.ID, IssuedAt: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(s.cfg.AccessTTL)), ID: uuid.NewString(),
		},
	}).SignedString(s.key)
	if err != nil {
		return err
	}
	s.setCookie(w, r, AccessCookie, access, "/", s.cfg.AccessTTL, true)
	s.setCookie(w, r, RefreshCookie, refresh, "/api/session", refreshExpires.Sub(now), true)
	s.EnsureCSRF(w, r)
	return nil
}

// successor is the refresh token that replaces spent when it is spent. It
// is derived from spent with a server key rather than drawn at random, so
// that a client whose refresh answer was lost, and who sends spent again,
// gets the same successor instead of a second live token (see
// handleRefresh). Without the key, a copy of spent does not give its
// successor.
func (s *Service) successor(spent string) string {
	m := hmac.New(sha256.New, s.successorKey)
	m.Write([]byte(spent))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// handleRefresh rotates the refresh token: the presented one is spent and
// its successor is set with a new access token.
//
// A spent token that comes back is either a copy (theft) or the same
// client retrying a refresh whose answer it never got: a dropped
// connection, a time-out, a store call whose reply was lost. Revoking the
// family on every reuse would sign out the second kind. So a reuse within
// RefreshRetryWindow of the spend is answered with the same successor again
// (and a new access token), but only while that successor is unused: once
// it has been used, the client that sent it holds the login, and the old
// token can only be a copy. Any other reuse revokes the family. A thief who
// replays a token inside the window gets the successor the victim also
// holds, never a token of its own; the family is revoked the first time
// either of them sends a token whose successor has been used, or sends a
// spent one later than the window allows. Reuse is still detected, at the
// latest at the next rotation that the two do not make within the window
// of each other.
func (s *Service) handleRefresh(w http.ResponseWriter, r *http.Request) {
	if !s.ips.allow(s.clientIP(r), s.cfg.Clock()) {
		writeError(w, http.StatusTooManyRequests, "too many attempts; slow down")
		return
	}
	if err := s.CheckCSRF(r); err != nil {
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	c, err := r.Cookie(RefreshCookie)
	if err != nil || c.Value == "" {
		writeError(w, http.StatusUnauthorized, "no refresh token")
		return
	}
	now := s.cfg.Clock()
	t, err := s.cfg.Store.ConsumeRefresh(r.Context(), hashToken(c.Value), now)
	switch {
	case err == nil:
	case errors.Is(err, ErrRefreshReused) && s.mayBeRetry(t, now):
		// Answered below with the successor, if it is still unused.
	case errors.Is(err, ErrRefreshReused):
		s.revoke(w, r, t)
		return
	case errors.Is(err, ErrRefreshDead):
		s.clearSession(w, r)
		writeError(w, http.StatusUnauthorized, "session expired")
		return
	default:
		// The store did not answer: the token may or may not be spent. The
		// client sends it again, and a spend it did not hear of is
		// answered as a retry.
		writeError(w, http.StatusServiceUnavailable, "try again")
		return
	}
	next := s.successor(c.Value)
	stored, err := s.cfg.Store.EnsureRefresh(r.Context(), RefreshToken{
		Hash: hashToken(next), UserID: t.UserID, Family: t.Family, ExpiresAt: now.Add(s.cfg.RefreshTTL),
	})
	switch {
	case errors.Is(err, ErrRefreshDead), err == nil && (stored.Used || stored.Revoked || !now.Before(stored.ExpiresAt)):
		s.revoke(w, r, t)
		return
	case err != nil:
		s.cfg.Logger.Error("session: storing the rotated refresh token failed", "err", err)
		writeError(w, http.StatusServiceUnavailable, "try again")
		return
	}
	// A logout or a detected theft may have revoked the family after the
	// spend and before the successor was stored, and so missed it. Every
	// store marks a family revoked before it revokes its tokens, so this
	// read, made after the successor exists, sees any such revocation.
	switch revoked, err := s.cfg.Store.FamilyRevoked(r.Context(), t.Family); {
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "try again")
		return
	case revoked:
		s.clearSession(w, r)
		writeError(w, http.StatusUnauthorized, "session revoked")
		return
	}
	u, err := s.cfg.Store.UserByID(r.Context(), t.UserID)
	if errors.Is(err, ErrNotFound) {
		s.clearSession(w, r)
		writeError(w, http.StatusUnauthorized, "session expired")
		return
	}
	if err == nil {
		err = s.issueAccess(w, r, u, t.Family, next, stored.ExpiresAt)
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "try again")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "refreshed"})
}

// mayBeRetry reports whether a reuse of t at now may be its client
// retrying: t was spent at most RefreshRetryWindow ago. Either side of now,
// since another instance, whose clock may run a little ahead, may have
// spent it.
func (s *Service) mayBeRetry(t RefreshToken, now time.Time) bool {
	if s.cfg.RefreshRetryWindow <= 0 || t.UsedAt.IsZero() {
		return false
	}
	since := now.Sub(t.UsedAt)
	return since.Abs() <= s.cfg.RefreshRetryWindow
}

// revoke ends the login of a refresh token that came back after its
// successor was used, or too late to be a retry: someone holds a copy.
func (s *Service) revoke(w http.ResponseWriter, r *http.Request, t RefreshToken) {
	s.cfg.Logger.Warn("session: refresh token reuse; revoking its family", "user", t.UserID)
	_ = s.cfg.Store.RevokeFamily(r.Context(), t.Family)
	s.families.Delete(t.Family)
	s.clearSession(w, r)
	writeError(w, http.StatusUnauthorized, "session revoked")
}

func (s *Service) clearSession(w http.ResponseWriter, r *http.Request) {
	s.setCookie(w, r, AccessCookie, "", "/", -1, true)
	s.setCookie(w, r, RefreshCookie, "", "/api/session", -1, true)
}

func (s *Service) handleLogout(w http.ResponseWriter, r *http.Request) {
	if err := s.CheckCSRF(r); err != nil {
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	if c, err := r.Cookie(RefreshCookie); err == nil && c.Value != "" {
		t, err := s.cfg.Store.ConsumeRefresh(r.Context(), hashToken(c.Value), s.cfg.Clock())
		if err == nil || errors.Is(err, ErrRefreshReused) {
			_ = s.cfg.Store.RevokeFamily(r.Context(), t.Family)
			s.families.Delete(t.Family)
		}
	}
	s.clearSession(w, r)
	writeJSON(w, http.StatusOK, map[string]string{"status": "signed out"})
}

func (s *Service) handleLogoutAll(w http.ResponseWriter, r *http.Request) {
	if err := s.CheckCSRF(r); err != nil {
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	p, err := s.Authenticate(r)
	if err != nil {
		writeError(w, http.StatusUnauthorized, err.Error())
		return
	}
	if err := s.cfg.Store.RevokeUser(r.Context(), p.UserID); err != nil {
		writeError(w, http.StatusServiceUnavailable, "try again")
		return
	}
	if err := s.cfg.Store.BumpEpoch(r.Context(), p.UserID); err != nil {
		writeError(w, http.StatusServiceUnavailable, "try again")
		return
	}
	s.epochs.Delete(p.UserID)
	s.clearSession(w, r)
	writeJSON(w, http.StatusOK, map[string]string{"status": "signed out everywhere"})
}

func (s *Service) handleMe(w http.ResponseWriter, r *http.Request) {
	s.EnsureCSRF(w, r)
	p, err := s.Authenticate(r)
	if err != nil {
		writeError(w, http.StatusUnauthorized, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": map[string]string{"id": p.UserID, "email": p.Email, "country": p.Country}})
}

// MaxCartLines bounds a cart, so a signed cookie stays small.
const MaxCartLines = 20

// CartOf returns the cart of r: the saved one when signed in, else the
// anonymous cookie's.
func (s *Service) CartOf(r *http.Request) (Cart, *Principal, error) {
	if p, err := s.Authenticate(r); err == nil {
		c, err := s.cfg.Store.GetCart(r.Context(), p.UserID)
		return c, &p, err
	}
	c, _ := s.anonCart(r)
	return c, nil, nil
}

// ClearCart empties r's cart, after a checkout.
func (s *Service) ClearCart(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if p != nil {
		return s.cfg.Store.PutCart(r.Context(), p.UserID, Cart{})
	}
	s.setCookie(w, r, CartCookie, "", "/", -1, true)
	return nil
}

func (s *Service) handleGetCart(w http.ResponseWriter, r *http.Request) {
	s.EnsureCSRF(w, r)
	c, _, err := s.CartOf(r)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "try again")
		return
	}
	if c.Items == nil {
		c.Items = []CartItem{}
	}
	writeJSON(w, http.StatusOK, c)
}

func (s *Service) handleSetItem(w http.ResponseWriter, r *http.Request) {
	if err := s.CheckCSRF(r); err != nil {
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	var in CartItem
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&in); err != nil || in.ProductID == "" || in.Quantity < 0 || in.Quantity > 10 || len(in.ProductID) > 64 {
		writeError(w, http.StatusBadRequest, "product_id and a quantity of 0 to 10 are required")
		return
	}
	c, p, err := s.CartOf(r)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "try again")
		return
	}
	c = setLine(c, in)
	if len(c.Items) > MaxCartLines {
		writeError(w, http.StatusBadRequest, "cart is full")
		return
	}
	if p != nil {
		err = s.cfg.Store.PutCart(r.Context(), p.UserID, c)
	} else {
		s.setCookie(w, r, CartCookie, s.signCart(c), "/", 7*24*time.Hour, true)
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "try again")
		return
	}
	s.EnsureCSRF(w, r)
	writeJSON(w, http.StatusOK, c)
}

func (s *Service) handleClearCart(w http.ResponseWriter, r *http.Request) {
	if err := s.CheckCSRF(r); err != nil {
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	_, p, _ := s.CartOf(r)
	if err := s.ClearCart(w, r, p); err != nil {
		writeError(w, http.StatusServiceUnavailable, "try again")
		return
	}
	writeJSON(w, http.StatusOK, Cart{Items: []CartItem{}})
}

func setLine(c Cart, in CartItem) Cart {
	out := Cart{Items: make([]CartItem, 0, len(c.Items)+1)}
	found := false
	for _, it := range c.Items {
		if it.ProductID == in.ProductID {
			found = true
			if in.Quantity > 0 {
				out.Items = append(out.Items, in)
			}
			continue
		}
		out.Items = append(out.Items, it)
	}
	if !found && in.Quantity > 0 {
		out.Items = append(out.Items, in)
	}
	return out
}

// mergeCarts adds the anonymous lines to the saved cart; for a product in
// both, the larger quantity wins (the buyer re-added it, not doubled it).
func mergeCarts(saved, anon Cart) Cart {
	out := saved
	for _, a := range anon.Items {
		q := a.Quantity
		for _, s := range saved.Items {
			if s.ProductID == a.ProductID && s.Quantity > q {
				q = s.Quantity
			}
		}
		out = setLine(out, CartItem{ProductID: a.ProductID, Quantity: q})
	}
	if len(out.Items) > MaxCartLines {
		out.Items = out.Items[:MaxCartLines]
	}
	return out
}

func (s *Service) signCart(c Cart) string {
	raw, _ := json.Marshal(c)
	payload := base64.RawURLEncoding.EncodeToString(raw)
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("cart:" + payload))
	return payload + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// anonCart reads and verifies the anonymous cart cookie; a forged or broken
// cookie is an empty cart.
func (s *Service) anonCart(r *http.Request) (Cart, bool) {
	ck, err := r.Cookie(CartCookie)
	if err != nil {
		return Cart{}, false
	}
	payload, sig, ok := strings.Cut(ck.Value, ".")
	if !ok {
		return Cart{}, false
	}
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("cart:" + payload))
	want := base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return Cart{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return Cart{}, false
	}
	var c Cart
	if json.Unmarshal(raw, &c) != nil || len(c.Items) > MaxCartLines {
		return Cart{}, false
	}
	return c, true
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

func hashToken(t string) string { return hex.EncodeToString(sha256Sum([]byte(t))) }

func writeJSON(w http.ResponseWriter, status int, v any) { httpjson.Write(w, status, v) }

func writeError(w http.ResponseWriter, status int, msg string) { httpjson.Error(w, status, msg) }

// ipLimiter is a per-IP token bucket that forgets idle IPs.
type ipLimiter struct {
	mu    sync.Mutex
	limit rate.Limit
	burst int
	m     map[string]*ipEntry
	swept time.Time
}

type ipEntry struct {
	lim  *rate.Limiter
	seen time.Time
}

func (l *ipLimiter) allow(ip string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		for k, e := range l.m {
			if now.Sub(e.seen) > 10*time.Minute {
				delete(l.m, k)
			}
		}
		l.swept = now
	}
	e := l.m[ip]
	if e == nil {
		e = &ipEntry{lim: rate.NewLimiter(l.limit, l.burst)}
		l.m[ip] = e
	}
	e.seen = now
	return e.lim.AllowN(now, 1)
}
