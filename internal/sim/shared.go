package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// The plumbing every simulator shares: answering a call with JSON, refusing a method, and
// encoding answers ahead of time.

// writeJSON answers with v encoded as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeEncoded answers 200 with a JSON body encoded beforehand (see mustJSON).
func writeEncoded(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// writeMessageError answers an error in the {"message": "..."} envelope the incidents,
// geolocation and outage APIs share (the calendar API has its own, c42ErrorBody).
func writeMessageError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, messageBody(status, msg))
}

// allowMethod reports whether r uses method, and otherwise answers 405 naming the one
// allowed, in the message envelope.
func allowMethod(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method {
		return true
	}
	w.Header().Set("Allow", method)
	writeMessageError(w, http.StatusMethodNotAllowed,
		fmt.Sprintf("method %s not allowed on %s, use %s", r.Method, r.URL.Path, method))
	return false
}

// mustJSON encodes v, which cannot fail for the plain data the simulators generate.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain structs, maps and slices of strings and numbers are encoded here
	}
	return b
}

// hasKey reports whether m holds k.
func hasKey[K comparable, V any](m map[K]V, k K) bool {
	_, ok := m[k]
	return ok
}
