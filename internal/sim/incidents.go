package sim

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// The security incidents simulator (spec/upstreams.md §1): identities mapping IPs to
// employee ids, and seven lists of incidents, one per type.
//
// The data is generated from Seed and Size, Size being the number of incidents over all
// seven types. There are max(10, Size/100) employees; about 1.5 IPs per employee are in
// identities, owned by four employees in five (so some own several and some none), and
// some more IPs used by incidents are in no one's name. The data holds on purpose what a
// careful client must get right: ids as numbers and as numeric strings, IPs missing from
// identities, attacker IPs (denial and intrusion source_ip) that are in identities and must
// not be resolved, equal timestamps within and across types, whole-second timestamps
// written with and without ".0", and extra fields (strings, numbers, lists, objects, null)
// a client must keep. Each incident's owner is known when it is generated, and Truth
// counts from that, not from the JSON served, so that it checks relay's grouping instead
// of copying it.

// IncidentTypes are the seven incident types, in the order the spec lists them.
var IncidentTypes = []string{"denial", "intrusion", "executable", "misuse", "unauthorized", "probing", "other"}

// incidentPriorities are the four priorities, lowest first.
var incidentPriorities = []string{"low", "medium", "high", "critical"}

// The indices of IncidentTypes, for the generator.
const (
	incDenial = iota
	incIntrusion
	incExecutable
	incMisuse
	incUnauthorized
	incProbing
	incOther
)

const (
	incidentsPrefix = "/incidents/"
	// incTick is the timestamp's resolution: timestamps are whole numbers of 1/incTick s.
	incTick      = 10_000
	incFrom      = 1_500_000_000 // 2017-07-14T02:40:00Z
	incSpan      = 60 * 24 * 3600
	incMinPeople = 10
)

// Shares, in percent, of the cases a client must get right.
const (
	incUnknownIPPct   = 12 // an owner IP that is missing from identities
	incInsiderPct     = 20 // a denial or intrusion source_ip that is in identities
	incIDAsStringPct  = 40 // an id written "4506" rather than 4506
	incOtherByIPPct   = 50 // other.identifier is an IP rather than an employee id
	incTiePct         = 3  // a timestamp equal to an earlier incident's
	incWholeDotPct    = 4  // a whole-second timestamp written 1500020421.0
	incWholeBarePct   = 4  // a whole-second timestamp written 1500020421
	incFewDecimalsPct = 6  // a timestamp cut to one or two decimals
)

var (
	incPriorityWeights = []int{40, 30, 20, 10} // low, medium, high, critical
	incProtocols       = []string{"TCP", "UDP", "ICMP", "HTTP", "HTTPS"}
	incPorts           = []int{22, 23, 25, 53, 80, 110, 143, 443, 445, 993, 3306, 3389, 5432, 8080, 8443}
	incSignatures      = []string{
		"ET SCAN Potential SSH Scan", "ET EXPLOIT Apache Struts RCE", "GPL ATTACK_RESPONSE id check returned root",
		"ET POLICY SMB2 NT Create AndX Request For an Executable File", "ET TROJAN Possible Metasploit Payload",
	}
	incFileNames = []string{
		"invoice_2017.pdf.exe", "setup.exe", "mimikatz.exe", "update.bat", "Q3 report.xlsm",
		"photo.scr", "chrome_installer.msi", "payload.ps1", "Résumé.doc.exe",
	}
	incActions     = []string{"quarantined", "blocked", "allowed", "deleted"}
	incAccess      = []string{"read", "write", "delete", "export"}
	incResources   = []string{"hr-database", "payroll", "customer-records", "source-code", "finance-share", "badge-system", "vpn"}
	incTools       = []string{"nmap", "masscan", "zmap", "unknown"}
	incTags        = []string{"phishing", "email", "usb", "lost-device", "social-engineering", "policy", "physical"}
	incChannels    = []string{"email", "phone", "chat", "walk-in"}
	incDescription = []string{
		"Accessed files outside working hours",
		"Shared credentials with a contractor",
		"Installed unapproved software",
		"Used a personal USB drive on a work laptop",
		"Forwarded internal documents to a personal address",
		`Reported a "CEO" asking for gift cards`,
		"Tailgated through the server room door",
		"Zugriff außerhalb der Arbeitszeit – bitte prüfen",
		"Laptop left unlocked in café ☕",
		"",
	}
	// incPrivateFirst are the first octets of identities' IPs beside the private ranges,
	// like the corporate 17.0.0.0/8.
	incPrivateFirst = []int{17, 57, 128, 134, 152}
)

// IncidentsTruth is what the data was generated to mean, for checking relay's grouping.
type IncidentsTruth struct {
	// ByEmployee counts each employee's incidents by priority, from what the data was
	// generated to mean. It lists only employees with at least one incident, each with
	// all four priorities (0 where they have none); keys are decimal employee ids.
	ByEmployee   map[string]map[string]int
	Unattributed int // incidents whose owner is an IP missing from identities
	// PerType counts the incidents of each of the seven types (0 for a type without any).
	PerType map[string]int
}

// IncidentsAPI serves the incidents routes over data generated and encoded once. Get it
// from a running simulator with sim.Routes().(*IncidentsAPI); changing Size or Seed
// replaces it.
type IncidentsAPI struct {
	identities []byte            // GET /identities
	lists      map[string][]byte // GET /incidents/{type}
	truth      IncidentsTruth
}

// incidentsRoutes builds the incidents API over the data of k's Size and Seed.
func incidentsRoutes(k Knobs) http.Handler { return newIncidentsAPI(k.Seed, k.Size) }

func newIncidentsAPI(seed uint64, size int) *IncidentsAPI {
	g := newIncGenerator(seed, size)
	incs := g.incidents(size)
	a := &IncidentsAPI{identities: g.identitiesBody(), lists: make(map[string][]byte, len(IncidentTypes)), truth: g.truth}

	byType := make([][]*incident, len(IncidentTypes))
	for i := range incs {
		byType[incs[i].typ] = append(byType[incs[i].typ], &incs[i])
	}
	for t, list := range byType {
		slices.SortStableFunc(list, func(x, y *incident) int { return cmp.Compare(x.ticks, y.ticks) })
		n := len(`{"results":[]}`)
		for _, inc := range list {
			n += len(inc.body) + 1
		}
		b := make([]byte, 0, n)
		b = append(b, `{"results":[`...)
		for i, inc := range list {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, inc.body...)
		}
		a.lists[IncidentTypes[t]] = append(b, "]}"...)
	}
	return a
}

// incident is one generated incident: its type, its timestamp in ticks of 1/incTick s
// and whether a whole second is written without ".0", and its JSON once encoded.
type incident struct {
	typ   int
	ticks int64
	bare  bool
	body  []byte
}

// incGenerator makes the people, the IPs and the incidents from one rng, and counts the
// truth as it goes.
type incGenerator struct {
	rng       *rand.Rand
	employees []int          // every employee id, owning IPs or not
	known     []string       // IPs in identities, in the order served
	owner     map[string]int // known IP → employee id
	unknown   []string       // IPs incidents use that are missing from identities
	external  []string       // attackers' IPs, in neither
	taken     map[string]bool
	truth     IncidentsTruth
}

func newIncGenerator(seed uint64, size int) *incGenerator {
	g := &incGenerator{
		rng:   rand.New(rand.NewPCG(seed, 0x1c1d)),
		owner: map[string]int{},
		taken: map[string]bool{},
		truth: IncidentsTruth{ByEmployee: map[string]map[string]int{}, PerType: map[string]int{}},
	}
	for _, t := range IncidentTypes {
		g.truth.PerType[t] = 0
	}
	rng := g.rng
	people := max(incMinPeople, size/100)
	id := rng.IntN(100)
	for range people {
		id += 1 + rng.IntN(60)
		g.employees = append(g.employees, id)
	}
	// One employee in five owns no IP; the others share about 1.5 IPs each, so that
	// (by pigeonhole) some own several.
	perm := rng.Perm(people)
	owners := make([]int, 0, people)
	for _, i := range perm[people/5:] {
		owners = append(owners, g.employees[i])
	}
	for range people * 3 / 2 {
		ip := g.newIP(g.internalIP)
		g.known = append(g.known, ip)
		g.owner[ip] = owners[rng.IntN(len(owners))]
	}
	for range max(3, people/4) {
		g.unknown = append(g.unknown, g.newIP(g.internalIP))
	}
	for range max(20, people/2) {
		g.external = append(g.external, g.newIP(g.publicIP))
	}
	return g
}

// newIP makes an IP nobody else has from gen.
func (g *incGenerator) newIP(gen func() string) string {
	for {
		if ip := gen(); !g.taken[ip] {
			g.taken[ip] = true
			return ip
		}
	}
}

// internalIP makes a company machine's address: mostly private, some in a public range.
func (g *incGenerator) internalIP() string {
	rng := g.rng
	host := 1 + rng.IntN(254)
	switch p := rng.IntN(100); {
	case p < 50:
		return fmt.Sprintf("10.%d.%d.%d", rng.IntN(256), rng.IntN(256), host)
	case p < 70:
		return fmt.Sprintf("192.168.%d.%d", rng.IntN(256), host)
	case p < 80:
		return fmt.Sprintf("172.%d.%d.%d", 16+rng.IntN(16), rng.IntN(256), host)
	default:
		return fmt.Sprintf("%d.%d.%d.%d", incPrivateFirst[rng.IntN(len(incPrivateFirst))], rng.IntN(256), rng.IntN(256), host)
	}
}

// publicIP makes an attacker's address out of the private and reserved ranges.
func (g *incGenerator) publicIP() string {
	rng := g.rng
	for {
		first := 1 + rng.IntN(223)
		switch first {
		case 10, 100, 127, 169, 172, 192:
			continue
		}
		return fmt.Sprintf("%d.%d.%d.%d", first, rng.IntN(256), rng.IntN(256), 1+rng.IntN(254))
	}
}

// identitiesBody encodes GET /identities: every known IP once, with its owner's id.
func (g *incGenerator) identitiesBody() []byte {
	b := make([]byte, 0, 32*len(g.known)+2)
	b = append(b, '{')
	for i, ip := range g.known {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, ip...)
		b = append(b, `":`...)
		b = strconv.AppendInt(b, int64(g.owner[ip]), 10)
	}
	return append(b, '}')
}

// incidents makes size incidents: their types and timestamps first, so that ties can be
// forced, then each one's fields, encoded.
func (g *incGenerator) incidents(size int) []incident {
	rng := g.rng
	incs := make([]incident, size)
	for i := range incs {
		inc := &incs[i]
		inc.typ = rng.IntN(len(IncidentTypes))
		if i < len(IncidentTypes) {
			inc.typ = i // every type has an incident when size allows
		}
		inc.ticks = incFrom*incTick + rng.Int64N(incSpan*incTick)
		switch p := rng.IntN(100); {
		case i > 0 && p < incTiePct:
			inc.ticks = incs[rng.IntN(i)].ticks
			inc.bare = rng.IntN(2) == 0
		case p < incTiePct+incWholeDotPct:
			inc.ticks -= inc.ticks % incTick
		case p < incTiePct+incWholeDotPct+incWholeBarePct:
			inc.ticks -= inc.ticks % incTick
			inc.bare = true
		case p < incTiePct+incWholeDotPct+incWholeBarePct+incFewDecimalsPct:
			inc.ticks -= inc.ticks % []int64{100, 1000}[rng.IntN(2)]
		}
	}
	// Whatever the seed, a tie within a type and one across types when size allows:
	// the eighth incident (a denial) and the ninth (an intrusion) share the first's time.
	if size > 8 {
		incs[7].typ, incs[7].ticks = incDenial, incs[0].ticks
		incs[8].typ, incs[8].ticks = incIntrusion, incs[0].ticks
	}
	for i := range incs {
		incs[i].body = g.encode(&incs[i])
	}
	return incs
}

// encode writes one incident's fields and counts it in the truth.
func (g *incGenerator) encode(inc *incident) []byte {
	rng := g.rng
	o := incObject{b: make([]byte, 0, 224)}
	priority := incidentPriorities[g.weighted(incPriorityWeights)]
	common := func() {
		o.str("priority", priority)
		o.raw("timestamp", appendIncTimestamp(nil, inc.ticks, inc.bare))
	}
	owner := -1 // an employee id, or -1 for an IP missing from identities
	switch inc.typ {
	case incDenial:
		owner = g.employee()
		o.id("reported_by", owner, g.asString())
		o.str("source_ip", g.sourceIP())
		common()
		o.str("protocol", pick(rng, incProtocols))
		o.num("target_port", pick(rng, incPorts))
		o.num("requests_per_second", 500+rng.IntN(200_000))
	case incIntrusion:
		var ip string
		ip, owner = g.ownerIP()
		o.str("internal_ip", ip)
		o.str("source_ip", g.sourceIP())
		common()
		o.str("protocol", pick(rng, incProtocols))
		o.num("destination_port", pick(rng, incPorts))
		o.str("signature", pick(rng, incSignatures))
	case incExecutable:
		var ip string
		ip, owner = g.ownerIP()
		o.str("machine_ip", ip)
		common()
		o.str("file_name", pick(rng, incFileNames))
		o.str("sha256", fmt.Sprintf("%016x%016x%016x%016x", rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.Uint64()))
		o.str("action", pick(rng, incActions))
	case incMisuse:
		owner = g.employee()
		o.id("employee_id", owner, g.asString())
		common()
		o.str("description", pick(rng, incDescription))
		o.str("resource", pick(rng, incResources))
	case incUnauthorized:
		owner = g.employee()
		o.id("employee_id", owner, g.asString())
		common()
		o.str("resource", pick(rng, incResources))
		o.str("access", pick(rng, incAccess))
		o.num("attempts", 1+rng.IntN(40))
	case incProbing:
		var ip string
		ip, owner = g.ownerIP()
		o.str("ip", ip)
		common()
		ports := make([]byte, 0, 64)
		ports = append(ports, '[')
		for i, p := range rng.Perm(len(incPorts))[:1+rng.IntN(5)] {
			if i > 0 {
				ports = append(ports, ',')
			}
			ports = strconv.AppendInt(ports, int64(incPorts[p]), 10)
		}
		o.raw("ports_scanned", append(ports, ']'))
		o.str("tool", pick(rng, incTools))
	case incOther:
		if rng.IntN(100) < incOtherByIPPct {
			var ip string
			ip, owner = g.ownerIP()
			o.str("identifier", ip)
		} else {
			owner = g.employee()
			o.id("identifier", owner, g.asString())
		}
		common()
		o.str("description", pick(rng, incDescription))
		tags := make([]byte, 0, 48)
		tags = append(tags, '[')
		for i, t := range rng.Perm(len(incTags))[:rng.IntN(3)] {
			if i > 0 {
				tags = append(tags, ',')
			}
			tags = appendJSONString(tags, incTags[t])
		}
		o.raw("tags", append(tags, ']'))
		details := incObject{}
		details.str("channel", pick(rng, incChannels))
		if rng.IntN(3) == 0 {
			details.raw("ticket", []byte("null"))
		} else {
			details.str("ticket", fmt.Sprintf("SEC-%d", 1000+rng.IntN(9000)))
		}
		o.raw("details", details.close())
	}
	g.count(inc.typ, owner, priority)
	return o.close()
}

// count adds one incident to the truth; owner -1 is an IP missing from identities.
func (g *incGenerator) count(typ, owner int, priority string) {
	g.truth.PerType[IncidentTypes[typ]]++
	if owner < 0 {
		g.truth.Unattributed++
		return
	}
	key := strconv.Itoa(owner)
	counts, ok := g.truth.ByEmployee[key]
	if !ok {
		counts = make(map[string]int, len(incidentPriorities))
		for _, p := range incidentPriorities {
			counts[p] = 0
		}
		g.truth.ByEmployee[key] = counts
	}
	counts[priority]++
}

// employee picks any employee, one owning no IP included.
func (g *incGenerator) employee() int { return g.employees[g.rng.IntN(len(g.employees))] }

// ownerIP picks the IP an incident belongs to, and its owner: mostly one in identities,
// sometimes one missing from it (owner -1).
func (g *incGenerator) ownerIP() (string, int) {
	if g.rng.IntN(100) < incUnknownIPPct {
		return pick(g.rng, g.unknown), -1
	}
	ip := pick(g.rng, g.known)
	return ip, g.owner[ip]
}

// sourceIP picks an attacker's IP, sometimes one that identities knows.
func (g *incGenerator) sourceIP() string {
	if g.rng.IntN(100) < incInsiderPct {
		return pick(g.rng, g.known)
	}
	return pick(g.rng, g.external)
}

func (g *incGenerator) asString() bool { return g.rng.IntN(100) < incIDAsStringPct }

// weighted picks an index with the given weights.
func (g *incGenerator) weighted(weights []int) int {
	total := 0
	for _, w := range weights {
		total += w
	}
	n := g.rng.IntN(total)
	for i, w := range weights {
		if n < w {
			return i
		}
		n -= w
	}
	return len(weights) - 1
}

func pick[T any](rng *rand.Rand, from []T) T { return from[rng.IntN(len(from))] }

// appendIncTimestamp writes ticks of 1/incTick s as a JSON number with at most four
// decimals and no trailing zeros: 1500020421.9333, 1500020421.5, or a whole second as
// 1500020421.0, or 1500020421 when bare.
func appendIncTimestamp(b []byte, ticks int64, bare bool) []byte {
	b = strconv.AppendInt(b, ticks/incTick, 10)
	frac := ticks % incTick
	if frac == 0 {
		if bare {
			return b
		}
		return append(b, ".0"...)
	}
	digits := []byte{'.', byte('0' + frac/1000), byte('0' + frac/100%10), byte('0' + frac/10%10), byte('0' + frac%10)}
	for digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
	}
	return append(b, digits...)
}

// incObject writes a JSON object one field at a time, in order.
type incObject struct{ b []byte }

func (o *incObject) key(k string) {
	if len(o.b) == 0 {
		o.b = append(o.b, '{')
	} else {
		o.b = append(o.b, ',')
	}
	o.b = appendJSONString(o.b, k)
	o.b = append(o.b, ':')
}

func (o *incObject) str(k, v string) { o.key(k); o.b = appendJSONString(o.b, v) }

func (o *incObject) num(k string, v int) { o.key(k); o.b = strconv.AppendInt(o.b, int64(v), 10) }

func (o *incObject) raw(k string, v []byte) { o.key(k); o.b = append(o.b, v...) }

// id writes an employee id as a number, or as a numeric string.
func (o *incObject) id(k string, v int, asString bool) {
	if asString {
		o.str(k, strconv.Itoa(v))
		return
	}
	o.num(k, v)
}

func (o *incObject) close() []byte {
	if len(o.b) == 0 {
		return []byte("{}")
	}
	return append(o.b, '}')
}

// appendJSONString writes s as a JSON string: plain ASCII directly, anything else
// through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return append(b, mustJSON(s)...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// Truth returns what the data was generated to mean (a copy).
func (a *IncidentsAPI) Truth() IncidentsTruth {
	t := IncidentsTruth{
		ByEmployee:   make(map[string]map[string]int, len(a.truth.ByEmployee)),
		Unattributed: a.truth.Unattributed,
		PerType:      make(map[string]int, len(a.truth.PerType)),
	}
	for id, counts := range a.truth.ByEmployee {
		c := make(map[string]int, len(counts))
		for p, n := range counts {
			c[p] = n
		}
		t.ByEmployee[id] = c
	}
	for typ, n := range a.truth.PerType {
		t.PerType[typ] = n
	}
	return t
}

// ServeHTTP answers the incidents routes; the framework has already checked the
// credentials and faults.
func (a *IncidentsAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case path == "/identities":
		if allowMethod(w, r, http.MethodGet) {
			writeEncoded(w, a.identities)
		}
	case strings.HasPrefix(path, incidentsPrefix) && incTypeSegment(path) != "":
		if !allowMethod(w, r, http.MethodGet) {
			return
		}
		typ := incTypeSegment(path)
		body, ok := a.lists[typ]
		if !ok {
			writeMessageError(w, http.StatusNotFound, fmt.Sprintf("no incident type %q (known: %s)", typ, strings.Join(IncidentTypes, ", ")))
			return
		}
		writeEncoded(w, body)
	default:
		writeMessageError(w, http.StatusNotFound, "no such route: "+r.Method+" "+path)
	}
}

// incTypeSegment returns the type of /incidents/{type} or /incidents/{type}/, or "" if
// the path is not one.
func incTypeSegment(path string) string {
	rest := strings.TrimSuffix(strings.TrimPrefix(path, incidentsPrefix), "/")
	if strings.Contains(rest, "/") {
		return ""
	}
	return rest
}
