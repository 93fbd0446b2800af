package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/api/serviceerror"

	"relay/internal/incidents"
	"relay/internal/store"
	"relay/workflows"
)

// SnapshotSource is where published incident snapshots are read (the store).
type SnapshotSource interface {
	LatestSnapshotID(ctx context.Context) (int64, time.Time, error)
	Snapshot(ctx context.Context, id int64) (store.Snapshot, error)
}

// IncidentSnapshots holds the newest incident snapshot in memory, ready to send: its gzip
// (compressed once, by the worker that built it) and its ETag. GET /incidents only reads a pointer; Watch swaps it when a newer
// snapshot is published, and keeps the last good one whatever happens upstream.
type IncidentSnapshots struct {
	src    SnapshotSource
	logger *slog.Logger
	cur    atomic.Pointer[servedSnapshot]
}

type servedSnapshot struct {
	id           int64
	createdAt    time.Time
	body, gz     []byte // the answer, and its gzip
	etag         string
	lastModified string
}

// NewIncidentSnapshots builds an empty holder; Load or Watch fill it.
func NewIncidentSnapshots(src SnapshotSource, logger *slog.Logger) *IncidentSnapshots {
	return &IncidentSnapshots{src: src, logger: logger}
}

// Load switches to the newest published snapshot if it is newer than the one held.
func (s *IncidentSnapshots) Load(ctx context.Context) error {
	id, _, err := s.src.LatestSnapshotID(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return nil // none yet: GET /incidents answers 503 until the first refresh lands
	}
	if err != nil {
		return err
	}
	if cur := s.cur.Load(); cur != nil && cur.id >= id {
		return nil
	}
	snap, err := s.src.Snapshot(ctx, id)
	if err != nil {
		return err
	}
	body, gz, etag := snap.Body, snap.Gzip, snap.ETag
	if gz == nil {
		// Published before workers compressed snapshots (migration 00009): compress it here.
		if gz, err = incidents.Gzip(body); err != nil {
			return err
		}
	} else {
		// Decompressed once per snapshot, not per request: the few clients without gzip
		// get bytes ready to send, as every client did before.
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			return fmt.Errorf("incident snapshot %d: %w", snap.ID, err)
		}
		if body, err = io.ReadAll(zr); err != nil {
			return fmt.Errorf("incident snapshot %d: %w", snap.ID, err)
		}
	}
	if etag == "" {
		etag = incidents.ETag(body)
	}
	s.cur.Store(&servedSnapshot{
		id: snap.ID, createdAt: snap.CreatedAt, body: body, gz: gz, etag: etag,
		lastModified: snap.CreatedAt.UTC().Format(http.TimeFormat),
	})
	s.logger.Info("serving incident snapshot", "snapshot_id", snap.ID, "workflow_id", snap.WorkflowID,
		"bytes", len(body), "gzip_bytes", len(gz), "compressed_here", snap.Gzip == nil)
	return nil
}

// Watch loads the newest snapshot every interval until ctx ends.
func (s *IncidentSnapshots) Watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := s.Load(ctx); err != nil && ctx.Err() == nil {
			s.logger.Warn("cannot load incident snapshot; serving the last one", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Age is how old the served snapshot is; false before the first.
func (s *IncidentSnapshots) Age() (time.Duration, bool) {
	cur := s.cur.Load()
	if cur == nil {
		return 0, false
	}
	return time.Since(cur.createdAt), true
}

// SnapshotInfo describes the served snapshot, for the status page.
type SnapshotInfo struct {
	ID             int64
	CreatedAt      time.Time
	Bytes, GzBytes int
}

// Info describes the served snapshot; false before the first.
func (s *IncidentSnapshots) Info() (SnapshotInfo, bool) {
	cur := s.cur.Load()
	if cur == nil {
		return SnapshotInfo{}, false
	}
	return SnapshotInfo{ID: cur.id, CreatedAt: cur.createdAt, Bytes: len(cur.body), GzBytes: len(cur.gz)}, true
}

func (s *IncidentSnapshots) register(reg prometheus.Registerer) {
	register(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "relay_incidents_snapshot_age_seconds",
		Help: "Age of the incident snapshot GET /incidents serves; -1 before the first.",
	}, func() float64 {
		if age, ok := s.Age(); ok {
			return age.Seconds()
		}
		return -1
	}))
}

// handleIncidentsGet serves the snapshot from memory: 304 for a known ETag, the stored gzip
// as it is when the client takes it (nearly all do), else the body it was decompressed to
// once at load; 503 with Retry-After before the first snapshot exists.
func handleIncidentsGet(logger *slog.Logger, snaps *IncidentSnapshots) gin.HandlerFunc {
	return func(c *gin.Context) {
		snap := snaps.cur.Load()
		if snap == nil {
			respondError(c, logger, unavailable("no incident snapshot yet: the first refresh is running", retryNoSnapshot))
			return
		}
		h := c.Writer.Header()
		h["ETag"] = []string{snap.etag}
		h["Last-Modified"] = []string{snap.lastModified}
		h["Cache-Control"] = []string{"no-cache"} // may be stored, must be revalidated
		h["Vary"] = []string{"Accept-Encoding"}
		h["X-Snapshot-Age"] = []string{strconv.Itoa(int(time.Since(snap.createdAt).Seconds()))}
		if etagMatches(c.GetHeader("If-None-Match"), snap.etag) {
			c.Status(http.StatusNotModified)
			return
		}
		if acceptsGzip(c.GetHeader("Accept-Encoding")) {
			h["Content-Encoding"] = []string{"gzip"}
			c.Data(http.StatusOK, "application/json; charset=utf-8", snap.gz)
			return
		}
		c.Data(http.StatusOK, "application/json; charset=utf-8", snap.body)
	}
}

// Refresh outcomes, as POST /incidents/refresh answers them.
const (
	refreshStarted = "started"
	refreshJoined  = "joined"
)

// handleIncidentsRefresh starts a rebuild now, or joins the one running (scheduled or
// asked for): every refresh runs as workflows.IncidentsRefreshWorkflowID, so Temporal
// itself decides, atomically, for every server at once. The answer says which.
func handleIncidentsRefresh(logger *slog.Logger, tc Temporal) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), temporalCallTimeout)
		defer cancel()
		run, err := tc.ExecuteWorkflow(ctx, workflows.IncidentsRefreshStartOptions(), workflows.AggregateIncidentsWorkflowType, workflows.AggregateIncidentsInput{})
		var already *serviceerror.WorkflowExecutionAlreadyStarted
		switch {
		case errors.As(err, &already):
			respond(c, logger, http.StatusAccepted, gin.H{
				"workflow_id": workflows.IncidentsRefreshWorkflowID, "run_id": already.RunId, "refresh": refreshJoined,
			})
		case err != nil:
			respondError(c, logger, temporalError(c, logger, "start incidents refresh", err))
		default:
			respond(c, logger, http.StatusAccepted, gin.H{"workflow_id": run.GetID(), "run_id": run.GetRunID(), "refresh": refreshStarted})
		}
	}
}

// etagMatches reads If-None-Match: "*" or a list of (possibly weak) tags.
func etagMatches(header, etag string) bool {
	for _, tag := range strings.Split(header, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == "*" || tag == etag {
			return true
		}
	}
	return false
}

// acceptsGzip reads Accept-Encoding: gzip (or *) unless given q=0.
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(strings.ToLower(header), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if coding != "gzip" && coding != "*" {
			continue
		}
		if q, ok := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q="); ok {
			if f, err := strconv.ParseFloat(q, 64); err == nil && f == 0 {
				return false
			}
		}
		return true
	}
	return false
}
