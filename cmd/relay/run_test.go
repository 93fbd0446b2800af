package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"relay/internal/config"
	"relay/internal/testenv"
	"relay/workflows"
)

func noEnv(string) string { return "" }

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestHelpAndUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"--help"}, noEnv, &out, &errOut))
	assert.Contains(t, out.String(), "relay <command> [flags]")

	for _, cmd := range []string{"dev", "server", "worker", "sim"} {
		out.Reset()
		require.NoError(t, run(context.Background(), []string{cmd, "--help"}, noEnv, &out, &errOut), cmd)
		assert.Contains(t, out.String(), "Usage: relay "+cmd, cmd)
		assert.Contains(t, out.String(), "(env ", cmd)
	}
	// Only dev has the embedded server's flags; only the worker and dev the upstreams'.
	out.Reset()
	require.NoError(t, run(context.Background(), []string{"server", "--help"}, noEnv, &out, &errOut))
	assert.NotContains(t, out.String(), "-ui-addr")
	assert.NotContains(t, out.String(), "-kf-api-key")
	assert.Contains(t, out.String(), "-api-keys")
}

func TestBadConfigurationIsOneLineAndExitCode2(t *testing.T) {
	cases := map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"no command":       {nil, nil, "no command given"},
		"unknown command":  {[]string{"deploy"}, nil, `unknown command "deploy"`},
		"bad flag value":   {[]string{"dev", "--http-addr", "nonsense"}, nil, "flag -http-addr"},
		"unknown flag":     {[]string{"server", "--nope"}, nil, "-nope"},
		"stray argument":   {[]string{"dev", "extra"}, nil, `unexpected argument "extra"`},
		"bad env duration": {[]string{"dev"}, map[string]string{"C42_CACHE_TTL": "soon"}, "C42_CACHE_TTL"},
		"bad env url":      {[]string{"worker"}, map[string]string{"KF_API_URL": "ftp://x"}, "KF_API_URL"},
		"worker needs urls": {[]string{"worker"}, map[string]string{"TEMPORAL_ADDRESS": "127.0.0.1:1"},
			"INCIDENTS_API_URL: required"},
		"public dev without key": {[]string{"dev", "--http-addr", "0.0.0.0:9000", "--data-dir", t.TempDir()}, nil,
			"RELAY_API_KEYS"},
		"bad sim knobs": {[]string{"sim"}, map[string]string{"RELAY_SIM_KNOBS": "geoip:speed=11"}, `unknown knob "speed"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tc.args, envOf(tc.env), &out, &errOut)
			require.Error(t, err)
			var cfgErr *config.Error
			assert.True(t, errors.As(err, &cfgErr), "want a *config.Error (exit code 2), got %T: %v", err, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "\n", "one line")
		})
	}
}

// syncBuffer collects a command's stdout while the command runs in another goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var httpLine = regexp.MustCompile(`HTTP API\s+http://(\S+)`)

// startDev runs `relay dev` in the background and waits for /readyz; stop cancels it and
// returns run's error.
func startDev(t *testing.T, args []string, env map[string]string) (base string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"dev"}, args...), envOf(env), out, testWriter{t}) }()

	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := httpLine.FindStringSubmatch(out.String()); m != nil {
			base = "http://" + m[1]
			if resp, err := http.Get(base + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("relay dev stopped before it was ready: %v\nstdout:\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("relay dev not ready after 30s; stdout:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{"Temporal", "simulator incidents", "simulator c42", "simulator geoip", "simulator kf"} {
		assert.Contains(t, out.String(), want)
	}
	if env["TEMPORAL_ADDRESS"] != "" {
		assert.Contains(t, out.String(), env["TEMPORAL_ADDRESS"]+" (namespace default)")
		assert.NotContains(t, out.String(), "embedded")
	} else {
		assert.Contains(t, out.String(), "(embedded, namespace default)")
	}
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(45 * time.Second):
				runErr = errors.New("relay dev did not stop within 45s")
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return base, stop
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	if testing.Verbose() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// The durability promise at its smallest: a workflow sleeping on a timer when relay dev
// stops completes after relay dev starts again on the same data dir.
func TestDevStoppedMidWorkflowFinishesItAfterRestart(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	temporalAddr := freeAddr(t)
	args := []string{"--http-addr", "127.0.0.1:0", "--temporal-listen", temporalAddr, "--ui-addr", "off", "--data-dir", dataDir}

	_, stop := startDev(t, args, nil)
	c, err := client.Dial(client.Options{HostPort: temporalAddr, Logger: quietLogger{}})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: workflows.PingWorkflowID("restart"), TaskQueue: workflows.TaskQueue,
	}, workflows.PingWorkflowType, workflows.PingInput{Message: "still here", Sleep: "3s"})
	require.NoError(t, err)
	c.Close()
	require.NoError(t, stop(), "graceful stop")

	// The workflow is mid-sleep: nothing runs it until relay dev is back.
	_, stop = startDev(t, args, nil)
	c, err = client.Dial(client.Options{HostPort: temporalAddr, Logger: quietLogger{}})
	require.NoError(t, err)
	defer c.Close()
	var res workflows.PingResult
	require.NoError(t, c.GetWorkflow(ctx, first.GetID(), first.GetRunID()).Get(ctx, &res))
	assert.Equal(t, "still here", res.Message)
	require.NoError(t, stop())
}

// Production shape: `relay server` and `relay worker` as separate commands against one
// Temporal server (here the test environment's embedded one).
func TestServerAndWorkerCommandsAgainstATemporalServer(t *testing.T) {
	env := testenv.Start(t)
	cfg := map[string]string{
		"TEMPORAL_ADDRESS":  env.Config.TemporalAddress,
		"DATABASE_URL":      "sqlite:" + filepath.Join(t.TempDir(), "relay.db"),
		"INCIDENTS_API_URL": env.Config.Incidents.URL, "C42_API_URL": env.Config.C42.URL,
		"GEOIP_API_URL": env.Config.GeoIP.URL, "KF_API_URL": env.Config.KF.URL,
		"RELAY_HTTP_ADDR": "127.0.0.1:0",
	}
	ctx, cancel := context.WithCancel(context.Background())
	serverOut, workerOut := &syncBuffer{}, &syncBuffer{}
	serverDone, workerDone := make(chan error, 1), make(chan error, 1)
	go func() { serverDone <- run(ctx, []string{"server"}, envOf(cfg), serverOut, testWriter{t}) }()
	go func() { workerDone <- run(ctx, []string{"worker"}, envOf(cfg), workerOut, testWriter{t}) }()

	addr := regexp.MustCompile(`HTTP API on http://(\S+),`)
	running := map[string]chan error{"server": serverDone, "worker": workerDone}
	waitUntil(t, "relay server ready", running, func() bool {
		m := addr.FindStringSubmatch(serverOut.String())
		if m == nil {
			return false
		}
		resp, err := http.Get("http://" + m[1] + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	waitUntil(t, "relay worker polling", running, func() bool {
		return strings.Contains(workerOut.String(), "polling task queues")
	})

	cancel()
	for name, done := range map[string]chan error{"server": serverDone, "worker": workerDone} {
		select {
		case err := <-done:
			assert.NoError(t, err, name)
		case <-time.After(45 * time.Second):
			t.Fatalf("relay %s did not stop", name)
		}
	}
}

func TestSimCommandServesTheFourSimulators(t *testing.T) {
	// relay sim uses fixed ports; skip nothing: if they are taken the test says so.
	for _, port := range []int{9101, 9102, 9103, 9104} {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		require.NoError(t, err, "relay sim needs port %d free", port)
		l.Close()
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"sim"}, envOf(map[string]string{"RELAY_SIM_KNOBS": "latency=1ms;geoip:rate-limit=3"}), out, testWriter{t})
	}()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "kf") }, 10*time.Second, 20*time.Millisecond)
	assert.Contains(t, out.String(), "http://127.0.0.1:9103")
	assert.Contains(t, out.String(), "rate-limit=3")

	resp, err := http.Get("http://127.0.0.1:9104/outages")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "kf without x-api-key")
	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("relay sim did not stop")
	}
}

// waitUntil polls cond for up to 30 s; a command in running that stops meanwhile fails
// the test with its error instead of a time-out.
func waitUntil(t *testing.T, what string, running map[string]chan error, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		for name, done := range running {
			select {
			case err := <-done:
				t.Fatalf("waiting for %s: relay %s stopped: %v", what, name, err)
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: timed out", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type quietLogger struct{}

func (quietLogger) Debug(string, ...interface{}) {}
func (quietLogger) Info(string, ...interface{})  {}
func (quietLogger) Warn(string, ...interface{})  {}
func (quietLogger) Error(string, ...interface{}) {}

// With TEMPORAL_ADDRESS set, dev embeds no server and uses that one (here the test
// environment's), still starting the simulators, the worker and the API.
func TestDevUsesTemporalAddressInsteadOfEmbedding(t *testing.T) {
	env := testenv.Start(t)
	base, stop := startDev(t, []string{"--http-addr", "127.0.0.1:0", "--ui-addr", "off", "--data-dir", t.TempDir()},
		map[string]string{"TEMPORAL_ADDRESS": env.Config.TemporalAddress})
	resp, err := http.Get(base + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	// A ping started on that server is answered (by either worker polling it).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run, err := env.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: workflows.PingWorkflowID("external"), TaskQueue: workflows.TaskQueue,
	}, workflows.PingWorkflowType, workflows.PingInput{Message: "external"})
	require.NoError(t, err)
	require.NoError(t, run.Get(ctx, nil))
	require.NoError(t, stop())
}
