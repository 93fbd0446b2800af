package app

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	deploy "relay/deploy/prometheus"
	"relay/internal/alerts"
	"relay/server"
)

// registerRefreshInterval exports the incident schedule's interval beside the worker's
// other metrics: the worker owns the schedule (INCIDENTS_REFRESH_INTERVAL is a worker
// setting), and the alert RelayIncidentSnapshotStale compares the servers' snapshot age
// with three of it.
func registerRefreshInterval(reg prometheus.Registerer, every time.Duration) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "relay_incidents_refresh_interval_seconds",
		Help: "How often the incident snapshot is rebuilt (the schedule's interval).",
	})
	g.Set(every.Seconds())
	reg.MustRegister(g)
}

// alertSource is where the status page reads alerts: the Prometheus RELAY_PROMETHEUS_URL
// names, which scrapes every process; else, when this process holds every metric the
// rules read (the API and the worker together: relay dev), relay's own evaluation of the
// same rules; else none, and the page says how to configure one. A server alone
// evaluating them would see no worker metric, and stay silent about what it cannot see.
func (s *System) alertSource(withWorker bool) (server.AlertSource, error) {
	if url := s.Config.PrometheusURL; url != "" {
		r, err := alerts.NewRemote(url)
		if err != nil {
			return nil, err
		}
		return alertList{r, "as Prometheus at " + url + " evaluates them"}, nil
	}
	if !withWorker {
		return nil, nil
	}
	rules, err := alerts.ParseRules(deploy.AlertRules)
	if err != nil {
		return nil, fmt.Errorf("embedded alert rules: %w", err) // a build that should not have passed its tests
	}
	ev := alerts.NewEvaluator(rules, s.Registry, s.logger)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ev.Run(ctx, alerts.DefaultInterval) }()
	s.onStop(func(context.Context) error { stop(); <-done; return nil })
	return alertList{ev, fmt.Sprintf("as relay evaluates them on its own metrics every %s (no RELAY_PROMETHEUS_URL)", alerts.DefaultInterval)}, nil
}

// alertList adapts a source of alerts to what the status page reads.
type alertList struct {
	src interface {
		Alerts(context.Context) ([]alerts.Alert, error)
	}
	desc string
}

func (l alertList) Describe() string { return l.desc }

func (l alertList) Alerts(ctx context.Context) ([]server.Alert, error) {
	as, err := l.src.Alerts(ctx)
	out := make([]server.Alert, len(as))
	for i, a := range as {
		out[i] = server.Alert{Name: a.Name, State: a.State, Labels: a.Labels, Summary: a.Summary(), Since: a.ActiveAt}
	}
	return out, err
}
