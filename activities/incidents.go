package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

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
}

// BuildResult is the published snapshot's id and what it holds.
type BuildResult struct {
	SnapshotID int64             `json:"snapshot_id"`
	Summary    incidents.Summary `json:"summary"`
	Bytes      int               `json:"bytes"`
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
	info := activity.GetInfo(ctx)
	id, err := a.store.PublishSnapshot(ctx, info.WorkflowExecution.ID, summaryJSON, body)
	if err != nil {
		return BuildResult{}, err
	}
	activity.GetLogger(ctx).Info("incident snapshot published", "snapshot_id", id,
		"employees", summary.Employees, "incidents", summary.Incidents, "bytes", len(body))
	return BuildResult{SnapshotID: id, Summary: summary, Bytes: len(body)}, nil
}

// DropStagedIncidents removes what this run staged.
func (a *Incidents) DropStagedIncidents(ctx context.Context) error {
	_, err := a.store.DeleteBlobs(ctx, incidentsPrefix(ctx))
	return err
}

// incidentsPrefix is unique to a workflow run, so that runs never read each other's data.
func incidentsPrefix(ctx context.Context) string {
	return "incidents/" + activity.GetInfo(ctx).WorkflowExecution.RunID + "/"
}
