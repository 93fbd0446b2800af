package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var incAuth = withBasic(DefaultIncidentsUser, DefaultIncidentsPassword)

// incOwnerFields are the fields each type must carry (spec/upstreams.md §1).
var incOwnerFields = map[string][]string{
	"denial":       {"reported_by", "source_ip"},
	"intrusion":    {"internal_ip", "source_ip"},
	"executable":   {"machine_ip"},
	"misuse":       {"employee_id"},
	"unauthorized": {"employee_id"},
	"probing":      {"ip"},
	"other":        {"identifier"},
}

// serveIncidents starts the real incidents simulator with the knob list and returns its
// API too.
func serveIncidents(t *testing.T, list string) (*Sim, *IncidentsAPI, string) {
	t.Helper()
	s, url := serve(t, Upstreams()[Incidents], list)
	api, ok := s.Routes().(*IncidentsAPI)
	require.True(t, ok, "incidents routes are %T", s.Routes())
	return s, api, url
}

// incData is what the simulator serves, fetched over HTTP and decoded strictly.
type incData struct {
	identities map[string]string // IP → employee id, in decimal
	owned      map[string]int    // employee id → how many IPs identities gives them
	lists      map[string][]map[string]any
	bodies     map[string]string // by type, and "identities"
}

func fetchIncidents(t *testing.T, url string) incData {
	t.Helper()
	d := incData{lists: map[string][]map[string]any{}, bodies: map[string]string{}}
	res := get(t, url+"/identities", incAuth)
	require.Equal(t, http.StatusOK, res.status, res.body)
	assert.Equal(t, "application/json", res.header.Get("Content-Type"))
	d.bodies["identities"] = res.body
	d.identities = decodeIdentities(t, []byte(res.body))
	d.owned = map[string]int{}
	for _, id := range d.identities {
		d.owned[id]++
	}
	for _, typ := range IncidentTypes {
		res := get(t, url+"/incidents/"+typ, incAuth)
		require.Equal(t, http.StatusOK, res.status, "%s: %s", typ, res.body)
		assert.Equal(t, "application/json", res.header.Get("Content-Type"))
		d.bodies[typ] = res.body
		d.lists[typ] = decodeIncidentList(t, []byte(res.body))
	}
	return d
}

// decodeIdentities reads GET /identities token by token, so that a repeated IP is seen:
// one flat object of IPv4 strings to whole numbers.
func decodeIdentities(t *testing.T, body []byte) map[string]string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	require.NoError(t, err)
	require.Equal(t, json.Delim('{'), tok, "identities is an object")
	out := map[string]string{}
	for dec.More() {
		key, err := dec.Token()
		require.NoError(t, err)
		ip := key.(string)
		addr, err := netip.ParseAddr(ip)
		require.NoError(t, err, "key %q", ip)
		require.True(t, addr.Is4(), "key %q is IPv4", ip)
		require.Equal(t, ip, addr.String(), "key %q is written canonically", ip)
		val, err := dec.Token()
		require.NoError(t, err)
		n, ok := val.(json.Number)
		require.True(t, ok, "%s maps to %T %v, want a number", ip, val, val)
		id, err := strconv.ParseInt(n.String(), 10, 64)
		require.NoError(t, err, "%s maps to %s, want a whole number", ip, n)
		require.Positive(t, id)
		require.NotContains(t, out, ip, "IP %s appears twice", ip)
		out[ip] = strconv.FormatInt(id, 10)
	}
	_, err = dec.Token()
	require.NoError(t, err)
	_, err = dec.Token()
	require.ErrorIs(t, err, io.EOF, "nothing follows the object")
	return out
}

// decodeIncidentList reads {"results": [...]}, numbers kept as written.
func decodeIncidentList(t *testing.T, body []byte) []map[string]any {
	t.Helper()
	var env map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(body, &env))
	require.Len(t, env, 1, "only results: %.200s", body)
	dec := json.NewDecoder(bytes.NewReader(env["results"]))
	dec.UseNumber()
	var list []map[string]any
	require.NoError(t, dec.Decode(&list))
	require.NotNil(t, list, "results is a list, never null")
	return list
}

// incIDOf reads an employee id written as a whole number or a numeric string, in
// decimal; ok is false for anything else.
func incIDOf(v any) (id string, asString, ok bool) {
	var s string
	switch v := v.(type) {
	case json.Number:
		s = v.String()
	case string:
		s, asString = v, true
	default:
		return "", false, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || strings.HasPrefix(s, "+") {
		return "", false, false
	}
	return strconv.FormatInt(n, 10), asString, true
}

// incOwner resolves an incident by the spec's rules, independently of the generator:
// the employee id it belongs to, or known false for an IP missing from identities.
func incOwner(t *testing.T, d incData, typ string, inc map[string]any) (id string, known bool) {
	t.Helper()
	byID := func(field string) (string, bool) {
		id, _, ok := incIDOf(inc[field])
		require.True(t, ok, "%s.%s is %#v, want an employee id", typ, field, inc[field])
		return id, true
	}
	byIP := func(field string) (string, bool) {
		ip, ok := inc[field].(string)
		require.True(t, ok, "%s.%s is %#v, want an IP", typ, field, inc[field])
		id, known := d.identities[ip]
		return id, known
	}
	switch typ {
	case "denial":
		return byID("reported_by")
	case "intrusion":
		return byIP("internal_ip")
	case "executable":
		return byIP("machine_ip")
	case "misuse", "unauthorized":
		return byID("employee_id")
	case "probing":
		return byIP("ip")
	case "other":
		if s, ok := inc["identifier"].(string); ok && strings.Contains(s, ".") {
			return byIP("identifier")
		}
		return byID("identifier")
	}
	t.Fatalf("unknown type %q", typ)
	return "", false
}

// incTruthOf counts what the served data means, the way relay should.
func incTruthOf(t *testing.T, d incData) IncidentsTruth {
	t.Helper()
	truth := IncidentsTruth{ByEmployee: map[string]map[string]int{}, PerType: map[string]int{}}
	for typ, list := range d.lists {
		truth.PerType[typ] = len(list)
		for _, inc := range list {
			id, known := incOwner(t, d, typ, inc)
			if !known {
				truth.Unattributed++
				continue
			}
			if truth.ByEmployee[id] == nil {
				truth.ByEmployee[id] = map[string]int{"low": 0, "medium": 0, "high": 0, "critical": 0}
			}
			truth.ByEmployee[id][inc["priority"].(string)]++
		}
	}
	return truth
}

func incTimestamp(t *testing.T, typ string, i int, inc map[string]any) float64 {
	t.Helper()
	n, ok := inc["timestamp"].(json.Number)
	require.True(t, ok, "%s[%d].timestamp is %#v, want a number", typ, i, inc["timestamp"])
	f, err := n.Float64()
	require.NoError(t, err)
	return f
}

func TestIncidentsAuthOnEveryEndpoint(t *testing.T) {
	_, _, url := serveIncidents(t, "")
	paths := []string{"/identities", "/incidents/denial", "/incidents/other/", "/incidents/nope", "/nope"}
	creds := map[string]func(*http.Request){
		"no credentials": nil,
		"wrong password": withBasic(DefaultIncidentsUser, "wrong"),
		"wrong user":     withBasic("mallory", DefaultIncidentsPassword),
		"empty password": withBasic(DefaultIncidentsUser, ""),
		"bearer":         withHeader("Authorization", "Bearer "+DefaultIncidentsPassword),
	}
	for _, p := range paths {
		for name, set := range creds {
			t.Run(p+" "+name, func(t *testing.T) {
				res := get(t, url+p, set)
				assert.Equal(t, http.StatusUnauthorized, res.status)
				assert.JSONEq(t, `{"message":"invalid or missing credentials"}`, res.body)
			})
		}
	}
	assert.Equal(t, http.StatusOK, get(t, url+"/identities", incAuth).status)
}

func TestIncidentsIdentities(t *testing.T) {
	_, _, url := serveIncidents(t, "")
	d := fetchIncidents(t, url)
	assert.Len(t, d.identities, 10*3/2, "default size 700: 10 employees, about 1.5 IPs each")
	several := 0
	for _, n := range d.owned {
		if n > 1 {
			several++
		}
	}
	assert.Positive(t, several, "some employee owns several IPs")
	assert.True(t, strings.HasPrefix(d.bodies["identities"], `{"`), "a flat object: %.80s", d.bodies["identities"])
}

func TestIncidentsTypes(t *testing.T) {
	_, api, url := serveIncidents(t, "")
	truth := api.Truth()
	total := 0
	for _, typ := range IncidentTypes {
		t.Run(typ, func(t *testing.T) {
			res := get(t, url+"/incidents/"+typ, incAuth)
			require.Equal(t, http.StatusOK, res.status, res.body)
			assert.Equal(t, "application/json", res.header.Get("Content-Type"))
			slash := get(t, url+"/incidents/"+typ+"/", incAuth)
			require.Equal(t, http.StatusOK, slash.status, slash.body)
			assert.Equal(t, res.body, slash.body, "the trailing slash makes no difference")

			list := decodeIncidentList(t, []byte(res.body))
			assert.Len(t, list, truth.PerType[typ])
			assert.Positive(t, len(list))
			total += len(list)
			prev := 0.0
			for i, inc := range list {
				assert.Contains(t, incidentPriorities, inc["priority"], "%s[%d]", typ, i)
				ts := incTimestamp(t, typ, i, inc)
				assert.GreaterOrEqual(t, ts, prev, "%s[%d] is sorted by timestamp", typ, i)
				assert.Greater(t, ts, 1e9, "%s[%d] is in epoch seconds", typ, i)
				prev = ts
				assert.Regexp(t, `^[0-9]+(\.[0-9]{1,4})?$`, inc["timestamp"], "%s[%d]: at most four decimals", typ, i)
				for _, f := range incOwnerFields[typ] {
					require.Contains(t, inc, f, "%s[%d]", typ, i)
				}
				for _, f := range []string{"source_ip", "internal_ip", "machine_ip", "ip"} {
					if v, ok := inc[f]; ok {
						addr, err := netip.ParseAddr(fmt.Sprint(v))
						assert.NoError(t, err, "%s[%d].%s", typ, i, f)
						assert.True(t, addr.Is4(), "%s[%d].%s", typ, i, f)
					}
				}
			}
		})
	}
	assert.Equal(t, 700, total, "the default size")
}

func TestIncidentsRoutesAndMethods(t *testing.T) {
	_, _, url := serveIncidents(t, "")
	notFound := []string{
		"/incidents/nope", "/incidents/Denial", "/incidents/denial/x", "/incidents/denial//",
		"/incidents", "/incidents/", "/incidents//", "/identities/", "/identities/x", "/", "/nope",
	}
	for _, p := range notFound {
		res := get(t, url+p, incAuth)
		assert.Equal(t, http.StatusNotFound, res.status, p)
		var body map[string]string
		require.NoError(t, json.Unmarshal([]byte(res.body), &body), p)
		assert.Len(t, body, 1, p)
		assert.NotEmpty(t, body["message"], p)
	}
	assert.Contains(t, get(t, url+"/incidents/nope", incAuth).body, "nope")

	for _, p := range []string{"/identities", "/incidents/denial", "/incidents/probing/"} {
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			res := call(t, m, url+p, "{}", incAuth)
			assert.Equal(t, http.StatusMethodNotAllowed, res.status, "%s %s", m, p)
			assert.Equal(t, http.MethodGet, res.header.Get("Allow"), "%s %s", m, p)
			var body map[string]string
			require.NoError(t, json.Unmarshal([]byte(res.body), &body), "%s %s", m, p)
			assert.NotEmpty(t, body["message"])
		}
	}
}

// TestIncidentsVariety checks that the data holds the cases a client must get right, at
// the default size and whatever the seed.
func TestIncidentsVariety(t *testing.T) {
	for _, seed := range []int{1, 2, 3, 99} {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			_, _, url := serveIncidents(t, fmt.Sprintf("seed=%d", seed))
			d := fetchIncidents(t, url)
			var idNumber, idString, otherByID, otherByIP, missingIP, noIPEmployee, wholeDot, wholeBare int
			insider := map[string]int{}
			extra := map[string]int{}
			tieWithin := map[string]int{}
			seen := map[string]string{} // timestamp as a number → a type it appears in
			tieAcross := 0
			for typ, list := range d.lists {
				for i, inc := range list {
					for _, f := range []string{"reported_by", "employee_id", "identifier"} {
						if id, asString, ok := incIDOf(inc[f]); ok {
							if asString {
								idString++
							} else {
								idNumber++
							}
							if d.owned[id] == 0 {
								noIPEmployee++
							}
						}
					}
					if typ == "other" {
						if s, ok := inc["identifier"].(string); ok && strings.Contains(s, ".") {
							otherByIP++
						} else {
							otherByID++
						}
					}
					if _, known := incOwner(t, d, typ, inc); !known {
						missingIP++
					}
					if ip, ok := inc["source_ip"].(string); ok && hasKey(d.identities, ip) {
						insider[typ]++
					}
					for f := range inc {
						if f != "priority" && f != "timestamp" && !slices.Contains(incOwnerFields[typ], f) {
							extra[typ]++
							break
						}
					}
					spelled := inc["timestamp"].(json.Number).String()
					if strings.HasSuffix(spelled, ".0") {
						wholeDot++
					} else if !strings.Contains(spelled, ".") {
						wholeBare++
					}
					ts := incTimestamp(t, typ, i, inc)
					if i > 0 && ts == incTimestamp(t, typ, i-1, list[i-1]) {
						tieWithin[typ]++
					}
					key := strconv.FormatFloat(ts, 'f', 4, 64)
					if other, ok := seen[key]; ok && other != typ {
						tieAcross++
					}
					seen[key] = typ
				}
			}
			assert.Positive(t, idNumber, "ids as numbers")
			assert.Positive(t, idString, "ids as numeric strings")
			assert.Positive(t, otherByID, "other.identifier as an employee id")
			assert.Positive(t, otherByIP, "other.identifier as an IP")
			assert.Positive(t, missingIP, "IPs missing from identities")
			assert.Positive(t, noIPEmployee, "employees referenced by id who own no IP")
			assert.Positive(t, insider["denial"], "denial source_ip in identities")
			assert.Positive(t, insider["intrusion"], "intrusion source_ip in identities")
			assert.Positive(t, wholeDot, "whole seconds written 1500020421.0")
			assert.Positive(t, wholeBare, "whole seconds written 1500020421")
			assert.Positive(t, tieWithin["denial"], "equal timestamps within a type")
			assert.Positive(t, tieAcross, "equal timestamps across types")
			for _, typ := range IncidentTypes {
				assert.Equal(t, len(d.lists[typ]), extra[typ], "every %s incident has fields beyond the spec's", typ)
			}
		})
	}
}

// TestIncidentsTruthAgreesWithParse checks Truth against the served data resolved by the
// spec's rules, which the generator does not use.
func TestIncidentsTruthAgreesWithParse(t *testing.T) {
	for _, list := range []string{"", "seed=7,size=50", "seed=5,size=3000", "size=9", "size=5", "size=0"} {
		t.Run(list, func(t *testing.T) {
			_, api, url := serveIncidents(t, list)
			d := fetchIncidents(t, url)
			want := incTruthOf(t, d)
			got := api.Truth()
			assert.Equal(t, want, got)
			n := got.Unattributed
			for id, counts := range got.ByEmployee {
				assert.Len(t, counts, 4, "employee %s has all four priorities", id)
				sum := 0
				for _, c := range counts {
					sum += c
				}
				assert.Positive(t, sum, "employee %s is listed only with an incident", id)
				n += sum
			}
			total := 0
			for _, c := range got.PerType {
				total += c
			}
			assert.Equal(t, total, n, "every incident is someone's or unattributed")
			assert.Len(t, got.PerType, 7)
		})
	}
}

func TestIncidentsTruthIsACopy(t *testing.T) {
	_, api, _ := serveIncidents(t, "")
	a := api.Truth()
	for id := range a.ByEmployee {
		a.ByEmployee[id]["low"] = -1
	}
	a.PerType["denial"] = -1
	b := api.Truth()
	for id := range b.ByEmployee {
		assert.GreaterOrEqual(t, b.ByEmployee[id]["low"], 0)
	}
	assert.Positive(t, b.PerType["denial"])
}

func TestIncidentsDeterminism(t *testing.T) {
	all := func(list string) (string, IncidentsTruth) {
		t.Helper()
		_, api, url := serveIncidents(t, list)
		var b strings.Builder
		b.WriteString(get(t, url+"/identities", incAuth).body)
		for _, typ := range IncidentTypes {
			b.WriteString(get(t, url+"/incidents/"+typ, incAuth).body)
		}
		return b.String(), api.Truth()
	}
	a, truth := all("seed=3,size=500")
	again, truthAgain := all("seed=3,size=500")
	assert.Equal(t, a, again, "same seed and size, same bytes")
	assert.Equal(t, truth, truthAgain)
	other, _ := all("seed=4,size=500")
	assert.NotEqual(t, a, other, "another seed, other data")
	bigger, _ := all("seed=3,size=501")
	assert.NotEqual(t, a, bigger)
}

func TestIncidentsNewDataOnSeedChange(t *testing.T) {
	s, api, _ := serveIncidents(t, "")
	k := s.Knobs()
	k.Latency = time.Millisecond
	s.SetKnobs(k)
	assert.Same(t, api, s.Routes(), "knobs other than Size and Seed keep the data")
	k.Size = 70
	s.SetKnobs(k)
	fresh, ok := s.Routes().(*IncidentsAPI)
	require.True(t, ok)
	total := 0
	for _, n := range fresh.Truth().PerType {
		total += n
	}
	assert.Equal(t, 70, total)
}

func TestIncidentsLargeSize(t *testing.T) {
	start := time.Now()
	api := Upstreams()[Incidents].Routes(Knobs{Size: 100_000, Seed: 1}).(*IncidentsAPI)
	assert.Less(t, time.Since(start), 5*time.Second, "building 100000 incidents (about 0.15 s, 1 s under -race)")
	perType := api.Truth().PerType

	_, _, url := serveIncidents(t, "size=100000")
	total := 0
	for _, typ := range IncidentTypes {
		res := get(t, url+"/incidents/"+typ, incAuth)
		require.Equal(t, http.StatusOK, res.status)
		var body struct{ Results []json.RawMessage }
		require.NoError(t, json.Unmarshal([]byte(res.body), &body))
		assert.Len(t, body.Results, perType[typ], typ)
		total += len(body.Results)
	}
	assert.Equal(t, 100_000, total)
	ids := decodeIdentities(t, []byte(get(t, url+"/identities", incAuth).body))
	assert.Len(t, ids, 1000*3/2, "1000 employees, about 1.5 IPs each")
}

func TestIncidentTimestampSpelling(t *testing.T) {
	tests := []struct {
		ticks int64
		bare  bool
		want  string
	}{
		{15000204219333, false, "1500020421.9333"},
		{15000204219330, false, "1500020421.933"},
		{15000204210500, true, "1500020421.05"},
		{15000204210001, false, "1500020421.0001"},
		{15000204210000, false, "1500020421.0"},
		{15000204210000, true, "1500020421"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, string(appendIncTimestamp(nil, tt.ticks, tt.bare)))
	}
}
