package cluster_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/internal/cluster"
	"relay/internal/sim"
	"relay/internal/testenv"
)

// The settings of every topology test's relay: submissions from the test's many IPs are
// trusted as forwarded by a proxy, and not throttled per client.
var topologyEnvSettings = []string{"RELAY_TRUSTED_PROXIES=127.0.0.1/32", "RELAY_SUBMIT_RATE_LIMIT=1000", "RELAY_SUBMIT_BURST=1000"}

// calendarFetches counts the calendar API's fetches of one event (not its subscriptions).
func calendarFetches(t *testing.T, c *cluster.Cluster, eventID string) int {
	n, err := c.CalendarFetches(eventID)
	require.NoError(t, err)
	return n[0]
}

// Every job, driven through both servers of the production shape (the Temporal server on
// PostgreSQL, two relay servers, three workers, relay sim): what one server starts or
// caches, the other serves.
func TestTopologyRunsEveryJobThroughBothServers(t *testing.T) {
	testenv.EndToEnd(t)
	c := startCluster(t, 2, 3, "", topologyEnvSettings...)
	s1, s2 := c.ServerURLs[0], c.ServerURLs[1]

	t.Run("merge: one calendar fetch per event per TTL, whichever server asks", func(t *testing.T) {
		status, h, first := do(http.MethodGet, s1+"/events-with-subscriptions/"+sim.C42EventTeamSync, "")
		require.Equal(t, http.StatusOK, status, string(first))
		assert.Equal(t, "MISS", h.Get("X-Cache"))
		status, _, second := do(http.MethodGet, s2+"/events-with-subscriptions/"+sim.C42EventTeamSync, "")
		require.Equal(t, http.StatusOK, status, string(second))
		assert.JSONEq(t, string(first), string(second))
		assert.Equal(t, 1, calendarFetches(t, c, sim.C42EventTeamSync), "calendar fetches of the event")
	})

	t.Run("geolocation: accepted by either server, located, read on the other", func(t *testing.T) {
		bases := []string{s1, s2}
		ids := map[string]string{} // task id → the server that did not accept it
		for i := range 20 {
			ids[submit(t, bases[i%2], fmt.Sprintf("9.%d.7.1", 10+i%10))] = bases[(i+1)%2]
		}
		testenv.WaitFor(t, 2*time.Minute, func() error {
			for id, other := range ids {
				if st := eventState(other, id); st != "located" {
					return fmt.Errorf("event %s is %q on %s", id, st, other)
				}
			}
			return nil
		})
		geo := 0
		for _, call := range simCalls(t, c, sim.GeoIP) {
			if call.Status == http.StatusOK {
				geo++
			}
		}
		assert.LessOrEqual(t, geo, 10, "geolocation calls: one per distinct IP")
	})

	t.Run("incidents: refreshed through one server, served by the other", func(t *testing.T) {
		asked := time.Now()
		status, _, body := do(http.MethodPost, s1+"/incidents/refresh", "")
		require.Equal(t, http.StatusAccepted, status, string(body))
		assert.Regexp(t, `"refresh":"(started|joined)"`, string(body))
		// Served by the other server: a snapshot younger than the request.
		testenv.WaitFor(t, 2*time.Minute, func() error {
			status, h, body := do(http.MethodGet, s2+"/incidents", "")
			if status != http.StatusOK {
				return fmt.Errorf("GET /incidents on the other server: %d %.200s", status, body)
			}
			age, err := strconv.Atoi(h.Get("X-Snapshot-Age"))
			if err != nil {
				return fmt.Errorf("X-Snapshot-Age %q: %v", h.Get("X-Snapshot-Age"), err)
			}
			if time.Duration(age+1)*time.Second >= time.Since(asked) {
				return fmt.Errorf("the other server serves a snapshot %d s old, from before the refresh asked %s ago", age, time.Since(asked))
			}
			return nil
		})
	})

	t.Run("outage sync: started on one server, followed on the other", func(t *testing.T) {
		status, _, body := do(http.MethodPost, s2+"/sites/kingfisher/outage-sync", "")
		require.Equal(t, http.StatusAccepted, status, string(body))
		testenv.WaitFor(t, 2*time.Minute, func() error {
			status, _, body := do(http.MethodGet, s1+"/sites/kingfisher/outage-sync", "")
			if status != http.StatusOK || !bytes.Contains(body, []byte(`"state":"completed"`)) {
				return fmt.Errorf("GET on the other server: %d %s", status, body)
			}
			return nil
		})
		posts := 0
		for _, call := range simCalls(t, c, sim.KF) {
			if call.Method == http.MethodPost && call.Status == http.StatusOK {
				posts++
			}
		}
		assert.Equal(t, 1, posts, "accepted POSTs to the outage API")
	})
}

// answered records what clients were told while a fault lasted: each request gets its
// answer, or 503 with Retry-After, never anything else (a killed server's own requests
// excepted: their connections die with it).
type answered struct {
	mu     sync.Mutex
	counts map[string]int
	bad    []string
}

func (a *answered) note(what string, status int, h http.Header, body []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.counts == nil {
		a.counts = map[string]int{}
	}
	a.counts[fmt.Sprintf("%s %d", what, status)]++
	ok := status == http.StatusOK || status == http.StatusAccepted ||
		(status == http.StatusServiceUnavailable && h.Get("Retry-After") != "")
	if !ok {
		a.bad = append(a.bad, fmt.Sprintf("%s: %d %s", what, status, body))
	}
}

// The production shape's faults, one after another on one topology, with work in flight
// each time: the Temporal server SIGKILLed and restarted, a worker SIGKILLed, a server
// SIGKILLed while requests wait on merges, and (with RELAY_TEST_POSTGRES_CTL) PostgreSQL
// restarted. Every accepted event ends located exactly once, every job completes, and
// every request is answered or refused with 503 and Retry-After.
func TestTopologySurvivesKills(t *testing.T) {
	testenv.EndToEnd(t)
	c := startCluster(t, 2, 3, "geoip:latency=300ms;c42:latency=300ms", topologyEnvSettings...)
	s1, s2 := c.ServerURLs[0], c.ServerURLs[1]
	var seen answered
	var accepted []string
	var acceptedMu sync.Mutex
	submitAll := func(n, ipBase int) {
		for i := range n {
			base := []string{s1, s2}[i%2]
			status, h, body := do(http.MethodPost, base+"/event/submit/", `{"name":"topology","status_code":200}`,
				"X-Forwarded-For", fmt.Sprintf("9.%d.%d.1", ipBase, i%25))
			seen.note("submit", status, h, body)
			if status == http.StatusAccepted {
				var id string
				if _, after, ok := strings.Cut(string(body), `"task_id":"`); ok {
					id, _, _ = strings.Cut(after, `"`)
				}
				acceptedMu.Lock()
				accepted = append(accepted, id)
				acceptedMu.Unlock()
			}
		}
	}
	allLocated := func(within time.Duration) {
		t.Helper()
		start := time.Now()
		testenv.WaitFor(t, within, func() error {
			pending := 0
			for _, id := range accepted {
				if eventState(s2, id) != "located" {
					pending++
				}
			}
			if pending > 0 {
				return fmt.Errorf("%d of %d accepted events not located", pending, len(accepted))
			}
			return nil
		})
		t.Logf("all %d accepted events located %s after the check began", len(accepted), time.Since(start).Round(time.Second))
	}

	t.Run("Temporal server SIGKILLed mid-backlog and restarted", func(t *testing.T) {
		submitAll(50, 20)
		c.Temporal.Kill()
		killed := time.Now()
		// While it is away: submissions are still taken (the store is the outbox); a merge
		// that needs Temporal is refused with 503 and Retry-After.
		submitAll(20, 21)
		status, h, body := do(http.MethodGet, s1+"/events-with-subscriptions/"+sim.C42EventEmpty, "")
		seen.note("merge while Temporal is away", status, h, body)
		assert.Equal(t, http.StatusServiceUnavailable, status, string(body))
		time.Sleep(20 * time.Second)
		require.NoError(t, c.RestartTemporal(t.Context()))
		t.Logf("Temporal away %s", time.Since(killed).Round(time.Second))
		var back time.Time
		testenv.WaitFor(t, 2*time.Minute, func() error {
			status, h, body := do(http.MethodGet, s2+"/events-with-subscriptions/"+sim.C42EventEmpty, "")
			seen.note("merge after Temporal's restart", status, h, body)
			if status != http.StatusOK {
				return fmt.Errorf("merge: %d %s", status, body)
			}
			back = time.Now()
			return nil
		})
		t.Logf("merges answered again %s after the kill", back.Sub(killed).Round(time.Second))
		allLocated(3 * time.Minute)
	})

	t.Run("a worker SIGKILLed mid-jobs", func(t *testing.T) {
		status, h, body := do(http.MethodPost, s1+"/sites/kingfisher/outage-sync", "")
		seen.note("outage sync", status, h, body)
		submitAll(40, 22)
		time.Sleep(time.Second)
		c.Workers[0].Kill()
		allLocated(3 * time.Minute)
		testenv.WaitFor(t, 3*time.Minute, func() error {
			status, _, body := do(http.MethodGet, s2+"/sites/kingfisher/outage-sync", "")
			if status != http.StatusOK || !bytes.Contains(body, []byte(`"state":"completed"`)) {
				return fmt.Errorf("outage sync: %d %s", status, body)
			}
			return nil
		})
		require.NoError(t, c.Restart(t.Context(), c.Workers[0]))
	})

	t.Run("a server SIGKILLed while requests wait on merges", func(t *testing.T) {
		setKnobs(t, c, sim.C42, "latency=2s")
		var wg sync.WaitGroup
		for range 5 {
			wg.Go(func() { do(http.MethodGet, s1+"/events-with-subscriptions/"+sim.C42EventAllHands, "") })
		}
		for range 5 {
			wg.Go(func() {
				status, h, body := do(http.MethodGet, s2+"/events-with-subscriptions/"+sim.C42EventAllHands, "")
				seen.note("merge on the surviving server", status, h, body)
			})
		}
		time.Sleep(500 * time.Millisecond)
		c.Servers[0].Kill()
		wg.Wait()
		status, h, body := do(http.MethodGet, s2+"/events-with-subscriptions/"+sim.C42EventAllHands, "")
		seen.note("merge after the kill", status, h, body)
		assert.Equal(t, http.StatusOK, status, string(body))
		assert.Equal(t, 1, calendarFetches(t, c, sim.C42EventAllHands), "calendar fetches of the event")
		setKnobs(t, c, sim.C42, "latency=300ms")
		require.NoError(t, c.Restart(t.Context(), c.Servers[0]))
	})

	t.Run("PostgreSQL restarted under load", func(t *testing.T) {
		ctl := os.Getenv("RELAY_TEST_POSTGRES_CTL")
		if ctl == "" {
			t.Skip("set RELAY_TEST_POSTGRES_CTL to the command that controls PostgreSQL (.ci/run does, in the topology step)")
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			submitAll(60, 23)
		}()
		out, err := exec.Command("bash", "-c", ctl+" restart -m fast").CombinedOutput()
		require.NoError(t, err, string(out))
		<-done
		allLocated(3 * time.Minute)
	})

	t.Logf("answers: %v", seen.counts)
	assert.Empty(t, seen.bad, "answers other than 200/202 or 503 with Retry-After")
	// Located exactly once: every accepted id is distinct and located; the API was asked once per IP.
	ids := map[string]bool{}
	for _, id := range accepted {
		assert.False(t, ids[id], "task id %s accepted twice", id)
		ids[id] = true
	}
}
