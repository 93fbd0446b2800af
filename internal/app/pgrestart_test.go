package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/internal/config"
	"relay/internal/relaytest"
	"relay/internal/store/storetest"
	"relay/internal/testenv"
)

// postgresCtlEnv names the shell command that controls the PostgreSQL server of
// RELAY_TEST_POSTGRES_URL, to which the tests append "stop -m fast", "start" or "restart
// -m fast" (.ci/run: 'pg_ctlcluster --skip-systemctl-redirect <version> main'). It is a
// separate switch because stopping the server cuts off every other test using it: .ci/run
// runs these tests alone, after the others.
const postgresCtlEnv = "RELAY_TEST_POSTGRES_CTL"

// postgresCtl returns a function that runs the control command with an action, or skips
// the test, saying how to switch it on.
func postgresCtl(t *testing.T) func(action string) {
	t.Helper()
	testenv.EndToEnd(t)
	ctl := os.Getenv(postgresCtlEnv)
	if ctl == "" {
		t.Skipf("set %s to a command that controls the PostgreSQL of %s (.ci/run sets "+
			"'pg_ctlcluster --skip-systemctl-redirect <version> main' and runs this test alone)",
			postgresCtlEnv, storetest.PostgresURLEnv)
	}
	return func(action string) {
		t.Helper()
		start := time.Now()
		out, err := exec.Command("bash", "-c", ctl+" "+action).CombinedOutput()
		require.NoError(t, err, "%s %s: %s", ctl, action, out)
		t.Logf("PostgreSQL %s: %s", action, time.Since(start).Round(time.Millisecond))
	}
}

// PostgreSQL restarted under load: events keep arriving while the database goes down and
// comes back. Each submission is either accepted (202) or refused with a clear 503 and
// Retry-After, never a 500; every accepted event ends located; the API and the worker
// reconnect by themselves.
func TestPostgresRestartedUnderLoad(t *testing.T) {
	pgctl := postgresCtl(t)
	dbURL := storetest.PostgresURL(t)
	env := relaytest.Start(t, relaytest.WithConfig(func(c *config.Config) {
		faultTolerantConfig(c)
		c.DatabaseURL = dbURL
	}))

	var (
		mu       sync.Mutex
		accepted []string
		refused  = map[int]int{}
		bodies   []string
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second}
	for w := range 4 { // about 40 submissions a second in all
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				req, _ := http.NewRequest(http.MethodPost, env.BaseURL+"/event/submit/",
					strings.NewReader(fmt.Sprintf(`{"name":"load %d-%d","status_code":200}`, w, i)))
				req.Header.Set("X-Forwarded-For", fmt.Sprintf("9.9.%d.%d", w, i%3))
				resp, err := client.Do(req)
				if err != nil {
					mu.Lock()
					refused[0]++
					bodies = append(bodies, err.Error())
					mu.Unlock()
					continue
				}
				var ok struct {
					Data struct {
						TaskID string `json:"task_id"`
					} `json:"data"`
				}
				_ = json.NewDecoder(resp.Body).Decode(&ok)
				resp.Body.Close()
				mu.Lock()
				if resp.StatusCode == http.StatusAccepted {
					accepted = append(accepted, ok.Data.TaskID)
				} else {
					refused[resp.StatusCode]++
					if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
						bodies = append(bodies, "503 without Retry-After")
					}
				}
				mu.Unlock()
			}
		})
	}

	time.Sleep(3 * time.Second)
	pgctl("restart -m fast")
	time.Sleep(5 * time.Second)
	close(stop)
	wg.Wait()

	t.Logf("%d accepted; refused by status: %v", len(accepted), refused)
	require.NotEmpty(t, accepted)
	for status := range refused {
		assert.Equal(t, http.StatusServiceUnavailable, status, "refusals are 503s (status 0: no answer)")
	}
	assert.Empty(t, bodies)
	views := waitLocated(t, env, accepted, geoRecovery)
	for id, v := range views {
		assert.Equal(t, "located", v.State, id)
	}
	resp, _ := env.Do(t, http.MethodGet, "/readyz", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// PostgreSQL stopped for three minutes in the middle of a backlog: every event accepted
// before and after ends located within geoRecovery of its return, none unlocatable (the
// limiter's and the settle's store errors are relay's, retried without a cap), and
// submissions while it is down are refused with 503 and Retry-After.
func TestGeolocationOutlastsAPostgresOutage(t *testing.T) {
	pgctl := postgresCtl(t)
	env := relaytest.Start(t, relaytest.WithConfig(func(c *config.Config) {
		faultTolerantConfig(c)
		c.DatabaseURL = storetest.PostgresURL(t)
	}))
	ids := submitMany(t, env, ipsOf(5, 150, 2)) // 75 distinct IPs: about 16 s of lookups
	time.Sleep(3 * time.Second)
	pgctl("stop -m fast")
	t.Cleanup(func() { // never leave the server down for the next test, even on a failure
		if out, err := exec.Command("bash", "-c", os.Getenv(postgresCtlEnv)+" start").CombinedOutput(); err != nil {
			t.Logf("PostgreSQL start on cleanup: %v: %s", err, out) // "already running" after a pass
		}
	})
	down := time.Now()
	resp, body := env.Do(t, http.MethodPost, "/event/submit/", strings.NewReader(`{"name":"while the store is down"}`),
		"X-Forwarded-For", "9.6.0.1")
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, string(body))
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
	time.Sleep(geoOutage - time.Since(down))
	pgctl("start")
	recovered := time.Now()
	testenv.WaitFor(t, time.Minute, func() error {
		if resp, body := env.Do(t, http.MethodGet, "/readyz", nil); resp.StatusCode != http.StatusOK {
			return testenv.Waitf("not ready again: GET /readyz answers %d %s", resp.StatusCode, body)
		}
		return nil
	})
	ids = append(ids, submitMany(t, env, ipsOf(6, 40, 2))...)
	views := waitLocated(t, env, ids, geoRecovery)
	t.Logf("%d events located %s after PostgreSQL came back", len(ids), time.Since(recovered).Round(time.Second))
	for id, v := range views {
		assert.Equal(t, "located", v.State, "event %s from %s", id, v.IP)
	}
}
