package server

import (
	"time"

	commonpb "go.temporal.io/api/common/v1"

	"relay/workflows"
)

// statusJob is one of relay's jobs as the page lists it.
type statusJob struct {
	Name         string
	WorkflowType string
	Endpoint     string
}

var statusJobs = []statusJob{
	{"Incident aggregation", workflows.AggregateIncidentsWorkflowType, "GET /incidents"},
	{"Cached merge", workflows.MergeEventSubscriptionsWorkflowType, "GET /events-with-subscriptions/{id}"},
	{"Rate-limited geolocation", workflows.GeolocateWorkflowType, "POST /event/submit/"},
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
	Waiting  geoWaiting
	Outages  outagesPanel
	Ready    readyPanel
	Alerts   alertsPanel
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
	Outcome                string        // its RelayOutcome search attribute, once it has ended
	Count                  int64         // its RelayCount, when Counted
	Counted                bool
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

type outagesPanel struct {
	Err   string
	Sites []siteSync
}

type siteSync struct {
	Site string
	runRow
	Result *outageSyncCounts
	Error  *syncFailure
	Err    string // reading the result failed
	memo   *commonpb.Memo
}

type readyPanel struct {
	Ready  bool
	Checks []checkState
}

type checkState struct{ Name, State string }

func snapshotView(info SnapshotInfo, now time.Time) snapshotPanel {
	out := snapshotPanel{Present: true, ID: info.ID, CreatedAt: info.CreatedAt, Age: now.Sub(info.CreatedAt),
		Bytes: info.Bytes, GzBytes: info.GzBytes}
	if out.Bytes > 0 {
		out.CompressedShare = float64(out.GzBytes) / float64(out.Bytes)
	}
	return out
}

func cacheView(s cacheStats) cachePanel {
	out := cachePanel{Hits: s.Hits, Misses: s.Misses, Lookups: s.Hits + s.Misses, Entries: s.Entries, TTL: s.TTL}
	if out.Lookups > 0 {
		out.Ratio = float64(out.Hits) / float64(out.Lookups)
	}
	out.BarWidth = 300 * out.Ratio
	return out
}
