package braintree_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/paymux/paymux"
	"github.com/paymux/paymux/providers/braintree/braintreetest"
)

// FuzzParseWebhook feeds arbitrary form bodies to ParseWebhook. Whatever
// the bytes, it must not panic, must wrap one of the webhook sentinels when
// it refuses, and must never accept a body it did not verify. Seeds live in
// testdata/fuzz/FuzzParseWebhook; signed ones use the keys below, so the
// fuzzer also explores the XML parser behind a valid signature.
func FuzzParseWebhook(f *testing.F) {
	const public, private = "fuzz_public", "fuzz_private"
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	for _, kind := range []string{"transaction_settled", "dispute_opened", "refund_failed", "check"} {
		f.Add([]byte(braintreetest.SignNotification(public, private,
			[]byte(braintreetest.NotificationXML(kind, "tx1", "order#pmx_1", paymux.NewMoney(100, "USD"), at))).Encode()))
	}
	p := newVerifier(f, public, private)
	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := p.ParseWebhook(context.Background(), nil, body)
		if err != nil {
			if !errors.Is(err, paymux.ErrWebhookNotSigned) && !errors.Is(err, paymux.ErrWebhookBadSignature) && !errors.Is(err, paymux.ErrWebhookMalformed) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		form, perr := url.ParseQuery(string(body))
		if perr != nil {
			t.Fatalf("accepted a body that is not a form")
		}
		if p.VerifySignature(form.Get("bt_signature"), form.Get("bt_payload")) != nil {
			t.Fatal("accepted an unverified body")
		}
		if len(events) != 1 || events[0].ID == "" || events[0].Provider != "braintree" {
			t.Fatalf("events %+v", events)
		}
	})
}
