package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/internal/config"
	"relay/internal/relaytest"
	"relay/internal/sim"
	"relay/internal/testenv"
)

type eventView struct {
	TaskID   string          `json:"task_id"`
	IP       string          `json:"ip"`
	State    string          `json:"state"`
	Location json.RawMessage `json:"location"`
}

// geoEnv runs relay trusting the test's own loopback as a proxy, so that each submission
// can come "from" the client IP in X-Forwarded-For.
func geoEnv(t *testing.T, knobs string) *relaytest.Env {
	return relaytest.Start(t, relaytest.WithConfig(func(c *config.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		c.GeoIP.SubmitRate = 1000
		c.SimKnobs = knobs
	}))
}

func submit(t *testing.T, env *relaytest.Env, ip, body string, header ...string) string {
	t.Helper()
	resp, b := env.Do(t, http.MethodPost, "/event/submit/", strings.NewReader(body), append([]string{"X-Forwarded-For", ip}, header...)...)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, string(b))
	var ok struct {
		Data struct {
			TaskID string `json:"task_id"`
		} `json:"data"`
		Status string `json:"status"`
	}
	require.NoError(t, json.Unmarshal(b, &ok))
	require.Equal(t, "success", ok.Status)
	return ok.Data.TaskID
}

func getEventView(t *testing.T, env *relaytest.Env, id string) eventView {
	t.Helper()
	resp, b := env.Do(t, http.MethodGet, "/event/"+id, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	var v struct {
		Data eventView `json:"data"`
	}
	require.NoError(t, json.Unmarshal(b, &v))
	return v.Data
}

// waitLocated polls until no event is pending.
func waitLocated(t *testing.T, env *relaytest.Env, ids []string, within time.Duration) map[string]eventView {
	t.Helper()
	out := map[string]eventView{}
	testenv.WaitFor(t, within, func() error {
		var pending []string
		for _, id := range ids {
			if _, done := out[id]; !done {
				if v := getEventView(t, env, id); v.State != "pending" {
					out[id] = v
				} else {
					pending = append(pending, id)
				}
			}
		}
		if len(pending) > 0 {
			return testenv.Waitf("%d of %d events still pending, the first %s", len(pending), len(ids), pending[0])
		}
		return nil
	})
	return out
}

// A burst from many clients: every event is accepted at once, visible as pending, and ends
// located, while the geolocation API never sees more than 5 calls in any second.
func TestGeolocationBurstIsLocatedWithinTheRate(t *testing.T) {
	env := geoEnv(t, "")
	const clients, perClient = 50, 4 // 200 submissions
	ids := make([]string, 0, clients*perClient)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for c := range clients {
		ip := fmt.Sprintf("8.%d.%d.%d", 10+c, 20+c, 30+c) // public, distinct
		for i := range perClient {
			wg.Go(func() {
				id := submit(t, env, ip, fmt.Sprintf(`{"name":"boot %d","status_code":"200"}`, i))
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	require.Len(t, ids, clients*perClient)
	assert.Equal(t, "pending", getEventView(t, env, ids[0]).State, "visible as pending from the 202")

	views := waitLocated(t, env, ids, 2*time.Minute)
	geo := env.Sims.Sim(sim.GeoIP)
	api := geo.Routes().(*sim.GeoIPAPI)
	for _, v := range views {
		assert.Equal(t, "located", v.State, v.IP)
		var loc struct {
			City    *string `json:"city"`
			Country struct {
				IsoCode string `json:"iso_code"`
			} `json:"country"`
		}
		require.NoError(t, json.Unmarshal(v.Location, &loc))
		_, iso, ok := api.Locate(v.IP)
		require.True(t, ok)
		assert.Equal(t, iso, loc.Country.IsoCode, v.IP)
	}
	calls := geo.Calls()
	assert.Len(t, calls, clients, "one call per client IP: events of one IP share its lookup")
	assert.LessOrEqual(t, sim.MaxCallsPerWindow(calls, time.Second), 5, "calls in the busiest second")
	for _, c := range calls {
		assert.NotEqual(t, http.StatusTooManyRequests, c.Status, "relay's limiter keeps the API from answering 429")
	}
	t.Logf("%d events from %d clients located with %d geolocation calls", len(ids), clients, len(calls))
}

func TestGeolocationOfUnplaceableAndRepeatedIPs(t *testing.T) {
	env := geoEnv(t, "")
	private := submit(t, env, "10.1.2.3", `{"name":"from the office"}`)
	first := submit(t, env, "9.9.9.9", `{"status_code":404}`)
	views := waitLocated(t, env, []string{private, first}, time.Minute)
	assert.Equal(t, "unlocatable", views[private].State)
	assert.Equal(t, "null", string(views[private].Location))
	assert.Equal(t, "located", views[first].State)

	calls := len(env.Sims.Sim(sim.GeoIP).Calls())
	assert.Equal(t, 1, calls, "a private IP costs no call")
	again := submit(t, env, "9.9.9.9", `{"status_code":500}`)
	views = waitLocated(t, env, []string{again}, time.Minute)
	assert.Equal(t, "located", views[again].State)
	assert.Equal(t, calls, len(env.Sims.Sim(sim.GeoIP).Calls()), "a repeated IP is answered from the cache")
}

func TestIdempotencyKeyGivesOneEvent(t *testing.T) {
	env := geoEnv(t, "")
	a := submit(t, env, "8.8.8.8", `{"name":"x"}`, "Idempotency-Key", "order-17")
	b := submit(t, env, "8.8.8.8", `{"name":"x"}`, "Idempotency-Key", "order-17")
	assert.Equal(t, a, b)
	resp, body := env.Do(t, http.MethodGet, "/events?limit=10", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var list struct {
		Data []eventView `json:"data"`
	}
	require.NoError(t, json.Unmarshal(body, &list))
	assert.Len(t, list.Data, 1)
}

// Three workers (each its own store connection, as three processes would have) share the
// geolocation budget: still no second with more than 5 calls.
func TestGeolocationRateHoldsWithThreeWorkers(t *testing.T) {
	env := geoEnv(t, "")
	startWorkers(t, env, 2)
	var ids []string
	for i := range 30 {
		ids = append(ids, submit(t, env, fmt.Sprintf("9.%d.%d.1", 1+i/10, i%10), `{"name":"n"}`))
	}
	for _, v := range waitLocated(t, env, ids, 2*time.Minute) {
		assert.Equal(t, "located", v.State)
	}
	calls := env.Sims.Sim(sim.GeoIP).Calls()
	assert.Len(t, calls, 30, "one call per distinct IP")
	assert.LessOrEqual(t, sim.MaxCallsPerWindow(calls, time.Second), 5)
}
