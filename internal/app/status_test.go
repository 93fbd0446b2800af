package app_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"

	"relay/activities"
	"relay/internal/app"
	"relay/internal/config"
	"relay/internal/htmltest"
	"relay/internal/relaytest"
	"relay/internal/sim"
	"relay/internal/testenv"
	"relay/workflows"
)

// chromiumEnv names the browser binary the status page test runs; artifactsEnv the
// directory its screenshot is kept in.
const (
	chromiumEnv  = "RELAY_TEST_CHROMIUM"
	artifactsEnv = "RELAY_TEST_ARTIFACTS"
)

// chromium is the browser to load the status page in. Without RELAY_TEST_CHROMIUM the test
// is skipped with how to turn it on (and fails in CI, where it must run).
func chromium(t *testing.T) string {
	t.Helper()
	bin := os.Getenv(chromiumEnv)
	if bin == "" {
		msg := "the status page test loads the page in headless Chromium: install it " +
			"(Debian: apt-get install chromium) and set " + chromiumEnv + "=/usr/bin/chromium, e.g. " +
			chromiumEnv + "=/usr/bin/chromium go test ./internal/app -run TestStatusPageInChromium (.ci/run does both)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if _, err := exec.LookPath(bin); err != nil {
		t.Fatalf("%s=%s: %v (Debian: apt-get install chromium)", chromiumEnv, bin, err)
	}
	return bin
}

// runChromium runs headless Chromium on url with extra flags and returns its stdout.
func runChromium(t *testing.T, bin, pageURL string, flags ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(),
	}, flags...)
	cmd := exec.CommandContext(ctx, bin, append(args, pageURL)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	require.NoError(t, err, "chromium %v: %s", flags, tail(stderr.String(), 2000))
	t.Logf("chromium %v: %v", flags, time.Since(start).Round(time.Millisecond))
	return stdout.Bytes()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// artifactsDir is where the screenshot is kept: RELAY_TEST_ARTIFACTS, or a temporary
// directory that outlives the test.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(artifactsEnv)
	if dir == "" {
		var err error
		dir, err = os.MkdirTemp("", "relay-test-artifacts-")
		require.NoError(t, err)
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

// The status page, loaded in a real browser from a running relay whose every job has run:
// each panel shows the numbers relay itself reports, and a screenshot is kept.
func TestStatusPageInChromium(t *testing.T) {
	testenv.EndToEnd(t) // first: in CI chromium fails the test when RELAY_TEST_CHROMIUM is unset
	bin := chromium(t)
	const uiURL = "http://temporal-ui.test:8233"
	env := relaytest.Start(t, relaytest.WithConfig(func(c *config.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		c.GeoIP.SubmitRate = 1000
		c.TemporalUIURL = uiURL
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Run every job for real. Incidents: the schedule's first run at start.
	waitSnapshot(t, env)
	// Geolocation: a burst of distinct public addresses, one geo API call each, which the
	// limiter spreads over a few seconds at the limit.
	const geoEvents = 12
	var tasks, ips []string
	for i := range geoEvents {
		ips = append(ips, fmt.Sprintf("81.2.69.%d", 10+i))
		tasks = append(tasks, submit(t, env, ips[i], `{"name":"status-page","status_code":200}`))
	}
	waitLocated(t, env, tasks, time.Minute)
	// Cached merge: a miss, then a hit.
	for _, want := range []string{"MISS", "HIT"} {
		resp, _, body := getEvent(t, env, "/events-with-subscriptions/"+teamSync)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		require.Equal(t, want, resp.Header.Get("X-Cache"))
	}
	// Outage sync of kingfisher.
	_, syncRun := startSync(t, env, "kingfisher", "")
	synced := waitSync(t, env, "kingfisher")
	require.Equal(t, "completed", synced.State)
	require.NotNil(t, synced.Result)

	// What relay itself says, to hold the page to.
	resp, incidentsBody := env.Do(t, http.MethodGet, "/incidents", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	snapshotID, _, err := env.Store.LatestSnapshotID(ctx)
	require.NoError(t, err)
	incidentsRun := latestRun(t, env, workflows.AggregateIncidentsWorkflowType)
	mergeRun := describeRun(t, env, workflows.EventSubscriptionsWorkflowID(teamSync))
	geoRuns := map[string]string{}
	for _, ip := range ips { // one lookup per IP
		geoRuns[workflows.GeolocateWorkflowID([]byte(env.Config.WorkflowIDKey), ip)] = describeRun(t, env, workflows.GeolocateWorkflowID([]byte(env.Config.WorkflowIDKey), ip))
	}
	geoCalls := 0
	counts, err := env.Store.CallsPerSecond(ctx, activities.GeoRateKey, time.Now().Add(-5*time.Minute), time.Now())
	require.NoError(t, err)
	for _, c := range counts {
		geoCalls += c.Calls
	}
	simCalls := len(env.Sims.Sim(sim.GeoIP).Calls())
	require.GreaterOrEqual(t, simCalls, len(tasks), "one geo API call per distinct address at least")
	require.GreaterOrEqual(t, geoCalls, simCalls, "every call is counted in the store")

	// Visibility catches up asynchronously: wait until the page lists every run we started.
	waitPage(t, env, func(page string) bool {
		for _, id := range []string{incidentsRun, mergeRun, syncRun} {
			if !strings.Contains(page, `data-run-id="`+id+`"`) {
				return false
			}
		}
		return strings.Contains(page, fmt.Sprintf(`data-status="completed" data-count="%d"`, geoEvents))
	})

	// The page as a browser renders it.
	dom := string(runChromium(t, bin, env.BaseURL+"/", "--dump-dom"))
	require.Contains(t, dom, "relay status", "chromium rendered something else: %s", tail(dom, 500))
	assert.NotContains(t, dom, `class="error"`, "no panel failed")

	// Readiness, as /readyz says.
	assert.Equal(t, "ready", htmltest.DataValue(t, dom, "ready"))
	assert.Contains(t, dom, `data-check="temporal" data-state="ok"`)
	assert.Contains(t, dom, `data-check="database" data-state="ok"`)

	// The snapshot GET /incidents serves.
	assert.Equal(t, strconv.Itoa(len(incidentsBody)), htmltest.DataValue(t, dom, "snapshot-bytes"))
	assert.Equal(t, strconv.FormatInt(snapshotID, 10), htmltest.DataValue(t, dom, "snapshot-id"))
	age, err := strconv.Atoi(htmltest.DataValue(t, dom, "snapshot-age"))
	require.NoError(t, err)
	assert.GreaterOrEqual(t, age, 0)
	assert.Less(t, age, 300, "the snapshot is from this test's relay")

	// The merge cache: the test's miss and hit.
	assert.Equal(t, "1", htmltest.DataValue(t, dom, "cache-hits"))
	assert.Equal(t, "1", htmltest.DataValue(t, dom, "cache-misses"))
	assert.Equal(t, "0.5000", htmltest.DataValue(t, dom, "cache-ratio"))
	assert.Contains(t, dom, "50.0%")

	// Geo calls, as the store counted them, against the configured limit.
	assert.Equal(t, strconv.Itoa(geoCalls), htmltest.DataValue(t, dom, "geo-total"))
	assert.Equal(t, fmt.Sprint(env.Config.GeoIP.RateLimit), htmltest.DataValue(t, dom, "geo-limit"))
	peak, err := strconv.Atoi(htmltest.DataValue(t, dom, "geo-peak"))
	require.NoError(t, err)
	assert.GreaterOrEqual(t, peak, 1)
	assert.LessOrEqual(t, float64(peak), env.Config.GeoIP.RateLimit, "never over the limit")
	chart := htmltest.Element(t, dom, "svg", "id", "geo-chart")
	assert.Equal(t, len(counts), strings.Count(chart, `<rect class="bar"`), "a bar per second with calls")

	// Each job's panel lists its runs, linked to the Web UI.
	link := func(workflowID, runID string) string {
		return `href="` + uiURL + "/namespaces/default/workflows/" + url.PathEscape(workflowID) + "/" + runID + `/history"`
	}
	incidents := htmltest.Element(t, dom, "section", "id", "job-"+workflows.AggregateIncidentsWorkflowType)
	assert.Contains(t, incidents, `data-run-id="`+incidentsRun+`" data-status="completed"`)
	merge := htmltest.Element(t, dom, "section", "id", "job-"+workflows.MergeEventSubscriptionsWorkflowType)
	// The event's workflow stays alive for the cache TTL, answering every server's asks.
	assert.Contains(t, merge, `data-run-id="`+mergeRun+`" data-status="running"`)
	assert.Contains(t, merge, link(workflows.EventSubscriptionsWorkflowID(teamSync), mergeRun))
	geo := htmltest.Element(t, dom, "section", "id", "job-"+workflows.GeolocateWorkflowType)
	listed := regexp.MustCompile(`data-workflow-id="([^"]+)" data-run-id="([^"]+)" data-status="completed"`).FindAllStringSubmatch(geo, -1)
	assert.Len(t, listed, 6, "the latest runs of the job")
	for _, row := range listed {
		assert.Equal(t, geoRuns[row[1]], row[2], "run of %s", row[1])
		assert.Contains(t, geo, link(row[1], row[2]))
	}
	assert.Contains(t, geo, fmt.Sprintf(`data-status="completed" data-count="%d"`, geoEvents), "all runs of the job, by status")
	syncs := htmltest.Element(t, dom, "section", "id", "job-"+workflows.SyncSiteOutagesWorkflowType)
	assert.Contains(t, syncs, `data-run-id="`+syncRun+`" data-status="completed"`)
	for _, panel := range []string{incidents, merge, geo, syncs} {
		assert.Regexp(t, `data-duration-ms="\d+"`, panel)
		assert.Contains(t, panel, "<rect ", "a duration bar per run")
	}

	// The latest outage sync of kingfisher, with its counts.
	kf := htmltest.Element(t, dom, "tr", "id", "site-kingfisher")
	assert.Contains(t, kf, `data-run-id="`+syncRun+`" data-status="completed"`)
	for name, n := range map[string]int{
		"fetched": synced.Result.Fetched, "kept": synced.Result.Kept, "dropped_before_since": synced.Result.DroppedBeforeSince,
		"dropped_unknown_device": synced.Result.DroppedUnknownDevice, "posted": synced.Result.Posted,
	} {
		assert.Contains(t, kf, fmt.Sprintf(`data-count="%s">%d<`, name, n))
	}
	assert.Contains(t, kf, link(workflows.OutageSyncWorkflowID("kingfisher"), syncRun))

	// A screenshot, kept as the test's artifact.
	shot := filepath.Join(artifactsDir(t), "status.png")
	_ = os.Remove(shot)
	runChromium(t, bin, env.BaseURL+"/", "--screenshot="+shot, "--window-size=1280,1600")
	f, err := os.Open(shot)
	require.NoError(t, err, "chromium wrote no screenshot")
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	assert.Equal(t, image.Rect(0, 0, 1280, 1600), img.Bounds())
	assert.Greater(t, distinctColors(img, 64), 8, "the screenshot is not blank")
	t.Logf("screenshot of the status page: %s", shot)
}

// latestRun is the run id of a workflow type's newest run, from Temporal's visibility.
func latestRun(t *testing.T, env *relaytest.Env, workflowType string) string {
	t.Helper()
	var newest string
	testenv.WaitFor(t, 30*time.Second, func() error {
		resp, err := env.Client.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("WorkflowType = '%s'", workflowType),
		})
		require.NoError(t, err)
		var newestStart time.Time
		for _, e := range resp.GetExecutions() {
			if s := e.GetStartTime().AsTime(); newest == "" || s.After(newestStart) {
				newest, newestStart = e.GetExecution().GetRunId(), s
			}
		}
		if newest == "" {
			return testenv.Waitf("no %s run in visibility yet", workflowType)
		}
		return nil
	})
	return newest
}

func describeRun(t *testing.T, env *relaytest.Env, workflowID string) string {
	t.Helper()
	desc, err := env.Client.DescribeWorkflowExecution(context.Background(), workflowID, "")
	require.NoError(t, err, workflowID)
	return desc.GetWorkflowExecutionInfo().GetExecution().GetRunId()
}

// waitPage polls GET / until ok says the page is complete.
func waitPage(t *testing.T, env *relaytest.Env, ok func(page string) bool) {
	t.Helper()
	testenv.WaitFor(t, 45*time.Second, func() error {
		resp, body := env.Do(t, http.MethodGet, "/", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		if !ok(string(body)) {
			return testenv.Waitf("the status page is still incomplete: %s", body)
		}
		return nil
	})
}

// distinctColors counts the colours of a sample of img's pixels, up to limit.
func distinctColors(img image.Image, limit int) int {
	seen := map[[4]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 7 {
		for x := b.Min.X; x < b.Max.X; x += 7 {
			r, g, bl, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, bl, a}] = true
			if len(seen) >= limit {
				return limit
			}
		}
	}
	return len(seen)
}

// relay dev links the status page to the Web UI it embeds, unless told another.
func TestDevLinksTheStatusPageToItsWebUI(t *testing.T) {
	cfg := config.Default()
	cfg.HTTPAddr, cfg.TemporalListen, cfg.DataDir = "127.0.0.1:0", "127.0.0.1:0", t.TempDir()
	cfg.UIAddr = testenv.FreeAddr(t)
	sys, err := startDev(t, cfg)
	require.NoError(t, err)
	assert.Equal(t, "http://"+cfg.UIAddr, sys.Config.TemporalUIURL)

	cfg.UIAddr = "" // off
	cfg.DataDir = t.TempDir()
	cfg.TemporalUIURL = "https://temporal.example"
	sys, err = startDev(t, cfg)
	require.NoError(t, err)
	assert.Equal(t, "https://temporal.example", sys.Config.TemporalUIURL, "a configured UI is kept")
}

// A worker process has no API: RELAY_METRICS_ADDR gives its metrics (upstream calls, the
// SDK's workflow and activity metrics) a listener of their own, without API keys; the
// API's routes, the status page included, keep theirs.
func TestWorkerServesMetricsOnItsOwnListener(t *testing.T) {
	env := relaytest.Start(t, relaytest.WithoutWorker(), relaytest.WithConfig(func(c *config.Config) {
		c.APIKeys = []string{"secret"}
	}))
	// The API's status page needs the key, like every route but /healthz.
	resp, _ := env.Do(t, http.MethodGet, "/", nil)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, page := env.Do(t, http.MethodGet, "/", nil, "Authorization", "Bearer secret")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(page), "relay status")

	cfg := env.Config
	cfg.MetricsAddr = "127.0.0.1:0"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	worker, err := app.Start(ctx, cfg, app.Worker, testenv.Logger(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = worker.Stop(context.Background()) })
	require.NotEmpty(t, worker.MetricsAddr)
	assert.Empty(t, worker.HTTPAddr, "a worker serves no API")

	// The worker's first act is the first incident snapshot: its calls show in its metrics.
	var body string
	testenv.WaitFor(t, 90*time.Second, func() error {
		resp, err := http.Get("http://" + worker.MetricsAddr + "/metrics")
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "no API key needed: %s", b)
		body = string(b)
		for _, want := range []string{`relay_upstream_requests_total{api="incidents"`, `temporal_workflow_completed{`} {
			if !strings.Contains(body, want) {
				return testenv.Waitf("the worker's metrics do not show its work (%s) yet: %s", want, tail(body, 3000))
			}
		}
		return nil
	})
	assert.Contains(t, body, `relay_upstream_rate_limit{api="geoip"} 5`)
	assert.Contains(t, body, "temporal_activity_execution_latency_seconds_bucket{")
	assert.Contains(t, body, "go_goroutines ")
	assert.NotContains(t, body, "relay_http_requests_total", "the worker's own registry, not the API's")

	resp, err = http.Get("http://" + worker.MetricsAddr + "/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "only /metrics")
}
