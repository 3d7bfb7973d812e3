package paymux

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
)

// The idempotency protocol, for every operation:
//
//	claim (store) -> execute (provider) -> complete (store)
//
// The claim is taken before any provider call; without it there is no call
// (fail closed). It stores the payment with the attempt about to be made and
// that attempt's provider key, so a crash mid-call leaves enough to ask the
// provider what happened. The completion saves the payment and marks the key
// done in one store call. A request that finds the key completed gets the
// payment back (a replay); one that finds it in flight gets ErrInProgress;
// one whose request differs gets ErrIdempotencyMismatch.

// Idempotency key namespaces, so that a shop's order id used as the
// authorisation key can never collide with a capture or refund key.
const (
	nsAuthorize = "authorize/"
	nsCapture   = "capture/"
	nsRefund    = "refund/"
	nsVoid      = "void/"
)

// Fingerprint returns the hash of the fields that decide what is charged.
// The same idempotency key with a different fingerprint is refused. Buyer
// details that may change on a reconnect (IP, email, metadata) are left out.
func Fingerprint(req *PaymentRequest) string {
	var stack [256]byte
	b := stack[:0]
	field := func(s string) {
		b = strconv.AppendInt(b, int64(len(s)), 10)
		b = append(b, ':')
		b = append(b, s...)
	}
	field(req.IdempotencyKey)
	b = strconv.AppendInt(b, req.Amount.Amount, 10)
	field(string(req.Amount.Currency))
	field(string(req.Method.Type))
	field(req.Method.Token)
	field(req.Country)
	field(req.Campaign)
	field(string(captureMode(req.Capture)))
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

func opFingerprint(parts ...string) string {
	var stack [256]byte
	b := stack[:0]
	for _, p := range parts {
		b = strconv.AppendInt(b, int64(len(p)), 10)
		b = append(b, ':')
		b = append(b, p...)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// ProviderKey derives the provider idempotency key of one attempt from
// (paymux key, provider, operation, attempt number). It is deterministic, so
// a process that takes over a crashed claim derives the same key, and short
// enough for every provider (Adyen allows 64 characters).
func ProviderKey(paymentKey, provider string, op Operation, attempt int) string {
	var stack [256]byte
	b := append(stack[:0], paymentKey...)
	b = append(b, 0)
	b = append(b, provider...)
	b = append(b, 0)
	b = append(b, op...)
	b = append(b, 0)
	b = strconv.AppendInt(b, int64(attempt), 10)
	sum := sha256.Sum256(b)
	var out [4 + 40]byte
	copy(out[:], "pmx_")
	hex.Encode(out[4:], sum[:20])
	return string(out[:])
}

// PaymentID derives the payment id from the authorisation key, so every
// process agrees on it without a store round trip.
func PaymentID(idempotencyKey string) string {
	var stack [256]byte
	b := append(append(stack[:0], "payment\x00"...), idempotencyKey...)
	sum := sha256.Sum256(b)
	var out [4 + 26]byte
	copy(out[:], "pay_")
	hex.Encode(out[4:], sum[:13])
	return string(out[:])
}

// Claim tokens only need to be unique, not secret: a random per-process
// prefix and a counter give that without reading the system's randomness
// on every claim.
var (
	tokenPrefix = func() string {
		var b [8]byte
		_, _ = rand.Read(b[:])
		return hex.EncodeToString(b[:])
	}()
	tokenSeq atomic.Uint64
)

func newToken() string {
	var out [16 + 16]byte
	copy(out[:], tokenPrefix)
	n := tokenSeq.Add(1)
	const digits = "0123456789abcdef"
	for i := len(out) - 1; i >= 16; i-- {
		out[i] = digits[n&15]
		n >>= 4
	}
	return string(out[:])
}

// storeErr turns a store failure into ErrStoreUnavailable, keeping the
// store's own sentinels visible.
func storeErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrVersionConflict) || errors.Is(err, ErrClaimLost) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s: %w", ErrStoreUnavailable, op, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrStoreUnavailable, op, err)
}

// claimResult is what claimOperation found.
type claimResult struct {
	rec     *IdempotencyRecord
	token   string
	claimed bool
}

func (o *Orchestrator) claim(ctx context.Context, key, fingerprint string, snapshot *Payment) (claimResult, error) {
	token := newToken()
	rec, claimed, err := o.cfg.Store.ClaimIdempotency(ctx, ClaimParams{
		Key:         key,
		Fingerprint: fingerprint,
		Token:       token,
		Lease:       o.cfg.ClaimLease,
		TTL:         o.cfg.IdempotencyTTL,
		Payment:     snapshot,
	})
	if err != nil {
		return claimResult{}, storeErr("claim", err)
	}
	if rec == nil {
		return claimResult{}, fmt.Errorf("%w: claim returned no record", ErrStoreUnavailable)
	}
	if !claimed {
		if rec.Fingerprint != fingerprint {
			return claimResult{}, fmt.Errorf("%w: key %q", ErrIdempotencyMismatch, key)
		}
		if rec.State != ClaimCompleted {
			return claimResult{}, fmt.Errorf("%w: key %q", ErrInProgress, key)
		}
	}
	return claimResult{rec: rec, token: token, claimed: claimed}, nil
}

// replay returns the payment a completed key produced, as it is now, with
// the error the original call returned.
func (o *Orchestrator) replay(ctx context.Context, rec *IdempotencyRecord) (*Payment, error) {
	p, err := o.cfg.Store.GetPayment(ctx, rec.PaymentID)
	if err != nil {
		if rec.Payment == nil {
			return nil, storeErr("replay", err)
		}
		p = rec.Payment.Clone()
	}
	return p, paymentError(p)
}

// paymentError rebuilds the error a finished payment stands for, so replays
// answer like the original call did.
func paymentError(p *Payment) error {
	switch p.Status {
	case StatusFailed:
		if p.FailureCode == "risk_refused" {
			return ErrRiskRefused
		}
		return &ProviderError{Provider: p.Provider, Operation: OpAuthorize, Kind: p.FailureKind, Code: p.FailureCode, Message: "replayed result"}
	case StatusUnknown:
		return &ProviderError{Provider: p.Provider, Operation: OpAuthorize, Kind: KindOutcomeUnknown, Code: p.FailureCode, Message: "outcome unknown; reconcile with Sync"}
	}
	return nil
}
