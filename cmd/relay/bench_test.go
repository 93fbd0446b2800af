package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/internal/bench"
	"relay/internal/testenv"
)

// relay bench --smoke runs scenarios for real (relay in the process, loads on loopback)
// and writes the table, the JSON and the charts.
func TestBenchSmokeWritesTableJSONAndCharts(t *testing.T) {
	testenv.EndToEnd(t)
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "out", "bench.json")
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"bench", "--smoke", "workflow-latency", "outage-filter", "--json", jsonPath}, noEnv, &out, &errOut)
	require.NoError(t, err, "stderr:\n%s", errOut.String())

	table := out.String()
	assert.Regexp(t, `scenario\s+metric\s+relay\s+baseline\s+ratio\s+target\s+pass`, table)
	assert.Regexp(t, `workflow-latency\s+p50, start to result\s+[\d.]+ ms\s+—\s+—\s+≤ 20 ms\s+(yes|NO)`, table)
	assert.Regexp(t, `outage-filter 10k\s+throughput, one core \(median run\)\s+[\d,]+ outages/s`, table)
	assert.Contains(t, table, "2 cases, 0 failed;")
	assert.Contains(t, table, "machine: ")
	assert.Contains(t, errOut.String(), "workflow-latency: ", "progress goes to stderr")

	b, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	var report bench.Report
	require.NoError(t, json.Unmarshal(b, &report))
	assert.True(t, report.Smoke)
	assert.Equal(t, "relay bench --json "+jsonPath+" --smoke workflow-latency outage-filter", report.Command)
	require.Len(t, report.Cases, 2)
	assert.Equal(t, "workflow-latency", report.Cases[0].Scenario)
	assert.Equal(t, 10_000, report.Cases[1].Size)
	for _, c := range report.Cases {
		assert.Empty(t, c.Error)
	}
	require.Len(t, report.Cases[0].Latencies, 1)
	pings := report.Cases[0].Latencies[0]
	assert.Equal(t, 10, pings.Requests)
	assert.Zero(t, pings.Errors)
	assert.Positive(t, pings.P50MS)

	metrics := map[string]bench.Row{}
	for _, r := range report.Rows {
		metrics[r.Scenario+"/"+r.Metric] = r
	}
	p50 := metrics["workflow-latency/p50, start to result"]
	assert.Equal(t, pings.P50MS, p50.Relay)
	require.NotNil(t, p50.Pass)
	assert.Equal(t, "≤ 20 ms", p50.Target)
	filter := metrics["outage-filter/throughput, one core (median run)"]
	assert.Greater(t, filter.Relay, 10_000.0, "outages/s")
	assert.Equal(t, "outages/s", filter.Unit)

	assert.Equal(t, []string{"workflow-latency-latency.svg"}, report.Charts)
	svg, err := os.ReadFile(filepath.Join(dir, "out", "workflow-latency-latency.svg"))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(svg), "<svg "))
	assert.Contains(t, string(svg), "Ping, start to result")
}

func TestBenchHelpAndBadArguments(t *testing.T) {
	var out, errOut bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"bench", "--help"}, noEnv, &out, &errOut))
	for _, want := range []string{"Usage: relay bench", "-json", "-out", "-smoke", "incidents-serve", "sizes 1k, 10k, 100k", "baseline: "} {
		assert.Contains(t, out.String(), want)
	}
	out.Reset()
	require.NoError(t, run(context.Background(), []string{"--help"}, noEnv, &out, &errOut))
	assert.Contains(t, out.String(), "bench ")

	for args, want := range map[string]string{
		"bench nonsense":           `unknown scenario "nonsense"`,
		"bench workflow-latency:5": "scenario workflow-latency has no sizes",
		"bench --bogus":            "-bogus",
		"bench --log-level loud":   "-log-level",
	} {
		err := run(context.Background(), strings.Fields(args), noEnv, &out, &errOut)
		require.Error(t, err, args)
		var usageErr *usageError
		assert.True(t, errors.As(err, &usageErr), "%s: want a *usageError (exit code 2), got %T: %v", args, err, err)
		assert.Contains(t, err.Error(), want, args)
	}
}
