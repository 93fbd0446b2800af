// Package scenarios is what `relay bench` measures: each scenario starts relay in the
// process (embedded Temporal with its history in a SQLite file as `relay dev` keeps it,
// simulators with the scenario's latency and faults, worker, HTTP API), loads it on
// loopback, measures its baseline in the same run, and reports rows and charts.
//
// StartRelay and the request builders (requests.go) are for other loads too, such as a
// soak of mixed traffic on every route.
package scenarios

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"time"

	"relay/internal/app"
	"relay/internal/bench"
	"relay/internal/config"
)

// All lists the scenarios in the order a full run takes them.
var All = []bench.Scenario{
	workflowLatency,
	incidentsServe,
	incidentsRefresh,
	mergeHit,
	mergeMiss,
	mergeTwoServers,
	submitLatency,
	geoRate,
	geoCached,
	outageFilter,
	outageSync,
}

// Relay is relay running in this process for one measurement.
type Relay struct {
	*app.System
	URL string // the HTTP API's root, like http://127.0.0.1:41234
	dir string
}

// StartRelay starts the parts of relay on free loopback ports with a fresh data dir
// (removed by Close), its simulators set by knobs (the RELAY_SIM_KNOBS syntax, e.g.
// "geoip:hiccup-rate=0.2,hiccup-delay=5s"), and the configuration changed by configure.
// The scheduled incidents refresh is pushed out to an hour and the scheduled outage sync
// is off, so that only the load refreshes and syncs.
func StartRelay(ctx context.Context, logger *slog.Logger, parts app.Parts, knobs string, configure ...func(*config.Config)) (*Relay, error) {
	dir, err := os.MkdirTemp("", "relay-bench-")
	if err != nil {
		return nil, err
	}
	cfg := config.Default()
	cfg.HTTPAddr, cfg.TemporalListen, cfg.UIAddr, cfg.DataDir = "127.0.0.1:0", "127.0.0.1:0", "", dir
	cfg.SimKnobs = knobs
	cfg.Incidents.RefreshInterval = time.Hour
	cfg.KF.SyncInterval = 0 // only the load syncs
	for _, f := range configure {
		f(&cfg)
	}
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	sys, err := app.Start(startCtx, cfg, parts, logger)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start relay: %w", err)
	}
	return &Relay{System: sys, URL: "http://" + sys.HTTPAddr, dir: dir}, nil
}

// startDev starts everything `relay dev` runs, for a case.
func startDev(ctx context.Context, c *bench.Case, knobs string, configure ...func(*config.Config)) (*Relay, error) {
	return StartRelay(ctx, c.Logger, app.Dev, knobs, configure...)
}

// Close stops relay and removes its data.
func (r *Relay) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := r.Stop(ctx)
	os.RemoveAll(r.dir)
	return err
}

// BehindLoopbackProxy lets a load name each submission's client in X-Forwarded-For, so
// that every event can have an IP of its own, and lifts the per-client submission limit.
func BehindLoopbackProxy(cfg *config.Config) {
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	cfg.GeoIP.SubmitRate = 1e6
}

// httpClient is for the scenarios' own calls (not the loads): compression off, as the loads.
var httpClient = bench.Client(16, time.Minute)

// call sends a request with the scenarios' client and returns the answer, its body read.
func call(ctx context.Context, method, url string, header ...string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, nil, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}
