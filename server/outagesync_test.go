package server

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/types/known/timestamppb"

	"relay/activities"
	"relay/workflows"
)

var defaultSince = time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)

func outageSyncAPI(tc *fakeTemporal) http.Handler {
	return New(slog.New(slog.DiscardHandler), Config{OutagesSince: defaultSince}, Deps{Temporal: tc})
}

func postSync(h http.Handler, site, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/sites/"+site+"/outage-sync", strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return serve(h, req)
}

func TestOutageSyncStartTakesTheDefaultOrTheGivenCutoff(t *testing.T) {
	for body, since := range map[string]string{
		"":                                      "2022-01-01T00:00:00.000Z",
		"{}":                                    "2022-01-01T00:00:00.000Z",
		`{"since":"2023-06-01T00:00:00.000Z"}`:  "2023-06-01T00:00:00.000Z",
		`{"since":"2023-06-01T02:00:00+02:00"}`: "2023-06-01T02:00:00+02:00",
	} {
		tc := &fakeTemporal{}
		rec := postSync(outageSyncAPI(tc), "kingfisher", body)
		require.Equal(t, http.StatusAccepted, rec.Code, "%s: %s", body, rec.Body.String())
		var got startAnswer
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
		assert.Equal(t, workflows.OutageSyncWorkflowID("kingfisher"), got.WorkflowID)

		starts := tc.started()
		require.Len(t, starts, 1)
		assert.Equal(t, []any{workflows.SyncSiteOutagesInput{SiteID: "kingfisher", Since: since}}, starts[0].args, body)
		assert.Equal(t, workflows.SyncSiteOutagesWorkflowType, starts[0].workflow)
		assert.Equal(t, got.WorkflowID, starts[0].opts.ID)
		assert.True(t, starts[0].opts.WorkflowExecutionErrorWhenAlreadyStarted, "a running sync is found, not silently joined")
		assert.Equal(t, map[string]any{workflows.OutageSyncSinceMemo: since}, starts[0].opts.Memo)
	}
}

// running is a fake Temporal where a sync of kingfisher runs with cutoff since (no memo
// when since is ""), and a start answers that it is already running.
func running(since string) *fakeTemporal {
	info := described("kingfisher", "r-running", enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING)
	if since != "" {
		p, _ := converter.GetDefaultDataConverter().ToPayload(since)
		info.Memo = &commonpb.Memo{Fields: map[string]*commonpb.Payload{workflows.OutageSyncSinceMemo: p}}
	}
	id := workflows.OutageSyncWorkflowID("kingfisher")
	return &fakeTemporal{
		described: map[string]*workflowpb.WorkflowExecutionInfo{id: info},
		startErr:  serviceerror.NewWorkflowExecutionAlreadyStarted("already running", "", "r-running"),
	}
}

func TestOutageSyncStartJoinsTheRunningSyncOfTheSameCutoff(t *testing.T) {
	for _, body := range []string{
		"", "{}", // no cutoff asked for: whatever runs will do
		`{"since":"2023-06-01T00:00:00.000Z"}`,
		`{"since":"2023-06-01T02:00:00+02:00"}`, // the same instant written otherwise
	} {
		rec := postSync(outageSyncAPI(running("2023-06-01T00:00:00.000Z")), "kingfisher", body)
		require.Equal(t, http.StatusAccepted, rec.Code, "%s: %s", body, rec.Body.String())
		var got startAnswer
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
		assert.Equal(t, startAnswer{WorkflowID: workflows.OutageSyncWorkflowID("kingfisher"), RunID: "r-running"}, got, body)
	}
}

func TestOutageSyncStartOfAnotherCutoffWhileOneRunsIs409(t *testing.T) {
	rec := postSync(outageSyncAPI(running("2022-01-01T00:00:00.000Z")), "kingfisher", `{"since":"2023-06-01T00:00:00.000Z"}`)
	require.Equal(t, http.StatusConflict, rec.Code, rec.Body.String())
	e := errorOf(t, rec).Error
	assert.Equal(t, CodeConflict, e.Code)
	assert.Contains(t, e.Message, "since 2022-01-01T00:00:00.000Z", "names the running cutoff")
	assert.Contains(t, e.Message, "run r-running", "names the running sync")

	// A sync started without relay's API (the CLI) has no cutoff in its memo: only a
	// request that asks for none joins it.
	rec = postSync(outageSyncAPI(running("")), "kingfisher", `{"since":"2023-06-01T00:00:00.000Z"}`)
	require.Equal(t, http.StatusConflict, rec.Code, rec.Body.String())
	assert.Contains(t, errorOf(t, rec).Error.Message, "since unknown")
	assert.Equal(t, http.StatusAccepted, postSync(outageSyncAPI(running("")), "kingfisher", "").Code)
}

func TestOutageSyncStartAgainWhenTheRunningOneEndedMeanwhile(t *testing.T) {
	tc := running("2022-01-01T00:00:00.000Z")
	tc.startErr = nil
	calls := 0
	tc.start = func(opts client.StartWorkflowOptions) (client.WorkflowRun, error) {
		calls++
		if calls == 1 {
			return nil, serviceerror.NewWorkflowExecutionAlreadyStarted("already running", "", "r-old")
		}
		return fakeRun{id: opts.ID, runID: "r-new"}, nil
	}
	tc.described[workflows.OutageSyncWorkflowID("kingfisher")].Status = enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
	rec := postSync(outageSyncAPI(tc), "kingfisher", `{"since":"2023-06-01T00:00:00.000Z"}`)
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	assert.Contains(t, rec.Body.String(), "r-new")
	assert.Equal(t, 2, calls)
}

func TestOutageSyncStartRefusesBadRequestsBeforeTemporal(t *testing.T) {
	tc := &fakeTemporal{}
	h := outageSyncAPI(tc)
	for _, c := range []struct{ site, body, field string }{
		{"kingfisher", `{"since":"yesterday"}`, "since"},
		{"kingfisher", `{"since":"2023-06-01"}`, "since"},
		{"kingfisher", `{"since":20230601}`, "since"},
		{"kingfisher", `{"cutoff":"2023-06-01T00:00:00Z"}`, "cutoff"},
		{"kingfisher", `{"since":"2023-06-01T00:00:00Z","since":"2024-06-01T00:00:00Z"}`, "since"},
		{"king.fisher", ``, "site_id"},
		{strings.Repeat("k", 129), ``, "site_id"},
	} {
		rec := postSync(h, c.site, c.body)
		assert.Equal(t, http.StatusBadRequest, rec.Code, "%s %s", c.site, c.body)
		assert.Contains(t, errorOf(t, rec).Error.Fields, c.field, "%s %s", c.site, c.body)
	}
	assert.Empty(t, tc.started())
}

func TestOutageSyncStartWhileTemporalIsDownIs503(t *testing.T) {
	rec := postSync(outageSyncAPI(&fakeTemporal{startErr: serviceerror.NewUnavailable("refused")}), "kingfisher", "")
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, "5", rec.Header().Get("Retry-After"))
}

// described is a sync run as DescribeWorkflowExecution shows it.
func described(site, runID string, status enumspb.WorkflowExecutionStatus) *workflowpb.WorkflowExecutionInfo {
	start := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	info := &workflowpb.WorkflowExecutionInfo{
		Execution: &commonpb.WorkflowExecution{WorkflowId: workflows.OutageSyncWorkflowID(site), RunId: runID},
		StartTime: timestamppb.New(start),
		Status:    status,
	}
	if status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		info.CloseTime = timestamppb.New(start.Add(3 * time.Second))
	}
	return info
}

func getSync(t *testing.T, tc *fakeTemporal, site string) (int, map[string]any) {
	t.Helper()
	rec := serve(outageSyncAPI(tc), httptest.NewRequest(http.MethodGet, "/sites/"+site+"/outage-sync", nil))
	var body map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), rec.Body.String())
	return rec.Code, body
}

func TestOutageSyncGetShowsEachState(t *testing.T) {
	id := workflows.OutageSyncWorkflowID("kingfisher")
	t.Run("none yet", func(t *testing.T) {
		code, body := getSync(t, &fakeTemporal{}, "kingfisher")
		assert.Equal(t, http.StatusNotFound, code)
		assert.Equal(t, CodeNotFound, body["error"].(map[string]any)["code"])
	})
	t.Run("running", func(t *testing.T) {
		tc := &fakeTemporal{described: map[string]*workflowpb.WorkflowExecutionInfo{
			id: described("kingfisher", "r1", enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING)}}
		code, body := getSync(t, tc, "kingfisher")
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, "running", body["state"])
		assert.Nil(t, body["result"])
		assert.Nil(t, body["closed_at"])
		assert.Nil(t, body["error"])
	})
	t.Run("completed", func(t *testing.T) {
		tc := &fakeTemporal{
			described: map[string]*workflowpb.WorkflowExecutionInfo{
				id: described("kingfisher", "r2", enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED)},
			results: map[string]any{"r2": workflows.SyncSiteOutagesResult{SiteID: "kingfisher", Fetched: 9, Kept: 3,
				DroppedBeforeSince: 2, DroppedUnknownDevice: 2, DroppedInvalid: 2, Posted: 3}},
		}
		code, body := getSync(t, tc, "kingfisher")
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, "completed", body["state"])
		assert.Equal(t, "r2", body["run_id"])
		assert.Equal(t, "2026-11-30T09:00:03Z", body["closed_at"])
		assert.Equal(t, map[string]any{"fetched": 9.0, "kept": 3.0, "dropped_before_since": 2.0,
			"dropped_unknown_device": 2.0, "dropped_invalid": 2.0, "posted": 3.0}, body["result"])
	})
	t.Run("failed with the upstream's word", func(t *testing.T) {
		tc := &fakeTemporal{
			described: map[string]*workflowpb.WorkflowExecutionInfo{
				id: described("kingfisher", "r3", enumspb.WORKFLOW_EXECUTION_STATUS_FAILED)},
			failures: map[string]error{"r3": upstreamFailure(activities.ErrUpstreamNotFound, "kf GET /site-info/kingfisher: 404 Not Found")},
		}
		code, body := getSync(t, tc, "kingfisher")
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, "failed", body["state"])
		assert.Equal(t, map[string]any{"type": activities.ErrUpstreamNotFound,
			"message": "kf GET /site-info/kingfisher: 404 Not Found"}, body["error"])
	})
	t.Run("timed out", func(t *testing.T) {
		tc := &fakeTemporal{
			described: map[string]*workflowpb.WorkflowExecutionInfo{
				id: described("kingfisher", "r4", enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT)},
			failures: map[string]error{"r4": temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_START_TO_CLOSE, nil)},
		}
		code, body := getSync(t, tc, "kingfisher")
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, "failed", body["state"])
		assert.Equal(t, "timed-out", body["error"].(map[string]any)["type"], "the same word as the status page")
	})
	t.Run("Temporal down", func(t *testing.T) {
		code, body := getSync(t, &fakeTemporal{listErr: serviceerror.NewUnavailable("refused")}, "kingfisher")
		assert.Equal(t, http.StatusServiceUnavailable, code)
		assert.Equal(t, CodeUnavailable, body["error"].(map[string]any)["code"])
	})
}
