package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/internal/config"
	"relay/internal/relaytest"
	"relay/internal/sim"
	"relay/internal/testenv"
)

// Every job mid-flight when its worker is SIGKILLed: another worker, started at once,
// finishes each of them with the right result. Work the dead worker had in hand is retried
// once its heartbeats stop (HeartbeatTimeout, 10 s), so this takes about 15 s.
// If the kill lands after the outage API took the POST but before Temporal heard of it,
// the retry posts again: the same body, which replaces the site's list with the same list.
func TestWorkerKilledMidJobFinishesEveryJob(t *testing.T) {
	testenv.EndToEnd(t)
	t.Parallel()
	env := relaytest.Start(t, relaytest.WithoutWorker(), relaytest.WithConfig(func(c *config.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		c.GeoIP.SubmitRate = 1000
		c.SimKnobs = "latency=1500ms" // every upstream call is in flight long enough to be cut off
	}))
	first := startWorkerProcess(t, env)

	refresh := postJSON(t, env.HTTP, env.BaseURL+"/incidents/refresh", "", http.StatusAccepted)
	postJSON(t, env.HTTP, env.BaseURL+"/sites/kingfisher/outage-sync", "", http.StatusAccepted)
	var events []string
	for i := range 5 {
		events = append(events, submitFrom(t, env.HTTP, env.BaseURL, fmt.Sprintf("9.%d.3.1", 60+i)))
	}
	merged := make(chan int, 1)
	go func() { merged <- getStatus(env.HTTP, env.BaseURL+"/events-with-subscriptions/"+sim.C42EventTeamSync) }()

	// Kill once every upstream has a call in flight from the first worker.
	require.Eventually(t, func() bool {
		for _, name := range sim.Names {
			if len(env.Sims.Sim(name).Calls()) == 0 {
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond)
	require.NoError(t, first.Process.Signal(syscall.SIGKILL))
	_, _ = first.Process.Wait()
	startWorkerProcess(t, env)

	ctx := t.Context()
	require.NoError(t, env.Client.GetWorkflow(ctx, refresh["workflow_id"], refresh["run_id"]).Get(ctx, nil), "incidents refresh")
	// The merge request may have given up (504) while its activity waited out the dead
	// worker; it is not cached, so asking again gets the merge.
	if status := <-merged; status != http.StatusOK {
		assert.Equal(t, http.StatusGatewayTimeout, status)
		assert.Equal(t, http.StatusOK, getStatus(env.HTTP, env.BaseURL+"/events-with-subscriptions/"+sim.C42EventTeamSync))
	}
	require.Eventually(t, func() bool {
		return syncState(t, env.HTTP, env.BaseURL) != "running"
	}, 3*time.Minute, 200*time.Millisecond)
	assert.Equal(t, "completed", syncState(t, env.HTTP, env.BaseURL))
	kf := env.Sims.Sim(sim.KF).Routes().(*sim.KFAPI)
	accepted := 0
	for _, p := range kf.Posts() {
		if p.Status == http.StatusOK {
			accepted++
			assert.Equal(t, string(kf.Expected("kingfisher")), string(p.Body))
		}
	}
	assert.GreaterOrEqual(t, accepted, 1, "accepted POSTs")
	t.Logf("%d accepted POSTs, each of the expected body", accepted)
	for _, id := range events {
		require.Eventually(t, func() bool { return eventState(t, env.HTTP, env.BaseURL, id) == "located" },
			2*time.Minute, 200*time.Millisecond, "event %s", id)
	}
}

var simLine = regexp.MustCompile(`simulator (\S+)\s+(http://\S+)`)

// devProcess is `relay dev` running as a child process of the test.
type devProcess struct {
	cmd  *exec.Cmd
	out  *testenv.SyncBuffer
	base string            // the HTTP API
	sims map[string]string // simulator name → URL
}

// startDevProcess runs `relay dev` with args as a real process and waits for /readyz.
func startDevProcess(t *testing.T, args ...string) *devProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "RELAY_TEST_MAIN=dev "+strings.Join(args, " "), "RELAY_LOG_LEVEL=warn",
		"KF_SYNC_INTERVAL=0") // the test's own syncs only (see relaytest.Start)
	p := &devProcess{cmd: cmd, out: &testenv.SyncBuffer{}, sims: map[string]string{}}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		if t.Failed() {
			t.Logf("relay dev output:\n%s", p.out.String())
		}
	})
	require.Eventually(t, func() bool {
		m := httpLine.FindStringSubmatch(p.out.String())
		if m == nil {
			return false
		}
		p.base = "http://" + m[1]
		resp, err := http.Get(p.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, time.Minute, 50*time.Millisecond, "relay dev not ready")
	for _, m := range simLine.FindAllStringSubmatch(p.out.String(), -1) {
		p.sims[m[1]] = m[2]
	}
	return p
}

// `relay dev` SIGKILLed mid-job (an outage sync and events in flight) and started again on
// the same data dir: the jobs finish, as if nothing had happened but a delay.
func TestDevKilledMidJobFinishesAfterRestart(t *testing.T) {
	testenv.EndToEnd(t)
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	args := []string{"--http-addr", "127.0.0.1:0", "--temporal-listen", testenv.FreeAddr(t), "--ui-addr", "off",
		"--data-dir", dataDir, "--trusted-proxies", "127.0.0.1/32", "--sim-knobs", "latency=1500ms"}
	dev := startDevProcess(t, args...)
	client := &http.Client{Timeout: 30 * time.Second}

	postJSON(t, client, dev.base+"/sites/kingfisher/outage-sync", "", http.StatusAccepted)
	var events []string
	for i := range 3 {
		events = append(events, submitFrom(t, client, dev.base, fmt.Sprintf("9.%d.5.1", 70+i)))
	}
	require.Eventually(t, func() bool {
		var calls []sim.Call
		return getJSON(client, dev.sims[sim.KF]+"/_sim/calls", &calls) == nil && len(calls) > 0
	}, 30*time.Second, 20*time.Millisecond, "the sync reached the outage API")
	require.NoError(t, dev.cmd.Process.Signal(syscall.SIGKILL))
	_, _ = dev.cmd.Process.Wait()

	dev = startDevProcess(t, args...)
	require.Eventually(t, func() bool {
		return syncState(t, client, dev.base) != "running"
	}, 3*time.Minute, 200*time.Millisecond)
	assert.Equal(t, "completed", syncState(t, client, dev.base))
	for _, id := range events {
		require.Eventually(t, func() bool { return eventState(t, client, dev.base, id) == "located" },
			2*time.Minute, 200*time.Millisecond, "event %s", id)
	}
	// The restarted simulator took exactly one POST, and it was right.
	var calls []sim.Call
	require.NoError(t, getJSON(client, dev.sims[sim.KF]+"/_sim/calls", &calls))
	posts := 0
	for _, c := range calls {
		if c.Method == http.MethodPost && c.Status == http.StatusOK {
			posts++
		}
	}
	assert.Equal(t, 1, posts, "accepted POSTs after the restart")
}

func postJSON(t *testing.T, c *http.Client, url, body string, want int) map[string]string {
	t.Helper()
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, want, resp.StatusCode, "POST %s: %s", url, b)
	var out map[string]string
	_ = json.Unmarshal(b, &out)
	return out
}

func submitFrom(t *testing.T, c *http.Client, base, ip string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/event/submit/", strings.NewReader(`{"name":"mid-job","status_code":200}`))
	require.NoError(t, err)
	req.Header.Set("X-Forwarded-For", ip)
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var ok struct {
		Data struct {
			TaskID string `json:"task_id"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&ok))
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	return ok.Data.TaskID
}

func getStatus(c *http.Client, url string) int {
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func getJSON(c *http.Client, url string, out any) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func syncState(t *testing.T, c *http.Client, base string) string {
	t.Helper()
	var st struct {
		State string `json:"state"`
	}
	require.NoError(t, getJSON(c, base+"/sites/kingfisher/outage-sync", &st))
	return st.State
}

func eventState(t *testing.T, c *http.Client, base, id string) string {
	t.Helper()
	var v struct {
		Data struct {
			State string `json:"state"`
		} `json:"data"`
	}
	require.NoError(t, getJSON(c, base+"/event/"+id, &v))
	return v.Data.State
}
