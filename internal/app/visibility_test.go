package app_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"relay/internal/payloadcodec"
	"relay/internal/sim"
	"relay/internal/testenv"
	"relay/workflows"
)

// Every job's runs are found by relay's search attributes, with the queries the README
// shows: by job, outcome, site, event and count. Each ended run has its counts (or its
// failure) in its memo and says in words what it does.
func TestEveryJobIsFoundByItsSearchAttributes(t *testing.T) {
	env := geoEnv(t, "")
	ctx := t.Context()
	site := env.Config.KF.SiteID
	waitSnapshot(t, env)
	startSync(t, env, site, "")
	startSync(t, env, "atlantis", "") // the API's 404: a failed sync
	require.Equal(t, "completed", waitSync(t, env, site).State)
	require.Equal(t, "failed", waitSync(t, env, "atlantis").State)
	resp, _, body := getEvent(t, env, "/events-with-subscriptions/"+sim.C42EventTeamSync)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	waitLocated(t, env, []string{submit(t, env, "9.9.9.9", `{"name":"found"}`)}, time.Minute)

	sa := converter.GetDefaultDataConverter() // search attributes are never encrypted
	dc := payloadcodec.DataConverter(payloadcodec.Recording())
	list := func(query string) []*workflowpb.WorkflowExecutionInfo {
		var got []*workflowpb.WorkflowExecutionInfo
		testenv.WaitFor(t, 30*time.Second, func() error {
			resp, err := env.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
			if err != nil {
				return testenv.Waitf("%s: %v", query, err)
			}
			if got = resp.GetExecutions(); len(got) == 0 {
				return testenv.Waitf("%s: no run yet", query)
			}
			return nil
		})
		return got
	}
	attr := func(e *workflowpb.WorkflowExecutionInfo, name string, v any) {
		t.Helper()
		p, ok := e.GetSearchAttributes().GetIndexedFields()[name]
		require.True(t, ok, "%s has %s", e.GetExecution().GetWorkflowId(), name)
		require.NoError(t, sa.FromPayload(p, v))
	}
	memo := func(e *workflowpb.WorkflowExecutionInfo, field string, v any) {
		t.Helper()
		p, ok := e.GetMemo().GetFields()[field]
		require.True(t, ok, "%s has memo %s", e.GetExecution().GetWorkflowId(), field)
		require.NoError(t, dc.FromPayload(p, v))
	}
	summary := func(id string) string {
		t.Helper()
		d, err := env.Client.DescribeWorkflowExecution(ctx, id, "")
		require.NoError(t, err)
		var s string
		require.NoError(t, dc.FromPayload(d.GetExecutionConfig().GetUserMetadata().GetSummary(), &s))
		return s
	}

	// Incidents: the refresh published a snapshot of this many employees.
	runs := list(fmt.Sprintf("RelayJob = '%s' AND RelayOutcome = '%s' AND RelayCount > 0", workflows.JobIncidents, workflows.OutcomePublished))
	ids := map[string]bool{}
	for _, e := range runs {
		ids[e.GetExecution().GetWorkflowId()] = true
	}
	assert.True(t, ids[workflows.IncidentsRefreshWorkflowID], "the refresh is listed: %v", ids)
	var employees int64
	var refresh workflows.AggregateIncidentsResult
	for _, e := range runs {
		if e.GetExecution().GetWorkflowId() == workflows.IncidentsRefreshWorkflowID {
			attr(e, workflows.CountAttribute.GetName(), &employees)
			memo(e, workflows.ResultMemo, &refresh)
		}
	}
	assert.Equal(t, int64(refresh.Summary.Employees), employees, "RelayCount is the employees published")
	assert.Positive(t, employees)
	assert.Contains(t, summary(workflows.IncidentsRefreshWorkflowID), "Rebuild the incident snapshot")

	// Outage sync: by site and outcome; the counts in the memo; the failure's type in the other's.
	runs = list(fmt.Sprintf("RelayJob = '%s' AND RelaySite = '%s' AND RelayOutcome = '%s'", workflows.JobOutageSync, site, workflows.OutcomeSynced))
	require.Len(t, runs, 1)
	var posted int64
	var synced workflows.SyncSiteOutagesResult
	attr(runs[0], workflows.CountAttribute.GetName(), &posted)
	memo(runs[0], workflows.ResultMemo, &synced)
	assert.Equal(t, int64(synced.Posted), posted)
	assert.Positive(t, posted)
	assert.Contains(t, summary(workflows.OutageSyncWorkflowID(site)), "Sync site "+site)
	runs = list(fmt.Sprintf("RelayJob = '%s' AND RelayOutcome = '%s'", workflows.JobOutageSync, workflows.OutcomeFailed))
	require.Len(t, runs, 1)
	assert.Equal(t, workflows.OutageSyncWorkflowID("atlantis"), runs[0].GetExecution().GetWorkflowId())
	var failure workflows.Failure
	memo(runs[0], workflows.FailureMemo, &failure)
	assert.Equal(t, "UpstreamNotFound", failure.Type)

	// Geolocation: located, one event settled; the memo holds no IP.
	runs = list(fmt.Sprintf("RelayJob = '%s' AND RelayOutcome = '%s'", workflows.JobGeolocation, workflows.OutcomeLocated))
	require.Len(t, runs, 1)
	var settled int64
	attr(runs[0], workflows.CountAttribute.GetName(), &settled)
	assert.Equal(t, int64(1), settled)
	for field, p := range runs[0].GetMemo().GetFields() {
		assert.NotContains(t, string(p.GetData()), "9.9.9.9", "memo %s", field)
	}

	// Merge: found by its event while it answers from memory (no outcome yet).
	runs = list(fmt.Sprintf("RelayJob = '%s' AND RelayEventID = '%s' AND ExecutionStatus = 'Running'", workflows.JobMerge, sim.C42EventTeamSync))
	require.Len(t, runs, 1)
	assert.Contains(t, summary(workflows.EventSubscriptionsWorkflowID(sim.C42EventTeamSync)), "Merge calendar event "+sim.C42EventTeamSync)

	// Nothing of relay's is missing its job.
	resp2, err := env.Client.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{
		Query: "RelayJob IS NULL AND WorkflowType != 'temporal-sys-scheduler-workflow'"})
	require.NoError(t, err)
	assert.Zero(t, resp2.GetCount(), "runs without RelayJob")
}
