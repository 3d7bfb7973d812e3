package session_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/paymux/paymux/examples/internal/sqlutil"
	"github.com/paymux/paymux/examples/internal/testenv"
	"github.com/paymux/paymux/examples/session"
)

const key = "test-signing-key-0123456789abcdef0123456789"

type bundle struct {
	srv   *httptest.Server
	svc   *session.Service
	store session.Store
}

func stores(t *testing.T) map[string]func(t *testing.T) session.Store {
	return map[string]func(t *testing.T) session.Store{
		"memory": func(t *testing.T) session.Store { return session.NewMemoryStore() },
		"sqlite": func(t *testing.T) session.Store { return sqlStore(t, testenv.SQLite(t), sqlutil.SQLite) },
		"postgres": func(t *testing.T) session.Store {
			return sqlStore(t, testenv.Postgres(t), sqlutil.Postgres)
		},
		"mysql": func(t *testing.T) session.Store { return sqlStore(t, testenv.MySQL(t), sqlutil.MySQL) },
		"redis": func(t *testing.T) session.Store {
			return session.NewRedisStore(testenv.Redis(t), testenv.Prefix("sess")+":")
		},
		"redis-cluster": func(t *testing.T) session.Store {
			st, _, _ := clusterStore(t)
			return st
		},
	}
}

// eachStore runs test on a fresh store of every kind, in parallel.
func eachStore(t *testing.T, test func(t *testing.T, name string, st session.Store)) {
	t.Parallel()
	for name, mk := range stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, name, mk(t))
		})
	}
}

func sqlStore(t *testing.T, db *sql.DB, d sqlutil.Dialect) session.Store {
	t.Helper()
	s := session.NewSQLStore(db, d, testenv.Prefix("s"))
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Drop(context.Background()) })
	return s
}

func setup(t *testing.T, st session.Store, cfg session.Config) *bundle {
	t.Helper()
	cfg.Store = st
	cfg.SigningKey = key
	cfg.Dev = true
	cfg.BcryptCost = bcrypt.MinCost
	svc, err := session.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Seed(context.Background(), []session.SeedUser{{Email: "ana@example.com", Password: "drop-2026", Country: "DE"}}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	svc.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &bundle{srv: srv, svc: svc, store: st}
}

// client is a browser: a cookie jar plus the CSRF header.
type client struct {
	t    *testing.T
	http *http.Client
	base string
}

func newClient(t *testing.T, b *bundle) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, http: &http.Client{Jar: jar}, base: b.srv.URL}
}

func (c *client) cookie(name string) string {
	u, _ := url.Parse(c.base + "/api/session")
	for _, ck := range c.http.Jar.Cookies(u) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

func (c *client) do(method, path, body string, csrf bool) (int, map[string]any) {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if csrf {
		req.Header.Set(session.CSRFHeader, c.cookie(session.CSRFCookie))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Error(err) // not Fatal: tabs call this from goroutines of their own
		return 0, nil
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// refresh posts a refresh and returns the status code.
func (c *client) refresh() int {
	c.t.Helper()
	code, _ := c.do("POST", "/api/session/refresh", "", true)
	return code
}

// rotated signs a new browser in and refreshes once; it returns the
// browser, the spent refresh token and its successor.
func rotated(t *testing.T, b *bundle) (c *client, spent, successor string) {
	t.Helper()
	c = newClient(t, b)
	c.login()
	spent = c.cookie(session.RefreshCookie)
	if code := c.refresh(); code != 200 {
		t.Fatalf("refresh: %d", code)
	}
	successor = c.cookie(session.RefreshCookie)
	if successor == spent || successor == "" {
		t.Fatal("refresh token did not rotate")
	}
	return c, spent, successor
}

func (c *client) login() {
	c.t.Helper()
	c.do("GET", "/api/session/csrf", "", false)
	if code, out := c.do("POST", "/api/session/login", `{"email":"ana@example.com","password":"drop-2026"}`, true); code != 200 {
		c.t.Fatalf("login: %d %v", code, out)
	}
}

func TestSessionFlows(t *testing.T) {
	eachStore(t, func(t *testing.T, _ string, st session.Store) {
		t.Run("login, me, wrong password", func(t *testing.T) {
			b := setup(t, st, session.Config{})
			c := newClient(t, b)
			c.do("GET", "/api/session/csrf", "", false)
			if code, _ := c.do("POST", "/api/session/login", `{"email":"ana@example.com","password":"nope"}`, true); code != 401 {
				t.Fatalf("wrong password: %d", code)
			}
			c.login()
			if code, out := c.do("GET", "/api/session/me", "", false); code != 200 || !strings.Contains(toJSON(out), "ana@example.com") {
				t.Fatalf("me: %d %v", code, out)
			}
		})
		t.Run("refresh rotates and reuse revokes the family", func(t *testing.T) {
			b := setup(t, st, session.Config{})
			c, old, _ := rotated(t, b)
			// The victim refreshes again: old's successor is now used,
			// so old can no longer be a lost answer's retry.
			if code := c.refresh(); code != 200 {
				t.Fatalf("second refresh: %d", code)
			}
			// An attacker replays the spent token.
			caught(t, b, c, old)
		})
		t.Run("logout-all kills access tokens", func(t *testing.T) {
			b := setup(t, st, session.Config{})
			c1, c2 := newClient(t, b), newClient(t, b)
			c1.login()
			c2.login()
			if code, _ := c1.do("POST", "/api/session/logout-all", "", true); code != 200 {
				t.Fatalf("logout-all: %d", code)
			}
			time.Sleep(2100 * time.Millisecond) // the epoch cache lives 2 s
			if code, _ := c2.do("GET", "/api/session/me", "", false); code != 401 {
				t.Fatalf("other device still signed in: %d", code)
			}
			if code := c2.refresh(); code != 401 {
				t.Fatalf("other device could refresh: %d", code)
			}
		})
		t.Run("anonymous cart merges on login", func(t *testing.T) {
			b := setup(t, st, session.Config{})
			c := newClient(t, b)
			c.do("GET", "/api/session/csrf", "", false)
			if code, out := c.do("POST", "/api/cart/items", `{"product_id":"sneaker-nova","quantity":2}`, true); code != 200 {
				t.Fatalf("add: %d %v", code, out)
			}
			c.login()
			code, out := c.do("GET", "/api/cart", "", false)
			if code != 200 || !strings.Contains(toJSON(out), `"sneaker-nova"`) {
				t.Fatalf("cart after login: %d %v", code, out)
			}
			// A new device sees the saved cart.
			c2 := newClient(t, b)
			c2.login()
			if _, out := c2.do("GET", "/api/cart", "", false); !strings.Contains(toJSON(out), `"quantity":2`) {
				t.Fatalf("saved cart: %v", out)
			}
		})
	})
}

func TestCSRFRequiredOnCookieWrites(t *testing.T) {
	t.Parallel()
	b := setup(t, session.NewMemoryStore(), session.Config{})
	c := newClient(t, b)
	c.login()
	if code, _ := c.do("POST", "/api/cart/items", `{"product_id":"p","quantity":1}`, false); code != 403 {
		t.Fatalf("write without CSRF token: %d", code)
	}
	if code, _ := c.do("POST", "/api/cart/items", `{"product_id":"p","quantity":1}`, true); code != 200 {
		t.Fatalf("write with CSRF token: %d", code)
	}
}

func TestForgedCartCookieIsIgnored(t *testing.T) {
	t.Parallel()
	b := setup(t, session.NewMemoryStore(), session.Config{})
	c := newClient(t, b)
	u, _ := url.Parse(b.srv.URL)
	c.http.Jar.SetCookies(u, []*http.Cookie{{Name: session.CartCookie, Value: "eyJpdGVtcyI6W3sicHJvZHVjdF9pZCI6IngiLCJxdWFudGl0eSI6OX1dfQ.forged", Path: "/"}})
	if _, out := c.do("GET", "/api/cart", "", false); strings.Contains(toJSON(out), `"x"`) {
		t.Fatalf("forged cart accepted: %v", out)
	}
}

func TestLoginRateLimitPerIP(t *testing.T) {
	t.Parallel()
	b := setup(t, session.NewMemoryStore(), session.Config{LoginRate: 1, LoginBurst: 3})
	c := newClient(t, b)
	c.do("GET", "/api/session/csrf", "", false)
	codes := map[int]int{}
	for i := 0; i < 6; i++ {
		code, _ := c.do("POST", "/api/session/login", `{"email":"ana@example.com","password":"bad"}`, true)
		codes[code]++
	}
	if codes[429] == 0 {
		t.Fatalf("no 429 after a burst: %v", codes)
	}
}

func TestCookiesAreHttpOnlyLaxAndSecureOutsideLocalDev(t *testing.T) {
	t.Parallel()
	st := session.NewMemoryStore()
	svc, err := session.New(session.Config{Store: st, SigningKey: key, BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	_ = svc.Seed(context.Background(), []session.SeedUser{{Email: "a@b.c", Password: "pw", Country: "US"}})
	mux := http.NewServeMux()
	svc.Register(mux)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "http://localhost/api/session/login", strings.NewReader(`{"email":"a@b.c","password":"pw"}`))
	mux.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("login: %d %s", rec.Code, rec.Body)
	}
	for _, ck := range rec.Result().Cookies() {
		if !ck.Secure || ck.SameSite != http.SameSiteLaxMode {
			t.Errorf("cookie %s: secure=%v samesite=%v", ck.Name, ck.Secure, ck.SameSite)
		}
		if ck.Name != session.CSRFCookie && !ck.HttpOnly {
			t.Errorf("cookie %s is readable by scripts", ck.Name)
		}
	}
}

func TestConsumeRefreshRaceHasOneWinner(t *testing.T) {
	eachStore(t, func(t *testing.T, name string, st session.Store) {
		ctx := context.Background()
		tok := session.RefreshToken{Hash: "h-" + name, UserID: "u", Family: "f", ExpiresAt: time.Now().Add(time.Hour)}
		if _, err := st.EnsureRefresh(ctx, tok); err != nil {
			t.Fatal(err)
		}
		var wins, reused atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := st.ConsumeRefresh(ctx, tok.Hash, time.Now())
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, session.ErrRefreshReused):
					reused.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 || reused.Load() != 15 {
			t.Fatalf("wins=%d reused=%d", wins.Load(), reused.Load())
		}
	})
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestLogoutEndsTheAccessToken(t *testing.T) {
	eachStore(t, func(t *testing.T, _ string, st session.Store) {
		b := setup(t, st, session.Config{})
		c := newClient(t, b)
		c.login()
		u, _ := url.Parse(b.srv.URL)
		var access string
		for _, ck := range c.http.Jar.Cookies(u) {
			if ck.Name == session.AccessCookie {
				access = ck.Value
			}
		}
		if code, _ := c.do("POST", "/api/session/logout", "", true); code != 200 {
			t.Fatalf("logout: %d", code)
		}
		// A client that kept the access token after logout is refused.
		req, _ := http.NewRequest("GET", b.srv.URL+"/api/session/me", nil)
		req.Header.Set("Authorization", "Bearer "+access)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("access token still accepted after logout: %d", resp.StatusCode)
		}
	})
}
