package app_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/internal/config"
	"relay/internal/relaytest"
	"relay/internal/sim"
	"relay/internal/testenv"
)

// The fault matrix (RELIABILITY.md): every job, run end to end while every upstream
// misbehaves in one way, ends with exactly the right result; nothing accepted is lost, and
// nothing is done twice except where the upstream did the work and its answer was lost
// on the way (then the repeat is the same idempotent POST).
func TestUpstreamFaultMatrix(t *testing.T) {
	testenv.EndToEnd(t)
	faults := []struct {
		name  string
		knobs string // for every simulator at once
		// upstreamTimeout, if set, cuts calls off sooner than the stalls last.
		upstreamTimeout time.Duration
		// answersLost: the upstream may have done a POST whose answer relay never got.
		answersLost bool
	}{
		{name: "5xx", knobs: "failure-rate=0.15"},
		{name: "429", knobs: "rate-limit=2"},
		{name: "timeouts", knobs: "hiccup-rate=0.15,hiccup-delay=3s", upstreamTimeout: time.Second},
		{name: "connection reset", knobs: "reset-rate=0.15"},
		{name: "truncated answers", knobs: "truncate-rate=0.15", answersLost: true},
		{name: "HTML and broken JSON", knobs: "garble-rate=0.15"},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			env := relaytest.Start(t, relaytest.WithConfig(func(c *config.Config) {
				faultTolerantConfig(c)
				c.SimKnobs = f.knobs
				if f.upstreamTimeout > 0 {
					c.UpstreamTimeout = f.upstreamTimeout
				}
			}))
			jobs := startEveryJob(t, env)
			faults := jobs.finish(t, env, env.Sims, f.answersLost)
			assert.Positive(t, faults, "the simulators injected %s", f.name)
		})
	}

	// Every upstream refuses connections (not started yet) when the jobs start, and comes
	// up three seconds later.
	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		ports := map[string]int{}
		for _, name := range sim.Names {
			ports[name] = closedPort(t)
		}
		url := func(name string) string { return fmt.Sprintf("http://127.0.0.1:%d", ports[name]) }
		env := relaytest.Start(t, relaytest.WithConfig(func(c *config.Config) {
			faultTolerantConfig(c)
			c.Incidents.URL, c.Incidents.User, c.Incidents.Password = url(sim.Incidents), sim.DefaultIncidentsUser, sim.DefaultIncidentsPassword
			c.C42.URL, c.C42.Token = url(sim.C42), sim.DefaultC42Token
			c.GeoIP.URL = url(sim.GeoIP)
			c.KF.URL, c.KF.APIKey = url(sim.KF), sim.DefaultKFKey
		}))
		require.Nil(t, env.Sims, "no simulator runs until the test starts them")
		jobs := startEveryJob(t, env)
		// The merge is answered synchronously: with nothing listening it fails as a gateway
		// error (502; 504 when a busy machine pushes it past its 10 s bound), and is not cached.
		resp, _, body := getEvent(t, env, "/events-with-subscriptions/"+teamSync)
		require.Contains(t, []int{http.StatusBadGateway, http.StatusGatewayTimeout}, resp.StatusCode, string(body))

		time.Sleep(3 * time.Second)
		fleet, err := sim.Start("127.0.0.1", sim.Names, ports, "")
		require.NoError(t, err)
		t.Cleanup(func() { _ = fleet.Close(t.Context()) })
		jobs.finish(t, env, fleet, false)
	})
}

// faultTolerantConfig lets the test's loopback act as a proxy for many public client IPs.
func faultTolerantConfig(c *config.Config) {
	c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	c.GeoIP.SubmitRate = 1000
}

// closedPort is a loopback port nothing listens on, for a simulator to take later
// (testenv.FreeAddr keeps it out of the range outgoing connections draw from).
func closedPort(t *testing.T) int {
	t.Helper()
	_, port, err := net.SplitHostPort(testenv.FreeAddr(t))
	require.NoError(t, err)
	n, err := strconv.Atoi(port)
	require.NoError(t, err)
	return n
}

// startedJobs are the asynchronous jobs a fault test started and waits for.
type startedJobs struct {
	refreshID, refreshRun string
	eventIDs              []string
	eventIPs              map[string]string // task id → client IP
}

// startEveryJob starts an incidents refresh, an outage sync of kingfisher and five events
// from distinct public IPs, all at once.
func startEveryJob(t *testing.T, env *relaytest.Env) *startedJobs {
	t.Helper()
	j := &startedJobs{eventIPs: map[string]string{}}
	resp, b := env.Do(t, http.MethodPost, "/incidents/refresh", nil)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, string(b))
	var started struct {
		WorkflowID string `json:"workflow_id"`
		RunID      string `json:"run_id"`
	}
	require.NoError(t, json.Unmarshal(b, &started))
	j.refreshID, j.refreshRun = started.WorkflowID, started.RunID

	startSync(t, env, "kingfisher", "")
	for i := range 5 {
		ip := fmt.Sprintf("8.%d.4.%d", 40+i, 1+i)
		id := submit(t, env, ip, fmt.Sprintf(`{"name":"fault %d","status_code":200}`, i))
		j.eventIDs = append(j.eventIDs, id)
		j.eventIPs[id] = ip
	}
	return j
}

// finish runs the merge, waits for the other jobs and checks every result against what
// the simulators know to be true. It returns how many upstream calls met a fault.
func (j *startedJobs) finish(t *testing.T, env *relaytest.Env, fleet *sim.Fleet, answersLost bool) int {
	t.Helper()
	// Cached merge: one after the other, so that a rate limit is not the test's own doing.
	c42, ok := fleet.Sim(sim.C42).Routes().(*sim.C42API)
	require.True(t, ok)
	for _, id := range []string{teamSync, allHands} {
		resp, got, body := getEvent(t, env, "/events-with-subscriptions/"+id)
		// A merge has 10 s (EventSubscriptionsRunTimeout); on a machine running several
		// relays under -race, retries of faulty calls can take longer. A 504 is then the
		// right answer, and a client's remedy is to ask again: the next request runs the
		// merge again (a failure is never cached), and it must end with the right answer.
		for try := 1; resp.StatusCode == http.StatusGatewayTimeout && try <= 2; try++ {
			t.Logf("merge %s: 504 (try %d), asking again", id, try)
			resp, got, body = getEvent(t, env, "/events-with-subscriptions/"+id)
		}
		require.Equal(t, http.StatusOK, resp.StatusCode, "merge %s: %s", id, body)
		title, names, ok := c42.Expected(id)
		require.True(t, ok)
		assert.Equal(t, mergedEvent{ID: id, Title: title, Names: names}, got, "merge %s", id)
	}

	// Incidents: the refresh completes and the snapshot served means what the data means.
	ctx := t.Context()
	require.NoError(t, env.Client.GetWorkflow(ctx, j.refreshID, j.refreshRun).Get(ctx, nil), "incidents refresh")
	waitSnapshot(t, env)
	_, body := env.Do(t, http.MethodGet, "/incidents", nil)
	var got map[string]map[string]priorityGroup
	require.NoError(t, json.Unmarshal(body, &got))
	incidents, ok := fleet.Sim(sim.Incidents).Routes().(*sim.IncidentsAPI)
	require.True(t, ok)
	truth := incidents.Truth()
	require.Len(t, got, len(truth.ByEmployee))
	for emp, byPriority := range truth.ByEmployee {
		for p, n := range byPriority {
			assert.Equal(t, n, got[emp][p].Count, "incidents of %s at %s", emp, p)
		}
	}

	// Geolocation: every accepted event is located, in the right country.
	geo, ok := fleet.Sim(sim.GeoIP).Routes().(*sim.GeoIPAPI)
	require.True(t, ok)
	for id, v := range waitLocated(t, env, j.eventIDs, 2*time.Minute) {
		require.Equal(t, "located", v.State, "event %s from %s", id, j.eventIPs[id])
		var loc struct {
			Country struct {
				IsoCode string `json:"iso_code"`
			} `json:"country"`
		}
		require.NoError(t, json.Unmarshal(v.Location, &loc))
		_, iso, ok := geo.Locate(j.eventIPs[id])
		require.True(t, ok)
		assert.Equal(t, iso, loc.Country.IsoCode, "event %s", id)
	}
	assert.LessOrEqual(t, sim.MaxCallsPerWindow(fleet.Sim(sim.GeoIP).Calls(), time.Second), 5, "geolocation calls in the busiest second")

	// Outage sync: completed, and every POST the API took is exactly the expected body.
	st := waitSync(t, env, "kingfisher")
	require.Equal(t, "completed", st.State, "outage sync: %+v", st.Error)
	kf, ok := fleet.Sim(sim.KF).Routes().(*sim.KFAPI)
	require.True(t, ok)
	var accepted int
	for _, p := range kf.Posts() {
		if p.Status == http.StatusOK {
			accepted++
			assert.Equal(t, string(kf.Expected("kingfisher")), string(p.Body))
		}
	}
	if answersLost {
		assert.GreaterOrEqual(t, accepted, 1, "accepted POSTs")
	} else {
		assert.Equal(t, 1, accepted, "accepted POSTs")
	}

	var calls, faults int
	for _, name := range sim.Names {
		for _, c := range fleet.Sim(name).Calls() {
			calls++
			if c.Fault != "" {
				faults++
			}
		}
	}
	t.Logf("%d of %d upstream calls met a fault; %d accepted POSTs", faults, calls, accepted)
	return faults
}
