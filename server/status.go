package server

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/singleflight"

	"relay/internal/store"
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
//
// status.go: the handler and its cache; status_gather.go: asking the sources at once;
// status_temporal.go: runs from Temporal's visibility; status_view.go: what the page
// shows; status_draw.go: charts and number formats.
const (
	statusRefresh  = 10 * time.Second // the page reloads itself this often
	statusCacheTTL = 5 * time.Second
	statusTimeout  = 3 * time.Second
	statusRuns     = 6   // runs listed per job
	statusSites    = 12  // sites listed in the outage panel
	syncsListed    = 200 // outage syncs read to find each site's latest
	geoWindow      = 5 * time.Minute
)

// RateSlotReader reads how many calls a rate-limited upstream got per second (the store).
type RateSlotReader interface {
	CallsPerSecond(ctx context.Context, key string, from, to time.Time) ([]store.CallCount, error)
}

// snapshotInfo says which incident snapshot this process serves (*IncidentSnapshots).
type snapshotInfo interface {
	Info() (SnapshotInfo, bool)
}

// cacheStatter counts the merge cache's lookups (*eventCache).
type cacheStatter interface {
	Stats() cacheStats
}

// statusSources are what the page reads; any of them may be nil, which its panel says.
type statusSources struct {
	snapshots snapshotInfo
	cache     cacheStatter
	runs      Visibility
	slots     RateSlotReader
	pending   pendingReader
	lookups   describer
	checks    []Check
	alerts    AlertSource
	memos     memoReader
}

// statusPage gathers and caches the view.
type statusPage struct {
	idKey   []byte // names the oldest pending event's lookup
	logger  *slog.Logger
	src     statusSources
	geoRate float64 // the geolocation API's limit, drawn on its chart
	uiURL   string  // the Temporal Web UI runs link to; "" for none
	ns      string  // the namespace in those links
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

func newStatusPage(logger *slog.Logger, cfg Config, src statusSources) *statusPage {
	return &statusPage{logger: logger, src: src, geoRate: cfg.GeoRateLimit, idKey: []byte(cfg.WorkflowIDKey),
		uiURL: cfg.TemporalUIURL, ns: cfg.TemporalNamespace,
		now: time.Now, ttl: statusCacheTTL, timeout: statusTimeout}
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
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "+
			"form-action 'none'; frame-ancestors 'none'")
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
