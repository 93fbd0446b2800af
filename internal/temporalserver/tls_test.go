package temporalserver

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"relay/activities"
	"relay/internal/temporalclient"
	"relay/internal/testenv"
	"relay/internal/tlstest"
	"relay/workflows"
)

// The Temporal client's TLS, mutual TLS and API key against a real frontend: the embedded
// server with TLS on its frontend, relay's client package dialling it, a real workflow
// (Ping, with a worker) and a schedule run by the server's own system worker.

// headers records the authorization header of every call the frontend receives.
type headers struct {
	mu   sync.Mutex
	seen []string
}

func (h *headers) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	h.mu.Lock()
	h.seen = append(h.seen, md.Get("authorization")...)
	h.mu.Unlock()
	return handler(ctx, req)
}

func (h *headers) values() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.seen)
}

func startTLS(t *testing.T, tlsOpts TLS, interceptors ...grpc.UnaryServerInterceptor) *Server {
	t.Helper()
	testenv.EndToEnd(t)
	srv, err := Start(Options{
		FrontendAddr: "127.0.0.1:0", Namespace: "default", Logger: testenv.Logger(t),
		TLS: &tlsOpts, FrontendInterceptors: interceptors,
		// Ping records its outcome in relay's search attributes, as every workflow does.
		SearchAttributes: workflows.SearchAttributes(),
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })
	return srv
}

// dial connects relay's way, trying once: a refusal is the answer, not a server coming up.
func dial(t *testing.T, srv *Server, tlsOpts temporalclient.TLS, apiKey string) (client.Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a bound, never reached when all is well
	defer cancel()
	c, err := temporalclient.Dial(ctx, temporalclient.Options{
		HostPort: srv.FrontendAddr(), Namespace: "default", Logger: testenv.Logger(t),
		TLS: tlsOpts, APIKey: apiKey, ConnectTimeout: time.Nanosecond,
	})
	if err == nil {
		t.Cleanup(c.Close)
	}
	return c, err
}

// ping runs the Ping workflow on a worker of its own over c: the whole path, frontend,
// history, matching, worker and activity, over the secured connection.
func ping(t *testing.T, c client.Client, message string) {
	t.Helper()
	startPingWorker(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: workflows.PingWorkflowID(t.Name()), TaskQueue: workflows.TaskQueue,
	}, workflows.Ping, workflows.PingInput{Message: message})
	require.NoError(t, err)
	var res workflows.PingResult
	require.NoError(t, run.Get(ctx, &res))
	assert.Equal(t, message, res.Message)
}

func startPingWorker(t *testing.T, c client.Client) {
	t.Helper()
	w := sdkworker.New(c, workflows.TaskQueue, sdkworker.Options{})
	w.RegisterWorkflowWithOptions(workflows.Ping, workflow.RegisterOptions{Name: workflows.PingWorkflowType})
	w.RegisterActivity(&activities.Pinger{Worker: "tls-test"})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
}

// scheduleFires makes a schedule and triggers it: the server's system worker runs the
// schedule and starts its workflow through the frontend. (Without the system worker's TLS,
// server 1.32.1 does not get that far: its start times out after a minute with TLS, and
// its scanner panics with mutual TLS and no client certificate; both tried by hand.)
func scheduleFires(t *testing.T, c client.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:                 "tls-test-schedule",
		Spec:               client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: time.Hour}}},
		Action:             &client.ScheduleWorkflowAction{ID: "tls-test-scheduled", Workflow: workflows.PingWorkflowType, Args: []any{workflows.PingInput{Message: "scheduled"}}, TaskQueue: workflows.TaskQueue},
		TriggerImmediately: true,
	})
	require.NoError(t, err)
	var workflowID string
	testenv.WaitFor(t, 30*time.Second, func() error {
		d, err := h.Describe(ctx)
		if err != nil {
			return err
		}
		if len(d.Info.RecentActions) == 0 {
			return testenv.Waitf("the schedule has not started its workflow (the system worker cannot reach the frontend?)")
		}
		workflowID = d.Info.RecentActions[0].StartWorkflowResult.WorkflowID
		return nil
	})
	var res workflows.PingResult
	require.NoError(t, c.GetWorkflow(ctx, workflowID, "").Get(ctx, &res))
	assert.Equal(t, "scheduled", res.Message)
}

func TestFrontendWithTLS(t *testing.T) {
	certs := tlstest.New(t)
	var h headers
	srv := startTLS(t, TLS{CertFile: certs.ServerCert, KeyFile: certs.ServerKey, CAFile: certs.CA}, h.intercept)
	trusting := temporalclient.TLS{CAFile: certs.CA}

	t.Run("plain text is refused", func(t *testing.T) {
		_, err := dial(t, srv, temporalclient.TLS{}, "")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "plain text")
		t.Log(err)
	})
	t.Run("the system's roots do not trust a private CA", func(t *testing.T) {
		_, err := dial(t, srv, temporalclient.TLS{ServerName: tlstest.ServerName}, "")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "certificate signed by unknown authority")
	})
	t.Run("a wrong server name is refused", func(t *testing.T) {
		_, err := dial(t, srv, temporalclient.TLS{CAFile: certs.CA, ServerName: "wrong.relay.test"}, "")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "not wrong.relay.test")
		assert.Contains(t, err.Error(), "server name wrong.relay.test", "the error says what was asked for")
		t.Log(err)
	})
	t.Run("TLS with the CA runs a workflow", func(t *testing.T) {
		c, err := dial(t, srv, trusting, "")
		require.NoError(t, err)
		ping(t, c, "over TLS")
		assert.Empty(t, h.values(), "no API key, no authorization header")
	})
	t.Run("the server name the certificate holds", func(t *testing.T) {
		_, err := dial(t, srv, temporalclient.TLS{CAFile: certs.CA, ServerName: tlstest.ServerName}, "")
		require.NoError(t, err)
	})
	t.Run("a schedule fires", func(t *testing.T) {
		c, err := dial(t, srv, trusting, "")
		require.NoError(t, err)
		startPingWorker(t, c)
		scheduleFires(t, c)
	})
	t.Run("the API key is sent as a bearer token", func(t *testing.T) {
		c, err := dial(t, srv, trusting, "relay-test-key")
		require.NoError(t, err)
		ping(t, c, "with a key")
		seen := h.values()
		require.NotEmpty(t, seen)
		for _, v := range seen {
			assert.Equal(t, "Bearer relay-test-key", v)
		}
	})
	t.Run("an API key alone is never sent in plain text", func(t *testing.T) {
		// No TLS setting: TLS with the system's roots, which do not know the test CA. A
		// key sent in plain text would have met a TLS listener and failed differently.
		_, err := dial(t, srv, temporalclient.TLS{}, "relay-test-key")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "certificate signed by unknown authority")
	})
}

func TestFrontendWithMutualTLS(t *testing.T) {
	certs := tlstest.New(t)
	srv := startTLS(t, TLS{CertFile: certs.ServerCert, KeyFile: certs.ServerKey, CAFile: certs.CA, RequireClientCert: true})

	t.Run("without a client certificate, refused", func(t *testing.T) {
		_, err := dial(t, srv, temporalclient.TLS{CAFile: certs.CA}, "")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "certificate required")
		assert.Contains(t, err.Error(), "set TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY")
		t.Log(err)
	})
	t.Run("a certificate of another CA is refused", func(t *testing.T) {
		other := tlstest.New(t)
		_, err := dial(t, srv, temporalclient.TLS{CAFile: certs.CA, CertFile: other.ClientCert, KeyFile: other.ClientKey}, "")
		require.Error(t, err)
	})
	mtls := temporalclient.TLS{CAFile: certs.CA, CertFile: certs.ClientCert, KeyFile: certs.ClientKey}
	t.Run("with the client certificate, a workflow runs", func(t *testing.T) {
		c, err := dial(t, srv, mtls, "")
		require.NoError(t, err)
		ping(t, c, "over mutual TLS")
	})
	t.Run("a schedule fires", func(t *testing.T) {
		c, err := dial(t, srv, mtls, "")
		require.NoError(t, err)
		startPingWorker(t, c)
		scheduleFires(t, c)
	})
}

// A server without TLS is plain (relay dev's), and a TLS client says so.
func TestTLSClientOnAPlainFrontend(t *testing.T) {
	testenv.EndToEnd(t)
	srv, err := Start(Options{FrontendAddr: "127.0.0.1:0", Namespace: "default", Logger: testenv.Logger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })
	certs := tlstest.New(t)
	_, err = dial(t, srv, temporalclient.TLS{CAFile: certs.CA}, "")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the server speaks plain text")
	t.Log(err)
}
