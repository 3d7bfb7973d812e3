package sim

import (
	"encoding/json"
	"testing"
)

// The fast decoder must agree with encoding/json whenever it answers.
func FuzzDecodePayload(f *testing.F) {
	f.Add(EncodeWebhook(WebhookPayload{ID: "simevt_1", Type: "captured", Created: 1800000000, Reference: "sim_1", PaymentKey: "order-1", Amount: 4999, Currency: "EUR", Status: "captured", Success: true, Code: "x"}))
	for _, s := range []string{`{}`, ` { "id" : "a" , "amount" : -0 } `, `{"amount":01}`, `{"ID":"a"}`, `{"id":"a\u0041"}`, `{"id":"é"}`, `{"success":null}`, `{"amount":1.5}`, `{"id":"a","id":"b"}`, `{"id":"a"} x`, `{"created":99999999999999999999}`, `{"success":true,}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := decodePayload(b)
		if !ok {
			return
		}
		var slow WebhookPayload
		if err := json.Unmarshal(b, &slow); err != nil {
			t.Fatalf("fast path accepted what encoding/json refuses: %q: %v", b, err)
		}
		if fast != slow {
			t.Fatalf("%q: fast %+v, encoding/json %+v", b, fast, slow)
		}
	})
}
