package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	deploy "relay/deploy/prometheus"
	"relay/internal/alerts"
)

// Compose's Prometheus loads relay's alert rules, the very file relay embeds (and
// internal/alerts tests against a running relay), and relay-server's status page asks that
// Prometheus which of them fire.
func TestComposeLoadsRelaysAlertRules(t *testing.T) {
	f := loadCompose(t)
	var prom struct {
		RuleFiles []string `yaml:"rule_files"`
	}
	readYAML(t, filepath.Join("../..", mount(t, f.Services["prometheus"].Volumes, "/etc/prometheus/prometheus.yml")), &prom)
	require.Len(t, prom.RuleFiles, 1)
	host := mount(t, f.Services["prometheus"].Volumes, prom.RuleFiles[0])
	assert.Equal(t, filepath.Clean("deploy/prometheus/alerts.yml"), filepath.Clean(host))

	b, err := os.ReadFile(filepath.Join("../..", host))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(deploy.AlertRules, b), "relay embeds the file Prometheus loads")
	_, err = alerts.ParseRules(b)
	require.NoError(t, err)

	promPorts := f.Services["prometheus"].Ports
	require.Len(t, promPorts, 1)
	_, promPort, _ := strings.Cut(promPorts[0], ":")
	assert.Equal(t, "http://prometheus:"+promPort, stringify(f.Services["relay-server"].Environment["RELAY_PROMETHEUS_URL"]))
}
