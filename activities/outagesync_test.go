package activities

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"relay/internal/outagesync"
	"relay/internal/sim"
	"relay/internal/store/storetest"
	"relay/internal/testenv"
)

var cutoff = time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)

// kfFixture runs the KF simulator over real HTTP and the activities against it.
type kfFixture struct {
	sim     *sim.Sim
	kf      *KF
	env     *testsuite.TestActivityEnvironment
	metrics *UpstreamMetrics
}

func newKF(t *testing.T, knobs, apiKey string) kfFixture {
	t.Helper()
	s, err := sim.New(sim.Upstreams()[sim.KF], knobs)
	require.NoError(t, err)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	metrics := NewUpstreamMetrics(prometheus.NewRegistry())
	kf := NewKF(KFOptions{
		BaseURL: srv.URL, APIKey: apiKey, HTTP: &http.Client{Timeout: 5 * time.Second},
		Store: storetest.Open(t), Metrics: metrics, DefaultSince: cutoff,
	})
	return kfFixture{sim: s, kf: kf, env: newActivityEnv(testenv.Logger(t), kf), metrics: metrics}
}

// newActivityEnv is a test activity environment for the activity struct acts, logging to
// logger (a fuzz target passes a discarding one: it may not log through its *testing.F).
func newActivityEnv(logger *slog.Logger, acts any) *testsuite.TestActivityEnvironment {
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(sdklog.NewStructuredLogger(logger))
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	return env
}

func appError(t *testing.T, err error) *temporal.ApplicationError {
	t.Helper()
	require.Error(t, err)
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "want an application error, got %T: %v", err, err)
	return appErr
}

func TestKFActivitiesStageFilterAndPostTheExactBody(t *testing.T) {
	f := newKF(t, "", sim.DefaultKFKey)

	v, err := f.env.ExecuteActivity(f.kf.FetchOutages, "kingfisher")
	require.NoError(t, err)
	var staged StagedOutages
	require.NoError(t, v.Get(&staged))
	api := f.sim.Routes().(*sim.KFAPI)
	var all []outagesync.Outage
	require.NoError(t, json.Unmarshal(api.Outages(), &all))
	assert.Equal(t, len(all), staged.Count)

	v, err = f.env.ExecuteActivity(f.kf.FetchSiteInfo, "kingfisher")
	require.NoError(t, err)
	var site SiteInfo
	require.NoError(t, v.Get(&site))
	assert.Equal(t, "kingfisher", site.ID)
	assert.Equal(t, 2, site.Devices)

	v, err = f.env.ExecuteActivity(f.kf.FilterSiteOutages, FilterInput{
		SiteID: "kingfisher", OutagesKey: staged.Key, DevicesKey: site.DevicesKey, // no since: the default
	})
	require.NoError(t, err)
	var filtered FilterResult
	require.NoError(t, v.Get(&filtered))
	assert.Equal(t, "2022-01-01T00:00:00.000Z", filtered.Since)
	assert.Equal(t, staged.Count, filtered.Counts.Fetched)

	v, err = f.env.ExecuteActivity(f.kf.PostSiteOutages, PostInput{SiteID: "kingfisher", PostKey: filtered.PostKey})
	require.NoError(t, err)
	var posted int
	require.NoError(t, v.Get(&posted))
	assert.Equal(t, filtered.Counts.Kept, posted)
	posts := api.Posts()
	require.Len(t, posts, 1)
	assert.Equal(t, http.StatusOK, posts[0].Status)
	assert.Equal(t, string(api.Expected("kingfisher")), string(posts[0].Body))

	assert.Equal(t, 3.0, testutil.ToFloat64(f.metrics.calls.WithLabelValues("kf", "200")), "GET, GET, POST counted")
}

func TestKFErrorsAreSortedByKind(t *testing.T) {
	t.Run("wrong key: 403 is not retryable", func(t *testing.T) {
		f := newKF(t, "", "wrong-key")
		_, err := f.env.ExecuteActivity(f.kf.FetchOutages, "kingfisher")
		e := appError(t, err)
		assert.Equal(t, ErrUpstreamUnauthorized, e.Type())
		assert.True(t, e.NonRetryable())
		assert.Contains(t, e.Message(), "403 Forbidden", "the upstream's own message")
	})
	t.Run("unknown site: 404 is not retryable", func(t *testing.T) {
		f := newKF(t, "", sim.DefaultKFKey)
		_, err := f.env.ExecuteActivity(f.kf.FetchSiteInfo, "atlantis")
		e := appError(t, err)
		assert.Equal(t, ErrUpstreamNotFound, e.Type())
		assert.True(t, e.NonRetryable())
	})
	t.Run("500 is retryable", func(t *testing.T) {
		f := newKF(t, "failure-rate=1", sim.DefaultKFKey)
		_, err := f.env.ExecuteActivity(f.kf.FetchOutages, "kingfisher")
		e := appError(t, err)
		assert.Equal(t, ErrUpstreamUnavailable, e.Type())
		assert.False(t, e.NonRetryable())
	})
	t.Run("429 is retryable", func(t *testing.T) {
		f := newKF(t, "rate-limit=1", sim.DefaultKFKey)
		_, err := f.env.ExecuteActivity(f.kf.FetchOutages, "kingfisher")
		require.NoError(t, err)
		_, err = f.env.ExecuteActivity(f.kf.FetchOutages, "kingfisher")
		e := appError(t, err)
		assert.Equal(t, ErrUpstreamRateLimited, e.Type())
		assert.False(t, e.NonRetryable())
	})
	t.Run("400 on a wrong body is not retryable", func(t *testing.T) {
		f := newKF(t, "", sim.DefaultKFKey)
		require.NoError(t, f.kf.store.PutBlob(t.Context(), "wrong", []byte(`[]`)))
		_, err := f.env.ExecuteActivity(f.kf.PostSiteOutages, PostInput{SiteID: "kingfisher", PostKey: "wrong"})
		e := appError(t, err)
		assert.Equal(t, ErrUpstreamBadRequest, e.Type())
		assert.True(t, e.NonRetryable())
	})
	t.Run("nobody listening is retryable", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		kf := NewKF(KFOptions{BaseURL: srv.URL, APIKey: "k", HTTP: &http.Client{Timeout: time.Second}, Store: storetest.Open(t)})
		_, err := newActivityEnv(testenv.Logger(t), kf).ExecuteActivity(kf.FetchOutages, "kingfisher")
		e := appError(t, err)
		assert.Equal(t, ErrUpstreamUnreachable, e.Type())
		assert.False(t, e.NonRetryable())
	})
	t.Run("no answer in time is a retryable timeout", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}))
		defer srv.Close()
		kf := NewKF(KFOptions{BaseURL: srv.URL, APIKey: "k", HTTP: &http.Client{Timeout: 100 * time.Millisecond}, Store: storetest.Open(t)})
		_, err := newActivityEnv(testenv.Logger(t), kf).ExecuteActivity(kf.FetchOutages, "kingfisher")
		e := appError(t, err)
		assert.Equal(t, ErrUpstreamTimeout, e.Type())
		assert.False(t, e.NonRetryable())
	})
}

// An outage list that is not a JSON array is refused with a clear error, never half-used
// (bad items of an array are the filter's: TestKFDropsAndCountsInvalidOutages).
func TestKFGarbageAnswers(t *testing.T) {
	cases := map[string]struct {
		status int
		body   string
		typ    string
	}{
		"not JSON":         {200, `<html>oops</html>`, ErrUpstreamGarbled},
		"truncated JSON":   {200, `[{"id":"a","begin":"2022-01-01T00:00:00Z"`, ErrUpstreamGarbled},
		"object not array": {200, `{"outages":[]}`, ErrUpstreamBadResponse},
		"null":             {200, `null`, ErrUpstreamBadResponse},
		"a string":         {200, `"[]"`, ErrUpstreamBadResponse},
		"a number":         {200, `0`, ErrUpstreamBadResponse},
		"500 with HTML":    {500, `<h1>Internal Server Error</h1>`, ErrUpstreamUnavailable},
		"418":              {418, `{"message":"teapot"}`, ErrUpstreamRejected},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			kf := NewKF(KFOptions{BaseURL: srv.URL, APIKey: "k", HTTP: srv.Client(), Store: storetest.Open(t)})
			_, err := newActivityEnv(testenv.Logger(t), kf).ExecuteActivity(kf.FetchOutages, "kingfisher")
			assert.Equal(t, tc.typ, appError(t, err).Type())
		})
	}
}

// kfWithInvalidOutages is GET /outages of the spec's worked example (site kingfisher) with
// records the outage API cannot have meant among the good ones.
const kfWithInvalidOutages = `[
	{"id": "002b28fc-283c-47ec-9af2-ea287336dc1b", "begin": "2021-07-26T17:09:31.036Z", "end": "2021-08-29T00:37:42.253Z"},
	{"id": "002b28fc-283c-47ec-9af2-ea287336dc1b", "end": "2022-08-29T00:37:42.253Z"},
	{"id": "002b28fc-283c-47ec-9af2-ea287336dc1b", "begin": "2022-05-23T12:21:27.377Z", "end": "2022-11-13T02:16:38.905Z"},
	{"id": "002b28fc-283c-47ec-9af2-ea287336dc1b", "begin": null, "end": "2022-08-29T00:37:42.253Z"},
	{"id": "002b28fc-283c-47ec-9af2-ea287336dc1b", "begin": 1653308487.377, "end": "2022-08-29T00:37:42.253Z"},
	{"id": "002b28fc-283c-47ec-9af2-ea287336dc1b", "begin": "2022-12-04T09:59:33.628Z", "end": "2022-12-12T22:35:13.815Z"},
	{"id": "002b28fc-283c-47ec-9af2-ea287336dc1b", "begin": "last tuesday", "end": "2022-08-29T00:37:42.253Z"},
	{"id": "04ccad00-eb8d-4045-8994-b569cb4b64c1", "begin": "2022-07-12T16:31:47.254Z", "end": "2022-10-13T04:05:10.044Z"},
	{"begin": "2022-07-12T16:31:47.254Z", "end": "2022-10-13T04:05:10.044Z"},
	{"id": null, "begin": "2022-07-12T16:31:47.254Z", "end": "2022-10-13T04:05:10.044Z"},
	{"id": "086b0d53-b311-4441-aaf3-935646f03d4d", "begin": "2022-07-12T16:31:47.254Z", "end": "2022-10-13T04:05:10.044Z"},
	{"id": "086b0d53-b311-4441-aaf3-935646f03d4d", "begin": "2022-07-12T16:31:47.254Z", "end": "until fixed"},
	null,
	{"id": "27820d4a-1bc4-4fc1-a5f0-bcb3627e94a1", "begin": "2021-07-12T16:31:47.254Z", "end": "2022-10-13T04:05:10.044Z"}
]`

// The outage API over real HTTP sends outages whose begin is missing, null, a number or not
// a time, outages with no device id and one whose end is not a time: the sync drops and
// counts them, and posts exactly the worked example's body.
func TestKFDropsAndCountsInvalidOutages(t *testing.T) {
	var mu sync.Mutex
	var posted []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method + " " + r.URL.Path {
		case "GET /outages":
			_, _ = io.WriteString(w, kfWithInvalidOutages)
		case "GET /site-info/kingfisher":
			_, _ = io.WriteString(w, `{"id": "kingfisher", "name": "KingFisher", "devices": [
				{"id": "002b28fc-283c-47ec-9af2-ea287336dc1b", "name": "Battery 1"},
				{"id": "086b0d53-b311-4441-aaf3-935646f03d4d", "name": "Battery 2"}]}`)
		case "POST /site-outages/kingfisher":
			body, _ := io.ReadAll(r.Body)
			mu.Lock()
			posted = body
			mu.Unlock()
			_, _ = io.WriteString(w, `{}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	kf := NewKF(KFOptions{BaseURL: srv.URL, APIKey: "k", HTTP: srv.Client(), Store: storetest.Open(t), DefaultSince: cutoff})
	env := newActivityEnv(testenv.Logger(t), kf)

	v, err := env.ExecuteActivity(kf.FetchOutages, "kingfisher")
	require.NoError(t, err, "bad records never fail the fetch")
	var staged StagedOutages
	require.NoError(t, v.Get(&staged))
	assert.Equal(t, 14, staged.Count)
	v, err = env.ExecuteActivity(kf.FetchSiteInfo, "kingfisher")
	require.NoError(t, err)
	var site SiteInfo
	require.NoError(t, v.Get(&site))

	v, err = env.ExecuteActivity(kf.FilterSiteOutages, FilterInput{SiteID: "kingfisher", OutagesKey: staged.Key, DevicesKey: site.DevicesKey})
	require.NoError(t, err, "bad records never fail the filter")
	var filtered FilterResult
	require.NoError(t, v.Get(&filtered))
	assert.Equal(t, outagesync.Counts{Fetched: 14, Kept: 3, DroppedBeforeSince: 2, DroppedUnknownDevice: 1, DroppedInvalid: 8}, filtered.Counts)

	v, err = env.ExecuteActivity(kf.PostSiteOutages, PostInput{SiteID: "kingfisher", PostKey: filtered.PostKey})
	require.NoError(t, err)
	var n int
	require.NoError(t, v.Get(&n))
	assert.Equal(t, 3, n)
	mu.Lock()
	defer mu.Unlock()
	assert.JSONEq(t, `[
		{"id": "002b28fc-283c-47ec-9af2-ea287336dc1b", "name": "Battery 1", "begin": "2022-05-23T12:21:27.377Z", "end": "2022-11-13T02:16:38.905Z"},
		{"id": "002b28fc-283c-47ec-9af2-ea287336dc1b", "name": "Battery 1", "begin": "2022-12-04T09:59:33.628Z", "end": "2022-12-12T22:35:13.815Z"},
		{"id": "086b0d53-b311-4441-aaf3-935646f03d4d", "name": "Battery 2", "begin": "2022-07-12T16:31:47.254Z", "end": "2022-10-13T04:05:10.044Z"}
	]`, string(posted))
}

// When nothing of the site's is left, relay posts [] (never null, never nothing): the
// site's list from the cutoff on is empty, and that is what the outage API is told.
func TestKFPostsAnEmptyListWhenNothingIsKept(t *testing.T) {
	f := newKF(t, "", sim.DefaultKFKey)
	ctx := t.Context()
	require.NoError(t, f.kf.store.PutBlob(ctx, "o", []byte(`[{"id": "d1", "begin": "last tuesday", "end": "x"}, null,
		{"id": "d1", "begin": "2021-07-26T17:09:31.036Z", "end": "2021-08-29T00:37:42.253Z"}]`)))
	require.NoError(t, f.kf.store.PutBlob(ctx, "d", []byte(`[{"id": "d1", "name": "Battery 1"}]`)))
	v, err := f.env.ExecuteActivity(f.kf.FilterSiteOutages, FilterInput{SiteID: "s", OutagesKey: "o", DevicesKey: "d"})
	require.NoError(t, err)
	var filtered FilterResult
	require.NoError(t, v.Get(&filtered))
	assert.Equal(t, outagesync.Counts{Fetched: 3, DroppedBeforeSince: 1, DroppedInvalid: 2}, filtered.Counts)
	body, err := f.kf.store.GetBlob(ctx, filtered.PostKey)
	require.NoError(t, err)
	assert.Equal(t, "[]", string(body))
}

// An answer of which not one outage can be read is a new shape of the API, not a site
// without outages: the sync fails instead of clearing the site's list with [].
func TestKFRefusesToPostWhenNoOutageCanBeRead(t *testing.T) {
	f := newKF(t, "", sim.DefaultKFKey)
	ctx := t.Context()
	require.NoError(t, f.kf.store.PutBlob(ctx, "o", []byte(`[{"id": "d1", "start": "2023-01-01T00:00:00Z"}, null]`)))
	require.NoError(t, f.kf.store.PutBlob(ctx, "d", []byte(`[{"id": "d1", "name": "Battery 1"}]`)))
	_, err := f.env.ExecuteActivity(f.kf.FilterSiteOutages, FilterInput{SiteID: "s", OutagesKey: "o", DevicesKey: "d"})
	var app *temporal.ApplicationError
	require.ErrorAs(t, err, &app)
	assert.Equal(t, ErrInvalidUpstreamData, app.Type())
	assert.True(t, app.NonRetryable())
	assert.Contains(t, app.Message(), "none of the 2 outages could be read")
}

func TestRetryAfterIsHonoured(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"message":"slow down"}`))
	}))
	defer srv.Close()
	kf := NewKF(KFOptions{BaseURL: srv.URL, APIKey: "k", HTTP: srv.Client(), Store: storetest.Open(t)})
	_, err := kf.api.do(t.Context(), http.MethodGet, "/outages", nil)
	e := appError(t, err)
	assert.Equal(t, ErrUpstreamRateLimited, e.Type())
	assert.Equal(t, 7*time.Second, e.NextRetryDelay())
	assert.Contains(t, e.Message(), "slow down")
}
