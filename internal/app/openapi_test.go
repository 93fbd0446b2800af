package app_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/internal/config"
	"relay/internal/relaytest"
	"relay/internal/sim"
	"relay/internal/testenv"
	"relay/server"
)

// openAPICheck drives a running relay and holds every exchange to the OpenAPI document
// relay itself serves at /openapi.json.
type openAPICheck struct {
	env    *relaytest.Env
	apiKey string
	doc    *openapi3.T
	router routers.Router
	// answered counts the statuses seen per documented operation ("GET /event/{task_id}").
	answered map[string]map[int]int
}

// exchange is one request and its answer. docRejects says that the document's own schemas
// refuse the request (a 400 it foresees); otherwise the request must conform to it.
type exchange struct {
	method, path string
	body         string
	header       []string // name, value, ...
	noKey        bool     // leave out the API key
	want         int      // 0: any status the document lists
	docRejects   bool
}

func newOpenAPICheck(t *testing.T, env *relaytest.Env, apiKey string) *openAPICheck {
	t.Helper()
	oc := &openAPICheck{env: env, apiKey: apiKey, answered: map[string]map[int]int{}}
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder) // the status page
	resp, body := env.Do(t, http.MethodGet, "/openapi.json", nil, "Authorization", "Bearer "+apiKey)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	doc, err := openapi3.NewLoader().LoadFromData(body)
	require.NoError(t, err)
	require.NoError(t, doc.Validate(context.Background()))
	oc.doc = doc
	oc.router, err = gorillamux.NewRouter(doc)
	require.NoError(t, err)
	return oc
}

func (oc *openAPICheck) request(t *testing.T, c exchange, path string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(c.method, oc.env.BaseURL+path, strings.NewReader(c.body))
	require.NoError(t, err)
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if !c.noKey {
		req.Header.Set("Authorization", "Bearer "+oc.apiKey)
	}
	for i := 0; i+1 < len(c.header); i += 2 {
		req.Header.Set(c.header[i], c.header[i+1])
	}
	return req
}

// route finds c's documented operation, through its path's twin when the document says
// the trailing slash is optional.
func (oc *openAPICheck) route(t *testing.T, c exchange) (*routers.Route, map[string]string) {
	t.Helper()
	route, params, err := oc.router.FindRoute(oc.request(t, c, c.path))
	if err == nil {
		return route, params
	}
	path, query, _ := strings.Cut(c.path, "?")
	twin := strings.TrimSuffix(path, "/")
	if twin == path {
		twin += "/"
	}
	if query != "" {
		twin += "?" + query
	}
	route, params, twinErr := oc.router.FindRoute(oc.request(t, c, twin))
	require.NoError(t, twinErr, "%s %s is not in the document: %v", c.method, c.path, err)
	require.Equal(t, true, route.PathItem.Extensions["x-trailing-slash-optional"],
		"%s %s is documented only as %s", c.method, c.path, route.Path)
	return route, params
}

// do makes the exchange and checks it against the document: the request conforms (or is
// refused by the document when c.docRejects), the status is documented, the documented
// headers are there, and the body matches the documented schema.
func (oc *openAPICheck) do(t *testing.T, c exchange) (*http.Response, []byte) {
	t.Helper()
	where := c.method + " " + c.path
	route, params := oc.route(t, c)
	ctx := context.Background()
	reqInput := &openapi3filter.RequestValidationInput{
		Request: oc.request(t, c, c.path), PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: func(_ context.Context, in *openapi3filter.AuthenticationInput) error {
			if !strings.HasPrefix(in.RequestValidationInput.Request.Header.Get("Authorization"), "Bearer ") {
				return fmt.Errorf("no bearer token")
			}
			return nil
		}},
	}
	secured := route.Operation.Security == nil || len(*route.Operation.Security) > 0
	if reqErr := openapi3filter.ValidateRequest(ctx, reqInput); c.docRejects || c.noKey && secured {
		assert.Error(t, reqErr, "%s: the document accepts a request the API must refuse", where)
	} else {
		assert.NoError(t, reqErr, "%s: the request does not conform to the document", where)
	}

	resp, err := oc.env.HTTP.Do(oc.request(t, c, c.path))
	require.NoError(t, err, where)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err, where)
	if c.want != 0 {
		require.Equal(t, c.want, resp.StatusCode, "%s: %s", where, body)
	}
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
		var e struct {
			Error struct{ Code, Message string }
		}
		require.NoError(t, json.Unmarshal(body, &e), "%s: %s", where, body)
		require.False(t, strings.HasPrefix(e.Error.Message, "no route for ") || e.Error.Code == "method_not_allowed",
			"%s is documented but gin has no such route: %s", where, body)
	}

	op := route.Method + " " + route.Path
	if oc.answered[op] == nil {
		oc.answered[op] = map[int]int{}
	}
	oc.answered[op][resp.StatusCode]++
	documented := route.Operation.Responses.Status(resp.StatusCode)
	require.NotNil(t, documented, "%s answered %d, which %s does not document: %s", where, resp.StatusCode, op, body)
	// ValidateResponse passes over HEAD and 304 without a look; the headers are checked here for all.
	for name, h := range documented.Value.Headers {
		if h.Value.Required {
			assert.NotEmpty(t, resp.Header.Get(name), "%s answered %d without %s", where, resp.StatusCode, name)
		}
	}
	validated := body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		require.NoError(t, err, where)
		validated, err = io.ReadAll(zr)
		require.NoError(t, err, where)
	}
	respErr := openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
		RequestValidationInput: reqInput,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(validated)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	})
	assert.NoError(t, respErr, "%s answered %d unlike the document: %.2000s", where, resp.StatusCode, body)
	return resp, body
}

// operations lists every documented operation as "METHOD /path".
func (oc *openAPICheck) operations() []string {
	var ops []string
	for path, item := range oc.doc.Paths.Map() {
		for method := range item.Operations() {
			ops = append(ops, method+" "+path)
		}
	}
	slices.Sort(ops)
	return ops
}

func decodeAnswer[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(body, &v), string(body))
	return v
}

// eventAnswer is what this test reads of the event endpoints' answers.
type eventAnswer struct {
	Data struct {
		TaskID string `json:"task_id"`
		State  string `json:"state"`
	} `json:"data"`
}

var pathParam = regexp.MustCompile(`\{[^}]+\}`)

// Every operation that server/openapi.json documents answers a running relay, and every
// answer (success and error, the event endpoints' "status" envelope, 304 and HEAD
// included) and the request that produced it match the document. Keeps the document true.
func TestOpenAPIDocumentMatchesTheRunningAPI(t *testing.T) {
	const apiKey = "contract-key"
	env := relaytest.Start(t, relaytest.WithConfig(func(c *config.Config) {
		c.APIKeys = []string{apiKey}
		// so that X-Forwarded-For picks the client: an IP the geolocation simulator places,
		// a fresh one for the rate limit.
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	}))
	oc := newOpenAPICheck(t, env, apiKey)

	t.Run("operations", func(t *testing.T) {
		oc.do(t, exchange{method: "GET", path: "/", want: 200})
		oc.do(t, exchange{method: "GET", path: "/healthz", want: 200})
		oc.do(t, exchange{method: "GET", path: "/readyz", want: 200})
		oc.do(t, exchange{method: "GET", path: "/metrics", want: 200})
		oc.do(t, exchange{method: "GET", path: "/openapi.json", want: 200})
	})

	t.Run("incidents", func(t *testing.T) {
		// 503 with Retry-After until the refresh triggered at start has published.
		testenv.WaitFor(t, 90*time.Second, func() error {
			resp, body := oc.do(t, exchange{method: "GET", path: "/incidents", header: []string{"Accept-Encoding", "identity"}})
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, string(body))
			return testenv.Waitf("no incident snapshot yet: GET /incidents answers %d", resp.StatusCode)
		})
		resp, _ := oc.do(t, exchange{method: "GET", path: "/incidents", header: []string{"Accept-Encoding", "gzip"}, want: 200})
		assert.Equal(t, "gzip", resp.Header.Get("Content-Encoding"))
		etag := resp.Header.Get("ETag")
		oc.do(t, exchange{method: "GET", path: "/incidents", header: []string{"If-None-Match", etag}, want: 304})
		oc.do(t, exchange{method: "HEAD", path: "/incidents", want: 200})
		oc.do(t, exchange{method: "HEAD", path: "/incidents", header: []string{"If-None-Match", etag}, want: 304})
		oc.do(t, exchange{method: "POST", path: "/incidents/refresh", want: 202})
		oc.do(t, exchange{method: "POST", path: "/incidents/refresh", body: bigBody(`{"x":"`, `"}`),
			header: []string{"Expect", "100-continue"}, want: 413})
	})

	t.Run("events with subscriptions", func(t *testing.T) {
		id := sim.C42EventTeamSync
		resp, _ := oc.do(t, exchange{method: "GET", path: "/events-with-subscriptions/" + id, want: 200})
		assert.Equal(t, "MISS", resp.Header.Get("X-Cache"))
		resp, _ = oc.do(t, exchange{method: "GET", path: "/events-with-subscriptions/" + id + "/", want: 200})
		assert.Equal(t, "HIT", resp.Header.Get("X-Cache"))
		oc.do(t, exchange{method: "GET", path: "/events-with-subscriptions/no.dots", want: 400, docRejects: true})
		oc.do(t, exchange{method: "GET", path: "/events-with-subscriptions/ffffffff_1", want: 404})
	})

	t.Run("events", func(t *testing.T) {
		submitted := func(body []byte) string { return decodeAnswer[eventAnswer](t, body).Data.TaskID }
		placeable := []string{"X-Forwarded-For", "81.2.69.142"}
		_, body := oc.do(t, exchange{method: "POST", path: "/event/submit/", body: `{"name":"checkout","status_code":"200"}`, header: placeable, want: 202})
		located := submitted(body)
		_, body = oc.do(t, exchange{method: "POST", path: "/event/submit", body: `{"status_code":404}`,
			header: []string{"Idempotency-Key", "order-17"}, want: 202})
		first := submitted(body)
		_, body = oc.do(t, exchange{method: "POST", path: "/event/submit/", body: `{"status_code":404}`,
			header: []string{"Idempotency-Key", "order-17"}, want: 202})
		assert.Equal(t, first, submitted(body), "a retry with the same Idempotency-Key is the same event")

		for _, bad := range []string{`{}`, `{"name":"x","colour":"red"}`, `{"name":""}`, `{"status_code":"2x"}`, `{"status_code":-1}`, `[]`} {
			oc.do(t, exchange{method: "POST", path: "/event/submit/", body: bad, want: 400, docRejects: true})
		}
		oc.do(t, exchange{method: "POST", path: "/event/submit/", body: `{"name":"x"}`,
			header: []string{"Idempotency-Key", strings.Repeat("k", 201)}, want: 400, docRejects: true})
		oc.do(t, exchange{method: "POST", path: "/event/submit/", body: bigBody(`{"name":"`, `"}`),
			header: []string{"Expect", "100-continue"}, want: 413, docRejects: true})
		for i := 0; ; i++ { // one client's burst, then 429 with Retry-After
			resp, _ := oc.do(t, exchange{method: "POST", path: "/event/submit/", body: `{"name":"burst"}`,
				header: []string{"X-Forwarded-For", "198.51.100.7"}})
			if resp.StatusCode == http.StatusTooManyRequests {
				break
			}
			require.Equal(t, http.StatusAccepted, resp.StatusCode)
			require.Less(t, i, 200, "never rate limited")
		}

		oc.do(t, exchange{method: "GET", path: "/event/" + first, want: 200})
		oc.do(t, exchange{method: "GET", path: "/event/" + first + "/", want: 200})
		oc.do(t, exchange{method: "GET", path: "/event/not_a_task_id", want: 400, docRejects: true})
		oc.do(t, exchange{method: "GET", path: "/event/00000000-0000-0000-0000-000000000000", want: 404})
		testenv.WaitFor(t, time.Minute, func() error { // a located event shows its location
			_, body := oc.do(t, exchange{method: "GET", path: "/event/" + located, want: 200})
			state := decodeAnswer[eventAnswer](t, body).Data.State
			if state == "located" {
				return nil
			}
			require.Equal(t, "pending", state, string(body))
			return testenv.Waitf("event %s not located yet: %s", located, body)
		})

		_, body = oc.do(t, exchange{method: "GET", path: "/events?limit=1", want: 200})
		next := decodeAnswer[struct {
			NextCursor *string `json:"next_cursor"`
		}](t, body).NextCursor
		require.NotNil(t, next, "more than one event, so a next page: %s", body)
		oc.do(t, exchange{method: "GET", path: "/events?limit=500&cursor=" + *next, want: 200})
		oc.do(t, exchange{method: "GET", path: "/events?country=gb&state=located&city=London", want: 200})
		oc.do(t, exchange{method: "GET", path: "/events?limit=0", want: 400, docRejects: true})
		oc.do(t, exchange{method: "GET", path: "/events?state=lost", want: 400, docRejects: true})
		oc.do(t, exchange{method: "GET", path: "/events?cursor=not-a-cursor", want: 400})
		oc.do(t, exchange{method: "GET", path: "/events?colour=red", want: 400}) // unknown parameters: beyond what the schemas say
	})

	t.Run("outage sync", func(t *testing.T) {
		site := env.Config.KF.SiteID
		oc.do(t, exchange{method: "GET", path: "/sites/never-synced/outage-sync", want: 404})
		oc.do(t, exchange{method: "GET", path: "/sites/no.dots/outage-sync", want: 400, docRejects: true})
		oc.do(t, exchange{method: "POST", path: "/sites/no.dots/outage-sync", want: 400, docRejects: true})
		oc.do(t, exchange{method: "POST", path: "/sites/" + site + "/outage-sync", body: `{"since":"yesterday"}`, want: 400, docRejects: true})
		oc.do(t, exchange{method: "POST", path: "/sites/" + site + "/outage-sync", body: `{"until":"2022-01-01T00:00:00Z"}`, want: 400, docRejects: true})
		oc.do(t, exchange{method: "POST", path: "/sites/" + site + "/outage-sync", body: bigBody(`{"since":"`, `"}`),
			header: []string{"Expect", "100-continue"}, want: 413, docRejects: true})
		oc.do(t, exchange{method: "POST", path: "/sites/" + site + "/outage-sync", body: `{"since":"2022-01-01T00:00:00.000Z"}`, want: 202})
		oc.do(t, exchange{method: "POST", path: "/sites/unknown-site/outage-sync", want: 202}) // fails upstream: 404
		for _, s := range []struct{ site, state string }{{site, "completed"}, {"unknown-site", "failed"}} {
			var state string
			var body []byte
			testenv.WaitFor(t, 2*time.Minute, func() error {
				_, body = oc.do(t, exchange{method: "GET", path: "/sites/" + s.site + "/outage-sync", want: 200})
				if state = decodeAnswer[struct{ State string }](t, body).State; state == "running" {
					return testenv.Waitf("sync of %s still running", s.site)
				}
				return nil
			})
			assert.Equal(t, s.state, state, string(body))
		}
	})

	t.Run("codec", func(t *testing.T) {
		// What the Web UI and the CLI send: payloads relay encrypted, decrypted, and back.
		sealed := `{"payloads":[{"metadata":{"encoding":"YmluYXJ5L2VuY3J5cHRlZA=="},"data":"AAAA"}]}`
		plain := `{"payloads":[{"metadata":{"encoding":"anNvbi9wbGFpbg=="},"data":"InJlbGF5Ig=="}]}`
		_, body := oc.do(t, exchange{method: "POST", path: "/codec/encode", body: plain, header: []string{"X-Namespace", "default"}, want: 200})
		_, body = oc.do(t, exchange{method: "POST", path: "/codec/decode", body: string(body), header: []string{"X-Namespace", "default"}, want: 200})
		assert.JSONEq(t, plain, string(body))
		oc.do(t, exchange{method: "POST", path: "/codec/decode", body: sealed, want: 400})
		oc.do(t, exchange{method: "POST", path: "/codec/encode", body: "{not json", want: 400, docRejects: true})
	})

	t.Run("api keys", func(t *testing.T) {
		// Without a key: 401 everywhere the document asks for one, the answer elsewhere.
		for _, op := range oc.operations() {
			method, path, _ := strings.Cut(op, " ")
			want := http.StatusUnauthorized
			if path == "/healthz" {
				want = http.StatusOK
			}
			oc.do(t, exchange{method: method, path: pathParam.ReplaceAllString(path, "x"), noKey: true, want: want})
		}
	})

	// Every documented operation has been seen to succeed; every one behind the keys to refuse.
	for _, op := range oc.operations() {
		succeeded := false
		for status := range oc.answered[op] {
			succeeded = succeeded || status >= 200 && status < 300
		}
		assert.True(t, succeeded, "%s never answered with success (seen %v): add it to this test", op, oc.answered[op])
	}
	var pairs, seen int
	for _, op := range oc.operations() {
		method, path, _ := strings.Cut(op, " ")
		for status := range oc.doc.Paths.Value(path).GetOperation(method).Responses.Map() {
			pairs++
			var code int
			if _, err := fmt.Sscan(status, &code); err == nil && oc.answered[op][code] > 0 {
				seen++
			}
		}
	}
	t.Logf("%d operations; %d of %d documented (operation, status) pairs seen", len(oc.operations()), seen, pairs)
}

// bigBody is a JSON document just over the body limit.
func bigBody(prefix, suffix string) string {
	return prefix + strings.Repeat("a", server.MaxBodyBytes) + suffix
}
