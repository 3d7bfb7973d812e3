package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paymux/paymux"
	redisstore "github.com/paymux/paymux/store/redis"
	"github.com/paymux/paymux/store/storetest"
)

// The tests in this file run against a real Redis Cluster of several
// masters (scripts/redis-cluster.sh): a one-shard Ring takes the same code
// paths but cannot show a CROSSSLOT refusal or a key sent to the wrong node.

func TestClusterConformance(t *testing.T) {
	t.Parallel()
	c := clusterClient(t)
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) paymux.Store {
			return redisstore.New(c, redisstore.Options{Prefix: clusterPrefix(t, c)})
		},
	})
}

func clusterSetup(t *testing.T) (*redisstore.Store, *redis.ClusterClient, string) {
	t.Helper()
	c := clusterClient(t)
	p := clusterPrefix(t, c)
	return redisstore.New(c, redisstore.Options{Prefix: p}), c, p
}

// The key layout, as TestKeysShareHashTag pins it down.
func eventKey(p, id string) string    { return p + ":e:3:sim:" + id }
func dueKey(p string) string          { return "{" + p + "}:due" }
func deliveryKey(p, id string) string { return "{" + p + "}:d:" + id }
func refKey(p, ref string) string     { return "{" + p + "}:r:3:sim:" + ref }

// eventOnAnotherMaster returns an event id whose key lives on another
// master than key, so a script touching both would cross nodes.
func eventOnAnotherMaster(t *testing.T, c *redis.ClusterClient, p, key, base string) string {
	t.Helper()
	other := masterOf(t, c, key)
	for i := range 1000 {
		id := fmt.Sprintf("%s_%d", base, i)
		if masterOf(t, c, eventKey(p, id)) != other {
			return id
		}
	}
	t.Fatalf("no event key off %s's master in 1000 tries: is the cluster one master?", key)
	return ""
}

// The tagged keys (records, payments, indexes, outbox) stay in one slot,
// while event keys spread over the masters: checked where the keys really
// are, so a client that sent everything to one node would fail here.
func TestClusterKeysSpreadOverMasters(t *testing.T) {
	t.Parallel()
	st, c, p := clusterSetup(t)
	ctx := context.Background()
	authorize(t, st, "order-1")
	if err := st.EnqueueDelivery(ctx, &paymux.Delivery{ID: "d1", NextAttemptAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	const events = 24
	for i := range events {
		if _, err := st.ClaimEvent(ctx, "sim", fmt.Sprintf("evt_%d", i), time.Minute); err != nil {
			t.Fatal(err)
		}
	}

	tagSlot, err := c.ClusterKeySlot(ctx, dueKey(p)).Result()
	if err != nil {
		t.Fatal(err)
	}
	tagMaster := masterOf(t, c, dueKey(p))
	tagged := keysByMaster(t, c, "{"+p+"}:*")
	if len(tagged) < 5 {
		t.Fatalf("only %d tagged keys written: %v", len(tagged), tagged)
	}
	for k, addr := range tagged {
		if addr != tagMaster {
			t.Errorf("tagged key %q is on %s, the tag's slot is on %s", k, addr, tagMaster)
		}
		if slot, err := c.ClusterKeySlot(ctx, k).Result(); err != nil || slot != tagSlot {
			t.Errorf("tagged key %q in slot %d (%v), want %d", k, slot, err, tagSlot)
		}
	}

	untagged := keysByMaster(t, c, p+":*")
	masters := map[string]int{}
	offTag := 0
	for k, addr := range untagged {
		if !strings.HasPrefix(k, p+":e:") {
			t.Errorf("unexpected untagged key %q", k)
		}
		if want := masterOf(t, c, k); addr != want {
			t.Errorf("event key %q is on %s but its slot is on %s", k, addr, want)
		}
		masters[addr]++
		if addr != tagMaster {
			offTag++
		}
	}
	if len(untagged) != events {
		t.Fatalf("%d event keys found on the masters, want %d", len(untagged), events)
	}
	// With 24 random slots over three masters, all on one would happen once
	// in 10^11 runs: this fails only if keys do not spread.
	if len(masters) < 2 || offTag == 0 {
		t.Fatalf("event keys on %d master(s) %v, %d off the tag's master: they do not spread", len(masters), masters, offTag)
	}
}

// The happy path of an authorisation is two round trips on Cluster too:
// every key of its scripts shares the hash tag.
func TestClusterRoundTripsPerAuthorisation(t *testing.T) {
	t.Parallel()
	st, c, _ := clusterSetup(t)
	hook := &redisstore.CountingHook{}
	c.AddHook(hook)
	authorize(t, st, "warm-up") // loads the scripts on the tag's master
	hook.Reset()
	authorize(t, st, "order-1")
	if n := hook.RoundTrips(); n != 2 {
		t.Fatalf("happy-path authorisation on Cluster took %d round trips, want 2", n)
	}
}

// eventHook watches the cluster client's commands for one event: it can fail
// the delivery's enqueue before it is sent (a connection lost on the way),
// and when the event's processed mark goes out it asks the servers, through
// another client, whether the delivery is there already.
type eventHook struct {
	observer      *redis.ClusterClient
	eventKey      string
	deliveryKey   string
	failEnqueue   atomic.Bool
	marks         atomic.Int32 // processed marks sent
	marksTooEarly atomic.Int32 // ... while the delivery was missing
}

var errInjected = errors.New("injected: connection lost before the enqueue was sent")

func (h *eventHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *eventHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *eventHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		args := cmd.Args()
		name := strings.ToLower(cmd.Name())
		touches := func(key string) bool {
			for _, a := range args {
				if s, ok := a.(string); ok && s == key {
					return true
				}
			}
			return false
		}
		if (name == "evalsha" || name == "eval") && touches(h.deliveryKey) && h.failEnqueue.Load() {
			return errInjected
		}
		if touches(h.eventKey) && len(args) > 2 && fmt.Sprint(args[2]) == "2" &&
			(name == "set" || name == "evalsha" || name == "eval") {
			h.marks.Add(1)
			if n, err := h.observer.Exists(ctx, h.deliveryKey).Result(); err != nil || n != 1 {
				h.marksTooEarly.Add(1)
			}
		}
		return next(ctx, cmd)
	}
}

// CompleteEventWithDelivery on Cluster, with the event key on another
// master than the outbox: no CROSSSLOT, two round trips (enqueue, then
// mark), the mark only ever sent once the delivery is on its server, and an
// enqueue that fails leaves the event in flight, not processed.
func TestClusterCompleteEventWithDelivery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, c, p := clusterSetup(t)
	counter := &redisstore.CountingHook{}
	c.AddHook(counter)
	for i := range 2 { // the first loads the scripts
		id := eventOnAnotherMaster(t, c, p, dueKey(p), fmt.Sprintf("evt%d", i))
		d := &paymux.Delivery{ID: "sim/" + id, Event: paymux.Event{Provider: "sim", ID: id}, NextAttemptAt: time.Now()}
		if claim, err := st.ClaimEvent(ctx, "sim", id, time.Minute); err != nil || claim != paymux.EventClaimed {
			t.Fatalf("ClaimEvent: %v %v", claim, err)
		}
		counter.Reset()
		if err := st.CompleteEventWithDelivery(ctx, "sim", id, time.Hour, d); err != nil {
			t.Fatalf("CompleteEventWithDelivery across masters: %v", err)
		}
		if n := counter.RoundTrips(); i == 1 && n != 2 {
			t.Fatalf("CompleteEventWithDelivery on Cluster took %d round trips, want 2", n)
		}
		if claim, err := st.ClaimEvent(ctx, "sim", id, time.Minute); err != nil || claim != paymux.EventDuplicate {
			t.Fatalf("event after CompleteEventWithDelivery: %v %v; want duplicate", claim, err)
		}
		if got, err := st.GetDelivery(ctx, d.ID); err != nil || got.State != paymux.DeliveryPending {
			t.Fatalf("delivery after CompleteEventWithDelivery: %+v %v", got, err)
		}
	}
	due, err := st.ClaimDueDeliveries(ctx, time.Now().Add(time.Second), time.Minute, 10)
	if err != nil || len(due) != 2 {
		t.Fatalf("ClaimDueDeliveries = %d deliveries, %v; want both", len(due), err)
	}

	// Its own client, so the hook sees this part's commands only.
	hc := clusterClient(t)
	st2 := redisstore.New(hc, redisstore.Options{Prefix: p})
	id := eventOnAnotherMaster(t, c, p, dueKey(p), "evt_fault")
	d := &paymux.Delivery{ID: "sim/" + id, Event: paymux.Event{Provider: "sim", ID: id}, NextAttemptAt: time.Now()}
	hook := &eventHook{observer: c, eventKey: eventKey(p, id), deliveryKey: deliveryKey(p, d.ID)}
	hc.AddHook(hook)
	if claim, err := st2.ClaimEvent(ctx, "sim", id, time.Minute); err != nil || claim != paymux.EventClaimed {
		t.Fatalf("ClaimEvent: %v %v", claim, err)
	}
	hook.failEnqueue.Store(true)
	if err := st2.CompleteEventWithDelivery(ctx, "sim", id, time.Hour, d); !errors.Is(err, errInjected) {
		t.Fatalf("CompleteEventWithDelivery with a failed enqueue: %v, want the enqueue's error", err)
	}
	hook.failEnqueue.Store(false)
	if hook.marks.Load() != 0 {
		t.Fatal("the event was marked processed although its delivery's enqueue failed")
	}
	if claim, err := st2.ClaimEvent(ctx, "sim", id, time.Minute); err != nil || claim != paymux.EventBusy {
		t.Fatalf("event after a failed enqueue: %v %v; want busy (still in flight)", claim, err)
	}
	if _, err := st2.GetDelivery(ctx, d.ID); !errors.Is(err, paymux.ErrNotFound) {
		t.Fatalf("delivery after a failed enqueue: %v, want ErrNotFound", err)
	}
	if err := st2.CompleteEventWithDelivery(ctx, "sim", id, time.Hour, d); err != nil {
		t.Fatal(err)
	}
	if hook.marks.Load() != 1 || hook.marksTooEarly.Load() != 0 {
		t.Fatalf("%d marks sent, %d before the delivery was stored; want 1 and 0", hook.marks.Load(), hook.marksTooEarly.Load())
	}
	if claim, err := st2.ClaimEvent(ctx, "sim", id, time.Minute); err != nil || claim != paymux.EventDuplicate {
		t.Fatalf("event after the retry: %v %v; want duplicate", claim, err)
	}
}

// ClaimEventForPayment on Cluster, with the event key on another master than
// the reference index: it claims in one round trip without CROSSSLOT and
// leaves the payment's lookup to the caller, which still finds it.
func TestClusterClaimEventForPayment(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, c, p := clusterSetup(t)
	pay := &paymux.Payment{ID: "pay-1", IdempotencyKey: "k1", Provider: "sim", ProviderRef: "ref_1",
		Status: paymux.StatusAuthorized, Amount: paymux.NewMoney(100, "EUR")}
	if err := st.SavePayment(ctx, pay, 0); err != nil {
		t.Fatal(err)
	}
	hook := &redisstore.CountingHook{}
	c.AddHook(hook)
	for i := range 2 { // the first loads the script
		id := eventOnAnotherMaster(t, c, p, refKey(p, pay.ProviderRef), fmt.Sprintf("evt%d", i))
		hook.Reset()
		claim, got, err := st.ClaimEventForPayment(ctx, "sim", id, time.Minute, pay.ProviderRef)
		if err != nil || claim != paymux.EventClaimed {
			t.Fatalf("ClaimEventForPayment across masters: %v %v", claim, err)
		}
		if got != nil {
			t.Fatalf("ClaimEventForPayment on Cluster returned %+v; the lookup is the caller's", got)
		}
		if n := hook.RoundTrips(); i == 1 && n != 1 {
			t.Fatalf("ClaimEventForPayment on Cluster took %d round trips, want 1", n)
		}
		if found, err := st.GetPaymentByProviderRef(ctx, "sim", pay.ProviderRef); err != nil || found.ID != pay.ID {
			t.Fatalf("the caller's lookup: %+v %v", found, err)
		}
		if claim, _, err := st.ClaimEventForPayment(ctx, "sim", id, time.Minute, pay.ProviderRef); err != nil || claim != paymux.EventBusy {
			t.Fatalf("second claim in flight: %v %v; want busy", claim, err)
		}
		if err := st.CompleteEvent(ctx, "sim", id, time.Hour); err != nil {
			t.Fatal(err)
		}
		if claim, _, err := st.ClaimEventForPayment(ctx, "sim", id, time.Minute, pay.ProviderRef); err != nil || claim != paymux.EventDuplicate {
			t.Fatalf("claim of a processed event: %v %v; want duplicate", claim, err)
		}
	}
}

// The batch shortcuts of the dispatcher stay one round trip on Cluster:
// payment and delivery keys share the tag, so one node answers the whole
// pipeline or script.
func TestClusterBatchesAreOneRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, c, _ := clusterSetup(t)
	var ids, dids []string
	for i := range 50 {
		p := &paymux.Payment{ID: fmt.Sprintf("pay-%d", i), IdempotencyKey: fmt.Sprintf("k%d", i), Provider: "sim",
			Status: paymux.StatusAuthorized, Amount: paymux.NewMoney(100, "EUR")}
		if err := st.SavePayment(ctx, p, 0); err != nil {
			t.Fatal(err)
		}
		d := &paymux.Delivery{ID: fmt.Sprintf("d%d", i), NextAttemptAt: time.Now()}
		if err := st.EnqueueDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
		ids, dids = append(ids, p.ID), append(dids, d.ID)
	}
	_ = st.CompleteDeliveries(ctx, []string{"warm-up"}) // loads the script
	hook := &redisstore.CountingHook{}
	c.AddHook(hook)
	got, err := st.GetPayments(ctx, append(ids, "missing"))
	if err != nil || len(got) != len(ids) {
		t.Fatalf("GetPayments = %d payments, %v; want %d", len(got), err, len(ids))
	}
	if n := hook.RoundTrips(); n != 1 {
		t.Fatalf("GetPayments of %d ids on Cluster took %d round trips, want 1", len(ids), n)
	}
	hook.Reset()
	if err := st.CompleteDeliveries(ctx, dids); err != nil {
		t.Fatal(err)
	}
	if n := hook.RoundTrips(); n != 1 {
		t.Fatalf("CompleteDeliveries of %d ids on Cluster took %d round trips, want 1", len(dids), n)
	}
	if due, err := st.ClaimDueDeliveries(ctx, time.Now().Add(time.Second), time.Minute, 100); err != nil || len(due) != 0 {
		t.Fatalf("after CompleteDeliveries: %d still due, %v", len(due), err)
	}
}

// Two instances' breakers share their state through the cluster, each
// with its own client, as in TestBreakerStoreSharesState.
func TestClusterBreakerStoreSharesState(t *testing.T) {
	t.Parallel()
	c1 := clusterClient(t)
	c2 := clusterClient(t)
	breakersShareState(t, c1, c2, clusterPrefix(t, c1))
}

// On a Cluster a store with MinReplicas writes to the master of each
// write's slot and waits there. These masters have no replicas, so every
// write runs and is reported as unconfirmed; the records are where the
// slots put them, tagged keys and event keys alike.
func TestClusterMinReplicasWaitsOnTheSlotsMaster(t *testing.T) {
	t.Parallel()
	c := clusterClient(t)
	p := clusterPrefix(t, c)
	st := redisstore.New(c, redisstore.Options{Prefix: p, MinReplicas: 1, ReplicaWait: 20 * time.Millisecond})
	plain := redisstore.New(c, redisstore.Options{Prefix: p})
	ctx := context.Background()
	if _, _, err := st.ClaimIdempotency(ctx, paymux.ClaimParams{Key: "k", Fingerprint: "fp", Token: "t1", Lease: time.Minute}); !errors.Is(err, redisstore.ErrNotReplicated) {
		t.Fatalf("claim: %v; want ErrNotReplicated", err)
	}
	if rec, err := plain.GetIdempotency(ctx, "k"); err != nil || rec.Token != "t1" {
		t.Fatalf("the claim did not run on its master: %+v, %v", rec, err)
	}
	for i := range 8 { // event keys spread over the masters
		id := fmt.Sprintf("evt_%d", i)
		if _, err := st.ClaimEvent(ctx, "sim", id, time.Minute); !errors.Is(err, redisstore.ErrNotReplicated) {
			t.Fatalf("ClaimEvent(%s): %v; want ErrNotReplicated", id, err)
		}
		if claim, err := plain.ClaimEvent(ctx, "sim", id, time.Minute); err != nil || claim != paymux.EventBusy {
			t.Fatalf("event %s did not run on its master: %v, %v", id, claim, err)
		}
	}
}

// A store with MinReplicas writes past the cluster client's routing, so it
// must handle a stale slot map itself: Redis answers MOVED without running
// the write, the store refreshes the map and writes again, to the right
// master, once.
func TestClusterMinReplicasFollowsAMovedSlot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	good := clusterClient(t)
	p := clusterPrefix(t, good)
	slots, err := good.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	var loads atomic.Int32
	stale := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: good.Options().Addrs,
		// The first map puts every slot on one master, as after a
		// resharding the client has not heard of.
		ClusterSlots: func(context.Context) ([]redis.ClusterSlot, error) {
			if loads.Add(1) == 1 {
				return []redis.ClusterSlot{{Start: 0, End: 16383, Nodes: slots[0].Nodes}}, nil
			}
			return slots, nil
		},
	})
	t.Cleanup(func() { _ = stale.Close() })
	st := redisstore.New(stale, redisstore.Options{Prefix: p, MinReplicas: 1, ReplicaWait: 20 * time.Millisecond})
	plain := redisstore.New(good, redisstore.Options{Prefix: p})
	for i := range 8 { // event keys on every master, so some slot moved
		id := fmt.Sprintf("evt_%d", i)
		if _, err := st.ClaimEvent(ctx, "sim", id, time.Minute); !errors.Is(err, redisstore.ErrNotReplicated) {
			t.Fatalf("ClaimEvent(%s) through a stale slot map: %v; want it run, then ErrNotReplicated", id, err)
		}
		if claim, err := plain.ClaimEvent(ctx, "sim", id, time.Minute); err != nil || claim != paymux.EventBusy {
			t.Fatalf("event %s after the stale map: %v, %v; want it claimed", id, claim, err)
		}
	}
	if loads.Load() < 2 {
		t.Fatalf("the slot map was loaded %d times: no write met a moved slot", loads.Load())
	}
}
