package braintreetest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/paymux/paymux/providers/braintree/braintreetest"
	"github.com/paymux/paymux/providers/providertest"
)

type bundle struct{ srv *braintreetest.Server }

func setup(t *testing.T) *bundle {
	t.Helper()
	srv := braintreetest.NewServer(braintreetest.Options{})
	t.Cleanup(srv.Close)
	return &bundle{srv: srv}
}

const charge = `mutation chargeCreditCard($input: ChargeCreditCardInput!) { chargeCreditCard(input: $input) { transaction { id status } } }`

func (b *bundle) post(t *testing.T, query string, input map[string]any) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": map[string]any{"input": input}})
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, b.srv.URL(), bytes.NewReader(body))
	req.SetBasicAuth(b.srv.PublicKey(), b.srv.PrivateKey())
	req.Header.Set("Braintree-Version", "2019-01-01")
	resp, err := b.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func errorClass(out map[string]any) string {
	errs, _ := out["errors"].([]any)
	if len(errs) == 0 {
		return ""
	}
	ext, _ := errs[0].(map[string]any)["extensions"].(map[string]any)
	c, _ := ext["errorClass"].(string)
	return c
}

func input(key, amount string) map[string]any {
	return map[string]any{"apiRequestKey": key, "paymentMethodId": "fake-valid-nonce", "transaction": map[string]any{"amount": amount, "orderId": "o1"}}
}

func TestAPIRequestKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	first := b.post(t, charge, input("k1", "10.00"))
	again := b.post(t, charge, input("k1", "10.00"))
	if errorClass(first) != "" || errorClass(again) != "" {
		t.Fatalf("%v %v", first, again)
	}
	id := func(o map[string]any) any {
		return o["data"].(map[string]any)["chargeCreditCard"].(map[string]any)["transaction"].(map[string]any)["id"]
	}
	if id(first) != id(again) || b.srv.Charges("o1") != 1 {
		t.Fatalf("replay made another charge: %v %v, charges %d", id(first), id(again), b.srv.Charges("o1"))
	}
	if c := errorClass(b.post(t, charge, input("k1", "11.00"))); c != "VALIDATION" {
		t.Fatalf("different input: %q", c)
	}
	// A refused first request does not use the key up.
	bad := input("k2", "10.00")
	bad["paymentMethodId"] = "fake-luhn-invalid-nonce"
	if c := errorClass(b.post(t, charge, bad)); c != "VALIDATION" {
		t.Fatalf("luhn: %q", c)
	}
	if c := errorClass(b.post(t, charge, input("k2", "10.00"))); c != "" {
		t.Fatalf("key after a refused request: %q", c)
	}
}

func TestInFlightKeyIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.srv.Faults().Set(providertest.FaultPlan{Latency: 200 * time.Millisecond})
	var wg sync.WaitGroup
	results := make([]string, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 1 {
				time.Sleep(50 * time.Millisecond)
			}
			results[i] = errorClass(b.post(t, charge, input("k", "10.00")))
		}()
	}
	wg.Wait()
	if results[0] != "" || results[1] != "VALIDATION" || b.srv.Charges("o1") != 1 {
		t.Fatalf("results %q, charges %d", results, b.srv.Charges("o1"))
	}
}

func TestIDsAndSigning(t *testing.T) {
	t.Parallel()
	if g := braintreetest.GlobalID("transaction", "abc"); g != "dHJhbnNhY3Rpb25fYWJj" || braintreetest.LegacyID(g) != "abc" {
		t.Fatalf("GlobalID %q", g)
	}
	// Vector braintree-6 of the shared set.
	if got := braintreetest.Sign("integration_private_key", "20f9f8ed05f77439fe955c977e4c8a53"); got != "d9b899556c966b3f06945ec21311865d35df3ce4" {
		t.Fatalf("Sign = %s", got)
	}
}
