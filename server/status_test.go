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

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"

	"relay/activities"
	"relay/internal/htmltest"
	"relay/internal/store"
	"relay/internal/testenv"
	"relay/workflows"
)

// statusFixture is a page over fakes whose every number the test knows.
type statusFixture struct {
	now      time.Time
	temporal *fakeTemporal
	slots    *fakeSlots
	snaps    *IncidentSnapshots
	cache    *eventCache
	checks   []Check
	pending  pendingReader // nil: the panel says there is no store
	alerts   AlertSource   // nil: the panel says alerts are not configured
	log      *testenv.SyncBuffer
	cfg      Config
}

const (
	kingfisherRun = "run-kf-2"
	atlantisRun   = "run-atlantis-1"
)

func newStatusFixture(t *testing.T) *statusFixture {
	t.Helper()
	now := time.Now().Truncate(time.Second)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	const (
		incidents = workflows.AggregateIncidentsWorkflowType
		merge     = workflows.MergeEventSubscriptionsWorkflowType
		geo       = workflows.GeolocateWorkflowType
		syncs     = workflows.SyncSiteOutagesWorkflowType
		completed = enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
		failed    = enumspb.WORKFLOW_EXECUTION_STATUS_FAILED
		running   = enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	)
	f := &statusFixture{now: now, log: &testenv.SyncBuffer{}}
	f.temporal = &fakeTemporal{
		runs: []*workflowpb.WorkflowExecutionInfo{
			// Visibility lists running runs first, then by close time: the page orders by start.
			ended(t, visRun(incidents, "incidents-2026-11-22T10:05:00Z", "run-inc-2", completed, ago(2*time.Minute), 2500*time.Millisecond),
				workflows.OutcomePublished, 1234, nil),
			visRun(incidents, "incidents-2026-11-22T10:00:00Z", "run-inc-1", failed, ago(7*time.Minute), 31*time.Second),
			visRun(merge, workflows.EventSubscriptionsWorkflowID("team-sync"), "run-merge-1", completed, ago(40*time.Second), 72*time.Millisecond),
			visRun(geo, workflows.GeolocateWorkflowID(nil, "9.9.9.9"), "run-geo-2", running, ago(3*time.Second), 0),
			visRun(geo, workflows.GeolocateWorkflowID(nil, "8.8.8.8"), "run-geo-1", completed, ago(20*time.Second), 400*time.Millisecond),
			// The page reads a sync's counts and failure from its memo, never its history.
			ended(t, visRun(syncs, workflows.OutageSyncWorkflowID("kingfisher"), kingfisherRun, completed, ago(time.Minute), 1100*time.Millisecond),
				workflows.OutcomeSynced, 15, map[string]any{workflows.ResultMemo: workflows.SyncSiteOutagesResult{
					SiteID: "kingfisher", Fetched: 106, Kept: 15, DroppedBeforeSince: 35, DroppedUnknownDevice: 56, Posted: 15}}),
			ended(t, visRun(syncs, workflows.OutageSyncWorkflowID("atlantis"), atlantisRun, failed, ago(5*time.Minute), 300*time.Millisecond),
				workflows.OutcomeFailed, -1, map[string]any{workflows.FailureMemo: workflows.Failure{
					Type: activities.ErrUpstreamNotFound, Message: "kf GET /site-info/atlantis: 404 site not found"}}),
			// A run from before relay recorded its counts: the page says so.
			visRun(syncs, workflows.OutageSyncWorkflowID("norwich"), "run-norwich-1", completed, ago(2*time.Hour), time.Second),
			visRun(syncs, workflows.OutageSyncWorkflowID("kingfisher"), "run-kf-1", completed, ago(time.Hour), time.Second),
		},
	}
	f.slots = &fakeSlots{counts: []store.CallCount{
		{Second: ago(200 * time.Second), Calls: 5},
		{Second: ago(70 * time.Second), Calls: 4},
		{Second: ago(10 * time.Second), Calls: 3},
	}}
	logger := slog.New(slog.NewJSONHandler(f.log, nil))
	f.snaps = NewIncidentSnapshots(fakeSnapshots{store.Snapshot{
		ID: 42, CreatedAt: ago(12 * time.Second), WorkflowID: "incidents-x", Body: []byte(strings.Repeat(`{"a":1}`, 300)),
	}}, logger)
	require.NoError(t, f.snaps.Load(context.Background()))
	f.cache = newEventCache(time.Minute, 100, prometheus.NewRegistry())
	f.cache.add("e1", []byte(`{}`))
	f.cache.get("e1")
	f.cache.get("e1")
	f.cache.get("e2")
	f.checks = []Check{okCheck("temporal"), okCheck("database")}
	f.cfg = Config{TemporalUIURL: "http://ui.example:8233/", TemporalNamespace: "prod", GeoRateLimit: 5}
	return f
}

func (f *statusFixture) page() *statusPage {
	logger := slog.New(slog.NewJSONHandler(f.log, nil))
	p := newStatusPage(logger, f.cfg, statusSources{
		snapshots: f.snaps, cache: f.cache, runs: f.temporal, slots: f.slots,
		pending: f.pending, lookups: f.temporal, checks: f.checks, alerts: f.alerts})
	p.now = func() time.Time { return f.now }
	return p
}

func serveStatus(t *testing.T, p *statusPage) (*httptest.ResponseRecorder, string) {
	t.Helper()
	r := gin.New()
	r.GET("/", handleStatus(p.logger, p))
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	return rec, rec.Body.String()
}

func TestStatusPageShowsEachPanelsNumbers(t *testing.T) {
	f := newStatusFixture(t)
	rec, page := serveStatus(t, f.page())

	require.Equal(t, http.StatusOK, rec.Code, page)
	assert.Equal(t, "text/html; charset=utf-8", rec.Header().Get("Content-Type"))
	assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
	assert.Contains(t, rec.Header().Get("Content-Security-Policy"), "default-src 'none'", "no script may run")
	assert.Contains(t, page, `<meta http-equiv="refresh" content="10">`)
	assert.NotContains(t, page, "<script")

	// Readiness: what /readyz computes.
	assert.Equal(t, "ready", htmltest.DataValue(t, page, "ready"))
	assert.Contains(t, page, `data-check="database" data-state="ok"`)
	assert.Contains(t, page, `data-check="temporal" data-state="ok"`)

	// Snapshot: the one held in memory.
	assert.Equal(t, "2100", htmltest.DataValue(t, page, "snapshot-bytes"))
	assert.Equal(t, fmt.Sprint(len(f.snaps.cur.Load().gz)), htmltest.DataValue(t, page, "snapshot-gzip-bytes"))
	assert.Equal(t, "12", htmltest.DataValue(t, page, "snapshot-age"))
	assert.Equal(t, "42", htmltest.DataValue(t, page, "snapshot-id"))
	assert.Contains(t, page, "2.1 KiB")

	// Cache: 2 hits, 1 miss, one entry.
	assert.Equal(t, "2", htmltest.DataValue(t, page, "cache-hits"))
	assert.Equal(t, "1", htmltest.DataValue(t, page, "cache-misses"))
	assert.Equal(t, "0.6667", htmltest.DataValue(t, page, "cache-ratio"))
	assert.Equal(t, "1", htmltest.DataValue(t, page, "cache-entries"))
	assert.Contains(t, page, "66.7%")

	// Geo: the store's counts of the last five minutes, against the limit.
	assert.Equal(t, activities.GeoRateKey, f.slots.key)
	assert.Equal(t, geoWindow, f.slots.to.Sub(f.slots.from))
	assert.Equal(t, "12", htmltest.DataValue(t, page, "geo-total"))
	assert.Equal(t, "5", htmltest.DataValue(t, page, "geo-peak"))
	assert.Equal(t, "5", htmltest.DataValue(t, page, "geo-limit"))
	assert.Equal(t, "0.05", htmltest.DataValue(t, page, "geo-last-minute"), "3 calls in the last minute")
	chart := htmltest.Element(t, page, "svg", "id", "geo-chart")
	assert.Equal(t, 3, strings.Count(chart, `<rect class="bar"`), "a bar per second with calls")
	assert.Contains(t, chart, `class="limit"`)
	assert.Contains(t, chart, "limit 5/s")

	// Jobs: latest first, state, durations, totals and a link to each run.
	incidents := htmltest.Element(t, page, "section", "id", "job-AggregateIncidents")
	assert.Contains(t, incidents, `data-state="completed"`)
	assert.Less(t, strings.Index(incidents, "run-inc-2"), strings.Index(incidents, "run-inc-1"), "newest first")
	assert.Contains(t, incidents, `data-run-id="run-inc-2" data-status="completed" data-duration-ms="2500"`)
	assert.Contains(t, incidents, `data-run-id="run-inc-1" data-status="failed" data-duration-ms="31000"`)
	assert.Contains(t, incidents, `data-status="completed" data-count="1"`)
	assert.Contains(t, incidents, `data-status="failed" data-count="1"`)
	assert.Contains(t, incidents, `href="http://ui.example:8233/namespaces/prod/workflows/incidents-2026-11-22T10:05:00Z/run-inc-2/history"`)
	assert.Contains(t, incidents, "2.5 s")
	assert.Equal(t, 2, strings.Count(incidents, "<rect "), "a duration bar per run")

	geo := htmltest.Element(t, page, "section", "id", "job-Geolocate")
	assert.Contains(t, geo, `data-state="running"`)
	assert.Contains(t, geo, `data-run-id="run-geo-2" data-status="running" data-duration-ms="3000"`, "a running run's duration so far")
	assert.Contains(t, geo, `href="http://ui.example:8233/namespaces/prod/workflows/geolocate%2F8.8.8.8/run-geo-1/history"`, "the id's slash is escaped")

	merge := htmltest.Element(t, page, "section", "id", "job-MergeEventSubscriptions")
	assert.Contains(t, merge, "72 ms")
	syncs := htmltest.Element(t, page, "section", "id", "job-SyncSiteOutages")
	assert.Contains(t, syncs, `data-status="completed" data-count="3"`)

	// Outage syncs: the latest run per site, with its counts or its failure.
	kf := htmltest.Element(t, page, "tr", "id", "site-kingfisher")
	assert.Contains(t, kf, `data-run-id="`+kingfisherRun+`" data-status="completed"`)
	for name, n := range map[string]int{"fetched": 106, "kept": 15, "dropped_before_since": 35, "dropped_unknown_device": 56, "posted": 15} {
		assert.Contains(t, kf, fmt.Sprintf(`data-count="%s">%d<`, name, n))
	}
	norwich := htmltest.Element(t, page, "tr", "id", "site-norwich")
	assert.Contains(t, norwich, "no counts in the memo")
	assert.Zero(t, f.temporal.gets.Load(), "no history read: the counts are in the memos")
	inc := htmltest.Element(t, page, "tr", "data-run-id", "run-inc-2")
	assert.Contains(t, inc, `data-outcome="published"`)
	assert.Contains(t, inc, "published · 1,234")
	atlantis := htmltest.Element(t, page, "tr", "id", "site-atlantis")
	assert.Contains(t, atlantis, `data-status="failed"`)
	assert.Contains(t, atlantis, "UpstreamNotFound: kf GET /site-info/atlantis: 404 site not found")
	assert.NotContains(t, htmltest.Element(t, page, "section", "id", "outages"), "run-kf-1", "only the latest sync of a site")
	assert.Less(t, strings.Index(page, `id="site-kingfisher"`), strings.Index(page, `id="site-atlantis"`), "newest first")
}

func TestStatusPageWithoutUIShowsIDsWithoutLinks(t *testing.T) {
	f := newStatusFixture(t)
	f.cfg.TemporalUIURL = ""
	rec, page := serveStatus(t, f.page())
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Contains(t, page, "run-inc-2")
	assert.Contains(t, page, workflows.OutageSyncWorkflowID("kingfisher"))
	assert.NotContains(t, page, "/history")
	assert.NotContains(t, page, "<a href=\"http")
}

func TestStatusPageShowsAFailingSourceInItsPanel(t *testing.T) {
	f := newStatusFixture(t)
	f.temporal.listErr = serviceerror.NewUnavailable("dial tcp 10.1.2.3:7233: connection refused")
	f.slots.err = errors.New("dial tcp 10.1.2.4:5432: password authentication failed for user relay")
	f.checks = []Check{failingCheck("temporal", "connection refused"), okCheck("database")}
	rec, page := serveStatus(t, f.page())

	require.Equal(t, http.StatusOK, rec.Code, "a failed source is no failed page")
	for _, job := range statusJobs {
		panel := htmltest.Element(t, page, "section", "id", "job-"+job.WorkflowType)
		assert.Contains(t, panel, `class="error"`, job.WorkflowType)
		assert.Contains(t, panel, "Temporal is unavailable", job.WorkflowType)
	}
	assert.Contains(t, htmltest.Element(t, page, "section", "id", "outages"), "listing outage syncs: Temporal is unavailable")
	assert.Contains(t, htmltest.Element(t, page, "section", "id", "geo"), "reading calls from the store failed (details in the log)")
	assert.Equal(t, "not ready", htmltest.DataValue(t, page, "ready"))
	assert.Contains(t, page, `data-check="temporal" data-state="down"`)
	// The panels that need no Temporal still show their numbers.
	assert.Equal(t, "2100", htmltest.DataValue(t, page, "snapshot-bytes"))
	assert.Equal(t, "2", htmltest.DataValue(t, page, "cache-hits"))
	// Hosts and credentials stay in the log.
	assert.NotContains(t, page, "10.1.2.")
	assert.NotContains(t, page, "password")
	assert.Contains(t, f.log.String(), "10.1.2.3:7233")
	assert.Contains(t, f.log.String(), "password authentication failed")
}

func TestStatusPageAnswersInTimeWhenASourceHangs(t *testing.T) {
	f := newStatusFixture(t)
	f.temporal.hang = make(chan struct{})
	defer close(f.temporal.hang)
	p := f.page()
	p.timeout = 300 * time.Millisecond

	start := time.Now()
	rec, page := serveStatus(t, p)
	took := time.Since(start)

	require.Equal(t, http.StatusOK, rec.Code)
	assert.Less(t, took, 2*time.Second, "the page waited on a hung source")
	assert.Contains(t, htmltest.Element(t, page, "section", "id", "job-AggregateIncidents"), "no answer within 300ms")
	assert.Contains(t, htmltest.Element(t, page, "section", "id", "outages"), "no answer within 300ms")
	assert.Equal(t, "12", htmltest.DataValue(t, page, "geo-total"), "the sources that answer are shown")
	assert.Equal(t, "ready", htmltest.DataValue(t, page, "ready"))
}

func TestStatusPageGathersOnceForManyRequests(t *testing.T) {
	f := newStatusFixture(t)
	p := f.page()
	var mu sync.Mutex
	now := f.now
	p.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	r := gin.New()
	r.GET("/", handleStatus(p.logger, p))

	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			assert.Equal(t, http.StatusOK, rec.Code)
		})
	}
	wg.Wait()
	perGathering := int64(len(statusJobs) + 1) // a list per job, one for the outage syncs
	assert.Equal(t, perGathering, f.temporal.lists.Load(), "50 requests, one gathering")

	mu.Lock()
	now = now.Add(statusCacheTTL - time.Millisecond)
	mu.Unlock()
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	assert.Equal(t, perGathering, f.temporal.lists.Load(), "still fresh: served from the cache")

	mu.Lock()
	now = now.Add(time.Millisecond)
	mu.Unlock()
	rec = httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	assert.Equal(t, 2*perGathering, f.temporal.lists.Load(), "stale: gathered again")
}

// GET / is one of the API's routes: behind the API keys, served by New with its real
// wiring (the cache the merge route fills).
func TestStatusPageIsARouteBehindTheAPIKeys(t *testing.T) {
	f := newStatusFixture(t)
	h := New(slog.New(slog.DiscardHandler), Config{APIKeys: []string{"k1"}, GeoRateLimit: 5}, Deps{
		Temporal: f.temporal, Incidents: f.snaps, RateSlots: f.slots, Checks: f.checks,
	})

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	assert.Equal(t, http.StatusUnauthorized, rec.Code)
	assert.Equal(t, CodeUnauthorized, errorOf(t, rec).Error.Code)
	assert.NotContains(t, rec.Body.String(), "relay status")

	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Authorization", "Bearer k1")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code)
	page := rec.Body.String()
	assert.Contains(t, page, "relay status")
	assert.Equal(t, "0", htmltest.DataValue(t, page, "cache-hits"), "the merge route's cache, still empty")
	assert.Equal(t, "12", htmltest.DataValue(t, page, "geo-total"))
	assert.Contains(t, page, "run-inc-2")
	assert.NotContains(t, page, "/history", "IDs without links: no UI configured")
}

func TestStatusWord(t *testing.T) {
	for in, want := range map[string]string{
		"Running": "running", "Completed": "completed", "ContinuedAsNew": "continued-as-new", "TimedOut": "timed-out",
		"WORKFLOW_EXECUTION_STATUS_TIMED_OUT": "timed-out", "Failed": "failed", "?": "unknown", "": "unknown",
	} {
		assert.Equal(t, want, statusWordOf(in), in)
	}
	// Every status Temporal has gets a word of its own.
	seen := map[string]enumspb.WorkflowExecutionStatus{}
	for v := range enumspb.WorkflowExecutionStatus_name {
		s := enumspb.WorkflowExecutionStatus(v)
		if s == enumspb.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED {
			continue
		}
		w := statusWord(s)
		assert.NotEqual(t, "unknown", w, "no word for %v", s)
		assert.NotContains(t, seen, w, "%v and %v share the word %q", s, seen[w], w)
		seen[w] = s
		assert.Equal(t, w, statusWordOf(s.String()), "the name %q reads as the status", s.String())
	}
}

func TestStatusFormatting(t *testing.T) {
	assert.Equal(t, "0", formatInt(0))
	assert.Equal(t, "999", formatInt(999))
	assert.Equal(t, "1,000", formatInt(1000))
	assert.Equal(t, "-1,234,567", formatInt(-1234567))
	assert.Equal(t, "512 B", formatBytes(512))
	assert.Equal(t, "2.0 KiB", formatBytes(2048))
	assert.Equal(t, "1.5 MiB", formatBytes(3<<19))
	assert.Equal(t, "72 ms", formatDuration(72*time.Millisecond))
	assert.Equal(t, "2.5 s", formatDuration(2500*time.Millisecond))
	assert.Equal(t, "3 min 5 s", formatDuration(185*time.Second))
	assert.Equal(t, "5 min", formatDuration(5*time.Minute))
	assert.Equal(t, "2 h 10 min", formatDuration(130*time.Minute))
}

// A process built without Temporal or a store (as some tests build the API) still serves
// the page, saying what is missing.
func TestStatusPageWithoutSources(t *testing.T) {
	h := New(slog.New(slog.DiscardHandler), Config{}, Deps{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	page := rec.Body.String()
	assert.Contains(t, htmltest.Element(t, page, "section", "id", "job-AggregateIncidents"), "no Temporal client in this process")
	assert.Contains(t, htmltest.Element(t, page, "section", "id", "outages"), "no Temporal client in this process")
	assert.Contains(t, htmltest.Element(t, page, "section", "id", "geo"), "no store to read calls from")
	assert.Contains(t, page, `id="snapshot-none"`)
	assert.Equal(t, "ready", htmltest.DataValue(t, page, "ready"), "no checks, nothing down")
}
