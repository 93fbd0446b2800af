package sim

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/internal/testenv"
)

// okRoutes stands in for an upstream's routes: 200 with the knobs the data was built from.
func okRoutes(k Knobs) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "size": k.Size, "seed": k.Seed})
	})
}

// upstream returns the named real upstream (auth, envelopes, defaults) with okRoutes.
func upstream(t *testing.T, name string) Upstream {
	t.Helper()
	up, ok := Upstreams()[name]
	require.True(t, ok, "no upstream %q", name)
	up.Routes = okRoutes
	return up
}

// serve starts up with the knob list over real HTTP.
func serve(t *testing.T, up Upstream, list string) (*Sim, string) {
	t.Helper()
	s, err := New(up, list)
	require.NoError(t, err)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL
}

type response struct {
	status int
	header http.Header
	body   string
}

// call sends one request; set (may be nil) adds headers.
func call(t *testing.T, method, url, body string, set func(*http.Request)) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if set != nil {
		set(req)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return response{res.StatusCode, res.Header, string(b)}
}

func get(t *testing.T, url string, set func(*http.Request)) response {
	t.Helper()
	return call(t, http.MethodGet, url, "", set)
}

func withHeader(name, value string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set(name, value) }
}

func withBasic(user, pass string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(user, pass) }
}

// validAuth adds the credentials each upstream accepts by default.
func validAuth(name string) func(*http.Request) {
	switch name {
	case Incidents:
		return withBasic(DefaultIncidentsUser, DefaultIncidentsPassword)
	case C42:
		return withHeader("Authorization", "Token "+DefaultC42Token)
	case KF:
		return withHeader("x-api-key", DefaultKFKey)
	}
	return nil
}

func TestAuth(t *testing.T) {
	const (
		incidents401 = `{"message":"invalid or missing credentials"}`
		c42401       = `{"error":{"message":"invalid or missing credentials","code":"unauthorized","status_code":401}}`
		kf403        = `{"message":"Forbidden"}`
	)
	tests := []struct {
		name     string
		upstream string
		set      func(*http.Request)
		status   int
		body     string // JSON, when status is not 200
	}{
		{"incidents without credentials", Incidents, nil, 401, incidents401},
		{"incidents wrong password", Incidents, withBasic(DefaultIncidentsUser, "wrong"), 401, incidents401},
		{"incidents wrong user", Incidents, withBasic("mallory", DefaultIncidentsPassword), 401, incidents401},
		{"incidents empty password", Incidents, withBasic(DefaultIncidentsUser, ""), 401, incidents401},
		{"incidents token instead of basic", Incidents, withHeader("Authorization", "Token "+DefaultC42Token), 401, incidents401},
		{"incidents right credentials", Incidents, withBasic(DefaultIncidentsUser, DefaultIncidentsPassword), 200, ""},

		{"c42 without token", C42, nil, 401, c42401},
		{"c42 wrong token", C42, withHeader("Authorization", "Token nope"), 401, c42401},
		{"c42 bearer scheme", C42, withHeader("Authorization", "Bearer "+DefaultC42Token), 401, c42401},
		{"c42 bare token", C42, withHeader("Authorization", DefaultC42Token), 401, c42401},
		{"c42 empty token", C42, withHeader("Authorization", "Token "), 401, c42401},
		{"c42 token with a suffix", C42, withHeader("Authorization", "Token "+DefaultC42Token+"x"), 401, c42401},
		{"c42 right token", C42, withHeader("Authorization", "Token "+DefaultC42Token), 200, ""},

		{"kf without key", KF, nil, 403, kf403},
		{"kf wrong key", KF, withHeader("x-api-key", "nope"), 403, kf403},
		{"kf key in another header", KF, withHeader("Authorization", DefaultKFKey), 403, kf403},
		{"kf right key", KF, withHeader("x-api-key", DefaultKFKey), 200, ""},
		{"kf right key, any header case", KF, func(r *http.Request) { r.Header["X-API-KEY"] = []string{DefaultKFKey} }, 200, ""},

		{"geoip is open", GeoIP, nil, 200, ""},
		{"geoip ignores credentials", GeoIP, withHeader("Authorization", "Token whatever"), 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, url := serve(t, upstream(t, tt.upstream), "")
			res := get(t, url+"/some/path", tt.set)
			assert.Equal(t, tt.status, res.status)
			if tt.body != "" {
				assert.JSONEq(t, tt.body, res.body)
				assert.Equal(t, "application/json", res.header.Get("Content-Type"))
			} else {
				assert.JSONEq(t, `{"ok":true,"size":`+strconv.Itoa(s.Knobs().Size)+`,"seed":1}`, res.body, "routes reached")
			}
			calls := s.Calls()
			require.Len(t, calls, 1)
			assert.Equal(t, tt.status == 200, calls[0].Authorized)
			assert.Equal(t, tt.status, calls[0].Status)
		})
	}
}

func TestCredentialsKnob(t *testing.T) {
	tests := []struct {
		upstream   string
		list       string
		old, fresh func(*http.Request)
	}{
		{Incidents, "credentials=bob:builder", validAuth(Incidents), withBasic("bob", "builder")},
		{C42, "credentials=t2", validAuth(C42), withHeader("Authorization", "Token t2")},
		{KF, "credentials=k2", validAuth(KF), withHeader("x-api-key", "k2")},
	}
	for _, tt := range tests {
		t.Run(tt.upstream, func(t *testing.T) {
			_, url := serve(t, upstream(t, tt.upstream), tt.list)
			assert.NotEqual(t, 200, get(t, url+"/x", tt.old).status, "the default credentials no longer work")
			assert.Equal(t, 200, get(t, url+"/x", tt.fresh).status)
		})
	}
}

func TestUnauthorizedBeforeFaults(t *testing.T) {
	// A call without credentials is refused before failures, delays and the rate limit.
	s, url := serve(t, upstream(t, C42), "failure-rate=1,latency=2s,rate-limit=1")
	start := time.Now()
	for range 3 {
		res := get(t, url+"/x", nil)
		assert.Equal(t, 401, res.status)
	}
	assert.Less(t, time.Since(start), time.Second, "no latency on refused calls")
	// The refused calls did not use the one allowed call of the window.
	s.SetKnobs(func() Knobs { k := s.Knobs(); k.Latency, k.FailureRate = 0, 0; return k }())
	assert.Equal(t, 200, get(t, url+"/x", validAuth(C42)).status)
	assert.Equal(t, 429, get(t, url+"/x", validAuth(C42)).status)
}

func TestFailureRate(t *testing.T) {
	tests := []struct {
		upstream string
		body     string
		status   int
	}{
		{Incidents, `{"message":"simulated failure"}`, 500},
		{C42, `{"error":{"message":"simulated failure","code":"internal_server_error","status_code":500}}`, 500},
		// The geo API's 500 means "cannot place this IP": its failures are 503s.
		{GeoIP, `{"message":"simulated failure"}`, 503},
		{KF, `{"message":"simulated failure"}`, 500},
	}
	for _, tt := range tests {
		t.Run(tt.upstream+" always fails at 1", func(t *testing.T) {
			s, url := serve(t, upstream(t, tt.upstream), "failure-rate=1,rate-limit=0")
			for range 10 {
				res := get(t, url+"/x", validAuth(tt.upstream))
				require.Equal(t, tt.status, res.status)
				assert.JSONEq(t, tt.body, res.body)
				assert.Equal(t, "application/json", res.header.Get("Content-Type"))
			}
			for _, c := range s.Calls() {
				assert.Equal(t, tt.status, c.Status)
				assert.True(t, c.Authorized)
			}
		})
		t.Run(tt.upstream+" never fails at 0", func(t *testing.T) {
			_, url := serve(t, upstream(t, tt.upstream), "failure-rate=0,rate-limit=0")
			for range 30 {
				require.Equal(t, http.StatusOK, get(t, url+"/x", validAuth(tt.upstream)).status)
			}
		})
	}
}

func TestRateLimitWindow(t *testing.T) {
	s, url := serve(t, upstream(t, GeoIP), "") // geoip's default is 5 per second
	require.Equal(t, 5.0, s.Knobs().RateLimit)

	for i := range 5 {
		require.Equal(t, http.StatusOK, get(t, url+"/info?ip=1.2.3.4", nil).status, "call %d", i+1)
	}
	var remaining []float64
	for range 2 {
		res := get(t, url+"/info?ip=1.2.3.4", nil)
		require.Equal(t, http.StatusTooManyRequests, res.status)
		assert.Equal(t, "application/json", res.header.Get("Content-Type"))
		var body map[string]any
		require.NoError(t, json.Unmarshal([]byte(res.body), &body), res.body)
		require.Len(t, body, 1, "only period_remaining: %s", res.body)
		pr, ok := body["period_remaining"].(float64)
		require.True(t, ok, "period_remaining is a JSON number: %s", res.body)
		assert.Greater(t, pr, 0.0)
		assert.LessOrEqual(t, pr, 1.0)
		remaining = append(remaining, pr)
	}
	assert.LessOrEqual(t, remaining[1], remaining[0], "the window runs down")

	// After the window ends, calls pass again, and a new window of 5 opens.
	time.Sleep(time.Duration(remaining[1]*float64(time.Second)) + 20*time.Millisecond)
	for i := range 5 {
		require.Equal(t, http.StatusOK, get(t, url+"/info?ip=1.2.3.4", nil).status, "new window, call %d", i+1)
	}
	require.Equal(t, http.StatusTooManyRequests, get(t, url+"/info?ip=1.2.3.4", nil).status)

	var statuses []int
	for _, c := range s.Calls() {
		statuses = append(statuses, c.Status)
	}
	assert.Equal(t, []int{200, 200, 200, 200, 200, 429, 429, 200, 200, 200, 200, 200, 429}, statuses)
}

func TestRateLimitEnvelopes(t *testing.T) {
	tests := []struct {
		upstream string
		body     string // "" for geoip, checked by shape
	}{
		{Incidents, `{"message":"too many requests"}`},
		{C42, `{"error":{"message":"too many requests","code":"too_many_requests","status_code":429}}`},
		{KF, `{"message":"Too Many Requests"}`},
		{GeoIP, ""},
	}
	for _, tt := range tests {
		t.Run(tt.upstream, func(t *testing.T) {
			_, url := serve(t, upstream(t, tt.upstream), "rate-limit=1,failure-rate=1")
			// The one allowed call goes on to fail; the next is limited before the dice roll.
			assert.Equal(t, cmp.Or(upstream(t, tt.upstream).FailureStatus, 500), get(t, url+"/x", validAuth(tt.upstream)).status)
			res := get(t, url+"/x", validAuth(tt.upstream))
			require.Equal(t, http.StatusTooManyRequests, res.status)
			if tt.body != "" {
				assert.JSONEq(t, tt.body, res.body)
			} else {
				assert.Contains(t, res.body, "period_remaining")
			}
		})
	}
}

func TestRateLimitZeroIsUnlimited(t *testing.T) {
	_, url := serve(t, upstream(t, GeoIP), "rate-limit=0")
	for range 20 {
		require.Equal(t, 200, get(t, url+"/x", nil).status)
	}
}

func TestLatency(t *testing.T) {
	const latency = 40 * time.Millisecond
	_, url := serve(t, upstream(t, GeoIP), "latency=40ms")
	for range 2 {
		start := time.Now()
		res := get(t, url+"/x", nil)
		elapsed := time.Since(start)
		assert.Equal(t, 200, res.status)
		assert.GreaterOrEqual(t, elapsed, latency)
		assert.Less(t, elapsed, latency+time.Second)
	}

	// Latency applies before a simulated failure too.
	_, url = serve(t, upstream(t, GeoIP), "latency=40ms,failure-rate=1")
	start := time.Now()
	assert.Equal(t, 503, get(t, url+"/x", nil).status, "the geo API's failures are 503s")
	assert.GreaterOrEqual(t, time.Since(start), latency)
}

func TestHiccups(t *testing.T) {
	const (
		latency = 10 * time.Millisecond
		hiccup  = 50 * time.Millisecond
		seed    = 9
	)
	_, url := serve(t, upstream(t, GeoIP), fmt.Sprintf("rate-limit=0,latency=10ms,hiccup-rate=1,hiccup-delay=50ms,seed=%d", seed))

	// Each stall is uniform in (0, hiccup-delay], drawn from the seed: replay the draws.
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	var total time.Duration
	for i := range 4 {
		require.Less(t, rng.Float64(), 1.0)
		stall := time.Duration(1 + rng.Int64N(int64(hiccup)))
		require.Positive(t, stall)
		require.LessOrEqual(t, stall, hiccup)

		start := time.Now()
		assert.Equal(t, 200, get(t, url+"/x", nil).status)
		elapsed := time.Since(start)
		assert.GreaterOrEqual(t, elapsed, latency+stall, "call %d", i)
		assert.Less(t, elapsed, latency+hiccup+time.Second, "call %d", i)
		total += stall
	}
	assert.Greater(t, total, hiccup/2, "the seed's stalls are not all tiny, so the test measures something")

	// Hiccup rate 0: no stalls, however long they would be.
	_, url = serve(t, upstream(t, GeoIP), "rate-limit=0,hiccup-rate=0,hiccup-delay=10s")
	start := time.Now()
	for range 3 {
		assert.Equal(t, 200, get(t, url+"/x", nil).status)
	}
	assert.Less(t, time.Since(start), time.Second)
}

func TestClientGivesUpDuringDelay(t *testing.T) {
	s, url := serve(t, upstream(t, GeoIP), "latency=5s")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/info?ip=1.2.3.4", nil)
	require.NoError(t, err)
	start := time.Now()
	res, err := http.DefaultClient.Do(req)
	if res != nil {
		res.Body.Close()
	}
	require.Error(t, err)
	assert.Less(t, time.Since(start), 2*time.Second)

	require.Eventually(t, func() bool { return len(s.Calls()) == 1 }, 3*time.Second, 10*time.Millisecond,
		"the server notices the client left, well before the 5s latency")
	c := s.Calls()[0]
	assert.Equal(t, 499, c.Status)
	assert.Equal(t, "/info", c.Path)
	assert.Equal(t, "ip=1.2.3.4", c.Query)
}

func TestCallLog(t *testing.T) {
	s, url := serve(t, upstream(t, C42), "")
	start := time.Now()

	get(t, url+"/api/v2/events/abc/?x=1", func(r *http.Request) {
		validAuth(C42)(r)
		r.Header.Set("X-Trace", "t1")
	})
	get(t, url+"/api/v2/event-subscriptions/?event_ids=%5B1%5D", nil)
	call(t, http.MethodPost, url+"/other", `{"a":1}`, validAuth(C42))
	get(t, url+"/_sim/knobs", nil) // admin calls are not logged
	end := time.Now()

	calls := s.Calls()
	require.Len(t, calls, 3)

	tests := []struct {
		method, path, query string
		authorized          bool
		status              int
	}{
		{"GET", "/api/v2/events/abc/", "x=1", true, 200},
		{"GET", "/api/v2/event-subscriptions/", "event_ids=%5B1%5D", false, 401},
		{"POST", "/other", "", true, 200},
	}
	for i, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			c := calls[i]
			assert.Equal(t, tt.method, c.Method)
			assert.Equal(t, tt.path, c.Path)
			assert.Equal(t, tt.query, c.Query)
			assert.Equal(t, tt.authorized, c.Authorized)
			assert.Equal(t, tt.status, c.Status)
			assert.False(t, c.At.Before(start) || c.At.After(end), "At %v within the test", c.At)
			require.NotNil(t, c.Header)
		})
	}
	assert.Equal(t, "t1", calls[0].Header.Get("X-Trace"))
	assert.Equal(t, "Token "+DefaultC42Token, calls[0].Header.Get("Authorization"))
	assert.Empty(t, calls[1].Header.Get("Authorization"))
	assert.True(t, calls[0].At.Before(calls[1].At) || calls[0].At.Equal(calls[1].At), "in order")

	counts := []struct {
		prefix string
		want   int
	}{
		{"", 3},
		{"/api/v2/", 2},
		{"/api/v2/events/", 1},
		{"/api/v2/event-subscriptions/", 1},
		{"/other", 1},
		{"/_sim", 0},
		{"/nope", 0},
	}
	for _, tt := range counts {
		t.Run("count "+tt.prefix, func(t *testing.T) {
			assert.Equal(t, tt.want, s.CallCount(tt.prefix))
		})
	}

	// Calls hands out a copy.
	calls[0].Path = "/changed"
	calls[0].Header.Set("X-Trace", "changed")
	assert.Equal(t, "/api/v2/events/abc/", s.Calls()[0].Path)

	s.ResetCalls()
	assert.Empty(t, s.Calls())
	assert.Zero(t, s.CallCount(""))

	get(t, url+"/after", validAuth(C42))
	require.Len(t, s.Calls(), 1)
	assert.Equal(t, "/after", s.Calls()[0].Path)
}

func TestCallHeaderIsACopy(t *testing.T) {
	// The recorded header is the request's as received, not changed by the routes.
	up := upstream(t, GeoIP)
	up.Routes = func(Knobs) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Header.Set("X-Trace", "changed-by-route")
			w.WriteHeader(http.StatusNoContent)
		})
	}
	s, url := serve(t, up, "")
	get(t, url+"/x", withHeader("X-Trace", "original"))
	require.Len(t, s.Calls(), 1)
	assert.Equal(t, "original", s.Calls()[0].Header.Get("X-Trace"))
	assert.Equal(t, http.StatusNoContent, s.Calls()[0].Status)
}

func TestStatusRecorded(t *testing.T) {
	up := upstream(t, GeoIP)
	up.Routes = func(Knobs) http.Handler {
		mux := http.NewServeMux()
		mux.HandleFunc("/implicit", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hi") })
		mux.HandleFunc("/created", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusCreated)
			w.WriteHeader(http.StatusTeapot) // superfluous: ignored
			io.WriteString(w, "made")
		})
		mux.HandleFunc("/flush", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "part")
			if err := http.NewResponseController(w).Flush(); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
			}
		})
		return mux
	}
	s, url := serve(t, up, "rate-limit=0")
	assert.Equal(t, 200, get(t, url+"/implicit", nil).status)
	assert.Equal(t, 201, get(t, url+"/created", nil).status)
	res := get(t, url+"/flush", nil)
	assert.Equal(t, 200, res.status)
	assert.Equal(t, "part", res.body, "Flush reaches the real writer through Unwrap")
	assert.Equal(t, 404, get(t, url+"/missing", nil).status)

	var statuses []int
	for _, c := range s.Calls() {
		statuses = append(statuses, c.Status)
	}
	assert.Equal(t, []int{200, 201, 200, 404}, statuses)
}

func TestCallLogIsBounded(t *testing.T) {
	s, err := New(upstream(t, GeoIP), "")
	require.NoError(t, err)
	for i := range maxCalls + 5 {
		s.record(Call{Path: "/" + strconv.Itoa(i)})
	}
	calls := s.Calls()
	require.Len(t, calls, maxCalls)
	assert.Equal(t, "/5", calls[0].Path, "the oldest are dropped")
	assert.Equal(t, "/"+strconv.Itoa(maxCalls+4), calls[len(calls)-1].Path)
}

func TestAdminKnobs(t *testing.T) {
	s, url := serve(t, upstream(t, C42), "latency=0s")
	before := s.Knobs()

	// Admin routes are outside auth and faults.
	res := get(t, url+"/_sim/knobs", nil)
	require.Equal(t, 200, res.status)
	assert.Equal(t, before.String()+"\n", res.body)
	assert.NotContains(t, res.body, DefaultC42Token, "credentials never shown")

	res = call(t, http.MethodPut, url+"/_sim/knobs", " failure-rate=0.3, latency=50ms \n", nil)
	require.Equal(t, 200, res.status, res.body)
	want := before
	want.FailureRate, want.Latency = 0.3, 50*time.Millisecond
	assert.Equal(t, want, s.Knobs())
	assert.Equal(t, want.String()+"\n", res.body)
	assert.Equal(t, DefaultC42Token, s.Knobs().Credentials, "a PUT changes only the named knobs")
	assert.Equal(t, want.String()+"\n", get(t, url+"/_sim/knobs", nil).body)

	bad := []string{
		"latency=10ms,bogus=1", // a good knob before a bad one must not stick
		"failure-rate=2",
		"latency",
		"seed=-3",
	}
	for _, body := range bad {
		t.Run("bad PUT "+body, func(t *testing.T) {
			res := call(t, http.MethodPut, url+"/_sim/knobs", body, nil)
			assert.Equal(t, http.StatusBadRequest, res.status)
			assert.NotEmpty(t, strings.TrimSpace(res.body), "the 400 says why")
			assert.Equal(t, want, s.Knobs(), "knobs unchanged")
		})
	}

	// The new knobs take effect: failure-rate=1 over HTTP, then the admin route still works.
	require.Equal(t, 200, call(t, http.MethodPut, url+"/_sim/knobs", "failure-rate=1,latency=0s", nil).status)
	assert.Equal(t, 500, get(t, url+"/x", validAuth(C42)).status)
	assert.Equal(t, 200, get(t, url+"/_sim/knobs", nil).status)

	// A PUT may change the credentials.
	require.Equal(t, 200, call(t, http.MethodPut, url+"/_sim/knobs", "credentials=fresh,failure-rate=0", nil).status)
	assert.Equal(t, 401, get(t, url+"/x", validAuth(C42)).status)
	assert.Equal(t, 200, get(t, url+"/x", withHeader("Authorization", "Token fresh")).status)
}

func TestAdminCalls(t *testing.T) {
	s, url := serve(t, upstream(t, KF), "")
	get(t, url+"/outages?since=x", validAuth(KF))
	get(t, url+"/site-info/abc", nil)

	res := get(t, url+"/_sim/calls", nil)
	require.Equal(t, 200, res.status)
	assert.Equal(t, "application/json", res.header.Get("Content-Type"))
	var raw []map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.body), &raw), res.body)
	require.Len(t, raw, 2)
	assert.Equal(t, "GET", raw[0]["method"])
	assert.Equal(t, "/outages", raw[0]["path"])
	assert.Equal(t, "since=x", raw[0]["query"])
	assert.Equal(t, true, raw[0]["authorized"])
	assert.Equal(t, 200.0, raw[0]["status"])
	assert.Equal(t, "/site-info/abc", raw[1]["path"])
	assert.Equal(t, false, raw[1]["authorized"])
	assert.Equal(t, 403.0, raw[1]["status"])
	assert.NotContains(t, raw[1], "query", "empty query omitted")
	at, ok := raw[0]["at"].(string)
	require.True(t, ok)
	_, err := time.Parse(time.RFC3339Nano, at)
	assert.NoError(t, err)
	assert.NotContains(t, res.body, DefaultKFKey, "headers (and so keys) are not served")

	var typed []Call
	require.NoError(t, json.Unmarshal([]byte(res.body), &typed))
	assert.Equal(t, "/outages", typed[0].Path)

	res = call(t, http.MethodDelete, url+"/_sim/calls", "", nil)
	assert.Equal(t, http.StatusNoContent, res.status)
	assert.Empty(t, s.Calls())

	res = get(t, url+"/_sim/calls", nil)
	require.Equal(t, 200, res.status)
	typed = nil
	require.NoError(t, json.Unmarshal([]byte(res.body), &typed))
	assert.Empty(t, typed)

	// Unknown admin routes and methods.
	for _, tt := range []struct{ method, path string }{
		{http.MethodGet, "/_sim/nope"},
		{http.MethodPost, "/_sim/knobs"},
		{http.MethodPost, "/_sim/calls"},
		{http.MethodGet, "/_sim/knobs/"},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			assert.Equal(t, http.StatusNotFound, call(t, tt.method, url+tt.path, "", nil).status)
		})
	}
	assert.Empty(t, s.Calls(), "admin calls are never logged")
}

func TestAdminBypassesRateLimit(t *testing.T) {
	_, url := serve(t, upstream(t, GeoIP), "rate-limit=1")
	assert.Equal(t, 200, get(t, url+"/x", nil).status)
	assert.Equal(t, 429, get(t, url+"/x", nil).status)
	for range 3 {
		assert.Equal(t, 200, get(t, url+"/_sim/knobs", nil).status)
	}
}

func TestSetKnobsRegeneratesRoutesOnlyForSizeOrSeed(t *testing.T) {
	var builds atomic.Int32
	up := Upstream{
		Name:     "counting",
		Defaults: Knobs{Size: 3, Seed: 1},
		Routes: func(k Knobs) http.Handler {
			builds.Add(1)
			return okRoutes(k)
		},
		ErrorBody:   func(int, string) any { return nil },
		TooManyBody: func(time.Duration) any { return nil },
	}
	s, url := serve(t, up, "")
	require.Equal(t, int32(1), builds.Load(), "New builds the routes once")
	assert.Equal(t, "counting", s.Name())

	seen := func() string { return get(t, url+"/x", nil).body }
	assert.JSONEq(t, `{"ok":true,"size":3,"seed":1}`, seen())

	steps := []struct {
		name   string
		change func(*Knobs)
		builds int32
		body   string
	}{
		{"latency only", func(k *Knobs) { k.Latency = time.Millisecond }, 1, `{"ok":true,"size":3,"seed":1}`},
		{"failure rate, credentials, rate limit", func(k *Knobs) { k.FailureRate = 0; k.Credentials = "x"; k.RateLimit = 100 }, 1, `{"ok":true,"size":3,"seed":1}`},
		{"same knobs", func(*Knobs) {}, 1, `{"ok":true,"size":3,"seed":1}`},
		{"size", func(k *Knobs) { k.Size = 4 }, 2, `{"ok":true,"size":4,"seed":1}`},
		{"seed", func(k *Knobs) { k.Seed = 2 }, 3, `{"ok":true,"size":4,"seed":2}`},
		{"both", func(k *Knobs) { k.Size, k.Seed = 5, 5 }, 4, `{"ok":true,"size":5,"seed":5}`},
		{"size back to the same", func(k *Knobs) { k.Size = 5 }, 4, `{"ok":true,"size":5,"seed":5}`},
	}
	for _, st := range steps {
		k := s.Knobs()
		st.change(&k)
		s.SetKnobs(k)
		assert.Equal(t, st.builds, builds.Load(), st.name)
		assert.Equal(t, k, s.Knobs(), st.name)
		assert.JSONEq(t, st.body, seen(), st.name)
	}

	// The admin PUT goes through the same rule.
	require.Equal(t, 200, call(t, http.MethodPut, url+"/_sim/knobs", "latency=0s", nil).status)
	assert.Equal(t, int32(4), builds.Load())
	require.Equal(t, 200, call(t, http.MethodPut, url+"/_sim/knobs", "size=9", nil).status)
	assert.Equal(t, int32(5), builds.Load())
	assert.JSONEq(t, `{"ok":true,"size":9,"seed":5}`, seen())
}

func TestNewRejectsBadKnobs(t *testing.T) {
	s, err := New(upstream(t, GeoIP), "latency=soon")
	require.Error(t, err)
	assert.Nil(t, s)
	assert.Contains(t, err.Error(), "latency")

	s, err = New(upstream(t, KF), "size=12")
	require.NoError(t, err)
	k := s.Knobs()
	assert.Equal(t, 12, k.Size)
	assert.Equal(t, DefaultKFKey, k.Credentials, "defaults stand where the list says nothing")
	assert.Equal(t, uint64(1), k.Seed)
}

// statuses makes n sequential calls and returns their statuses.
func statuses(t *testing.T, url string, n int) []int {
	t.Helper()
	out := make([]int, n)
	for i := range out {
		out[i] = get(t, url+"/x", nil).status
	}
	return out
}

func TestDeterminism(t *testing.T) {
	const n = 40
	list := "seed=42,failure-rate=0.5,rate-limit=0"
	_, urlA := serve(t, upstream(t, GeoIP), list)
	_, urlB := serve(t, upstream(t, GeoIP), list)
	a := statuses(t, urlA, n)
	b := statuses(t, urlB, n)
	assert.Equal(t, a, b, "same seed, same faults")
	assert.Contains(t, a, 200)
	assert.Contains(t, a, 503)

	_, urlC := serve(t, upstream(t, GeoIP), "seed=43,failure-rate=0.5,rate-limit=0")
	assert.NotEqual(t, a, statuses(t, urlC, n), "another seed, other faults")

	// Changing to a seed starts its sequence afresh, as a new simulator would.
	sD, urlD := serve(t, upstream(t, GeoIP), "seed=7,failure-rate=0.5,rate-limit=0")
	statuses(t, urlD, 5)
	k := sD.Knobs()
	k.Seed = 42
	sD.SetKnobs(k)
	assert.Equal(t, a, statuses(t, urlD, n))
}

// freePort is the port of testenv.FreeAddr: one nobody listened on a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	_, p, err := net.SplitHostPort(testenv.FreeAddr(t))
	require.NoError(t, err)
	port, err := strconv.Atoi(p)
	require.NoError(t, err)
	return port
}

func TestFleet(t *testing.T) {
	f, err := Start("127.0.0.1", Names, nil, "latency=0s;kf:seed=42;geoip:rate-limit=0,size=3")
	require.NoError(t, err)
	closed := false
	t.Cleanup(func() {
		if !closed {
			f.Close(context.Background())
		}
	})

	seenURLs := map[string]bool{}
	for _, name := range Names {
		t.Run(name, func(t *testing.T) {
			u := f.URL(name)
			require.True(t, strings.HasPrefix(u, "http://127.0.0.1:"), u)
			assert.False(t, seenURLs[u], "each simulator has its own port")
			seenURLs[u] = true
			s := f.Sim(name)
			require.NotNil(t, s)
			assert.Equal(t, name, s.Name())

			res := get(t, u+"/_sim/knobs", nil)
			require.Equal(t, 200, res.status)
			assert.Equal(t, s.Knobs().String()+"\n", res.body)
		})
	}
	assert.Equal(t, uint64(42), f.Sim(KF).Knobs().Seed, "named part applied")
	assert.Equal(t, uint64(1), f.Sim(C42).Knobs().Seed, "to the named one only")
	assert.Equal(t, 0.0, f.Sim(GeoIP).Knobs().RateLimit)
	assert.Equal(t, 3, f.Sim(GeoIP).Knobs().Size)
	assert.Equal(t, 5.0, Upstreams()[GeoIP].Defaults.RateLimit)

	// Each URL reaches the right upstream: tell them apart by their auth.
	assert.Equal(t, 401, get(t, f.URL(Incidents)+"/identities", nil).status)
	assert.Equal(t, 401, get(t, f.URL(C42)+"/api/v2/events/x/", nil).status)
	assert.Equal(t, 403, get(t, f.URL(KF)+"/outages", nil).status)
	assert.NotEqual(t, 401, get(t, f.URL(GeoIP)+"/info?ip=1.2.3.4", nil).status)
	assert.Equal(t, 1, f.Sim(KF).CallCount("/outages"))

	assert.Nil(t, f.Sim("nope"))
	assert.Equal(t, "", f.URL("nope"))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, f.Close(ctx))
	closed = true
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}
	for _, name := range Names {
		res, err := client.Get(f.URL(name) + "/_sim/knobs")
		if res != nil {
			res.Body.Close()
		}
		assert.Error(t, err, "%s still serves after Close", name)
	}
}

func TestFleetPortsAndSubset(t *testing.T) {
	port := freePort(t)
	f, err := Start("127.0.0.1", []string{GeoIP}, map[string]int{GeoIP: port, KF: 1}, "")
	require.NoError(t, err)
	t.Cleanup(func() { f.Close(context.Background()) })
	assert.Equal(t, "http://127.0.0.1:"+strconv.Itoa(port), f.URL(GeoIP))
	assert.Equal(t, 200, get(t, f.URL(GeoIP)+"/_sim/knobs", nil).status)
	assert.Nil(t, f.Sim(KF), "only the named simulators run")
	assert.Equal(t, "", f.URL(KF))
}

func TestFleetErrors(t *testing.T) {
	tests := []struct {
		name  string
		names []string
		spec  string
		msg   string
		knobs bool // a *KnobsError: the spec is wrong, not the call
	}{
		{"unknown name", []string{"nope"}, "", `unknown simulator "nope"`, false},
		{"unknown after a good one", []string{GeoIP, "nope"}, "", `unknown simulator "nope"`, false},
		{"bad spec", []string{GeoIP}, "latency=soon", "knob latency", true},
		{"unknown name in spec", []string{GeoIP}, "nope:latency=1s", `unknown simulator "nope"`, true},
		{"bad knob for a named sim", []string{KF}, "kf:failure-rate=3", "kf: ", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Start("127.0.0.1", tt.names, nil, tt.spec)
			require.Error(t, err)
			assert.Nil(t, f)
			assert.Contains(t, err.Error(), tt.msg)
			var knobsErr *KnobsError
			assert.Equal(t, tt.knobs, errors.As(err, &knobsErr), "%T: %v", err, err)
		})
	}
}

func TestFleetStopsStartedSimsOnError(t *testing.T) {
	port := freePort(t)
	f, err := Start("127.0.0.1", []string{Incidents, "nope"}, map[string]int{Incidents: port}, "")
	require.Error(t, err)
	assert.Nil(t, f)
	// The incidents simulator started first; the failure must release its port.
	require.Eventually(t, func() bool {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			return false
		}
		l.Close()
		return true
	}, 2*time.Second, 10*time.Millisecond)
}

func TestFleetPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	f, err := Start("127.0.0.1", []string{C42}, map[string]int{C42: port}, "latency=1ms")
	require.Error(t, err)
	assert.Nil(t, f)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	assert.True(t, strings.HasPrefix(err.Error(), "start simulator c42 on "+addr+": listen tcp "+addr+": "), err.Error())
	assert.Contains(t, err.Error(), "address already in use")
	var knobsErr *KnobsError
	assert.False(t, errors.As(err, &knobsErr), "a taken port is no knob mistake")
}

func TestEmptyHeaderCredentialsLetNobodyIn(t *testing.T) {
	tests := []struct {
		upstream string
		set      func(*http.Request)
	}{
		{C42, nil},
		{C42, withHeader("Authorization", "Token ")},
		{C42, withHeader("Authorization", "Token")},
		{KF, nil},
		{KF, withHeader("x-api-key", "")},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprintf("%s %d", tt.upstream, i), func(t *testing.T) {
			s, url := serve(t, upstream(t, tt.upstream), "credentials=")
			require.Empty(t, s.Knobs().Credentials)
			res := get(t, url+"/x", tt.set)
			assert.Equal(t, s.up.Unauthorized, res.status)
		})
	}
}
