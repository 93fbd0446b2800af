package app_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/internal/config"
	"relay/internal/relaytest"
	"relay/internal/sim"
	"relay/internal/testenv"
)

type syncStatus struct {
	WorkflowID string     `json:"workflow_id"`
	RunID      string     `json:"run_id"`
	State      string     `json:"state"`
	StartedAt  time.Time  `json:"started_at"`
	ClosedAt   *time.Time `json:"closed_at"`
	Result     *struct {
		Fetched              int `json:"fetched"`
		Kept                 int `json:"kept"`
		DroppedBeforeSince   int `json:"dropped_before_since"`
		DroppedUnknownDevice int `json:"dropped_unknown_device"`
		Posted               int `json:"posted"`
	} `json:"result"`
	Error *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

func kfAPI(t *testing.T, env *relaytest.Env) *sim.KFAPI {
	t.Helper()
	api, ok := env.Sims.Sim(sim.KF).Routes().(*sim.KFAPI)
	require.True(t, ok, "the kf simulator serves a *sim.KFAPI")
	return api
}

// startSync POSTs a sync and returns the answer's workflow and run ids.
func startSync(t *testing.T, env *relaytest.Env, site, body string) (string, string) {
	t.Helper()
	resp, b := env.Do(t, http.MethodPost, "/sites/"+site+"/outage-sync", strings.NewReader(body))
	require.Equal(t, http.StatusAccepted, resp.StatusCode, string(b))
	var started struct {
		WorkflowID string `json:"workflow_id"`
		RunID      string `json:"run_id"`
	}
	require.NoError(t, json.Unmarshal(b, &started))
	return started.WorkflowID, started.RunID
}

// waitSync polls GET until the site's sync is no longer running.
func waitSync(t *testing.T, env *relaytest.Env, site string) syncStatus {
	t.Helper()
	var st syncStatus
	testenv.WaitFor(t, 2*time.Minute, func() error {
		resp, b := env.Do(t, http.MethodGet, "/sites/"+site+"/outage-sync", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		st = syncStatus{}
		require.NoError(t, json.Unmarshal(b, &st), string(b))
		if st.State == "running" {
			return testenv.Waitf("sync of %s still running (run %s)", site, st.RunID)
		}
		return nil
	})
	return st
}

// With 30% of the outage API's calls failing 500, the sync still posts exactly the right
// body, once, and every call carried the API key.
func TestOutageSyncSurvives500sAndPostsExactlyTheRightBody(t *testing.T) {
	env := relaytest.Start(t, relaytest.WithConfig(func(c *config.Config) {
		c.SimKnobs = "kf:failure-rate=0.3"
	}))
	api := kfAPI(t, env)

	id, runID := startSync(t, env, "kingfisher", "")
	assert.Equal(t, "outage-sync/kingfisher", id)
	st := waitSync(t, env, "kingfisher")
	require.Equal(t, "completed", st.State, "error: %+v", st.Error)
	assert.Equal(t, runID, st.RunID)
	require.NotNil(t, st.ClosedAt)
	assert.False(t, st.ClosedAt.Before(st.StartedAt))
	assert.Nil(t, st.Error)

	// Exactly one POST was accepted, and its body is exactly what the API expects.
	var accepted []sim.KFPost
	for _, p := range api.Posts() {
		if p.Status == http.StatusOK {
			accepted = append(accepted, p)
		}
	}
	require.Len(t, accepted, 1, "one successful POST")
	assert.Equal(t, "kingfisher", accepted[0].Site)
	assert.JSONEq(t, string(api.Expected("kingfisher")), string(accepted[0].Body))
	assert.Equal(t, string(api.Expected("kingfisher")), string(accepted[0].Body), "byte for byte, begin and end as received")

	var want []json.RawMessage
	require.NoError(t, json.Unmarshal(api.Expected("kingfisher"), &want))
	require.NotNil(t, st.Result)
	assert.Equal(t, len(want), st.Result.Kept)
	assert.Equal(t, len(want), st.Result.Posted)
	assert.Equal(t, st.Result.Fetched, st.Result.Kept+st.Result.DroppedBeforeSince+st.Result.DroppedUnknownDevice)

	// Every call to the API carried the key, failed ones included; some calls did fail.
	calls := env.Sims.Sim(sim.KF).Calls()
	failed := 0
	for _, c := range calls {
		assert.True(t, c.Authorized, "%s %s without a valid key", c.Method, c.Path)
		assert.Equal(t, sim.DefaultKFKey, c.Header.Get("x-api-key"))
		if c.Status == http.StatusInternalServerError {
			failed++
		}
	}
	t.Logf("%d calls to the outage API, %d answered 500", len(calls), failed)

	// The staged lists are gone once the sync is done.
	n, err := env.Store.DeleteBlobs(t.Context(), "outage-sync/")
	require.NoError(t, err)
	assert.Zero(t, n, "staged blobs left behind")
}

func TestOutageSyncWithACutoffFromTheBody(t *testing.T) {
	env := relaytest.Start(t)
	startSync(t, env, "kingfisher", `{"since": "2022-06-01T00:00:00Z"}`)
	st := waitSync(t, env, "kingfisher")
	// The simulator accepts only the default cutoff's list, as the real API does: a later
	// cutoff posts fewer outages, and the API's 400 fails the sync with its own message.
	require.Equal(t, "failed", st.State)
	require.NotNil(t, st.Error)
	assert.Equal(t, "UpstreamBadRequest", st.Error.Type)
	assert.Contains(t, st.Error.Message, "400")
	assert.Len(t, kfAPI(t, env).Posts(), 1, "a 400 is not retried")
}

func TestOutageSyncOfAnUnknownSiteFailsFastWithTheUpstreamMessage(t *testing.T) {
	env := relaytest.Start(t)
	startSync(t, env, "atlantis", "")
	st := waitSync(t, env, "atlantis")
	require.Equal(t, "failed", st.State)
	require.NotNil(t, st.Error)
	assert.Equal(t, "UpstreamNotFound", st.Error.Type)
	assert.Contains(t, st.Error.Message, "404")
	assert.Equal(t, 1, env.Sims.Sim(sim.KF).CallCount("/site-info/"), "a 404 is not retried")
	assert.Nil(t, st.Result)
}

func TestOutageSyncOneRunPerSite(t *testing.T) {
	env := relaytest.Start(t, relaytest.WithConfig(func(c *config.Config) { c.SimKnobs = "kf:latency=1s" }))
	id1, run1 := startSync(t, env, "kingfisher", "")
	for _, body := range []string{"", `{"since":"2022-01-01T00:00:00Z"}`, `{"since":"2022-01-01T01:00:00+01:00"}`} {
		id2, run2 := startSync(t, env, "kingfisher", body)
		assert.Equal(t, id1, id2)
		assert.Equal(t, run1, run2, "a second request for the same cutoff while one runs gets the running one: %s", body)
	}
	// Another cutoff while one runs: refused, naming the running sync and its cutoff.
	resp, b := env.Do(t, http.MethodPost, "/sites/kingfisher/outage-sync", strings.NewReader(`{"since":"2023-01-01T00:00:00Z"}`))
	require.Equal(t, http.StatusConflict, resp.StatusCode, string(b))
	assert.Contains(t, string(b), "since 2022-01-01T00:00:00.000Z")
	assert.Contains(t, string(b), run1)
	require.Equal(t, "completed", waitSync(t, env, "kingfisher").State)

	// Once it is done, a new request starts a new run.
	_, run3 := startSync(t, env, "kingfisher", "")
	assert.NotEqual(t, run1, run3)
	require.Equal(t, "completed", waitSync(t, env, "kingfisher").State)
}

func TestOutageSyncRejectsBadRequestsBeforeTemporal(t *testing.T) {
	env := relaytest.Start(t)
	cases := []struct {
		method, path, body string
		status             int
		field              string
	}{
		{"POST", "/sites/bad%20site/outage-sync", "", 400, "site_id"},
		{"POST", "/sites/" + strings.Repeat("x", 129) + "/outage-sync", "", 400, "site_id"},
		{"POST", "/sites/kingfisher/outage-sync", `{"since":"yesterday"}`, 400, "since"},
		{"POST", "/sites/kingfisher/outage-sync", `{"since":"2022-01-01T00:00:00Z","site":"x"}`, 400, "site"},
		{"POST", "/sites/kingfisher/outage-sync", `{"since":20220101}`, 400, "since"},
		{"POST", "/sites/kingfisher/outage-sync", `{"since":`, 400, ""},
		{"POST", "/sites/kingfisher/outage-sync", `[]`, 400, ""},
		{"GET", "/sites/bad%20site/outage-sync", "", 400, "site_id"},
		{"GET", "/sites/never-synced/outage-sync", "", 404, ""},
		{"PUT", "/sites/kingfisher/outage-sync", "", 405, ""},
	}
	for _, tc := range cases {
		resp, b := env.Do(t, tc.method, tc.path, strings.NewReader(tc.body))
		assert.Equal(t, tc.status, resp.StatusCode, "%s %s %s: %s", tc.method, tc.path, tc.body, b)
		var e struct {
			Error struct {
				Code   string            `json:"code"`
				Fields map[string]string `json:"fields"`
			} `json:"error"`
		}
		require.NoError(t, json.Unmarshal(b, &e), string(b))
		assert.NotEmpty(t, e.Error.Code)
		if tc.field != "" {
			assert.Contains(t, e.Error.Fields, tc.field, "%s %s", tc.path, tc.body)
		}
	}
	assert.Empty(t, env.Sims.Sim(sim.KF).Calls(), "nothing reached the outage API")
}
