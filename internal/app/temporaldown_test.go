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
	"relay/internal/testenv"
)

// Temporal goes away while relay serves: every request that needs it gets a clear 503 in
// bounded time, with nothing half-started; what does not need it goes on (the incident
// snapshot from memory, event acceptance into the store). When Temporal is back, the
// events accepted meanwhile are located and jobs start again.
func TestTemporalUnreachable(t *testing.T) {
	env := relaytest.Start(t, relaytest.OnDisk(), relaytest.WithConfig(func(c *config.Config) {
		faultTolerantConfig(c)
	}))
	waitSnapshot(t, env)
	addr := env.Temporal.FrontendAddr()
	require.NoError(t, env.Temporal.Stop())

	for _, r := range []struct{ method, path string }{
		{http.MethodPost, "/incidents/refresh"},
		{http.MethodPost, "/sites/kingfisher/outage-sync"},
		{http.MethodGet, "/sites/kingfisher/outage-sync"},
		{http.MethodGet, "/events-with-subscriptions/" + allHands},
	} {
		start := time.Now()
		resp, body := env.Do(t, r.method, r.path, nil)
		took := time.Since(start)
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "%s %s: %s", r.method, r.path, body)
		assert.Contains(t, string(body), "Temporal", "%s %s says what is down: %s", r.method, r.path, body)
		assert.NotEmpty(t, resp.Header.Get("Retry-After"), "%s %s", r.method, r.path)
		assert.Less(t, took, 15*time.Second, "%s %s answered in bounded time", r.method, r.path)
		t.Logf("%s %s: %d in %s", r.method, r.path, resp.StatusCode, took.Round(time.Millisecond))
	}
	resp, _ := env.Do(t, http.MethodGet, "/readyz", nil)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	resp, _ = env.Do(t, http.MethodGet, "/incidents", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the last snapshot is still served")

	// Accepted into the store; its workflow starts once Temporal is back.
	id := submit(t, env, "8.8.4.4", `{"name":"while Temporal was down","status_code":200}`)
	assert.Equal(t, "pending", getEventView(t, env, id).State)

	restartTemporal(t, env, addr)

	views := waitLocated(t, env, []string{id}, time.Minute)
	assert.Equal(t, "located", views[id].State)
	testenv.WaitFor(t, 30*time.Second, func() error {
		if resp, body := env.Do(t, http.MethodGet, "/readyz", nil); resp.StatusCode != http.StatusOK {
			return testenv.Waitf("not ready again: GET /readyz answers %d %s", resp.StatusCode, body)
		}
		return nil
	})
	resp, body := env.Do(t, http.MethodPost, "/sites/kingfisher/outage-sync", strings.NewReader(""))
	require.Equal(t, http.StatusAccepted, resp.StatusCode, string(body))
	var started struct {
		WorkflowID string `json:"workflow_id"`
	}
	require.NoError(t, json.Unmarshal(body, &started))
	assert.Equal(t, "completed", waitSync(t, env, "kingfisher").State)
}
