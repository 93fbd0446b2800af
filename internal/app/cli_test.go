package app_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/internal/config"
	"relay/internal/relaytest"
	"relay/internal/testenv"
	"relay/workflows"
)

// readmeCLICommands returns the `temporal ...` commands of README.md's shell blocks, in
// order, with their continuation lines joined.
func readmeCLICommands(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	defer f.Close()
	var cmds []string
	inShell, pending := false, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "```sh"):
			inShell = true
			continue
		case strings.HasPrefix(line, "```"):
			inShell = false
			continue
		}
		if !inShell {
			continue
		}
		if pending != "" {
			pending += " " + strings.TrimSpace(strings.TrimSuffix(line, "\\"))
		} else if strings.HasPrefix(line, "temporal ") {
			pending = strings.TrimSuffix(line, "\\")
		}
		if pending != "" && !strings.HasSuffix(line, "\\") {
			cmds = append(cmds, pending)
			pending = ""
		}
	}
	require.NoError(t, sc.Err())
	return cmds
}

// The `temporal` CLI commands the README shows (starting, re-running and inspecting jobs)
// run as written against a running relay. Set RELAY_TEST_TEMPORAL_CLI to the CLI binary
// (go install github.com/temporalio/cli/cmd/temporal@v1.5.1); .ci/run does.
func TestReadmeTemporalCLICommands(t *testing.T) {
	testenv.EndToEnd(t)
	cli := os.Getenv("RELAY_TEST_TEMPORAL_CLI")
	if cli == "" {
		t.Skip("set RELAY_TEST_TEMPORAL_CLI to the temporal CLI binary to run the README's CLI commands " +
			"(go install github.com/temporalio/cli/cmd/temporal@v1.5.1; RELAY_TEST_TEMPORAL_CLI=$(go env GOPATH)/bin/temporal)")
	}
	_, err := os.Stat(cli)
	require.NoError(t, err, "RELAY_TEST_TEMPORAL_CLI=%s", cli)

	cmds := readmeCLICommands(t)
	require.GreaterOrEqual(t, len(cmds), 8, "the README's CLI commands: %q", cmds)
	// The README's schedule commands need the scheduled outage sync, which tests leave off.
	env := relaytest.Start(t, relaytest.WithConfig(func(c *config.Config) { c.KF.SyncInterval = time.Hour }))
	waitSnapshot(t, env) // the schedule exists and has run once
	testenv.WaitFor(t, time.Minute, func() error {
		if _, err := env.Client.ScheduleClient().GetHandle(t.Context(), workflows.OutageSyncScheduleID(env.Config.KF.SiteID)).Describe(t.Context()); err != nil {
			return testenv.Waitf("the outage sync schedule: %v", err)
		}
		return nil
	})

	outputs := map[string]string{}
	for _, cmd := range cmds {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		// The README names relay's default address; this relay listens on a port of its own.
		sh := exec.CommandContext(ctx, "bash", "-c", strings.ReplaceAll(strings.Replace(cmd, "temporal", cli, 1), "http://127.0.0.1:9000", env.BaseURL))
		sh.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+env.Config.TemporalAddress, "TEMPORAL_NAMESPACE="+env.Config.TemporalNamespace,
			"TEMPORAL_CODEC_ENDPOINT="+env.BaseURL+"/codec") // the README's export
		out, err := sh.CombinedOutput()
		cancel()
		require.NoError(t, err, "%s\n%s", cmd, out)
		outputs[cmd] = string(out)
		t.Logf("$ %s\n%s", cmd, strings.TrimSpace(string(out)))
	}

	// What the commands started really ran, and their results are relay's.
	find := func(prefix string) string {
		for cmd, out := range outputs {
			if strings.HasPrefix(cmd, prefix) {
				return out
			}
		}
		t.Fatalf("the README no longer has a command starting %q", prefix)
		return ""
	}
	assert.Contains(t, find("temporal workflow execute --type Ping"), "hello")
	assert.Contains(t, find("temporal workflow result --workflow-id ping/slow"), "survives a restart")
	assert.Contains(t, find("temporal workflow result --workflow-id outage-sync/kingfisher"), "posted")
	assert.Contains(t, find("temporal schedule describe --schedule-id incidents-refresh"), workflows.IncidentsScheduleID)
	assert.Contains(t, find("temporal schedule describe --schedule-id outage-sync-"), workflows.ScheduledSyncSiteOutagesWorkflowType)
	// A sync started by hand is found by its job and site once it has ended (and by its
	// outcome): the run itself records them.
	assert.Contains(t, find(`temporal workflow list --query "RelayJob = 'outage-sync' AND RelaySite = 'kingfisher'"`), "outage-sync/kingfisher")
	assert.Contains(t, find("temporal workflow describe --workflow-id outage-sync/kingfisher"), workflows.OutcomeSynced)
	// The README's codec endpoint decodes what relay encrypted.
	assert.Contains(t, find("temporal workflow show --workflow-id outage-sync/kingfisher --codec-endpoint"), "dropped_unknown_device")
	ctx := t.Context()
	for _, id := range []string{"incidents/refresh", "outage-sync/kingfisher", "ping/slow"} {
		require.NoError(t, env.Client.GetWorkflow(ctx, id, "").Get(ctx, nil), id)
	}
}
