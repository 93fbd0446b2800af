package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"relay/activities"
	"relay/internal/eventsubscriptions"
	"relay/workflows"
)

const eventID = "d6e66cb0ced8e46102bcfd93ceac51b0_14752373875438"

// mergeAPI is New over a fake Temporal whose merge of eventID answers merged.
func mergeAPI(t *testing.T, tc *fakeTemporal, ttl time.Duration) (http.Handler, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	return New(slog.New(slog.DiscardHandler), Config{EventCacheTTL: ttl}, Deps{Temporal: tc, Registry: reg}), reg
}

func merged(names ...string) eventsubscriptions.Merged {
	return eventsubscriptions.Merged{ID: eventID, Title: "Team sync", Names: names}
}

// answer is what the event's workflow answers: fetched for it (a miss), or from memory.
func answer(fresh time.Duration, fetched bool, names ...string) workflows.EventSubscriptionsAnswer {
	return workflows.EventSubscriptionsAnswer{Event: merged(names...), FreshFor: fresh, Fetched: fetched}
}

func getEvent(h http.Handler, id string) *httptest.ResponseRecorder {
	return serve(h, httptest.NewRequest(http.MethodGet, "/events-with-subscriptions/"+id, nil))
}

func assertCacheMetrics(t *testing.T, reg *prometheus.Registry, hits, misses, workflowHits float64) {
	t.Helper()
	for result, want := range map[string]float64{"hit": hits, "miss": misses} {
		m := findMetric(t, reg, "relay_cache_requests_total", map[string]string{"cache": "events", "result": result})
		require.NotNil(t, m, "relay_cache_requests_total{result=%q} is exported", result)
		assert.Equal(t, want, m.GetCounter().GetValue(), result)
	}
	m := findMetric(t, reg, "relay_cache_workflow_hits_total", nil)
	require.NotNil(t, m, "relay_cache_workflow_hits_total is exported")
	assert.Equal(t, workflowHits, m.GetCounter().GetValue(), "workflow hits")
}

func TestEventWithSubscriptionsMissThenHit(t *testing.T) {
	id := workflows.EventSubscriptionsWorkflowID(eventID)
	tc := &fakeTemporal{results: map[string]any{id: answer(time.Minute, true, "Bob", "Ella")}}
	h, reg := mergeAPI(t, tc, time.Minute)

	rec := getEvent(h, eventID)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.JSONEq(t, `{"id":"`+eventID+`","title":"Team sync","names":["Bob","Ella"]}`, rec.Body.String())
	assert.Equal(t, "MISS", rec.Header().Get("X-Cache"))
	assert.Equal(t, "max-age=60", rec.Header().Get("Cache-Control"))

	rec = getEvent(h, eventID+"/") // the trailing slash is the same event
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "HIT", rec.Header().Get("X-Cache"))
	assert.JSONEq(t, `{"id":"`+eventID+`","title":"Team sync","names":["Bob","Ella"]}`, rec.Body.String())

	starts := tc.started()
	require.Len(t, starts, 1, "a hit on this server's copy asks nothing")
	s := starts[0]
	require.NotNil(t, s.update, "asked by Update-with-Start")
	assert.Equal(t, id, s.opts.ID)
	assert.Equal(t, workflows.MergeEventSubscriptionsWorkflowType, s.workflow)
	assert.Equal(t, []any{workflows.MergeEventSubscriptionsInput{EventID: eventID, TTL: time.Minute}}, s.args,
		"the run lives for this server's TTL")
	assert.Equal(t, workflows.MergeTaskQueue, s.opts.TaskQueue)
	assert.Greater(t, s.opts.WorkflowRunTimeout, time.Minute+workflows.EventSubscriptionsFetchTimeout, "a backstop past the TTL")
	assert.Equal(t, enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING, s.opts.WorkflowIDConflictPolicy,
		"another server's run for the same event is asked, not duplicated")
	assert.Equal(t, enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE, s.opts.WorkflowIDReusePolicy, "a closed run's id starts a new run")
	assert.Equal(t, id, s.update.WorkflowID)
	assert.Equal(t, workflows.EventSubscriptionsUpdate, s.update.UpdateName)
	assert.Equal(t, client.WorkflowUpdateStageAccepted, s.update.WaitForStage)

	assertCacheMetrics(t, reg, 1, 1, 0)
}

// Another server's fetch, answered by the workflow from memory, is a hit: no upstream call
// was made for this request. This server keeps it for what the workflow says is left.
func TestEventWithSubscriptionsAnsweredByTheWorkflowFromMemoryIsAHit(t *testing.T) {
	tc := &fakeTemporal{results: map[string]any{workflows.EventSubscriptionsWorkflowID(eventID): answer(100*time.Second, false, "Bob")}}
	reg := prometheus.NewRegistry()
	cache := newEventCache(252*time.Second, 10, reg)
	now := time.Now()
	cache.now = func() time.Time { return now }
	r := ginRoute(http.MethodGet, "/events-with-subscriptions/:event_id", handleEventWithSubscriptions(slog.New(slog.DiscardHandler), tc, cache))

	rec := getEvent(r, eventID)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, "HIT", rec.Header().Get("X-Cache"))
	assert.Equal(t, "max-age=100", rec.Header().Get("Cache-Control"), "what the workflow says is left, not this server's TTL")
	assertCacheMetrics(t, reg, 1, 0, 1)

	now = now.Add(99 * time.Second)
	rec = getEvent(r, eventID)
	assert.Equal(t, "HIT", rec.Header().Get("X-Cache"))
	assert.Equal(t, "max-age=1", rec.Header().Get("Cache-Control"))
	assert.Len(t, tc.started(), 1, "kept by this server meanwhile")
	now = now.Add(time.Second)
	getEvent(r, eventID)
	assert.Len(t, tc.started(), 2, "expired when the workflow's answer did: asked again")
	assertCacheMetrics(t, reg, 3, 0, 2)
}

func TestEventWithSubscriptionsExpiresAfterWhatTheWorkflowSaid(t *testing.T) {
	tc := &fakeTemporal{results: map[string]any{workflows.EventSubscriptionsWorkflowID(eventID): answer(time.Minute, true, "Bob")}}
	logger := slog.New(slog.DiscardHandler)
	cache := newEventCache(time.Minute, 10, prometheus.NewRegistry())
	now := time.Now()
	cache.now = func() time.Time { return now }
	h := handleEventWithSubscriptions(logger, tc, cache)
	r := ginRoute(http.MethodGet, "/events-with-subscriptions/:event_id", h)

	assert.Equal(t, "MISS", getEvent(r, eventID).Header().Get("X-Cache"))
	now = now.Add(59 * time.Second)
	rec := getEvent(r, eventID)
	assert.Equal(t, "HIT", rec.Header().Get("X-Cache"))
	assert.Equal(t, "max-age=1", rec.Header().Get("Cache-Control"), "what is left of the TTL")
	now = now.Add(time.Second)
	assert.Equal(t, "MISS", getEvent(r, eventID).Header().Get("X-Cache"))
	assert.Len(t, tc.started(), 2)
	assert.Equal(t, cacheStats{Hits: 1, Misses: 2, Entries: 1, TTL: time.Minute}, cache.Stats())
}

// An answer already stale (a run answering as its TTL ends) is sent but not kept.
func TestEventWithSubscriptionsStaleAnswerIsNotKept(t *testing.T) {
	tc := &fakeTemporal{results: map[string]any{workflows.EventSubscriptionsWorkflowID(eventID): answer(0, false, "Bob")}}
	h, _ := mergeAPI(t, tc, time.Minute)
	for range 2 {
		rec := getEvent(h, eventID)
		require.Equal(t, http.StatusOK, rec.Code)
		assert.Equal(t, "max-age=0", rec.Header().Get("Cache-Control"))
	}
	assert.Len(t, tc.started(), 2)
}

func TestEventWithSubscriptionsConcurrentMissesShareOneAsk(t *testing.T) {
	release := make(chan struct{})
	tc := &fakeTemporal{}
	tc.update = func(client.StartWorkflowOptions, int) (client.WorkflowUpdateHandle, error) {
		<-release
		return fakeUpdateHandle{result: answer(time.Minute, true, "Bob")}, nil
	}
	h, reg := mergeAPI(t, tc, time.Minute)

	const n = 20
	var wg sync.WaitGroup
	recs := make([]*httptest.ResponseRecorder, n)
	for i := range n {
		wg.Go(func() { recs[i] = getEvent(h, eventID) })
	}
	time.Sleep(50 * time.Millisecond) // let them all reach the cache
	close(release)
	wg.Wait()
	for i, rec := range recs {
		assert.Equal(t, http.StatusOK, rec.Code, "request %d", i)
		assert.Equal(t, "MISS", rec.Header().Get("X-Cache"), "request %d joined the fetch", i)
	}
	assert.Len(t, tc.started(), 1, "one ask for every waiting request")
	assertCacheMetrics(t, reg, 0, n, 0)
}

// An ask that reaches a run as it ends (rejected by its validator, or aborted as it closes)
// is asked again, and reaches the next run.
func TestEventWithSubscriptionsAsksAgainWhenTheRunIsEnding(t *testing.T) {
	closing := fmt.Errorf("workflow update: %w", temporal.NewApplicationError("ending", workflows.ErrMergeClosing))
	aborted := fmt.Errorf("failed workflow update: %w", serviceerror.NewNotFound("workflow update was aborted by closing workflow"))
	t.Run("then answered", func(t *testing.T) {
		tc := &fakeTemporal{update: func(_ client.StartWorkflowOptions, n int) (client.WorkflowUpdateHandle, error) {
			switch n {
			case 1:
				return fakeUpdateHandle{err: closing}, nil
			case 2:
				return nil, aborted
			}
			return fakeUpdateHandle{result: answer(time.Minute, true, "Bob")}, nil
		}}
		h, _ := mergeAPI(t, tc, time.Minute)
		rec := getEvent(h, eventID)
		assert.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		assert.Equal(t, "MISS", rec.Header().Get("X-Cache"))
		assert.Len(t, tc.started(), 3)
	})
	t.Run("never answered", func(t *testing.T) {
		tc := &fakeTemporal{update: func(client.StartWorkflowOptions, int) (client.WorkflowUpdateHandle, error) {
			return fakeUpdateHandle{err: closing}, nil
		}}
		h, _ := mergeAPI(t, tc, time.Minute)
		rec := getEvent(h, eventID)
		assert.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
		assert.Equal(t, "5", rec.Header().Get("Retry-After"))
		assert.Len(t, tc.started(), mergeAttempts)
	})
}

// upstreamFailure is how a merge's activity failure reaches the handler: wrapped by the
// workflow, then by the client.
func upstreamFailure(typ, msg string) error {
	return fmt.Errorf("workflow execution error: %w",
		fmt.Errorf("fetch event: %w", temporal.NewNonRetryableApplicationError(msg, typ, nil)))
}

func TestEventWithSubscriptionsFailuresMapToGatewayErrorsAndAreNotCached(t *testing.T) {
	id := workflows.EventSubscriptionsWorkflowID(eventID)
	for _, tc := range []struct {
		name       string
		err        error
		status     int
		code       string
		retryAfter string
	}{
		{"event not found", upstreamFailure(activities.ErrUpstreamNotFound, "c42: 404"), 404, CodeNotFound, ""},
		{"credentials refused", upstreamFailure(activities.ErrUpstreamUnauthorized, "c42: 401"), 502, CodeBadGateway, ""},
		{"upstream down", upstreamFailure(activities.ErrUpstreamUnavailable, "c42: 503"), 502, CodeBadGateway, ""},
		{"too slow", temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_START_TO_CLOSE, nil), 504, CodeGatewayTimeout, ""},
		{"no answer in time", client.NewWorkflowUpdateServiceTimeoutOrCanceledError(context.DeadlineExceeded), 504, CodeGatewayTimeout, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeTemporal{failures: map[string]error{id: tc.err}}
			h, _ := mergeAPI(t, fake, time.Minute)
			for range 2 {
				rec := getEvent(h, eventID)
				assert.Equal(t, tc.status, rec.Code, rec.Body.String())
				assert.Equal(t, tc.code, errorOf(t, rec).Error.Code)
				assert.Equal(t, tc.retryAfter, rec.Header().Get("Retry-After"))
			}
			assert.Len(t, fake.started(), 2, "a failure is never cached")
		})
	}
}

func TestEventWithSubscriptionsWhileTemporalIsDownIs503(t *testing.T) {
	for name, err := range map[string]error{
		"unavailable": serviceerror.NewUnavailable("connection refused"),
		"no answer":   context.DeadlineExceeded,
		"not accepted in time": client.NewWorkflowUpdateServiceTimeoutOrCanceledError(
			fmt.Errorf("%w: %w", context.DeadlineExceeded, serviceerror.NewDeadlineExceeded("context deadline exceeded"))),
	} {
		t.Run(name, func(t *testing.T) {
			h, _ := mergeAPI(t, &fakeTemporal{startErr: err}, time.Minute)
			rec := getEvent(h, eventID)
			assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
			assert.Equal(t, "5", rec.Header().Get("Retry-After"))
		})
	}
}

// The run accepts a miss's ask only once its fetch is done, so the ask waits the whole
// budget; Temporal's answers about the run meanwhile say whose fault a long wait is.
func TestEventWithSubscriptionsNotAcceptedInTime(t *testing.T) {
	setMergeTimes(t, 300*time.Millisecond, 50*time.Millisecond)
	id := workflows.EventSubscriptionsWorkflowID(eventID)
	for _, tc := range []struct {
		name       string
		fake       *fakeTemporal
		status     int
		retryAfter string
		fast       bool
	}{
		{"the worker fetches: slow upstream", &fakeTemporal{notAccepted: true,
			described:            map[string]*workflowpb.WorkflowExecutionInfo{id: {}},
			pendingWorkflowTasks: map[string]*workflowpb.PendingWorkflowTaskInfo{id: {State: enumspb.PENDING_WORKFLOW_TASK_STATE_STARTED}},
		}, http.StatusGatewayTimeout, "", false},
		{"no worker takes the run", &fakeTemporal{notAccepted: true,
			described:            map[string]*workflowpb.WorkflowExecutionInfo{id: {}},
			pendingWorkflowTasks: map[string]*workflowpb.PendingWorkflowTaskInfo{id: {State: enumspb.PENDING_WORKFLOW_TASK_STATE_SCHEDULED}},
		}, http.StatusServiceUnavailable, "5", false},
		{"Temporal does not answer", &fakeTemporal{notAccepted: true, listErr: serviceerror.NewUnavailable("connection refused")},
			http.StatusServiceUnavailable, "5", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := mergeAPI(t, tc.fake, time.Minute)
			start := time.Now()
			rec := getEvent(h, eventID)
			took := time.Since(start)
			assert.Equal(t, tc.status, rec.Code, rec.Body.String())
			assert.Equal(t, tc.retryAfter, rec.Header().Get("Retry-After"))
			if tc.fast {
				assert.Less(t, took, 250*time.Millisecond, "answered at the first probe, not at the end of the budget")
			}
		})
	}
}

// setMergeTimes shortens the merge's budget and probe interval for one test.
func setMergeTimes(t *testing.T, wait, probe time.Duration) {
	t.Helper()
	oldWait, oldProbe := mergeWait, mergeProbeInterval
	mergeWait, mergeProbeInterval = wait, probe
	t.Cleanup(func() { mergeWait, mergeProbeInterval = oldWait, oldProbe })
}

func TestEventWithSubscriptionsRefusesABadIDWithoutTemporal(t *testing.T) {
	tc := &fakeTemporal{}
	h, _ := mergeAPI(t, tc, time.Minute)
	for _, id := range []string{"a.b", "%20", "a%2Fb", strings.Repeat("a", 129)} {
		rec := getEvent(h, id)
		if rec.Code == http.StatusNotFound {
			continue // not even a route match
		}
		assert.Equal(t, http.StatusBadRequest, rec.Code, id)
		assert.Contains(t, errorOf(t, rec).Error.Fields, "event_id", id)
	}
	assert.Empty(t, tc.started())
}

func TestMergeErrorOfAnUnknownFailureIsInternal(t *testing.T) {
	id := workflows.EventSubscriptionsWorkflowID(eventID)
	h, _ := mergeAPI(t, &fakeTemporal{failures: map[string]error{id: errors.New("something odd")}}, time.Minute)
	rec := getEvent(h, eventID)
	assert.Equal(t, http.StatusInternalServerError, rec.Code)
	assert.Equal(t, "internal error", errorOf(t, rec).Error.Message)
}
