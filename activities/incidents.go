package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"relay/internal/incidents"
	"relay/internal/store"
)

// Incidents calls the security incidents API. Its answers can be large, so each fetch
// stages the raw body in the store and returns the key; the snapshot is built from there.
type Incidents struct {
	api   upstream
	store *store.Store
}

// IncidentsOptions configure the incidents API client.
type IncidentsOptions struct {
	BaseURL  string
	User     string
	Password string
	HTTP     *http.Client
	Store    *store.Store
	Metrics  *UpstreamMetrics
}

// NewIncidents builds the incidents API's activities.
func NewIncidents(o IncidentsOptions) *Incidents {
	return &Incidents{
		api: upstream{
			name: "incidents", baseURL: o.BaseURL, http: o.HTTP, metrics: o.Metrics,
			auth: func(r *http.Request) { r.SetBasicAuth(o.User, o.Password) },
		},
		store: o.Store,
	}
}

// Staged is an upstream answer kept in the store under Key.
type Staged struct {
	Key   string `json:"key"`
	Bytes int    `json:"bytes"`
}

// FetchIdentities gets the IP-to-employee map and stages it.
func (a *Incidents) FetchIdentities(ctx context.Context) (Staged, error) {
	var check map[string]json.RawMessage
	return a.fetch(ctx, "/identities", "identities", &check)
}

// FetchIncidents gets every incident of one type and stages them.
func (a *Incidents) FetchIncidents(ctx context.Context, incidentType string) (Staged, error) {
	var check struct {
		Results []json.RawMessage `json:"results"`
	}
	return a.fetch(ctx, "/incidents/"+url.PathEscape(incidentType)+"/", incidentType, &check)
}

// fetch GETs path, checks the body decodes into shape, and stages it raw.
func (a *Incidents) fetch(ctx context.Context, path, what string, shape any) (Staged, error) {
	data, err := a.api.getJSON(ctx, path, shape)
	if err != nil {
		return Staged{}, err
	}
	key := incidentsPrefix(ctx) + what
	if err := a.store.PutBlob(ctx, key, data); err != nil {
		return Staged{}, err
	}
	return Staged{Key: key, Bytes: len(data)}, nil
}

// BuildInput names the staged answers: identities and one per incident type.
type BuildInput struct {
	IdentitiesKey string            `json:"identities_key"`
	TypeKeys      map[string]string `json:"type_keys"`
	// AsOf is when the run started (Temporal's clock): the snapshot is published only if
	// no snapshot as new or newer is. Runs from before it was added leave it zero, and the
	// build's scheduled time stands in.
	AsOf time.Time `json:"as_of,omitzero"`
}

// BuildResult is the published snapshot's id and what it holds. Superseded says a
// snapshot of a refresh that started later was there already: this one was built but not
// published, and SnapshotID is the newer one's.
type BuildResult struct {
	SnapshotID int64             `json:"snapshot_id"`
	Summary    incidents.Summary `json:"summary"`
	Bytes      int               `json:"bytes"`
	GzipBytes  int               `json:"gzip_bytes,omitempty"`
	Superseded bool              `json:"superseded,omitempty"`
}

// BuildSnapshot groups the staged answers (package incidents has the rules) and publishes
// the snapshot in one write: servers see all of it or none.
func (a *Incidents) BuildSnapshot(ctx context.Context, in BuildInput) (BuildResult, error) {
	identities, err := a.store.GetBlob(ctx, in.IdentitiesKey)
	if err != nil {
		return BuildResult{}, err
	}
	results := make(map[string][]byte, len(in.TypeKeys))
	for typ, key := range in.TypeKeys {
		if results[typ], err = a.store.GetBlob(ctx, key); err != nil {
			return BuildResult{}, err
		}
	}
	body, summary, err := incidents.Build(identities, results)
	if err != nil {
		return BuildResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("incidents API: %v", err), ErrInvalidUpstreamData, err)
	}
	summaryJSON, err := json.Marshal(summary)
	if err != nil {
		return BuildResult{}, err
	}
	// Compressed here, once: every server serves these bytes as they are.
	gz, err := incidents.Gzip(body)
	if err != nil {
		return BuildResult{}, err
	}
	info := activity.GetInfo(ctx)
	asOf := in.AsOf
	if asOf.IsZero() {
		asOf = info.ScheduledTime
	}
	pub, err := a.store.PublishSnapshot(ctx, store.NewSnapshot{
		WorkflowID: info.WorkflowExecution.ID, AsOf: asOf, Summary: summaryJSON,
		Body: body, Gzip: gz, ETag: incidents.ETag(body),
	})
	if err != nil {
		return BuildResult{}, err
	}
	logger := activity.GetLogger(ctx)
	if pub.Published {
		logger.Info("incident snapshot published", "snapshot_id", pub.ID, "employees", summary.Employees,
			"incidents", summary.Incidents, "bytes", len(body), "gzip_bytes", len(gz))
	} else {
		logger.Warn("incident snapshot not published: a refresh that started later published first",
			"newer_snapshot_id", pub.ID, "as_of", asOf)
	}
	return BuildResult{SnapshotID: pub.ID, Summary: summary, Bytes: len(body), GzipBytes: len(gz), Superseded: !pub.Published}, nil
}

// DropStagedIncidents removes what this run staged.
func (a *Incidents) DropStagedIncidents(ctx context.Context) error {
	_, err := a.store.DeleteBlobs(ctx, incidentsPrefix(ctx))
	return err
}

// StagedBlobsMaxAge is how old a staged blob must be before SweepStagedBlobs drops it:
// far beyond any run's timeout, so that only what a dead or failed run left is taken.
const StagedBlobsMaxAge = 24 * time.Hour

// SweepStagedBlobs drops staged blobs older than maxAge (by the database's clock): what
// runs that failed, timed out or were terminated before their cleanup left behind, of
// every job. It returns how many went.
func (a *Incidents) SweepStagedBlobs(ctx context.Context, maxAge time.Duration) (int64, error) {
	if maxAge < time.Hour {
		return 0, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("sweep staged blobs older than %s: want at least an hour, beyond any run's timeout", maxAge),
			ErrInvalidInput, nil)
	}
	n, err := a.store.DeleteBlobsOlderThan(ctx, maxAge)
	if err != nil {
		return 0, err
	}
	if n > 0 {
		activity.GetLogger(ctx).Info("swept staged blobs left behind", "blobs", n, "older_than", maxAge)
	}
	return n, nil
}

// incidentsPrefix is unique to a workflow run, so that runs never read each other's data.
func incidentsPrefix(ctx context.Context) string {
	return "incidents/" + activity.GetInfo(ctx).WorkflowExecution.RunID + "/"
}
