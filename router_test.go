package paymux_test

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/paymux/paymux"
)

var shopProviders = []string{"stripe", "adyen", "braintree", "paypal", "worldpay"}

func loadShopRoutes(t testing.TB) *paymux.Router {
	t.Helper()
	data, err := os.ReadFile("testdata/routes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := paymux.ParseRoutesYAML(data)
	if err != nil {
		t.Fatal(err)
	}
	r, err := paymux.NewRouter(rules, shopProviders...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRouterFlashSaleRoutes(t *testing.T) {
	t.Parallel()
	r := loadShopRoutes(t)
	card := paymux.PaymentMethod{Type: paymux.MethodCard, Token: "tok"}
	cases := []struct {
		name string
		req  paymux.PaymentRequest
		rule string
		want string
	}{
		{"EU card in EUR", paymux.PaymentRequest{Amount: paymux.NewMoney(1000, "EUR"), Country: "DE", Method: card}, "eu-eur", "adyen,stripe"},
		{"US card", paymux.PaymentRequest{Amount: paymux.NewMoney(1000, "USD"), Country: "US", Method: card}, "us", "stripe,braintree"},
		{"PayPal wallet", paymux.PaymentRequest{Amount: paymux.NewMoney(1000, "EUR"), Country: "DE", Method: paymux.PaymentMethod{Type: paymux.MethodPayPal, Token: "o"}}, "paypal-wallet", "paypal"},
		{"UK large", paymux.PaymentRequest{Amount: paymux.NewMoney(150000, "GBP"), Country: "GB", Method: card}, "uk-large", "worldpay,stripe"},
		{"UK small falls to default", paymux.PaymentRequest{Amount: paymux.NewMoney(1500, "GBP"), Country: "GB", Method: card}, "default", "stripe,adyen"},
		{"EUR from the US is not EU", paymux.PaymentRequest{Amount: paymux.NewMoney(1000, "EUR"), Country: "US", Method: card}, "default", "stripe,adyen"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.req.IdempotencyKey = "order-1"
			got, err := r.Route(&c.req)
			if err != nil {
				t.Fatal(err)
			}
			if got.Rule != c.rule || strings.Join(got.Providers, ",") != c.want {
				t.Fatalf("got rule %q providers %v, want %q %s", got.Rule, got.Providers, c.rule, c.want)
			}
		})
	}
}

func TestRouterWeightedSplitIsStickyAndWithinOnePoint(t *testing.T) {
	t.Parallel()
	r := loadShopRoutes(t)
	const n = 100_000
	counts := map[string]int{}
	for i := 0; i < n; i++ {
		req := paymux.PaymentRequest{
			IdempotencyKey: fmt.Sprintf("order-%d", i), Amount: paymux.NewMoney(5000, "EUR"), Country: "DE",
			Campaign: "drop-nova", Method: paymux.PaymentMethod{Type: paymux.MethodCard, Token: "tok"},
		}
		a, err := r.Route(&req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := r.Route(&req)
		if a.Providers[0] != b.Providers[0] {
			t.Fatalf("key %s routed to %s then %s", req.IdempotencyKey, a.Providers[0], b.Providers[0])
		}
		if a.Providers[len(a.Providers)-1] != "braintree" {
			t.Fatalf("fallback missing: %v", a.Providers)
		}
		counts[a.Providers[0]]++
	}
	for p, want := range map[string]float64{"stripe": 0.70, "adyen": 0.30} {
		got := float64(counts[p]) / n
		if math.Abs(got-want) > 0.01 {
			t.Errorf("%s got %.4f of keys, want %.2f ± 0.01", p, got, want)
		}
	}
}

func TestRouterValidationNamesTheRule(t *testing.T) {
	t.Parallel()
	cases := []struct {
		yaml, wantRule, wantText string
	}{
		{"rules:\n - name: a\n   primaries: [nosuch]\n", "a", "unknown provider"},
		{"rules:\n - name: empty\n   primaries: []\n", "empty", "empty route"},
		{"rules:\n - name: w\n   primaries: [{provider: stripe, weight: 50}, adyen]\n", "w", "overlapping weights"},
		{"rules:\n - name: d\n   primaries: [stripe]\n   fallbacks: [stripe]\n", "d", "listed twice"},
		{"rules:\n - name: c\n   currencies: [XXX]\n   primaries: [stripe]\n", "c", "unknown currency"},
	}
	for _, c := range cases {
		rules, err := paymux.ParseRoutesYAML([]byte(c.yaml))
		if err == nil {
			_, err = paymux.NewRouter(rules, shopProviders...)
		}
		if !errors.Is(err, paymux.ErrInvalidRoute) || !strings.Contains(err.Error(), `"`+c.wantRule+`"`) || !strings.Contains(err.Error(), c.wantText) {
			t.Errorf("%q: got %v, want ErrInvalidRoute naming rule %q with %q", c.yaml, err, c.wantRule, c.wantText)
		}
	}
	if _, err := paymux.ParseRoutesYAML([]byte("rules:\n - name: x\n   primary: [stripe]\n")); !errors.Is(err, paymux.ErrInvalidRoute) {
		t.Errorf("unknown field: got %v", err)
	}
}

func TestRouterLoadsJSON(t *testing.T) {
	t.Parallel()
	rules, err := paymux.ParseRoutesJSON([]byte(`{"rules":[{"name":"all","primaries":["stripe",{"provider":"adyen"}],"fallbacks":["paypal"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := paymux.NewRouter(rules, shopProviders...)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Route(&paymux.PaymentRequest{IdempotencyKey: "k", Amount: paymux.NewMoney(1, "USD")})
	if err != nil || strings.Join(got.Providers, ",") != "stripe,adyen,paypal" {
		t.Fatalf("got %v %v", got, err)
	}
}

func TestRouterSwapIsAtomic(t *testing.T) {
	t.Parallel()
	a := []paymux.Rule{{Name: "a", Primaries: []paymux.Target{{Provider: "stripe"}}, Fallbacks: []string{"adyen"}}}
	b := []paymux.Rule{{Name: "b", Primaries: []paymux.Target{{Provider: "adyen"}}, Fallbacks: []string{"stripe"}}}
	r, err := paymux.NewRouter(a, shopProviders...)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			rules := a
			if i%2 == 1 {
				rules = b
			}
			if err := r.Swap(rules); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	req := paymux.PaymentRequest{IdempotencyKey: "k", Amount: paymux.NewMoney(1, "USD")}
	for i := 0; i < 20000; i++ {
		got, err := r.Route(&req)
		if err != nil {
			t.Fatal(err)
		}
		// Never a mix of the two rule sets.
		if s := strings.Join(got.Providers, ","); !(got.Rule == "a" && s == "stripe,adyen" || got.Rule == "b" && s == "adyen,stripe") {
			t.Fatalf("torn route: %v", got)
		}
	}
	close(stop)
	wg.Wait()
	// A bad swap keeps the old rules.
	if err := r.Swap([]paymux.Rule{{Name: "bad"}}); err == nil {
		t.Fatal("empty route accepted")
	}
	if got, _ := r.Route(&req); got.Rule != "a" && got.Rule != "b" {
		t.Fatalf("rules lost after a failed swap: %v", got)
	}
}

// manyRules builds n rules, each on its own (currency, country, campaign), in
// front of a catch-all, so that the last matching rule is far down the list.
func manyRules(n int) []paymux.Rule {
	currencies := []paymux.Currency{"EUR", "USD", "GBP", "JPY", "SEK", "NOK", "DKK", "PLN", "CHF", "CZK"}
	rules := make([]paymux.Rule, 0, n+1)
	for i := 0; i < n; i++ {
		rules = append(rules, paymux.Rule{
			Name:       fmt.Sprintf("r%d", i),
			Currencies: []paymux.Currency{currencies[i%len(currencies)]},
			Countries:  []string{fmt.Sprintf("%c%c", 'A'+(i/len(currencies))%26, 'A'+(i/len(currencies)/26)%26)},
			Campaigns:  []string{fmt.Sprintf("c%d", i)},
			Primaries:  []paymux.Target{{Provider: "stripe", Weight: 60}, {Provider: "adyen", Weight: 40}},
			Fallbacks:  []string{"braintree"},
		})
	}
	return append(rules, paymux.Rule{Name: "catch-all", Primaries: []paymux.Target{{Provider: "stripe"}}})
}

// campaignRules builds n influencer rules that match on campaign alone.
func campaignRules(n int) []paymux.Rule {
	rules := manyRules(n)
	for i := range rules[:n] {
		rules[i].Currencies, rules[i].Countries = nil, nil
	}
	return rules
}

func BenchmarkRoute(b *testing.B) {
	for _, shape := range []struct {
		name  string
		build func(int) []paymux.Rule
	}{{"mixed", manyRules}, {"campaign-only", campaignRules}} {
		for _, n := range []int{10, 1000, 10000} {
			benchRoute(b, shape.name, n, shape.build)
		}
	}
}

func benchRoute(b *testing.B, shape string, n int, build func(int) []paymux.Rule) {
	{
		b.Run(fmt.Sprintf("%s/rules=%d", shape, n), func(b *testing.B) {
			rules := build(n)
			r, err := paymux.NewRouter(rules, shopProviders...)
			if err != nil {
				b.Fatal(err)
			}
			last := manyRules(n)[n-1]
			req := paymux.PaymentRequest{
				IdempotencyKey: "order-123456", Amount: paymux.NewMoney(5000, last.Currencies[0]),
				Country: last.Countries[0], Campaign: last.Campaigns[0], Method: paymux.PaymentMethod{Type: paymux.MethodCard, Token: "tok"},
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				got, err := r.Route(&req)
				if err != nil || got.Rule != last.Name {
					b.Fatalf("got %v %v", got, err)
				}
			}
		})
	}
}
