package incidents

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"unicode/utf8"
)

// FuzzBuildAgreesWithEncodingJSON feeds Build arbitrary identities and incident bodies and
// compares it with referenceBuild, the same rules written plainly on encoding/json: both
// accept or both refuse, what Build accepts is the reference's snapshot (members compared
// in order, values byte for byte) and Summary, and its errors are short valid UTF-8. `go test` runs the seeds; fuzz with
// scripts/fuzz.sh or
//
//	go test ./internal/incidents -run '^$' -fuzz '^FuzzBuildAgreesWithEncodingJSON$' -fuzztime 60s
func FuzzBuildAgreesWithEncodingJSON(f *testing.F) {
	golden := func(typ string) []byte { return []byte(goldenResults[typ]) }
	empty := []byte(`{"results": []}`)
	add := func(identities string, bodies map[string]string) {
		body := func(typ string) []byte {
			if b, ok := bodies[typ]; ok {
				return []byte(b)
			}
			return empty
		}
		f.Add([]byte(identities), body("denial"), body("intrusion"), body("executable"), body("misuse"),
			body("unauthorized"), body("probing"), body("other"))
	}
	f.Add([]byte(goldenIdentities), golden("denial"), golden("intrusion"), golden("executable"), golden("misuse"),
		golden("unauthorized"), golden("probing"), golden("other"))
	add(`{"17.99.238.86": 4506, "10.1.2.3": 77}`, map[string]string{
		"intrusion": `{"results": [{"internal_ip": "17.99.238.86", "source_ip": "10.1.2.3", "priority": "high", "timestamp": 1500020421.9333}]}`,
		"other":     `{"results": [{"identifier": "10.1.2.3", "priority": "low", "timestamp": 1}, {"identifier": "0077", "priority": "low", "timestamp": 1.0}]}`,
	})
	add(`{"10.0.0.1": 1, "10.0.0.1": 1}`, map[string]string{"probing": `{"results": [{"ip": "10.0.0.1", "priority": "critical", "timestamp": -0}]}`})
	add(`{"10.0.0.1": 1, "10.0.0.1": 2}`, nil)
	add(`{"10.0.0.01": 1}`, nil)
	add(`{"10.0.0.1": "1"}`, nil)
	add(`{"10.0.0.1": 9223372036854775808}`, nil)
	add(`{"10.0.0.1": 1.0}`, nil)
	add(`null`, nil)
	add(`[]`, nil)
	add("\ufeff{}", nil)
	add(`{"10.0.0.1": 1`, nil)
	add(`{}`, map[string]string{"denial": `{"results": [{"reported_by": 9223372036854775807, "priority": "low", "timestamp": 1e308}]}`})
	add(`{}`, map[string]string{"denial": `{"results": [{"reported_by": 1, "priority": "low", "timestamp": 1e309}]}`})
	add(`{}`, map[string]string{"denial": `{"results": [{"reported_by": 1, "priority": "low", "timestamp": "1"}]}`})
	add(`{}`, map[string]string{"denial": `{"results": [{"reported_by": 1, "priority": "Low", "timestamp": 1}]}`})
	add(`{}`, map[string]string{"denial": `{"results": [{"reported_by": 1, "priority": "l\u006fw", "timestamp": 1}]}`})
	add(`{}`, map[string]string{"denial": `{"results": [{"reported_by": -1, "priority": "low", "timestamp": 1}]}`})
	add(`{}`, map[string]string{"denial": `{"results": [{"reported_by": null, "priority": "low", "timestamp": 1}]}`})
	add(`{}`, map[string]string{"denial": `{"results": [{"reported_by": 1, "priority": "low", "timestamp": 1, "reported_by": 2}]}`})
	add(`{}`, map[string]string{"denial": `{"results": [{"reported_by": 1, "priority": "low", "timestamp": 1, "report\u0065d_by": 2}]}`})
	add(`{}`, map[string]string{"denial": `{"results": [{"reported_by": 1, "priority": "low", "timestamp": 1, "type": "x", "note": "日本\n"}]}`})
	add(`{}`, map[string]string{"denial": `{"results": [null]}`})
	add(`{}`, map[string]string{"denial": `{"results": null}`})
	add(`{}`, map[string]string{"denial": `{"results": [], "next": null}`})
	add(`{}`, map[string]string{"denial": `{"results": [], "results": []}`})
	add(`{}`, map[string]string{"denial": `{"result\u0073": []}`})
	add(`{}`, map[string]string{"denial": "{\"results\": [{\"reported_by\": 1, \"priority\": \"low\", \"timestamp\": 1, \"x\": \"\xff\"}]}"})
	add(`{}`, map[string]string{"denial": `{"results": [{"reported_by": 1, "priority": "low", "timestamp": 1`})
	add(`{"1.2.3.4": 5}`, map[string]string{"executable": `{"results": [{"machine_ip": " 1.2.3.4", "priority": "low", "timestamp": 1}]}`})
	add(`{"1.2.3.4": 5}`, map[string]string{"executable": `{"results": [{"machine_ip": "1.2.3.\u0034", "priority": "low", "timestamp": 1}]}`})
	add(`{"1.2.3.4": 5}`, map[string]string{"executable": `{"results": [{"machine_ip": "::ffff:1.2.3.4", "priority": "low", "timestamp": 1}]}`})
	add(`{"1.2.3.4": 5}`, map[string]string{"other": `{"results": [{"identifier": 1.5, "priority": "low", "timestamp": 1}]}`})
	add(`{"1.2.3.4": 5}`, map[string]string{"other": `{"results": [{"identifier": "", "priority": "low", "timestamp": 1}]}`})
	add(`{"1.2.3.4": 5}`, map[string]string{"misuse": `{"results": [{"employee_id": "99999999999999999999", "priority": "low", "timestamp": 1}]}`})

	f.Fuzz(func(t *testing.T, identities, denial, intrusion, executable, misuse, unauthorized, probing, other []byte) {
		results := map[string][]byte{"denial": denial, "intrusion": intrusion, "executable": executable, "misuse": misuse,
			"unauthorized": unauthorized, "probing": probing, "other": other}
		got, sum, err := Build(identities, results)
		// The error becomes an activity failure: Temporal records only valid UTF-8, and
		// history wants an excerpt, not a body.
		if err != nil && (!utf8.ValidString(err.Error()) || len(err.Error()) > 1024) {
			t.Fatalf("error not fit for a failure: %.300q", err)
		}
		want, wantSum, whyNot := referenceBuild(identities, results)
		if whyNot != "" {
			if err == nil {
				t.Fatalf("Build accepts what the reference refuses (%s):\n%s", whyNot, got)
			}
			return
		}
		if err != nil {
			t.Fatalf("Build refuses what the reference accepts: %v", err)
		}
		if !reflect.DeepEqual(sum, wantSum) {
			t.Fatalf("summary %+v, want %+v", sum, wantSum)
		}
		if msg := compareSnapshot(got, want); msg != "" {
			t.Fatalf("%s\nsnapshot: %s", msg, got)
		}
	})
}

// refMember is one member of a JSON object: its name unescaped, its value as written.
type refMember struct {
	name string
	val  []byte
}

// refIncident is one incident of the reference snapshot.
type refIncident struct {
	members []refMember
	ts      float64
}

// refSnapshot: employee id → priority index → incidents, in order.
type refSnapshot map[int64]*[4][]refIncident

// objectMembers reads the members of a JSON object in order with encoding/json; false for
// any other value.
func objectMembers(raw []byte) ([]refMember, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	var members []refMember
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, false
		}
		members = append(members, refMember{tok.(string), bytes.TrimSpace(val)})
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, false
	}
	return members, true
}

// arrayElements reads the elements of a JSON array; false for any other value.
func arrayElements(raw []byte) ([]json.RawMessage, bool) {
	var elems []json.RawMessage
	if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &elems) != nil {
		return nil, false
	}
	return elems, true
}

var (
	jsonDigits  = regexp.MustCompile(`^[0-9]+$`)
	typeOwners  = map[string]string{"denial": "reported_by", "intrusion": "internal_ip", "executable": "machine_ip", "misuse": "employee_id", "unauthorized": "employee_id", "probing": "ip", "other": "identifier"}
	ownerIsIP   = map[string]bool{"intrusion": true, "executable": true, "probing": true}
	ownerIsBoth = map[string]bool{"other": true}
)

// refID reads an employee id: digits only, at most 2^63-1; from a JSON string too when
// strings are allowed.
func refID(raw []byte, strings bool) (int64, bool) {
	text := string(raw)
	if raw[0] == '"' {
		if !strings || json.Unmarshal(raw, &text) != nil {
			return 0, false
		}
	}
	if !jsonDigits.MatchString(text) {
		return 0, false
	}
	n, err := strconv.ParseInt(text, 10, 64)
	return n, err == nil
}

// refIPv4 reads a JSON string holding an IPv4 address as net/netip writes it.
func refIPv4(raw []byte) (string, bool) {
	var s string
	if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	a, err := netip.ParseAddr(s)
	return s, err == nil && a.Is4()
}

// referenceBuild applies Build's documented rules with encoding/json. whyNot is empty when
// the input is acceptable.
func referenceBuild(identities []byte, results map[string][]byte) (snap refSnapshot, sum Summary, whyNot string) {
	valid := func(b []byte) bool { return utf8.Valid(b) && json.Valid(b) }
	if !valid(identities) {
		return nil, sum, "identities: not UTF-8 JSON"
	}
	idMembers, ok := objectMembers(identities)
	if !ok {
		return nil, sum, "identities: not an object"
	}
	owners := map[string]int64{}
	for _, m := range idMembers {
		if a, err := netip.ParseAddr(m.name); err != nil || !a.Is4() {
			return nil, sum, "identities: key not IPv4"
		}
		id, ok := refID(m.val, false)
		if !ok {
			return nil, sum, "identities: value not an id"
		}
		if prev, dup := owners[m.name]; dup && prev != id {
			return nil, sum, "identities: an IP with two ids"
		}
		owners[m.name] = id
	}
	if len(results) != len(Types) {
		return nil, sum, "results: not the seven types"
	}
	sum = Summary{ByType: map[string]int{}, ByPriority: map[string]int{}}
	for _, p := range Priorities {
		sum.ByPriority[p] = 0
	}
	snap = refSnapshot{}
	for _, typ := range Types {
		body, ok := results[typ]
		if !ok {
			return nil, sum, "results: no " + typ
		}
		if !valid(body) {
			return nil, sum, typ + ": not UTF-8 JSON"
		}
		top, ok := objectMembers(body)
		if !ok || len(top) != 1 || top[0].name != "results" {
			return nil, sum, typ + `: not {"results": ...}`
		}
		records, ok := arrayElements(top[0].val)
		if !ok {
			return nil, sum, typ + ": results not an array"
		}
		sum.ByType[typ] = len(records)
		for idx, raw := range records {
			rec, ok := objectMembers(raw)
			if !ok {
				return nil, sum, fmt.Sprintf("%s[%d]: not an object", typ, idx)
			}
			byName := map[string][]byte{}
			inc := refIncident{members: []refMember{{"type", []byte(strconv.Quote(typ))}}}
			for _, m := range rec {
				if _, dup := byName[m.name]; dup {
					return nil, sum, fmt.Sprintf("%s[%d]: key twice", typ, idx)
				}
				byName[m.name] = m.val
				if m.name != "type" {
					inc.members = append(inc.members, m)
				}
			}
			var prio string
			prioRaw, ok := byName["priority"]
			if !ok || prioRaw[0] != '"' || json.Unmarshal(prioRaw, &prio) != nil || !slices.Contains(Priorities, prio) {
				return nil, sum, fmt.Sprintf("%s[%d]: priority", typ, idx)
			}
			tsRaw, ok := byName["timestamp"]
			if !ok || !(tsRaw[0] == '-' || '0' <= tsRaw[0] && tsRaw[0] <= '9') || json.Unmarshal(tsRaw, &inc.ts) != nil {
				return nil, sum, fmt.Sprintf("%s[%d]: timestamp", typ, idx)
			}
			ownerRaw, ok := byName[typeOwners[typ]]
			if !ok {
				return nil, sum, fmt.Sprintf("%s[%d]: no owner", typ, idx)
			}
			var emp int64
			known := true
			if ip, isIP := refIPv4(ownerRaw); isIP && (ownerIsIP[typ] || ownerIsBoth[typ]) {
				emp, known = owners[ip]
			} else if ownerIsIP[typ] {
				return nil, sum, fmt.Sprintf("%s[%d]: owner not IPv4", typ, idx)
			} else if emp, ok = refID(ownerRaw, true); !ok {
				return nil, sum, fmt.Sprintf("%s[%d]: owner not an id", typ, idx)
			}
			if !known {
				sum.Unattributed++
				continue
			}
			p := slices.Index(Priorities, prio)
			if snap[emp] == nil {
				snap[emp] = &[4][]refIncident{}
			}
			snap[emp][p] = append(snap[emp][p], inc)
			sum.ByPriority[prio]++
			sum.Incidents++
		}
	}
	for _, byPrio := range snap {
		for p := range byPrio {
			// Appended in type order, then upstream order: a stable sort by time gives the ties.
			slices.SortStableFunc(byPrio[p], func(a, b refIncident) int {
				switch {
				case a.ts < b.ts:
					return -1
				case a.ts > b.ts:
					return 1
				}
				return 0
			})
		}
	}
	sum.Employees = len(snap)
	return snap, sum, ""
}

// compareSnapshot reads Build's output in order and says how it differs from want ("" if
// it does not).
func compareSnapshot(got []byte, want refSnapshot) string {
	if !json.Valid(got) {
		return "not JSON"
	}
	employees, ok := objectMembers(got)
	if !ok {
		return "not an object"
	}
	if len(employees) != len(want) {
		return fmt.Sprintf("%d employees, want %d", len(employees), len(want))
	}
	prev := int64(-1)
	for _, e := range employees {
		emp, err := strconv.ParseInt(e.name, 10, 64)
		if err != nil || strconv.FormatInt(emp, 10) != e.name || emp <= prev {
			return fmt.Sprintf("employee key %q after %d: want ascending canonical ids", e.name, prev)
		}
		prev = emp
		byPrio := want[emp]
		if byPrio == nil {
			return fmt.Sprintf("employee %d should not be listed", emp)
		}
		prios, ok := objectMembers(e.val)
		if !ok || len(prios) != len(Priorities) {
			return fmt.Sprintf("employee %d: want the four priorities", emp)
		}
		for p, pm := range prios {
			if pm.name != Priorities[p] {
				return fmt.Sprintf("employee %d: priority %q at %d", emp, pm.name, p)
			}
			group, ok := objectMembers(pm.val)
			if !ok || len(group) != 2 || group[0].name != "count" || group[1].name != "incidents" {
				return fmt.Sprintf("employee %d %s: want {count, incidents}", emp, pm.name)
			}
			list, ok := arrayElements(group[1].val)
			if !ok || string(group[0].val) != strconv.Itoa(len(list)) {
				return fmt.Sprintf("employee %d %s: count %s, %d incidents", emp, pm.name, group[0].val, len(list))
			}
			if len(list) != len(byPrio[p]) {
				return fmt.Sprintf("employee %d %s: %d incidents, want %d", emp, pm.name, len(list), len(byPrio[p]))
			}
			for i, raw := range list {
				members, ok := objectMembers(raw)
				if !ok || !slices.EqualFunc(members, byPrio[p][i].members, func(a, b refMember) bool {
					return a.name == b.name && bytes.Equal(a.val, b.val)
				}) {
					return fmt.Sprintf("employee %d %s[%d]: %s, want %v", emp, pm.name, i, raw, byPrio[p][i].members)
				}
			}
		}
	}
	return ""
}
