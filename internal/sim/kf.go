package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"relay/internal/timefmt"
)

// The KF simulator (spec/upstreams.md §4): outages of devices, sites owning devices, and a
// POST that is accepted only when it carries exactly the site's outages from the cutoff on.
//
// The data is two sites, kfKingfisher (the spec's worked example) and kfNorwich (relay's
// default site), and a pool of devices that belong to no site. GET /outages lists the
// worked example's six outages and then Size generated ones. The simulator works out what
// each site should receive with its own loop over instants it knows from generation, not
// by parsing the strings it serves, so that it checks relay's filter instead of copying it.

const (
	kfKingfisher = "kingfisher"
	kfNorwich    = "norwich-pear-tree"
)

// kfCutoff is the instant from which outages count (2022-01-01T00:00:00.000Z).
var kfCutoff = time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)

// kfMaxBody caps a POST body beyond the size of the site's right answer.
const kfMaxBody = 16 << 20

type kfDevice struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type kfSite struct {
	ID      string     `json:"id"`
	Name    string     `json:"name"`
	Devices []kfDevice `json:"devices"`
}

// kfOutage is one item of GET /outages; at is its begin's instant, kept from generation.
type kfOutage struct {
	ID    string `json:"id"`
	Begin string `json:"begin"`
	End   string `json:"end"`
	at    time.Time
}

// kfSiteOutage is one item of POST /site-outages/{siteId}.
type kfSiteOutage struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Begin string `json:"begin"`
	End   string `json:"end"`
}

// kfExampleSite and kfExampleOutages are the worked example of §4, verbatim.
var (
	kfExampleSite = kfSite{ID: kfKingfisher, Name: "KingFisher", Devices: []kfDevice{
		{"002b28fc-283c-47ec-9af2-ea287336dc1b", "Battery 1"},
		{"086b0d53-b311-4441-aaf3-935646f03d4d", "Battery 2"},
	}}
	kfExampleOrphans = []string{"04ccad00-eb8d-4045-8994-b569cb4b64c1", "27820d4a-1bc4-4fc1-a5f0-bcb3627e94a1"}
	kfExampleOutages = []kfOutage{
		{"002b28fc-283c-47ec-9af2-ea287336dc1b", "2021-07-26T17:09:31.036Z", "2021-08-29T00:37:42.253Z", time.Date(2021, 7, 26, 17, 9, 31, 36e6, time.UTC)},
		{"002b28fc-283c-47ec-9af2-ea287336dc1b", "2022-05-23T12:21:27.377Z", "2022-11-13T02:16:38.905Z", time.Date(2022, 5, 23, 12, 21, 27, 377e6, time.UTC)},
		{"002b28fc-283c-47ec-9af2-ea287336dc1b", "2022-12-04T09:59:33.628Z", "2022-12-12T22:35:13.815Z", time.Date(2022, 12, 4, 9, 59, 33, 628e6, time.UTC)},
		{"04ccad00-eb8d-4045-8994-b569cb4b64c1", "2022-07-12T16:31:47.254Z", "2022-10-13T04:05:10.044Z", time.Date(2022, 7, 12, 16, 31, 47, 254e6, time.UTC)},
		{"086b0d53-b311-4441-aaf3-935646f03d4d", "2022-07-12T16:31:47.254Z", "2022-10-13T04:05:10.044Z", time.Date(2022, 7, 12, 16, 31, 47, 254e6, time.UTC)},
		{"27820d4a-1bc4-4fc1-a5f0-bcb3627e94a1", "2021-07-12T16:31:47.254Z", "2022-10-13T04:05:10.044Z", time.Date(2021, 7, 12, 16, 31, 47, 254e6, time.UTC)},
	}
)

// kfTricky are begins around the cutoff that a string comparison or a sloppy parse gets
// wrong; their instants are written out by hand.
var kfTricky = []struct {
	begin string
	at    time.Time
}{
	{"2021-12-31T23:59:59.999Z", time.Date(2021, 12, 31, 23, 59, 59, 999e6, time.UTC)},      // dropped
	{"2022-01-01T00:00:00.000Z", kfCutoff},                                                  // kept
	{"2022-01-01T00:00:00Z", kfCutoff},                                                      // kept, no milliseconds
	{"2021-12-31T19:00:00.000-05:00", kfCutoff},                                             // kept, though it sorts before the cutoff
	{"2022-01-01T00:30:00.000+01:00", time.Date(2021, 12, 31, 23, 30, 0, 0, time.UTC)},      // dropped, though it sorts after
	{"2022-01-01T00:59:59.999+01:00", time.Date(2021, 12, 31, 23, 59, 59, 999e6, time.UTC)}, // dropped
	{"2021-12-31T23:59:59Z", time.Date(2021, 12, 31, 23, 59, 59, 0, time.UTC)},              // dropped
	{"2022-01-01T00:00:00.001Z", time.Date(2022, 1, 1, 0, 0, 0, 1e6, time.UTC)},             // kept
	{"2021-12-31T18:59:59.999-05:00", time.Date(2021, 12, 31, 23, 59, 59, 999e6, time.UTC)}, // dropped
}

var (
	kfBeginFrom = time.Date(2021, 6, 1, 0, 0, 0, 0, time.UTC)
	kfBeginTo   = time.Date(2023, 6, 1, 0, 0, 0, 0, time.UTC)
	kfZones     = []*time.Location{time.FixedZone("", 3600), time.FixedZone("", -5*3600), time.FixedZone("", 5*3600+1800)}
	kfKinds     = []string{"Battery", "Inverter", "Meter", "Solar Array", "EV Charger"}
)

const (
	kfLayoutSeconds = "2006-01-02T15:04:05Z07:00"
)

// KFPost is one POST /site-outages/{siteId} the simulator answered.
type KFPost struct {
	Site   string
	Body   []byte
	Status int
	At     time.Time
}

// KFAPI serves the KF routes over data generated once, and records the POSTs it answers.
// Get it from a running simulator with sim.Routes().(*KFAPI); changing Size or Seed
// replaces it, and its record, with a new one.
type KFAPI struct {
	sites    []kfSite
	outages  []kfOutage
	siteInfo map[string][]byte
	want     map[string][]kfSiteOutage
	wantBody map[string][]byte
	body     []byte // GET /outages

	mu    sync.Mutex
	posts []KFPost
}

// kfRoutes builds the KF API over the data of k's Size and Seed.
func kfRoutes(k Knobs) http.Handler { return newKFAPI(k.Seed, k.Size) }

func newKFAPI(seed uint64, size int) *KFAPI {
	sites, outages := kfGenerate(seed, size)
	a := &KFAPI{
		sites:    sites,
		outages:  outages,
		siteInfo: map[string][]byte{},
		want:     map[string][]kfSiteOutage{},
		wantBody: map[string][]byte{},
		body:     mustJSON(outages),
	}
	for _, s := range sites {
		a.siteInfo[s.ID] = mustJSON(s)
		a.want[s.ID] = kfExpect(s, outages)
		a.wantBody[s.ID] = mustJSON(a.want[s.ID])
	}
	return a
}

// kfExpect is the site's right answer: its devices' outages from the cutoff on, named,
// in input order, begin and end as served.
func kfExpect(site kfSite, outages []kfOutage) []kfSiteOutage {
	names := make(map[string]string, len(site.Devices))
	for _, d := range site.Devices {
		names[d.ID] = d.Name
	}
	out := []kfSiteOutage{} // [] rather than null
	for _, o := range outages {
		name, ok := names[o.ID]
		if ok && !o.at.Before(kfCutoff) {
			out = append(out, kfSiteOutage{ID: o.ID, Name: name, Begin: o.Begin, End: o.End})
		}
	}
	return out
}

// kfGenerate makes the sites and the outages: the worked example, then size more.
func kfGenerate(seed uint64, size int) ([]kfSite, []kfOutage) {
	rng := rand.New(rand.NewPCG(seed, 0x6b66))
	taken := map[string]bool{}
	for _, d := range kfExampleSite.Devices {
		taken[d.ID] = true
	}
	for _, id := range kfExampleOrphans {
		taken[id] = true
	}
	newID := func() string {
		for {
			if id := kfUUID(rng); !taken[id] {
				taken[id] = true
				return id
			}
		}
	}

	kingfisher := kfExampleSite
	kingfisher.Devices = append([]kfDevice{}, kfExampleSite.Devices...)
	norwich := kfSite{ID: kfNorwich, Name: "Norwich Pear Tree"}
	count := map[string]int{}
	for range 5 + rng.IntN(16) {
		kind := kfKinds[rng.IntN(len(kfKinds))]
		count[kind]++
		norwich.Devices = append(norwich.Devices, kfDevice{ID: newID(), Name: fmt.Sprintf("%s %d", kind, count[kind])})
	}
	orphans := append([]string{}, kfExampleOrphans...)
	for range 6 + rng.IntN(10) {
		orphans = append(orphans, newID())
	}

	// Each tricky begin appears at least once (when size allows) on a norwich device.
	forced := map[int]int{} // index among the generated → index in kfTricky
	for t := range min(size, len(kfTricky)) {
		for {
			if i := rng.IntN(size); !hasKey(forced, i) {
				forced[i] = t
				break
			}
		}
	}

	outages := make([]kfOutage, 0, len(kfExampleOutages)+size)
	outages = append(outages, kfExampleOutages...)
	span := int64(kfBeginTo.Sub(kfBeginFrom) / time.Millisecond)
	for i := range size {
		var o kfOutage
		switch p := rng.IntN(100); {
		case p < 45:
			o.ID = norwich.Devices[rng.IntN(len(norwich.Devices))].ID
		case p < 60:
			o.ID = kingfisher.Devices[rng.IntN(len(kingfisher.Devices))].ID
		default:
			o.ID = orphans[rng.IntN(len(orphans))]
		}
		t, isForced := forced[i]
		if isForced {
			o.ID = norwich.Devices[rng.IntN(len(norwich.Devices))].ID
		} else if rng.IntN(100) < 3 {
			t, isForced = rng.IntN(len(kfTricky)), true
		}
		if isForced {
			o.Begin, o.at = kfTricky[t].begin, kfTricky[t].at
		} else {
			o.Begin, o.at = kfFormat(rng, kfBeginFrom.Add(time.Duration(rng.Int64N(span))*time.Millisecond))
		}
		end := o.at.Add(time.Minute + time.Duration(rng.Int64N(int64(90*24*time.Hour/time.Millisecond)))*time.Millisecond)
		o.End, _ = kfFormat(rng, end)
		outages = append(outages, o)
	}
	return []kfSite{kingfisher, norwich}, outages
}

// kfFormat spells t in one of the styles the API uses, mostly UTC with milliseconds, and
// returns the instant the spelling stands for (t, or t cut to the second).
func kfFormat(rng *rand.Rand, t time.Time) (string, time.Time) {
	switch p := rng.IntN(100); {
	case p < 75:
		return timefmt.Millis(t), t
	case p < 85:
		t = t.Truncate(time.Second)
		return t.UTC().Format(kfLayoutSeconds), t
	case p < 95:
		return t.In(kfZones[rng.IntN(len(kfZones))]).Format(timefmt.RFC3339Millis), t
	default:
		t = t.Truncate(time.Second)
		return t.In(kfZones[rng.IntN(len(kfZones))]).Format(kfLayoutSeconds), t
	}
}

// kfUUID makes a random version 4 UUID from rng.
func kfUUID(rng *rand.Rand) string {
	hi, lo := rng.Uint64(), rng.Uint64()
	hi = hi&^0xf000 | 0x4000         // version 4
	lo = lo&^(0xc<<60) | (0x8 << 60) // variant 10
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", hi>>32, hi>>16&0xffff, hi&0xffff, lo>>48, lo&0xffffffffffff)
}

// Posts returns a copy of the POSTs answered so far, in order.
func (a *KFAPI) Posts() []KFPost {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]KFPost, len(a.posts))
	for i, p := range a.posts {
		p.Body = bytes.Clone(p.Body)
		out[i] = p
	}
	return out
}

// Sites returns the ids of the sites, kingfisher first.
func (a *KFAPI) Sites() []string {
	ids := make([]string, len(a.sites))
	for i, s := range a.sites {
		ids[i] = s.ID
	}
	return ids
}

// Expected returns the body POST /site-outages/{site} accepts, or nil for an unknown site.
func (a *KFAPI) Expected(site string) []byte { return bytes.Clone(a.wantBody[site]) }

// Outages returns the body of GET /outages.
func (a *KFAPI) Outages() []byte { return bytes.Clone(a.body) }

// ServeHTTP answers the KF routes; the framework has already checked the key and faults.
func (a *KFAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case path == "/outages":
		if allowMethod(w, r, http.MethodGet) {
			writeEncoded(w, a.body)
		}
	case strings.HasPrefix(path, "/site-info/") && kfSegment(path, "/site-info/") != "":
		if !allowMethod(w, r, http.MethodGet) {
			return
		}
		site := kfSegment(path, "/site-info/")
		body, ok := a.siteInfo[site]
		if !ok {
			writeMessageError(w, http.StatusNotFound, fmt.Sprintf("no such site %q", site))
			return
		}
		writeEncoded(w, body)
	case strings.HasPrefix(path, "/site-outages/") && kfSegment(path, "/site-outages/") != "":
		if allowMethod(w, r, http.MethodPost) {
			a.postSiteOutages(w, r, kfSegment(path, "/site-outages/"))
		}
	default:
		writeMessageError(w, http.StatusNotFound, "no such route: "+r.Method+" "+path)
	}
}

// postSiteOutages judges and records one POST /site-outages/{site}.
func (a *KFAPI) postSiteOutages(w http.ResponseWriter, r *http.Request, site string) {
	limit := int64(kfMaxBody + 2*len(a.wantBody[site]))
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	status, msg := http.StatusOK, ""
	switch want, known := a.want[site]; {
	case err != nil:
		status, msg = http.StatusBadRequest, "reading the body: "+err.Error()
	case !known:
		status, msg = http.StatusNotFound, fmt.Sprintf("no such site %q", site)
	case int64(len(body)) > limit:
		status, msg = http.StatusRequestEntityTooLarge, fmt.Sprintf("body is larger than %d bytes", limit)
	default:
		got, err := kfParse(body)
		if err != nil {
			status, msg = http.StatusBadRequest, err.Error()
		} else if diff := kfCompare(got, want); diff != "" {
			status, msg = http.StatusBadRequest, diff
		}
	}
	a.mu.Lock()
	a.posts = append(a.posts, KFPost{Site: site, Body: body, Status: status, At: time.Now()})
	a.mu.Unlock()
	if status != http.StatusOK {
		writeMessageError(w, status, msg)
		return
	}
	writeEncoded(w, []byte("{}"))
}

// kfParse reads a body that must be a JSON array of objects with exactly the string
// fields id, name, begin and end; the error names the first thing wrong.
func kfParse(body []byte) ([]kfSiteOutage, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errors.New("body is empty, want a JSON array of outages")
	}
	// Syntax first, so that a broken body is not reported as a wrong item.
	if err := json.Unmarshal(body, new(json.RawMessage)); err != nil {
		return nil, kfSyntax(err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return nil, kfSyntax(err)
	}
	if tok != json.Delim('[') {
		return nil, fmt.Errorf("body is %s, want a JSON array of outages", kfKind(tok))
	}
	items := []kfSiteOutage{}
	for dec.More() {
		item, err := kfParseItem(dec, len(items)+1)
		if err != nil {
			return nil, err
		}
		items = append(items, item)
	}
	if _, err := dec.Token(); err != nil { // the closing bracket; nothing follows, as checked
		return nil, kfSyntax(err)
	}
	return items, nil
}

func kfParseItem(dec *json.Decoder, n int) (kfSiteOutage, error) {
	var item kfSiteOutage
	tok, err := dec.Token()
	if err != nil {
		return item, kfSyntax(err)
	}
	if tok != json.Delim('{') {
		return item, fmt.Errorf("item %d is %s, want an object with id, name, begin and end", n, kfKind(tok))
	}
	seen := map[string]bool{}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return item, kfSyntax(err)
		}
		name, _ := key.(string) // object keys are always strings
		val, err := dec.Token()
		if err != nil {
			return item, kfSyntax(err)
		}
		var field *string
		switch name {
		case "id":
			field = &item.ID
		case "name":
			field = &item.Name
		case "begin":
			field = &item.Begin
		case "end":
			field = &item.End
		default:
			return item, fmt.Errorf("item %d: unknown field %q, want exactly id, name, begin and end", n, name)
		}
		if seen[name] {
			return item, fmt.Errorf("item %d: field %q appears twice", n, name)
		}
		seen[name] = true
		s, ok := val.(string)
		if !ok {
			return item, fmt.Errorf("item %d: %s is %s, want a string", n, name, kfKind(val))
		}
		*field = s
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return item, kfSyntax(err)
	}
	for _, name := range []string{"id", "name", "begin", "end"} {
		if !seen[name] {
			return item, fmt.Errorf("item %d: missing field %q", n, name)
		}
	}
	return item, nil
}

// kfCompare names the first difference between got and want, or returns "".
func kfCompare(got, want []kfSiteOutage) string {
	counts := ""
	if len(got) != len(want) {
		counts = fmt.Sprintf(" (got %d outages, want %d)", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		for _, f := range [...]struct{ name, got, want string }{
			{"id", g.ID, w.ID}, {"name", g.Name, w.Name}, {"begin", g.Begin, w.Begin}, {"end", g.End, w.End},
		} {
			if f.got != f.want {
				return fmt.Sprintf("item %d: %s is %q, want %q%s", i+1, f.name, f.got, f.want, counts)
			}
		}
	}
	switch {
	case len(got) < len(want):
		w := want[len(got)]
		return fmt.Sprintf("got %d outages, want %d: missing from item %d on, the first with id %q, begin %q",
			len(got), len(want), len(got)+1, w.ID, w.Begin)
	case len(got) > len(want):
		g := got[len(want)]
		return fmt.Sprintf("got %d outages, want %d: item %d on are extra, the first with id %q, begin %q",
			len(got), len(want), len(want)+1, g.ID, g.Begin)
	}
	return ""
}

// kfKind names the JSON kind of a token, for messages.
func kfKind(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '{' {
			return "an object"
		}
		return "an array"
	case string:
		return "a string"
	case float64, json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", tok)
}

func kfSyntax(err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Errorf("body is not valid JSON at byte %d: %v", se.Offset, se)
	}
	return fmt.Errorf("body is not valid JSON: %v", err)
}

// kfSegment returns the one path segment after prefix, or "" if there is not exactly one.
func kfSegment(path, prefix string) string {
	rest := strings.TrimPrefix(path, prefix)
	if strings.Contains(rest, "/") {
		return ""
	}
	return rest
}
