package incidents

import (
	"bytes"
	"cmp"
	"encoding/json"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// goldenIdentities: employee 77 owns two IPs; 203.0.113.9 (employee 900) is only ever a
// source_ip, which must never be resolved, so 900 is not in the snapshot.
const goldenIdentities = `{
	"17.99.238.86": 4506,
	"10.1.2.3": 77,
	"10.1.2.4": 77,
	"203.0.113.9": 900,
	"192.168.0.5": 12
}`

// goldenResults covers every rule. 1500000100.5, 1500000100.50 and 15000001005e-1 are the
// same instant written three ways: the three incidents of 4506/high tie across types and
// keep their bytes. The two misuse incidents of 12/low tie within a type, and tie with a
// probing one too. probing lists a later incident first (the spec says lists come sorted;
// relay sorts anyway).
var goldenResults = map[string]string{
	"denial": `{"results": [
		{"reported_by": 4506, "source_ip": "203.0.113.9", "priority": "high", "timestamp": 1500000100.5},
		{"reported_by": "1000", "source_ip": "17.99.238.86", "priority": "low", "timestamp": 1500000200}
	]}`,
	"intrusion": `{"results": [
		{"internal_ip": "17.99.238.86", "source_ip": "203.0.113.9", "priority": "high", "timestamp": 1500000100.50},
		{"internal_ip": "10.77.0.1", "source_ip": "10.1.2.3", "priority": "critical", "timestamp": 1500000300}
	]}`,
	"executable": `{"results": [
		{"machine_ip": "17.99.238.86", "priority": "medium", "timestamp": 1500020421.9333},
		{"machine_ip": "10.9.9.9", "priority": "low", "timestamp": 1500020500}
	]}`,
	"misuse": `{"results": [
		{"employee_id": "4506", "priority": "medium", "timestamp": 1500000050, "type": "bogus", "note": "caf\u00e9 \"x\" é"},
		{"employee_id": 12, "priority": "low", "timestamp": 1500000400.25, "details": {"a": [1, 2.50]}},
		{"employee_id": "12", "priority": "low", "timestamp": 1500000400.25}
	]}`,
	"unauthorized": `{"results": []}`,
	"probing": `{"results": [
		{"ip": "10.1.2.3", "priority": "low", "timestamp": 1500000600},
		{"ip": "192.168.0.5", "priority": "low", "timestamp": 1500000400.25}
	]}`,
	"other": `{"results": [
		{"identifier": 77, "priority": "low", "timestamp": 1500000500},
		{"identifier": "10.1.2.4", "priority": "low", "timestamp": 1500000550},
		{"identifier": "12", "priority": "critical", "timestamp": 1500000000},
		{"identifier": "8.8.8.8", "priority": "high", "timestamp": 1500000700},
		{"identifier": 4506, "priority": "high", "timestamp": 15000001005e-1}
	]}`,
}

// goldenJSON is the expected snapshot, for assert.JSONEq.
const goldenJSON = `{
	"12": {
		"low": {"count": 3, "incidents": [
			{"type": "misuse", "employee_id": 12, "priority": "low", "timestamp": 1500000400.25, "details": {"a": [1, 2.5]}},
			{"type": "misuse", "employee_id": "12", "priority": "low", "timestamp": 1500000400.25},
			{"type": "probing", "ip": "192.168.0.5", "priority": "low", "timestamp": 1500000400.25}
		]},
		"medium": {"count": 0, "incidents": []},
		"high": {"count": 0, "incidents": []},
		"critical": {"count": 1, "incidents": [
			{"type": "other", "identifier": "12", "priority": "critical", "timestamp": 1500000000}
		]}
	},
	"77": {
		"low": {"count": 3, "incidents": [
			{"type": "other", "identifier": 77, "priority": "low", "timestamp": 1500000500},
			{"type": "other", "identifier": "10.1.2.4", "priority": "low", "timestamp": 1500000550},
			{"type": "probing", "ip": "10.1.2.3", "priority": "low", "timestamp": 1500000600}
		]},
		"medium": {"count": 0, "incidents": []},
		"high": {"count": 0, "incidents": []},
		"critical": {"count": 0, "incidents": []}
	},
	"1000": {
		"low": {"count": 1, "incidents": [
			{"type": "denial", "reported_by": "1000", "source_ip": "17.99.238.86", "priority": "low", "timestamp": 1500000200}
		]},
		"medium": {"count": 0, "incidents": []},
		"high": {"count": 0, "incidents": []},
		"critical": {"count": 0, "incidents": []}
	},
	"4506": {
		"low": {"count": 0, "incidents": []},
		"medium": {"count": 2, "incidents": [
			{"type": "misuse", "employee_id": "4506", "priority": "medium", "timestamp": 1500000050, "note": "café \"x\" é"},
			{"type": "executable", "machine_ip": "17.99.238.86", "priority": "medium", "timestamp": 1500020421.9333}
		]},
		"high": {"count": 3, "incidents": [
			{"type": "denial", "reported_by": 4506, "source_ip": "203.0.113.9", "priority": "high", "timestamp": 1500000100.5},
			{"type": "intrusion", "internal_ip": "17.99.238.86", "source_ip": "203.0.113.9", "priority": "high", "timestamp": 1500000100.5},
			{"type": "other", "identifier": 4506, "priority": "high", "timestamp": 1500000100.5}
		]},
		"critical": {"count": 0, "incidents": []}
	}
}`

// goldenBytes is the same snapshot byte for byte: employees in numeric order (12 < 77 <
// 1000 < 4506, not "1000" < "12" < "4506" < "77"), upstream numbers and strings as received.
var goldenBytes = strings.Join([]string{
	`{"12":{"low":{"count":3,"incidents":[`,
	`{"type":"misuse","employee_id":12,"priority":"low","timestamp":1500000400.25,"details":{"a": [1, 2.50]}},`,
	`{"type":"misuse","employee_id":"12","priority":"low","timestamp":1500000400.25},`,
	`{"type":"probing","ip":"192.168.0.5","priority":"low","timestamp":1500000400.25}]},`,
	`"medium":{"count":0,"incidents":[]},"high":{"count":0,"incidents":[]},"critical":{"count":1,"incidents":[`,
	`{"type":"other","identifier":"12","priority":"critical","timestamp":1500000000}]}},`,

	`"77":{"low":{"count":3,"incidents":[`,
	`{"type":"other","identifier":77,"priority":"low","timestamp":1500000500},`,
	`{"type":"other","identifier":"10.1.2.4","priority":"low","timestamp":1500000550},`,
	`{"type":"probing","ip":"10.1.2.3","priority":"low","timestamp":1500000600}]},`,
	`"medium":{"count":0,"incidents":[]},"high":{"count":0,"incidents":[]},"critical":{"count":0,"incidents":[]}},`,

	`"1000":{"low":{"count":1,"incidents":[`,
	`{"type":"denial","reported_by":"1000","source_ip":"17.99.238.86","priority":"low","timestamp":1500000200}]},`,
	`"medium":{"count":0,"incidents":[]},"high":{"count":0,"incidents":[]},"critical":{"count":0,"incidents":[]}},`,

	`"4506":{"low":{"count":0,"incidents":[]},"medium":{"count":2,"incidents":[`,
	`{"type":"misuse","employee_id":"4506","priority":"medium","timestamp":1500000050,"note":"caf\u00e9 \"x\" é"},`,
	`{"type":"executable","machine_ip":"17.99.238.86","priority":"medium","timestamp":1500020421.9333}]},`,
	`"high":{"count":3,"incidents":[`,
	`{"type":"denial","reported_by":4506,"source_ip":"203.0.113.9","priority":"high","timestamp":1500000100.5},`,
	`{"type":"intrusion","internal_ip":"17.99.238.86","source_ip":"203.0.113.9","priority":"high","timestamp":1500000100.50},`,
	`{"type":"other","identifier":4506,"priority":"high","timestamp":15000001005e-1}]},`,
	`"critical":{"count":0,"incidents":[]}}}`,
}, "")

var goldenSummary = Summary{
	Employees:    4,
	Incidents:    13,
	Unattributed: 3, // intrusion 10.77.0.1, executable 10.9.9.9, other 8.8.8.8
	ByType:       map[string]int{"denial": 2, "intrusion": 2, "executable": 2, "misuse": 3, "unauthorized": 0, "probing": 2, "other": 5},
	ByPriority:   map[string]int{"low": 7, "medium": 2, "high": 3, "critical": 1},
}

func bodies(m map[string]string) map[string][]byte {
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = []byte(v)
	}
	return out
}

func TestBuildGolden(t *testing.T) {
	got, sum, err := Build([]byte(goldenIdentities), bodies(goldenResults))
	require.NoError(t, err)
	assert.JSONEq(t, goldenJSON, string(got))
	assert.Equal(t, goldenBytes, string(got))
	assert.Equal(t, goldenSummary, sum)
	assert.NotContains(t, string(got), `"900"`, "source_ip must never be resolved")

	body, err := json.Marshal(sum)
	require.NoError(t, err)
	assert.Equal(t, `{"employees":4,"incidents":13,"unattributed":3,`+
		`"by_type":{"denial":2,"executable":2,"intrusion":2,"misuse":3,"other":5,"probing":2,"unauthorized":0},`+
		`"by_priority":{"critical":1,"high":3,"low":7,"medium":2}}`, string(body))
}

// TestBuildDeterministic builds the golden input many times, from fresh maps each time (so
// that map iteration order differs), and wants the same bytes.
func TestBuildDeterministic(t *testing.T) {
	want, _, err := Build([]byte(goldenIdentities), bodies(goldenResults))
	require.NoError(t, err)
	for range 20 {
		got, _, err := Build([]byte(goldenIdentities), bodies(goldenResults))
		require.NoError(t, err)
		require.Equal(t, string(want), string(got))
	}
}

// TestBuildDoesNotModifyInput: the bodies are only read.
func TestBuildDoesNotModifyInput(t *testing.T) {
	ids := []byte(goldenIdentities)
	res := bodies(goldenResults)
	before := maps.Clone(res)
	for k, v := range before {
		before[k] = bytes.Clone(v)
	}
	_, _, err := Build(ids, res)
	require.NoError(t, err)
	assert.Equal(t, goldenIdentities, string(ids))
	assert.Equal(t, before, res)
}

// emptyResults is every type with an empty list.
func emptyResults() map[string]string {
	m := make(map[string]string, len(Types))
	for _, t := range Types {
		m[t] = `{"results": []}`
	}
	return m
}

// with returns emptyResults with some bodies replaced.
func with(bodies map[string]string) map[string]string {
	m := emptyResults()
	maps.Copy(m, bodies)
	return m
}

func TestBuild(t *testing.T) {
	zeroTypes := map[string]int{"denial": 0, "intrusion": 0, "executable": 0, "misuse": 0, "unauthorized": 0, "probing": 0, "other": 0}
	zeroPriorities := map[string]int{"low": 0, "medium": 0, "high": 0, "critical": 0}
	typesWith := func(kv ...any) map[string]int {
		m := maps.Clone(zeroTypes)
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1].(int)
		}
		return m
	}
	prioritiesWith := func(kv ...any) map[string]int {
		m := maps.Clone(zeroPriorities)
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1].(int)
		}
		return m
	}
	const empty3 = `"medium":{"count":0,"incidents":[]},"high":{"count":0,"incidents":[]},"critical":{"count":0,"incidents":[]}}`

	tests := []struct {
		name       string
		identities string
		results    map[string]string
		want       string
		summary    Summary
	}{
		{
			name:       "all lists empty",
			identities: `{"10.0.0.1": 1}`,
			results:    emptyResults(),
			want:       `{}`,
			summary:    Summary{ByType: zeroTypes, ByPriority: zeroPriorities},
		},
		{
			name:       "empty identities: every IP is unknown, ids still count",
			identities: ` {} `,
			results: with(map[string]string{
				"probing": `{"results":[{"ip":"10.0.0.1","priority":"low","timestamp":1}]}`,
				"misuse":  `{"results":[{"employee_id":5,"priority":"low","timestamp":2}]}`,
			}),
			want:    `{"5":{"low":{"count":1,"incidents":[{"type":"misuse","employee_id":5,"priority":"low","timestamp":2}]},` + empty3 + `}`,
			summary: Summary{Employees: 1, Incidents: 1, Unattributed: 1, ByType: typesWith("probing", 1, "misuse", 1), ByPriority: prioritiesWith("low", 1)},
		},
		{
			name:       "only unattributed incidents",
			identities: `{"10.0.0.1": 1}`,
			results: with(map[string]string{
				"executable": `{"results":[{"machine_ip":"10.0.0.2","priority":"high","timestamp":1}]}`,
				"other":      `{"results":[{"identifier":"10.0.0.3","priority":"low","timestamp":1}]}`,
			}),
			want:    `{}`,
			summary: Summary{Unattributed: 2, ByType: typesWith("executable", 1, "other", 1), ByPriority: zeroPriorities},
		},
		{
			name:       "4506, \"4506\", \"04506\" and \"\\u0034506\" are one employee",
			identities: `{"10.0.0.1": 4506}`,
			results: with(map[string]string{
				"denial":       `{"results":[{"reported_by":"04506","priority":"low","timestamp":4}]}`,
				"misuse":       `{"results":[{"employee_id":4506,"priority":"low","timestamp":3}]}`,
				"unauthorized": `{"results":[{"employee_id":"\u0034506","priority":"low","timestamp":2}]}`,
				"other":        `{"results":[{"identifier":"4506","priority":"low","timestamp":1}]}`,
			}),
			want: `{"4506":{"low":{"count":4,"incidents":[` +
				`{"type":"other","identifier":"4506","priority":"low","timestamp":1},` +
				`{"type":"unauthorized","employee_id":"\u0034506","priority":"low","timestamp":2},` +
				`{"type":"misuse","employee_id":4506,"priority":"low","timestamp":3},` +
				`{"type":"denial","reported_by":"04506","priority":"low","timestamp":4}]},` + empty3 + `}`,
			summary: Summary{Employees: 1, Incidents: 4, ByType: typesWith("denial", 1, "misuse", 1, "unauthorized", 1, "other", 1), ByPriority: prioritiesWith("low", 4)},
		},
		{
			name:       "employees in numeric order, the largest id included",
			identities: `{}`,
			results: with(map[string]string{
				"misuse": `{"results":[` +
					`{"employee_id":9223372036854775807,"priority":"low","timestamp":1},` +
					`{"employee_id":10,"priority":"low","timestamp":1},` +
					`{"employee_id":"9","priority":"low","timestamp":1},` +
					`{"employee_id":0,"priority":"low","timestamp":1}]}`,
			}),
			want: `{"0":{"low":{"count":1,"incidents":[{"type":"misuse","employee_id":0,"priority":"low","timestamp":1}]},` + empty3 + `,` +
				`"9":{"low":{"count":1,"incidents":[{"type":"misuse","employee_id":"9","priority":"low","timestamp":1}]},` + empty3 + `,` +
				`"10":{"low":{"count":1,"incidents":[{"type":"misuse","employee_id":10,"priority":"low","timestamp":1}]},` + empty3 + `,` +
				`"9223372036854775807":{"low":{"count":1,"incidents":[{"type":"misuse","employee_id":9223372036854775807,"priority":"low","timestamp":1}]},` + empty3 + `}`,
			summary: Summary{Employees: 4, Incidents: 4, ByType: typesWith("misuse", 4), ByPriority: prioritiesWith("low", 4)},
		},
		{
			name:       "timestamps by value: negative, exponent, integer and fraction",
			identities: `{}`,
			results: with(map[string]string{
				"misuse": `{"results":[` +
					`{"employee_id":1,"priority":"low","timestamp":2},` +
					`{"employee_id":1,"priority":"low","timestamp":1.5e0},` +
					`{"employee_id":1,"priority":"low","timestamp":-3},` +
					`{"employee_id":1,"priority":"low","timestamp":10}]}`,
			}),
			want: `{"1":{"low":{"count":4,"incidents":[` +
				`{"type":"misuse","employee_id":1,"priority":"low","timestamp":-3},` +
				`{"type":"misuse","employee_id":1,"priority":"low","timestamp":1.5e0},` +
				`{"type":"misuse","employee_id":1,"priority":"low","timestamp":2},` +
				`{"type":"misuse","employee_id":1,"priority":"low","timestamp":10}]},` + empty3 + `}`,
			summary: Summary{Employees: 1, Incidents: 4, ByType: typesWith("misuse", 4), ByPriority: prioritiesWith("low", 4)},
		},
		{
			name:       "records kept as received: escaped keys, nested values, an upstream type replaced wherever it is",
			identities: `{"10.0.0.1": 3}`,
			results: with(map[string]string{
				"probing": "{\"results\":[{\"\\u0074ype\":\"x\",\"ip\" : \"10.0.0.1\",\n\t\"priority\":\"\\u006cow\", \"timestamp\":1 ," +
					`"tags":["a",{"b":null}],"ok":true,"\"q\"":"\\"}]}`,
			}),
			want: `{"3":{"low":{"count":1,"incidents":[{"type":"probing","ip":"10.0.0.1","priority":"\u006cow","timestamp":1,` +
				`"tags":["a",{"b":null}],"ok":true,"\"q\"":"\\"}]},` + empty3 + `}`,
			summary: Summary{Employees: 1, Incidents: 1, ByType: typesWith("probing", 1), ByPriority: prioritiesWith("low", 1)},
		},
		{
			name:       "a record with many members",
			identities: `{}`,
			results: with(map[string]string{
				"misuse": `{"results":[{"employee_id":1,"priority":"high","timestamp":1, ` + manyKeys(20) + `}]}`,
			}),
			want: `{"1":{"low":{"count":0,"incidents":[]},"medium":{"count":0,"incidents":[]},"high":{"count":1,"incidents":[` +
				`{"type":"misuse","employee_id":1,"priority":"high","timestamp":1,` + strings.ReplaceAll(manyKeys(20), " ", "") + `}]},` +
				`"critical":{"count":0,"incidents":[]}}}`,
			summary: Summary{Employees: 1, Incidents: 1, ByType: typesWith("misuse", 1), ByPriority: prioritiesWith("high", 1)},
		},
		{
			name:       "same IP listed twice for the same employee",
			identities: `{"10.0.0.1": 3, "10.0.0.1": 3}`,
			results: with(map[string]string{
				"probing": `{"results":[{"ip":"10.0.0.1","priority":"critical","timestamp":1}]}`,
			}),
			want:    `{"3":{"low":{"count":0,"incidents":[]},"medium":{"count":0,"incidents":[]},"high":{"count":0,"incidents":[]},"critical":{"count":1,"incidents":[{"type":"probing","ip":"10.0.0.1","priority":"critical","timestamp":1}]}}}`,
			summary: Summary{Employees: 1, Incidents: 1, ByType: typesWith("probing", 1), ByPriority: prioritiesWith("critical", 1)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, sum, err := Build([]byte(tt.identities), bodies(tt.results))
			require.NoError(t, err)
			assert.True(t, json.Valid(got), "not JSON: %s", got)
			assert.Equal(t, tt.want, string(got))
			assert.Equal(t, tt.summary, sum)
		})
	}
}

func TestBuildErrors(t *testing.T) {
	// rec makes a body for typ of a good record then record (index 1), every other list empty.
	rec := func(typ, record string) map[string]string {
		owner := map[string]string{
			"denial": `"reported_by": 1`, "intrusion": `"internal_ip": "10.0.0.1"`, "executable": `"machine_ip": "10.0.0.1"`,
			"misuse": `"employee_id": 1`, "unauthorized": `"employee_id": 1`, "probing": `"ip": "10.0.0.1"`, "other": `"identifier": 1`,
		}[typ]
		return with(map[string]string{typ: `{"results": [{"priority": "low", "timestamp": 1, ` + owner + `}, ` + record + `]}`})
	}
	const ids = `{"10.0.0.1": 1}`
	tests := []struct {
		name       string
		identities string
		results    map[string]string
		want       string
	}{
		// identities
		{"identities empty", ``, emptyResults(), "identities: body is empty"},
		{"identities not JSON", `{"10.0.0.1": 1,}`, emptyResults(), "identities: body is not valid JSON: invalid character '}' looking for beginning of object key string"},
		{"identities not UTF-8", "{\"10.0.0.1\": 1, \"\xff\": 2}", emptyResults(), "identities: body is not valid UTF-8"},
		{"identities an array", `[{"10.0.0.1": 1}]`, emptyResults(), `identities: body is [{"10.0.0.1": 1}], not an object of IPv4 addresses to employee ids`},
		{"identities two values", `{} {}`, emptyResults(), "identities: body is not valid JSON: invalid character '{' after top-level value"},
		{"identity a string", `{"10.0.0.1": "4506"}`, emptyResults(), `identities: "10.0.0.1": "4506" is not an employee id (an integer)`},
		{"identity a fraction", `{"10.0.0.1": 4506.5}`, emptyResults(), `identities: "10.0.0.1": 4506.5 is not an employee id (an integer)`},
		{"identity negative", `{"10.0.0.1": -1}`, emptyResults(), `identities: "10.0.0.1": -1 is not an employee id (an integer)`},
		{"identity null", `{"10.0.0.1": null}`, emptyResults(), `identities: "10.0.0.1": null is not an employee id (an integer)`},
		{"identity too large", `{"10.0.0.1": 9223372036854775808}`, emptyResults(), `identities: "10.0.0.1": 9223372036854775808 is not an employee id (an integer)`},
		{"identity key not IPv4", `{"10.0.0.1": 1, "host.example": 2}`, emptyResults(), `identities: key "host.example" is not an IPv4 address`},
		{"identity key with leading zero", `{"10.0.0.01": 1}`, emptyResults(), `identities: key "10.0.0.01" is not an IPv4 address`},
		{"identity IP twice", `{"10.0.0.1": 1, "10.0.0.1": 2}`, emptyResults(), `identities: "10.0.0.1" appears twice, for employees 1 and 2`},

		// results map
		{"type missing", ids, func() map[string]string { m := emptyResults(); delete(m, "probing"); return m }(),
			"incidents/probing: no body (every type is needed for a snapshot)"},
		{"no results at all", ids, nil, "incidents/denial: no body (every type is needed for a snapshot)"},
		{"unknown types", ids, with(map[string]string{"phishing": `{"results": []}`, "Denial": `{"results": []}`}),
			`incidents: results hold unknown types ["Denial" "phishing"]`},

		// bodies
		{"body empty", ids, with(map[string]string{"misuse": " "}), "incidents/misuse: body is empty"},
		{"body not JSON", ids, with(map[string]string{"misuse": `{"results": [}`}), "incidents/misuse: body is not valid JSON: invalid character '}' looking for beginning of value"},
		{"body not UTF-8", ids, with(map[string]string{"misuse": "{\"results\": [{\"priority\": \"low\", \"timestamp\": 1, \"employee_id\": 1, \"x\": \"\xc3\"}]}"}), "incidents/misuse: body is not valid UTF-8"},
		{"body an array", ids, with(map[string]string{"misuse": `[]`}), `incidents/misuse: body is not {"results": [...]}: it is []`},
		{"body null", ids, with(map[string]string{"misuse": `null`}), `incidents/misuse: body is not {"results": [...]}: it is null`},
		{"body without results", ids, with(map[string]string{"misuse": `{}`}), `incidents/misuse: body is not {"results": [...]}: no "results"`},
		{"results null", ids, with(map[string]string{"misuse": `{"results": null}`}), `incidents/misuse: body is not {"results": [...]}: "results" is null`},
		{"results an object", ids, with(map[string]string{"misuse": `{"results": {"0": {}}}`}), `incidents/misuse: body is not {"results": [...]}: "results" is {"0": {}}`},
		{"another key", ids, with(map[string]string{"misuse": `{"results": [], "next": "/incidents/misuse?page=2"}`}), `incidents/misuse: body is not {"results": [...]}: unexpected key "next"`},
		{"results twice", ids, with(map[string]string{"misuse": `{"results": [], "results": []}`}), `incidents/misuse: body is not {"results": [...]}: "results" appears twice`},
		{"record not an object", ids, with(map[string]string{"misuse": `{"results": [{"priority": "low", "timestamp": 1, "employee_id": 1}, [1, 2]]}`}), `incidents/misuse[1]: [1, 2] is not an object`},
		{"record null", ids, with(map[string]string{"misuse": `{"results": [null]}`}), `incidents/misuse[0]: null is not an object`},
		{"long value cut", ids, rec("misuse", `{"priority": "low", "timestamp": 1, "employee_id": "`+strings.Repeat("é", 40)+`"}`),
			`incidents/misuse[1]: employee_id "` + strings.Repeat("é", 31) + `… is not an employee id (an integer, or a string of digits)`},

		// priority and timestamp
		{"priority missing", ids, rec("misuse", `{"timestamp": 1, "employee_id": 1}`), `incidents/misuse[1]: no "priority"`},
		{"priority unknown", ids, rec("misuse", `{"priority": "urgent", "timestamp": 1, "employee_id": 1}`), `incidents/misuse[1]: priority "urgent" is not one of low, medium, high, critical`},
		{"priority capitalised", ids, rec("misuse", `{"priority": "Low", "timestamp": 1, "employee_id": 1}`), `incidents/misuse[1]: priority "Low" is not one of low, medium, high, critical`},
		{"priority a number", ids, rec("misuse", `{"priority": 1, "timestamp": 1, "employee_id": 1}`), `incidents/misuse[1]: priority 1 is not one of low, medium, high, critical`},
		{"priority null", ids, rec("misuse", `{"priority": null, "timestamp": 1, "employee_id": 1}`), `incidents/misuse[1]: priority null is not one of low, medium, high, critical`},
		{"timestamp missing", ids, rec("misuse", `{"priority": "low", "employee_id": 1}`), `incidents/misuse[1]: no "timestamp"`},
		{"timestamp a string", ids, rec("misuse", `{"priority": "low", "timestamp": "1500020421.9333", "employee_id": 1}`), `incidents/misuse[1]: timestamp "1500020421.9333" is not a number`},
		{"timestamp null", ids, rec("misuse", `{"priority": "low", "timestamp": null, "employee_id": 1}`), `incidents/misuse[1]: timestamp null is not a number`},
		{"timestamp too large", ids, rec("misuse", `{"priority": "low", "timestamp": 1e999, "employee_id": 1}`), `incidents/misuse[1]: timestamp 1e999 is out of range`},
		{"key twice", ids, rec("misuse", `{"priority": "low", "timestamp": 1, "employee_id": 1, "priority": "high"}`), `incidents/misuse[1]: key "priority" appears twice`},
		{"key twice in a long record", ids, rec("misuse", `{"priority": "low", "timestamp": 1, "employee_id": 1, `+manyKeys(40)+`, "k7": 0}`), `incidents/misuse[1]: key "k7" appears twice`},
		{"key twice once escaped", ids, rec("misuse", `{"priority": "low", "timestamp": 1, "employee_id": 1, "\u0065mployee_id": 2}`), `incidents/misuse[1]: key "employee_id" appears twice`},

		// employee ids
		{"id missing", ids, rec("denial", `{"priority": "low", "timestamp": 1, "source_ip": "10.0.0.1"}`), `incidents/denial[1]: no "reported_by"`},
		{"id letters", ids, rec("denial", `{"reported_by": "abc", "priority": "low", "timestamp": 1}`), `incidents/denial[1]: reported_by "abc" is not an employee id (an integer, or a string of digits)`},
		{"id a fraction", ids, rec("denial", `{"reported_by": 4506.5, "priority": "low", "timestamp": 1}`), `incidents/denial[1]: reported_by 4506.5 is not an employee id (an integer, or a string of digits)`},
		{"id a fraction string", ids, rec("misuse", `{"employee_id": "4506.0", "priority": "low", "timestamp": 1}`), `incidents/misuse[1]: employee_id "4506.0" is not an employee id (an integer, or a string of digits)`},
		{"id an exponent", ids, rec("misuse", `{"employee_id": 4.506e3, "priority": "low", "timestamp": 1}`), `incidents/misuse[1]: employee_id 4.506e3 is not an employee id (an integer, or a string of digits)`},
		{"id negative", ids, rec("unauthorized", `{"employee_id": -1, "priority": "low", "timestamp": 1}`), `incidents/unauthorized[1]: employee_id -1 is not an employee id (an integer, or a string of digits)`},
		{"id true", ids, rec("unauthorized", `{"employee_id": true, "priority": "low", "timestamp": 1}`), `incidents/unauthorized[1]: employee_id true is not an employee id (an integer, or a string of digits)`},
		{"id null", ids, rec("unauthorized", `{"employee_id": null, "priority": "low", "timestamp": 1}`), `incidents/unauthorized[1]: employee_id null is not an employee id (an integer, or a string of digits)`},
		{"id empty string", ids, rec("unauthorized", `{"employee_id": "", "priority": "low", "timestamp": 1}`), `incidents/unauthorized[1]: employee_id "" is not an employee id (an integer, or a string of digits)`},
		{"id with a space", ids, rec("unauthorized", `{"employee_id": " 4506", "priority": "low", "timestamp": 1}`), `incidents/unauthorized[1]: employee_id " 4506" is not an employee id (an integer, or a string of digits)`},
		{"id too large", ids, rec("misuse", `{"employee_id": "9223372036854775808", "priority": "low", "timestamp": 1}`), `incidents/misuse[1]: employee_id "9223372036854775808" is not an employee id (an integer, or a string of digits)`},
		{"id an IP", ids, rec("misuse", `{"employee_id": "10.0.0.1", "priority": "low", "timestamp": 1}`), `incidents/misuse[1]: employee_id "10.0.0.1" is not an employee id (an integer, or a string of digits)`},

		// IPs
		{"ip missing", ids, rec("intrusion", `{"source_ip": "10.0.0.1", "priority": "low", "timestamp": 1}`), `incidents/intrusion[1]: no "internal_ip"`},
		{"ip a number", ids, rec("intrusion", `{"internal_ip": 167772161, "priority": "low", "timestamp": 1}`), `incidents/intrusion[1]: internal_ip 167772161 is not an IPv4 address`},
		{"ip an id string", ids, rec("executable", `{"machine_ip": "1", "priority": "low", "timestamp": 1}`), `incidents/executable[1]: machine_ip "1" is not an IPv4 address`},
		{"ip out of range", ids, rec("executable", `{"machine_ip": "256.0.0.1", "priority": "low", "timestamp": 1}`), `incidents/executable[1]: machine_ip "256.0.0.1" is not an IPv4 address`},
		{"ip IPv6", ids, rec("probing", `{"ip": "::ffff:10.0.0.1", "priority": "low", "timestamp": 1}`), `incidents/probing[1]: ip "::ffff:10.0.0.1" is not an IPv4 address`},
		{"ip null", ids, rec("probing", `{"ip": null, "priority": "low", "timestamp": 1}`), `incidents/probing[1]: ip null is not an IPv4 address`},
		{"identifier neither", ids, rec("other", `{"identifier": "abc", "priority": "low", "timestamp": 1}`), `incidents/other[1]: identifier "abc" is neither an employee id nor an IPv4 address`},
		{"identifier a fraction", ids, rec("other", `{"identifier": 1.5, "priority": "low", "timestamp": 1}`), `incidents/other[1]: identifier 1.5 is neither an employee id nor an IPv4 address`},
		{"identifier three octets", ids, rec("other", `{"identifier": "10.0.0", "priority": "low", "timestamp": 1}`), `incidents/other[1]: identifier "10.0.0" is neither an employee id nor an IPv4 address`},
		{"identifier missing", ids, rec("other", `{"priority": "low", "timestamp": 1}`), `incidents/other[1]: no "identifier"`},

		// an unattributed record is still checked
		{"unknown IP, bad priority", ids, rec("probing", `{"ip": "10.9.9.9", "priority": "severe", "timestamp": 1}`), `incidents/probing[1]: priority "severe" is not one of low, medium, high, critical`},
		{"unknown IP, no timestamp", ids, rec("other", `{"identifier": "10.9.9.9", "priority": "low"}`), `incidents/other[1]: no "timestamp"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, sum, err := Build([]byte(tt.identities), bodies(tt.results))
			assert.EqualError(t, err, tt.want)
			assert.Nil(t, got)
			assert.Equal(t, Summary{}, sum)
		})
	}
}

// manyKeys returns n members "k0": 0, "k1": 1, ...
func manyKeys(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = `"k` + strconv.Itoa(i) + `": ` + strconv.Itoa(i)
	}
	return strings.Join(parts, ", ")
}

// TestBuildErrorIsFirstInFetchOrder: with several problems, the error is the first one in
// Types order, then upstream order, whatever the map's iteration order.
func TestBuildErrorIsFirstInFetchOrder(t *testing.T) {
	results := with(map[string]string{
		"other":  `{"results": [{"identifier": "x", "priority": "low", "timestamp": 1}]}`,
		"denial": `{"results": [{"reported_by": 1, "priority": "low", "timestamp": 1}, {"reported_by": "y", "priority": "low", "timestamp": 1}, {}]}`,
	})
	for range 20 {
		_, _, err := Build([]byte(`{}`), bodies(results))
		require.EqualError(t, err, `incidents/denial[1]: reported_by "y" is not an employee id (an integer, or a string of digits)`)
	}
}

func TestTypesMatchKinds(t *testing.T) {
	require.Len(t, kinds, len(Types))
	for i, k := range kinds {
		assert.Equal(t, Types[i], k.name)
	}
	assert.Equal(t, Priorities, priorities[:])
}

func TestIsIPv4MatchesNetip(t *testing.T) {
	for _, s := range []string{
		"0.0.0.0", "1.2.3.4", "255.255.255.255", "17.99.238.86", "10.0.0.1",
		"", ".", "1.2.3", "1.2.3.4.", ".1.2.3.4", "1.2.3.4.5", "256.1.1.1", "1.2.3.256", "1.2.3.1000",
		"01.2.3.4", "1.2.3.04", "1.2.3.00", "1..2.3", "1.2.3.-4", "+1.2.3.4", " 1.2.3.4", "1.2.3.4 ",
		"1.2.3.4%eth0", "::1", "::ffff:1.2.3.4", "a.b.c.d", "1.2.3.4/32", "999.1.1.1",
	} {
		addr, err := netip.ParseAddr(s)
		assert.Equal(t, err == nil && addr.Is4(), isIPv4([]byte(s)), "%q", s)
	}
}

// TestBuildMatchesReference compares Build with a plain encoding/json implementation of the
// same rules on generated data.
func TestBuildMatchesReference(t *testing.T) {
	identities, results := benchData(200, 5_000)
	got, sum, err := Build(identities, results)
	require.NoError(t, err)
	want, wantSum := reference(t, identities, results)
	assert.JSONEq(t, string(want), string(got))
	assert.Equal(t, wantSum, sum)
	assert.Positive(t, sum.Unattributed)
	assert.Equal(t, 5_000, sum.Incidents+sum.Unattributed)
}

// reference builds the snapshot the obvious way, for generated data (whose ids, IPs,
// priorities and timestamps are all well formed).
func reference(t *testing.T, identities []byte, results map[string][]byte) ([]byte, Summary) {
	t.Helper()
	var owners map[string]int
	require.NoError(t, json.Unmarshal(identities, &owners))
	type item struct {
		rec map[string]any
		ts  float64
	}
	snap := map[string]map[string][]item{}
	sum := Summary{ByType: map[string]int{}, ByPriority: map[string]int{}}
	for _, typ := range Types {
		sum.ByType[typ] = 0
	}
	for _, p := range Priorities {
		sum.ByPriority[p] = 0
	}
	field := map[string]string{"denial": "reported_by", "intrusion": "internal_ip", "executable": "machine_ip",
		"misuse": "employee_id", "unauthorized": "employee_id", "probing": "ip", "other": "identifier"}
	for _, typ := range Types {
		var body struct{ Results []map[string]any }
		d := json.NewDecoder(bytes.NewReader(results[typ]))
		d.UseNumber()
		require.NoError(t, d.Decode(&body))
		sum.ByType[typ] = len(body.Results)
		for _, rec := range body.Results {
			var emp string
			switch v := rec[field[typ]].(type) {
			case json.Number:
				emp = v.String()
			case string:
				if strings.Contains(v, ".") {
					id, ok := owners[v]
					if !ok {
						sum.Unattributed++
						continue
					}
					emp = strconv.Itoa(id)
				} else {
					emp = strings.TrimLeft(v, "0")
					if emp == "" {
						emp = "0"
					}
				}
			}
			rec["type"] = typ
			ts, err := rec["timestamp"].(json.Number).Float64()
			require.NoError(t, err)
			prio := rec["priority"].(string)
			if snap[emp] == nil {
				snap[emp] = map[string][]item{}
			}
			// records are appended in Types order, then upstream order: a stable sort by
			// timestamp gives the tie order.
			snap[emp][prio] = append(snap[emp][prio], item{rec, ts})
			sum.ByPriority[prio]++
			sum.Incidents++
		}
	}
	out := map[string]map[string]any{}
	for emp, byPrio := range snap {
		out[emp] = map[string]any{}
		for _, p := range Priorities {
			list := byPrio[p]
			slices.SortStableFunc(list, func(a, b item) int { return cmp.Compare(a.ts, b.ts) })
			recs := make([]map[string]any, 0, len(list))
			for _, it := range list {
				recs = append(recs, it.rec)
			}
			out[emp][p] = map[string]any{"count": len(recs), "incidents": recs}
		}
	}
	sum.Employees = len(out)
	body, err := json.Marshal(out)
	require.NoError(t, err)
	return body, sum
}

// FuzzBuild checks that Build never panics, and that whatever it accepts is valid JSON
// whose counts agree with the Summary. `go test` runs the seeds; fuzz with
//
//	go test ./internal/incidents -run '^$' -fuzz FuzzBuild -fuzztime 60s
func FuzzBuild(f *testing.F) {
	f.Add(goldenIdentities, goldenResults["misuse"], goldenResults["other"])
	f.Add(`{"10.0.0.1": 1}`, `{"results": [{"employee_id": "1", "priority": "low", "timestamp": 1, "type": 2}]}`, `{"results": []}`)
	f.Add(`{"10.0.0.1": 1}`, `{"results": [{"employee_id": "1\\"", "priority": "low", "timestamp": 1}]}`, `{"results": [{"identifier": "10.0.0.1", "priority": "high", "timestamp": -1e3}]}`)
	f.Add(`{}`, `{"results": [{"\\"": "\\\\", "employee_id": 1, "priority": "low", "timestamp": 1}]}`, `{"results": [{"identifier": 3, "priority": "low", "timestamp": 0}]}`)
	f.Fuzz(func(t *testing.T, identities, misuse, other string) {
		results := bodies(with(map[string]string{"misuse": misuse, "other": other}))
		got, sum, err := Build([]byte(identities), results)
		if err != nil {
			return
		}
		var snap map[string]map[string]struct {
			Count     int               `json:"count"`
			Incidents []json.RawMessage `json:"incidents"`
		}
		if err := json.Unmarshal(got, &snap); err != nil {
			t.Fatalf("output is not a snapshot: %v\n%s", err, got)
		}
		if len(snap) != sum.Employees {
			t.Fatalf("%d employees, summary says %d", len(snap), sum.Employees)
		}
		n := 0
		for emp, byPrio := range snap {
			if len(byPrio) != len(Priorities) {
				t.Fatalf("employee %s has %d priorities", emp, len(byPrio))
			}
			for p, list := range byPrio {
				if list.Count != len(list.Incidents) {
					t.Fatalf("employee %s %s: count %d, %d incidents", emp, p, list.Count, len(list.Incidents))
				}
				n += list.Count
			}
		}
		if n != sum.Incidents || sum.ByType["misuse"]+sum.ByType["other"] != sum.Incidents+sum.Unattributed {
			t.Fatalf("%d incidents, summary %+v", n, sum)
		}
		again, _, err := Build([]byte(identities), results)
		if err != nil || !bytes.Equal(got, again) {
			t.Fatalf("second build differs: %v", err)
		}
	})
}
