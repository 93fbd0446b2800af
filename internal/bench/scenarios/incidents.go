package scenarios

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/proto"

	"relay/internal/bench"
	"relay/internal/incidents"
	"relay/workflows"
)

var incidentsServe = bench.Scenario{
	Name:     "incidents-serve",
	About:    "GET /incidents from 64 connections on loopback, plain and gzip",
	Baseline: "a bare gin handler returning the same bytes, loaded in alternating rounds",
	Sizes:    []int{1_000, 10_000, 100_000},
	Run:      runIncidentsServe,
}

func runIncidentsServe(ctx context.Context, c *bench.Case) error {
	r, err := startDev(ctx, c, fmt.Sprintf("incidents:size=%d", c.Size))
	if err != nil {
		return err
	}
	defer r.Close()
	body, err := firstSnapshot(ctx, r)
	if err != nil {
		return err
	}
	bareURL, stopBare, err := bench.ServeBytes("/incidents", body)
	if err != nil {
		return err
	}
	defer stopBare()

	load, rounds := bench.ClosedLoop{Conns: 64, Duration: 3 * time.Second, Warmup: time.Second}, 2
	if c.Smoke {
		load, rounds = bench.ClosedLoop{Conns: 64, Duration: 300 * time.Millisecond, Warmup: 100 * time.Millisecond}, 1
	}
	const bare, plain, gzip = "bare gin", "relay", "relay, gzip"
	rec := bench.NewRecorder()
	err = bench.SideBySide(ctx, load, rounds, rec,
		bench.Get(bare, bareURL), IncidentsGet(plain, r.URL, false), IncidentsGet(gzip, r.URL, true))
	if err != nil {
		return err
	}
	if err := rec.Err(); err != nil {
		return err
	}
	b, p, g := rec.Summary(bare), rec.Summary(plain), rec.Summary(gzip)
	c.Add("throughput", "req/s", p.PerSecond).Vs(b.PerSecond).Want(bench.RatioAtLeast(0.8))
	c.Add("p99", "ms", p.P99MS).Vs(b.P99MS).Want(bench.RatioAtMost(1.5))
	gz := c.Add("throughput with gzip", "req/s", g.PerSecond).Vs(b.PerSecond)
	if c.Size >= 100_000 { // the target is for the largest snapshot, where bytes dominate
		gz.Want(bench.RatioAtLeast(3))
	}
	c.Add("body", "MB", float64(len(body))/1e6)
	for _, series := range []string{bare, plain, gzip} {
		c.Latency(series, rec, series)
	}
	return nil
}

// firstSnapshot waits for the refresh relay runs at start and returns what GET
// /incidents then serves.
func firstSnapshot(ctx context.Context, r *Relay) ([]byte, error) {
	var body []byte
	err := bench.Poll(ctx, "first incidents snapshot", 5*time.Minute, 100*time.Millisecond, func() (bool, error) {
		resp, b, err := call(ctx, http.MethodGet, r.URL+"/incidents")
		if err != nil {
			return false, err
		}
		body = b
		return resp.StatusCode == http.StatusOK, nil
	})
	return body, err
}

var incidentsRefresh = bench.Scenario{
	Name:     "incidents-refresh",
	About:    "POST /incidents/refresh to the snapshot published, the incident API answering each call in 2 s",
	Baseline: "the eight endpoints (identities and the seven incident types) fetched one after another",
	Sizes:    []int{1_000, 10_000, 100_000},
	Run:      runIncidentsRefresh,
}

func runIncidentsRefresh(ctx context.Context, c *bench.Case) error {
	latency, refreshes := 2*time.Second, 3
	if c.Smoke {
		latency, refreshes = 100*time.Millisecond, 1
	}
	r, err := startDev(ctx, c, fmt.Sprintf("incidents:size=%d,latency=%s", c.Size, latency))
	if err != nil {
		return err
	}
	defer r.Close()
	if _, err := firstSnapshot(ctx, r); err != nil { // so that it cannot overlap a measured refresh
		return err
	}

	// The baseline: the old script's way, one endpoint after another.
	sequential := time.Now()
	for _, path := range append([]string{"/identities"}, typePaths()...) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.Config.Incidents.URL+path, nil)
		if err != nil {
			return err
		}
		req.SetBasicAuth(r.Config.Incidents.User, r.Config.Incidents.Password)
		resp, err := httpClient.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("baseline GET %s: %d", path, resp.StatusCode)
		}
	}
	baseline := time.Since(sequential)
	c.Logf("the eight endpoints one after another: %v", baseline.Round(time.Millisecond))

	var took []time.Duration
	var peak bench.Memory
	var largest int
	var res workflows.AggregateIncidentsResult
	for range refreshes {
		stopSampling := bench.SampleMemory()
		start := time.Now()
		id, err := startRefresh(ctx, r)
		if err == nil {
			err = r.Client.GetWorkflow(ctx, id, "").Get(ctx, &res)
		}
		took = append(took, time.Since(start))
		m := stopSampling()
		if err != nil {
			return err
		}
		c.Logf("refresh %s: %v", id, took[len(took)-1].Round(time.Millisecond))
		peak.Heap, peak.RSS = max(peak.Heap, m.Heap), max(peak.RSS, m.RSS)
		n, err := largestEvent(ctx, r.Client, id)
		if err != nil {
			return err
		}
		largest = max(largest, n)
	}
	if got := res.Summary.Incidents + res.Summary.Unattributed; got != c.Size {
		return fmt.Errorf("the snapshot holds %d incidents, want %d", got, c.Size)
	}
	slices.Sort(took)
	c.Add("refresh, POST to published (median)", "s", took[len(took)/2].Seconds()).Vs(baseline.Seconds()).Want(bench.AtMost(3))
	c.Add("largest event in the workflow's history", "KiB", float64(largest)/1024).Want(bench.AtMost(64))
	c.Add("peak Go heap during a refresh (whole process)", "MB", float64(peak.Heap)/1e6)
	c.Add("peak RSS during a refresh (whole process)", "MB", float64(peak.RSS)/1e6)
	c.Add("snapshot", "MB", float64(res.Bytes)/1e6)
	return nil
}

func typePaths() []string {
	out := make([]string, len(incidents.Types))
	for i, t := range incidents.Types {
		out[i] = "/incidents/" + t + "/"
	}
	return out
}

// startRefresh asks relay for a refresh and returns the workflow id it started.
func startRefresh(ctx context.Context, r *Relay) (string, error) {
	resp, body, err := call(ctx, http.MethodPost, r.URL+"/incidents/refresh")
	if err != nil {
		return "", err
	}
	var started struct {
		WorkflowID string `json:"workflow_id"`
	}
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(body, &started) != nil || started.WorkflowID == "" {
		return "", fmt.Errorf("POST /incidents/refresh: %d %.200s", resp.StatusCode, body)
	}
	return started.WorkflowID, nil
}

// largestEvent is the size in bytes of the largest event of a workflow's history.
func largestEvent(ctx context.Context, c client.Client, workflowID string) (int, error) {
	it := c.GetWorkflowHistory(ctx, workflowID, "", false, 0)
	largest := 0
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return 0, err
		}
		largest = max(largest, proto.Size(ev))
	}
	return largest, nil
}
