package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
)

// A script that writes must reach Redis at most once.
//
// go-redis retries a command whose connection broke, or whose reply timed
// out, after the command was written (Options.MaxRetries, 3 by default).
// For a script that writes, that retry is a second run, and its reply
// describes the state the first run left: a claim the caller has just
// taken reads as held by another request, a completion as a lost claim, a
// saved payment as a version conflict, a leased batch of deliveries as
// leased again to nobody. The callers would act on a false answer.
//
// So every writing script goes through onceScripter: its commands say
// NoRetry, which Client, ClusterClient, Ring and the Sentinel client all
// honour (Cluster still follows MOVED and ASK, which the server sends
// without running the command). A connection that fails after the command
// was written gives the caller an error saying that the outcome is
// unknown, and the orchestrator fails closed on it (ErrStoreUnavailable):
// the idempotency key then settles the request on its next try. Reads keep
// go-redis's retries; running a read twice changes nothing.

// onceScripter is a redis.Scripter whose EVAL and EVALSHA are sent at most
// once. The other methods are the client's own.
type onceScripter struct {
	redis.UniversalClient
	// replicas, when positive, is how many replicas must acknowledge each
	// write within replicaWait (Options.MinReplicas).
	replicas    int
	replicaWait time.Duration
}

// AtMostOnce returns a redis.Scripter on c that sends each EVAL and EVALSHA
// at most once, as the Store does with its own writing scripts. Run a
// script that writes through it (script.Run(ctx, redisstore.AtMostOnce(c),
// ...)) when a second run would answer differently from the first; a lost
// reply then gives an *OutcomeUnknownError.
func AtMostOnce(c redis.UniversalClient) redis.Scripter {
	return onceScripter{UniversalClient: c}
}

// noRetryCmd is a *redis.Cmd that go-redis must not send a second time.
type noRetryCmd struct {
	*redis.Cmd
}

func (noRetryCmd) NoRetry() bool { return true }

// sendAttempts bounds the tries of a script that never left this process:
// a failed dial or an exhausted pool. Those are the failures go-redis would
// have retried safely.
const sendAttempts = 3

func (o onceScripter) Eval(ctx context.Context, src string, keys []string, args ...any) *redis.Cmd {
	return o.eval(ctx, "eval", src, keys, args)
}

func (o onceScripter) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return o.eval(ctx, "evalsha", sha1, keys, args)
}

func (o onceScripter) eval(ctx context.Context, name, payload string, keys []string, args []any) *redis.Cmd {
	cmdArgs := make([]any, 0, 3+len(keys)+len(args))
	cmdArgs = append(cmdArgs, name, payload, len(keys))
	for _, k := range keys {
		cmdArgs = append(cmdArgs, k)
	}
	cmdArgs = append(cmdArgs, args...)
	var firstKey int8
	if len(keys) > 0 {
		firstKey = 3 // Cluster routes by the first key
	}
	return o.write(ctx, cmdArgs, firstKey)
}

// write sends the command built from args at most once, with the
// replicas' acknowledgement when the store asks for it. firstKey is the
// position of its first key, 0 for none.
func (o onceScripter) write(ctx context.Context, args []any, firstKey int8) *redis.Cmd {
	var cmd *redis.Cmd
	for attempt := range sendAttempts {
		cmd = redis.NewCmd(ctx, args...)
		if firstKey > 0 {
			cmd.SetFirstKeyPos(firstKey)
		}
		err := o.send(ctx, cmd, firstKey)
		if err == nil || !neverSent(err) || ctx.Err() != nil {
			break
		}
		var moved *slotMovedError
		if errors.As(err, &moved) {
			// The cluster client reloads its slot map in the background.
			select {
			case <-time.After(20 * time.Millisecond << attempt):
			case <-ctx.Done():
			}
		}
	}
	if err := cmd.Err(); err != nil && mayHaveRun(err) {
		cmd.SetErr(&OutcomeUnknownError{Err: err})
	}
	return cmd
}

// send writes cmd once. With replicas it sends WAIT behind it on the same
// connection, in the same round trip: WAIT counts the replicas that have
// the connection's writes so far.
func (o onceScripter) send(ctx context.Context, cmd *redis.Cmd, firstKey int8) error {
	if o.replicas <= 0 {
		return o.Process(ctx, noRetryCmd{cmd})
	}
	var pipe redis.Pipeliner
	var cluster *redis.ClusterClient
	switch c := o.UniversalClient.(type) {
	case *redis.Client:
		pipe = c.Pipeline()
	case *redis.ClusterClient:
		// The cluster client would send WAIT to a node of its choosing:
		// write to the master of the command's slot directly instead.
		if firstKey == 0 {
			cmd.SetErr(fmt.Errorf("%w: a write without a key has no slot", ErrMinReplicasUnsupported))
			return cmd.Err()
		}
		key, _ := cmd.Args()[firstKey].(string)
		master, err := c.MasterForKey(ctx, key)
		if err != nil {
			cmd.SetErr(err)
			return err
		}
		pipe, cluster = master.Pipeline(), c
	default:
		cmd.SetErr(ErrMinReplicasUnsupported)
		return cmd.Err()
	}
	acks := redis.NewCmd(ctx, "wait", o.replicas, o.replicaWait.Milliseconds())
	_ = pipe.Process(ctx, noRetryCmd{cmd})
	_ = pipe.Process(ctx, noRetryCmd{acks})
	_, _ = pipe.Exec(ctx)
	if err := cmd.Err(); err != nil {
		if cluster != nil && (redis.HasErrorPrefix(err, "MOVED") || redis.HasErrorPrefix(err, "ASK")) {
			// Redis did not run a command it redirected. The slot map is
			// stale and this path does not follow redirections: refresh
			// the map and say that the write did not run.
			cluster.ReloadState(ctx)
			cmd.SetErr(&slotMovedError{err})
		}
		return cmd.Err()
	}
	n, err := acks.Int64()
	switch {
	case err != nil:
		cmd.SetErr(fmt.Errorf("%w: WAIT: %w", ErrNotReplicated, err))
	case n < int64(o.replicas):
		cmd.SetErr(fmt.Errorf("%w: %d of %d replicas within %v", ErrNotReplicated, n, o.replicas, o.replicaWait))
	}
	return cmd.Err()
}

// slotMovedError is a write the Cluster redirected: it did not run.
type slotMovedError struct{ err error }

func (e *slotMovedError) Error() string {
	return "redisstore: slot moved, write not run: " + e.err.Error()
}
func (e *slotMovedError) Unwrap() error { return e.err }

var (
	// ErrNotReplicated is wrapped by the OutcomeUnknownError of a write
	// that ran on the master but that fewer than Options.MinReplicas
	// replicas acknowledged in time: a failover now could lose it.
	ErrNotReplicated = errors.New("redisstore: write not acknowledged by enough replicas")
	// ErrMinReplicasUnsupported is returned by every write of a store with
	// Options.MinReplicas on a client other than a single server, Sentinel
	// or Cluster (a Ring): WAIT must follow a write on its own connection.
	ErrMinReplicasUnsupported = errors.New("redisstore: MinReplicas needs a single-server, Sentinel or Cluster client")
)

// OutcomeUnknownError is returned by a store operation whose write was
// sent to Redis but may not stand: its reply never came back (the
// connection failed, the reply timed out or the context ended), or it ran
// but fewer replicas than Options.MinReplicas confirmed it
// (ErrNotReplicated). It ran once or not at all; it was not sent again.
type OutcomeUnknownError struct {
	Err error
}

func (e *OutcomeUnknownError) Error() string {
	return fmt.Sprintf("redisstore: outcome of a write unknown (sent once, not again): %v", e.Err)
}

func (e *OutcomeUnknownError) Unwrap() error { return e.Err }

// neverSent reports whether err means the command did not run: it did not
// leave this process, or the Cluster redirected it.
func neverSent(err error) bool {
	var op *net.OpError
	var moved *slotMovedError
	return errors.Is(err, redis.ErrPoolTimeout) || (errors.As(err, &op) && op.Op == "dial") || errors.As(err, &moved)
}

// mayHaveRun reports whether err leaves the script's outcome open: not a
// reply from the server (which ran the script, or refused it), and not a
// failure before sending.
func mayHaveRun(err error) bool {
	var reply redis.Error
	return !errors.As(err, &reply) && !neverSent(err)
}
