package app_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"relay/internal/config"
	"relay/internal/payloadcodec"
	"relay/internal/relaytest"
	"relay/internal/testenv"
	"relay/internal/timefmt"
	"relay/worker"
	"relay/workflows"
)

// KF_SITE_ID is synced on a schedule, outage-sync-<site>, every KF_SYNC_INTERVAL: each tick
// runs the site's one sync (outage-sync/<site>) and posts the site's outages; an interval
// change reaches the existing schedule, and 0 deletes it.
func TestOutageSyncScheduleSyncsTheDefaultSite(t *testing.T) {
	const site = "kingfisher"
	env := relaytest.Start(t, relaytest.WithConfig(func(c *config.Config) {
		c.KF.SiteID = site
		c.KF.SyncInterval = 2 * time.Second
	}))
	api := kfAPI(t, env)
	sc := env.Client.ScheduleClient()
	h := sc.GetHandle(t.Context(), workflows.OutageSyncScheduleID(site))

	// The worker ensures its schedules in the background.
	var desc *client.ScheduleDescription
	testenv.WaitFor(t, time.Minute, func() error {
		var err error
		if desc, err = h.Describe(t.Context()); err != nil {
			return testenv.Waitf("schedule %s: %v", workflows.OutageSyncScheduleID(site), err)
		}
		return nil
	})
	require.Len(t, desc.Schedule.Spec.Intervals, 1)
	assert.Equal(t, 2*time.Second, desc.Schedule.Spec.Intervals[0].Every)
	action, ok := desc.Schedule.Action.(*client.ScheduleWorkflowAction)
	require.True(t, ok, "a workflow action: %T", desc.Schedule.Action)
	assert.Equal(t, workflows.ScheduledSyncSiteOutagesWorkflowType, action.Workflow)

	// A tick syncs the site under its one id: its outages are posted, byte for byte.
	testenv.WaitFor(t, time.Minute, func() error {
		for _, p := range api.Posts() {
			if p.Site == site && p.Status == http.StatusOK {
				return nil
			}
		}
		return testenv.Waitf("no accepted POST for %s yet (%d posts)", site, len(api.Posts()))
	})
	st := waitSync(t, env, site)
	require.Equal(t, "completed", st.State, "error: %+v", st.Error)
	assert.Equal(t, workflows.OutageSyncWorkflowID(site), st.WorkflowID)
	for _, p := range api.Posts() {
		if p.Status == http.StatusOK {
			assert.Equal(t, string(api.Expected(site)), string(p.Body))
		}
	}
	d, err := env.Client.DescribeWorkflowExecution(t.Context(), st.WorkflowID, st.RunID)
	require.NoError(t, err)
	parent := d.GetWorkflowExecutionInfo().GetParentExecution().GetWorkflowId()
	assert.Contains(t, parent, workflows.OutageSyncScheduledWorkflowID(site), "started by the schedule's run")
	// Its cutoff is in the memo, where a request with another cutoff is told of it (409).
	var memoSince string
	require.NoError(t, payloadcodec.DataConverter(payloadcodec.Recording()).FromPayload(
		d.GetWorkflowExecutionInfo().GetMemo().GetFields()[workflows.OutageSyncSinceMemo], &memoSince))
	assert.Equal(t, timefmt.Millis(env.Config.KF.OutagesSince), memoSince)

	// The schedule syncs with KF_OUTAGES_SINCE, the cutoff a request without one gets, so
	// that such a request joins a scheduled sync (and one with another cutoff gets 409).
	since := timefmt.Millis(env.Config.KF.OutagesSince)
	require.Len(t, action.Args, 1)
	payload, ok := action.Args[0].(*commonpb.Payload)
	require.True(t, ok, "an encoded argument: %T", action.Args[0])
	var in workflows.SyncSiteOutagesInput
	require.NoError(t, payloadcodec.DataConverter(payloadcodec.Recording()).FromPayload(payload, &in))
	assert.Equal(t, workflows.SyncSiteOutagesInput{SiteID: site, Since: since}, in)

	// Another interval reaches the existing schedule; 0 deletes it, and again is no error.
	require.NoError(t, worker.EnsureOutageSyncSchedule(t.Context(), env.Client, site, since, time.Hour))
	desc, err = h.Describe(t.Context())
	require.NoError(t, err)
	assert.Equal(t, time.Hour, desc.Schedule.Spec.Intervals[0].Every)
	require.NoError(t, worker.EnsureOutageSyncSchedule(t.Context(), env.Client, site, since, 0))
	_, err = h.Describe(t.Context())
	var notFound *serviceerror.NotFound
	assert.True(t, errors.As(err, &notFound), "the schedule is gone: %v", err)
	require.NoError(t, worker.EnsureOutageSyncSchedule(t.Context(), env.Client, site, since, 0))
}
