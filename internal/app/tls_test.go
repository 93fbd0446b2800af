package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"relay/internal/app"
	"relay/internal/config"
	"relay/internal/temporalserver"
	"relay/internal/testenv"
	"relay/internal/tlstest"
	"relay/workflows"
)

// relay's processes dial a Temporal frontend that demands mutual TLS with the settings of
// config (TEMPORAL_TLS_*): the worker runs Ping on both task queues, a relay server
// starts beside it, and without the client certificate a process does not start.
func TestProcessesDialTemporalWithMutualTLS(t *testing.T) {
	testenv.EndToEnd(t)
	certs := tlstest.New(t)
	ts, err := temporalserver.Start(temporalserver.Options{
		FrontendAddr: "127.0.0.1:0", Namespace: "default", Logger: testenv.Logger(t),
		TLS: &temporalserver.TLS{
			CertFile: certs.ServerCert, KeyFile: certs.ServerKey, CAFile: certs.CA, RequireClientCert: true,
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ts.Stop() })

	cfg := config.Default()
	cfg.HTTPAddr, cfg.UIAddr, cfg.DataDir = "127.0.0.1:0", "", t.TempDir()
	cfg.TemporalAddress = ts.FrontendAddr() // dev then dials it instead of embedding a server
	cfg.TemporalTLS = config.TemporalTLS{Cert: certs.ClientCert, Key: certs.ClientKey, CA: certs.CA}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// dev's parts (worker, HTTP API, simulators) against the secured server.
	sys, err := app.Start(ctx, cfg, app.Dev, testenv.Logger(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = sys.Stop(context.Background()) })
	for _, queue := range workflows.TaskQueues {
		run, err := sys.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: workflows.PingWorkflowID("mtls-" + queue), TaskQueue: workflows.TaskQueue,
		}, workflows.PingWorkflowType, workflows.PingInput{Message: "over mutual TLS", Queue: queue})
		require.NoError(t, err)
		var res workflows.PingResult
		require.NoError(t, run.Get(ctx, &res))
		assert.Equal(t, queue, res.Queue)
	}

	server := cfg
	server.HTTPAddr = "127.0.0.1:0"
	srv, err := app.Start(ctx, server, app.Server, testenv.Logger(t))
	require.NoError(t, err)
	require.NoError(t, srv.Stop(context.Background()))

	server.TemporalTLS = config.TemporalTLS{CA: certs.CA}
	_, err = app.Start(ctx, server, app.Server, testenv.Logger(t))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "certificate required")
}
