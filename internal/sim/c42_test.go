package sim

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	c42Token      = withHeader("Authorization", "Token "+DefaultC42Token)
	c42IDPattern  = regexp.MustCompile(`^[0-9a-f]{32}_[0-9]{14}$`)
	teamSyncNames = []string{"Bob", "Ella", "", "Bob", "Zoë"}
)

// serveC42 starts the real C42 simulator with the knob list and returns its API too.
func serveC42(t *testing.T, list string) (*Sim, *C42API, string) {
	t.Helper()
	s, url := serve(t, Upstreams()[C42], list)
	api, ok := s.Routes().(*C42API)
	require.True(t, ok, "C42 routes are %T", s.Routes())
	return s, api, url
}

// c42SubsURL is the subscriptions URL for one event id, brackets written as given, with
// the extra query appended.
func c42SubsURL(base, eventIDs, extra string) string {
	u := base + "/api/v2/event-subscriptions/?event_ids=" + eventIDs
	if extra != "" {
		u += "&" + extra
	}
	return u
}

type c42Page struct {
	Data     []c42Subscription `json:"data"`
	MetaData struct {
		Count     int   `json:"count"`
		Offset    int   `json:"offset"`
		SyncToken int64 `json:"sync_token"`
	} `json:"meta_data"`
}

// getSubs fetches one page and decodes it, checking the envelope's shape on the way.
func getSubs(t *testing.T, base, eventID, extra string) c42Page {
	t.Helper()
	res := get(t, c42SubsURL(base, "%5B"+eventID+"%5D", extra), c42Token)
	require.Equal(t, http.StatusOK, res.status, res.body)
	assert.Equal(t, "application/json", res.header.Get("Content-Type"))
	var raw struct {
		Data     []map[string]json.RawMessage `json:"data"`
		MetaData map[string]json.RawMessage   `json:"meta_data"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.body), &raw))
	require.NotNil(t, raw.Data, "data is a list, never null: %s", res.body)
	assert.ElementsMatch(t, []string{"count", "offset", "sync_token"}, slices.Collect(maps.Keys(raw.MetaData)))
	for i, s := range raw.Data {
		for _, f := range []string{"id", "event_id", "subscriber", "actor", "permission", "rsvp_status", "created"} {
			assert.Contains(t, s, f, "item %d", i)
		}
	}
	var page c42Page
	require.NoError(t, json.Unmarshal([]byte(res.body), &page))
	return page
}

func firstNames(subs []c42Subscription) []string {
	names := []string{}
	for _, s := range subs {
		names = append(names, s.Subscriber.FirstName)
	}
	return names
}

// getEvent fetches one event and returns it decoded.
func getEvent(t *testing.T, base, id string) (c42Event, map[string]any) {
	t.Helper()
	res := get(t, base+"/api/v2/events/"+id+"/", c42Token)
	require.Equal(t, http.StatusOK, res.status, res.body)
	var body struct {
		Data     []c42Event     `json:"data"`
		MetaData map[string]any `json:"meta_data"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.body), &body))
	require.Len(t, body.Data, 1, "data is a list of one")
	return body.Data[0], body.MetaData
}

func TestC42TokenOnEveryEndpoint(t *testing.T) {
	_, _, url := serveC42(t, "")
	const c42401 = `{"error":{"message":"invalid or missing credentials","code":"unauthorized","status_code":401}}`
	paths := []string{
		"/api/v2/events/" + C42EventTeamSync + "/",
		"/api/v2/events/" + C42EventTeamSync,
		"/api/v2/events/nope/",
		"/api/v2/event-subscriptions/?event_ids=%5B" + C42EventTeamSync + "%5D",
		"/api/v2/event-subscriptions/?event_ids=[" + C42EventTeamSync + "]",
		"/api/v2/event-subscriptions/",
		"/nope",
	}
	tokens := map[string]func(*http.Request){
		"no token":     nil,
		"wrong token":  withHeader("Authorization", "Token nope"),
		"bearer":       withHeader("Authorization", "Bearer "+DefaultC42Token),
		"bare token":   withHeader("Authorization", DefaultC42Token),
		"empty token":  withHeader("Authorization", "Token "),
		"token suffix": withHeader("Authorization", "Token "+DefaultC42Token+"x"),
	}
	for _, p := range paths {
		for name, set := range tokens {
			t.Run(p+" "+name, func(t *testing.T) {
				res := get(t, url+p, set)
				assert.Equal(t, http.StatusUnauthorized, res.status)
				assert.JSONEq(t, c42401, res.body)
				assert.Equal(t, "application/json", res.header.Get("Content-Type"))
			})
		}
	}
	// And the right token gets through to both endpoints.
	assert.Equal(t, http.StatusOK, get(t, url+paths[0], c42Token).status)
	assert.Equal(t, http.StatusOK, get(t, url+paths[3], c42Token).status)
}

func TestC42Event(t *testing.T) {
	_, api, url := serveC42(t, "")
	withSlash := get(t, url+"/api/v2/events/"+C42EventTeamSync+"/", c42Token)
	require.Equal(t, http.StatusOK, withSlash.status, withSlash.body)
	assert.Equal(t, "application/json", withSlash.header.Get("Content-Type"))
	without := get(t, url+"/api/v2/events/"+C42EventTeamSync, c42Token)
	require.Equal(t, http.StatusOK, without.status, without.body)
	assert.Equal(t, withSlash.body, without.body, "the trailing slash is optional")

	var raw struct {
		Data     []map[string]any `json:"data"`
		MetaData map[string]any   `json:"meta_data"`
	}
	require.NoError(t, json.Unmarshal([]byte(withSlash.body), &raw))
	require.Len(t, raw.Data, 1)
	for _, f := range []string{"id", "title", "description", "start", "end", "all_day", "creator", "calendar_ids", "created"} {
		assert.Contains(t, raw.Data[0], f)
	}
	assert.NotNil(t, raw.MetaData)

	ev, _ := getEvent(t, url, C42EventTeamSync)
	assert.Equal(t, C42EventTeamSync, ev.ID)
	assert.Equal(t, "Team sync", ev.Title)
	assert.Equal(t, "Bob", ev.Creator.FirstName)
	assert.NotEmpty(t, ev.CalendarIDs)
	assert.Equal(t, "2016-10-03T09:00:00Z", ev.Start)
	assert.Equal(t, "2016-10-03T09:30:00Z", ev.End)

	for _, tt := range []struct{ id, title string }{{C42EventEmpty, "Empty room"}, {C42EventAllHands, "All hands"}} {
		ev, _ := getEvent(t, url, tt.id)
		assert.Equal(t, tt.title, ev.Title)
	}

	// Every event's times are RFC 3339 and in order.
	for _, id := range api.EventIDs() {
		var body struct{ Data []c42Event }
		require.NoError(t, json.Unmarshal(api.events[id].body, &body))
		require.Len(t, body.Data, 1)
		e := body.Data[0]
		start, err := time.Parse(time.RFC3339, e.Start)
		require.NoError(t, err, id)
		end, err := time.Parse(time.RFC3339, e.End)
		require.NoError(t, err, id)
		assert.True(t, end.After(start), "%s ends after it starts", id)
		_, err = time.Parse(time.RFC3339, e.Created)
		require.NoError(t, err, id)
		assert.NotEmpty(t, e.Title, id)
	}
}

func TestC42UnknownEvent(t *testing.T) {
	_, api, url := serveC42(t, "")
	const id = "ffffffffffffffffffffffffffffffff_99999999999999"
	for _, p := range []string{"/api/v2/events/" + id + "/", "/api/v2/events/" + id} {
		res := get(t, url+p, c42Token)
		assert.Equal(t, http.StatusNotFound, res.status)
		assert.Equal(t, "application/json", res.header.Get("Content-Type"))
		assert.JSONEq(t, `{"error":{"message":"no event with id \"`+id+`\"","code":"not_found","status_code":404}}`, res.body)
	}
	_, _, ok := api.Expected(id)
	assert.False(t, ok)
}

func TestC42SubscriptionsOnePage(t *testing.T) {
	_, api, url := serveC42(t, "")
	page := getSubs(t, url, C42EventTeamSync, "")
	assert.Equal(t, teamSyncNames, firstNames(page.Data), "in creation order, the empty name and the duplicate kept")
	assert.Equal(t, 5, page.MetaData.Count)
	assert.Equal(t, 0, page.MetaData.Offset)
	assert.Positive(t, page.MetaData.SyncToken)

	title, names, ok := api.Expected(C42EventTeamSync)
	require.True(t, ok)
	assert.Equal(t, "Team sync", title)
	assert.Equal(t, teamSyncNames, names)

	var last time.Time
	ids := map[int64]bool{}
	for i, s := range page.Data {
		assert.Equal(t, C42EventTeamSync, s.EventID)
		assert.False(t, ids[s.ID], "subscription ids are unique")
		ids[s.ID] = true
		created, err := time.Parse(time.RFC3339, s.Created)
		require.NoError(t, err)
		assert.False(t, created.Before(last), "item %d is in creation order", i)
		last = created
		assert.NotZero(t, s.Subscriber.UserID)
		assert.NotZero(t, s.Actor.UserID)
	}
	assert.NotEqual(t, page.Data[0].Subscriber.UserID, page.Data[3].Subscriber.UserID, "two people called Bob")
	assert.Equal(t, "owner", page.Data[0].Permission)

	// The raw body spells the non-ASCII name as UTF-8 and keeps the empty one.
	res := get(t, c42SubsURL(url, "["+C42EventTeamSync+"]", ""), c42Token)
	assert.Contains(t, res.body, `"first_name":"Zoë"`)
	assert.Contains(t, res.body, `"first_name":""`)

	empty := getSubs(t, url, C42EventEmpty, "")
	assert.Empty(t, empty.Data)
	assert.Equal(t, 0, empty.MetaData.Count)
	_, names, ok = api.Expected(C42EventEmpty)
	require.True(t, ok)
	assert.Equal(t, []string{}, names, "an empty list, not nil")
}

func TestC42Pagination(t *testing.T) {
	_, api, url := serveC42(t, "")
	_, want, ok := api.Expected(C42EventAllHands)
	require.True(t, ok)
	require.Len(t, want, 25)

	var got []string
	ids := map[int64]bool{}
	for _, tt := range []struct{ offset, n int }{{0, 10}, {10, 10}, {20, 5}} {
		page := getSubs(t, url, C42EventAllHands, fmt.Sprintf("limit=10&offset=%d", tt.offset))
		assert.Len(t, page.Data, tt.n, "offset %d", tt.offset)
		assert.Equal(t, 25, page.MetaData.Count)
		assert.Equal(t, tt.offset, page.MetaData.Offset)
		for _, s := range page.Data {
			assert.False(t, ids[s.ID], "no subscription on two pages")
			ids[s.ID] = true
		}
		got = append(got, firstNames(page.Data)...)
	}
	assert.Equal(t, want, got)

	first := getSubs(t, url, C42EventAllHands, "")
	assert.Equal(t, want[:10], firstNames(first.Data), "the default page is 10")
	assert.Equal(t, first, getSubs(t, url, C42EventAllHands, "offset=0&limit=10"))
	assert.Equal(t, want[10:20], firstNames(getSubs(t, url, C42EventAllHands, "offset=10").Data))

	for _, offset := range []int{25, 26, 1000} {
		page := getSubs(t, url, C42EventAllHands, fmt.Sprintf("offset=%d", offset))
		assert.Empty(t, page.Data, "offset %d is past the end", offset)
		assert.Equal(t, 25, page.MetaData.Count, "with the true count")
		assert.Equal(t, offset, page.MetaData.Offset)
	}

	three := getSubs(t, url, C42EventAllHands, "limit=3")
	assert.Equal(t, want[:3], firstNames(three.Data))
	assert.Equal(t, 25, three.MetaData.Count)
	assert.Equal(t, want[22:], firstNames(getSubs(t, url, C42EventAllHands, "limit=3&offset=22").Data))
	assert.Equal(t, want, firstNames(getSubs(t, url, C42EventAllHands, "limit=25").Data))
	assert.Equal(t, want, firstNames(getSubs(t, url, C42EventAllHands, "limit=1000").Data), "a large limit is allowed")
}

// The town hall event takes three pages at relay's page size: 100, 100 and 30.
func TestC42TownHallTakesThreePages(t *testing.T) {
	_, api, url := serveC42(t, "")
	_, want, ok := api.Expected(C42EventTownHall)
	require.True(t, ok)
	require.Len(t, want, 230)
	var got []string
	for _, tt := range []struct{ offset, n int }{{0, 100}, {100, 100}, {200, 30}} {
		page := getSubs(t, url, C42EventTownHall, fmt.Sprintf("limit=100&offset=%d", tt.offset))
		assert.Len(t, page.Data, tt.n, "offset %d", tt.offset)
		assert.Equal(t, 230, page.MetaData.Count)
		got = append(got, firstNames(page.Data)...)
	}
	assert.Equal(t, want, got)
}

// TestC42LimitCapped checks the page size cap on an event with more subscriptions than it.
func TestC42LimitCapped(t *testing.T) {
	api := newC42API(1, 0)
	big := &c42Entry{title: "Big", names: make([]string, 150), subs: make([][]byte, 150)}
	for i := range big.subs {
		big.subs[i] = []byte(fmt.Sprintf(`{"id":%d}`, i))
	}
	api.events["big"] = big
	up := Upstreams()[C42]
	up.Routes = func(Knobs) http.Handler { return api }
	_, base := serve(t, up, "")
	res := get(t, c42SubsURL(base, "[big]", "limit=1000"), c42Token)
	require.Equal(t, http.StatusOK, res.status, res.body)
	var page struct {
		Data     []struct{ ID int }
		MetaData struct{ Count int } `json:"meta_data"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.body), &page))
	assert.Len(t, page.Data, c42MaxLimit, "a client must page by count, not by a short page")
	assert.Equal(t, 150, page.MetaData.Count)
}

func TestC42Brackets(t *testing.T) {
	_, _, base := serveC42(t, "")
	var bodies []string
	for _, ids := range []string{
		"%5B" + C42EventTeamSync + "%5D",
		"%5b" + C42EventTeamSync + "%5d",
		"[" + C42EventTeamSync + "]",
		"%5B" + C42EventTeamSync + "]",
		url.QueryEscape("[" + C42EventTeamSync + "]"),
	} {
		res := get(t, c42SubsURL(base, ids, ""), c42Token)
		require.Equal(t, http.StatusOK, res.status, "%s: %s", ids, res.body)
		bodies = append(bodies, res.body)
	}
	for _, b := range bodies[1:] {
		assert.Equal(t, bodies[0], b, "the same page however the brackets are written")
	}
	var page c42Page
	require.NoError(t, json.Unmarshal([]byte(bodies[0]), &page))
	assert.Equal(t, teamSyncNames, firstNames(page.Data))
}

func TestC42BadQuery(t *testing.T) {
	s, _, base := serveC42(t, "")
	id := C42EventTeamSync
	tests := []struct {
		name, query, msg string
	}{
		{"no event_ids", "limit=10", "event_ids is required, like event_ids=[<event id>]"},
		{"no query", "", "event_ids is required, like event_ids=[<event id>]"},
		{"empty event_ids", "event_ids=", `event_ids is "", want a list in brackets like [<event id>]`},
		{"no brackets", "event_ids=" + id, `event_ids is "` + id + `", want a list in brackets like [<event id>]`},
		{"no closing bracket", "event_ids=%5B" + id, `event_ids is "[` + id + `", want a list in brackets like [<event id>]`},
		{"parentheses", "event_ids=(" + id + ")", `event_ids is "(` + id + `)", want a list in brackets like [<event id>]`},
		{"empty list", "event_ids=[]", "event_ids lists no event id"},
		{"two ids", "event_ids=[" + id + "," + C42EventEmpty + "]", `event_ids is "[` + id + `,` + C42EventEmpty + `]": this simulator takes one event id at a time`},
		{"quoted id", `event_ids=["` + id + `"]`, `event_ids is "[\"` + id + `\"]", whose "\"` + id + `\"" is not an event id`},
		{"space", "event_ids=%5B%20" + id + "%5D", `event_ids is "[ ` + id + `]", whose " ` + id + `" is not an event id`},
		{"twice", "event_ids=[" + id + "]&event_ids=[" + id + "]", "event_ids is given 2 times, want once"},
		{"limit not a number", "event_ids=[" + id + "]&limit=ten", `limit is "ten", want a whole number >= 1`},
		{"limit negative", "event_ids=[" + id + "]&limit=-1", `limit is "-1", want a whole number >= 1`},
		{"limit zero", "event_ids=[" + id + "]&limit=0", `limit is "0", want a whole number >= 1`},
		{"limit empty", "event_ids=[" + id + "]&limit=", `limit is "", want a whole number >= 1`},
		{"limit fraction", "event_ids=[" + id + "]&limit=1.5", `limit is "1.5", want a whole number >= 1`},
		{"offset not a number", "event_ids=[" + id + "]&offset=x", `offset is "x", want a whole number >= 0`},
		{"offset negative", "event_ids=[" + id + "]&offset=-10", `offset is "-10", want a whole number >= 0`},
		{"offset empty", "event_ids=[" + id + "]&offset=", `offset is "", want a whole number >= 0`},
		{"offset too large", "event_ids=[" + id + "]&offset=99999999999999999999", `offset is "99999999999999999999", want a whole number >= 0`},
		{"offset twice", "event_ids=[" + id + "]&offset=0&offset=10", "offset is given 2 times, want once"},
		{"bad escape", "event_ids=%ZZ", `malformed query: invalid URL escape "%ZZ"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := get(t, base+"/api/v2/event-subscriptions/?"+tt.query, c42Token)
			assert.Equal(t, http.StatusBadRequest, res.status)
			assert.Equal(t, "application/json", res.header.Get("Content-Type"))
			assert.JSONEq(t, mustMarshal(t, map[string]any{"error": map[string]any{
				"message": tt.msg, "code": "bad_request", "status_code": 400,
			}}), res.body)
		})
	}
	assert.Equal(t, len(tests), s.CallCount("/api/v2/event-subscriptions/"))
}

func TestC42UnknownEventSubscriptions(t *testing.T) {
	_, api, url := serveC42(t, "")
	for _, id := range []string{
		"ffffffffffffffffffffffffffffffff_99999999999999",
		strings.ToUpper(C42EventTeamSync), // ids are case-sensitive
		"nope",
	} {
		res := get(t, c42SubsURL(url, "%5B"+id+"%5D", "limit=10&offset=0"), c42Token)
		require.Equal(t, http.StatusOK, res.status, "unknown events have no subscriptions, not a 404")
		assert.JSONEq(t, fmt.Sprintf(`{"data":[],"meta_data":{"count":0,"offset":0,"sync_token":%d}}`, api.syncToken), res.body)
	}
}

func TestC42RoutesAndMethods(t *testing.T) {
	_, _, url := serveC42(t, "")
	subs := "/api/v2/event-subscriptions/?event_ids=[" + C42EventTeamSync + "]"
	tests := []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/", 404},
		{http.MethodGet, "/nope", 404},
		{http.MethodGet, "/api/v2/events/", 404},
		{http.MethodGet, "/api/v2/events", 404},
		{http.MethodGet, "/api/v2/events//", 404},
		{http.MethodGet, "/api/v2/events/" + C42EventTeamSync + "/subscriptions/", 404},
		{http.MethodGet, "/api/v2/events/" + C42EventTeamSync + "//", 404},
		{http.MethodGet, "/api/v2/event-subscriptions?event_ids=[" + C42EventTeamSync + "]", 404},
		{http.MethodGet, "/api/v2/event-subscriptions/x/", 404},
		{http.MethodGet, "/api/v1/events/" + C42EventTeamSync + "/", 404},
		{http.MethodPost, "/api/v2/events/" + C42EventTeamSync + "/", 405},
		{http.MethodDelete, "/api/v2/events/" + C42EventTeamSync, 405},
		{http.MethodPut, "/api/v2/events/nope/", 405},
		{http.MethodPost, subs, 405},
		{http.MethodPatch, subs, 405},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			res := call(t, tt.method, url+tt.path, "{}", c42Token)
			assert.Equal(t, tt.status, res.status)
			if tt.status == 405 {
				assert.Equal(t, "GET", res.header.Get("Allow"))
			}
			var body struct {
				Error struct {
					Message    string `json:"message"`
					Code       string `json:"code"`
					StatusCode int    `json:"status_code"`
				} `json:"error"`
			}
			require.NoError(t, json.Unmarshal([]byte(res.body), &body), res.body)
			assert.NotEmpty(t, body.Error.Message)
			assert.Equal(t, map[int]string{404: "not_found", 405: "method_not_allowed"}[tt.status], body.Error.Code)
			assert.Equal(t, tt.status, body.Error.StatusCode)
		})
	}
}

// TestC42ExpectedAgreesWithAPI pages through every event the way relay should, one call
// a page, and compares with what the simulator says relay should return.
func TestC42ExpectedAgreesWithAPI(t *testing.T) {
	for _, list := range []string{"", "seed=7,size=40", "size=0"} {
		t.Run(list, func(t *testing.T) {
			s, api, url := serveC42(t, list)
			ids := api.EventIDs()
			require.Len(t, ids, len(c42Fixed())+s.Knobs().Size)
			for _, id := range ids {
				title, want, ok := api.Expected(id)
				require.True(t, ok, id)
				ev, _ := getEvent(t, url, id)
				assert.Equal(t, title, ev.Title, id)

				got := []string{}
				for offset := 0; ; offset += c42DefaultLimit {
					before := s.CallCount("/api/v2/event-subscriptions/")
					page := getSubs(t, url, id, fmt.Sprintf("offset=%d", offset))
					require.Equal(t, before+1, s.CallCount("/api/v2/event-subscriptions/"), "one call a page")
					require.Equal(t, len(want), page.MetaData.Count, id)
					require.LessOrEqual(t, len(page.Data), c42DefaultLimit)
					for _, sub := range page.Data {
						assert.Equal(t, id, sub.EventID)
					}
					got = append(got, firstNames(page.Data)...)
					if offset+c42DefaultLimit >= page.MetaData.Count {
						break
					}
				}
				assert.Equal(t, want, got, id)
			}
		})
	}
}

// TestC42Variety checks that the generated data holds the cases a client must get right,
// at the default size.
func TestC42Variety(t *testing.T) {
	_, api, _ := serveC42(t, "")
	ids := api.EventIDs()
	require.Len(t, ids, 104)
	assert.Equal(t, []string{C42EventTeamSync, C42EventEmpty, C42EventAllHands, C42EventTownHall}, ids[:4], "the fixed events come first")
	seen := map[string]bool{}
	var none, multiPage, emptyName, dupName, nonASCII, allDay int
	for _, id := range ids {
		assert.False(t, seen[id], "event ids are unique")
		seen[id] = true
		_, names, _ := api.Expected(id)
		if id == C42EventTeamSync || id == C42EventEmpty || id == C42EventAllHands || id == C42EventTownHall {
			continue
		}
		assert.Regexp(t, c42IDPattern, id)
		assert.LessOrEqual(t, len(names), c42MaxSubsPerGen)
		if len(names) == 0 {
			none++
		}
		if len(names) > 2*c42DefaultLimit {
			multiPage++
		}
		counts := map[string]int{}
		for _, n := range names {
			counts[n]++
			if n == "" {
				emptyName++
			}
			if strings.ContainsFunc(n, func(r rune) bool { return r > 127 }) {
				nonASCII++
			}
		}
		for n, c := range counts {
			if c > 1 && n != "" {
				dupName++
			}
		}
		var body struct{ Data []c42Event }
		require.NoError(t, json.Unmarshal(api.events[id].body, &body))
		if body.Data[0].AllDay {
			allDay++
		}
	}
	assert.Positive(t, none, "some events have no subscribers")
	assert.Positive(t, multiPage, "some take three pages")
	assert.Positive(t, emptyName, "some first names are empty")
	assert.Positive(t, dupName, "some events have two subscribers of the same first name")
	assert.Positive(t, nonASCII, "some names are beyond ASCII")
	assert.Positive(t, allDay, "some events are all day")
}

func TestC42Determinism(t *testing.T) {
	bodies := func(list string) (*C42API, string) {
		t.Helper()
		_, api, url := serveC42(t, list)
		var b strings.Builder
		for _, id := range api.EventIDs() {
			b.WriteString(get(t, url+"/api/v2/events/"+id+"/", c42Token).body)
			b.WriteString(get(t, c42SubsURL(url, "["+id+"]", "limit=100"), c42Token).body)
		}
		return api, b.String()
	}
	a, body := bodies("seed=3,size=50")
	b, again := bodies("seed=3,size=50")
	assert.Equal(t, body, again, "same seed and size, same bytes")
	assert.Equal(t, a.EventIDs(), b.EventIDs())
	c, other := bodies("seed=4,size=50")
	assert.NotEqual(t, body, other, "another seed, other data")
	assert.NotEqual(t, a.EventIDs()[4:], c.EventIDs()[4:])

	// The fixed events are the same whatever the seed and size.
	d := newC42API(99, 0)
	for _, id := range []string{C42EventTeamSync, C42EventEmpty, C42EventAllHands, C42EventTownHall} {
		wantTitle, wantNames, _ := a.Expected(id)
		for _, api := range []*C42API{c, d} {
			title, names, ok := api.Expected(id)
			require.True(t, ok)
			assert.Equal(t, wantTitle, title)
			assert.Equal(t, wantNames, names)
			assert.Equal(t, a.events[id].subs, api.events[id].subs, "the same subscriptions, byte for byte")
		}
	}
	assert.Len(t, d.EventIDs(), 4, "size=0 leaves the fixed events")
}

func TestC42ExpectedReturnsCopies(t *testing.T) {
	_, api, _ := serveC42(t, "")
	_, names, _ := api.Expected(C42EventTeamSync)
	names[0] = "Mallory"
	_, again, _ := api.Expected(C42EventTeamSync)
	assert.Equal(t, teamSyncNames, again)
	ids := api.EventIDs()
	ids[0] = "x"
	assert.Equal(t, C42EventTeamSync, api.EventIDs()[0])
}

func TestC42NewDataOnSeedChange(t *testing.T) {
	s, api, _ := serveC42(t, "")
	k := s.Knobs()
	k.Latency = time.Millisecond
	s.SetKnobs(k)
	assert.Same(t, api, s.Routes(), "knobs other than Size and Seed keep the data")
	k.Size = 5
	s.SetKnobs(k)
	fresh, ok := s.Routes().(*C42API)
	require.True(t, ok)
	assert.Len(t, fresh.EventIDs(), 9)
}

func TestC42LargeSize(t *testing.T) {
	start := time.Now()
	api := Upstreams()[C42].Routes(Knobs{Size: 10_000, Seed: 1}).(*C42API)
	assert.Less(t, time.Since(start), 10*time.Second, "building 10000 events (about 0.3 s, 3 s under -race)")
	ids := api.EventIDs()
	assert.Len(t, ids, 10_004)
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		require.False(t, seen[id], "event ids are unique")
		seen[id] = true
	}
}
