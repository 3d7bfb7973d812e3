package sim

import (
	"strconv"

	"github.com/paymux/paymux"
)

// decodePayload decodes the flat JSON object the sim sends without
// reflection: the webhook path's cost is mostly decoding. It handles only
// the simple shape the sim emits (known keys, strings without escapes or
// non-ASCII bytes, plain integers, true/false) and reports ok = false for
// anything else, which the caller then hands to encoding/json, so the result
// is always what encoding/json would give (FuzzDecodePayload checks that).
func decodePayload(b []byte) (pl WebhookPayload, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return pl, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return pl, skipSpace(b, i+1) == len(b)
	}
	for {
		key, j, ok := plainString(b, i)
		if !ok {
			return pl, false
		}
		i = skipSpace(b, j)
		if i >= len(b) || b[i] != ':' {
			return pl, false
		}
		i = skipSpace(b, i+1)
		switch key {
		case "id", "type", "reference", "payment_key", "currency", "status", "code":
			s, j, ok := plainString(b, i)
			if !ok {
				return pl, false
			}
			i = j
			switch key {
			case "id":
				pl.ID = s
			case "type":
				pl.Type = paymux.EventType(s)
			case "reference":
				pl.Reference = s
			case "payment_key":
				pl.PaymentKey = s
			case "currency":
				pl.Currency = paymux.Currency(s)
			case "status":
				pl.Status = paymux.Status(s)
			case "code":
				pl.Code = s
			}
		case "created", "amount":
			j := i
			if j < len(b) && b[j] == '-' {
				j++
			}
			start := j
			for j < len(b) && b[j] >= '0' && b[j] <= '9' {
				j++
			}
			// A leading zero before more digits is not JSON.
			if j == start || (b[start] == '0' && j-start > 1) {
				return pl, false
			}
			n, err := strconv.ParseInt(string(b[i:j]), 10, 64)
			if err != nil {
				return pl, false
			}
			if key == "created" {
				pl.Created = n
			} else {
				pl.Amount = n
			}
			i = j
		case "success":
			switch {
			case hasPrefix(b[i:], "true"):
				pl.Success, i = true, i+4
			case hasPrefix(b[i:], "false"):
				pl.Success, i = false, i+5
			default:
				return pl, false
			}
		default:
			return pl, false
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return pl, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return pl, skipSpace(b, i+1) == len(b)
		default:
			return pl, false
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func hasPrefix(b []byte, s string) bool {
	return len(b) >= len(s) && string(b[:len(s)]) == s
}

// plainString reads a JSON string at b[i] that has no escapes, control
// characters or non-ASCII bytes.
func plainString(b []byte, i int) (string, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return "", i, false
	}
	for j := i + 1; j < len(b); j++ {
		c := b[j]
		switch {
		case c == '"':
			return string(b[i+1 : j]), j + 1, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return "", j, false
		}
	}
	return "", len(b), false
}
