package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"relay/internal/cluster"
	"relay/internal/sim"
)

// topologyEnv switches the topology tests on: they build the Temporal server (minutes the
// first time) and run nine processes, so `go test ./...` leaves them to .ci/run's own step.
const topologyEnv = "RELAY_TEST_TOPOLOGY"

var (
	buildOnce sync.Once
	bin       cluster.Binaries
	buildErr  error
)

// startCluster runs the topology for one test, with extra settings for relay's processes,
// and stops it (dropping its databases) when the test ends, with every log on failure.
func startCluster(t *testing.T, servers, workers int, knobs string, env ...string) *cluster.Cluster {
	t.Helper()
	if os.Getenv(topologyEnv) == "" {
		t.Skipf("the topology tests run with %s=1 (they need PostgreSQL at 127.0.0.1:5432 and build the Temporal server); "+
			".ci/run sets it: %s=1 go test -count=1 -timeout 30m ./internal/cluster", topologyEnv, topologyEnv)
	}
	buildOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		dir, err := os.MkdirTemp("", "relay-cluster-bin")
		if err != nil {
			buildErr = err
			return
		}
		bin, buildErr = cluster.Build(ctx, dir)
	})
	require.NoError(t, buildErr, "build the topology's programs")
	dir := t.TempDir()
	name := strings.ToLower(strings.NewReplacer("/", "_", "-", "_").Replace(t.Name()))
	if len(name) > 30 {
		name = name[:30]
	}
	name += fmt.Sprintf("_%d", time.Now().UnixNano()%1_000_000)
	// KF_SYNC_INTERVAL=0: the tests' own syncs of the default site only.
	c, err := cluster.Start(t.Context(), cluster.Options{
		Dir: dir, Name: name, Servers: servers, Workers: workers, Postgres: "127.0.0.1:5432", User: "postgres",
		SimKnobs: knobs, Env: append([]string{"RELAY_LOG_LEVEL=warn", "KF_SYNC_INTERVAL=0"}, env...), Bin: bin, Logf: t.Logf,
	})
	require.NoError(t, err, "start the topology")
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range c.Procs() {
				t.Logf("==== %s log (end):\n%s", p.Name, cluster.Tail(p.Log(), 60))
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Logf("stop the topology: %v", err)
		}
	})
	return c
}

var client = &http.Client{Timeout: 30 * time.Second}

// do sends a request and returns its status, headers and body; a transport error is status 0.
func do(method, url, body string, header ...string) (int, http.Header, []byte) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		panic(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// submit accepts an event from ip through base and returns its task id.
func submit(t *testing.T, base, ip string) string {
	t.Helper()
	status, _, body := do(http.MethodPost, base+"/event/submit/", `{"name":"topology","status_code":200}`, "X-Forwarded-For", ip)
	require.Equal(t, http.StatusAccepted, status, "submit from %s: %s", ip, body)
	var ok struct {
		Data struct {
			TaskID string `json:"task_id"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(body, &ok))
	return ok.Data.TaskID
}

// eventState is the event's state as base tells it ("" if base did not answer 200).
func eventState(base, id string) string {
	status, _, body := do(http.MethodGet, base+"/event/"+id, "")
	if status != http.StatusOK {
		return ""
	}
	var v struct {
		Data struct {
			State string `json:"state"`
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &v)
	return v.Data.State
}

// simCalls are the calls a simulator took, over its admin API.
func simCalls(t *testing.T, c *cluster.Cluster, name string) []sim.Call {
	t.Helper()
	status, _, body := do(http.MethodGet, c.SimURLs[name]+"/_sim/calls", "")
	require.Equal(t, http.StatusOK, status, string(body))
	var calls []sim.Call
	require.NoError(t, json.Unmarshal(body, &calls))
	return calls
}

// setKnobs changes a simulator's knobs while it runs.
func setKnobs(t *testing.T, c *cluster.Cluster, name, knobs string) {
	t.Helper()
	status, _, body := do(http.MethodPut, c.SimURLs[name]+"/_sim/knobs", knobs)
	require.Equal(t, http.StatusOK, status, string(body))
}
