package activities

import (
	"log/slog"
	"testing"

	"go.temporal.io/sdk/converter"

	"relay/internal/incidents"
	"relay/internal/store"
	"relay/internal/store/storetest"
)

// FuzzIncidentsAnswer serves an arbitrary body as both incidents API answers
// (GET /identities and GET /incidents/denial/). A fetch only checks the shape and stages
// the body (incidents.Build, fuzzed against encoding/json in its own package, reads it):
// it stages exactly the body, or refuses it with a decoding error, and never refuses a body
// that Build would accept.
func FuzzIncidentsAnswer(f *testing.F) {
	for _, body := range []string{
		`{"17.99.238.86": 4506, "10.1.2.3": 77}`,
		`{}`,
		`{"10.1.2.3": "77"}`,
		`{"10.1.2.3": 77, "10.1.2.3": 78}`,
		`{"results": [{"reported_by": 4506, "source_ip": "203.0.113.9", "priority": "high", "timestamp": 1500000100.5}, {"reported_by": "1000", "source_ip": "17.99.238.86", "priority": "low", "timestamp": 1500000200}]}`,
		`{"results": []}`,
		`{"results": null}`,
		`{"results": {}}`,
		`{"results": [null, 1, "x"]}`,
		`{"RESULTS": []}`,
		`{"result\u0073": []}`,
		`{"results": [], "next": null}`,
		`{"results": [{"reported_by": 1, "priority": "low", "timestamp": 1e309}]}`,
		"{\"results\": [{\"reported_by\": 1, \"priority\": \"low\", \"timestamp\": 1, \"note\": \"\xff\"}]}",
		`{"results": [`,
		`null`, `[]`, `""`, ``, `<html></html>`, "\ufeff{}",
	} {
		f.Add([]byte(body))
	}
	answer, client := newCannedAnswer()
	st := storetest.Open(f)
	a := NewIncidents(IncidentsOptions{BaseURL: "http://incidents.test", User: "u", Password: "p", HTTP: client, Store: st})
	env := newActivityEnv(slog.New(slog.DiscardHandler), a)
	emptyResults := func() map[string][]byte {
		results := map[string][]byte{}
		for _, typ := range incidents.Types {
			results[typ] = []byte(`{"results": []}`)
		}
		return results
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		answer.body = body

		_, _, buildErr := incidents.Build(body, emptyResults())
		v, err := env.ExecuteActivity(a.FetchIdentities)
		requireFetched(t, v, err, body, buildErr == nil, st)

		results := emptyResults()
		results["denial"] = body
		_, _, buildErr = incidents.Build([]byte(`{}`), results)
		v, err = env.ExecuteActivity(a.FetchIncidents, "denial")
		requireFetched(t, v, err, body, buildErr == nil, st)
	})
}

// requireFetched checks a fetch's outcome: the body staged whole, or a decoding error
// for a body that Build would refuse too.
func requireFetched(t *testing.T, v converter.EncodedValue, err error, body []byte, buildAccepts bool, st *store.Store) {
	t.Helper()
	if err != nil {
		requireDecodeError(t, err, body)
		if buildAccepts {
			t.Fatalf("%q: refused (%v), yet Build accepts it", body, err)
		}
		return
	}
	var staged Staged
	if err := v.Get(&staged); err != nil {
		t.Fatal(err)
	}
	if staged.Bytes != len(body) {
		t.Fatalf("%q: staged %d bytes, want %d", body, staged.Bytes, len(body))
	}
	requireStaged(t, st, staged.Key, body)
}
