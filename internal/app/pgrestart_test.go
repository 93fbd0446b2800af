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

// postgresRestartEnv names the shell command that restarts the PostgreSQL server of
// RELAY_TEST_POSTGRES_URL. It is a separate switch because the restart cuts off every
// other test using that server: .ci/run runs this test alone, after the others.
const postgresRestartEnv = "RELAY_TEST_POSTGRES_RESTART"

// PostgreSQL restarted under load: events keep arriving while the database goes down and
// comes back. Each submission is either accepted (202) or refused with a clear 503 and
// Retry-After, never a 500; every accepted event ends located; the API and the worker
// reconnect by themselves.
func TestPostgresRestartedUnderLoad(t *testing.T) {
	testenv.EndToEnd(t)
	restart := os.Getenv(postgresRestartEnv)
	if restart == "" {
		t.Skipf("set %s to a command that restarts the PostgreSQL of %s (.ci/run sets "+
			"'pg_ctlcluster --skip-systemctl-redirect <version> main restart -m fast' and runs this test alone)",
			postgresRestartEnv, storetest.PostgresURLEnv)
	}
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
	start := time.Now()
	out, err := exec.Command("bash", "-c", restart).CombinedOutput()
	require.NoError(t, err, "%s: %s", restart, out)
	t.Logf("PostgreSQL restarted in %s", time.Since(start).Round(time.Millisecond))
	time.Sleep(5 * time.Second)
	close(stop)
	wg.Wait()

	t.Logf("%d accepted; refused by status: %v", len(accepted), refused)
	require.NotEmpty(t, accepted)
	for status := range refused {
		assert.Equal(t, http.StatusServiceUnavailable, status, "refusals are 503s (status 0: no answer)")
	}
	assert.Empty(t, bodies)
	// Events of one IP wait on the lookup its first event claimed; a claim whose holder
	// failed during the restart is only given up after its 5-minute TTL (seen in CI: 68 of
	// 357 still pending after 2 minutes). Issue 13 redesigns this; until then the promise
	// this test holds relay to is "located", within the claim's TTL.
	views := waitLocated(t, env, accepted, 6*time.Minute)
	for id, v := range views {
		assert.Equal(t, "located", v.State, id)
	}
	resp, _ := env.Do(t, http.MethodGet, "/readyz", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}
