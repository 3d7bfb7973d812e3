package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStore keeps sessions and carts in Redis. Keys of one user share a
// hash tag, so the store works on Redis Cluster.
type RedisStore struct {
	rdb    redis.UniversalClient
	prefix string
}

var _ Store = (*RedisStore)(nil)

// NewRedisStore wraps rdb; prefix defaults to "shop:".
func NewRedisStore(rdb redis.UniversalClient, prefix string) *RedisStore {
	if prefix == "" {
		prefix = "shop:"
	}
	return &RedisStore{rdb: rdb, prefix: prefix}
}

func (s *RedisStore) userKey(id string) string { return s.prefix + "user:{" + id + "}" }
func (s *RedisStore) emailKey(email string) string {
	return s.prefix + "email:" + strings.ToLower(email)
}
func (s *RedisStore) cartKey(id string) string   { return s.prefix + "cart:{" + id + "}" }
func (s *RedisStore) refreshKey(h string) string { return s.prefix + "refresh:" + h }
func (s *RedisStore) familyKey(f string) string  { return s.prefix + "family:" + f }
func (s *RedisStore) userTokensKey(id string) string {
	return s.prefix + "usertokens:{" + id + "}"
}

type redisUser struct {
	ID, Email, Country string
	PasswordHash       []byte
}

func (s *RedisStore) PutUser(ctx context.Context, u User) error {
	raw, err := json.Marshal(redisUser{u.ID, strings.ToLower(u.Email), u.Country, u.PasswordHash})
	if err != nil {
		return err
	}
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.userKey(u.ID), "data", raw)
		p.HSetNX(ctx, s.userKey(u.ID), "epoch", u.Epoch)
		p.Set(ctx, s.emailKey(u.Email), u.ID, 0)
		return nil
	})
	return err
}

func (s *RedisStore) UserByEmail(ctx context.Context, email string) (User, error) {
	id, err := s.rdb.Get(ctx, s.emailKey(email)).Result()
	if errors.Is(err, redis.Nil) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, err
	}
	return s.UserByID(ctx, id)
}

func (s *RedisStore) UserByID(ctx context.Context, id string) (User, error) {
	vals, err := s.rdb.HMGet(ctx, s.userKey(id), "data", "epoch").Result()
	if err != nil {
		return User{}, err
	}
	raw, _ := vals[0].(string)
	if raw == "" {
		return User{}, ErrNotFound
	}
	var ru redisUser
	if err := json.Unmarshal([]byte(raw), &ru); err != nil {
		return User{}, err
	}
	epoch, _ := strconv.ParseInt(func() string { s, _ := vals[1].(string); return s }(), 10, 64)
	return User{ID: ru.ID, Email: ru.Email, Country: ru.Country, PasswordHash: ru.PasswordHash, Epoch: epoch}, nil
}

func (s *RedisStore) BumpEpoch(ctx context.Context, userID string) error {
	return s.rdb.HIncrBy(ctx, s.userKey(userID), "epoch", 1).Err()
}

// consumeScript marks a token used at ARGV[1] if it is live and unused, in
// one step. Returns {status, user, family, exp, used_at}: status 0 ok, 1
// reused, 2 dead.
var consumeScript = redis.NewScript(`
local t = redis.call('HMGET', KEYS[1], 'user', 'family', 'exp', 'used', 'revoked', 'used_at')
if not t[1] then return {2, '', '', '0', '0'} end
local usedAt = t[6] or '0'
if t[5] == '1' or tonumber(t[3]) <= tonumber(ARGV[1]) then return {2, t[1], t[2], t[3], usedAt} end
if t[4] == '1' then return {1, t[1], t[2], t[3], usedAt} end
redis.call('HSET', KEYS[1], 'used', 1, 'used_at', ARGV[1])
return {0, t[1], t[2], t[3], ARGV[1]}
`)

func (s *RedisStore) ConsumeRefresh(ctx context.Context, hash string, now time.Time) (RefreshToken, error) {
	res, err := consumeScript.Run(ctx, s.rdb, []string{s.refreshKey(hash)}, now.UnixMilli()).Slice()
	if err != nil {
		return RefreshToken{}, err
	}
	if len(res) != 5 {
		return RefreshToken{}, fmt.Errorf("session: consume refresh: unexpected reply of %d values", len(res))
	}
	status, _ := res[0].(int64)
	t := RefreshToken{Hash: hash, UserID: str(res[1]), Family: str(res[2]), ExpiresAt: millis(res[3]), Used: true, UsedAt: millis(res[4])}
	switch status {
	case 0:
		return t, nil
	case 1:
		return t, ErrRefreshReused
	}
	return t, ErrRefreshDead
}

// ensureScript creates the token hash unless it exists, then returns its
// fields: {user, family, exp, used, revoked, used_at}.
var ensureScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'user', ARGV[1], 'family', ARGV[2], 'exp', ARGV[3], 'used', 0, 'revoked', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return redis.call('HMGET', KEYS[1], 'user', 'family', 'exp', 'used', 'revoked', 'used_at')
`)

func (s *RedisStore) EnsureRefresh(ctx context.Context, t RefreshToken) (RefreshToken, error) {
	ttl := max(time.Until(t.ExpiresAt), time.Second)
	// The token joins its family and user sets before it exists: a
	// revocation that reads the family's set after this finds it, and one
	// that read it before has set the family's revoked mark already, which
	// the caller reads after this returns. Adding twice is harmless.
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, s.familyKey(t.Family), t.Hash)
		p.PExpire(ctx, s.familyKey(t.Family), ttl+time.Hour)
		p.SAdd(ctx, s.userTokensKey(t.UserID), t.Hash)
		return nil
	}); err != nil {
		return RefreshToken{}, err
	}
	res, err := ensureScript.Run(ctx, s.rdb, []string{s.refreshKey(t.Hash)},
		t.UserID, t.Family, t.ExpiresAt.UnixMilli(), ttl.Milliseconds()).Slice()
	if err != nil {
		return RefreshToken{}, err
	}
	if len(res) != 6 || res[0] == nil {
		// Expired between the two steps: it existed and is gone.
		return RefreshToken{}, ErrRefreshDead
	}
	return RefreshToken{
		Hash: t.Hash, UserID: str(res[0]), Family: str(res[1]), ExpiresAt: millis(res[2]),
		Used: str(res[3]) == "1", Revoked: str(res[4]) == "1", UsedAt: millis(res[5]),
	}, nil
}

// str is a reply value as a string; nil (a missing field) is "".
func str(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	}
	return ""
}

// millis is a reply value of Unix milliseconds as a time; missing or zero
// is the zero time.
func millis(v any) time.Time {
	ms, _ := strconv.ParseInt(str(v), 10, 64)
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

func (s *RedisStore) revokeSet(ctx context.Context, setKey string) error {
	hashes, err := s.rdb.SMembers(ctx, setKey).Result()
	if err != nil {
		return err
	}
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, h := range hashes {
			// HSET on a missing (expired) key would recreate it without a TTL.
			p.Do(ctx, "EVAL", `if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'revoked', 1) end return 0`, 1, s.refreshKey(h))
		}
		return nil
	})
	return err
}

func (s *RedisStore) revokedKey(f string) string { return s.prefix + "family-revoked:" + f }

func (s *RedisStore) RevokeFamily(ctx context.Context, family string) error {
	// The marker outlives every access token of the family (15 min).
	if err := s.rdb.Set(ctx, s.revokedKey(family), 1, 24*time.Hour).Err(); err != nil {
		return err
	}
	return s.revokeSet(ctx, s.familyKey(family))
}

func (s *RedisStore) FamilyRevoked(ctx context.Context, family string) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.revokedKey(family)).Result()
	return n == 1, err
}

func (s *RedisStore) RevokeUser(ctx context.Context, userID string) error {
	return s.revokeSet(ctx, s.userTokensKey(userID))
}

func (s *RedisStore) GetCart(ctx context.Context, userID string) (Cart, error) {
	raw, err := s.rdb.Get(ctx, s.cartKey(userID)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Cart{}, nil
	}
	if err != nil {
		return Cart{}, err
	}
	var c Cart
	return c, json.Unmarshal(raw, &c)
}

func (s *RedisStore) PutCart(ctx context.Context, userID string, c Cart) error {
	raw, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return s.rdb.Set(ctx, s.cartKey(userID), raw, 30*24*time.Hour).Err()
}
