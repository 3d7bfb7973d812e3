// Package httpjson writes the example services' JSON answers.
package httpjson

import (
	"encoding/json"
	"net/http"
)

// Write answers v as JSON with status; answers are never cached, since they
// carry sessions, carts and orders.
func Write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Error answers {"error": msg} with status.
func Error(w http.ResponseWriter, status int, msg string) {
	Write(w, status, map[string]string{"error": msg})
}
