package app_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"relay/internal/config"
	"relay/internal/histories"
	"relay/internal/incidents"
	"relay/internal/payloadcodec"
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
	var refreshed workflows.RefreshIncidentsResult
	require.NoError(t, env.Client.GetWorkflow(context.Background(), run.WorkflowID, run.FirstExecutionRunID).Get(context.Background(), &refreshed))
	assert.Equal(t, workflows.IncidentsRefreshWorkflowID, refreshed.WorkflowID, "the schedule's run refreshed under the one id")
	require.NotNil(t, refreshed.Result)
	res = *refreshed.Result
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
	assert.Equal(t, workflows.IncidentsRefreshWorkflowID, started.WorkflowID)
	err := env.Client.GetWorkflow(context.Background(), started.WorkflowID, started.RunID).Get(context.Background(), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "401")
	// The failed run dropped what it staged.
	n, err := env.Store.DeleteBlobs(context.Background(), "incidents/")
	require.NoError(t, err)
	assert.Zero(t, n, "staged incident lists left behind by the failed refresh")
	recordHistory(t, env, started.WorkflowID, started.RunID, "AggregateIncidents-bad-credentials.json")

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

// recordHistory saves a run's history into workflows/testdata when RELAY_RECORD_HISTORIES
// is set (and replays it there at once), for the runs only these tests can make: a refresh
// joined by requests, a schedule tick that finds a refresh running, a refresh that fails.
//
//	RELAY_RECORD_HISTORIES=1 go test -count=1 -run 'TestIncident|TestRefresh' ./internal/app/
func recordHistory(t *testing.T, env *relaytest.Env, workflowID, runID, file string) {
	t.Helper()
	if os.Getenv("RELAY_RECORD_HISTORIES") == "" {
		return
	}
	path := filepath.Join("..", "..", "workflows", "testdata", file)
	require.NoError(t, histories.Record(context.Background(), env.Client, workflowID, runID, path))
	require.NoError(t, histories.Replay(payloadcodec.Recording(), path))
	t.Logf("recorded %s", path)
}

type refreshAnswer struct {
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	Refresh    string `json:"refresh"`
}

// waitScheduledRefresh waits for the refresh the worker triggered at start to end, so
// that a test's own refresh is the only one.
func waitScheduledRefresh(t *testing.T, env *relaytest.Env) {
	t.Helper()
	waitSnapshot(t, env)
	desc, err := env.Client.ScheduleClient().GetHandle(t.Context(), workflows.IncidentsScheduleID).Describe(t.Context())
	require.NoError(t, err)
	require.NotEmpty(t, desc.Info.RecentActions)
	run := desc.Info.RecentActions[0].StartWorkflowResult
	require.NoError(t, env.Client.GetWorkflow(t.Context(), run.WorkflowID, run.FirstExecutionRunID).Get(t.Context(), nil))
}

// Five requests at once make one refresh: one answer says started, four say joined, all
// name the same run, and the incidents API sees one refresh's calls (identities and the
// seven types: 8). Before the one-id refresh, the same five requests made five runs and
// 40 calls.
func TestRefreshFiveConcurrentRequestsMakeOneRun(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	env := relaytest.Start(t, relaytest.WithConfig(func(c *config.Config) { c.SimKnobs = "incidents:latency=500ms" }))
	waitScheduledRefresh(t, env)
	up := env.Sims.Sim(sim.Incidents)
	up.ResetCalls()

	answers := make([]refreshAnswer, 5)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() {
			resp, b := env.Do(t, http.MethodPost, "/incidents/refresh", nil)
			assert.Equal(t, http.StatusAccepted, resp.StatusCode, string(b))
			assert.NoError(t, json.Unmarshal(b, &answers[i]))
		})
	}
	wg.Wait()
	outcomes := map[string]int{}
	for _, a := range answers {
		outcomes[a.Refresh]++
		assert.Equal(t, workflows.IncidentsRefreshWorkflowID, a.WorkflowID)
		assert.Equal(t, answers[0].RunID, a.RunID, "every request names the one run")
	}
	assert.Equal(t, map[string]int{"started": 1, "joined": 4}, outcomes)

	var res workflows.AggregateIncidentsResult
	require.NoError(t, env.Client.GetWorkflow(t.Context(), workflows.IncidentsRefreshWorkflowID, answers[0].RunID).Get(t.Context(), &res))
	assert.False(t, res.Superseded)
	assert.Greater(t, res.GzipBytes, 0, "the worker stored the snapshot compressed")
	assert.Equal(t, 1+len(incidents.Types), len(up.Calls()), "one refresh's calls: %v", up.Calls())
	recordHistory(t, env, workflows.IncidentsRefreshWorkflowID, answers[0].RunID, "AggregateIncidents-refresh.json")

	// Served from the worker's gzip as it is, and decompressed for a client without gzip.
	snap, err := env.Store.Snapshot(t.Context(), res.SnapshotID)
	require.NoError(t, err)
	var resp *http.Response
	var zipped []byte
	testenv.WaitFor(t, 5*time.Second, func() error {
		resp, zipped = env.Do(t, http.MethodGet, "/incidents", nil, "Accept-Encoding", "gzip")
		if resp.Header.Get("ETag") != snap.ETag {
			return testenv.Waitf("snapshot %d not served yet", res.SnapshotID)
		}
		return nil
	})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, snap.Gzip, zipped, "the stored gzip, byte for byte")
	assert.Equal(t, snap.ETag, resp.Header.Get("ETag"))
	resp, plain := env.Do(t, http.MethodGet, "/incidents", nil, "Accept-Encoding", "identity")
	assert.Empty(t, resp.Header.Get("Content-Encoding"))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Len(t, plain, snap.Bytes)
}

// A schedule tick while a requested refresh runs starts no second one: the schedule's
// RefreshIncidents finds the refresh running and says it joined.
func TestRefreshScheduleTickJoinsARequestedRefresh(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	env := relaytest.Start(t, relaytest.WithConfig(func(c *config.Config) { c.SimKnobs = "incidents:latency=2s" }))
	waitScheduledRefresh(t, env)
	up := env.Sims.Sim(sim.Incidents)
	up.ResetCalls()

	resp, b := env.Do(t, http.MethodPost, "/incidents/refresh", nil)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, string(b))
	var started refreshAnswer
	require.NoError(t, json.Unmarshal(b, &started))
	require.Equal(t, "started", started.Refresh)

	sched := env.Client.ScheduleClient().GetHandle(t.Context(), workflows.IncidentsScheduleID)
	desc, err := sched.Describe(t.Context())
	require.NoError(t, err)
	before := len(desc.Info.RecentActions)
	require.NoError(t, sched.Trigger(t.Context(), client.ScheduleTriggerOptions{Overlap: workflows.IncidentsScheduleOverlap}))
	var tick client.ScheduleWorkflowExecution
	testenv.WaitFor(t, 10*time.Second, func() error {
		desc, err := sched.Describe(t.Context())
		require.NoError(t, err)
		if len(desc.Info.RecentActions) == before {
			return testenv.Waitf("the schedule has not run the trigger yet")
		}
		tick = *desc.Info.RecentActions[len(desc.Info.RecentActions)-1].StartWorkflowResult
		return nil
	})
	var joined workflows.RefreshIncidentsResult
	require.NoError(t, env.Client.GetWorkflow(t.Context(), tick.WorkflowID, tick.FirstExecutionRunID).Get(t.Context(), &joined))
	assert.True(t, joined.Joined, "%+v", joined)
	recordHistory(t, env, tick.WorkflowID, tick.FirstExecutionRunID, "RefreshIncidents-joined.json")

	require.NoError(t, env.Client.GetWorkflow(t.Context(), started.WorkflowID, started.RunID).Get(t.Context(), nil))
	assert.Equal(t, 1+len(incidents.Types), len(up.Calls()), "one refresh's calls")
}

// The scheduled refresh's run, and the sweep schedule's: recorded for the replay test.
func TestIncidentsScheduledRefreshAndSweep(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	env := relaytest.Start(t)
	waitScheduledRefresh(t, env)
	desc, err := env.Client.ScheduleClient().GetHandle(t.Context(), workflows.IncidentsScheduleID).Describe(t.Context())
	require.NoError(t, err)
	run := desc.Info.RecentActions[0].StartWorkflowResult
	recordHistory(t, env, run.WorkflowID, run.FirstExecutionRunID, "RefreshIncidents-scheduled.json")

	// A blob staged now stays (that older ones go is internal/store's TestDeleteBlobsOlderThan).
	require.NoError(t, env.Store.PutBlob(t.Context(), "incidents/live-run/denial", []byte("[]")))
	sweep := env.Client.ScheduleClient().GetHandle(t.Context(), workflows.StagedBlobsSweepScheduleID)
	sd, err := sweep.Describe(t.Context())
	require.NoError(t, err)
	require.Len(t, sd.Schedule.Spec.Intervals, 1)
	assert.Equal(t, workflows.StagedBlobsSweepInterval, sd.Schedule.Spec.Intervals[0].Every)
	require.NoError(t, sweep.Trigger(t.Context(), client.ScheduleTriggerOptions{}))
	var swept client.ScheduleWorkflowExecution
	testenv.WaitFor(t, 10*time.Second, func() error {
		sd, err := sweep.Describe(t.Context())
		require.NoError(t, err)
		if len(sd.Info.RecentActions) == 0 {
			return testenv.Waitf("the sweep has not run")
		}
		swept = *sd.Info.RecentActions[0].StartWorkflowResult
		return nil
	})
	var res workflows.SweepStagedBlobsResult
	require.NoError(t, env.Client.GetWorkflow(t.Context(), swept.WorkflowID, swept.FirstExecutionRunID).Get(t.Context(), &res))
	assert.Zero(t, res.Deleted)
	_, err = env.Store.GetBlob(t.Context(), "incidents/live-run/denial")
	assert.NoError(t, err)
	recordHistory(t, env, swept.WorkflowID, swept.FirstExecutionRunID, "SweepStagedBlobs-basic.json")
}
