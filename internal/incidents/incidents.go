// Package incidents groups security incidents by employee and priority.
//
// It turns the security incidents API's raw answers (spec/upstreams.md §1) into the snapshot
// served on GET /incidents (spec/api.md). It does no I/O: Build takes the bodies as fetched
// and returns the snapshot's JSON.
//
// Upstream garbage is never silently dropped or half-used: a body, record or field that is
// not what the spec describes makes Build fail with an error naming the endpoint, the
// record's index and the value. Errors name identities problems "identities: ..." and
// incident problems "incidents/<type>[<index>]: ...", after the endpoint that answered.
package incidents

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Types are the seven incident types, in the order relay fetches and breaks ties by.
var Types = []string{"denial", "intrusion", "executable", "misuse", "unauthorized", "probing", "other"}

// Priorities are the four priorities, each always present for a listed employee.
var Priorities = []string{"low", "medium", "high", "critical"}

// Summary says what a snapshot holds.
type Summary struct {
	Employees    int            `json:"employees"`
	Incidents    int            `json:"incidents"`    // attributed ones, in the snapshot
	Unattributed int            `json:"unattributed"` // left out: owner IP not in identities
	ByType       map[string]int `json:"by_type"`      // fetched, per type
	ByPriority   map[string]int `json:"by_priority"`  // in the snapshot, per priority
}

// ownerRule says how an incident names the employee it belongs to.
type ownerRule uint8

const (
	byID     ownerRule = iota // the field holds an employee id
	byIP                      // the field holds an IPv4 address, resolved through identities
	byIDOrIP                  // the field holds either
)

// kind is one incident type: its name and the field naming its owner.
type kind struct {
	name, field string
	rule        ownerRule
}

// kinds is Types with each type's owner field (spec/upstreams.md §1), in the same order.
// Build reads kinds and priorities, never the exported slices, so that a caller changing
// Types or Priorities cannot change what Build does.
var kinds = [...]kind{
	{"denial", "reported_by", byID},    // source_ip is the external attacker: never resolved
	{"intrusion", "internal_ip", byIP}, // source_ip is external: ignored
	{"executable", "machine_ip", byIP},
	{"misuse", "employee_id", byID},
	{"unauthorized", "employee_id", byID},
	{"probing", "ip", byIP},
	{"other", "identifier", byIDOrIP},
}

var priorities = [...]string{"low", "medium", "high", "critical"}

// Build groups incidents by owner employee and priority and returns the snapshot's JSON.
// identities is the raw body of GET /identities; results maps each type to the raw body of
// GET /incidents/{type} ({"results": [...]}).
//
// The snapshot is
//
//	{"<employee id>": {"low": {"count": N, "incidents": [...]}, "medium": {...}, "high": {...}, "critical": {...}}, ...}
//
// with these rules:
//
//   - Owner: denial → reported_by, misuse and unauthorized → employee_id (employee ids);
//     intrusion → internal_ip, executable → machine_ip, probing → ip (IPv4 addresses resolved
//     through identities); other → identifier, an employee id or an IPv4 address. Any other
//     field (source_ip in particular) is never resolved.
//   - An employee id is a JSON integer (digits only: no sign, fraction or exponent) or a JSON
//     string of one or more ASCII digits, at most 2^63-1; 4506, "4506" and "04506" are the
//     same employee, keyed "4506". Ids read from incidents are used whether or not the
//     employee owns an IP in identities.
//   - An IP field must be a JSON string holding a dotted-quad IPv4 address (no leading zeros)
//     and is looked up exactly. An address missing from identities belongs to no one: the
//     incident is left out and counted in Summary.Unattributed (it is still validated).
//   - identities is one JSON object mapping IPv4 strings to JSON integers (digits only). An IP
//     listed twice with the same id is accepted; with two ids it is an error.
//   - Every type of Types must be in results and no other key may be; each body must be
//     valid UTF-8 JSON, an object whose only key is "results", an array of objects. Within a
//     record a key may appear once (after unescaping).
//   - priority must be the JSON string "low", "medium", "high" or "critical" (case counts);
//     timestamp must be a finite JSON number (not a string).
//   - Employees are listed in ascending numeric order of id, only when they own at least one
//     incident, and always with all four priorities. Each list is sorted by timestamp value
//     ascending (1500000100.5 and 1500000100.50 tie), ties by type in Types order, then by
//     upstream order; count is the list's length.
//   - Each incident is the upstream record as received, with "type": "<type>" first and then
//     every other member in upstream order, keys and values byte for byte (an upstream
//     "type" member is replaced). Between members and around the snapshot's own keys there
//     is no whitespace; whitespace inside an upstream value (an object or array) is kept.
//
// The same input always gives the same bytes. On error Build returns nil and a zero Summary.
func Build(identities []byte, results map[string][]byte) ([]byte, Summary, error) {
	owners, err := parseIdentities(identities)
	if err != nil {
		return nil, Summary{}, err
	}
	var unknown []string
	for name := range results {
		if !slices.ContainsFunc(kinds[:], func(k kind) bool { return k.name == name }) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, Summary{}, fmt.Errorf("incidents: results hold unknown types %q", unknown)
	}

	b := &builder{owners: owners}
	size := 0
	for ti, k := range kinds {
		body, ok := results[k.name]
		if !ok {
			return nil, Summary{}, fmt.Errorf("incidents/%s: no body (every type is needed for a snapshot)", k.name)
		}
		if len(body) > math.MaxInt32 {
			return nil, Summary{}, fmt.Errorf("incidents/%s: body is over 2 GiB", k.name)
		}
		b.bodies[ti] = body
		size += len(body)
	}
	// A record is hardly ever under 64 bytes ({"machine_ip": "17.99.238.86", "priority": "medium",
	// "timestamp": 1500020421.9333} is 84): this is usually the only allocation for the entries.
	b.entries = make([]entry, 0, size/64)
	for ti := range kinds {
		if err := b.addBody(ti); err != nil {
			return nil, Summary{}, err
		}
	}
	out := b.write()
	return out, b.summary(), nil
}

// entry is one attributed incident: its record is bodies[typ][start:end]. It is 32 bytes,
// as bodies are at most 2 GiB.
type entry struct {
	emp        int64
	ts         float64
	start, end int32
	idx        int32
	prio, typ  uint8
}

// field is one member of a record: key and val are the raw JSON text, name the unescaped key.
type field struct {
	key, name, val []byte
}

type builder struct {
	owners       map[string]int64
	bodies       [len(kinds)][]byte
	entries      []entry
	fields       []field // scratch, reused for every record
	outBytes     int     // length of the attributed incidents once written
	fetched      [len(kinds)]int
	byPriority   [len(priorities)]int
	unattributed int
	employees    int
}

// addBody reads one GET /incidents/{type} body: {"results": [record, ...]}.
func (b *builder) addBody(ti int) error {
	name := kinds[ti].name
	body := b.bodies[ti]
	if err := checkJSON(body); err != nil {
		return fmt.Errorf("incidents/%s: %w", name, err)
	}
	notResults := func(why string) error {
		return fmt.Errorf(`incidents/%s: body is not {"results": [...]}: %s`, name, why)
	}
	i := skipSpace(body, 0)
	if body[i] != '{' {
		return notResults("it is " + excerpt(body[i:endOfValue(body, i)]))
	}
	seen := false
	i = skipSpace(body, i+1)
	for body[i] != '}' {
		end := endOfString(body, i)
		key := keyName(body[i:end])
		i = skipSpace(body, skipSpace(body, end)+1) // past ':'
		if string(key) != "results" {
			return notResults("unexpected key " + quoted(key))
		}
		if seen {
			return notResults(`"results" appears twice`)
		}
		seen = true
		if body[i] != '[' {
			return notResults(`"results" is ` + excerpt(body[i:endOfValue(body, i)]))
		}
		var err error
		if i, err = b.addList(ti, body, i); err != nil {
			return err
		}
		if i = skipSpace(body, i); body[i] == ',' {
			i = skipSpace(body, i+1)
		}
	}
	if !seen {
		return notResults(`no "results"`)
	}
	return nil
}

// addList reads the array at body[i] and returns the index just past it.
func (b *builder) addList(ti int, body []byte, i int) (int, error) {
	i = skipSpace(body, i+1)
	for idx := 0; body[i] != ']'; idx++ {
		end := endOfValue(body, i)
		if body[i] != '{' {
			return 0, fmt.Errorf("incidents/%s[%d]: %s is not an object", kinds[ti].name, idx, excerpt(body[i:end]))
		}
		if err := b.addRecord(ti, idx, body, i, end); err != nil {
			return 0, err
		}
		if i = skipSpace(body, end); body[i] == ',' {
			i = skipSpace(body, i+1)
		}
	}
	return i + 1, nil
}

// addRecord checks the record body[start:end] and, when its owner is known, keeps it.
func (b *builder) addRecord(ti, idx int, body []byte, start, end int) error {
	k := &kinds[ti]
	fail := func(format string, args ...any) error {
		return fmt.Errorf("incidents/%s[%d]: %s", k.name, idx, fmt.Sprintf(format, args...))
	}
	b.fields = scanFields(body[start:end], b.fields[:0])
	if name, dup := duplicateKey(b.fields); dup {
		return fail("key %s appears twice", quoted(name))
	}
	size := len(`{"type":""}`) + len(k.name)
	var prioRaw, tsRaw, ownerRaw []byte
	for _, f := range b.fields {
		switch string(f.name) {
		case "type":
			continue // replaced
		case "priority":
			prioRaw = f.val
		case "timestamp":
			tsRaw = f.val
		}
		if string(f.name) == k.field {
			ownerRaw = f.val
		}
		size += len(",:") + len(f.key) + len(f.val)
	}

	if prioRaw == nil {
		return fail(`no "priority"`)
	}
	prio := -1
	if s, ok := stringContent(prioRaw); ok {
		prio = slices.Index(priorities[:], string(s))
	}
	if prio < 0 {
		return fail("priority %s is not one of low, medium, high, critical", excerpt(prioRaw))
	}

	if tsRaw == nil {
		return fail(`no "timestamp"`)
	}
	if c := tsRaw[0]; c != '-' && (c < '0' || c > '9') {
		return fail("timestamp %s is not a number", excerpt(tsRaw))
	}
	ts, err := strconv.ParseFloat(string(tsRaw), 64)
	if err != nil || math.IsInf(ts, 0) {
		return fail("timestamp %s is out of range", excerpt(tsRaw))
	}

	if ownerRaw == nil {
		return fail("no %q", k.field)
	}
	var emp int64
	known := true
	switch ip, isIP := ipContent(ownerRaw); {
	case k.rule != byID && isIP:
		emp, known = b.owners[string(ip)]
	case k.rule == byIP:
		return fail("%s %s is not an IPv4 address", k.field, excerpt(ownerRaw))
	default:
		var ok bool
		if emp, ok = parseID(ownerRaw, true); !ok {
			if k.rule == byIDOrIP {
				return fail("%s %s is neither an employee id nor an IPv4 address", k.field, excerpt(ownerRaw))
			}
			return fail("%s %s is not an employee id (an integer, or a string of digits)", k.field, excerpt(ownerRaw))
		}
	}

	b.fetched[ti]++
	if !known {
		b.unattributed++
		return nil
	}
	b.byPriority[prio]++
	b.outBytes += size
	b.entries = append(b.entries, entry{emp: emp, ts: ts, start: int32(start), end: int32(end), idx: int32(idx), prio: uint8(prio), typ: uint8(ti)})
	return nil
}

// duplicateKey returns a name that two fields share, if any: by comparing pairs for the
// usual handful of fields, through a map for a record with many.
func duplicateKey(fields []field) ([]byte, bool) {
	if len(fields) <= 16 {
		for i, f := range fields {
			for _, g := range fields[:i] {
				if bytes.Equal(f.name, g.name) {
					return f.name, true
				}
			}
		}
		return nil, false
	}
	seen := make(map[string]struct{}, len(fields))
	for _, f := range fields {
		if _, dup := seen[string(f.name)]; dup {
			return f.name, true
		}
		seen[string(f.name)] = struct{}{}
	}
	return nil, false
}

// write sorts the entries and writes the snapshot.
func (b *builder) write() []byte {
	es := b.entries
	slices.SortFunc(es, func(x, y entry) int {
		if c := cmp.Compare(x.emp, y.emp); c != 0 {
			return c
		}
		if c := cmp.Compare(x.prio, y.prio); c != 0 {
			return c
		}
		if c := cmp.Compare(x.ts, y.ts); c != 0 {
			return c
		}
		if c := cmp.Compare(x.typ, y.typ); c != 0 {
			return c
		}
		return cmp.Compare(x.idx, y.idx)
	})
	for i := range es {
		if i == 0 || es[i].emp != es[i-1].emp {
			b.employees++
		}
	}

	// Per employee: the id and the four priorities' frames, about 150 bytes; one comma per incident.
	const perEmployee = len(`"9223372036854775807":{}`) +
		len(`"low":{"count":,"incidents":[]},"medium":{"count":,"incidents":[]},"high":{"count":,"incidents":[]},"critical":{"count":,"incidents":[]}`) +
		4*7
	var buf bytes.Buffer
	buf.Grow(2 + b.outBytes + len(es) + b.employees*(perEmployee+1))
	buf.WriteByte('{')
	for i := 0; i < len(es); {
		emp := es[i].emp
		j := i + 1
		for j < len(es) && es[j].emp == emp {
			j++
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteByte('"')
		buf.Write(strconv.AppendInt(buf.AvailableBuffer(), emp, 10))
		buf.WriteString(`":{`)
		k := i
		for p, name := range priorities {
			l := k
			for l < j && int(es[l].prio) == p {
				l++
			}
			if p > 0 {
				buf.WriteByte(',')
			}
			buf.WriteByte('"')
			buf.WriteString(name)
			buf.WriteString(`":{"count":`)
			buf.Write(strconv.AppendInt(buf.AvailableBuffer(), int64(l-k), 10))
			buf.WriteString(`,"incidents":[`)
			for m := k; m < l; m++ {
				if m > k {
					buf.WriteByte(',')
				}
				b.writeIncident(&buf, &es[m])
			}
			buf.WriteString("]}")
			k = l
		}
		buf.WriteByte('}')
		i = j
	}
	buf.WriteByte('}')
	return buf.Bytes()
}

// writeIncident writes e's record with "type" first, then its other members in order.
func (b *builder) writeIncident(buf *bytes.Buffer, e *entry) {
	b.fields = scanFields(b.bodies[e.typ][e.start:e.end], b.fields[:0])
	buf.WriteString(`{"type":"`)
	buf.WriteString(kinds[e.typ].name)
	buf.WriteByte('"')
	for _, f := range b.fields {
		if string(f.name) == "type" {
			continue
		}
		buf.WriteByte(',')
		buf.Write(f.key)
		buf.WriteByte(':')
		buf.Write(f.val)
	}
	buf.WriteByte('}')
}

func (b *builder) summary() Summary {
	s := Summary{
		Employees:    b.employees,
		Incidents:    len(b.entries),
		Unattributed: b.unattributed,
		ByType:       make(map[string]int, len(kinds)),
		ByPriority:   make(map[string]int, len(priorities)),
	}
	for ti, k := range kinds {
		s.ByType[k.name] = b.fetched[ti]
	}
	for p, name := range priorities {
		s.ByPriority[name] = b.byPriority[p]
	}
	return s
}

// parseIdentities reads GET /identities: {"<IPv4>": <employee id>, ...}.
func parseIdentities(body []byte) (map[string]int64, error) {
	if err := checkJSON(body); err != nil {
		return nil, fmt.Errorf("identities: %w", err)
	}
	i := skipSpace(body, 0)
	if body[i] != '{' {
		return nil, fmt.Errorf("identities: body is %s, not an object of IPv4 addresses to employee ids", excerpt(body[i:endOfValue(body, i)]))
	}
	owners := make(map[string]int64, len(body)/24) // `"17.99.238.86": 4506, ` is about 24 bytes
	for _, f := range scanFields(body[i:], nil) {
		if !isIPv4(f.name) {
			return nil, fmt.Errorf("identities: key %s is not an IPv4 address", excerpt(f.key))
		}
		emp, ok := parseID(f.val, false)
		if !ok {
			return nil, fmt.Errorf("identities: %s: %s is not an employee id (an integer)", f.key, excerpt(f.val))
		}
		if prev, dup := owners[string(f.name)]; dup && prev != emp {
			return nil, fmt.Errorf("identities: %s appears twice, for employees %d and %d", f.key, prev, emp)
		}
		owners[string(f.name)] = emp
	}
	return owners, nil
}

// checkJSON rejects a body that is empty, not UTF-8 or not exactly one JSON value; the
// scanning helpers below rely on it.
func checkJSON(body []byte) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return fmt.Errorf("body is empty")
	}
	if !utf8.Valid(body) {
		return fmt.Errorf("body is not valid UTF-8")
	}
	if !json.Valid(body) {
		var v json.RawMessage
		err := json.Unmarshal(body, &v) // only for the error's text and offset
		return fmt.Errorf("body is not valid JSON: %w", err)
	}
	return nil
}

// The functions below scan JSON that checkJSON has accepted, so they never meet malformed input.

// scanFields appends the members of the object that starts at obj[0] to fields.
func scanFields(obj []byte, fields []field) []field {
	i := skipSpace(obj, 1)
	for obj[i] != '}' {
		end := endOfString(obj, i)
		f := field{key: obj[i:end]}
		f.name = keyName(f.key)
		i = skipSpace(obj, skipSpace(obj, end)+1) // past ':'
		end = endOfValue(obj, i)
		f.val = obj[i:end]
		fields = append(fields, f)
		if i = skipSpace(obj, end); obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
	return fields
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// endOfString returns the index just past the string that starts at b[i].
func endOfString(b []byte, i int) int {
	for i++; ; i++ {
		i += bytes.IndexByte(b[i:], '"')
		backslashes := 0
		for b[i-1-backslashes] == '\\' {
			backslashes++
		}
		if backslashes%2 == 0 {
			return i + 1
		}
	}
}

// endOfValue returns the index just past the value that starts at b[i].
func endOfValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return endOfString(b, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch b[i] {
			case '"':
				i = endOfString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	default: // number, true, false, null
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
			i++
		}
		return i
	}
}

// keyName returns a key's unescaped text.
func keyName(key []byte) []byte {
	s, _ := stringContent(key)
	return s
}

// stringContent returns the unescaped text of a JSON string, or false for another value.
func stringContent(raw []byte) ([]byte, bool) {
	if raw[0] != '"' {
		return nil, false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return inner, true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, false // not reached: raw is a valid string
	}
	return []byte(s), true
}

// ipContent returns the address in a JSON string holding an IPv4 address.
func ipContent(raw []byte) ([]byte, bool) {
	s, ok := stringContent(raw)
	return s, ok && isIPv4(s)
}

// isIPv4 reports whether s is a dotted-quad IPv4 address: four decimal octets of at most
// 255, without leading zeros (as net/netip.ParseAddr reads IPv4).
func isIPv4(s []byte) bool {
	for part := range 4 {
		if part > 0 {
			if len(s) == 0 || s[0] != '.' {
				return false
			}
			s = s[1:]
		}
		n, i := 0, 0
		for i < len(s) && i < 3 && '0' <= s[i] && s[i] <= '9' {
			n = n*10 + int(s[i]-'0')
			i++
		}
		if i == 0 || n > 255 || (i > 1 && s[0] == '0') {
			return false
		}
		s = s[i:]
	}
	return len(s) == 0
}

// parseID reads an employee id: a JSON integer written with digits only or, when strings
// are allowed, a JSON string of digits; at most math.MaxInt64.
func parseID(raw []byte, strings bool) (int64, bool) {
	digits := raw
	if raw[0] == '"' {
		if !strings {
			return 0, false
		}
		digits, _ = stringContent(raw)
	}
	if len(digits) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// quoted returns a key's name quoted for an error message, cut like excerpt: an upstream
// key can be megabytes long, and the message ends up in workflow history.
func quoted(name []byte) string { return excerpt([]byte(strconv.Quote(string(name)))) }

// excerpt returns raw JSON for an error message, cut after about 64 bytes.
func excerpt(raw []byte) string {
	const limit = 64
	if len(raw) <= limit {
		return string(raw)
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(raw[cut]) {
		cut--
	}
	return string(raw[:cut]) + "…"
}
