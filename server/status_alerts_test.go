package server

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/internal/htmltest"
)

type fakeAlerts struct {
	alerts []Alert
	err    error
}

func (f fakeAlerts) Alerts(context.Context) ([]Alert, error) { return f.alerts, f.err }
func (f fakeAlerts) Describe() string {
	return "as Prometheus at http://prometheus:9090 evaluates them"
}

func TestStatusPageListsActiveAlerts(t *testing.T) {
	f := newStatusFixture(t)
	f.alerts = fakeAlerts{alerts: []Alert{
		{Name: "RelayUpstreamErrorRatioHigh", State: "firing", Labels: map[string]string{"api": "geoip", "severity": "warning"},
			Summary: "100% of calls to the geoip API failed in the last 5 minutes", Since: f.now.Add(-7 * time.Minute)},
		{Name: "RelayGeolocationBacklogGrowing", State: "pending", Labels: map[string]string{"severity": "warning"},
			Summary: "240 events wait to be located, and the backlog keeps growing", Since: f.now.Add(-time.Minute)},
	}}
	rec, page := serveStatus(t, f.page())
	require.Equal(t, http.StatusOK, rec.Code)

	panel := htmltest.Element(t, page, "section", "id", "alerts")
	assert.Contains(t, panel, `data-firing="1"`)
	assert.Contains(t, panel, "1 firing")
	assert.Contains(t, panel, "as Prometheus at http://prometheus:9090 evaluates them")
	assert.Contains(t, panel, `data-alert="RelayUpstreamErrorRatioHigh" data-state="firing"`)
	assert.Contains(t, panel, `data-alert="RelayGeolocationBacklogGrowing" data-state="pending"`)
	assert.Contains(t, panel, "100% of calls to the geoip API failed in the last 5 minutes")
	assert.Contains(t, panel, `api=&#34;geoip&#34;`, "what the alert is about")
	assert.NotContains(t, panel, "severity", "every alert has one: not worth a column")
	assert.Contains(t, panel, ">7 min<", "how long it has held")
}

func TestStatusPageAlertsPanelWithoutAlerts(t *testing.T) {
	f := newStatusFixture(t)
	f.alerts = fakeAlerts{}
	_, page := serveStatus(t, f.page())
	panel := htmltest.Element(t, page, "section", "id", "alerts")
	assert.Contains(t, panel, `data-firing="0"`)
	assert.Contains(t, panel, "none firing")
	assert.Contains(t, panel, `id="alerts-none"`)
}

// Without a Prometheus or relay's own evaluation the panel says how to get alerts.
func TestStatusPageAlertsPanelNotConfigured(t *testing.T) {
	f := newStatusFixture(t)
	_, page := serveStatus(t, f.page())
	panel := htmltest.Element(t, page, "section", "id", "alerts")
	assert.Contains(t, panel, "alerts: not configured (set <code>RELAY_PROMETHEUS_URL</code>)")
	assert.NotContains(t, panel, "none firing", "no source, so no claim that nothing fires")
}

func TestStatusPageAlertsPanelWhenPrometheusFails(t *testing.T) {
	f := newStatusFixture(t)
	f.alerts = fakeAlerts{err: errors.New("prometheus http://10.9.8.7:9090: alerts: connection refused")}
	rec, page := serveStatus(t, f.page())
	require.Equal(t, http.StatusOK, rec.Code, "a failed source is no failed page")
	panel := htmltest.Element(t, page, "section", "id", "alerts")
	assert.Contains(t, panel, "reading alerts failed (details in the log)")
	assert.NotContains(t, panel, "none firing", "unknown is not none")
	assert.NotContains(t, page, "10.9.8.7")
	assert.Contains(t, f.log.String(), "10.9.8.7:9090")
}

func TestAlertAbout(t *testing.T) {
	assert.Equal(t, `api="geoip", instance="relay-server:9000"`,
		alertAbout(map[string]string{"severity": "warning", "instance": "relay-server:9000", "api": "geoip"}))
	assert.Equal(t, "", alertAbout(nil))
}
