package activities

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"relay/internal/outagesync"
	"relay/internal/sim"
	"relay/internal/store/storetest"
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
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(kf)
	return kfFixture{sim: s, kf: kf, env: env, metrics: metrics}
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
		var suite testsuite.WorkflowTestSuite
		env := suite.NewTestActivityEnvironment()
		env.RegisterActivity(kf)
		_, err := env.ExecuteActivity(kf.FetchOutages, "kingfisher")
		e := appError(t, err)
		assert.Equal(t, ErrUpstreamUnreachable, e.Type())
		assert.False(t, e.NonRetryable())
	})
}

// Upstream garbage is refused with a clear error, never half-used.
func TestKFGarbageAnswers(t *testing.T) {
	cases := map[string]struct {
		status int
		body   string
		typ    string
	}{
		"not JSON":          {200, `<html>oops</html>`, ErrUpstreamGarbled},
		"truncated JSON":    {200, `[{"id":"a","begin":"2022-01-01T00:00:00Z"`, ErrUpstreamGarbled},
		"object not array":  {200, `{"outages":[]}`, ErrUpstreamBadResponse},
		"wrong field types": {200, `[{"id":5,"begin":true,"end":null}]`, ErrUpstreamBadResponse},
		"500 with HTML":     {500, `<h1>Internal Server Error</h1>`, ErrUpstreamUnavailable},
		"418":               {418, `{"message":"teapot"}`, ErrUpstreamRejected},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			kf := NewKF(KFOptions{BaseURL: srv.URL, APIKey: "k", HTTP: srv.Client(), Store: storetest.Open(t)})
			var suite testsuite.WorkflowTestSuite
			env := suite.NewTestActivityEnvironment()
			env.RegisterActivity(kf)
			_, err := env.ExecuteActivity(kf.FetchOutages, "kingfisher")
			assert.Equal(t, tc.typ, appError(t, err).Type())
		})
	}

	t.Run("a begin that is not a time", func(t *testing.T) {
		f := newKF(t, "", sim.DefaultKFKey)
		ctx := t.Context()
		require.NoError(t, f.kf.store.PutBlob(ctx, "o", []byte(`[{"id":"d1","begin":"last tuesday","end":"x"}]`)))
		require.NoError(t, f.kf.store.PutBlob(ctx, "d", []byte(`[{"id":"d1","name":"Battery 1"}]`)))
		_, err := f.env.ExecuteActivity(f.kf.FilterSiteOutages, FilterInput{SiteID: "s", OutagesKey: "o", DevicesKey: "d"})
		e := appError(t, err)
		assert.Equal(t, ErrInvalidUpstreamData, e.Type())
		assert.True(t, e.NonRetryable())
		assert.Contains(t, e.Message(), `"last tuesday"`)
	})
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
