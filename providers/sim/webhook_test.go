package sim_test

import (
	"bytes"
	"errors"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/sim"
)

var update = flag.Bool("update", false, "rewrite the golden webhook bodies in testdata/webhooks")

// eventTypes parses every webhook and returns the event types in order.
func eventTypes(t *testing.T, p *sim.Provider, hooks []webhook) string {
	t.Helper()
	var types []string
	for _, h := range hooks {
		evs, err := p.ParseWebhook(ctx, h.header, h.body)
		if err != nil {
			t.Fatalf("ParseWebhook of the sim's own webhook: %v\n%s", err, h.body)
		}
		for _, ev := range evs {
			types = append(types, string(ev.Type))
		}
	}
	return strings.Join(types, " ")
}

func TestWebhooksFollowStateChanges(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	auto, _ := p.Authorize(ctx, authReq("order-1", sim.TokenApprove, ""))
	manual, _ := p.Authorize(ctx, authReq("order-2", sim.TokenApprove, paymux.CaptureManual))
	_, _ = p.Capture(ctx, &paymux.CaptureRequest{Reference: manual.Reference, ProviderKey: "c1", Amount: paymux.NewMoney(300, "EUR")})
	_, _ = p.Capture(ctx, &paymux.CaptureRequest{Reference: manual.Reference, ProviderKey: "c2", Amount: paymux.NewMoney(200, "EUR")})
	_, _ = p.Refund(ctx, &paymux.RefundRequest{Reference: manual.Reference, ProviderKey: "r1", Amount: paymux.NewMoney(100, "EUR")})
	_, _ = p.Refund(ctx, &paymux.RefundRequest{Reference: manual.Reference, ProviderKey: "r2", Amount: paymux.NewMoney(150, "EUR")})
	voided, _ := p.Authorize(ctx, authReq("order-3", sim.TokenApprove, paymux.CaptureManual))
	_, _ = p.Void(ctx, &paymux.VoidRequest{Reference: voided.Reference, ProviderKey: "v1"})
	_, _ = p.Authorize(ctx, authReq("order-4", sim.TokenInsufficientFunds, ""))
	// A replay changes nothing and sends nothing.
	_, _ = p.Capture(ctx, &paymux.CaptureRequest{Reference: manual.Reference, ProviderKey: "c1", Amount: paymux.NewMoney(300, "EUR")})

	hooks := b.webhooks()
	if got, want := eventTypes(t, p, hooks), "authorized captured authorized captured captured refunded refunded authorized voided failed"; got != want {
		t.Fatalf("webhooks:\n got %s\nwant %s", got, want)
	}
	var all []paymux.Event
	seen := map[string]bool{}
	for _, h := range hooks {
		evs, _ := p.ParseWebhook(ctx, h.header, h.body)
		for _, ev := range evs {
			if seen[ev.ID] {
				t.Fatalf("event id %s sent twice", ev.ID)
			}
			seen[ev.ID] = true
			if ev.Provider != p.Name() || !ev.OccurredAt.Equal(b.clock.Now()) || !bytes.Equal(ev.Raw, h.body) {
				t.Fatalf("event %+v", ev)
			}
		}
		all = append(all, evs...)
	}
	if all[1].ProviderRef != auto.Reference || all[1].PaymentKey != "order-1" || all[1].Amount != paymux.NewMoney(1000, "EUR") {
		t.Fatalf("captured event %+v", all[1])
	}
	// Captured and refunded events carry running totals.
	for i, want := range map[int]int64{3: 300, 4: 500, 5: 100, 6: 250} {
		if all[i].Amount.Amount != want {
			t.Errorf("event %d (%s) amount %d, want %d", i, all[i].Type, all[i].Amount.Amount, want)
		}
	}
	if f := all[9]; f.Success || f.Code != sim.DeclineInsufficientFunds {
		t.Errorf("failed event %+v", f)
	}
	if err := p.SendEvent(paymux.EventDisputeOpened, auto.Reference); err != nil {
		t.Fatal(err)
	}
	if got := eventTypes(t, p, b.webhooks()[len(hooks):]); got != "dispute_opened" {
		t.Fatalf("SendEvent: %s", got)
	}
	if err := p.SendEvent(paymux.EventDisputeOpened, "nope"); !errors.Is(err, paymux.ErrNotFound) {
		t.Fatalf("SendEvent of an unknown reference: %v", err)
	}
}

func TestVerifySignature(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	body := []byte(`{"id":"simevt_1","type":"captured","created":1,"reference":"simpay_1","amount":1000,"currency":"EUR","success":true}`)
	good := sim.Signature(testSecret, body, now)
	goodV1 := good[strings.Index(good, "v1="):]
	other := sim.Signature("simsec_other", body, now)
	otherV1 := other[strings.Index(other, "v1="):]
	ts := "t=" + good[2:strings.Index(good, ",")]
	tests := []struct {
		name    string
		header  http.Header
		secret  paymux.Secret
		at      time.Time
		wantErr error
	}{
		{"valid", sim.SignWebhook(testSecret, body, now), testSecret, now, nil},
		{"valid within tolerance", sim.SignWebhook(testSecret, body, now), testSecret, now.Add(4 * time.Minute), nil},
		{"rotation: second v1 matches", http.Header{sim.SignatureHeader: {ts + "," + otherV1 + "," + goodV1}}, testSecret, now, nil},
		{"split over two header lines", http.Header{sim.SignatureHeader: {ts, goodV1}}, testSecret, now, nil},
		{"no header", http.Header{}, testSecret, now, paymux.ErrWebhookNotSigned},
		{"empty header", http.Header{sim.SignatureHeader: {""}}, testSecret, now, paymux.ErrWebhookNotSigned},
		{"garbage", http.Header{sim.SignatureHeader: {"garbage"}}, testSecret, now, paymux.ErrWebhookBadSignature},
		{"no timestamp", http.Header{sim.SignatureHeader: {goodV1}}, testSecret, now, paymux.ErrWebhookBadSignature},
		{"no v1", http.Header{sim.SignatureHeader: {ts + ",v0=abc"}}, testSecret, now, paymux.ErrWebhookBadSignature},
		{"two timestamps", http.Header{sim.SignatureHeader: {ts + ",t=5," + goodV1}}, testSecret, now, paymux.ErrWebhookBadSignature},
		{"timestamp with a sign", http.Header{sim.SignatureHeader: {"t=+" + ts[2:] + "," + goodV1}}, testSecret, now, paymux.ErrWebhookBadSignature},
		{"wrong secret", sim.SignWebhook("simsec_other", body, now), testSecret, now, paymux.ErrWebhookBadSignature},
		{"no secret configured", sim.SignWebhook("", body, now), "", now, paymux.ErrWebhookBadSignature},
		{"too old", sim.SignWebhook(testSecret, body, now), testSecret, now.Add(6 * time.Minute), paymux.ErrWebhookTooOld},
		{"from the future", sim.SignWebhook(testSecret, body, now), testSecret, now.Add(-6 * time.Minute), paymux.ErrWebhookTooOld},
		{"old timestamp swapped in", http.Header{sim.SignatureHeader: {"t=1," + goodV1}}, testSecret, now, paymux.ErrWebhookBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := sim.VerifySignature(tt.secret, tt.header, body, tt.at, sim.DefaultTolerance)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("got %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), goodV1[3:]) || strings.Contains(err.Error(), testSecret.Reveal()) {
				t.Fatalf("error leaks the secret or the expected signature: %v", err)
			}
		})
	}
	tampered := bytes.Replace(body, []byte("1000"), []byte("9000"), 1)
	if err := sim.VerifySignature(testSecret, sim.SignWebhook(testSecret, body, now), tampered, now, sim.DefaultTolerance); !errors.Is(err, paymux.ErrWebhookBadSignature) {
		t.Fatalf("tampered body: %v", err)
	}
}

func TestParseWebhookBodies(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	now := b.clock.Now()
	tests := []struct {
		name    string
		body    string
		wantErr error
		want    paymux.EventType
	}{
		{"not json", `captured`, paymux.ErrWebhookMalformed, ""},
		{"no id", `{"type":"captured","reference":"r"}`, paymux.ErrWebhookMalformed, ""},
		{"no reference", `{"id":"e","type":"captured"}`, paymux.ErrWebhookMalformed, ""},
		{"negative amount", `{"id":"e","type":"captured","reference":"r","amount":-1,"currency":"EUR"}`, paymux.ErrWebhookMalformed, ""},
		{"unknown currency", `{"id":"e","type":"captured","reference":"r","amount":1,"currency":"XXX"}`, paymux.ErrWebhookMalformed, ""},
		{"unknown type", `{"id":"e","type":"payout.paid","reference":"r"}`, nil, paymux.EventOther},
		{"extra fields", `{"id":"e","type":"refunded","reference":"r","new_field":{"x":1}}`, nil, paymux.EventRefunded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			evs, err := p.ParseWebhook(ctx, p.SignWebhook([]byte(tt.body), now), []byte(tt.body))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(evs) != 1 || evs[0].Type != tt.want {
				t.Fatalf("got %+v, %v", evs, err)
			}
		})
	}
	big := bytes.Repeat([]byte(" "), sim.MaxWebhookBody+1)
	if _, err := p.ParseWebhook(ctx, p.SignWebhook(big, now), big); !errors.Is(err, paymux.ErrWebhookTooLarge) {
		t.Fatalf("oversized body: %v", err)
	}
}

// TestRecordedWebhooks keeps the wire format stable: the golden bodies in
// testdata/webhooks are what the sim sends, and they parse. Run with
// -update after a deliberate format change.
func TestRecordedWebhooks(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	payloads := map[string]sim.WebhookPayload{
		"authorized.json": {ID: "simevt_0a1b2c3d4e_3", Type: paymux.EventAuthorized, Created: created.Unix(), Reference: "simpay_0a1b2c3d4e_1", PaymentKey: "order-1001", Amount: 4999, Currency: "EUR", Status: paymux.StatusAuthorized, Success: true},
		"captured.json":   {ID: "simevt_0a1b2c3d4e_4", Type: paymux.EventCaptured, Created: created.Unix(), Reference: "simpay_0a1b2c3d4e_1", PaymentKey: "order-1001", Amount: 2999, Currency: "EUR", Status: paymux.StatusCaptured, Success: true},
		"refunded.json":   {ID: "simevt_0a1b2c3d4e_6", Type: paymux.EventRefunded, Created: created.Unix(), Reference: "simpay_0a1b2c3d4e_1", PaymentKey: "order-1001", Amount: 1000, Currency: "EUR", Status: paymux.StatusRefunded, Success: true},
		"failed.json":     {ID: "simevt_0a1b2c3d4e_8", Type: paymux.EventFailed, Created: created.Unix(), Reference: "simpay_0a1b2c3d4e_7", PaymentKey: "order-1002", Amount: 1500, Currency: "JPY", Status: paymux.StatusFailed, Code: sim.DeclineStolenCard},
	}
	p := sim.New(sim.Config{WebhookSecret: testSecret, Clock: func() time.Time { return created.Add(time.Minute) }})
	for name, pl := range payloads {
		path := filepath.Join("testdata", "webhooks", name)
		body := sim.EncodeWebhook(pl)
		if *update {
			if err := os.WriteFile(path, append(body, '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		recorded, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		recorded = bytes.TrimSuffix(recorded, []byte("\n"))
		if !bytes.Equal(recorded, body) {
			t.Errorf("%s: the sim now sends\n%s\nbut testdata has\n%s", name, body, recorded)
		}
		evs, err := p.ParseWebhook(ctx, sim.SignWebhook(testSecret, recorded, created), recorded)
		if err != nil || len(evs) != 1 || evs[0].Type != pl.Type || evs[0].Amount.Amount != pl.Amount || evs[0].Code != pl.Code {
			t.Errorf("%s: %+v, %v", name, evs, err)
		}
	}
}

// FuzzParseWebhook feeds ParseWebhook outside bytes. With sign set the body
// is validly signed, so the fuzzer reaches the JSON decoding; without it,
// nothing may ever be accepted.
func FuzzParseWebhook(f *testing.F) {
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	for _, name := range []string{"authorized.json", "captured.json", "refunded.json", "failed.json"} {
		body, err := os.ReadFile(filepath.Join("testdata", "webhooks", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(sim.Signature(testSecret, body, now), body, true)
		f.Add(sim.Signature(testSecret, body, now), body, false)
	}
	f.Add("t=1,v1=00", []byte(`{}`), false)
	f.Add("", []byte(`{"id":"e","type":"captured","reference":"r"}`), true)
	p := sim.New(sim.Config{WebhookSecret: testSecret, Clock: func() time.Time { return now }})
	f.Fuzz(func(t *testing.T, sig string, body []byte, sign bool) {
		h := http.Header{}
		if sign {
			h = sim.SignWebhook(testSecret, body, now)
		} else if sig != "" {
			h.Set(sim.SignatureHeader, sig)
		}
		evs, err := p.ParseWebhook(ctx, h, body)
		if err != nil {
			if evs != nil {
				t.Fatal("events returned with an error")
			}
			for _, s := range []error{paymux.ErrWebhookNotSigned, paymux.ErrWebhookBadSignature, paymux.ErrWebhookTooOld, paymux.ErrWebhookTooLarge, paymux.ErrWebhookMalformed} {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error wraps no webhook sentinel: %v", err)
		}
		if !sign && sim.VerifySignature(testSecret, h, body, now, sim.DefaultTolerance) != nil {
			t.Fatal("accepted a body whose signature does not verify")
		}
		if len(evs) != 1 || evs[0].ID == "" || evs[0].ProviderRef == "" || evs[0].Provider != p.Name() || evs[0].Amount.Amount < 0 {
			t.Fatalf("accepted event %+v", evs)
		}
	})
}
