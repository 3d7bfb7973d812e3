package paymux_test

import (
	"fmt"

	"github.com/paymux/paymux"
)

// Routes are data: the first matching rule wins, weighted primaries are
// picked by a hash of the idempotency key (a retry lands on the same
// provider), and fallbacks follow.
func ExampleRouter() {
	rules, err := paymux.ParseRoutesYAML([]byte(`
rules:
  - name: influencer-drop
    campaigns: [drop-nova]
    primaries: [{provider: stripe, weight: 70}, {provider: adyen, weight: 30}]
    fallbacks: [braintree]
  - name: eu
    currencies: [EUR]
    countries: [DE, FR, NL]
    primaries: [adyen]
    fallbacks: [stripe]
  - name: default
    primaries: [stripe]
`))
	if err != nil {
		panic(err)
	}
	router, err := paymux.NewRouter(rules, "stripe", "adyen", "braintree")
	if err != nil {
		panic(err)
	}
	route := func(key, campaign string, amount paymux.Money, country string) {
		r, _ := router.Route(&paymux.PaymentRequest{IdempotencyKey: key, Campaign: campaign, Amount: amount, Country: country,
			Method: paymux.PaymentMethod{Type: paymux.MethodCard, Token: "tok"}})
		fmt.Println(r.Rule, r.Providers)
	}
	route("order-1", "", paymux.NewMoney(5000, "EUR"), "DE")
	route("order-2", "", paymux.NewMoney(5000, "USD"), "US")
	route("order-3", "drop-nova", paymux.NewMoney(5000, "EUR"), "DE")

	// A bad rule is refused with its name, and the old rules stay in force.
	err = router.Swap([]paymux.Rule{{Name: "typo", Primaries: []paymux.Target{{Provider: "strpie"}}}})
	fmt.Println(err)
	// Output:
	// eu [adyen stripe]
	// default [stripe]
	// influencer-drop [stripe adyen braintree]
	// paymux: invalid route: rule "typo": unknown provider "strpie"
}
