package order

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStore keeps products, reservations and orders in Redis. Stock is
// taken by one Lua script per checkout, so two buyers can never both take
// the last unit. Inventory keys share the hash tag {inv} (one Cluster slot),
// so a multi-product reservation stays atomic; each order's keys share its
// id's tag.
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

func (s *RedisStore) productsKey() string       { return s.prefix + "{inv}:products" }
func (s *RedisStore) stockKey() string          { return s.prefix + "{inv}:stock" }
func (s *RedisStore) soldKey() string           { return s.prefix + "{inv}:sold" }
func (s *RedisStore) resKey(id string) string   { return s.prefix + "{inv}:res:" + id }
func (s *RedisStore) heldKey() string           { return s.prefix + "{inv}:held" } // zset order id -> until
func (s *RedisStore) orderKey(id string) string { return s.prefix + "order:{" + id + "}" }
func (s *RedisStore) userKey(id string) string  { return s.prefix + "user-orders:" + id }
func (s *RedisStore) statusKey(st Status) string {
	return s.prefix + "orders-in:" + string(st)
}

func (s *RedisStore) SeedProduct(ctx context.Context, p Product) error {
	stock := p.Stock
	p.Stock = 0
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	_, err = s.rdb.TxPipelined(ctx, func(pl redis.Pipeliner) error {
		pl.HSet(ctx, s.productsKey(), p.ID, raw)
		pl.HSetNX(ctx, s.stockKey(), p.ID, stock)
		return nil
	})
	return err
}

func (s *RedisStore) Products(ctx context.Context) ([]Product, error) {
	all, err := s.rdb.HGetAll(ctx, s.productsKey()).Result()
	if err != nil {
		return nil, err
	}
	stock, err := s.rdb.HGetAll(ctx, s.stockKey()).Result()
	if err != nil {
		return nil, err
	}
	out := make([]Product, 0, len(all))
	for id, raw := range all {
		n, _ := strconv.Atoi(stock[id])
		p, err := scanProduct(raw, n)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (s *RedisStore) Product(ctx context.Context, id string) (Product, error) {
	raw, err := s.rdb.HGet(ctx, s.productsKey(), id).Result()
	if errors.Is(err, redis.Nil) {
		return Product{}, ErrNotFound
	}
	if err != nil {
		return Product{}, err
	}
	n, err := s.rdb.HGet(ctx, s.stockKey(), id).Int()
	if err != nil && !errors.Is(err, redis.Nil) {
		return Product{}, err
	}
	return scanProduct(raw, n)
}

// reserveScript: KEYS stock, res, held, products; ARGV orderID, until, then
// (product, qty) pairs. Returns 1 reserved (or already), 0 sold out, -1 unknown product.
var reserveScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
` + takeStockLua(3) + `
return 1
`)

// takeStockLua is the Lua that takes a reservation's stock, shared by
// reserveScript and placeScript: KEYS stock, res, held, products; ARGV[1]
// the order id, ARGV[2] until, and (product, qty) pairs from ARGV[first].
// It returns 0 (sold out) or -1 (unknown product) having taken nothing.
func takeStockLua(first int) string {
	return strings.ReplaceAll(`for i = FIRST, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[4], ARGV[i]) == 0 then return -1 end
  local have = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if have < tonumber(ARGV[i+1]) then return 0 end
end
for i = FIRST, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], -tonumber(ARGV[i+1]))
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i+1])
end
redis.call('HSET', KEYS[2], '_state', 'held')
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])`, "FIRST", strconv.Itoa(first))
}

func (s *RedisStore) Reserve(ctx context.Context, orderID string, items []Item, until time.Time) error {
	args := []any{orderID, until.UnixMilli()}
	for _, it := range items {
		args = append(args, it.ProductID, it.Quantity)
	}
	n, err := reserveScript.Run(ctx, s.rdb, []string{s.stockKey(), s.resKey(orderID), s.heldKey(), s.productsKey()}, args...).Int()
	switch {
	case err != nil:
		return err
	case n == 0:
		return ErrSoldOut
	case n < 0:
		return ErrNotFound
	}
	return nil
}

// releaseScript / commitScript move a held reservation to its end state.
var releaseScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], '_state') ~= 'held' then return 0 end
local f = redis.call('HGETALL', KEYS[1])
for i = 1, #f, 2 do
  if f[i] ~= '_state' then redis.call('HINCRBY', KEYS[2], f[i], tonumber(f[i+1])) end
end
redis.call('HSET', KEYS[1], '_state', ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
`)

var commitScript = redis.NewScript(commitLua("0") + `
return 1
`)

// commitLua is the Lua that commits a reservation, shared by commitScript
// and commitSaveScript: KEYS res, sold, held; ARGV[1] the order id. A
// reservation committed already is left as it is; one neither held nor
// committed returns notHeld.
func commitLua(notHeld string) string {
	return `
local st = redis.call('HGET', KEYS[1], '_state')
if st ~= 'committed' then
  if st ~= 'held' then return ` + notHeld + ` end
  local f = redis.call('HGETALL', KEYS[1])
  for i = 1, #f, 2 do
    if f[i] ~= '_state' then redis.call('HINCRBY', KEYS[2], f[i], tonumber(f[i+1])) end
  end
  redis.call('HSET', KEYS[1], '_state', 'committed')
  redis.call('ZREM', KEYS[3], ARGV[1])
end`
}

func (s *RedisStore) Release(ctx context.Context, orderID string) error {
	return releaseScript.Run(ctx, s.rdb, []string{s.resKey(orderID), s.stockKey(), s.heldKey()}, orderID, "released").Err()
}

func (s *RedisStore) Commit(ctx context.Context, orderID string) error {
	n, err := commitScript.Run(ctx, s.rdb, []string{s.resKey(orderID), s.soldKey(), s.heldKey()}, orderID).Int()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

func (s *RedisStore) ExpiredReservations(ctx context.Context, now time.Time, limit int) ([]string, error) {
	return s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: s.heldKey(), Start: "-inf", Stop: "(" + strconv.FormatInt(now.UnixMilli(), 10), ByScore: true, Count: int64(limit)}).Result()
}

// createScript inserts an order if absent. KEYS order; ARGV data.
var createScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'data', ARGV[1], 'version', 1)
return 1
`)

// casScript saves an order if its version is unchanged. KEYS order; ARGV
// expected version, data.
var casScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'data', ARGV[2], 'version', tonumber(ARGV[1]) + 1)
return 1
`)

// casIndexScript is casScript plus the order's index entries (one node
// only). KEYS order, old status index, new status index, user index; ARGV
// expected version, data, order id, updated score, created score, has user.
var casIndexScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'data', ARGV[2], 'version', tonumber(ARGV[1]) + 1)
if KEYS[2] ~= KEYS[3] then redis.call('ZREM', KEYS[2], ARGV[3]) end
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
if ARGV[6] == '1' then redis.call('ZADD', KEYS[4], ARGV[5], ARGV[3]) end
return 1
`)

func (s *RedisStore) index(ctx context.Context, o *Order, old Status) {
	// Indexes are best effort: they serve listings, never money decisions.
	_, _ = s.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		s.indexCmds(ctx, pl, o, old)
		return nil
	})
}

func (s *RedisStore) indexCmds(ctx context.Context, pl redis.Pipeliner, o *Order, old Status) {
	if old != "" && old != o.Status {
		pl.ZRem(ctx, s.statusKey(old), o.ID)
	}
	pl.ZAdd(ctx, s.statusKey(o.Status), redis.Z{Score: float64(o.UpdatedAt.UnixMilli()), Member: o.ID})
	if o.UserID != "" {
		pl.ZAdd(ctx, s.userKey(o.UserID), redis.Z{Score: float64(o.CreatedAt.UnixMilli()), Member: o.ID})
	}
}

func (s *RedisStore) CreateOrder(ctx context.Context, o *Order) (*Order, bool, error) {
	raw, err := encodeOrder(o)
	if err != nil {
		return nil, false, err
	}
	// Index first: a crash between the two writes then leaves an index
	// entry for an order that does not exist (listings skip it), never an
	// order that crash recovery cannot find. The two keys live in different
	// Cluster slots, so one script cannot write both.
	//
	// Both go in one pipeline (one round trip), the index commands first, so
	// the order above holds; the index stays best effort (its errors are
	// not the insert's).
	// A Cluster client sends a pipeline's commands to their nodes
	// concurrently, so there the two writes stay two round trips.
	var n int
	if _, cluster := s.rdb.(*redis.ClusterClient); cluster {
		s.index(ctx, o, "")
		n, err = createScript.Run(ctx, s.rdb, []string{s.orderKey(o.ID)}, raw).Int()
	} else {
		var create *redis.Cmd
		_, _ = s.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
			s.indexCmds(ctx, pl, o, "")
			// Eval, not EvalSha: a pipeline cannot fall back on NOSCRIPT.
			create = createScript.Eval(ctx, pl, []string{s.orderKey(o.ID)}, raw)
			return nil
		})
		n, err = create.Int()
	}
	if err != nil {
		return nil, false, err
	}
	if n == 1 {
		// Inserted: what is stored is o, at version 1. Reading it back would
		// be a round trip per checkout for nothing.
		cur := *o
		cur.Version = 1
		return &cur, true, nil
	}
	cur, err := s.GetOrder(ctx, o.ID)
	return cur, false, err
}

// cluster reports whether keys of different hash tags live on different
// nodes: then no script may touch both an order's keys and the inventory's,
// and the one-script paths below fall back to one script per slot.
func (s *RedisStore) cluster() bool {
	_, ok := s.rdb.(*redis.ClusterClient)
	return ok
}

// placeScript is checkout in one round trip (one node only): return the
// existing order, or reserve and create it with its index entries. KEYS
// stock, res, held, products, order, status index, user index; ARGV order
// id, until, data, created score, updated score, has user, then (product,
// qty) pairs. Returns the order's {data, version} if it exists, 1 placed,
// 0 sold out, -1 unknown product.
var placeScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[5]) == 1 then return redis.call('HMGET', KEYS[5], 'data', 'version') end
if redis.call('EXISTS', KEYS[2]) == 0 then
` + takeStockLua(7) + `
end
redis.call('HSET', KEYS[5], 'data', ARGV[3], 'version', 1)
redis.call('ZADD', KEYS[6], ARGV[5], ARGV[1])
if ARGV[6] == '1' then redis.call('ZADD', KEYS[7], ARGV[4], ARGV[1]) end
return 1
`)

func (s *RedisStore) PlaceOrder(ctx context.Context, o *Order, until time.Time) (*Order, bool, error) {
	if s.cluster() {
		// The reservation script cannot see the order's slot: reserve, then
		// create. A retry of an existing order finds its reservation (kept,
		// with its end state, after commit or release) and takes nothing.
		if err := s.Reserve(ctx, o.ID, o.Items, until); err != nil {
			return nil, false, err
		}
		return s.CreateOrder(ctx, o)
	}
	raw, err := encodeOrder(o)
	if err != nil {
		return nil, false, err
	}
	hasUser := flag(o.UserID != "")
	args := make([]any, 0, 6+2*len(o.Items))
	args = append(args, o.ID, until.UnixMilli(), raw, o.CreatedAt.UnixMilli(), o.UpdatedAt.UnixMilli(), hasUser)
	for _, it := range o.Items {
		args = append(args, it.ProductID, it.Quantity)
	}
	keys := []string{s.stockKey(), s.resKey(o.ID), s.heldKey(), s.productsKey(), s.orderKey(o.ID), s.statusKey(o.Status), s.userKey(o.UserID)}
	res, err := placeScript.Run(ctx, s.rdb, keys, args...).Result()
	if err != nil {
		return nil, false, err
	}
	switch v := res.(type) {
	case []any:
		data, _ := v[0].(string)
		vs, _ := v[1].(string)
		ver, _ := strconv.ParseInt(vs, 10, 64)
		cur, err := decodeOrder(data, ver)
		return cur, false, err
	case int64:
		switch {
		case v == 0:
			return nil, false, ErrSoldOut
		case v < 0:
			return nil, false, ErrNotFound
		}
		cur := *o
		cur.Version = 1
		return &cur, true, nil
	}
	return nil, false, fmt.Errorf("order: unexpected reply %T from the place script", res)
}

// commitSaveScript commits an order's reservation and saves the order with
// compare-and-set and its index entries, in one round trip (one node only).
// KEYS res, sold, held, order, old status index, new status index, user
// index; ARGV order id, expected version, data, updated score, created
// score, has user. Returns 1 done, -2 version moved, -1 no reservation to
// commit.
var commitSaveScript = redis.NewScript(`
if redis.call('HGET', KEYS[4], 'version') ~= ARGV[2] then return -2 end
` + commitLua("-1") + `
redis.call('HSET', KEYS[4], 'data', ARGV[3], 'version', tonumber(ARGV[2]) + 1)
if KEYS[5] ~= KEYS[6] then redis.call('ZREM', KEYS[5], ARGV[1]) end
redis.call('ZADD', KEYS[6], ARGV[4], ARGV[1])
if ARGV[6] == '1' then redis.call('ZADD', KEYS[7], ARGV[5], ARGV[1]) end
return 1
`)

// flag is a script's boolean argument.
func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// errStepByStep tells the caller to settle with separate calls.
var errStepByStep = errors.New("order: this store settles step by step")

func (s *RedisStore) commitAndSave(ctx context.Context, next *Order, before int64, old Status) error {
	if s.cluster() {
		return errStepByStep
	}
	raw, err := encodeOrder(next)
	if err != nil {
		return err
	}
	hasUser := flag(next.UserID != "")
	keys := []string{s.resKey(next.ID), s.soldKey(), s.heldKey(), s.orderKey(next.ID), s.statusKey(old), s.statusKey(next.Status), s.userKey(next.UserID)}
	n, err := commitSaveScript.Run(ctx, s.rdb, keys, next.ID, strconv.FormatInt(before, 10), raw,
		next.UpdatedAt.UnixMilli(), next.CreatedAt.UnixMilli(), hasUser).Int()
	switch {
	case err != nil:
		return err
	case n == -2:
		return ErrConflict
	case n == -1:
		return ErrNotFound
	}
	return nil
}

func (s *RedisStore) GetOrder(ctx context.Context, id string) (*Order, error) {
	vals, err := s.rdb.HMGet(ctx, s.orderKey(id), "data", "version").Result()
	if err != nil {
		return nil, err
	}
	raw, _ := vals[0].(string)
	if raw == "" {
		return nil, ErrNotFound
	}
	vs, _ := vals[1].(string)
	v, _ := strconv.ParseInt(vs, 10, 64)
	return decodeOrder(raw, v)
}

func (s *RedisStore) UpdateOrder(ctx context.Context, id string, fn func(*Order) bool) (*Order, error) {
	return s.updateOrder(ctx, id, nil, fn)
}

func (s *RedisStore) updateOrderFrom(ctx context.Context, o *Order, fn func(*Order) bool) (*Order, error) {
	return s.updateOrder(ctx, o.ID, o, fn)
}

// updateOrder is UpdateOrder, starting from first (as read) when not nil.
func (s *RedisStore) updateOrder(ctx context.Context, id string, first *Order, fn func(*Order) bool) (*Order, error) {
	return casUpdate(ctx, id, first, s.GetOrder, fn, func(o *Order, before int64, old Status) (bool, error) {
		raw, err := encodeOrder(o)
		if err != nil {
			return false, err
		}
		if !s.cluster() {
			// One node: the save and its index entries in one script.
			hasUser := flag(o.UserID != "")
			n, err := casIndexScript.Run(ctx, s.rdb, []string{s.orderKey(id), s.statusKey(old), s.statusKey(o.Status), s.userKey(o.UserID)},
				strconv.FormatInt(before, 10), raw, id, o.UpdatedAt.UnixMilli(), o.CreatedAt.UnixMilli(), hasUser).Int()
			if err != nil || n != 1 {
				return false, err
			}
			o.Version = before + 1
			return true, nil
		}
		n, err := casScript.Run(ctx, s.rdb, []string{s.orderKey(id)}, strconv.FormatInt(before, 10), raw).Int()
		if err != nil || n != 1 {
			return false, err
		}
		o.Version = before + 1
		s.index(ctx, o, old)
		return true, nil
	})
}

func (s *RedisStore) ordersByIDs(ctx context.Context, ids []string) ([]*Order, error) {
	out := make([]*Order, 0, len(ids))
	for _, id := range ids {
		o, err := s.GetOrder(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

func (s *RedisStore) OrdersByUser(ctx context.Context, userID string, limit int) ([]*Order, error) {
	ids, err := s.rdb.ZRevRange(ctx, s.userKey(userID), 0, int64(limit-1)).Result()
	if err != nil {
		return nil, err
	}
	return s.ordersByIDs(ctx, ids)
}

func (s *RedisStore) OrdersInStatus(ctx context.Context, st Status, before time.Time, limit int) ([]*Order, error) {
	ids, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: s.statusKey(st), Start: "-inf", Stop: "(" + strconv.FormatInt(before.UnixMilli(), 10), ByScore: true, Count: int64(limit)}).Result()
	if err != nil {
		return nil, err
	}
	orders, err := s.ordersByIDs(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := orders[:0]
	for _, o := range orders {
		if o.Status == st { // the index may lag a concurrent update
			out = append(out, o)
		}
	}
	return out, nil
}

func (s *RedisStore) Sold(ctx context.Context, productID string) (int, error) {
	n, err := s.rdb.HGet(ctx, s.soldKey(), productID).Int()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return n, err
}
