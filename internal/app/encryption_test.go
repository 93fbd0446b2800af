package app_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/internal/config"
	"relay/internal/payloadcodec"
	"relay/internal/relaytest"
	"relay/internal/sim"
	"relay/internal/testenv"
	"relay/workflows"
)

// What relay writes to Temporal holds no customer data in the clear: after every job has
// run, no client IP, subscriber name or event title is anywhere in the embedded server's
// SQLite files (database and write-ahead log), nor in `temporal workflow show` without the
// codec endpoint; with it, the CLI shows them.
func TestTemporalHoldsNoCustomerDataInTheClear(t *testing.T) {
	env := relaytest.Start(t, relaytest.OnDisk(), relaytest.WithConfig(func(c *config.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	}))
	const ip = "81.2.69.142"
	waitLocated(t, env, []string{submit(t, env, ip, `{"name":"checkout"}`)}, time.Minute)
	resp, merged, body := getEvent(t, env, "/events-with-subscriptions/"+sim.C42EventTownHall)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	startSync(t, env, "atlantis", "") // its failure message goes through the codec too
	require.Equal(t, "failed", waitSync(t, env, "atlantis").State)
	waitSnapshot(t, env)

	secrets := []string{ip, merged.Title}
	for _, n := range merged.Names {
		if len(n) >= 5 { // shorter ones could turn up in random bytes by chance
			secrets = append(secrets, n)
		}
	}
	require.Greater(t, len(secrets), 20, "enough names to look for")

	var db []byte
	files, err := filepath.Glob(filepath.Join(env.Config.DataDir, "temporal.db*"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		db = append(db, b...)
	}
	// The bytes are the right ones: what is not secret is there in the clear.
	require.Contains(t, string(db), workflows.MergeEventSubscriptionsWorkflowType)
	require.Contains(t, string(db), workflows.EventSubscriptionsWorkflowID(sim.C42EventTownHall))
	for _, s := range secrets {
		assert.False(t, bytes.Contains(db, []byte(s)), "%q is in Temporal's database in the clear", s)
	}

	cli := os.Getenv("RELAY_TEST_TEMPORAL_CLI")
	if cli == "" {
		t.Skip("the database holds no secret; set RELAY_TEST_TEMPORAL_CLI to also check `temporal workflow show` " +
			"(go install github.com/temporalio/cli/cmd/temporal@v1.5.1)")
	}
	show := func(extra ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		args := append([]string{"workflow", "show", "--workflow-id", workflows.EventSubscriptionsWorkflowID(sim.C42EventTownHall),
			"--address", env.Config.TemporalAddress, "--namespace", env.Config.TemporalNamespace, "--output", "json"}, extra...)
		out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
		require.NoError(t, err, "%s", out)
		return string(out)
	}
	// The CLI's JSON holds each payload's data in base64: read them all.
	payloadData := func(out string) string {
		var all strings.Builder
		for _, m := range regexp.MustCompile(`"data": "([A-Za-z0-9+/=]+)"`).FindAllStringSubmatch(out, -1) {
			b, err := base64.StdEncoding.DecodeString(m[1])
			require.NoError(t, err)
			all.Write(b)
			all.WriteByte('\n')
		}
		return all.String()
	}
	plain := payloadData(show())
	for _, s := range secrets {
		assert.NotContains(t, plain, s, "temporal workflow show, without the codec")
	}
	decoded := payloadData(show("--codec-endpoint", env.BaseURL+"/codec"))
	assert.Contains(t, decoded, `"title":"`+merged.Title+`"`, "temporal workflow show --codec-endpoint decodes through relay")
	assert.Contains(t, decoded, secrets[len(secrets)-1])
}

// The Web UI relay dev serves decodes payloads through relay's codec endpoint, from the
// browser: loaded in headless Chromium, a sync's page shows its result's counts, which
// reach Temporal only encrypted.
func TestWebUIShowsDecodedPayloadsInChromium(t *testing.T) {
	bin := chromium(t)
	httpAddr, uiAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	env := relaytest.Start(t, relaytest.WithConfig(func(c *config.Config) { c.HTTPAddr, c.UIAddr = httpAddr, uiAddr }))
	site := env.Config.KF.SiteID
	id, runID := startSync(t, env, site, "")
	require.Equal(t, "completed", waitSync(t, env, site).State)

	page := "http://" + uiAddr + "/namespaces/" + env.Config.TemporalNamespace + "/workflows/" +
		url.PathEscape(id) + "/" + runID + "/history"
	var dom string
	testenv.WaitFor(t, 2*time.Minute, func() error {
		dom = string(runChromium(t, bin, page, "--dump-dom", "--virtual-time-budget=15000"))
		if !strings.Contains(dom, "dropped_unknown_device") {
			return testenv.Waitf("the Web UI's page of %s does not show the decoded result yet (%d bytes of DOM)", id, len(dom))
		}
		return nil
	})
	assert.Contains(t, dom, site)
	assert.NotContains(t, dom, payloadcodec.MetadataEncoding, "no payload left encrypted on the page")
}
