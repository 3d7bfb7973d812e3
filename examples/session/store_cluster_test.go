package session_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paymux/paymux/examples/internal/testenv"
	"github.com/paymux/paymux/examples/session"
)

// On Redis Cluster a user's keys share a hash tag but refresh tokens, their
// families and the e-mail index do not, so one login writes to several
// nodes and a revocation reaches tokens on every master. The shared session
// tests run there as "redis-cluster"; this checks the spread itself.

func clusterStore(t *testing.T) (*session.RedisStore, *redis.ClusterClient, string) {
	t.Helper()
	rdb := testenv.RedisCluster(t)
	prefix := testenv.Prefix("sessc") + ":"
	t.Cleanup(func() { _ = testenv.DropClusterKeys(rdb, prefix) })
	return session.NewRedisStore(rdb, prefix), rdb, prefix
}

// Revoking a family or a user reaches tokens on every master, and a token
// that expired meanwhile is not brought back by the revocation.
func TestRedisClusterRevokesTokensOnEveryMaster(t *testing.T) {
	t.Parallel()
	st, rdb, prefix := clusterStore(t)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	const n = 12
	masters := map[string]bool{}
	for i := range n {
		for _, fam := range []string{"fam-a", "fam-b"} {
			h := fmt.Sprintf("%s-%d", fam, i)
			if _, err := st.EnsureRefresh(ctx, session.RefreshToken{Hash: h, UserID: "u1", Family: fam, ExpiresAt: exp}); err != nil {
				t.Fatal(err)
			}
			m, err := rdb.MasterForKey(ctx, prefix+"refresh:"+h)
			if err != nil {
				t.Fatal(err)
			}
			if found, err := m.Exists(ctx, prefix+"refresh:"+h).Result(); err != nil || found != 1 {
				t.Fatalf("token %s is not on the master of its slot: %v %v", h, found, err)
			}
			masters[m.Options().Addr] = true
		}
	}
	// 24 random slots over three masters: all on one happens once in 10^11
	// runs, so a failure here means keys do not spread.
	if len(masters) < 2 {
		t.Fatalf("refresh tokens on %d master(s): they do not spread", len(masters))
	}
	// fam-b-0 expires before the revocation.
	if err := rdb.Del(ctx, prefix+"refresh:fam-b-0").Err(); err != nil {
		t.Fatal(err)
	}

	if err := st.RevokeFamily(ctx, "fam-a"); err != nil {
		t.Fatal(err)
	}
	if revoked, err := st.FamilyRevoked(ctx, "fam-a"); err != nil || !revoked {
		t.Fatalf("FamilyRevoked(fam-a) = %v, %v", revoked, err)
	}
	if revoked, err := st.FamilyRevoked(ctx, "fam-b"); err != nil || revoked {
		t.Fatalf("FamilyRevoked(fam-b) = %v, %v", revoked, err)
	}
	for i := range n {
		if _, err := st.ConsumeRefresh(ctx, fmt.Sprintf("fam-a-%d", i), time.Now()); !errors.Is(err, session.ErrRefreshDead) {
			t.Fatalf("fam-a-%d after RevokeFamily: %v, want ErrRefreshDead", i, err)
		}
	}
	if _, err := st.ConsumeRefresh(ctx, "fam-b-1", time.Now()); err != nil {
		t.Fatalf("a token of another family died with fam-a: %v", err)
	}

	if err := st.RevokeUser(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	for i := 2; i < n; i++ {
		if _, err := st.ConsumeRefresh(ctx, fmt.Sprintf("fam-b-%d", i), time.Now()); !errors.Is(err, session.ErrRefreshDead) {
			t.Fatalf("fam-b-%d after RevokeUser: %v, want ErrRefreshDead", i, err)
		}
	}
	if found, err := rdb.Exists(ctx, prefix+"refresh:fam-b-0").Result(); err != nil || found != 0 {
		t.Fatalf("the revocation recreated an expired token: exists=%d %v", found, err)
	}
}

// Users, their carts and the e-mail index live in different slots; the
// lookups that cross them still agree under concurrent sign-ups.
func TestRedisClusterUsersAndCarts(t *testing.T) {
	t.Parallel()
	st, _, _ := clusterStore(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("u%d", i)
			if err := st.PutUser(ctx, session.User{ID: id, Email: fmt.Sprintf("Buyer%d@Example.com", i), Country: "DE"}); err != nil {
				t.Error(err)
				return
			}
			if err := st.PutCart(ctx, id, session.Cart{Items: []session.CartItem{{ProductID: "p", Quantity: i + 1}}}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i := range 16 {
		u, err := st.UserByEmail(ctx, fmt.Sprintf("buyer%d@example.com", i))
		if err != nil || u.ID != fmt.Sprintf("u%d", i) {
			t.Fatalf("UserByEmail(buyer%d) = %+v, %v", i, u, err)
		}
		if err := st.BumpEpoch(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		if u, err := st.UserByID(ctx, u.ID); err != nil || u.Epoch != 1 {
			t.Fatalf("epoch after BumpEpoch = %d, %v; want 1", u.Epoch, err)
		}
		c, err := st.GetCart(ctx, u.ID)
		if err != nil || len(c.Items) != 1 || c.Items[0].Quantity != i+1 {
			t.Fatalf("cart of %s = %+v, %v", u.ID, c, err)
		}
	}
	if _, err := st.UserByEmail(ctx, "nobody@example.com"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("UserByEmail(unknown) = %v, want ErrNotFound", err)
	}
}
