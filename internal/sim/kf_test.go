package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// kingfisherGolden is what POST /site-outages/kingfisher must carry when only the worked
// example exists (size=0), written out by hand from the table of spec/upstreams.md §4.
var kingfisherGolden = []kfSiteOutage{
	{"002b28fc-283c-47ec-9af2-ea287336dc1b", "Battery 1", "2022-05-23T12:21:27.377Z", "2022-11-13T02:16:38.905Z"},
	{"002b28fc-283c-47ec-9af2-ea287336dc1b", "Battery 1", "2022-12-04T09:59:33.628Z", "2022-12-12T22:35:13.815Z"},
	{"086b0d53-b311-4441-aaf3-935646f03d4d", "Battery 2", "2022-07-12T16:31:47.254Z", "2022-10-13T04:05:10.044Z"},
}

// exampleOutages is the table of §4 as GET /outages serves it, in order.
const exampleOutages = `[
	{"id":"002b28fc-283c-47ec-9af2-ea287336dc1b","begin":"2021-07-26T17:09:31.036Z","end":"2021-08-29T00:37:42.253Z"},
	{"id":"002b28fc-283c-47ec-9af2-ea287336dc1b","begin":"2022-05-23T12:21:27.377Z","end":"2022-11-13T02:16:38.905Z"},
	{"id":"002b28fc-283c-47ec-9af2-ea287336dc1b","begin":"2022-12-04T09:59:33.628Z","end":"2022-12-12T22:35:13.815Z"},
	{"id":"04ccad00-eb8d-4045-8994-b569cb4b64c1","begin":"2022-07-12T16:31:47.254Z","end":"2022-10-13T04:05:10.044Z"},
	{"id":"086b0d53-b311-4441-aaf3-935646f03d4d","begin":"2022-07-12T16:31:47.254Z","end":"2022-10-13T04:05:10.044Z"},
	{"id":"27820d4a-1bc4-4fc1-a5f0-bcb3627e94a1","begin":"2021-07-12T16:31:47.254Z","end":"2022-10-13T04:05:10.044Z"}
]`

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// serveKF starts the real KF simulator with the knob list and returns its API too.
func serveKF(t *testing.T, list string) (*Sim, *KFAPI, string) {
	t.Helper()
	s, url := serve(t, Upstreams()[KF], list)
	api, ok := s.Routes().(*KFAPI)
	require.True(t, ok, "KF routes are %T", s.Routes())
	return s, api, url
}

var kfKey = withHeader("x-api-key", DefaultKFKey)

func postKF(t *testing.T, url, site, body string) response {
	t.Helper()
	return call(t, http.MethodPost, url+"/site-outages/"+site, body, kfKey)
}

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// decodeOutages reads a GET /outages body strictly: exactly id, begin and end, all strings.
func decodeOutages(t *testing.T, body []byte) []map[string]string {
	t.Helper()
	var out []map[string]string
	require.NoError(t, json.Unmarshal(body, &out))
	for i, o := range out {
		require.Len(t, o, 3, "item %d: %v", i, o)
		for _, f := range []string{"id", "begin", "end"} {
			require.Contains(t, o, f, "item %d", i)
		}
	}
	return out
}

func TestKFKeyOnEveryEndpoint(t *testing.T) {
	_, api, url := serveKF(t, "")
	endpoints := []struct{ method, path, body string }{
		{http.MethodGet, "/outages", ""},
		{http.MethodGet, "/site-info/kingfisher", ""},
		{http.MethodGet, "/site-info/nope", ""},
		{http.MethodPost, "/site-outages/kingfisher", string(api.Expected(kfKingfisher))},
		{http.MethodPost, "/site-outages/nope", "[]"},
		{http.MethodGet, "/nope", ""},
	}
	keys := map[string]func(*http.Request){
		"no key":             nil,
		"wrong key":          withHeader("x-api-key", "nope"),
		"empty key":          withHeader("x-api-key", ""),
		"key in other field": withHeader("Authorization", DefaultKFKey),
	}
	for _, e := range endpoints {
		for name, set := range keys {
			t.Run(e.method+" "+e.path+" "+name, func(t *testing.T) {
				res := call(t, e.method, url+e.path, e.body, set)
				assert.Equal(t, http.StatusForbidden, res.status)
				assert.JSONEq(t, `{"message":"Forbidden"}`, res.body)
			})
		}
	}
	assert.Empty(t, api.Posts(), "a POST without the key never reaches the routes")
}

func TestKFOutages(t *testing.T) {
	_, api, url := serveKF(t, "")
	res := get(t, url+"/outages", kfKey)
	require.Equal(t, http.StatusOK, res.status, res.body)
	assert.Equal(t, "application/json", res.header.Get("Content-Type"))
	assert.Equal(t, string(api.Outages()), res.body, "Outages is the body served")

	out := decodeOutages(t, []byte(res.body))
	require.Len(t, out, 6+100, "the worked example, then Size generated")
	assert.JSONEq(t, exampleOutages, mustMarshal(t, out[:6]), "the worked example comes first, in order")

	for i, o := range out {
		assert.Regexp(t, uuidPattern, o["id"], "item %d", i)
		begin, err := time.Parse(time.RFC3339, o["begin"])
		require.NoError(t, err, "item %d", i)
		end, err := time.Parse(time.RFC3339, o["end"])
		require.NoError(t, err, "item %d", i)
		assert.False(t, end.Before(begin), "item %d ends before it begins: %v", i, o)
	}
}

// TestKFOutagesVariety checks that the generated data holds the cases a client must get
// right, at the default size.
func TestKFOutagesVariety(t *testing.T) {
	_, api, _ := serveKF(t, "")
	out := decodeOutages(t, api.Outages())
	gen := out[6:]
	siteOf := map[string]string{}
	for _, site := range api.Sites() {
		for _, d := range siteInfo(t, api, site).Devices {
			siteOf[d.ID] = site
		}
	}
	var before, after, offset, noMillis, orphan int
	perDevice := map[string]int{}
	begins := map[string]bool{}
	for _, o := range gen {
		begin, err := time.Parse(time.RFC3339, o["begin"])
		require.NoError(t, err)
		if begin.Before(kfCutoff) {
			before++
		} else {
			after++
		}
		if !strings.HasSuffix(o["begin"], "Z") {
			offset++
		}
		if !strings.Contains(o["begin"], ".") {
			noMillis++
		}
		if siteOf[o["id"]] == "" {
			orphan++
		}
		perDevice[o["id"]]++
		begins[o["begin"]] = true
	}
	assert.Positive(t, before, "some begin before the cutoff")
	assert.Positive(t, after, "some begin at or after it")
	assert.Positive(t, offset, "some have an offset other than Z")
	assert.Positive(t, noMillis, "some have no milliseconds")
	assert.Positive(t, orphan, "some belong to no site")
	for _, b := range []string{
		"2021-12-31T23:59:59.999Z", "2022-01-01T00:00:00.000Z",
		"2021-12-31T19:00:00.000-05:00", "2022-01-01T00:30:00.000+01:00",
	} {
		assert.True(t, begins[b], "a begin of %s", b)
	}
	several := 0
	for _, n := range perDevice {
		if n >= 3 {
			several++
		}
	}
	assert.GreaterOrEqual(t, several, 5, "several devices have several outages")
}

// TestKFBeginsMatchInstants checks the generator's own instants against the strings it
// serves, at several seeds: a typo in a hand-written instant would show here.
func TestKFBeginsMatchInstants(t *testing.T) {
	for seed := range uint64(5) {
		api := newKFAPI(seed, 2000)
		for i, o := range api.outages {
			got, err := time.Parse(time.RFC3339, o.Begin)
			require.NoError(t, err, "item %d", i)
			require.True(t, got.Equal(o.at), "seed %d item %d: %s is %v, generator says %v", seed, i, o.Begin, got, o.at)
		}
	}
}

// TestKFExpectedAgreesWithAnotherFilter filters GET /outages a second way, by parsing the
// served strings, and compares with what the simulator accepts.
func TestKFExpectedAgreesWithAnotherFilter(t *testing.T) {
	for _, list := range []string{"", "seed=7,size=3000", "size=0", "size=3"} {
		_, api, _ := serveKF(t, list)
		out := decodeOutages(t, api.Outages())
		for _, site := range api.Sites() {
			names := map[string]string{}
			for _, d := range siteInfo(t, api, site).Devices {
				names[d.ID] = d.Name
			}
			want := []kfSiteOutage{}
			for _, o := range out {
				begin, err := time.Parse(time.RFC3339, o["begin"])
				require.NoError(t, err)
				if name, ok := names[o["id"]]; ok && !begin.Before(kfCutoff) {
					want = append(want, kfSiteOutage{o["id"], name, o["begin"], o["end"]})
				}
			}
			assert.JSONEq(t, mustMarshal(t, want), string(api.Expected(site)), "%s %s", list, site)
		}
	}
}

func siteInfo(t *testing.T, api *KFAPI, site string) kfSite {
	t.Helper()
	var s kfSite
	require.NoError(t, json.Unmarshal(api.siteInfo[site], &s))
	return s
}

func TestKFSiteInfo(t *testing.T) {
	_, api, url := serveKF(t, "")
	assert.Equal(t, []string{"kingfisher", "norwich-pear-tree"}, api.Sites())

	res := get(t, url+"/site-info/kingfisher", kfKey)
	require.Equal(t, http.StatusOK, res.status)
	assert.Equal(t, "application/json", res.header.Get("Content-Type"))
	assert.JSONEq(t, `{"id":"kingfisher","name":"KingFisher","devices":[
		{"id":"002b28fc-283c-47ec-9af2-ea287336dc1b","name":"Battery 1"},
		{"id":"086b0d53-b311-4441-aaf3-935646f03d4d","name":"Battery 2"}]}`, res.body)

	res = get(t, url+"/site-info/norwich-pear-tree", kfKey)
	require.Equal(t, http.StatusOK, res.status)
	var s struct {
		ID      string
		Name    string
		Devices []map[string]string
	}
	require.NoError(t, json.Unmarshal([]byte(res.body), &s))
	assert.Equal(t, "norwich-pear-tree", s.ID)
	assert.NotEmpty(t, s.Name)
	assert.GreaterOrEqual(t, len(s.Devices), 5)
	assert.LessOrEqual(t, len(s.Devices), 20)
	ids, names := map[string]bool{}, map[string]bool{}
	for _, d := range s.Devices {
		require.Len(t, d, 2, "a device is id and name: %v", d)
		assert.Regexp(t, uuidPattern, d["id"])
		assert.Regexp(t, `^(Battery|Inverter|Meter|Solar Array|EV Charger) [0-9]+$`, d["name"])
		assert.False(t, ids[d["id"]], "device ids are unique")
		assert.False(t, names[d["name"]], "device names are unique within a site")
		ids[d["id"]], names[d["name"]] = true, true
	}
	assert.NotContains(t, ids, "002b28fc-283c-47ec-9af2-ea287336dc1b", "a device belongs to one site")
}

func TestKFUnknownSite(t *testing.T) {
	_, api, url := serveKF(t, "")
	res := get(t, url+"/site-info/nope", kfKey)
	assert.Equal(t, http.StatusNotFound, res.status)
	assert.JSONEq(t, `{"message":"no such site \"nope\""}`, res.body)

	res = postKF(t, url, "nope", string(api.Expected(kfKingfisher)))
	assert.Equal(t, http.StatusNotFound, res.status)
	assert.JSONEq(t, `{"message":"no such site \"nope\""}`, res.body)
	assert.Nil(t, api.Expected("nope"))

	posts := api.Posts()
	require.Len(t, posts, 1, "a POST to an unknown site is recorded too")
	assert.Equal(t, "nope", posts[0].Site)
	assert.Equal(t, http.StatusNotFound, posts[0].Status)
}

func TestKFRoutesAndMethods(t *testing.T) {
	_, api, url := serveKF(t, "")
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{http.MethodGet, "/", 404, ""},
		{http.MethodGet, "/nope", 404, ""},
		{http.MethodGet, "/outages/", 404, ""},
		{http.MethodGet, "/site-info/", 404, ""},
		{http.MethodGet, "/site-info/kingfisher/devices", 404, ""},
		{http.MethodPost, "/site-outages/", 404, ""},
		{http.MethodPost, "/site-outages/kingfisher/x", 404, ""},
		{http.MethodPost, "/outages", 405, "GET"},
		{http.MethodDelete, "/outages", 405, "GET"},
		{http.MethodPut, "/site-info/kingfisher", 405, "GET"},
		{http.MethodGet, "/site-outages/kingfisher", 405, "POST"},
		{http.MethodPut, "/site-outages/kingfisher", 405, "POST"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			res := call(t, tt.method, url+tt.path, "[]", kfKey)
			assert.Equal(t, tt.status, res.status)
			assert.Equal(t, tt.allow, res.header.Get("Allow"))
			var body map[string]string
			require.NoError(t, json.Unmarshal([]byte(res.body), &body), res.body)
			assert.Len(t, body, 1)
			assert.NotEmpty(t, body["message"])
		})
	}
	assert.Empty(t, api.Posts(), "only POSTs to /site-outages/{siteId} are recorded")
}

func TestKFExpectedIsTheGoldenList(t *testing.T) {
	_, api, _ := serveKF(t, "size=0")
	assert.JSONEq(t, mustMarshal(t, kingfisherGolden), string(api.Expected(kfKingfisher)))
	assert.JSONEq(t, exampleOutages, string(api.Outages()))
	assert.JSONEq(t, `[]`, string(api.Expected(kfNorwich)), "an empty list, not null")

	// With generated data the worked example still comes first.
	_, api, _ = serveKF(t, "")
	var got []kfSiteOutage
	require.NoError(t, json.Unmarshal(api.Expected(kfKingfisher), &got))
	require.Greater(t, len(got), 3, "generated outages reach kingfisher's devices too")
	assert.Equal(t, kingfisherGolden, got[:3])
}

func TestKFPostRight(t *testing.T) {
	_, api, url := serveKF(t, "size=0")
	before := time.Now()
	body := mustMarshal(t, kingfisherGolden)
	res := postKF(t, url, "kingfisher", body)
	assert.Equal(t, http.StatusOK, res.status, res.body)
	assert.JSONEq(t, `{}`, res.body)

	// Spacing and key order do not matter; values do.
	spaced := `[
	  {"end": "2022-11-13T02:16:38.905Z", "begin": "2022-05-23T12:21:27.377Z", "name": "Battery 1", "id": "002b28fc-283c-47ec-9af2-ea287336dc1b"},
	  {"id": "002b28fc-283c-47ec-9af2-ea287336dc1b", "name": "Battery 1", "begin": "2022-12-04T09:59:33.628Z", "end": "2022-12-12T22:35:13.815Z"},
	  {"id": "086b0d53-b311-4441-aaf3-935646f03d4d", "name": "Battery 2", "begin": "2022-07-12T16:31:47.254Z", "end": "2022-10-13T04:05:10.044Z"}
	]` + "\n"
	assert.Equal(t, http.StatusOK, postKF(t, url, "kingfisher", spaced).status)
	assert.Equal(t, http.StatusOK, postKF(t, url, "norwich-pear-tree", "[]").status, "a site with nothing to send")

	posts := api.Posts()
	require.Len(t, posts, 3)
	assert.Equal(t, "kingfisher", posts[0].Site)
	assert.Equal(t, body, string(posts[0].Body))
	assert.Equal(t, http.StatusOK, posts[0].Status)
	assert.False(t, posts[0].At.Before(before))
	assert.False(t, posts[1].At.Before(posts[0].At), "in order")
	assert.Equal(t, spaced, string(posts[1].Body), "the raw body")
	assert.Equal(t, "norwich-pear-tree", posts[2].Site)

	posts[0].Body[0] = 'X'
	assert.Equal(t, body, string(api.Posts()[0].Body), "Posts returns a copy")
}

func TestKFPostRightAtDefaultSize(t *testing.T) {
	_, api, url := serveKF(t, "")
	for _, site := range api.Sites() {
		res := postKF(t, url, site, string(api.Expected(site)))
		assert.Equal(t, http.StatusOK, res.status, "%s: %s", site, res.body)
	}
}

func TestKFPostWrong(t *testing.T) {
	_, api, url := serveKF(t, "size=0")
	golden := func(change func([]map[string]any) any) string {
		var items []map[string]any
		require.NoError(t, json.Unmarshal([]byte(mustMarshal(t, kingfisherGolden)), &items))
		return mustMarshal(t, change(items))
	}
	const (
		b1 = "002b28fc-283c-47ec-9af2-ea287336dc1b"
		b2 = "086b0d53-b311-4441-aaf3-935646f03d4d"
	)
	tests := []struct {
		name string
		body string
		msg  string // the whole message
	}{
		{"wrong name", golden(func(l []map[string]any) any { l[2]["name"] = "Battery 1"; return l }),
			`item 3: name is "Battery 1", want "Battery 2"`},
		{"missing middle item", golden(func(l []map[string]any) any { return []any{l[0], l[2]} }),
			`item 2: id is "` + b2 + `", want "` + b1 + `" (got 2 outages, want 3)`},
		{"missing last item", golden(func(l []map[string]any) any { return l[:2] }),
			`got 2 outages, want 3: missing from item 3 on, the first with id "` + b2 + `", begin "2022-07-12T16:31:47.254Z"`},
		{"empty list", `[]`,
			`got 0 outages, want 3: missing from item 1 on, the first with id "` + b1 + `", begin "2022-05-23T12:21:27.377Z"`},
		{"extra item, not a site device", golden(func(l []map[string]any) any {
			return append(l, map[string]any{"id": "04ccad00-eb8d-4045-8994-b569cb4b64c1", "name": "", "begin": "2022-07-12T16:31:47.254Z", "end": "2022-10-13T04:05:10.044Z"})
		}), `got 4 outages, want 3: item 4 on are extra, the first with id "04ccad00-eb8d-4045-8994-b569cb4b64c1", begin "2022-07-12T16:31:47.254Z"`},
		{"extra item, before the cutoff", golden(func(l []map[string]any) any {
			return append([]any{map[string]any{"id": b1, "name": "Battery 1", "begin": "2021-07-26T17:09:31.036Z", "end": "2021-08-29T00:37:42.253Z"}}, l[0], l[1], l[2])
		}), `item 1: begin is "2021-07-26T17:09:31.036Z", want "2022-05-23T12:21:27.377Z" (got 4 outages, want 3)`},
		{"reordered", golden(func(l []map[string]any) any { return []any{l[0], l[2], l[1]} }),
			`item 2: id is "` + b2 + `", want "` + b1 + `"`},
		{"sorted by begin", golden(func(l []map[string]any) any { return []any{l[1], l[0], l[2]} }),
			`item 1: begin is "2022-12-04T09:59:33.628Z", want "2022-05-23T12:21:27.377Z"`},
		{"begin respelled with +00:00", golden(func(l []map[string]any) any { l[0]["begin"] = "2022-05-23T12:21:27.377+00:00"; return l }),
			`item 1: begin is "2022-05-23T12:21:27.377+00:00", want "2022-05-23T12:21:27.377Z"`},
		{"begin respelled in another zone", golden(func(l []map[string]any) any { l[0]["begin"] = "2022-05-23T13:21:27.377+01:00"; return l }),
			`item 1: begin is "2022-05-23T13:21:27.377+01:00", want "2022-05-23T12:21:27.377Z"`},
		{"end respelled with microseconds", golden(func(l []map[string]any) any { l[1]["end"] = "2022-12-12T22:35:13.815000Z"; return l }),
			`item 2: end is "2022-12-12T22:35:13.815000Z", want "2022-12-12T22:35:13.815Z"`},
		{"extra field", golden(func(l []map[string]any) any { l[0]["site"] = "kingfisher"; return l }),
			`item 1: unknown field "site", want exactly id, name, begin and end`},
		{"field name in another case", strings.Replace(mustMarshal(t, kingfisherGolden), `"id"`, `"ID"`, 1),
			`item 1: unknown field "ID", want exactly id, name, begin and end`},
		{"missing field", golden(func(l []map[string]any) any { delete(l[1], "end"); return l }),
			`item 2: missing field "end"`},
		{"field twice", `[{"id":"` + b1 + `","id":"` + b1 + `","name":"Battery 1","begin":"2022-05-23T12:21:27.377Z","end":"2022-11-13T02:16:38.905Z"}]`,
			`item 1: field "id" appears twice`},
		{"number instead of string", golden(func(l []map[string]any) any { l[0]["id"] = 42; return l }),
			`item 1: id is a number, want a string`},
		{"null instead of string", golden(func(l []map[string]any) any { l[2]["name"] = nil; return l }),
			`item 3: name is null, want a string`},
		{"object instead of string", golden(func(l []map[string]any) any { l[0]["begin"] = map[string]any{}; return l }),
			`item 1: begin is an object, want a string`},
		{"item not an object", `["` + b1 + `"]`,
			`item 1 is a string, want an object with id, name, begin and end`},
		{"not JSON", `hello`, `body is not valid JSON at byte 1: invalid character 'h' looking for beginning of value`},
		{"cut short", mustMarshal(t, kingfisherGolden)[:50], `body is not valid JSON at byte 50: unexpected end of JSON input`},
		{"trailing comma", `[{"id":"x"},]`, `body is not valid JSON at byte 13: invalid character ']' looking for beginning of value`},
		{"empty body", ``, `body is empty, want a JSON array of outages`},
		{"not an array", `{"outages":[]}`, `body is an object, want a JSON array of outages`},
		{"null", `null`, `body is null, want a JSON array of outages`},
		{"two arrays", mustMarshal(t, kingfisherGolden) + `[]`,
			fmt.Sprintf(`body is not valid JSON at byte %d: invalid character '[' after top-level value`, len(mustMarshal(t, kingfisherGolden))+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := postKF(t, url, "kingfisher", tt.body)
			assert.Equal(t, http.StatusBadRequest, res.status)
			assert.Equal(t, "application/json", res.header.Get("Content-Type"))
			assert.JSONEq(t, mustMarshal(t, map[string]string{"message": tt.msg}), res.body)
		})
	}
	posts := api.Posts()
	require.Len(t, posts, len(tests), "every POST is recorded")
	for i, tt := range tests {
		assert.Equal(t, tt.body, string(posts[i].Body), tt.name)
		assert.Equal(t, http.StatusBadRequest, posts[i].Status, tt.name)
		assert.Equal(t, "kingfisher", posts[i].Site, tt.name)
	}
}

// TestKFPostRespelledGeneratedBegin drops the milliseconds of a begin that has none to
// lose: the same instant, another spelling, refused.
func TestKFPostRespelledGeneratedBegin(t *testing.T) {
	_, api, url := serveKF(t, "")
	var items []kfSiteOutage
	require.NoError(t, json.Unmarshal(api.Expected(kfNorwich), &items))
	i := -1
	for j, it := range items {
		if it.Begin == "2022-01-01T00:00:00.000Z" {
			i = j
			break
		}
	}
	require.NotEqual(t, -1, i, "the cutoff itself is among norwich's outages")
	items[i].Begin = "2022-01-01T00:00:00Z"
	res := postKF(t, url, kfNorwich, mustMarshal(t, items))
	assert.Equal(t, http.StatusBadRequest, res.status)
	assert.JSONEq(t, mustMarshal(t, map[string]string{
		"message": fmt.Sprintf(`item %d: begin is "2022-01-01T00:00:00Z", want "2022-01-01T00:00:00.000Z"`, i+1),
	}), res.body)
}

func TestKFDeterminism(t *testing.T) {
	body := func(list string) string {
		t.Helper()
		_, _, url := serveKF(t, list)
		res := get(t, url+"/outages", kfKey)
		require.Equal(t, http.StatusOK, res.status)
		return res.body
	}
	a := body("seed=3,size=500")
	assert.Equal(t, a, body("seed=3,size=500"), "same seed and size, same bytes")
	assert.NotEqual(t, a, body("seed=4,size=500"), "another seed, other data")
	assert.NotEqual(t, a, body("seed=3,size=499"))

	info := func(list string) string {
		_, _, url := serveKF(t, list)
		return get(t, url+"/site-info/norwich-pear-tree", kfKey).body
	}
	assert.Equal(t, info("seed=3"), info("seed=3"))
	assert.NotEqual(t, info("seed=3"), info("seed=4"))
}

func TestKFLargeSize(t *testing.T) {
	start := time.Now()
	h := Upstreams()[KF].Routes(Knobs{Size: 10_000, Seed: 1})
	took := time.Since(start)
	assert.Less(t, took, time.Second, "building 10000 outages")
	api := h.(*KFAPI)
	assert.Len(t, decodeOutages(t, api.Outages()), 10_006)

	_, api, url := serveKF(t, "size=10000")
	res := get(t, url+"/outages", kfKey)
	require.Equal(t, http.StatusOK, res.status)
	assert.Len(t, decodeOutages(t, []byte(res.body)), 10_006)
	for _, site := range api.Sites() {
		res := postKF(t, url, site, string(api.Expected(site)))
		assert.Equal(t, http.StatusOK, res.status, "%s: %.200s", site, res.body)
	}
}

func TestKFFailuresRecordNoPosts(t *testing.T) {
	_, api, url := serveKF(t, "failure-rate=1")
	res := postKF(t, url, "kingfisher", string(api.Expected(kfKingfisher)))
	assert.Equal(t, http.StatusInternalServerError, res.status)
	assert.JSONEq(t, `{"message":"simulated failure"}`, res.body)
	assert.Empty(t, api.Posts(), "the framework answered before the routes")
}

func TestKFNewDataNewRecord(t *testing.T) {
	s, api, url := serveKF(t, "")
	require.Equal(t, http.StatusOK, postKF(t, url, "kingfisher", string(api.Expected(kfKingfisher))).status)
	k := s.Knobs()
	k.Latency = time.Millisecond
	s.SetKnobs(k)
	assert.Same(t, api, s.Routes(), "knobs other than Size and Seed keep the data")
	k.Seed = 9
	s.SetKnobs(k)
	fresh, ok := s.Routes().(*KFAPI)
	require.True(t, ok)
	assert.NotSame(t, api, fresh)
	assert.Empty(t, fresh.Posts())
	assert.Len(t, api.Posts(), 1, "the old record stays with the old API")
}

func TestKFConcurrentPosts(t *testing.T) {
	_, api, url := serveKF(t, "")
	right := string(api.Expected(kfNorwich))
	require.NotEqual(t, "[]", right)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			body := right
			if i%2 == 1 {
				body = "[]"
			}
			req, err := http.NewRequest(http.MethodPost, url+"/site-outages/"+kfNorwich, strings.NewReader(body))
			if !assert.NoError(t, err) {
				return
			}
			req.Header.Set("x-api-key", DefaultKFKey)
			res, err := http.DefaultClient.Do(req)
			if assert.NoError(t, err) {
				res.Body.Close()
			}
			api.Posts()
		})
	}
	wg.Wait()
	count := map[int]int{}
	for _, p := range api.Posts() {
		count[p.Status]++
	}
	assert.Equal(t, map[int]int{200: 10, 400: 10}, count)
}

func TestKFBodyTooLarge(t *testing.T) {
	api := newKFAPI(1, 0)
	body := strings.Repeat(" ", kfMaxBody+2*len(api.Expected(kfKingfisher))+1)
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/site-outages/kingfisher", strings.NewReader(body)))
	assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
	assert.Contains(t, rec.Body.String(), "body is larger than")
	posts := api.Posts()
	require.Len(t, posts, 1)
	assert.Equal(t, http.StatusRequestEntityTooLarge, posts[0].Status)
}
