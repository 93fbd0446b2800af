package sim

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The C42 simulator (spec/upstreams.md §2): calendar events and their subscriptions.
//
// The data is four fixed events, which do not change with Seed or Size so that tests and
// demos can rely on them, then Size generated ones. GET /api/v2/event-subscriptions/ pages
// through an event's subscriptions in creation order, 10 to a page unless the call asks
// for another limit (at most c42MaxLimit: a larger limit gets c42MaxLimit items, so a
// client must page by meta_data.count, not by a short page).
//
// Where the real API's behaviour is unknown the simulator picks the one a careful client
// must survive: subscriptions of an unknown event are a 200 with an empty list and a count
// of 0, not a 404, so an event that does not exist can only be told by its own endpoint.
// The subscriptions endpoint takes exactly one event id in event_ids, and only with its
// trailing slash; the event endpoint works with or without one.

// The fixed events, there whatever the Seed and Size.
const (
	// C42EventTeamSync ("Team sync") has five subscribers whose first names are, in
	// creation order, "Bob", "Ella", "", "Bob", "Zoë".
	C42EventTeamSync = "d6e66cb0ced8e46102bcfd93ceac51b0_14752373875438"
	// C42EventEmpty ("Empty room") has no subscribers.
	C42EventEmpty = "00000000000000000000000000000000_00000000000000"
	// C42EventAllHands ("All hands") has 25 subscribers: three pages at the default limit.
	C42EventAllHands = "11111111111111111111111111111111_11111111111111"
	// C42EventTownHall ("Town hall") has 230 subscribers: three pages at relay's page size
	// of 100, the first fetched with the event, the other two after it, at once.
	C42EventTownHall = "22222222222222222222222222222222_22222222222222"
)

const (
	c42EventsPrefix  = "/api/v2/events/"
	c42SubsPath      = "/api/v2/event-subscriptions/"
	c42DefaultLimit  = 10
	c42MaxLimit      = 100
	c42MaxSubsPerGen = 30 // a generated event has 0..c42MaxSubsPerGen subscribers
	c42AllHandsSize  = 25
	c42TownHallSize  = 230
)

// c42FirstNames are what generated subscribers are called: empty names and duplicates on
// purpose, and some beyond ASCII.
var c42FirstNames = []string{
	"Alice", "Bob", "Chloé", "", "Dmitri", "Ella", "Bob", "Fatima", "Giulia", "Hiroshi", "",
	"Ingrid", "José", "Kwame", "Li", "Marie-Claire", "Noah", "Olga", "Priya", "Zoë", "Søren",
	"Anna", "Anna", "Łukasz", "王芳",
}

var c42LastNames = []string{
	"Smith", "de Vries", "Jansen", "O'Connor", "Müller", "Nakamura", "Okafor", "García",
	"Kowalski", "Ng", "Andersson", "Rossi", "",
}

var (
	c42Titles = []string{
		"Standup", "Design review", "Sprint planning", "Retro", "Quarterly planning",
		"Lunch & learn", "Café meetup", `Offsite: "Next steps"`, "Board meeting", "Hackathon kick-off",
		"Customer call", "Interview loop", "Book club", "Release party", "Security training",
	}
	c42Descriptions = []string{
		"", "", "Agenda in the shared doc.", "Bring your laptop.", "Dial-in details below.\nPIN: 4242",
		"Please RSVP by Friday.", "Snacks provided 🍕",
	}
	c42Zones       = []string{"Europe/Amsterdam", "Europe/London", "America/New_York", "Asia/Tokyo", "UTC"}
	c42Permissions = []string{"admin", "edit", "read", "read", "read"}
	c42RSVPs       = []string{"attending", "attending", "not_attending", "maybe", "not_responded", "not_responded"}
	c42GenFrom     = time.Date(2016, 1, 1, 0, 0, 0, 0, time.UTC)
	c42GenTo       = time.Date(2018, 1, 1, 0, 0, 0, 0, time.UTC)
)

// c42Person is a subscriber, an actor or a creator.
type c42Person struct {
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	UserID    int64  `json:"user_id"`
}

type c42Event struct {
	ID            string    `json:"id"`
	Title         string    `json:"title"`
	Description   string    `json:"description"`
	Start         string    `json:"start"`
	End           string    `json:"end"`
	StartTimezone string    `json:"start_timezone"`
	EndTimezone   string    `json:"end_timezone"`
	AllDay        bool      `json:"all_day"`
	EventType     string    `json:"event_type"`
	Location      *string   `json:"location"`
	Creator       c42Person `json:"creator"`
	CalendarIDs   []string  `json:"calendar_ids"`
	Created       string    `json:"created"`
	Modified      string    `json:"modified"`
}

type c42Subscription struct {
	ID         int64     `json:"id"`
	EventID    string    `json:"event_id"`
	Subscriber c42Person `json:"subscriber"`
	Actor      c42Person `json:"actor"`
	Permission string    `json:"permission"`
	RSVPStatus string    `json:"rsvp_status"`
	Created    string    `json:"created"`
	Modified   string    `json:"modified"`
}

// c42Entry is one event as served: its body, its subscriptions encoded one by one, and
// what relay should make of it.
type c42Entry struct {
	title string
	names []string
	body  []byte   // GET /api/v2/events/{id}/
	subs  [][]byte // each subscription's JSON, in creation order
}

// C42API serves the C42 routes over data generated once. Get it from a running simulator
// with sim.Routes().(*C42API); changing Size or Seed replaces it.
type C42API struct {
	ids       []string
	events    map[string]*c42Entry
	syncToken int64
}

// c42Routes builds the C42 API over the data of k's Size and Seed.
func c42Routes(k Knobs) http.Handler { return newC42API(k.Seed, k.Size) }

func newC42API(seed uint64, size int) *C42API {
	rng := rand.New(rand.NewPCG(seed, 0xc42))
	a := &C42API{events: map[string]*c42Entry{}, syncToken: 1_000_000 + rng.Int64N(9_000_000)}
	add := func(ev c42Event, subs []c42Subscription) {
		e := &c42Entry{title: ev.Title, names: make([]string, len(subs)), subs: make([][]byte, len(subs))}
		for i, s := range subs {
			e.names[i] = s.Subscriber.FirstName
			e.subs[i] = mustJSON(s)
		}
		e.body = mustJSON(struct {
			Data     []c42Event `json:"data"`
			MetaData c42Meta    `json:"meta_data"`
		}{[]c42Event{ev}, c42Meta{Count: 1, SyncToken: a.syncToken}})
		a.ids = append(a.ids, ev.ID)
		a.events[ev.ID] = e
	}
	for _, f := range c42Fixed() {
		add(f.event, f.subs)
	}
	g := c42Generator{rng: rng, nextSub: 100_000 + rng.Int64N(100_000)}
	g.people = g.newPeople(80+size/4, 20_000)
	for range size {
		ev, subs := g.event(a.events)
		add(ev, subs)
	}
	return a
}

type c42Meta struct {
	Count     int   `json:"count"`
	Offset    *int  `json:"offset,omitempty"`
	SyncToken int64 `json:"sync_token"`
}

type c42FixedEvent struct {
	event c42Event
	subs  []c42Subscription
}

// c42Fixed builds the fixed events from their own generator, so that they are the same
// whatever the Seed.
func c42Fixed() []c42FixedEvent {
	g := c42Generator{rng: rand.New(rand.NewPCG(42, 0xc42f)), nextSub: 5_001}
	teamSync := []c42Person{
		{"Bob", "Jansen", 1001}, {"Ella", "de Vries", 1002}, {"", "Okafor", 1003},
		{"Bob", "Smith", 1004}, {"Zoë", "Müller", 1005},
	}
	allHands := g.newPeople(c42AllHandsSize, 1100)

	ts := g.fixedEvent(C42EventTeamSync, "Team sync", "Weekly sync of the relay team.", teamSync[0],
		time.Unix(1475237387, 0), time.Date(2016, 10, 3, 9, 0, 0, 0, time.UTC), 30*time.Minute)
	empty := g.fixedEvent(C42EventEmpty, "Empty room", "Nobody is coming.", c42Person{"Ella", "de Vries", 1002},
		time.Date(2016, 1, 4, 8, 0, 0, 0, time.UTC), time.Date(2016, 1, 11, 14, 0, 0, 0, time.UTC), time.Hour)
	ah := g.fixedEvent(C42EventAllHands, "All hands", "Everyone, every quarter.", allHands[0],
		time.Unix(1111111111, 0), time.Date(2005, 4, 1, 16, 0, 0, 0, time.UTC), 90*time.Minute)
	fixed := []c42FixedEvent{
		{ts, g.subscriptions(ts, teamSync)},
		{empty, nil},
		{ah, g.subscriptions(ah, allHands)},
	}
	// Made after the others, from the same generator, so that theirs stay as they were.
	townHall := g.newPeople(c42TownHallSize, 2000)
	th := g.fixedEvent(C42EventTownHall, "Town hall", "Everyone, with questions.", townHall[0],
		time.Unix(1222222222, 0), time.Date(2008, 9, 24, 17, 0, 0, 0, time.UTC), time.Hour)
	return append(fixed, c42FixedEvent{th, g.subscriptions(th, townHall)})
}

// c42Generator makes people, events and subscriptions from one rng.
type c42Generator struct {
	rng     *rand.Rand
	people  []c42Person
	nextSub int64
}

// newPeople makes n people with increasing user ids from base on.
func (g *c42Generator) newPeople(n int, base int64) []c42Person {
	people := make([]c42Person, n)
	id := base
	for i := range people {
		id += 1 + g.rng.Int64N(7)
		people[i] = c42Person{
			FirstName: c42FirstNames[g.rng.IntN(len(c42FirstNames))],
			LastName:  c42LastNames[g.rng.IntN(len(c42LastNames))],
			UserID:    id,
		}
	}
	return people
}

func (g *c42Generator) fixedEvent(id, title, desc string, creator c42Person, created, start time.Time, d time.Duration) c42Event {
	return c42Event{
		ID: id, Title: title, Description: desc,
		Start: c42Time(start), End: c42Time(start.Add(d)),
		StartTimezone: "Europe/Amsterdam", EndTimezone: "Europe/Amsterdam",
		EventType: "normal", Creator: creator, CalendarIDs: []string{g.hex()},
		Created: c42Time(created), Modified: c42Time(created.Add(time.Hour)),
	}
}

// event makes one event with a fresh id and 0..c42MaxSubsPerGen subscribers.
func (g *c42Generator) event(taken map[string]*c42Entry) (c42Event, []c42Subscription) {
	rng := g.rng
	created := c42GenFrom.Add(time.Duration(rng.Int64N(int64(c42GenTo.Sub(c42GenFrom)/time.Second))) * time.Second)
	var id string
	for {
		id = fmt.Sprintf("%s_%d", g.hex(), created.Unix()*10_000+rng.Int64N(10_000)) // 14 digits
		if !hasKey(taken, id) {
			break
		}
	}
	subscribers := g.pick(rng.IntN(c42MaxSubsPerGen + 1))
	creator := g.people[rng.IntN(len(g.people))]
	if len(subscribers) > 0 {
		creator = subscribers[0]
	}
	title := c42Titles[rng.IntN(len(c42Titles))]
	if rng.IntN(5) == 0 {
		title = fmt.Sprintf("%s #%d", title, 1+rng.IntN(50))
	}
	zone := c42Zones[rng.IntN(len(c42Zones))]
	ev := c42Event{
		ID: id, Title: title, Description: c42Descriptions[rng.IntN(len(c42Descriptions))],
		StartTimezone: zone, EndTimezone: zone, EventType: "normal", Creator: creator,
		Created: c42Time(created), Modified: c42Time(created.Add(time.Duration(rng.Int64N(int64(30 * 24 * time.Hour))))),
	}
	for range 1 + rng.IntN(3) {
		ev.CalendarIDs = append(ev.CalendarIDs, g.hex())
	}
	if rng.IntN(3) == 0 {
		loc := fmt.Sprintf("Room %d.%02d", 1+rng.IntN(5), rng.IntN(40))
		ev.Location = &loc
	}
	start := created.Add(time.Hour + time.Duration(rng.Int64N(int64(60*24*time.Hour)))).Truncate(15 * time.Minute)
	if rng.IntN(10) == 0 {
		ev.AllDay = true
		start = start.Truncate(24 * time.Hour)
		ev.Start, ev.End = c42Time(start), c42Time(start.Add(time.Duration(1+rng.IntN(3))*24*time.Hour))
	} else {
		ev.Start, ev.End = c42Time(start), c42Time(start.Add(time.Duration(1+rng.IntN(16))*15*time.Minute))
	}
	return ev, g.subscriptions(ev, subscribers)
}

// pick chooses n different people.
func (g *c42Generator) pick(n int) []c42Person {
	seen := map[int]bool{}
	out := make([]c42Person, 0, n)
	for len(out) < n {
		if i := g.rng.IntN(len(g.people)); !seen[i] {
			seen[i] = true
			out = append(out, g.people[i])
		}
	}
	return out
}

// subscriptions subscribes people to ev in order: the first is the creator, as owner,
// subscribing themselves; the others are subscribed by the creator or by themselves.
func (g *c42Generator) subscriptions(ev c42Event, people []c42Person) []c42Subscription {
	rng := g.rng
	at, err := time.Parse(time.RFC3339, ev.Created)
	if err != nil {
		panic(err) // c42Time wrote it
	}
	subs := make([]c42Subscription, len(people))
	for i, p := range people {
		s := c42Subscription{
			ID: g.nextSub, EventID: ev.ID, Subscriber: p, Actor: ev.Creator,
			Permission: "owner", RSVPStatus: "attending",
		}
		g.nextSub += 1 + rng.Int64N(50)
		if i > 0 {
			at = at.Add(time.Minute + time.Duration(rng.Int64N(int64(3*24*time.Hour))))
			s.Permission = c42Permissions[rng.IntN(len(c42Permissions))]
			s.RSVPStatus = c42RSVPs[rng.IntN(len(c42RSVPs))]
			if rng.IntN(4) == 0 {
				s.Actor = p
			}
		}
		s.Created = c42Time(at)
		s.Modified = c42Time(at.Add(time.Duration(rng.Int64N(int64(24 * time.Hour)))))
		subs[i] = s
	}
	return subs
}

// hex makes 32 lowercase hex digits.
func (g *c42Generator) hex() string { return fmt.Sprintf("%016x%016x", g.rng.Uint64(), g.rng.Uint64()) }

func c42Time(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// EventIDs returns the ids of every event: the fixed ones first, then the generated.
func (a *C42API) EventIDs() []string { return append([]string{}, a.ids...) }

// Expected returns what relay should make of an event: its title and every subscriber's
// first name in creation order (an empty list, not nil, for an event without any).
func (a *C42API) Expected(eventID string) (title string, names []string, ok bool) {
	e, ok := a.events[eventID]
	if !ok {
		return "", nil, false
	}
	return e.title, append([]string{}, e.names...), true
}

// ServeHTTP answers the C42 routes; the framework has already checked the token and faults.
func (a *C42API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case path == c42SubsPath:
		if c42Allow(w, r) {
			a.serveSubscriptions(w, r)
		}
	case strings.HasPrefix(path, c42EventsPrefix) && c42EventSegment(path) != "":
		if !c42Allow(w, r) {
			return
		}
		id := c42EventSegment(path)
		e, ok := a.events[id]
		if !ok {
			c42Error(w, http.StatusNotFound, fmt.Sprintf("no event with id %q", id))
			return
		}
		writeEncoded(w, e.body)
	default:
		c42Error(w, http.StatusNotFound, "no such route: "+r.Method+" "+path)
	}
}

// serveSubscriptions answers one page of GET /api/v2/event-subscriptions/.
func (a *C42API) serveSubscriptions(w http.ResponseWriter, r *http.Request) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		c42Error(w, http.StatusBadRequest, "malformed query: "+err.Error())
		return
	}
	id, err := c42EventIDsParam(q)
	if err != nil {
		c42Error(w, http.StatusBadRequest, err.Error())
		return
	}
	limit, err := c42IntParam(q, "limit", c42DefaultLimit, 1)
	if err != nil {
		c42Error(w, http.StatusBadRequest, err.Error())
		return
	}
	offset, err := c42IntParam(q, "offset", 0, 0)
	if err != nil {
		c42Error(w, http.StatusBadRequest, err.Error())
		return
	}
	limit = min(limit, c42MaxLimit)

	var subs [][]byte // an unknown event has none
	if e, ok := a.events[id]; ok {
		subs = e.subs
	}
	var buf bytes.Buffer
	buf.WriteString(`{"data":[`)
	if offset < len(subs) {
		for i, s := range subs[offset:min(offset+limit, len(subs))] {
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.Write(s)
		}
	}
	buf.WriteString(`],"meta_data":`)
	buf.Write(mustJSON(c42Meta{Count: len(subs), Offset: &offset, SyncToken: a.syncToken}))
	buf.WriteByte('}')
	writeEncoded(w, buf.Bytes())
}

// c42EventIDsParam reads event_ids, which must be one event id in brackets: [<id>].
func c42EventIDsParam(q url.Values) (string, error) {
	vals, ok := q["event_ids"]
	switch {
	case !ok:
		return "", fmt.Errorf("event_ids is required, like event_ids=[<event id>]")
	case len(vals) > 1:
		return "", fmt.Errorf("event_ids is given %d times, want once", len(vals))
	}
	v := vals[0]
	inner, hasOpen := strings.CutPrefix(v, "[")
	inner, hasClose := strings.CutSuffix(inner, "]")
	switch {
	case !hasOpen || !hasClose:
		return "", fmt.Errorf("event_ids is %q, want a list in brackets like [<event id>]", v)
	case inner == "":
		return "", fmt.Errorf("event_ids lists no event id")
	case strings.Contains(inner, ","):
		return "", fmt.Errorf("event_ids is %q: this simulator takes one event id at a time", v)
	case strings.IndexFunc(inner, func(c rune) bool { return !c42IDRune(c) }) >= 0:
		return "", fmt.Errorf("event_ids is %q, whose %q is not an event id", v, inner)
	}
	return inner, nil
}

func c42IDRune(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// c42IntParam reads a whole number >= least, or def when the parameter is absent.
func c42IntParam(q url.Values, name string, def, least int) (int, error) {
	vals, ok := q[name]
	if !ok {
		return def, nil
	}
	if len(vals) > 1 {
		return 0, fmt.Errorf("%s is given %d times, want once", name, len(vals))
	}
	n, err := strconv.Atoi(vals[0])
	if err != nil || n < least {
		return 0, fmt.Errorf("%s is %q, want a whole number >= %d", name, vals[0], least)
	}
	return n, nil
}

// c42EventSegment returns the event id of /api/v2/events/{id} or /api/v2/events/{id}/,
// or "" if the path is not one.
func c42EventSegment(path string) string {
	rest := strings.TrimSuffix(strings.TrimPrefix(path, c42EventsPrefix), "/")
	if strings.Contains(rest, "/") {
		return ""
	}
	return rest
}

// c42Allow answers 405 unless r is a GET.
func c42Allow(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet {
		return true
	}
	w.Header().Set("Allow", http.MethodGet)
	c42Error(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s, use GET", r.Method, r.URL.Path))
	return false
}

func c42Error(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, c42ErrorBody(status, msg))
}
