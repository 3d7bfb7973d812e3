package stripe

import (
	"fmt"

	"github.com/paymux/paymux"
)

// Stripe's amount units differ from ISO 4217 in a few currencies
// (docs.stripe.com/currencies): the zero-decimal list below, ISK which the
// API keeps two-decimal (whole krónur only, so amounts are multiples of 100),
// and the three-decimal currencies whose last digit must be 0.
var stripeZeroDecimal = map[paymux.Currency]bool{
	"BIF": true, "CLP": true, "DJF": true, "GNF": true, "JPY": true, "KMF": true, "KRW": true, "MGA": true,
	"PYG": true, "RWF": true, "UGX": true, "VND": true, "VUV": true, "XAF": true, "XOF": true, "XPF": true,
}

var stripeThreeDecimal = map[paymux.Currency]bool{"BHD": true, "JOD": true, "KWD": true, "OMR": true, "TND": true}

func stripeExponent(c paymux.Currency) int {
	switch {
	case stripeZeroDecimal[c]:
		return 0
	case stripeThreeDecimal[c]:
		return 3
	}
	return 2
}

// scale is 10^(Stripe's exponent - paymux's exponent): 100 for ISK, 1 for
// everything else paymux knows.
func scale(c paymux.Currency) (int64, error) {
	exp, ok := c.Exponent()
	if !ok {
		return 0, fmt.Errorf("unknown currency %q", string(c))
	}
	d := stripeExponent(c) - exp
	if d < 0 {
		return 0, fmt.Errorf("currency %s has more minor digits in paymux than at Stripe", c)
	}
	s := int64(1)
	for ; d > 0; d-- {
		s *= 10
	}
	return s, nil
}

// toStripeAmount converts paymux minor units to Stripe's, refusing amounts
// Stripe would refuse rather than rounding money.
func toStripeAmount(m paymux.Money) (int64, error) {
	if err := m.Validate(); err != nil {
		return 0, err
	}
	s, err := scale(m.Currency)
	if err != nil {
		return 0, err
	}
	if stripeThreeDecimal[m.Currency] && m.Amount%10 != 0 {
		return 0, fmt.Errorf("stripe needs %s amounts in multiples of 10 minor units, got %d", m.Currency, m.Amount)
	}
	if m.Amount > (1<<62)/s {
		return 0, fmt.Errorf("amount %d out of range", m.Amount)
	}
	return m.Amount * s, nil
}

// fromStripeAmount converts Stripe units back; an unknown currency is
// passed through (the caller compares currencies before using amounts).
func fromStripeAmount(a int64, c paymux.Currency) int64 {
	s, err := scale(c)
	if err != nil || s == 1 {
		return a
	}
	return a / s
}
