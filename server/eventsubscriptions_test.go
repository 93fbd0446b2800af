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

func getEvent(h http.Handler, id string) *httptest.ResponseRecorder {
	return serve(h, httptest.NewRequest(http.MethodGet, "/events-with-subscriptions/"+id, nil))
}

func TestEventWithSubscriptionsMissThenHit(t *testing.T) {
	id := workflows.EventSubscriptionsWorkflowID(eventID)
	tc := &fakeTemporal{results: map[string]any{id: merged("Bob", "Ella")}}
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
	require.Len(t, starts, 1, "a hit starts nothing")
	s := starts[0]
	assert.Equal(t, id, s.opts.ID)
	assert.Equal(t, workflows.MergeEventSubscriptionsWorkflowType, s.workflow)
	assert.Equal(t, []any{workflows.MergeEventSubscriptionsInput{EventID: eventID}}, s.args)
	assert.Equal(t, workflows.TaskQueue, s.opts.TaskQueue)
	assert.Equal(t, workflows.EventSubscriptionsRunTimeout, s.opts.WorkflowRunTimeout)
	assert.Equal(t, enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING, s.opts.WorkflowIDConflictPolicy,
		"another server's merge of the same event is joined, not duplicated")

	for result, want := range map[string]float64{"hit": 1, "miss": 1} {
		m := findMetric(t, reg, "relay_cache_requests_total", map[string]string{"cache": "events", "result": result})
		require.NotNil(t, m, "relay_cache_requests_total{result=%q} is exported", result)
		assert.Equal(t, want, m.GetCounter().GetValue(), result)
	}
}

func TestEventWithSubscriptionsExpiresAfterTheTTL(t *testing.T) {
	tc := &fakeTemporal{results: map[string]any{workflows.EventSubscriptionsWorkflowID(eventID): merged("Bob")}}
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

func TestEventWithSubscriptionsConcurrentMissesShareOneWorkflow(t *testing.T) {
	release := make(chan struct{})
	tc := &fakeTemporal{}
	tc.start = func(opts client.StartWorkflowOptions) (client.WorkflowRun, error) {
		<-release
		return fakeRun{id: opts.ID, runID: "run-1", result: merged("Bob")}, nil
	}
	h, _ := mergeAPI(t, tc, time.Minute)

	const n = 20
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		wg.Go(func() { codes[i] = getEvent(h, eventID).Code })
	}
	time.Sleep(50 * time.Millisecond) // let them all reach the cache
	close(release)
	wg.Wait()
	for i, code := range codes {
		assert.Equal(t, http.StatusOK, code, "request %d", i)
	}
	assert.Len(t, tc.started(), 1, "one workflow for every waiting request")
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
	} {
		t.Run(name, func(t *testing.T) {
			h, _ := mergeAPI(t, &fakeTemporal{startErr: err}, time.Minute)
			rec := getEvent(h, eventID)
			assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
			assert.Equal(t, "5", rec.Header().Get("Retry-After"))
		})
	}
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
