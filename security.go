package paymux

import (
	"log/slog"
	"regexp"
	"strings"
)

// LooksLikeCardNumber reports whether s, ignoring spaces and dashes, is a
// Luhn-valid string of 13 to 19 digits: a primary account number that must
// never reach a token field, a log or a store.
func LooksLikeCardNumber(s string) bool {
	digits := make([]byte, 0, 19)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if len(digits) == 19 {
				return false
			}
			digits = append(digits, c)
		case c == ' ' || c == '-':
		default:
			return false
		}
	}
	return len(digits) >= 13 && luhnValid(digits)
}

func luhnValid(digits []byte) bool {
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

var (
	panPattern    = regexp.MustCompile(`\b(?:\d[ -]?){12,18}\d\b`)
	secretPattern = regexp.MustCompile(`\b(?:sk|rk|whsec|pk)_(?:live|test)?_?[A-Za-z0-9]{6,}|\bwhsec_[A-Za-z0-9+/=]{6,}|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}`)
)

// Redact removes card numbers and well-known secret shapes (Stripe keys,
// webhook secrets, bearer tokens) from text meant for errors and logs.
func Redact(s string) string {
	if s == "" {
		return s
	}
	s = panPattern.ReplaceAllStringFunc(s, func(m string) string {
		if LooksLikeCardNumber(m) {
			return "[redacted-pan]"
		}
		return m
	})
	if strings.ContainsAny(s, "_") || strings.Contains(strings.ToLower(s), "bearer") {
		s = secretPattern.ReplaceAllString(s, "[redacted]")
	}
	return s
}

// Secret holds a key or webhook secret. Its String, GoString and
// MarshalText never reveal the value, so it is safe in structs that get
// logged or printed by accident.
type Secret string

// Reveal returns the secret value, for the one place that must send it.
func (s Secret) Reveal() string { return string(s) }

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return s.String() }

// MarshalText keeps encoders from printing the value.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue keeps log/slog from printing the value.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }
