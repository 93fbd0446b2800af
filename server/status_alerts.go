package server

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Alert is one alert of relay's rules (deploy/prometheus/alerts.yml) that is pending or
// firing, as the status page lists it.
type Alert struct {
	Name    string
	State   string            // "firing", or "pending" (holding, not yet for its `for:`)
	Labels  map[string]string // what the alert is about (api, workflow_type, ...)
	Summary string
	Since   time.Time // since when its condition holds
}

// AlertSource says which alerts are active: Prometheus's API where one scrapes relay, or
// relay's own evaluation of the same rules (package internal/alerts).
type AlertSource interface {
	Alerts(ctx context.Context) ([]Alert, error)
	// Describe says where the alerts come from, for the panel.
	Describe() string
}

type alertsPanel struct {
	Source string // where the alerts come from; "" when no source is configured
	Err    string
	Firing int
	Alerts []alertRow
}

type alertRow struct {
	Alert
	For   time.Duration // how long its condition has held
	About string        // its labels, name=value, severity left out
}

func (p *statusPage) alertsPart(now time.Time) statusPart {
	return statusPart{
		name: "alerts",
		run: func(ctx context.Context) func(*statusView) {
			if p.src.alerts == nil {
				return func(v *statusView) { v.Alerts = alertsPanel{} }
			}
			panel := alertsPanel{Source: p.src.alerts.Describe()}
			as, err := p.src.alerts.Alerts(ctx)
			if err != nil {
				panel.Err = p.panelError("reading alerts", err)
			}
			for _, a := range as {
				if a.State == "firing" {
					panel.Firing++
				}
				panel.Alerts = append(panel.Alerts, alertRow{Alert: a, For: now.Sub(a.Since), About: alertAbout(a.Labels)})
			}
			return func(v *statusView) { v.Alerts = panel }
		},
		fail: func(v *statusView, msg string) {
			src := ""
			if p.src.alerts != nil {
				src = p.src.alerts.Describe()
			}
			v.Alerts = alertsPanel{Source: src, Err: msg}
		},
	}
}

// alertAbout renders an alert's labels but severity (every alert of relay's has one),
// sorted, as name="value" pairs.
func alertAbout(l map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		if k != "severity" {
			parts = append(parts, k+"="+strconv.Quote(l[k]))
		}
	}
	return strings.Join(parts, ", ")
}
