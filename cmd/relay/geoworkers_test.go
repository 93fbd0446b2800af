package main

import (
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/internal/config"
	"relay/internal/relaytest"
	"relay/internal/sim"
	"relay/internal/store/storetest"
	"relay/internal/testenv"
)

// geoWorkersForEnv sets how long TestTwelveWorkerProcessesShareTheGeoRate loads the API:
// 2 minutes by default (CI); `RELAY_TEST_GEO_WORKERS_FOR=15m` is the run RELIABILITY.md
// reports, well past the 6 minutes after which the old limiter stopped calling.
const geoWorkersForEnv = "RELAY_TEST_GEO_WORKERS_FOR"

// geoWorkersEnv switches the twelve-process run on.
const geoWorkersEnv = "RELAY_TEST_GEO_WORKERS"

// Twelve worker processes, each with its own connection to one PostgreSQL store, share a
// backlog of distinct IPs larger than the run can drain: in every sliding second the API
// gets at most 5 calls, none is answered 429, the calls never stop, and at least 4.5 a
// second are made.
//
// It runs when RELAY_TEST_GEO_WORKERS=1, without the race detector: it measures a
// machine's capacity as much as relay. Twelve processes beside the Temporal server and the
// simulator overload two cores, and requests reach the simulator hundreds of milliseconds
// after the limiter let them go, which no client-side limiter can answer for: on an Intel
// Xeon it passed (4.63 calls/s, never over 5), on an AMD EPYC of the same size it fails
// with relay before and after issue 15 alike (4.3 calls/s, 8 in the busiest second).
// RELIABILITY.md keeps the numbers; the 3- and 5-worker rate tests stay in the suite.
func TestTwelveWorkerProcessesShareTheGeoRate(t *testing.T) {
	testenv.EndToEnd(t)
	if os.Getenv(geoWorkersEnv) == "" {
		t.Skip("a capacity run: set " + geoWorkersEnv + "=1 (and RELAY_TEST_POSTGRES_URL) to run it; see RELIABILITY.md " +
			"(" + geoWorkersEnv + "=1 go test -count=1 -run TestTwelveWorkerProcessesShareTheGeoRate ./cmd/relay)")
	}
	if raceDetector {
		t.Skip("runs without -race: .ci/run runs it alone after the race-detector suite " +
			"(go test -count=1 -run TestTwelveWorkerProcessesShareTheGeoRate ./cmd/relay)")
	}
	run := 2 * time.Minute
	if v := os.Getenv(geoWorkersForEnv); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err, geoWorkersForEnv)
		run = d
	}
	env := relaytest.Start(t, relaytest.WithoutWorker(), relaytest.WithConfig(func(c *config.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		c.GeoIP.SubmitRate = 1e6
		c.DatabaseURL = storetest.PostgresURL(t)
	}))
	for range 12 {
		startWorkerProcess(t, env)
	}

	// More distinct IPs than the run can look up at 5 a second.
	backlog := int(5*run.Seconds()) + 200
	ips := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range ips {
				req, err := http.NewRequest(http.MethodPost, env.BaseURL+"/event/submit/", strings.NewReader(`{"name":"backlog"}`))
				require.NoError(t, err)
				req.Header.Set("X-Forwarded-For", fmt.Sprintf("13.%d.%d.1", i/250, i%250))
				resp, err := env.HTTP.Do(req)
				require.NoError(t, err)
				resp.Body.Close()
				require.Equal(t, http.StatusAccepted, resp.StatusCode)
			}
		})
	}
	start := time.Now()
	for i := range backlog {
		ips <- i
	}
	close(ips)
	wg.Wait()
	t.Logf("%d events from distinct IPs accepted in %s; loading the API for %s", backlog, time.Since(start).Round(time.Millisecond), run)
	time.Sleep(run - time.Since(start))

	calls := env.Sims.Sim(sim.GeoIP).Calls()
	require.NotEmpty(t, calls)
	busiest := sim.MaxCallsPerWindow(calls, time.Second)
	var tooMany int
	var at []time.Time
	for _, c := range calls {
		if c.Status == http.StatusTooManyRequests {
			tooMany++
		}
		at = append(at, c.At)
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	var longestGap time.Duration
	for i := 1; i < len(at); i++ {
		longestGap = max(longestGap, at[i].Sub(at[i-1]))
	}
	// The rate once the workers are warm: from the tenth second to the end of the run.
	from, to := start.Add(10*time.Second), start.Add(run)
	inWindow := 0
	for _, c := range at {
		if !c.Before(from) && c.Before(to) {
			inWindow++
		}
	}
	perSecond := float64(inWindow) / to.Sub(from).Seconds()
	t.Logf("%d calls in %s: %.2f calls/s after the first 10 s, busiest sliding second %d, %d answered 429, longest gap %s",
		len(calls), run, perSecond, busiest, tooMany, longestGap.Round(time.Millisecond))
	assert.LessOrEqual(t, busiest, 5, "calls in the busiest sliding second")
	assert.Zero(t, tooMany, "answers 429")
	assert.Less(t, longestGap, 2*time.Second, "the calls never stop while a backlog waits")
	assert.GreaterOrEqual(t, perSecond, 4.5, "calls per second used")
}
