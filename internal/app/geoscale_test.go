package app_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"relay/internal/relaytest"
	"relay/internal/sim"
	"relay/internal/testenv"
	"relay/workflows"
)

// geoOutage is how long the outage tests keep Temporal or PostgreSQL away (issue 13).
const geoOutage = 3 * time.Minute

// geoRecovery is how soon after an outage ends every accepted event must be located: a
// failed dispatch is tried again within 30 s, a lookup's backoff is at most a minute,
// and the backlog of distinct IPs drains at the API's rate. README.md states it.
const geoRecovery = 2 * time.Minute

// submitMany submits one event from each IP, all at once, and returns the task ids.
func submitMany(t *testing.T, env *relaytest.Env, ips []string) []string {
	t.Helper()
	ids := make([]string, len(ips))
	var wg sync.WaitGroup
	for i, ip := range ips {
		wg.Go(func() { ids[i] = submit(t, env, ip, fmt.Sprintf(`{"name":"event %d"}`, i)) })
	}
	wg.Wait()
	return ids
}

// ipsOf is n events' client IPs spread over distinct public addresses 9.<net>.<k>.1,
// `per` events per address.
func ipsOf(net, n, per int) []string {
	ips := make([]string, n)
	for i := range ips {
		ips[i] = fmt.Sprintf("9.%d.%d.1", net, i/per)
	}
	return ips
}

// geolocateSignals counts what the dispatchers asked of Temporal: every signal-with-start
// leaves one WorkflowExecutionSignaled event in its run's history (a start without one
// does not happen), so the sum over every Geolocate run is the starts and signals relay
// issued that reached Temporal.
func geolocateSignals(t *testing.T, env *relaytest.Env) (signals, runs int) {
	t.Helper()
	ctx := t.Context()
	var token []byte
	for {
		page, err := env.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("WorkflowType = '%s'", workflows.GeolocateWorkflowType), NextPageToken: token,
		})
		require.NoError(t, err)
		for _, ex := range page.Executions {
			runs++
			it := env.Client.GetWorkflowHistory(ctx, ex.Execution.WorkflowId, ex.Execution.RunId, false,
				enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			for it.HasNext() {
				ev, err := it.Next()
				require.NoError(t, err)
				if ev.EventType == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED {
					signals++
				}
			}
		}
		if token = page.NextPageToken; len(token) == 0 {
			return signals, runs
		}
	}
}

// Five workers share one backlog, and Temporal goes away for three minutes in the middle
// of it. Every event accepted before, during and after the outage ends located within
// geoRecovery of Temporal's return, none unlocatable; the dispatchers issue at most 1.2
// starts or signals per accepted event, the drain after the outage included; the API is
// asked once per distinct IP and never over its rate.
func TestGeolocationOutlastsATemporalOutageWithFiveWorkers(t *testing.T) {
	testenv.EndToEnd(t)
	t.Parallel()
	env := relaytest.Start(t, relaytest.OnDisk(), relaytest.WithConfig(faultTolerantConfig))
	startWorkers(t, env, 4)

	// 40 distinct IPs, 3 events each: about 9 s of lookups at the API's rate.
	ids := submitMany(t, env, ipsOf(1, 120, 3))
	time.Sleep(2 * time.Second)
	addr := env.Temporal.FrontendAddr()
	require.NoError(t, env.Temporal.Stop())
	down := time.Now()
	// During: new IPs, and IPs of the backlog that may or may not be cached yet.
	ids = append(ids, submitMany(t, env, ipsOf(2, 60, 2))...)
	ids = append(ids, submitMany(t, env, ipsOf(1, 30, 1))...)
	time.Sleep(geoOutage - time.Since(down))
	restartTemporal(t, env, addr)
	recovered := time.Now()
	t.Logf("Temporal was away %s", recovered.Sub(down).Round(time.Second))
	ids = append(ids, submitMany(t, env, ipsOf(3, 60, 3))...)

	views := waitLocated(t, env, ids, geoRecovery)
	t.Logf("%d events located %s after Temporal came back", len(ids), time.Since(recovered).Round(time.Second))
	for id, v := range views {
		require.Equal(t, "located", v.State, "event %s from %s", id, v.IP)
	}
	signals, runs := geolocateSignals(t, env)
	perEvent := float64(signals) / float64(len(ids))
	t.Logf("%d signal-with-starts (%d runs) for %d events: %.2f per event", signals, runs, len(ids), perEvent)
	assert.LessOrEqual(t, perEvent, 1.2, "starts or signals per accepted event")
	calls := env.Sims.Sim(sim.GeoIP).Calls()
	assert.Len(t, calls, 40+30+20, "one call per distinct IP")
	assert.LessOrEqual(t, sim.MaxCallsPerWindow(calls, time.Second), 5)
}

// The geolocation API starts refusing relay (a revoked key): events stay pending rather
// than unlocatable, /metrics and the status page say why, and once the key works again
// every event is located with no manual step.
func TestGeolocationWaitsOutARevokedKey(t *testing.T) {
	env := geoEnv(t, "geoip:credentials=revoked,rate-limit=5")
	ids := submitMany(t, env, ipsOf(4, 6, 2))
	geo := env.Sims.Sim(sim.GeoIP)
	testenv.WaitFor(t, time.Minute, func() error {
		for _, c := range geo.Calls() {
			if c.Status == http.StatusUnauthorized {
				return nil
			}
		}
		return testenv.Waitf("no call answered 401 yet (%d calls)", len(geo.Calls()))
	})
	time.Sleep(5 * time.Second) // a few retries
	for _, id := range ids {
		assert.Equal(t, "pending", getEventView(t, env, id).State, "a refused key says nothing about the event")
	}
	_, metrics := env.Do(t, http.MethodGet, "/metrics", nil)
	assert.Contains(t, string(metrics), `relay_upstream_requests_total{api="geoip",status="401"}`)
	assert.Regexp(t, `relay_geolocate_pending_events [1-9]`, string(metrics))
	_, page := env.Do(t, http.MethodGet, "/", nil)
	assert.Contains(t, string(page), "401", "the status page shows why events wait")

	geo.SetKnobs(func() sim.Knobs { k := geo.Knobs(); k.Credentials = ""; return k }())
	fixed := time.Now()
	for id, v := range waitLocated(t, env, ids, 2*time.Minute) {
		assert.Equal(t, "located", v.State, id)
	}
	t.Logf("located %s after the key worked again", time.Since(fixed).Round(time.Second))
}

// A lookup that ends without settling its events (an operator terminates it) leaves them
// pending; when their lease runs out the dispatcher finds no lookup running and starts
// another, which locates them: no manual step.
func TestATerminatedLookupIsDrivenAgain(t *testing.T) {
	testenv.EndToEnd(t)
	t.Parallel()
	env := geoEnv(t, "geoip:latency=4s")
	ids := submitMany(t, env, []string{"9.7.0.1"}) // one event: nothing but its lease brings it back
	id := workflows.GeolocateWorkflowID([]byte(env.Config.WorkflowIDKey), "9.7.0.1")
	testenv.WaitFor(t, 30*time.Second, func() error {
		if _, err := env.Client.DescribeWorkflowExecution(t.Context(), id, ""); err != nil {
			return testenv.Waitf("no lookup yet: %v", err)
		}
		return nil
	})
	require.NoError(t, env.Client.TerminateWorkflow(t.Context(), id, "", "test: a lookup that ends without an outcome"))
	terminated := time.Now()
	for _, e := range ids {
		assert.Equal(t, "pending", getEventView(t, env, e).State)
	}
	for e, v := range waitLocated(t, env, ids, 2*time.Minute) {
		assert.Equal(t, "located", v.State, e)
	}
	// Either a new lookup located them, or the dispatcher found the answer the terminated
	// run's call had already cached.
	_, runs := geolocateSignals(t, env)
	t.Logf("located %s after the lookup was terminated (%d Geolocate runs)", time.Since(terminated).Round(time.Second), runs)
	assert.LessOrEqual(t, len(env.Sims.Sim(sim.GeoIP).Calls()), 2, "the cut-off call and, at most, one more")
}
