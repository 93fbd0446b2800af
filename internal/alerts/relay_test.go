package alerts_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite" // to age one pending event in relay's store

	deploy "relay/deploy/prometheus"
	"relay/internal/alerts"
	"relay/internal/config"
	"relay/internal/relaytest"
	"relay/internal/sim"
	"relay/internal/testenv"
)

// The rule file against a running relay's real /metrics: healthy, nothing is even
// pending; then with each condition caused for real (the geolocation and incidents APIs
// failing, outage syncs failing, events piling up, one of them old), exactly the five
// alerts fire. Scrapes are taken every few hundred milliseconds but stamped 30 s apart,
// so that the rules' 5-15 minute windows and `for:` pass in seconds; what the metrics say
// is what relay said. Each scrape is evaluated twice, by Prometheus's own rule engine
// (rules.AlertingRule, what compose's Prometheus runs) and by relay's Evaluator (what the
// status page of relay dev shows), and the two must agree at every step.
func TestAlertRulesOnARunningRelay(t *testing.T) {
	testenv.EndToEnd(t)
	parsed, err := alerts.ParseRules(deploy.AlertRules)
	require.NoError(t, err)

	const refresh = 5 * time.Second // the snapshot is stale after 15 s: within the test
	env := relaytest.Start(t, relaytest.WithConfig(func(c *config.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		c.GeoIP.SubmitRate, c.GeoIP.SubmitBurst = 1000, 1000
		c.Incidents.RefreshInterval = refresh
	}))
	tl := newTimeline(t, env, parsed)

	do := func(method, path, body string, header ...string) []byte {
		resp, b := env.Do(t, method, path, strings.NewReader(body), header...)
		require.Less(t, resp.StatusCode, 500, "%s %s: %s", method, path, b)
		return b
	}
	submit := func(ip string) {
		do(http.MethodPost, "/event/submit/", `{"name":"alerts"}`, "X-Forwarded-For", ip)
	}

	// Healthy: every job has run once and succeeded, the snapshot is served.
	testenv.WaitFor(t, time.Minute, func() error {
		if resp, _ := env.Do(t, http.MethodGet, "/incidents", nil); resp.StatusCode != http.StatusOK {
			return testenv.Waitf("no incident snapshot yet (%d)", resp.StatusCode)
		}
		return nil
	})
	submit("81.2.69.142")
	do(http.MethodGet, "/events-with-subscriptions/"+sim.C42EventTeamSync, "")
	do(http.MethodPost, "/sites/kingfisher/outage-sync", "")
	// Longer than three refresh intervals of real time: a refresh that did not happen shows.
	for range 45 {
		tl.step()
		require.Empty(t, tl.active(), "a healthy relay has no alert, not even pending")
		time.Sleep(400 * time.Millisecond)
	}

	// Broken: both APIs answer 5xx to everything, outage syncs of an unknown site fail,
	// events from new IPs pile up, and one of them is made 15 minutes old.
	env.Sims.Sim(sim.GeoIP).SetKnobs(withFailures(env.Sims.Sim(sim.GeoIP).Knobs()))
	env.Sims.Sim(sim.Incidents).SetKnobs(withFailures(env.Sims.Sim(sim.Incidents).Knobs()))
	want := []string{"RelayEventsPendingTooLong", "RelayGeolocationBacklogGrowing", "RelayIncidentSnapshotStale",
		"RelayJobFailingRepeatedly", "RelayUpstreamErrorRatioHigh"}
	var firing []alerts.Alert
	for i := range 90 {
		for j := range 6 {
			submit(fmt.Sprintf("81.2.%d.%d", 70+i/40, 1+(i%40)*6+j))
		}
		if i%4 == 0 { // about 7 in every 15 synthetic minutes
			failSync(t, env)
		}
		if i == 5 {
			ageOldestPendingEvent(t, env, 15*time.Minute)
		}
		tl.step()
		firing = tl.firing()
		if names := alertNames(firing); slices.Equal(names, want) {
			break
		}
		time.Sleep(400 * time.Millisecond)
	}
	if !slices.Equal(want, alertNames(firing)) {
		_, metrics := env.Do(t, http.MethodGet, "/metrics", nil)
		var failed []string
		for _, l := range strings.Split(string(metrics), "\n") {
			if strings.HasPrefix(l, "temporal_workflow_failed") {
				failed = append(failed, l)
			}
		}
		t.Fatalf("firing %v, want %v; failed workflows on /metrics: %q", alertNames(firing), want, failed)
	}
	for _, a := range firing {
		switch a.Name {
		case "RelayJobFailingRepeatedly":
			require.Equal(t, "SyncSiteOutages", a.Labels["workflow_type"], "%v", a)
		case "RelayUpstreamErrorRatioHigh":
			if a.Labels["api"] != "geoip" && a.Labels["api"] != "incidents" {
				t.Errorf("upstream errors of an API that did not fail: %v", a)
			}
		}
		require.Equal(t, "warning", a.Labels["severity"], "%v", a)
		require.NotContains(t, a.Summary(), "<error expanding template", "%v", a)
	}
	var geo bool
	for _, a := range firing {
		geo = geo || (a.Name == "RelayUpstreamErrorRatioHigh" && a.Labels["api"] == "geoip")
	}
	require.True(t, geo, "the geolocation API's errors fire: %v", firing)
	for _, a := range firing {
		t.Logf("firing: %s %v: %s", a.Name, a.Labels, a.Summary())
	}

	// relay dev's status page evaluates the same rules itself, in real time: the event
	// made 15 minutes old fires at its next evaluation (no `for:`).
	testenv.WaitFor(t, alerts.DefaultInterval+15*time.Second, func() error {
		_, page := env.Do(t, http.MethodGet, "/", nil)
		if !strings.Contains(string(page), `data-alert="RelayEventsPendingTooLong" data-state="firing"`) {
			return testenv.Waitf("the status page lists no firing RelayEventsPendingTooLong")
		}
		require.Contains(t, string(page), "as relay evaluates them on its own metrics")
		return nil
	})
}

func withFailures(k sim.Knobs) sim.Knobs {
	k.FailureRate = 1
	return k
}

// failSync starts an outage sync of a site the API does not know and waits for it to fail.
func failSync(t *testing.T, env *relaytest.Env) {
	t.Helper()
	resp, b := env.Do(t, http.MethodPost, "/sites/atlantis/outage-sync", nil)
	require.Less(t, resp.StatusCode, 300, "%s", b)
	testenv.WaitFor(t, 30*time.Second, func() error {
		_, b := env.Do(t, http.MethodGet, "/sites/atlantis/outage-sync", nil)
		if !strings.Contains(string(b), `"state":"failed"`) {
			return testenv.Waitf("sync not failed yet: %s", b)
		}
		return nil
	})
}

// ageOldestPendingEvent moves the arrival of the oldest pending event back by d, in
// relay's SQLite store: an event that has waited that long, without waiting.
func ageOldestPendingEvent(t *testing.T, env *relaytest.Env, d time.Duration) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(env.Config.DataDir, "relay.db")+"?_pragma=busy_timeout(10000)")
	require.NoError(t, err)
	defer db.Close()
	res, err := db.Exec(`UPDATE events SET received_at = received_at - $1
		WHERE task_id = (SELECT task_id FROM events WHERE state = 'pending' ORDER BY received_at LIMIT 1)`, d.Milliseconds())
	require.NoError(t, err)
	n, err := res.RowsAffected()
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "no pending event to age")
}

func alertNames(as []alerts.Alert) []string {
	var names []string
	for _, a := range as {
		names = append(names, a.Name)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// timeline scrapes relay into one history and evaluates it with both engines.
type timeline struct {
	t         *testing.T
	env       *relaytest.Env
	now       time.Time
	eval      *alerts.Evaluator
	prom      []*rules.AlertingRule
	queryFunc rules.QueryFunc
}

// step is the synthetic time between two scrapes.
const step = 30 * time.Second

func newTimeline(t *testing.T, env *relaytest.Env, parsed []alerts.Rule) *timeline {
	ev := alerts.NewEvaluator(parsed, nil, slog.New(slog.DiscardHandler))
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1_000_000, Timeout: 10 * time.Second, LookbackDelta: 5 * time.Minute})
	tl := &timeline{t: t, env: env, now: time.Now(), eval: ev, queryFunc: rules.EngineQueryFunc(engine, ev.History())}
	for _, r := range parsed {
		tl.prom = append(tl.prom, rules.NewAlertingRule(r.Name, r.Expr, r.For, 0,
			labels.FromMap(r.Labels), labels.FromMap(r.Annotations), labels.EmptyLabels(), "", false, nil))
	}
	return tl
}

// step scrapes /metrics, stamps it one step after the last, evaluates, and checks that
// relay's evaluator and Prometheus's agree.
func (tl *timeline) step() {
	tl.t.Helper()
	tl.now = tl.now.Add(step)
	_, body := tl.env.Do(tl.t, http.MethodGet, "/metrics", nil)
	require.NoError(tl.t, tl.eval.History().AppendScrape(body, tl.now))
	ctx := context.Background()
	require.NoError(tl.t, tl.eval.Eval(ctx, tl.now))
	var prom []string
	for _, r := range tl.prom {
		_, err := r.Eval(ctx, 0, tl.now, tl.queryFunc, nil, 0)
		require.NoError(tl.t, err, r.Name())
		for _, a := range r.ActiveAlerts() {
			l := a.Labels.Map()
			delete(l, labels.AlertName)
			prom = append(prom, describe(r.Name(), a.State.String(), l, a.ActiveAt))
		}
	}
	var ours []string
	for _, a := range tl.active() {
		ours = append(ours, describe(a.Name, a.State, a.Labels, a.ActiveAt))
	}
	slices.Sort(prom)
	slices.Sort(ours)
	require.Equal(tl.t, prom, ours, "relay's evaluator and Prometheus's disagree at %s", tl.now)
}

func describe(name, state string, l map[string]string, since time.Time) string {
	return fmt.Sprintf("%s%v %s since %s", name, labels.FromMap(l), state, since.Format(time.RFC3339))
}

func (tl *timeline) active() []alerts.Alert {
	as, err := tl.eval.Alerts(context.Background())
	require.NoError(tl.t, err)
	return as
}

func (tl *timeline) firing() []alerts.Alert {
	var out []alerts.Alert
	for _, a := range tl.active() {
		if a.State == alerts.StateFiring {
			out = append(out, a)
		}
	}
	return out
}
