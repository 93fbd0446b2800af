package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"

	"relay/internal/store"
	"relay/workflows"
)

// snapshotStore is a SnapshotSource whose latest snapshot a test sets.
type snapshotStore struct {
	snap *store.Snapshot
	err  error
}

func (s *snapshotStore) LatestSnapshotID(context.Context) (int64, time.Time, error) {
	if s.err != nil {
		return 0, time.Time{}, s.err
	}
	if s.snap == nil {
		return 0, time.Time{}, store.ErrNotFound
	}
	return s.snap.ID, s.snap.CreatedAt, nil
}

func (s *snapshotStore) Snapshot(_ context.Context, id int64) (store.Snapshot, error) {
	if s.snap == nil || s.snap.ID != id {
		return store.Snapshot{}, store.ErrNotFound
	}
	return *s.snap, nil
}

// incidentsAPI is New over a snapshot store and a fake Temporal.
func incidentsAPI(t *testing.T, src *snapshotStore, tc *fakeTemporal) (http.Handler, *IncidentSnapshots) {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	snaps := NewIncidentSnapshots(src, logger)
	return New(logger, Config{}, Deps{Temporal: tc, Incidents: snaps}), snaps
}

// startAnswer is the 202 of a route that starts a workflow.
type startAnswer struct {
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
}

func serve(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestIncidentsAre503WithRetryAfterBeforeTheFirstSnapshot(t *testing.T) {
	src := &snapshotStore{}
	h, snaps := incidentsAPI(t, src, &fakeTemporal{})
	require.NoError(t, snaps.Load(t.Context()), "no snapshot yet is not an error")

	rec := serve(h, httptest.NewRequest(http.MethodGet, "/incidents", nil))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, "5", rec.Header().Get("Retry-After"))
	assert.Equal(t, CodeUnavailable, errorOf(t, rec).Error.Code)
}

func TestIncidentsServeTheSnapshotWithETagGzipAndNotModified(t *testing.T) {
	body := []byte(`{"4506":{"low":{"count":0,"incidents":[]}}}` + strings.Repeat(" ", 2000))
	created := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	src := &snapshotStore{snap: &store.Snapshot{ID: 7, CreatedAt: created, WorkflowID: "incidents/x", Body: body}}
	h, snaps := incidentsAPI(t, src, &fakeTemporal{})
	require.NoError(t, snaps.Load(t.Context()))

	rec := serve(h, httptest.NewRequest(http.MethodGet, "/incidents", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, body, rec.Body.Bytes())
	etag := rec.Header()["ETag"][0] // written as ETag, not in Go's canonical Etag
	assert.Regexp(t, `^"[0-9a-f]{32}"$`, etag)
	assert.Equal(t, "Mon, 30 Nov 2026 10:00:00 GMT", rec.Header().Get("Last-Modified"))
	assert.NotEmpty(t, rec.Header().Get("X-Snapshot-Age"))
	assert.Empty(t, rec.Header().Get("Content-Encoding"), "no gzip unless asked")

	req := httptest.NewRequest(http.MethodGet, "/incidents", nil)
	req.Header.Set("Accept-Encoding", "br, gzip;q=0.8")
	rec = serve(h, req)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "gzip", rec.Header().Get("Content-Encoding"))
	assert.Less(t, rec.Body.Len(), len(body), "compressed")
	zr, err := gzip.NewReader(bytes.NewReader(rec.Body.Bytes()))
	require.NoError(t, err)
	unzipped, err := io.ReadAll(zr)
	require.NoError(t, err)
	assert.Equal(t, body, unzipped)

	req = httptest.NewRequest(http.MethodGet, "/incidents", nil)
	req.Header.Set("If-None-Match", `"other", W/`+etag)
	rec = serve(h, req)
	assert.Equal(t, http.StatusNotModified, rec.Code)
	assert.Empty(t, rec.Body.Bytes())

	rec = serve(h, httptest.NewRequest(http.MethodHead, "/incidents", nil))
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, []string{etag}, rec.Header()["ETag"])
}

func TestIncidentsKeepServingTheLastSnapshotWhenTheStoreFails(t *testing.T) {
	src := &snapshotStore{snap: &store.Snapshot{ID: 1, CreatedAt: time.Now(), Body: []byte(`{"1":{}}`)}}
	h, snaps := incidentsAPI(t, src, &fakeTemporal{})
	require.NoError(t, snaps.Load(t.Context()))
	src.err = errors.New("database is restarting")
	require.Error(t, snaps.Load(t.Context()))

	rec := serve(h, httptest.NewRequest(http.MethodGet, "/incidents", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{"1":{}}`, rec.Body.String())

	// A newer snapshot replaces it; the same id is not read again.
	src.err = nil
	src.snap = &store.Snapshot{ID: 2, CreatedAt: time.Now(), Body: []byte(`{"2":{}}`)}
	require.NoError(t, snaps.Load(t.Context()))
	info, ok := snaps.Info()
	require.True(t, ok)
	assert.Equal(t, int64(2), info.ID)
	assert.JSONEq(t, `{"2":{}}`, serve(h, httptest.NewRequest(http.MethodGet, "/incidents", nil)).Body.String())
}

func TestIncidentsRefreshStartsTheWorkflow(t *testing.T) {
	tc := &fakeTemporal{}
	h, _ := incidentsAPI(t, &snapshotStore{}, tc)

	rec := serve(h, httptest.NewRequest(http.MethodPost, "/incidents/refresh", nil))
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	var got refreshAnswer
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
	assert.Equal(t, workflows.IncidentsRefreshWorkflowID, got.WorkflowID)
	assert.NotEmpty(t, got.RunID)
	assert.Equal(t, "started", got.Refresh)

	starts := tc.started()
	require.Len(t, starts, 1)
	assert.Equal(t, workflows.AggregateIncidentsWorkflowType, starts[0].workflow)
	assert.Equal(t, workflows.TaskQueue, starts[0].opts.TaskQueue)
	assert.Equal(t, workflows.IncidentsRunTimeout, starts[0].opts.WorkflowRunTimeout)
	assert.Equal(t, got.WorkflowID, starts[0].opts.ID)
	// Temporal decides start or join, for every server at once: the start fails on a
	// running refresh (it is not silently answered with that run), which is then joined.
	assert.Equal(t, enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL, starts[0].opts.WorkflowIDConflictPolicy)
	assert.True(t, starts[0].opts.WorkflowExecutionErrorWhenAlreadyStarted)
	assert.Equal(t, enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE, starts[0].opts.WorkflowIDReusePolicy)
}

// While a refresh runs (the schedule's or another request's), a request joins it: the
// same 202, with the running run's id and "refresh": "joined".
func TestIncidentsRefreshJoinsTheRunningOne(t *testing.T) {
	tc := &fakeTemporal{startErr: serviceerror.NewWorkflowExecutionAlreadyStarted("running", "req-1", "run-running")}
	h, _ := incidentsAPI(t, &snapshotStore{}, tc)
	rec := serve(h, httptest.NewRequest(http.MethodPost, "/incidents/refresh", nil))
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	var got refreshAnswer
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
	assert.Equal(t, refreshAnswer{WorkflowID: workflows.IncidentsRefreshWorkflowID, RunID: "run-running", Refresh: "joined"}, got)
	assert.Len(t, tc.started(), 1, "one start tried, none other")
}

// A snapshot the worker stored compressed is served as stored: the gzip bytes as they
// are, its ETag, and decompressed only for a client that takes no gzip.
func TestIncidentsServeTheStoredGzipAsItIs(t *testing.T) {
	body := []byte(`{"4506":{"low":{"count":0,"incidents":[]}}}` + strings.Repeat(" ", 2000))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(body)
	require.NoError(t, zw.Close())
	src := &snapshotStore{snap: &store.Snapshot{ID: 3, CreatedAt: time.Now(), Gzip: gz.Bytes(), ETag: `"stored"`, Bytes: len(body)}}
	h, snaps := incidentsAPI(t, src, &fakeTemporal{})
	require.NoError(t, snaps.Load(t.Context()))

	req := httptest.NewRequest(http.MethodGet, "/incidents", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	rec := serve(h, req)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "gzip", rec.Header().Get("Content-Encoding"))
	assert.Equal(t, gz.Bytes(), rec.Body.Bytes(), "the stored bytes, not compressed again")
	assert.Equal(t, []string{`"stored"`}, rec.Header()["ETag"])

	rec = serve(h, httptest.NewRequest(http.MethodGet, "/incidents", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Empty(t, rec.Header().Get("Content-Encoding"))
	assert.Equal(t, body, rec.Body.Bytes())
	assert.Equal(t, strconv.Itoa(len(body)), rec.Header().Get("Content-Length"))

	req = httptest.NewRequest(http.MethodGet, "/incidents", nil)
	req.Header.Set("If-None-Match", `"stored"`)
	assert.Equal(t, http.StatusNotModified, serve(h, req).Code)

	info, ok := snaps.Info()
	require.True(t, ok)
	assert.Equal(t, SnapshotInfo{ID: 3, CreatedAt: src.snap.CreatedAt, Bytes: len(body), GzBytes: gz.Len()}, info)
}

// refreshAnswer is the 202 of POST /incidents/refresh.
type refreshAnswer struct {
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	Refresh    string `json:"refresh"`
}

func TestIncidentsRefreshWhileTemporalIsDownIs503(t *testing.T) {
	for name, err := range map[string]error{
		"unavailable": serviceerror.NewUnavailable("connection refused"),
		"overloaded":  serviceerror.NewResourceExhausted(0, "busy"),
		"no answer":   context.DeadlineExceeded,
	} {
		t.Run(name, func(t *testing.T) {
			h, _ := incidentsAPI(t, &snapshotStore{}, &fakeTemporal{startErr: err})
			rec := serve(h, httptest.NewRequest(http.MethodPost, "/incidents/refresh", nil))
			assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
			assert.Equal(t, "5", rec.Header().Get("Retry-After"))
			assert.NotContains(t, rec.Body.String(), "connection refused", "Temporal's detail stays in the log")
		})
	}
}

func TestIncidentsRefreshOtherTemporalErrorIsInternal(t *testing.T) {
	h, _ := incidentsAPI(t, &snapshotStore{}, &fakeTemporal{startErr: serviceerror.NewPermissionDenied("no", "")})
	rec := serve(h, httptest.NewRequest(http.MethodPost, "/incidents/refresh", nil))
	assert.Equal(t, http.StatusInternalServerError, rec.Code)
	assert.Empty(t, rec.Header().Get("Retry-After"))
	assert.Equal(t, "internal error", errorOf(t, rec).Error.Message)
}

func TestETagAndGzipNegotiation(t *testing.T) {
	for header, want := range map[string]bool{
		`"a"`: true, `W/"a"`: true, `"b", "a"`: true, `*`: true, `"b"`: false, ``: false, `a`: false,
	} {
		assert.Equal(t, want, etagMatches(header, `"a"`), header)
	}
	for header, want := range map[string]bool{
		"gzip": true, "GZIP": true, "br, gzip": true, "*": true, "gzip;q=0": false, "gzip; q=0.5": true,
		"identity": false, "": false, "gzip;q=0.0": false,
	} {
		assert.Equal(t, want, acceptsGzip(header), header)
	}
}
