// Package prometheus holds the Prometheus configuration docker-compose.yml mounts, and
// embeds its alert rules so that relay can show the same alerts on its status page when no
// Prometheus is configured (package internal/alerts evaluates them).
package prometheus

import _ "embed"

// AlertRules is alerts.yml: relay's alerting rules, in Prometheus's rule file format.
//
//go:embed alerts.yml
var AlertRules []byte
