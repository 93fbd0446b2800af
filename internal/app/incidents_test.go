package app_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"relay/internal/config"
	"relay/internal/relaytest"
	"relay/internal/sim"
	"relay/internal/testenv"
	"relay/workflows"
)

type priorityGroup struct {
	Count     int               `json:"count"`
	Incidents []json.RawMessage `json:"incidents"`
}

// waitSnapshot polls GET /incidents until a snapshot is served.
func waitSnapshot(t *testing.T, env *relaytest.Env) *http.Response {
	t.Helper()
	var resp *http.Response
	testenv.WaitFor(t, 90*time.Second, func() error {
		var body []byte
		resp, body = env.Do(t, http.MethodGet, "/incidents", nil)
		if resp.StatusCode == http.StatusOK {
			return nil
		}
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "GET /incidents before the first snapshot: %s", body)
		return testenv.Waitf("no incident snapshot yet: GET /incidents answers %d", resp.StatusCode)
	})
	return resp
}

func incidentsAPI(t *testing.T, env *relaytest.Env) *sim.IncidentsAPI {
	t.Helper()
	api, ok := env.Sims.Sim(sim.Incidents).Routes().(*sim.IncidentsAPI)
	require.True(t, ok)
	return api
}

// With 30% of the incidents API's calls failing, the refresh triggered at start still
// builds the snapshot, and it groups exactly as the simulator's data means.
func TestIncidentsSnapshotGroupsWhatTheUpstreamMeans(t *testing.T) {
	env := relaytest.Start(t, relaytest.WithConfig(func(c *config.Config) { c.SimKnobs = "incidents:failure-rate=0.3" }))
	waitSnapshot(t, env)
	resp, body := env.Do(t, http.MethodGet, "/incidents", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)

	var got map[string]map[string]priorityGroup
	require.NoError(t, json.Unmarshal(body, &got))
	truth := incidentsAPI(t, env).Truth()
	require.Len(t, got, len(truth.ByEmployee))
	for emp, byPriority := range truth.ByEmployee {
		require.Contains(t, got, emp)
		require.Len(t, got[emp], 4, "all four priorities for %s", emp)
		for _, p := range []string{"low", "medium", "high", "critical"} {
			g := got[emp][p]
			assert.Equal(t, byPriority[p], g.Count, "%s %s", emp, p)
			assert.Len(t, g.Incidents, g.Count)
			var last float64
			for _, raw := range g.Incidents {
				var inc struct {
					Type      string  `json:"type"`
					Priority  string  `json:"priority"`
					Timestamp float64 `json:"timestamp"`
				}
				require.NoError(t, json.Unmarshal(raw, &inc))
				assert.NotEmpty(t, inc.Type)
				assert.Equal(t, p, inc.Priority)
				assert.GreaterOrEqual(t, inc.Timestamp, last, "sorted by timestamp")
				last = inc.Timestamp
			}
		}
	}
	assert.NotEmpty(t, resp.Header.Get("ETag"))
	assert.NotEmpty(t, resp.Header.Get("Last-Modified"))
	assert.NotEmpty(t, resp.Header.Get("X-Snapshot-Age"))

	// The run behind it is a small summary in history.
	var res workflows.AggregateIncidentsResult
	sched := env.Client.ScheduleClient().GetHandle(context.Background(), workflows.IncidentsScheduleID)
	desc, err := sched.Describe(context.Background())
	require.NoError(t, err)
	require.Len(t, desc.Schedule.Spec.Intervals, 1)
	assert.Equal(t, 5*time.Minute, desc.Schedule.Spec.Intervals[0].Every)
	assert.Equal(t, enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, desc.Schedule.Policy.Overlap)
	require.NotEmpty(t, desc.Info.RecentActions, "the schedule was triggered at start")
	run := desc.Info.RecentActions[0].StartWorkflowResult
	require.NoError(t, env.Client.GetWorkflow(context.Background(), run.WorkflowID, run.FirstExecutionRunID).Get(context.Background(), &res))
	assert.Equal(t, truth.Unattributed, res.Summary.Unattributed)
	assert.Equal(t, len(truth.ByEmployee), res.Summary.Employees)
}

func TestIncidentsETagGzipAndNotModified(t *testing.T) {
	env := relaytest.Start(t)
	resp := waitSnapshot(t, env)
	etag := resp.Header.Get("ETag")
	_, plain := env.Do(t, http.MethodGet, "/incidents", nil)

	resp, _ = env.Do(t, http.MethodGet, "/incidents", nil, "If-None-Match", etag)
	assert.Equal(t, http.StatusNotModified, resp.StatusCode)
	resp, _ = env.Do(t, http.MethodGet, "/incidents", nil, "If-None-Match", `"something-else"`)
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	// A client that asks for gzip gets the pre-compressed bytes (Go's client would
	// decompress on its own only when it added the header itself).
	resp, zipped := env.Do(t, http.MethodGet, "/incidents", nil, "Accept-Encoding", "gzip")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "gzip", resp.Header.Get("Content-Encoding"))
	assert.Less(t, len(zipped), len(plain))
	zr, err := gzip.NewReader(bytes.NewReader(zipped))
	require.NoError(t, err)
	unzipped, err := io.ReadAll(zr)
	require.NoError(t, err)
	assert.Equal(t, plain, unzipped)

	resp, same := env.Do(t, http.MethodGet, "/incidents", nil, "Accept-Encoding", "gzip;q=0, identity")
	assert.Empty(t, resp.Header.Get("Content-Encoding"))
	assert.Equal(t, plain, same)
}

// While a refresh fails, GET /incidents keeps serving the last good snapshot.
func TestIncidentsKeepTheLastGoodSnapshotWhileARefreshFails(t *testing.T) {
	env := relaytest.Start(t)
	resp := waitSnapshot(t, env)
	etag, modified := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")

	up := env.Sims.Sim(sim.Incidents)
	k := up.Knobs()
	require.NoError(t, k.Apply("credentials=relay:revoked"))
	up.SetKnobs(k) // relay's password no longer works: 401, not retried

	resp, b := env.Do(t, http.MethodPost, "/incidents/refresh", strings.NewReader(""))
	require.Equal(t, http.StatusAccepted, resp.StatusCode, string(b))
	var started struct {
		WorkflowID string `json:"workflow_id"`
		RunID      string `json:"run_id"`
	}
	require.NoError(t, json.Unmarshal(b, &started))
	assert.True(t, strings.HasPrefix(started.WorkflowID, "incidents/manual-"), started.WorkflowID)
	err := env.Client.GetWorkflow(context.Background(), started.WorkflowID, started.RunID).Get(context.Background(), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "401")

	time.Sleep(time.Second) // a server would have noticed a new snapshot by now
	resp, body := env.Do(t, http.MethodGet, "/incidents", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, etag, resp.Header.Get("ETag"))
	assert.Equal(t, modified, resp.Header.Get("Last-Modified"))
	assert.NotEmpty(t, body)

	_, ready := env.Do(t, http.MethodGet, "/readyz", nil)
	assert.Contains(t, string(ready), `"incidents_snapshot_age_seconds":`)
	_, metrics := env.Do(t, http.MethodGet, "/metrics", nil)
	assert.Contains(t, string(metrics), "relay_incidents_snapshot_age_seconds ")
}

// A manual refresh is served within about a second of being published.
func TestIncidentsRefreshIsServedAtOnce(t *testing.T) {
	env := relaytest.Start(t)
	resp := waitSnapshot(t, env)
	first := resp.Header.Get("Last-Modified")
	time.Sleep(1100 * time.Millisecond) // Last-Modified has whole seconds

	resp, b := env.Do(t, http.MethodPost, "/incidents/refresh", nil)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, string(b))
	var started struct {
		WorkflowID string `json:"workflow_id"`
		RunID      string `json:"run_id"`
	}
	require.NoError(t, json.Unmarshal(b, &started))
	require.NoError(t, env.Client.GetWorkflow(context.Background(), started.WorkflowID, started.RunID).Get(context.Background(), nil))
	testenv.WaitFor(t, 3*time.Second, func() error {
		resp, _ = env.Do(t, http.MethodGet, "/incidents", nil)
		if modified := resp.Header.Get("Last-Modified"); modified == first {
			return testenv.Waitf("new snapshot not served: GET /incidents still has Last-Modified %s", modified)
		}
		return nil
	})
}

func TestIncidentsAre503BeforeTheFirstSnapshot(t *testing.T) {
	env := relaytest.Start(t, relaytest.WithConfig(func(c *config.Config) { c.SimKnobs = "incidents:latency=3s" }))
	resp, body := env.Do(t, http.MethodGet, "/incidents", nil)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "5", resp.Header.Get("Retry-After"))
	assert.Contains(t, string(body), `"code":"unavailable"`)
}
