package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"relay/internal/config"
	"relay/internal/relaytest"
	"relay/internal/sim"
	"relay/internal/testenv"
)

// The monitoring half of docker-compose.yml, checked as data like the rest (no Docker
// engine here): Prometheus scrapes relay-server's API and every relay-worker's metrics
// listener, Grafana is provisioned with that Prometheus and the relay dashboard, and the
// dashboard only asks for metrics a running relay exports.

const dashboardFile = "../../deploy/grafana/dashboards/relay.json"

// mount is the host path of the volume svc mounts at target ("" if none).
func mount(t *testing.T, volumes []string, target string) string {
	t.Helper()
	for _, v := range volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == target {
			return parts[0]
		}
	}
	t.Fatalf("nothing is mounted at %s (volumes %v)", target, volumes)
	return ""
}

// port is the port of a host:port setting.
func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err, addr)
	return p
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, v), path)
}

type prometheusConfig struct {
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
		DNSSDConfigs []struct {
			Names []string `yaml:"names"`
			Type  string   `yaml:"type"`
			Port  int      `yaml:"port"`
		} `yaml:"dns_sd_configs"`
	} `yaml:"scrape_configs"`
}

type grafanaDashboard struct {
	UID    string           `json:"uid"`
	Title  string           `json:"title"`
	Panels []dashboardPanel `json:"panels"`
}

type dashboardPanel struct {
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []dashboardPanel `json:"panels"` // of a collapsed row
}

func loadDashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var d grafanaDashboard
	require.NoError(t, json.Unmarshal(b, &d))
	return d
}

// queryPanels are the dashboard's panels that query something, rows' children included.
func (d grafanaDashboard) queryPanels() []dashboardPanel {
	var out []dashboardPanel
	var walk func([]dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			out = append(out, p)
		}
	}
	walk(d.Panels)
	return out
}

func TestComposeRunsPrometheusAndGrafanaOnRelaysMetrics(t *testing.T) {
	f := loadCompose(t)
	for _, name := range []string{"prometheus", "grafana"} {
		svc, ok := f.Services[name]
		require.True(t, ok, "compose has no %s", name)
		assert.Regexp(t, `^[a-z0-9./_-]+:v?\d+\.\d+\.\d+$`, svc.Image, "%s pins its image to a release", name)
		for _, v := range svc.Volumes {
			if host, _, _ := strings.Cut(v, ":"); strings.HasPrefix(host, "./") {
				_, err := os.Stat(filepath.Join("../..", host))
				assert.NoError(t, err, "%s mounts %s, which is not in the repository", name, host)
			}
		}
	}
	assert.ElementsMatch(t, []string{"relay-server", "relay-worker", "temporal"}, dependsOn(f.Services["prometheus"].DependsOn))
	assert.Equal(t, []string{"prometheus"}, dependsOn(f.Services["grafana"].DependsOn))

	// Prometheus scrapes the API's port, and each worker at its RELAY_METRICS_ADDR port.
	var prom prometheusConfig
	readYAML(t, filepath.Join("../..", mount(t, f.Services["prometheus"].Volumes, "/etc/prometheus/prometheus.yml")), &prom)
	serverPort := port(t, stringify(f.Services["relay-server"].Environment["RELAY_HTTP_ADDR"]))
	workerAddr := stringify(f.Services["relay-worker"].Environment["RELAY_METRICS_ADDR"])
	require.NotEmpty(t, workerAddr, "relay-worker must serve its metrics (RELAY_METRICS_ADDR)")
	jobs := map[string]bool{}
	for _, sc := range prom.ScrapeConfigs {
		jobs[sc.JobName] = true
		assert.Equal(t, "/metrics", sc.MetricsPath, sc.JobName)
		switch sc.JobName {
		case "relay-server":
			require.Len(t, sc.StaticConfigs, 1)
			assert.Equal(t, []string{"relay-server:" + serverPort}, sc.StaticConfigs[0].Targets)
		case "relay-worker":
			// Every replica of --scale relay-worker=N, by DNS.
			require.Len(t, sc.DNSSDConfigs, 1)
			assert.Equal(t, []string{"relay-worker"}, sc.DNSSDConfigs[0].Names)
			assert.Equal(t, "A", sc.DNSSDConfigs[0].Type)
			assert.Equal(t, port(t, workerAddr), strconv.Itoa(sc.DNSSDConfigs[0].Port))
		case "temporal":
			// The Temporal server's own metrics (PROMETHEUS_ENDPOINT).
			require.Len(t, sc.StaticConfigs, 1)
			assert.Equal(t, []string{"temporal:" + port(t, stringify(f.Services["temporal"].Environment["PROMETHEUS_ENDPOINT"]))}, sc.StaticConfigs[0].Targets)
		}
	}
	assert.True(t, jobs["relay-server"] && jobs["relay-worker"] && jobs["temporal"], "scrape jobs: %v", jobs)

	// Grafana: the data source is that Prometheus, the dashboards come from the mounted dir.
	provisioning := mount(t, f.Services["grafana"].Volumes, "/etc/grafana/provisioning")
	var datasources struct {
		Datasources []struct {
			UID, Type, URL string
		} `yaml:"datasources"`
	}
	readYAML(t, filepath.Join("../..", provisioning, "datasources/prometheus.yml"), &datasources)
	require.Len(t, datasources.Datasources, 1)
	ds := datasources.Datasources[0]
	assert.Equal(t, "prometheus", ds.Type)
	promPorts := f.Services["prometheus"].Ports
	require.Len(t, promPorts, 1)
	_, promPort, _ := strings.Cut(promPorts[0], ":")
	assert.Equal(t, "http://prometheus:"+promPort, ds.URL)

	var providers struct {
		Providers []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join("../..", provisioning, "dashboards/relay.yml"), &providers)
	require.Len(t, providers.Providers, 1)
	dashboardsDir := providers.Providers[0].Options.Path
	assert.Equal(t, "file", providers.Providers[0].Type)
	hostDir := mount(t, f.Services["grafana"].Volumes, dashboardsDir)
	assert.Equal(t, filepath.Clean("../../deploy/grafana/dashboards"), filepath.Clean(filepath.Join("../..", hostDir)))
	home := stringify(f.Services["grafana"].Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
	assert.Equal(t, dashboardsDir+"/relay.json", home)

	d := loadDashboard(t)
	assert.Equal(t, "relay", d.UID)
	panels := d.queryPanels()
	require.NotEmpty(t, panels)
	for _, p := range panels {
		assert.Equal(t, ds.UID, p.Datasource.UID, "panel %q uses the provisioned data source", p.Title)
		require.NotEmpty(t, p.Targets, "panel %q queries nothing", p.Title)
		for _, q := range p.Targets {
			assert.NotEmpty(t, metricNames(q.Expr), "panel %q: no relay metric in %q", p.Title, q.Expr)
		}
	}
}

var (
	metricName = regexp.MustCompile(`\b(?:relay|temporal|go|process)_[A-Za-z0-9_]+\b`)
	groupings  = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	matchers   = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*"`)
	sample     = regexp.MustCompile(`^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s`)
	labelName  = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)="`)
)

// metricNames are the metrics a PromQL expression reads.
func metricNames(expr string) []string {
	return metricName.FindAllString(expr, -1)
}

// labelsOf are the labels an expression groups or filters by.
func labelsOf(expr string) []string {
	var out []string
	for _, m := range groupings.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(m[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
			}
		}
	}
	for _, m := range matchers.FindAllStringSubmatch(expr, -1) {
		out = append(out, m[1])
	}
	return out
}

// exported reads a /metrics answer: each sample name with the labels it carries.
func exported(body string) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		m := sample.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if out[m[1]] == nil {
			out[m[1]] = map[string]bool{}
		}
		for _, l := range labelName.FindAllStringSubmatch(m[2], -1) {
			out[m[1]][l[1]] = true
		}
	}
	return out
}

// Every metric the dashboard queries is exported on /metrics by a relay that has done each
// job (one failure included), with the labels the dashboard groups and filters by: a
// renamed metric or label fails here, not on someone's empty panel.
func TestDashboardQueriesMetricsRelayExports(t *testing.T) {
	testenv.EndToEnd(t)
	env := relaytest.Start(t, relaytest.WithConfig(func(c *config.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	}))
	do := func(method, path, body string, header ...string) int {
		resp, b := env.Do(t, method, path, strings.NewReader(body), header...)
		require.Less(t, resp.StatusCode, 500, "%s %s: %s", method, path, b)
		return resp.StatusCode
	}
	// Every job once: a geolocation through the API, a merge (miss, then hit), a sync that
	// succeeds and one that fails (an unknown site), and the incident snapshot at start.
	do(http.MethodPost, "/event/submit/", `{"name":"dashboard"}`, "X-Forwarded-For", "81.2.69.142")
	do(http.MethodGet, "/events-with-subscriptions/"+sim.C42EventTeamSync, "")
	do(http.MethodGet, "/events-with-subscriptions/"+sim.C42EventTeamSync, "")
	do(http.MethodPost, "/sites/kingfisher/outage-sync", "")
	do(http.MethodPost, "/sites/atlantis/outage-sync", "")

	d := loadDashboard(t)
	var want []string
	for _, p := range d.queryPanels() {
		for _, q := range p.Targets {
			want = append(want, metricNames(q.Expr)...)
		}
	}
	slices.Sort(want)
	want = slices.Compact(want)
	require.NotEmpty(t, want)

	// Metrics of work in flight appear as the work is done: wait for all of them.
	var metrics map[string]map[string]bool
	testenv.WaitFor(t, 90*time.Second, func() error {
		_, b := env.Do(t, http.MethodGet, "/metrics", nil)
		metrics = exported(string(b))
		var missing []string
		for _, name := range want {
			if metrics[name] == nil {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			return testenv.Waitf("the dashboard queries metrics relay does not export: %v", missing)
		}
		return nil
	})

	// Each label a query groups or filters by is one of its metrics' (or Prometheus's own).
	for _, p := range d.queryPanels() {
		for _, q := range p.Targets {
			names := metricNames(q.Expr)
			for _, l := range labelsOf(q.Expr) {
				if l == "instance" || l == "job" { // Prometheus adds them to every series
					continue
				}
				found := false
				for _, n := range names {
					found = found || metrics[n][l]
				}
				assert.True(t, found, "panel %q groups or filters by %q, which none of %v has", p.Title, l, names)
			}
		}
	}
	t.Logf("the dashboard's %d metrics are all exported", len(want))
}
