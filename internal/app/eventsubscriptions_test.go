package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/internal/app"
	"relay/internal/config"
	"relay/internal/relaytest"
	"relay/internal/sim"
	"relay/internal/testenv"
)

const (
	teamSync  = sim.C42EventTeamSync // Bob, Ella, "", Bob, Zoë
	emptyRoom = sim.C42EventEmpty
	allHands  = sim.C42EventAllHands // 25 subscribers
	noSuchEv  = "ffffffffffffffffffffffffffffffff_99999999999999"
	eventsAPI = "/api/v2/events/"
	subsAPI   = "/api/v2/event-subscriptions/"
)

type mergedEvent struct {
	ID    string   `json:"id"`
	Title string   `json:"title"`
	Names []string `json:"names"`
}

func getEvent(t *testing.T, env *relaytest.Env, path string) (*http.Response, mergedEvent, []byte) {
	t.Helper()
	resp, b := env.Do(t, http.MethodGet, path, nil)
	var m mergedEvent
	if resp.StatusCode == http.StatusOK {
		require.NoError(t, json.Unmarshal(b, &m), string(b))
	}
	return resp, m, b
}

func c42API(t *testing.T, env *relaytest.Env) *sim.C42API {
	t.Helper()
	api, ok := env.Sims.Sim(sim.C42).Routes().(*sim.C42API)
	require.True(t, ok)
	return api
}

func TestEventWithSubscriptionsIsCachedForTheTTL(t *testing.T) {
	env := relaytest.Start(t)
	c42 := env.Sims.Sim(sim.C42)
	title, names, ok := c42API(t, env).Expected(teamSync)
	require.True(t, ok)

	resp, m, _ := getEvent(t, env, "/events-with-subscriptions/"+teamSync)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "MISS", resp.Header.Get("X-Cache"))
	assert.Equal(t, "max-age=252", resp.Header.Get("Cache-Control"))
	assert.Equal(t, mergedEvent{ID: teamSync, Title: title, Names: names}, m)
	assert.Equal(t, []string{"Bob", "Ella", "", "Bob", "Zoë"}, m.Names, "duplicates and empty names as the API has them")
	calls := len(c42.Calls())

	// Both URL forms, within the TTL: answered from the cache, no upstream call.
	for _, path := range []string{"/events-with-subscriptions/" + teamSync, "/events-with-subscriptions/" + teamSync + "/"} {
		resp, again, _ := getEvent(t, env, path)
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		assert.Equal(t, "HIT", resp.Header.Get("X-Cache"), path)
		assert.Regexp(t, `^max-age=(25[0-2]|24\d)$`, resp.Header.Get("Cache-Control"))
		assert.Equal(t, m, again)
	}
	assert.Len(t, c42.Calls(), calls, "cache hits make no upstream call")
}

func TestEventWithSubscriptionsRefetchesAfterTheTTL(t *testing.T) {
	env := relaytest.Start(t, relaytest.WithConfig(func(c *config.Config) { c.C42.CacheTTL = time.Second }))
	c42 := env.Sims.Sim(sim.C42)
	resp, _, _ := getEvent(t, env, "/events-with-subscriptions/"+allHands)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "max-age=1", resp.Header.Get("Cache-Control"))
	first := c42.CallCount(eventsAPI)

	time.Sleep(1100 * time.Millisecond)
	resp, m, _ := getEvent(t, env, "/events-with-subscriptions/"+allHands)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "MISS", resp.Header.Get("X-Cache"))
	assert.Equal(t, first+1, c42.CallCount(eventsAPI), "refetched after the TTL")
	assert.Len(t, m.Names, 25)
}

func TestEventWithNoSubscribers(t *testing.T) {
	env := relaytest.Start(t)
	resp, m, b := getEvent(t, env, "/events-with-subscriptions/"+emptyRoom)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.JSONEq(t, `{"id":"`+emptyRoom+`","title":"Empty room","names":[]}`, string(b))
	assert.Empty(t, m.Names)
}

func TestUnknownEventIs404AndNotCached(t *testing.T) {
	env := relaytest.Start(t)
	c42 := env.Sims.Sim(sim.C42)
	for i := 1; i <= 2; i++ {
		resp, _, b := getEvent(t, env, "/events-with-subscriptions/"+noSuchEv)
		assert.Equal(t, http.StatusNotFound, resp.StatusCode, string(b))
		assert.Contains(t, string(b), `"code":"not_found"`)
		assert.Equal(t, i, c42.CallCount(eventsAPI), "a failure is never cached: each request asks again")
	}
}

func TestColdEventFetchedOnceForConcurrentRequests(t *testing.T) {
	env := relaytest.Start(t, relaytest.WithConfig(func(c *config.Config) { c.SimKnobs = "c42:latency=100ms" }))
	c42 := env.Sims.Sim(sim.C42)
	const n = 100
	var wg sync.WaitGroup
	bodies := make([]string, n)
	statuses := make([]int, n)
	for i := range n {
		wg.Go(func() {
			resp, err := env.HTTP.Get(env.BaseURL + "/events-with-subscriptions/" + teamSync)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			statuses[i], bodies[i] = resp.StatusCode, string(b)
		})
	}
	wg.Wait()
	for i := range n {
		require.Equal(t, http.StatusOK, statuses[i], "request %d", i)
		require.Equal(t, bodies[0], bodies[i])
	}
	assert.Equal(t, 1, c42.CallCount(eventsAPI), "the event endpoint was called once")
	assert.Equal(t, 1, c42.CallCount(subsAPI), "the subscriptions endpoint was called once")
}

func TestBadEventIDNeverReachesTheUpstream(t *testing.T) {
	env := relaytest.Start(t)
	for _, id := range []string{"a.b", "%2E%2E", "with%20space", strings.Repeat("x", 129), "emoji%F0%9F%98%80"} {
		resp, _, b := getEvent(t, env, "/events-with-subscriptions/"+id)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s: %s", id, b)
		assert.Contains(t, string(b), `"event_id"`)
	}
	assert.Empty(t, env.Sims.Sim(sim.C42).Calls())
}

func TestUpstreamFailuresMapToGatewayErrors(t *testing.T) {
	testenv.EndToEnd(t)
	cases := map[string]struct {
		knobs  string
		status int
	}{
		"calendar API down":          {"failure-rate=1", http.StatusBadGateway},
		"calendar API refuses token": {"credentials=not-relays-token", http.StatusBadGateway},
		"calendar API too slow":      {"latency=5s", http.StatusGatewayTimeout},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			env := relaytest.Start(t)
			// Set after start: dev hands the worker the simulator's credentials at start.
			c42 := env.Sims.Sim(sim.C42)
			k := c42.Knobs()
			require.NoError(t, k.Apply(tc.knobs))
			c42.SetKnobs(k)
			start := time.Now()
			resp, _, b := getEvent(t, env, "/events-with-subscriptions/"+teamSync)
			assert.Equal(t, tc.status, resp.StatusCode, string(b))
			assert.NotContains(t, string(b), sim.DefaultC42Token)
			assert.Less(t, time.Since(start), 13*time.Second, "the request stays bounded")
			// Not cached: the next request asks the API again.
			before := len(env.Sims.Sim(sim.C42).Calls())
			resp, _, _ = getEvent(t, env, "/events-with-subscriptions/"+teamSync)
			assert.Equal(t, tc.status, resp.StatusCode)
			assert.Greater(t, len(env.Sims.Sim(sim.C42).Calls()), before)
		})
	}
}

// Two server processes (here: two API servers on one Temporal) asked at once for one cold
// event still cause one merge: the workflow id's conflict policy joins the running one.
func TestColdEventFetchedOnceAcrossServerProcesses(t *testing.T) {
	env := relaytest.Start(t, relaytest.WithConfig(func(c *config.Config) { c.SimKnobs = "c42:latency=200ms" }))
	cfg := env.Config
	cfg.HTTPAddr = "127.0.0.1:0"
	second, err := app.Start(t.Context(), cfg, app.Server, testenv.Logger(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = second.Stop(context.Background()) })

	bases := []string{env.BaseURL, "http://" + second.HTTPAddr}
	var wg sync.WaitGroup
	statuses := make([]int, 40)
	for i := range statuses {
		wg.Go(func() {
			resp, err := env.HTTP.Get(bases[i%2] + "/events-with-subscriptions/" + allHands)
			if err == nil {
				resp.Body.Close()
				statuses[i] = resp.StatusCode
			}
		})
	}
	wg.Wait()
	for i, s := range statuses {
		assert.Equal(t, http.StatusOK, s, "request %d", i)
	}
	c42 := env.Sims.Sim(sim.C42)
	assert.Equal(t, 1, c42.CallCount(eventsAPI), "one merge for both processes")
	assert.Equal(t, 1, c42.CallCount(subsAPI))
}

// Two servers, one after the other: the second server's first request for an event the
// first server fetched is answered by the event's workflow from memory, without a call to
// the calendar API (the requirement: no upstream call for an event asked for in the last
// TTL, however many servers ask), and is a hit.
func TestColdEventFetchedOnceAcrossServersOneAfterTheOther(t *testing.T) {
	env := relaytest.Start(t)
	cfg := env.Config
	cfg.HTTPAddr = "127.0.0.1:0"
	second, err := app.Start(t.Context(), cfg, app.Server, testenv.Logger(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = second.Stop(context.Background()) })
	c42 := env.Sims.Sim(sim.C42)

	resp, first, _ := getEvent(t, env, "/events-with-subscriptions/"+allHands)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "MISS", resp.Header.Get("X-Cache"))
	require.Equal(t, 1, c42.CallCount(eventsAPI))
	calls := len(c42.Calls())

	for i, want := range []string{"HIT", "HIT"} { // from the workflow, then from the second server's copy
		resp, err := env.HTTP.Get("http://" + second.HTTPAddr + "/events-with-subscriptions/" + allHands + "/")
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		assert.Equal(t, want, resp.Header.Get("X-Cache"), "request %d on the second server", i)
		assert.Regexp(t, `^max-age=(25[0-2]|24\d)$`, resp.Header.Get("Cache-Control"))
		var again mergedEvent
		require.NoError(t, json.Unmarshal(b, &again))
		assert.Equal(t, first, again)
	}
	assert.Len(t, c42.Calls(), calls, "the second server made no upstream call")

	// The second server asked the workflow once: one update in the run's history besides
	// the first server's.
	var updates int
	iter := env.Client.GetWorkflowHistory(t.Context(), "event-subscriptions/"+allHands, "", false, 0)
	for iter.HasNext() {
		ev, err := iter.Next()
		require.NoError(t, err)
		if ev.GetWorkflowExecutionUpdateCompletedEventAttributes() != nil {
			updates++
		}
	}
	assert.Equal(t, 2, updates, "one ask per server")
}
