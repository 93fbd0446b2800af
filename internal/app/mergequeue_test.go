package app_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"relay/internal/app"
	"relay/internal/relaytest"
	"relay/internal/testenv"
	"relay/workflows"
)

// A backlog of other jobs' workflow tasks is never ahead of a merge a request waits on:
// with hundreds of runs waiting on relay's queue when the worker starts (as a burst of
// geolocation lookups leaves them), a merge asked at once has its workflow task taken
// before most of them. On one queue it would come after all of them (a task queue
// partition hands out its backlog in order).
func TestMergesDoNotWaitBehindABacklog(t *testing.T) {
	env := relaytest.Start(t, relaytest.WithoutWorker())
	ctx := t.Context()

	// The backlog: Ping runs on relay's queue, started while no worker polls it.
	const backlog = 400
	ids := make(chan string)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for id := range ids {
				_, err := env.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueue},
					workflows.PingWorkflowType, workflows.PingInput{Message: "backlog"})
				assert.NoError(t, err)
			}
		})
	}
	var pings []string
	for i := range backlog {
		id := workflows.PingWorkflowID(fmt.Sprintf("backlog-%d", i))
		pings = append(pings, id)
		ids <- id
	}
	close(ids)
	wg.Wait()

	// The worker starts; a merge is asked at once.
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	worker, err := app.Start(startCtx, env.Config, app.Worker, testenv.Logger(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = worker.Stop(context.Background()) })
	resp, _, body := getEvent(t, env, "/events-with-subscriptions/"+teamSync)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	mergeTask := firstTaskStarted(t, env, workflows.EventSubscriptionsWorkflowID(teamSync))

	// Most of the backlog's first workflow tasks were taken after the merge's.
	testenv.WaitFor(t, 2*time.Minute, func() error {
		for _, id := range pings {
			if err := env.Client.GetWorkflow(ctx, id, "").Get(ctx, nil); err != nil {
				return testenv.Waitf("ping %s: %v", id, err)
			}
		}
		return nil
	})
	after := 0
	for _, id := range pings {
		if firstTaskStarted(t, env, id).After(mergeTask) {
			after++
		}
	}
	t.Logf("%d of %d backlogged runs had their first workflow task taken after the merge's", after, backlog)
	assert.Greater(t, after, backlog/2, "the merge's workflow task was taken before most of the backlog")
}

// firstTaskStarted is when a worker took the run's first workflow task.
func firstTaskStarted(t *testing.T, env *relaytest.Env, workflowID string) time.Time {
	t.Helper()
	it := env.Client.GetWorkflowHistory(t.Context(), workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(t, err)
		if e.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED {
			return e.GetEventTime().AsTime()
		}
	}
	t.Fatalf("%s: no workflow task started", workflowID)
	return time.Time{}
}
