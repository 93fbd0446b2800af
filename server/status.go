package server

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"
	"golang.org/x/sync/singleflight"

	"relay/activities"
	"relay/internal/store"
	"relay/workflows"
)

// The status page (GET /) shows at a glance whether relay is healthy: each job's latest
// runs, the incident snapshot, the merge cache, the geolocation API's calls per second
// against its limit, each site's latest outage sync and what /readyz says. It is
// server-rendered HTML with inline SVG, reloads itself, and needs no JavaScript.
//
// It must stay cheap however many people keep it open: one gathered view serves every
// request for statusCacheTTL, concurrent requests share one gathering, every source is
// asked at once and bounded by statusTimeout, and a source that fails or hangs shows an
// error in its own panel, never a failed page.
const (
	statusRefresh  = 10 * time.Second // the page reloads itself this often
	statusCacheTTL = 5 * time.Second
	statusTimeout  = 3 * time.Second
	statusRuns     = 6   // runs listed per job
	statusSites    = 12  // sites listed in the outage panel
	syncsListed    = 200 // outage syncs read to find each site's latest
	geoWindow      = 5 * time.Minute
)

// RateSlotReader reads how many slots a rate-limited upstream took per second (the store).
type RateSlotReader interface {
	SlotsPerSecond(ctx context.Context, key string, from, to time.Time) ([]store.SlotCount, error)
}

//go:embed status.html.tmpl
var statusFS embed.FS

var statusTemplate = template.Must(template.New("status.html.tmpl").Funcs(template.FuncMap{
	"num":   formatInt,
	"int64": func(n int) int64 { return int64(n) },
	"bytes": formatBytes,
	"dur":   formatDuration,
	"pct":   func(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) },
	"rate":  func(f float64) string { return fmt.Sprintf("%.2f", f) },
	"f1":    func(f float64) string { return fmt.Sprintf("%.1f", f) },
	"utc":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"clock": func(t time.Time) string { return t.UTC().Format("15:04:05") },
}).ParseFS(statusFS, "status.html.tmpl"))

// statusJob is one of relay's jobs as the page lists it.
type statusJob struct {
	Name         string
	WorkflowType string
	Endpoint     string
}

var statusJobs = []statusJob{
	{"Incident aggregation", workflows.AggregateIncidentsWorkflowType, "GET /incidents"},
	{"Cached merge", workflows.MergeEventSubscriptionsWorkflowType, "GET /events-with-subscriptions/{id}"},
	{"Rate-limited geolocation", workflows.GeolocateEventWorkflowType, "POST /event/submit/"},
	{"Outage sync", workflows.SyncSiteOutagesWorkflowType, "POST /sites/{site_id}/outage-sync"},
}

// statusView is everything the page shows, gathered at At and ready to render.
type statusView struct {
	At       time.Time
	Took     time.Duration
	Refresh  int // seconds
	Jobs     []jobPanel
	Snapshot snapshotPanel
	Cache    cachePanel
	Geo      geoPanel
	Outages  outagesPanel
	Ready    readyPanel
}

type jobPanel struct {
	statusJob
	Err    string
	State  string // of the latest run: running, completed, failed, …; "idle" without runs
	Totals []statusTotal
	Runs   []runRow
	Chart  durationChart
}

type statusTotal struct {
	Status string
	Count  int64
}

// runRow is one workflow run; URL is its page in the Temporal Web UI, if one is configured.
type runRow struct {
	WorkflowID, RunID, URL string
	Status                 string
	Started                time.Time
	Duration               time.Duration // to its close, or so far
}

type durationChart struct {
	Width, Height int
	Bars          []chartBar
	Max           time.Duration
}

type chartBar struct {
	X, Y, W, H float64
	Class      string
	Title      string
}

type snapshotPanel struct {
	Present         bool
	ID              int64
	CreatedAt       time.Time
	Age             time.Duration
	Bytes, GzBytes  int
	CompressedShare float64
}

type cachePanel struct {
	Err          string
	Hits, Misses int64
	Lookups      int64
	Ratio        float64 // of lookups that hit; 0 without lookups
	Entries      int
	TTL          time.Duration
	BarWidth     float64 // of the hit bar in the ratio chart, out of 300
}

type geoPanel struct {
	Err        string
	Limit      float64
	Window     time.Duration
	Total      int
	LastMinute float64 // calls per second over the last minute
	Peak       int     // the busiest second's calls
	Chart      geoChart
}

type geoChart struct {
	Width, Height  int
	Left, Bottom   float64 // the plot area's edges
	Bars           []chartBar
	LimitY         float64
	YMax           int
	Ticks          []chartTick
	XLabels        []chartTick
	LimitLabelY    float64
	PlotTop, Right float64
}

type chartTick struct {
	X, Y  float64
	Label string
}

type outagesPanel struct {
	Err   string
	Sites []siteSync
}

type siteSync struct {
	Site string
	runRow
	Closed *time.Time
	Result *outageSyncCounts
	Error  *syncFailure
	Err    string // reading the result failed
}

type readyPanel struct {
	Ready  bool
	Checks []checkState
}

type checkState struct{ Name, State string }

// statusPage gathers and caches the view.
type statusPage struct {
	logger  *slog.Logger
	cfg     Config
	deps    Deps
	cache   *eventCache
	now     func() time.Time
	ttl     time.Duration
	timeout time.Duration

	cached atomic.Pointer[renderedStatus]
	group  singleflight.Group
}

type renderedStatus struct {
	view *statusView
	html []byte
}

func newStatusPage(logger *slog.Logger, cfg Config, deps Deps, cache *eventCache) *statusPage {
	return &statusPage{logger: logger, cfg: cfg, deps: deps, cache: cache, now: time.Now,
		ttl: statusCacheTTL, timeout: statusTimeout}
}

// handleStatus serves the page; it never fails for a source that does.
func handleStatus(logger *slog.Logger, page *statusPage) gin.HandlerFunc {
	return func(c *gin.Context) {
		r, err := page.get(c.Request.Context())
		if err != nil {
			respondError(c, logger, err)
			return
		}
		h := c.Writer.Header()
		h.Set("Cache-Control", "no-store")
		// Nothing but the page's own inline styles: no scripts run here, ever.
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		c.Data(http.StatusOK, "text/html; charset=utf-8", r.html)
	}
}

// get returns the cached page while it is fresh, otherwise gathers a new one; requests
// that arrive meanwhile wait for that one instead of asking the sources again.
func (p *statusPage) get(ctx context.Context) (*renderedStatus, error) {
	if r := p.cached.Load(); r != nil && p.now().Sub(r.view.At) < p.ttl {
		return r, nil
	}
	v, err, _ := p.group.Do("status", func() (any, error) {
		// Detached: the others waiting must not fail because the first caller left.
		view := p.gather(context.WithoutCancel(ctx))
		var buf bytes.Buffer
		if err := statusTemplate.Execute(&buf, view); err != nil {
			return nil, fmt.Errorf("render status page: %w", err)
		}
		r := &renderedStatus{view: view, html: buf.Bytes()}
		p.cached.Store(r)
		return r, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*renderedStatus), nil
}

// statusPart fills one panel: run asks its source and returns what to write; fail writes
// the panel's error instead (the default until run answers).
type statusPart struct {
	name string
	run  func(ctx context.Context) func(*statusView)
	fail func(v *statusView, msg string)
}

// gather asks every source at once and waits for each at most p.timeout.
func (p *statusPage) gather(ctx context.Context) *statusView {
	start := p.now()
	v := &statusView{At: start, Refresh: int(statusRefresh.Seconds()), Jobs: make([]jobPanel, len(statusJobs))}
	v.Snapshot = p.snapshot(start)
	v.Cache = p.cacheStats()

	parts := []statusPart{p.geoPart(start), p.outagesPart(), p.readyPart()}
	for i, job := range statusJobs {
		parts = append(parts, p.jobPart(i, job))
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	noAnswer := "no answer within " + p.timeout.String()
	for _, part := range parts {
		part.fail(v, noAnswer)
	}
	results := make(chan func(*statusView), len(parts)) // buffered: a late part never blocks
	for _, part := range parts {
		go func() {
			defer func() {
				if r := recover(); r != nil {
					p.logger.Error("status page: a source panicked", "part", part.name, "panic", r)
					results <- func(v *statusView) { part.fail(v, "failed (details in the log)") }
				}
			}()
			results <- part.run(ctx)
		}()
	}
	// A little past the deadline, so that a source that honours it reports its own error.
	wait := time.NewTimer(p.timeout + 200*time.Millisecond)
	defer wait.Stop()
collect:
	for range parts {
		select {
		case fill := <-results:
			fill(v)
		case <-wait.C:
			break collect
		}
	}
	v.Took = p.now().Sub(start)
	return v
}

// panelError is what a panel says when its source failed: short and free of internal
// detail (hosts, credentials), which goes to the log.
func (p *statusPage) panelError(what string, err error) string {
	p.logger.Warn("status page: "+what+" failed", "error", err)
	var unavailable *serviceerror.Unavailable
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return what + ": no answer within " + p.timeout.String()
	case errors.As(err, &unavailable):
		return what + ": Temporal is unavailable"
	default:
		return what + " failed (details in the log)"
	}
}

func (p *statusPage) snapshot(now time.Time) snapshotPanel {
	cur := p.deps.Incidents.cur.Load()
	if cur == nil {
		return snapshotPanel{}
	}
	out := snapshotPanel{Present: true, ID: cur.id, CreatedAt: cur.createdAt, Age: now.Sub(cur.createdAt),
		Bytes: len(cur.body), GzBytes: len(cur.gz)}
	if out.Bytes > 0 {
		out.CompressedShare = float64(out.GzBytes) / float64(out.Bytes)
	}
	return out
}

// cacheStats reads the merge cache's own counters, the ones /metrics exports.
func (p *statusPage) cacheStats() cachePanel {
	if p.cache == nil {
		return cachePanel{Err: "no cache in this process"}
	}
	out := cachePanel{
		Hits:    int64(counterNow(p.cache.lookups.WithLabelValues("events", "hit"))),
		Misses:  int64(counterNow(p.cache.lookups.WithLabelValues("events", "miss"))),
		Entries: p.cache.entries.Len(),
		TTL:     p.cache.ttl,
	}
	out.Lookups = out.Hits + out.Misses
	if out.Lookups > 0 {
		out.Ratio = float64(out.Hits) / float64(out.Lookups)
	}
	out.BarWidth = 300 * out.Ratio
	return out
}

// counterNow reads c's current value.
func counterNow(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

func (p *statusPage) readyPart() statusPart {
	return statusPart{
		name: "readiness",
		run: func(ctx context.Context) func(*statusView) {
			r := checkReadiness(ctx, p.logger, p.deps.Checks)
			panel := readyPanel{Ready: len(r.down) == 0}
			for name, state := range r.checks {
				panel.Checks = append(panel.Checks, checkState{name, state})
			}
			slices.SortFunc(panel.Checks, func(a, b checkState) int { return strings.Compare(a.Name, b.Name) })
			return func(v *statusView) { v.Ready = panel }
		},
		fail: func(v *statusView, msg string) {
			v.Ready = readyPanel{Checks: []checkState{{"status page", msg}}}
		},
	}
}

func (p *statusPage) geoPart(now time.Time) statusPart {
	return statusPart{
		name: "geo calls",
		run: func(ctx context.Context) func(*statusView) {
			if p.deps.RateSlots == nil {
				return func(v *statusView) { v.Geo = geoPanel{Err: "no store to read calls from"} }
			}
			counts, err := p.deps.RateSlots.SlotsPerSecond(ctx, activities.GeoRateKey, now.Add(-geoWindow), now)
			if err != nil {
				msg := p.panelError("reading calls from the store", err)
				return func(v *statusView) { v.Geo = geoPanel{Err: msg} }
			}
			panel := geoStats(counts, now, p.cfg.GeoRateLimit)
			return func(v *statusView) { v.Geo = panel }
		},
		fail: func(v *statusView, msg string) { v.Geo = geoPanel{Err: msg} },
	}
}

// geoStats sums the calls per second of the window ending at now and draws them.
func geoStats(counts []store.SlotCount, now time.Time, limit float64) geoPanel {
	out := geoPanel{Limit: limit, Window: geoWindow}
	lastMinute := 0
	for _, c := range counts {
		out.Total += c.Slots
		out.Peak = max(out.Peak, c.Slots)
		if now.Sub(c.Second) <= time.Minute {
			lastMinute += c.Slots
		}
	}
	out.LastMinute = float64(lastMinute) / 60
	out.Chart = drawGeoChart(counts, now, limit)
	return out
}

func drawGeoChart(counts []store.SlotCount, now time.Time, limit float64) geoChart {
	const width, height, left, right, top, bottom = 1180, 190, 34.0, 1170.0, 14.0, 166.0
	seconds := int(geoWindow.Seconds())
	yMax := int(math.Ceil(math.Max(limit*1.25, 1)))
	for _, c := range counts {
		yMax = max(yMax, c.Slots+1)
	}
	y := func(v float64) float64 { return bottom - (bottom-top)*v/float64(yMax) }
	start := now.Add(-geoWindow)
	barW := (right - left) / float64(seconds)
	ch := geoChart{Width: width, Height: height, Left: left, Right: right, Bottom: bottom, PlotTop: top, YMax: yMax,
		LimitY: y(limit), LimitLabelY: y(limit) - 4}
	for _, c := range counts {
		i := int(c.Second.Sub(start.Truncate(time.Second)) / time.Second)
		if i < 0 || i > seconds {
			continue
		}
		class := "bar"
		if float64(c.Slots) > limit {
			class = "bar over"
		}
		ch.Bars = append(ch.Bars, chartBar{
			X: left + float64(min(i, seconds-1))*barW, Y: y(float64(c.Slots)), W: math.Max(barW-0.3, 0.8),
			H: bottom - y(float64(c.Slots)), Class: class,
			Title: fmt.Sprintf("%s: %d calls", c.Second.UTC().Format("15:04:05"), c.Slots),
		})
	}
	for _, v := range []int{0, yMax / 2, yMax} {
		ch.Ticks = append(ch.Ticks, chartTick{X: left - 6, Y: y(float64(v)) + 4, Label: fmt.Sprint(v)})
	}
	for m := 0; m <= int(geoWindow.Minutes()); m++ {
		label := fmt.Sprintf("-%d min", int(geoWindow.Minutes())-m)
		if m == int(geoWindow.Minutes()) {
			label = "now"
		}
		ch.XLabels = append(ch.XLabels, chartTick{X: left + (right-left)*float64(m)/geoWindow.Minutes(), Y: bottom + 16, Label: label})
	}
	return ch
}

func (p *statusPage) jobPart(i int, job statusJob) statusPart {
	return statusPart{
		name: "job " + job.WorkflowType,
		run: func(ctx context.Context) func(*statusView) {
			panel := p.job(ctx, job)
			return func(v *statusView) { v.Jobs[i] = panel }
		},
		fail: func(v *statusView, msg string) { v.Jobs[i] = jobPanel{statusJob: job, Err: msg} },
	}
}

// job lists a job's latest runs and counts all its runs by status, from Temporal's
// visibility store.
func (p *statusPage) job(ctx context.Context, job statusJob) jobPanel {
	out := jobPanel{statusJob: job, State: "idle"}
	if p.deps.Temporal == nil {
		out.Err = "no Temporal client in this process"
		return out
	}
	query := fmt.Sprintf("WorkflowType = '%s'", job.WorkflowType)
	var (
		wg                sync.WaitGroup
		list              *workflowservice.ListWorkflowExecutionsResponse
		count             *workflowservice.CountWorkflowExecutionsResponse
		listErr, countErr error
	)
	wg.Go(func() {
		list, listErr = p.deps.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{PageSize: statusRuns, Query: query})
	})
	wg.Go(func() {
		count, countErr = p.deps.Temporal.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: query + " GROUP BY ExecutionStatus"})
	})
	wg.Wait()
	if listErr != nil {
		out.Err = p.panelError("listing runs", listErr)
		return out
	}
	execs := latestFirst(list.GetExecutions())
	for _, e := range execs[:min(len(execs), statusRuns)] {
		out.Runs = append(out.Runs, p.runRow(e))
	}
	if len(out.Runs) > 0 {
		out.State = out.Runs[0].Status
		for _, r := range out.Runs {
			if r.Status == "running" {
				out.State = "running"
			}
		}
	}
	out.Chart = drawDurations(out.Runs)
	if countErr != nil {
		out.Err = p.panelError("counting runs", countErr)
		return out
	}
	for _, g := range count.GetGroups() {
		var status string
		if vals := g.GetGroupValues(); len(vals) == 1 {
			if err := converter.GetDefaultDataConverter().FromPayload(vals[0], &status); err != nil {
				status = "?"
			}
		}
		out.Totals = append(out.Totals, statusTotal{Status: statusWord(status), Count: g.GetCount()})
	}
	slices.SortFunc(out.Totals, func(a, b statusTotal) int { return strings.Compare(a.Status, b.Status) })
	return out
}

// latestFirst orders runs by start time, newest first (visibility lists running ones first).
func latestFirst(execs []*workflowpb.WorkflowExecutionInfo) []*workflowpb.WorkflowExecutionInfo {
	execs = slices.Clone(execs)
	slices.SortStableFunc(execs, func(a, b *workflowpb.WorkflowExecutionInfo) int {
		return b.GetStartTime().AsTime().Compare(a.GetStartTime().AsTime())
	})
	return execs
}

func (p *statusPage) runRow(e *workflowpb.WorkflowExecutionInfo) runRow {
	r := runRow{
		WorkflowID: e.GetExecution().GetWorkflowId(),
		RunID:      e.GetExecution().GetRunId(),
		Status:     statusWord(e.GetStatus().String()),
		Started:    e.GetStartTime().AsTime(),
	}
	if ct := e.GetCloseTime(); ct != nil && e.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		r.Duration = ct.AsTime().Sub(r.Started)
	} else {
		r.Duration = p.now().Sub(r.Started)
	}
	r.URL = p.runURL(r.WorkflowID, r.RunID)
	return r
}

// runURL is a run's history in the Temporal Web UI, or "" when no UI is configured.
func (p *statusPage) runURL(workflowID, runID string) string {
	if p.cfg.TemporalUIURL == "" {
		return ""
	}
	ns := p.cfg.TemporalNamespace
	if ns == "" {
		ns = "default"
	}
	return strings.TrimRight(p.cfg.TemporalUIURL, "/") + "/namespaces/" + url.PathEscape(ns) +
		"/workflows/" + url.PathEscape(workflowID) + "/" + url.PathEscape(runID) + "/history"
}

// statusWord turns "Completed", "ContinuedAsNew" or "WORKFLOW_EXECUTION_STATUS_TIMED_OUT"
// into "completed", "continued-as-new", "timed-out".
func statusWord(s string) string {
	s = strings.TrimPrefix(s, "WORKFLOW_EXECUTION_STATUS_")
	if strings.Contains(s, "_") || strings.ToUpper(s) == s {
		return strings.ReplaceAll(strings.ToLower(s), "_", "-")
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('-')
		}
		b.WriteRune(r)
	}
	return strings.ToLower(b.String())
}

// drawDurations is a bar per listed run, oldest on the left, as tall as it took.
func drawDurations(runs []runRow) durationChart {
	const width, height, gap = 180, 36, 6.0
	ch := durationChart{Width: width, Height: height}
	for _, r := range runs {
		ch.Max = max(ch.Max, r.Duration)
	}
	if len(runs) == 0 || ch.Max <= 0 {
		return ch
	}
	barW := (width - gap*float64(statusRuns-1)) / float64(statusRuns)
	for i := range runs {
		r := runs[len(runs)-1-i]
		h := math.Max(2, (height-2)*float64(r.Duration)/float64(ch.Max))
		ch.Bars = append(ch.Bars, chartBar{
			X: float64(i) * (barW + gap), Y: height - h, W: barW, H: h, Class: "bar " + r.Status,
			Title: fmt.Sprintf("%s %s: %s", r.WorkflowID, r.Status, formatDuration(r.Duration)),
		})
	}
	return ch
}

func (p *statusPage) outagesPart() statusPart {
	return statusPart{
		name: "outage syncs",
		run: func(ctx context.Context) func(*statusView) {
			panel := p.outages(ctx)
			return func(v *statusView) { v.Outages = panel }
		},
		fail: func(v *statusView, msg string) { v.Outages = outagesPanel{Err: msg} },
	}
}

// outages is each site's latest sync with what it did, from the workflows' results.
func (p *statusPage) outages(ctx context.Context) outagesPanel {
	if p.deps.Temporal == nil {
		return outagesPanel{Err: "no Temporal client in this process"}
	}
	list, err := p.deps.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		PageSize: syncsListed, Query: fmt.Sprintf("WorkflowType = '%s'", workflows.SyncSiteOutagesWorkflowType),
	})
	if err != nil {
		return outagesPanel{Err: p.panelError("listing outage syncs", err)}
	}
	prefix := workflows.OutageSyncWorkflowID("")
	var out outagesPanel
	seen := map[string]bool{}
	for _, e := range latestFirst(list.GetExecutions()) {
		id := e.GetExecution().GetWorkflowId()
		site, ok := strings.CutPrefix(id, prefix)
		if !ok || seen[id] {
			continue // started by hand under another id, or an older run of a listed site
		}
		seen[id] = true
		s := siteSync{Site: site, runRow: p.runRow(e)}
		if ct := e.GetCloseTime(); ct != nil && s.Status != "running" {
			t := ct.AsTime()
			s.Closed = &t
		}
		out.Sites = append(out.Sites, s)
		if len(out.Sites) == statusSites {
			break
		}
	}
	// The counts are the workflows' results: read those of closed runs, all at once.
	var wg sync.WaitGroup
	for i := range out.Sites {
		s := &out.Sites[i]
		if s.Status == "running" {
			continue
		}
		wg.Go(func() {
			run := p.deps.Temporal.GetWorkflow(ctx, s.WorkflowID, s.RunID)
			if s.Status != "completed" {
				s.Error = failureOf(run.Get(ctx, nil), statusOf(s.Status))
				return
			}
			var res workflows.SyncSiteOutagesResult
			if err := run.Get(ctx, &res); err != nil {
				s.Err = p.panelError("reading the result of "+s.WorkflowID, err)
				return
			}
			s.Result = &outageSyncCounts{Fetched: res.Fetched, Kept: res.Kept, DroppedBeforeSince: res.DroppedBeforeSince,
				DroppedUnknownDevice: res.DroppedUnknownDevice, Posted: res.Posted}
		})
	}
	wg.Wait()
	return out
}

// statusOf is statusWord backwards, for failureOf's message.
func statusOf(word string) enumspb.WorkflowExecutionStatus {
	for v := range enumspb.WorkflowExecutionStatus_name {
		if s := enumspb.WorkflowExecutionStatus(v); statusWord(s.String()) == word {
			return s
		}
	}
	return enumspb.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED
}

// formatInt writes n with thousands separators: 1,234,567.
func formatInt(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func formatBytes(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%d B", n)
	}
}

// formatDuration is short and human: 850 ms, 2.4 s, 3 min 5 s, 2 h 10 min.
func formatDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "0 ms"
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d < time.Hour && int(d.Seconds())%60 == 0:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < time.Hour:
		return fmt.Sprintf("%d min %d s", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	}
}
