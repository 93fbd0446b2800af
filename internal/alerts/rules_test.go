package alerts_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	deploy "relay/deploy/prometheus"
	"relay/internal/alerts"
)

// The embedded file is the one compose mounts, valid for Prometheus (rulefmt, PromQL) and
// for relay's evaluator, and every alert says how bad it is and what is wrong.
func TestAlertRulesParse(t *testing.T) {
	parsed, err := alerts.ParseRules(deploy.AlertRules)
	require.NoError(t, err)
	var names []string
	for _, r := range parsed {
		names = append(names, r.Name)
		assert.NotEmpty(t, r.Labels["severity"], r.Name)
		assert.NotEmpty(t, r.Annotations["summary"], r.Name)
	}
	assert.Equal(t, []string{"RelayJobFailingRepeatedly", "RelayIncidentSnapshotStale", "RelayGeolocationBacklogGrowing",
		"RelayEventsPendingTooLong", "RelayUpstreamErrorRatioHigh"}, names)
	assert.Equal(t, []string{"relay_geolocate_oldest_pending_seconds", "relay_geolocate_pending_events",
		"relay_incidents_refresh_interval_seconds", "relay_incidents_snapshot_age_seconds",
		"relay_upstream_requests_total", "temporal_workflow_failed"}, alerts.MetricNames(parsed))
	assert.Equal(t, 15*time.Minute, alerts.LongestRange(parsed))
}

func TestParseRulesRefusesWhatTheEvaluatorCannotDo(t *testing.T) {
	for name, file := range map[string]string{
		"invalid PromQL":  "groups: [{name: g, rules: [{alert: A, expr: 'rate(x[5m]'}]}]",
		"unknown field":   "groups: [{name: g, rules: [{alert: A, expr: up, fore: 5m}]}]",
		"recording rule":  "groups: [{name: g, rules: [{record: r, expr: up}]}]",
		"keep_firing_for": "groups: [{name: g, rules: [{alert: A, expr: up, keep_firing_for: 5m}]}]",
		"no rule":         "groups: []",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := alerts.ParseRules([]byte(file))
			require.Error(t, err)
			assert.Contains(t, err.Error(), "alert rules")
		})
	}
}

// The evaluator's pending, firing and resolved are Prometheus's (rules.AlertingRule), on
// a gauge that crosses its threshold, holds, and falls back, with a `for:`, templates and
// a series that disappears.
func TestEvaluatorAgreesWithPrometheus(t *testing.T) {
	const file = `
groups:
  - name: g
    rules:
      - alert: High
        expr: level > 10
        for: 1m
        labels: {severity: warning, level: "{{ $labels.instance }}"}
        annotations: {summary: "level {{ $value }} on {{ $labels.instance }}"}
      - alert: Rising
        expr: increase(count_total[2m]) >= 3
`
	parsed, err := alerts.ParseRules([]byte(file))
	require.NoError(t, err)
	ev := alerts.NewEvaluator(parsed, nil, slog.New(slog.DiscardHandler))
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 100_000, Timeout: time.Second, LookbackDelta: 5 * time.Minute})
	var prom []*rules.AlertingRule
	for _, r := range parsed {
		prom = append(prom, rules.NewAlertingRule(r.Name, r.Expr, r.For, 0, labels.FromMap(r.Labels),
			labels.FromMap(r.Annotations), labels.EmptyLabels(), "", false, nil))
	}
	query := rules.EngineQueryFunc(engine, ev.History())

	levels := []float64{1, 12, 13, 14, 15, 3, 20, 20, 20}
	start := time.Unix(1_700_000_000, 0)
	var states []string
	for i, level := range levels {
		ts := start.Add(time.Duration(i) * 30 * time.Second)
		scrape := fmt.Sprintf("level{instance=\"a\"} %g\ncount_total %d\n", level, 2*i)
		if i >= 6 {
			scrape = fmt.Sprintf("level{instance=\"a\"} %g\n", level) // count_total is gone
		}
		require.NoError(t, ev.History().AppendScrape([]byte(scrape), ts))
		require.NoError(t, ev.Eval(context.Background(), ts))
		var want []string
		for _, r := range prom {
			_, err := r.Eval(context.Background(), 0, ts, query, nil, 0)
			require.NoError(t, err)
			for _, a := range r.ActiveAlerts() {
				want = append(want, fmt.Sprintf("%s %s %s %v", r.Name(), a.State, a.Annotations.Get("summary"), a.ActiveAt.Sub(start)))
			}
		}
		got, err := ev.Alerts(context.Background())
		require.NoError(t, err)
		var have []string
		for _, a := range got {
			have = append(have, fmt.Sprintf("%s %s %s %v", a.Name, a.State, a.Annotations["summary"], a.ActiveAt.Sub(start)))
		}
		assert.ElementsMatch(t, want, have, "step %d", i)
		states = append(states, fmt.Sprint(have))
	}
	// The story the comparison covered: pending, firing after a minute, resolved, pending again.
	assert.Contains(t, states[1], "High pending level 12 on a")
	assert.Contains(t, states[3], "High firing level 14 on a")
	assert.NotContains(t, states[5], "High")
	assert.Contains(t, states[6], "High pending")
	assert.Contains(t, states[4], "Rising firing")
	assert.NotContains(t, states[8], "Rising", "a counter gone from the scrapes is stale")
}

// History keeps only the metrics the rules read, for as long as they read them.
func TestHistoryIsBounded(t *testing.T) {
	h := alerts.NewHistory(time.Minute, "kept")
	start := time.Unix(1_700_000_000, 0)
	for i := range 10 {
		require.NoError(t, h.AppendScrape([]byte(fmt.Sprintf("kept{i=\"%d\"} 1\ndropped 2\n", i%3)), start.Add(time.Duration(i)*30*time.Second)))
	}
	assert.Equal(t, 3, h.Series())
	require.NoError(t, h.AppendScrape([]byte("kept{i=\"0\"} 1\n"), start.Add(20*time.Minute)))
	assert.Equal(t, 1, h.Series(), "series without samples in the last minute are dropped")
	require.Error(t, h.AppendScrape([]byte("not { metrics"), start.Add(21*time.Minute)))
}
