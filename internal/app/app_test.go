package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"relay/internal/app"
	"relay/internal/config"
	"relay/internal/relaytest"
	"relay/internal/sim"
	"relay/internal/testenv"
	"relay/workflows"
)

func TestDevRunsEveryPart(t *testing.T) {
	env := relaytest.Start(t)

	resp, body := env.Do(t, http.MethodGet, "/healthz", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.JSONEq(t, `{"status":"ok"}`, string(body))

	resp, body = env.Do(t, http.MethodGet, "/readyz", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var ready struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	require.NoError(t, json.Unmarshal(body, &ready))
	assert.Equal(t, "ready", ready.Status)
	assert.Equal(t, map[string]string{"temporal": "ok", "database": "ok"}, ready.Checks)

	// Every upstream without a URL got a simulator, and the config points at it with its credentials.
	for _, name := range sim.Names {
		require.NotNil(t, env.Sims.Sim(name), name)
	}
	assert.Equal(t, env.Sims.URL(sim.C42), env.Config.C42.URL)
	assert.Equal(t, sim.DefaultC42Token, env.Config.C42.Token)
	assert.Equal(t, sim.DefaultIncidentsUser, env.Config.Incidents.User)
	assert.Equal(t, sim.DefaultIncidentsPassword, env.Config.Incidents.Password)
	assert.Equal(t, sim.DefaultKFKey, env.Config.KF.APIKey)
}

func TestPingRunsOnEveryTaskQueue(t *testing.T) {
	env := relaytest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, queue := range workflows.TaskQueues {
		t.Run(queue, func(t *testing.T) {
			run, err := env.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
				ID:        workflows.PingWorkflowID("test-" + queue),
				TaskQueue: workflows.TaskQueue,
			}, workflows.PingWorkflowType, workflows.PingInput{Message: "hello " + queue, Queue: queue})
			require.NoError(t, err)
			var res workflows.PingResult
			require.NoError(t, run.Get(ctx, &res))
			assert.Equal(t, "hello "+queue, res.Message)
			assert.Equal(t, queue, res.Queue)
			assert.NotEmpty(t, res.Worker)
		})
	}

	// The SDK's metrics reach /metrics beside the API's own and the runtime's.
	env.Do(t, http.MethodGet, "/healthz", nil)
	_, body := env.Do(t, http.MethodGet, "/metrics", nil)
	for _, want := range []string{
		`temporal_workflow_completed{`, // an up-down counter: no _total,
		`temporal_activity_execution_latency_seconds_bucket{activity_type="Pong"`,
		`le="0.005"`, // buckets in seconds, not OpenTelemetry's millisecond defaults
		`relay_http_requests_total{method="GET",route="/healthz",status="200"} 1`,
		`relay_http_request_duration_seconds_bucket{method="GET",route="/healthz"`,
		"go_goroutines ",
	} {
		assert.True(t, strings.Contains(string(body), want), "/metrics lacks %s", want)
	}
}

func TestPingRejectsBadInputWithoutRetrying(t *testing.T) {
	env := relaytest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for name, in := range map[string]workflows.PingInput{
		"unknown queue": {Queue: "elsewhere"},
		"bad sleep":     {Sleep: "forever"},
	} {
		run, err := env.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: workflows.PingWorkflowID("bad-" + strings.ReplaceAll(name, " ", "-")), TaskQueue: workflows.TaskQueue,
		}, workflows.PingWorkflowType, in)
		require.NoError(t, err)
		err = run.Get(ctx, nil)
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), "InvalidInput", name)
	}
}

func TestAPIKeysGuardEveryRouteButHealthz(t *testing.T) {
	env := relaytest.Start(t, relaytest.WithConfig(func(c *config.Config) { c.APIKeys = []string{"k1", "k2"} }))

	resp, _ := env.Do(t, http.MethodGet, "/healthz", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	resp, body := env.Do(t, http.MethodGet, "/readyz", nil)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	var e struct{ Error struct{ Code string } }
	require.NoError(t, json.Unmarshal(body, &e))
	assert.Equal(t, "unauthorized", e.Error.Code)

	resp, _ = env.Do(t, http.MethodGet, "/metrics", nil, "Authorization", "Bearer wrong")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, _ = env.Do(t, http.MethodGet, "/readyz", nil, "Authorization", "Bearer k2")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// Refused before anything starts, so this one runs under -short too.
func TestDevRefusesPublicAddressWithoutAPIKey(t *testing.T) {
	cfg := config.Default()
	cfg.HTTPAddr = "0.0.0.0:0"
	cfg.DataDir = t.TempDir()
	parts := app.Dev
	parts.InMemory = true
	sys, err := app.Start(t.Context(), cfg, parts, testenv.Logger(t))
	if err == nil {
		t.Cleanup(func() { _ = sys.Stop(context.Background()) })
	}
	var cfgErr *config.Error
	require.ErrorAs(t, err, &cfgErr)
	assert.Equal(t, "RELAY_HTTP_ADDR", cfgErr.Name)
	assert.Contains(t, cfgErr.Msg, "RELAY_API_KEYS")
}
