package paymux_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/paymux/paymux"
)

func TestParseAndFormatMoneyWithoutFloats(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		cur  paymux.Currency
		want int64
		out  string
	}{
		{"12.34", "EUR", 1234, "12.34 EUR"},
		{"12.3", "USD", 1230, "12.30 USD"},
		{"12", "USD", 1200, "12.00 USD"},
		{"0.01", "USD", 1, "0.01 USD"},
		{"500", "JPY", 500, "500 JPY"},
		{"1.234", "KWD", 1234, "1.234 KWD"},
		{"0.005", "KWD", 5, "0.005 KWD"},
		{"-3.50", "EUR", -350, "-3.50 EUR"},
		{"92233720368547758.07", "USD", 9223372036854775807, "92233720368547758.07 USD"},
	}
	for _, c := range cases {
		m, err := paymux.ParseMoney(c.in, c.cur)
		if err != nil || m.Amount != c.want || m.String() != c.out {
			t.Errorf("ParseMoney(%q, %s) = %v (%d) %v, want %d %q", c.in, c.cur, m, m.Amount, err, c.want, c.out)
		}
	}
	for _, bad := range []struct {
		in  string
		cur paymux.Currency
	}{{"1.5", "JPY"}, {"1.234", "EUR"}, {"1e3", "USD"}, {"", "USD"}, {".5", "USD"}, {"5.", "USD"}, {"1,00", "EUR"}, {"1", "XXX"}, {"99999999999999999999", "USD"}} {
		if _, err := paymux.ParseMoney(bad.in, bad.cur); !errors.Is(err, paymux.ErrInvalidMoney) {
			t.Errorf("ParseMoney(%q, %s): got %v, want ErrInvalidMoney", bad.in, bad.cur, err)
		}
	}
}

func FuzzParseMoney(f *testing.F) {
	for _, s := range []string{"12.34", "0", "-1.5", "1e9", "９", "00000000000000000000001"} {
		f.Add(s, "EUR")
	}
	f.Fuzz(func(t *testing.T, s, cur string) {
		m, err := paymux.ParseMoney(s, paymux.Currency(cur))
		if err != nil {
			return
		}
		// What parses formats back to an equal amount.
		back, err := paymux.ParseMoney(m.Decimal(), m.Currency)
		if err != nil || back != m {
			t.Fatalf("%q -> %v -> %q -> %v %v", s, m, m.Decimal(), back, err)
		}
	})
}

func TestStatusOnlyMovesForward(t *testing.T) {
	t.Parallel()
	forward := [][2]paymux.Status{
		{paymux.StatusPending, paymux.StatusRequiresAction}, {paymux.StatusRequiresAction, paymux.StatusAuthorized},
		{paymux.StatusAuthorized, paymux.StatusCaptured}, {paymux.StatusCaptured, paymux.StatusRefunded},
		{paymux.StatusUnknown, paymux.StatusCaptured}, {paymux.StatusAuthorized, paymux.StatusVoided},
		{paymux.StatusPending, paymux.StatusFailed}, {paymux.StatusPending, paymux.StatusUnknown},
	}
	for _, f := range forward {
		if !f[0].CanTransition(f[1]) {
			t.Errorf("%s -> %s refused", f[0], f[1])
		}
	}
	backward := [][2]paymux.Status{
		{paymux.StatusCaptured, paymux.StatusAuthorized}, {paymux.StatusCaptured, paymux.StatusFailed},
		{paymux.StatusCaptured, paymux.StatusVoided}, {paymux.StatusRefunded, paymux.StatusCaptured},
		{paymux.StatusVoided, paymux.StatusCaptured}, {paymux.StatusFailed, paymux.StatusAuthorized},
		{paymux.StatusAuthorized, paymux.StatusPending}, {paymux.StatusAuthorized, paymux.StatusUnknown},
		{paymux.StatusAuthorized, paymux.StatusRequiresAction},
	}
	for _, b := range backward {
		if b[0].CanTransition(b[1]) {
			t.Errorf("%s -> %s allowed", b[0], b[1])
		}
	}
}

func TestProviderErrorMatchesKindAndRawError(t *testing.T) {
	t.Parallel()
	raw := errors.New("sdk: card_declined")
	err := fmt.Errorf("wrapped: %w", &paymux.ProviderError{Provider: "stripe", Kind: paymux.KindHardDecline, Code: "card_declined", DeclineCode: "stolen_card", Err: raw})
	if !errors.Is(err, paymux.ErrDeclined) || !errors.Is(err, paymux.ErrHardDecline) || errors.Is(err, paymux.ErrSoftDecline) {
		t.Fatal("kind sentinels do not match")
	}
	if !errors.Is(err, raw) {
		t.Fatal("raw error not reachable")
	}
	if paymux.KindOf(err) != paymux.KindHardDecline || paymux.KindOf(errors.New("x")) != paymux.KindOutcomeUnknown {
		t.Fatal("KindOf")
	}
	for k := paymux.KindInvalidRequest; k <= paymux.KindUnimplemented; k++ {
		back, err := paymux.ParseKind(k.String())
		if err != nil || back != k {
			t.Errorf("kind %d round trip: %v %v", k, back, err)
		}
	}
}

// The Kind numbers are stored with payments: renumbering them corrupts
// history, so this test pins them.
func TestKindNumbersNeverChange(t *testing.T) {
	t.Parallel()
	want := map[paymux.Kind]int{
		paymux.KindInvalidRequest: 1, paymux.KindAuthentication: 2, paymux.KindHardDecline: 3, paymux.KindSoftDecline: 4,
		paymux.KindActionRequired: 5, paymux.KindRateLimited: 6, paymux.KindUnavailable: 7, paymux.KindOutcomeUnknown: 8,
		paymux.KindNotFound: 9, paymux.KindConflict: 10, paymux.KindUnimplemented: 11,
	}
	for k, n := range want {
		if int(k) != n {
			t.Errorf("%s is %d, was %d", k, int(k), n)
		}
	}
}

func TestLooksLikeCardNumber(t *testing.T) {
	t.Parallel()
	for _, pan := range []string{"4242424242424242", "4242 4242 4242 4242", "5555-5555-5555-4444", "378282246310005", "6011111111111117", "4000056655665556"} {
		if !paymux.LooksLikeCardNumber(pan) {
			t.Errorf("%q not recognised", pan)
		}
	}
	for _, tok := range []string{"pm_card_visa", "4242424242424241", "123456789012", "tok_4242424242424242", "12345678901234567890", ""} {
		if paymux.LooksLikeCardNumber(tok) {
			t.Errorf("%q taken for a card number", tok)
		}
	}
}

func TestRedactRemovesCardsAndSecrets(t *testing.T) {
	t.Parallel()
	in := "card 4242 4242 4242 4242 key sk_test_51Habcdefghijk secret whsec_abcdefghijkl Authorization: Bearer A21AAFakeToken123"
	out := paymux.Redact(in)
	for _, leak := range []string{"4242 4242", "sk_test_51H", "whsec_abc", "A21AAFake"} {
		if strings.Contains(out, leak) {
			t.Errorf("%q leaked in %q", leak, out)
		}
	}
	s := paymux.Secret("sk_live_123456789")
	for _, f := range []string{"%v", "%s", "%+v", "%#v", "%q"} {
		if strings.Contains(fmt.Sprintf(f, s), "sk_live") || strings.Contains(fmt.Sprintf(f, struct{ K paymux.Secret }{s}), "sk_live") {
			t.Errorf("%s prints the secret", f)
		}
	}
	if s.Reveal() != "sk_live_123456789" {
		t.Fatal("Reveal")
	}
}
