package app_test

import (
	"context"
	"encoding/json"
	"flag"
	"log/slog"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"relay/internal/config"
	"relay/internal/histories"
	"relay/internal/sim"
	"relay/internal/testenv"
	"relay/workflows"
)

var recordHistories = flag.Bool("record-histories", false, "write recorded histories to workflows/testdata")

// TestRecordHistories runs each workflow for real on the embedded server and records its
// history. Normally the files go to a temp dir and are replayed at once (so the recorder
// itself is tested); with -record-histories they replace workflows/testdata/.
func TestRecordHistories(t *testing.T) {
	dir := t.TempDir()
	if *recordHistories {
		dir = filepath.Join("..", "..", "workflows", "testdata")
	}
	// Trusting loopback as a proxy lets the geolocation run below come "from" a public IP.
	env := testenv.Start(t, testenv.WithConfig(func(c *config.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	}))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	runs := map[string]struct {
		workflowID   string
		workflowType string
		input        any
	}{
		"Ping-basic.json": {workflows.PingWorkflowID("record-basic"), workflows.PingWorkflowType,
			workflows.PingInput{Message: "recorded"}},
		"Ping-sleep-geoip-queue.json": {workflows.PingWorkflowID("record-sleep"), workflows.PingWorkflowType,
			workflows.PingInput{Message: "recorded", Sleep: "1s", Queue: workflows.GeoIPTaskQueue}},
		"SyncSiteOutages-kingfisher.json": {workflows.OutageSyncWorkflowID("kingfisher"), workflows.SyncSiteOutagesWorkflowType,
			workflows.SyncSiteOutagesInput{SiteID: "kingfisher", Since: "2022-01-01T00:00:00.000Z"}},
		"MergeEventSubscriptions-team-sync.json": {workflows.EventSubscriptionsWorkflowID(sim.C42EventTeamSync),
			workflows.MergeEventSubscriptionsWorkflowType, workflows.MergeEventSubscriptionsInput{EventID: sim.C42EventTeamSync}},
		"AggregateIncidents-manual.json": {"incidents/manual-recorded", workflows.AggregateIncidentsWorkflowType,
			workflows.AggregateIncidentsInput{}},
	}
	replayer := worker.NewWorkflowReplayer()
	for name, wf := range workflows.All() {
		replayer.RegisterWorkflowWithOptions(wf, workflow.RegisterOptions{Name: name})
	}
	for file, r := range runs {
		run, err := env.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: r.workflowID, TaskQueue: workflows.TaskQueue,
		}, r.workflowType, r.input)
		require.NoError(t, err)
		require.NoError(t, run.Get(ctx, nil))
		path := filepath.Join(dir, file)
		require.NoError(t, histories.Record(ctx, env.Client, run.GetID(), run.GetRunID(), path))
		require.NoError(t, replayer.ReplayWorkflowHistoryFromJSONFile(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)), path), file)
		t.Logf("recorded %s", path)
	}

	// GeolocateEvent runs for a submitted event: submit and record its workflow, once from
	// a public IP (through the geolocation API) and once from a private one (no call).
	for file, ip := range map[string]string{"GeolocateEvent-api.json": "8.8.8.8", "GeolocateEvent-private-ip.json": "10.0.0.1"} {
		resp, body := env.Do(t, http.MethodPost, "/event/submit/", strings.NewReader(`{"name":"recorded","status_code":200}`),
			"X-Forwarded-For", ip)
		require.Equal(t, http.StatusAccepted, resp.StatusCode, string(body))
		var sub struct {
			Data struct {
				TaskID string `json:"task_id"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(body, &sub))
		id := workflows.GeoEventWorkflowID(sub.Data.TaskID)
		require.Eventually(t, func() bool {
			return env.Client.GetWorkflow(ctx, id, "").Get(ctx, nil) == nil
		}, 30*time.Second, 50*time.Millisecond)
		path := filepath.Join(dir, file)
		require.NoError(t, histories.Record(ctx, env.Client, id, "", path))
		require.NoError(t, replayer.ReplayWorkflowHistoryFromJSONFile(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)), path))
		t.Logf("recorded %s", path)
	}
}
