package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/internal/config"
	"relay/internal/relaytest"
	"relay/internal/sim"
	"relay/internal/store"
	"relay/internal/testenv"
)

// TestMain lets a test start this test binary as a real `relay` process (to kill it with
// SIGKILL): with RELAY_TEST_MAIN set, the binary runs main's run with those arguments.
func TestMain(m *testing.M) {
	if args := os.Getenv("RELAY_TEST_MAIN"); args != "" {
		main2(strings.Fields(args))
		return
	}
	os.Exit(m.Run())
}

func main2(args []string) {
	os.Args = append([]string{"relay"}, args...)
	main()
}

// startWorkerProcess runs `relay worker` as a child process against env.
func startWorkerProcess(t *testing.T, env *relaytest.Env) *exec.Cmd {
	t.Helper()
	dbURL := env.Config.DatabaseURL
	if dbURL == "" {
		dbURL = store.DefaultURL(env.Config.DataDir)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(),
		"RELAY_TEST_MAIN=worker",
		"TEMPORAL_ADDRESS="+env.Config.TemporalAddress,
		"DATABASE_URL="+dbURL,
		"RELAY_LOG_LEVEL=warn",
		"INCIDENTS_API_URL="+env.Config.Incidents.URL, "INCIDENTS_API_USER="+env.Config.Incidents.User,
		"INCIDENTS_API_PASSWORD="+env.Config.Incidents.Password,
		"C42_API_URL="+env.Config.C42.URL, "C42_API_TOKEN="+env.Config.C42.Token,
		"GEOIP_API_URL="+env.Config.GeoIP.URL,
		"KF_API_URL="+env.Config.KF.URL, "KF_API_KEY="+env.Config.KF.APIKey,
		"KF_SYNC_INTERVAL="+env.Config.KF.SyncInterval.String(),
		// The same keys as the relay it joins: it reads what that one encrypted, and names
		// IP lookups alike.
		"RELAY_PAYLOAD_KEYS="+env.Config.PayloadKeys, "RELAY_WORKFLOW_ID_KEY="+env.Config.WorkflowIDKey,
	)
	logs := &testenv.SyncBuffer{}
	cmd.Stderr, cmd.Stdout = logs, logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		if t.Failed() {
			t.Logf("worker process output:\n%s", logs.String())
		}
	})
	return cmd
}

// A worker killed with SIGKILL in the middle of a burst, and another started later: every
// accepted event still ends located, and the geolocation API never sees more than 5 calls
// in a second.
func TestWorkerKilledMidBurstLosesNothing(t *testing.T) {
	testenv.EndToEnd(t)
	env := relaytest.Start(t, relaytest.WithoutWorker(), relaytest.WithConfig(func(c *config.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		c.GeoIP.SubmitRate = 1000
	}))
	first := startWorkerProcess(t, env)

	var ids []string
	for i := range 30 {
		req, _ := http.NewRequest(http.MethodPost, env.BaseURL+"/event/submit/", strings.NewReader(`{"name":"burst"}`))
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("9.%d.%d.7", 1+i/10, i%10))
		resp, err := env.HTTP.Do(req)
		require.NoError(t, err)
		var ok struct {
			Data struct {
				TaskID string `json:"task_id"`
			} `json:"data"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&ok))
		resp.Body.Close()
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
		ids = append(ids, ok.Data.TaskID)
	}
	state := func(id string) string {
		ev, err := env.Store.Event(t.Context(), id)
		require.NoError(t, err)
		return ev.State
	}
	countLocated := func() int {
		n := 0
		for _, id := range ids {
			if state(id) != store.EventPending {
				n++
			}
		}
		return n
	}
	require.Eventually(t, func() bool { return countLocated() >= 5 }, time.Minute, 100*time.Millisecond)
	require.NoError(t, first.Process.Signal(syscall.SIGKILL))
	_, _ = first.Process.Wait()
	killedAt := countLocated()
	require.Less(t, killedAt, len(ids), "the kill came mid-burst")

	startWorkerProcess(t, env)
	require.Eventually(t, func() bool { return countLocated() == len(ids) }, 3*time.Minute, 200*time.Millisecond,
		"events still pending after the restart")
	for _, id := range ids {
		assert.Equal(t, store.EventLocated, state(id))
	}
	calls := env.Sims.Sim(sim.GeoIP).Calls()
	assert.LessOrEqual(t, sim.MaxCallsPerWindow(calls, time.Second), 5)
	t.Logf("killed with %d of %d located; %d geolocation calls in all", killedAt, len(ids), len(calls))
}
