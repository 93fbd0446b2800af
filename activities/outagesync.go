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

	"relay/internal/outagesync"
	"relay/internal/store"
	"relay/internal/timefmt"
)

// KF calls the outage API ("KF"). Outage and device lists can be large, so they are
// staged in the store and workflows pass their keys.
type KF struct {
	api          upstream
	store        *store.Store
	defaultSince time.Time
}

// KFOptions configure the outage API client.
type KFOptions struct {
	BaseURL string
	APIKey  string
	HTTP    *http.Client
	Store   *store.Store
	Metrics *UpstreamMetrics
	// DefaultSince is the cutoff of a sync started without one (KF_OUTAGES_SINCE).
	DefaultSince time.Time
}

// NewKF builds the outage API's activities.
func NewKF(o KFOptions) *KF {
	return &KF{
		api: upstream{
			name: "kf", baseURL: o.BaseURL, http: o.HTTP, metrics: o.Metrics,
			auth: func(r *http.Request) { r.Header.Set("x-api-key", o.APIKey) },
		},
		store:        o.Store,
		defaultSince: o.DefaultSince,
	}
}

// StagedOutages is a list fetched and kept in the store under Key.
type StagedOutages struct {
	Key   string `json:"key"`
	Count int    `json:"count"`
}

// FetchOutages gets every outage (of every site) and stages them. An answer that is not a
// JSON array fails; what its items hold is the filter's to judge (it drops and counts an
// item that is not an outage), so that one bad record cannot fail every site's sync.
func (a *KF) FetchOutages(ctx context.Context, siteID string) (StagedOutages, error) {
	var list []json.RawMessage
	data, err := a.api.getJSON(ctx, "/outages", &list)
	if err != nil {
		return StagedOutages{}, err
	}
	if list == nil { // null: taken for no outages, it would post an empty list over the site's
		return StagedOutages{}, badResponse("kf", "/outages", fmt.Errorf("null, not a list"))
	}
	key := stagingKey(ctx, siteID, "outages")
	if err := a.store.PutBlob(ctx, key, data); err != nil {
		return StagedOutages{}, err
	}
	return StagedOutages{Key: key, Count: len(list)}, nil
}

// SiteInfo is what relay needs of GET /site-info: the site and its staged devices.
type SiteInfo struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Devices    int    `json:"devices"`
	DevicesKey string `json:"devices_key"`
}

// FetchSiteInfo gets the site's name and devices and stages the devices.
func (a *KF) FetchSiteInfo(ctx context.Context, siteID string) (SiteInfo, error) {
	var site struct {
		ID      string              `json:"id"`
		Name    string              `json:"name"`
		Devices []outagesync.Device `json:"devices"`
	}
	path := "/site-info/" + url.PathEscape(siteID)
	if _, err := a.api.getJSON(ctx, path, &site); err != nil {
		return SiteInfo{}, err
	}
	if site.Devices == nil {
		return SiteInfo{}, badResponse("kf", path, fmt.Errorf("no devices list"))
	}
	devices, err := json.Marshal(site.Devices)
	if err != nil {
		return SiteInfo{}, err
	}
	key := stagingKey(ctx, siteID, "devices")
	if err := a.store.PutBlob(ctx, key, devices); err != nil {
		return SiteInfo{}, err
	}
	return SiteInfo{ID: site.ID, Name: site.Name, Devices: len(site.Devices), DevicesKey: key}, nil
}

// FilterInput names the staged lists and the cutoff ("" means KF_OUTAGES_SINCE).
type FilterInput struct {
	SiteID     string `json:"site_id"`
	Since      string `json:"since,omitempty"`
	OutagesKey string `json:"outages_key"`
	DevicesKey string `json:"devices_key"`
}

// FilterResult is what the filter kept, staged as the POST body under PostKey.
type FilterResult struct {
	Since   string            `json:"since"`
	Counts  outagesync.Counts `json:"counts"`
	PostKey string            `json:"post_key"`
}

// FilterSiteOutages keeps the site's outages at or after the cutoff and names them
// (package outagesync has the rules), staging the body to post. Outages it cannot read
// are dropped and counted (Counts.DroppedInvalid); only an answer of which not one outage
// can be read fails the sync.
func (a *KF) FilterSiteOutages(ctx context.Context, in FilterInput) (FilterResult, error) {
	since := a.defaultSince
	if in.Since != "" {
		t, err := time.Parse(time.RFC3339Nano, in.Since)
		if err != nil {
			return FilterResult{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("since %q is not an RFC 3339 time", in.Since), ErrInvalidInput, err)
		}
		since = t
	}
	var list []outagesync.Outage
	var devices []outagesync.Device
	if err := a.loadJSON(ctx, in.OutagesKey, &list); err != nil {
		return FilterResult{}, err
	}
	if err := a.loadJSON(ctx, in.DevicesKey, &devices); err != nil {
		return FilterResult{}, err
	}
	kept, counts := outagesync.Filter(since, devices, list)
	if counts.Fetched > 0 && counts.DroppedInvalid == counts.Fetched {
		// Not one outage could be read: the API's answer changed shape, and posting [] would
		// clear the site's list. Stop with the API's data to blame instead.
		return FilterResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"kf /outages: none of the %d outages could be read (no device id, or a begin or end that is not "+
				"an RFC 3339 time); not posting, so the site's list stays as it is", counts.Fetched),
			ErrInvalidUpstreamData, nil)
	}
	body, err := json.Marshal(kept)
	if err != nil {
		return FilterResult{}, err
	}
	key := stagingKey(ctx, in.SiteID, "post")
	if err := a.store.PutBlob(ctx, key, body); err != nil {
		return FilterResult{}, err
	}
	logger := activity.GetLogger(ctx)
	logger.Info("filtered outages", "site_id", in.SiteID, "fetched", counts.Fetched, "kept", counts.Kept,
		"dropped_before_since", counts.DroppedBeforeSince, "dropped_unknown_device", counts.DroppedUnknownDevice,
		"dropped_invalid", counts.DroppedInvalid)
	if counts.DroppedInvalid > 0 {
		logger.Warn("the outage API sent outages relay cannot read; dropped them", "site_id", in.SiteID,
			"dropped_invalid", counts.DroppedInvalid)
	}
	return FilterResult{Since: timefmt.Millis(since), Counts: counts, PostKey: key}, nil
}

// PostInput names the staged body to post for a site.
type PostInput struct {
	SiteID  string `json:"site_id"`
	PostKey string `json:"post_key"`
}

// PostSiteOutages posts the staged body; posting the same full list again (a retry after
// a lost answer) replaces it with itself.
func (a *KF) PostSiteOutages(ctx context.Context, in PostInput) (int, error) {
	body, err := a.store.GetBlob(ctx, in.PostKey)
	if err != nil {
		return 0, err
	}
	var kept []json.RawMessage
	if err := json.Unmarshal(body, &kept); err != nil {
		return 0, fmt.Errorf("staged body %s: %w", in.PostKey, err)
	}
	if _, err := a.api.do(ctx, http.MethodPost, "/site-outages/"+url.PathEscape(in.SiteID), body); err != nil {
		return 0, err
	}
	return len(kept), nil
}

// DropStagedOutages removes what a sync run staged once it no longer needs it.
func (a *KF) DropStagedOutages(ctx context.Context, siteID string) error {
	_, err := a.store.DeleteBlobs(ctx, stagingPrefix(ctx, siteID))
	return err
}

func (a *KF) loadJSON(ctx context.Context, key string, out any) error {
	data, err := a.store.GetBlob(ctx, key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("staged %s: %w", key, err)
	}
	return nil
}

// stagingPrefix is unique to a workflow run, so that a re-run never reads another's data.
func stagingPrefix(ctx context.Context, siteID string) string {
	info := activity.GetInfo(ctx)
	return fmt.Sprintf("outage-sync/%s/%s/", siteID, info.WorkflowExecution.RunID)
}

func stagingKey(ctx context.Context, siteID, what string) string {
	return stagingPrefix(ctx, siteID) + what
}
