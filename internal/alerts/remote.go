package alerts

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// Remote asks a Prometheus server which alerts are active (GET /api/v1/alerts): the one
// that scrapes every relay process and loads deploy/prometheus/alerts.yml.
type Remote struct {
	url string
	api promv1.API
}

// NewRemote asks the Prometheus at baseURL (e.g. http://prometheus:9090).
func NewRemote(baseURL string) (*Remote, error) {
	c, err := api.NewClient(api.Config{Address: baseURL,
		Client: &http.Client{Timeout: 5 * time.Second}}) // the status page bounds it too
	if err != nil {
		return nil, fmt.Errorf("prometheus client for %s: %w", baseURL, err)
	}
	return &Remote{url: baseURL, api: promv1.NewAPI(c)}, nil
}

// URL is the Prometheus asked.
func (r *Remote) URL() string { return r.url }

// Alerts are Prometheus's pending and firing alerts, firing first. Every alert it has is
// listed, including any rule an operator added beside relay's.
func (r *Remote) Alerts(ctx context.Context) ([]Alert, error) {
	res, err := r.api.Alerts(ctx)
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: alerts: %w", r.url, err)
	}
	out := make([]Alert, 0, len(res.Alerts))
	for _, a := range res.Alerts {
		if a.State != promv1.AlertStateFiring && a.State != promv1.AlertStatePending {
			continue // inactive: not listed by the API, but say so rather than assume
		}
		v, _ := strconv.ParseFloat(a.Value, 64) // a value Prometheus cannot print stays 0
		labels := labelMap(a.Labels)
		name := labels[model.AlertNameLabel]
		delete(labels, model.AlertNameLabel)
		out = append(out, Alert{Name: name, State: string(a.State), Labels: labels,
			Annotations: labelMap(a.Annotations), ActiveAt: a.ActiveAt, Value: v})
	}
	SortAlerts(out)
	return out, nil
}

func labelMap(ls model.LabelSet) map[string]string {
	m := make(map[string]string, len(ls))
	for k, v := range ls {
		m[string(k)] = string(v)
	}
	return m
}
