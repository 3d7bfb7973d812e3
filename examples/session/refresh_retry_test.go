package session_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paymux/paymux/examples/internal/sqlutil"
	"github.com/paymux/paymux/examples/internal/testenv"
	"github.com/paymux/paymux/examples/session"
	"github.com/paymux/paymux/internal/testclock"
)

// replay makes a fresh browser that holds only the refresh token value, as
// a client whose refresh answer was lost still holds its old one (or as a
// thief with a copy), and refreshes with it.
func replay(t *testing.T, b *bundle, value string) (int, string) {
	t.Helper()
	c := newClient(t, b)
	c.do("GET", "/api/session/csrf", "", false)
	u, _ := url.Parse(b.srv.URL + "/api/session")
	c.http.Jar.SetCookies(u, []*http.Cookie{{Name: session.RefreshCookie, Value: value, Path: "/api/session"}})
	code, _ := c.do("POST", "/api/session/refresh", "", true)
	return code, c.cookie(session.RefreshCookie)
}

// caught checks that replaying copy is refused and that it revoked the
// login, so that its owner c cannot refresh either.
func caught(t *testing.T, b *bundle, c *client, copy string) {
	t.Helper()
	if code, _ := replay(t, b, copy); code != 401 {
		t.Fatalf("a copy of a spent token accepted: %d", code)
	}
	if code := c.refresh(); code != 401 {
		t.Fatalf("family not revoked: %d", code)
	}
}

func TestRefreshRetryAfterALostAnswer(t *testing.T) {
	eachStore(t, func(t *testing.T, _ string, st session.Store) {
		clock := testclock.New(time.Now())
		b := setup(t, st, session.Config{Clock: clock.Now, LoginBurst: 100})

		t.Run("a retry gets the same successor and the login lives on", func(t *testing.T) {
			c, old, fresh := rotated(t, b)
			// The answer never reached the client: it sends old again,
			// twice, a few seconds later.
			clock.Advance(3 * time.Second)
			for range 2 {
				code, got := replay(t, b, old)
				if code != 200 || got != fresh {
					t.Fatalf("retry: %d, successor %q, want 200 and %q", code, got, fresh)
				}
			}
			if code := c.refresh(); code != 200 {
				t.Fatalf("the login was revoked by a retry: %d", code)
			}
			if code, _ := c.do("GET", "/api/session/me", "", false); code != 200 {
				t.Fatalf("me after the retries: %d", code)
			}
		})

		t.Run("a copy replayed in the window is caught once its successor is used", func(t *testing.T) {
			victim, old, _ := rotated(t, b)
			// The thief replays old at once and gets the successor the
			// victim holds, never a token of its own.
			code, stolen := replay(t, b, old)
			if code != 200 || stolen != victim.cookie(session.RefreshCookie) {
				t.Fatalf("replay in the window: %d, got a token of its own: %v", code, stolen != victim.cookie(session.RefreshCookie))
			}
			// The victim refreshes twice: the successor of the stolen
			// token is now used, so the stolen token can only be a copy.
			for range 2 {
				if code := victim.refresh(); code != 200 {
					t.Fatalf("victim's refresh: %d", code)
				}
			}
			caught(t, b, victim, stolen)
		})

		t.Run("a reuse after the window revokes the login", func(t *testing.T) {
			c, old, _ := rotated(t, b)
			clock.Advance(31 * time.Second)
			caught(t, b, c, old)
		})
	})
}

func TestRefreshRetryWindowOff(t *testing.T) {
	t.Parallel()
	b := setup(t, session.NewMemoryStore(), session.Config{RefreshRetryWindow: -1, LoginBurst: 100})
	c, old, _ := rotated(t, b)
	caught(t, b, c, old)
}

// flakyStore fails the given method once, after doing its work when
// afterWork is set (a lost reply) and before it otherwise (a refused call).
type flakyStore struct {
	session.Store
	failConsume, failEnsure atomic.Int32
	afterWork               bool
}

var errStoreDown = errors.New("store connection cut")

func (f *flakyStore) ConsumeRefresh(ctx context.Context, hash string, now time.Time) (session.RefreshToken, error) {
	if f.failConsume.Add(-1) >= 0 {
		if f.afterWork {
			_, _ = f.Store.ConsumeRefresh(ctx, hash, now)
		}
		return session.RefreshToken{}, errStoreDown
	}
	return f.Store.ConsumeRefresh(ctx, hash, now)
}

func (f *flakyStore) EnsureRefresh(ctx context.Context, t session.RefreshToken) (session.RefreshToken, error) {
	if f.failEnsure.Add(-1) >= 0 {
		if f.afterWork {
			_, _ = f.Store.EnsureRefresh(ctx, t)
		}
		return session.RefreshToken{}, errStoreDown
	}
	return f.Store.EnsureRefresh(ctx, t)
}

// A store failure in the middle of a refresh never signs the buyer out:
// the refresh answers "try again", and the retry with the same token works.
func TestRefreshSurvivesAStoreFailure(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name            string
		consume, ensure int32
		afterWork       bool
	}{
		{"spend refused", 1, 0, false},
		{"spend's reply lost", 1, 0, true},
		{"successor refused", 0, 1, false},
		{"successor's reply lost", 0, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := &flakyStore{Store: session.NewMemoryStore(), afterWork: tc.afterWork}
			b := setup(t, st, session.Config{LoginBurst: 100})
			c := newClient(t, b)
			c.login()
			old := c.cookie(session.RefreshCookie)
			st.failConsume.Store(tc.consume)
			st.failEnsure.Store(tc.ensure)
			if code, _ := c.do("POST", "/api/session/refresh", "", true); code != http.StatusServiceUnavailable {
				t.Fatalf("refresh with the store failing: %d, want 503", code)
			}
			if got := c.cookie(session.RefreshCookie); got != old {
				t.Fatal("a failed refresh replaced the refresh cookie")
			}
			if code := c.refresh(); code != 200 {
				t.Fatalf("retry: %d", code)
			}
			if code := c.refresh(); code != 200 {
				t.Fatalf("refresh after the retry: %d", code)
			}
		})
	}
}

// EnsureRefresh stores a token once and never changes a stored one; a
// reused token comes back with the time it was spent.
func TestEnsureRefreshKeepsTheStoredToken(t *testing.T) {
	eachStore(t, func(t *testing.T, name string, st session.Store) {
		ctx := context.Background()
		now := time.UnixMilli(time.Now().UnixMilli())
		tok := session.RefreshToken{Hash: "e-" + name, UserID: "u1", Family: "f1", ExpiresAt: now.Add(time.Hour)}
		got, err := st.EnsureRefresh(ctx, tok)
		if err != nil || got.Used || got.Revoked || got.UserID != "u1" || got.Family != "f1" || !got.ExpiresAt.Equal(tok.ExpiresAt) {
			t.Fatalf("first ensure: %+v, %v", got, err)
		}
		if _, err := st.ConsumeRefresh(ctx, tok.Hash, now); err != nil {
			t.Fatal(err)
		}
		again := tok
		again.UserID, again.ExpiresAt = "someone-else", now.Add(2*time.Hour)
		got, err = st.EnsureRefresh(ctx, again)
		if err != nil || !got.Used || got.UserID != "u1" || !got.ExpiresAt.Equal(tok.ExpiresAt) {
			t.Fatalf("ensure of a stored token changed or hid it: %+v, %v", got, err)
		}
		later := now.Add(5 * time.Second)
		got, err = st.ConsumeRefresh(ctx, tok.Hash, later)
		if !errors.Is(err, session.ErrRefreshReused) || !got.UsedAt.Equal(now) || got.Family != "f1" {
			t.Fatalf("reuse: %+v, %v; want ErrRefreshReused spent at %v", got, err, now)
		}
		if err := st.RevokeFamily(ctx, "f1"); err != nil {
			t.Fatal(err)
		}
		if got, err = st.EnsureRefresh(ctx, tok); err != nil || !got.Revoked {
			t.Fatalf("ensure after revocation: %+v, %v", got, err)
		}
	})
}

// Migrate adds used_at to a refresh-token table made before it existed,
// and running it again changes nothing.
func TestMigrateAddsUsedAtToAnOldTable(t *testing.T) {
	t.Parallel()
	for name, open := range map[string]func(t *testing.T) (*sql.DB, sqlutil.Dialect){
		"sqlite":   func(t *testing.T) (*sql.DB, sqlutil.Dialect) { return testenv.SQLite(t), sqlutil.SQLite },
		"postgres": func(t *testing.T) (*sql.DB, sqlutil.Dialect) { return testenv.Postgres(t), sqlutil.Postgres },
		"mysql":    func(t *testing.T) (*sql.DB, sqlutil.Dialect) { return testenv.MySQL(t), sqlutil.MySQL },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db, d := open(t)
			ctx := context.Background()
			prefix := testenv.Prefix("old")
			if _, err := db.ExecContext(ctx, fmt.Sprintf(`CREATE TABLE %srefresh_tokens (hash %s PRIMARY KEY, user_id %s NOT NULL, family %s NOT NULL, expires_at BIGINT NOT NULL, used INTEGER NOT NULL DEFAULT 0, revoked INTEGER NOT NULL DEFAULT 0)`,
				prefix, d.Key(), d.Key(), d.Key())); err != nil {
				t.Fatal(err)
			}
			st := session.NewSQLStore(db, d, prefix)
			t.Cleanup(func() { _ = st.Drop(context.Background()) })
			for range 2 {
				if err := st.Migrate(ctx); err != nil {
					t.Fatal(err)
				}
			}
			now := time.UnixMilli(time.Now().UnixMilli())
			if _, err := st.EnsureRefresh(ctx, session.RefreshToken{Hash: "h", UserID: "u", Family: "f", ExpiresAt: now.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			if _, err := st.ConsumeRefresh(ctx, "h", now); err != nil {
				t.Fatal(err)
			}
			if got, err := st.ConsumeRefresh(ctx, "h", now.Add(time.Second)); !errors.Is(err, session.ErrRefreshReused) || !got.UsedAt.Equal(now) {
				t.Fatalf("reuse on a migrated table: %+v, %v", got, err)
			}
		})
	}
}

// revokedMeanwhile revokes the family of the token it is asked to store
// just before storing it: a logout landing between a refresh's spend and
// its successor.
type revokedMeanwhile struct{ session.Store }

func (r revokedMeanwhile) EnsureRefresh(ctx context.Context, t session.RefreshToken) (session.RefreshToken, error) {
	if err := r.Store.RevokeFamily(ctx, t.Family); err != nil {
		return session.RefreshToken{}, err
	}
	return r.Store.EnsureRefresh(ctx, t)
}

// A family revoked while a refresh is under way does not live on in the
// refresh's successor.
func TestRefreshRacingARevocationIsRefused(t *testing.T) {
	eachStore(t, func(t *testing.T, _ string, st session.Store) {
		plain := setup(t, st, session.Config{LoginBurst: 100})
		c := newClient(t, plain)
		c.login()
		racing := setup(t, revokedMeanwhile{st}, session.Config{LoginBurst: 100})
		spent := c.cookie(session.RefreshCookie)
		if code, successor := replay(t, racing, spent); code != 401 || successor != "" {
			t.Fatalf("refresh during a revocation: %d with a refresh token %v, want 401 and none", code, successor != "")
		}
		if code, _ := replay(t, plain, spent); code != 401 {
			t.Fatalf("a retry after the revocation: %d, want 401", code)
		}
	})
}

// Tabs of one browser that refresh at the same moment send the same token:
// they all get the same successor, and the login lives on.
func TestConcurrentRefreshesShareTheSuccessor(t *testing.T) {
	eachStore(t, func(t *testing.T, _ string, st session.Store) {
		b := setup(t, st, session.Config{LoginBurst: 100})
		c := newClient(t, b)
		c.login()
		spent := c.cookie(session.RefreshCookie)
		const tabs = 4
		codes, got := make([]int, tabs), make([]string, tabs)
		var wg sync.WaitGroup
		for i := range tabs {
			wg.Go(func() { codes[i], got[i] = replay(t, b, spent) })
		}
		wg.Wait()
		for i := range tabs {
			if codes[i] != 200 || got[i] != got[0] || got[i] == "" {
				t.Fatalf("tab %d: %d with successor %q; tab 0 got %q", i, codes[i], got[i], got[0])
			}
		}
		if code, _ := replay(t, b, got[0]); code != 200 {
			t.Fatalf("the shared successor: %d", code)
		}
	})
}
