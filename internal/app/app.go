// Package app assembles relay's parts into running processes. One Start serves every
// command: `dev` runs all parts (embedded Temporal, simulators, worker, HTTP API),
// `server` the API, `worker` the worker; the end-to-end tests run `dev` in memory.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/client"

	"relay/activities"
	"relay/internal/config"
	"relay/internal/payloadcodec"
	"relay/internal/sim"
	"relay/internal/store"
	"relay/internal/temporalclient"
	"relay/internal/temporalserver"
	"relay/internal/timefmt"
	"relay/server"
	"relay/worker"
	"relay/workflows"
)

// Parts says what a process runs.
type Parts struct {
	HTTP   bool // the HTTP API
	Worker bool // the Temporal worker
	// Dev adds what `relay dev` brings: the embedded Temporal server (unless
	// TEMPORAL_ADDRESS is set) and a simulator for every upstream without a URL.
	Dev bool
	// InMemory keeps the embedded server's history in memory (tests); otherwise it is a
	// SQLite file in the data dir and survives restarts.
	InMemory bool
}

// Dev, Server and Worker are the parts of relay's commands.
var (
	Dev    = Parts{HTTP: true, Worker: true, Dev: true}
	Server = Parts{HTTP: true}
	Worker = Parts{Worker: true}
)

// System is a running relay process.
type System struct {
	Config   config.Config // as completed at start: simulator URLs and credentials filled in
	Client   client.Client
	Store    *store.Store
	Temporal *temporalserver.Server // nil unless embedded
	Sims     *sim.Fleet             // nil unless dev started simulators
	Registry *prometheus.Registry
	HTTPAddr string // where the API listens, "" without one
	// MetricsAddr is where /metrics is served on its own listener (RELAY_METRICS_ADDR),
	// "" without one.
	MetricsAddr string

	logger     *slog.Logger
	codec      *payloadcodec.Codec           // nil: payloads in the clear
	dispatcher *worker.Dispatcher            // nil without a worker
	stops      []func(context.Context) error // in start order; Stop runs them backwards
	served     chan error
}

// Start brings up the parts in dependency order. On error, whatever started is stopped.
func Start(ctx context.Context, cfg config.Config, parts Parts, logger *slog.Logger) (_ *System, err error) {
	s := &System{Config: cfg, logger: logger, Registry: prometheus.NewRegistry(), served: make(chan error, 1)}
	defer func() {
		if err != nil {
			_ = s.Stop(context.Background())
		}
	}()
	s.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if parts.Dev {
		if err := s.startDev(parts); err != nil {
			return nil, err
		}
	}
	if err := s.openStore(ctx); err != nil {
		return nil, err
	}
	if err := s.setupCodec(); err != nil {
		return nil, err
	}
	if err := s.dialTemporal(ctx); err != nil {
		return nil, err
	}
	if parts.Worker {
		if err := s.startWorker(ctx); err != nil {
			return nil, err
		}
	}
	if parts.HTTP {
		alertSrc, err := s.alertSource(parts.Worker)
		if err != nil {
			return nil, err
		}
		if err := s.startHTTP(alertSrc); err != nil {
			return nil, err
		}
	}
	if s.Config.MetricsAddr != "" {
		if err := s.startMetrics(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Wait blocks until ctx ends or the HTTP server fails.
func (s *System) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-s.served:
		return fmt.Errorf("http server: %w", err)
	}
}

// Stop stops every part, last started first: the API finishes its requests, the worker
// drains, then Temporal and the store close. ctx bounds the wait.
func (s *System) Stop(ctx context.Context) error {
	var errs []error
	for i := len(s.stops) - 1; i >= 0; i-- {
		if err := s.stops[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	s.stops = nil
	return errors.Join(errs...)
}

func (s *System) onStop(f func(context.Context) error) { s.stops = append(s.stops, f) }

func (s *System) startDev(parts Parts) error {
	cfg := &s.Config
	if len(cfg.APIKeys) == 0 && !config.IsLoopback(cfg.HTTPAddr) {
		return &config.Error{Name: "RELAY_HTTP_ADDR", Msg: fmt.Sprintf(
			"dev refuses to serve %s beyond this machine without an API key: set RELAY_API_KEYS, or listen on 127.0.0.1", cfg.HTTPAddr)}
	}
	if !parts.InMemory {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
		}
	}
	if err := s.startSims(); err != nil {
		return err
	}
	if cfg.TemporalAddress != "" {
		return nil // use the server the user named, with the keys its other processes use
	}
	// Its own server: its own secrets too, unless given.
	if err := devSecrets(cfg, parts.InMemory); err != nil {
		return err
	}
	opts := temporalserver.Options{
		FrontendAddr:  cfg.TemporalListen,
		UIAddr:        cfg.UIAddr,
		CodecEndpoint: codecEndpoint(cfg.HTTPAddr),
		Namespace:     cfg.TemporalNamespace,
		// A new dev database starts with them; the worker adds them to an older one.
		SearchAttributes: workflows.SearchAttributes(),
		Logger:           s.logger,
	}
	if !parts.InMemory {
		opts.DatabaseFile = filepath.Join(cfg.DataDir, "temporal.db")
		if _, port, _ := net.SplitHostPort(cfg.TemporalListen); port != "0" {
			if l, err := net.Listen("tcp", cfg.TemporalListen); err != nil {
				return fmt.Errorf("embedded Temporal frontend %s: %w (another Temporal server? set TEMPORAL_ADDRESS to use it, or RELAY_TEMPORAL_LISTEN to move this one)", cfg.TemporalListen, err)
			} else {
				l.Close()
			}
		}
	}
	ts, err := temporalserver.Start(opts)
	if err != nil {
		return err
	}
	s.Temporal = ts
	cfg.TemporalAddress = ts.FrontendAddr()
	if ts.UIAddr() != "" && len(cfg.CodecCORSOrigins) == 0 {
		// The Web UI decodes payloads through relay's codec endpoint, from the browser.
		_, port, _ := net.SplitHostPort(ts.UIAddr())
		cfg.CodecCORSOrigins = []string{"http://" + ts.UIAddr(), "http://localhost:" + port, "http://127.0.0.1:" + port}
	}
	if cfg.TemporalUIURL == "" && ts.UIAddr() != "" {
		cfg.TemporalUIURL = "http://" + ts.UIAddr() // the status page links runs to it
	}
	s.onStop(func(context.Context) error { return ts.Stop() })
	return nil
}

// startSims starts a simulator for every upstream whose URL is not configured and points
// the configuration, credentials included, at it.
func (s *System) startSims() error {
	cfg := &s.Config
	urls := map[string]*string{sim.Incidents: &cfg.Incidents.URL, sim.C42: &cfg.C42.URL, sim.GeoIP: &cfg.GeoIP.URL, sim.KF: &cfg.KF.URL}
	var names []string
	for _, name := range sim.Names {
		if *urls[name] == "" {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	fleet, err := sim.Start(cfg.SimListen, names, nil, cfg.SimKnobs)
	if err != nil {
		if _, ok := errors.AsType[*sim.KnobsError](err); ok {
			return &config.Error{Name: "RELAY_SIM_KNOBS", Msg: err.Error()}
		}
		return err // a port taken, say: a failure to start, not a configuration mistake
	}
	s.Sims = fleet
	s.onStop(fleet.Close)
	for _, name := range names {
		*urls[name] = fleet.URL(name)
		creds := fleet.Sim(name).Knobs().Credentials
		switch name {
		case sim.Incidents:
			cfg.Incidents.User, cfg.Incidents.Password = splitCreds(creds)
		case sim.C42:
			cfg.C42.Token = creds
		case sim.KF:
			cfg.KF.APIKey = creds
		}
	}
	return nil
}

func splitCreds(creds string) (user, password string) {
	user, password, _ = strings.Cut(creds, ":")
	return user, password
}

func (s *System) openStore(ctx context.Context) error {
	url := s.Config.DatabaseURL
	if url == "" {
		url = store.DefaultURL(s.Config.DataDir)
	}
	st, err := store.OpenWith(ctx, url, store.Options{MaxConns: s.Config.DBMaxConns})
	if err != nil {
		return err
	}
	s.Store = st
	s.onStop(func(context.Context) error { return st.Close() })
	return nil
}

func (s *System) dialTemporal(ctx context.Context) error {
	addr := s.Config.TemporalAddress
	if addr == "" {
		addr = config.DefaultTemporalAddress
	}
	tc := s.Config.TemporalTLS
	opts := temporalclient.Options{
		HostPort:  addr,
		Namespace: s.Config.TemporalNamespace,
		Logger:    s.logger,
		Registry:  s.Registry,
		Identity:  identity(),
		// config refuses TLS settings for dev's embedded server, which is plain.
		TLS:    temporalclient.TLS{CertFile: tc.Cert, KeyFile: tc.Key, CAFile: tc.CA, ServerName: tc.ServerName},
		APIKey: s.Config.TemporalAPIKey,
	}
	if s.codec != nil {
		opts.DataConverter = payloadcodec.DataConverter(s.codec)
		opts.FailureConverter = payloadcodec.FailureConverter(opts.DataConverter)
	}
	c, err := temporalclient.Dial(ctx, opts)
	if err != nil {
		return err
	}
	s.Client = c
	s.onStop(func(context.Context) error { c.Close(); return nil })
	return nil
}

func (s *System) startWorker(ctx context.Context) error {
	cfg := s.Config
	metrics := activities.NewUpstreamMetrics(s.Registry)
	geo, err := activities.NewGeo(activities.GeoOptions{
		BaseURL: cfg.GeoIP.URL, HTTP: upstreamHTTPClient(cfg.UpstreamTimeout), Store: s.Store, Metrics: metrics,
		RateLimit: cfg.GeoIP.RateLimit, CacheTTL: cfg.GeoIP.CacheTTL,
	})
	if err != nil {
		return err
	}
	w, err := worker.New(s.Client, worker.Activities{
		Pinger: &activities.Pinger{Worker: identity()},
		KF: activities.NewKF(activities.KFOptions{
			BaseURL: cfg.KF.URL, APIKey: cfg.KF.APIKey, HTTP: upstreamHTTPClient(cfg.UpstreamTimeout),
			Store: s.Store, Metrics: metrics, DefaultSince: cfg.KF.OutagesSince,
		}),
		C42: activities.NewC42(activities.C42Options{
			BaseURL: cfg.C42.URL, Token: cfg.C42.Token, HTTP: upstreamHTTPClient(cfg.UpstreamTimeout), Metrics: metrics,
		}),
		Incidents: activities.NewIncidents(activities.IncidentsOptions{
			BaseURL: cfg.Incidents.URL, User: cfg.Incidents.User, Password: cfg.Incidents.Password,
			HTTP: upstreamHTTPClient(cfg.UpstreamTimeout), Store: s.Store, Metrics: metrics,
		}),
		Geo: geo,
	}, worker.Options{GeoIPRateLimit: cfg.GeoIP.RateLimit, StoreConns: workerStoreConns(s.Store)})
	if err != nil {
		return err
	}
	// The limit beside the calls, so that a dashboard can draw one against the other.
	geoLimit := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "relay_upstream_rate_limit", Help: "Calls per second an upstream API allows.",
		ConstLabels: prometheus.Labels{"api": "geoip"},
	})
	geoLimit.Set(cfg.GeoIP.RateLimit)
	s.Registry.MustRegister(geoLimit)
	registerRefreshInterval(s.Registry, cfg.Incidents.RefreshInterval)
	if err := w.Start(); err != nil {
		return err
	}
	s.onStop(func(context.Context) error { w.Stop(); return nil })

	// The dispatcher hands accepted events to their IP's lookup (see worker.Dispatcher).
	s.dispatcher = worker.NewDispatcher(s.Store, s.Client, s.logger, 200*time.Millisecond,
		worker.NewDispatchMetrics(s.Registry), []byte(s.Config.WorkflowIDKey))
	dispatchCtx, stopDispatch := context.WithCancel(context.Background())
	dispatched := make(chan struct{})
	go func() { defer close(dispatched); s.dispatcher.Run(dispatchCtx) }()
	s.onStop(func(context.Context) error { stopDispatch(); <-dispatched; return nil })

	_, _, err = s.Store.LatestSnapshotID(ctx)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	// The schedules are ensured in the background and retried until they are: every
	// worker of a cluster starts at once and updates the same schedules, and one that waits
	// too long must not stop its worker (CI saw 11 of 12 worker processes exit that way).
	noSnapshot := errors.Is(err, store.ErrNotFound)
	schedCtx, stopSched := context.WithCancel(context.Background())
	schedDone := make(chan struct{})
	go func() {
		defer close(schedDone)
		for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
			callCtx, cancel := context.WithTimeout(schedCtx, 30*time.Second)
			// First: every run and schedule action sets them, and Temporal refuses unknown ones.
			err := temporalclient.EnsureSearchAttributes(callCtx, s.Client, cfg.TemporalNamespace, workflows.SearchAttributes())
			if err == nil {
				err = worker.EnsureStagedBlobsSweepSchedule(callCtx, s.Client)
			}
			if err == nil {
				err = worker.EnsureOutageSyncSchedule(callCtx, s.Client, cfg.KF.SiteID, timefmt.Millis(cfg.KF.OutagesSince), cfg.KF.SyncInterval)
			}
			if err == nil { // last: it may trigger a refresh, which a retry would trigger again
				err = worker.EnsureIncidentsSchedule(callCtx, s.Client, cfg.Incidents.RefreshInterval, noSnapshot)
			}
			cancel()
			if err == nil || schedCtx.Err() != nil {
				return
			}
			s.logger.Warn("search attributes and schedules not ensured yet: retrying", "error", err, "retry_in", wait)
			select {
			case <-schedCtx.Done():
				return
			case <-time.After(wait):
			}
		}
	}()
	s.onStop(func(context.Context) error { stopSched(); <-schedDone; return nil })
	return nil
}

func (s *System) startHTTP(alerts server.AlertSource) error {
	// The API serves incident snapshots from memory and looks for a newer one twice a
	// second, so that a published refresh is served within a second.
	snaps := server.NewIncidentSnapshots(s.Store, s.logger)
	watchCtx, stopWatch := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() { defer close(watched); snaps.Watch(watchCtx, 500*time.Millisecond) }()
	s.onStop(func(context.Context) error { stopWatch(); <-watched; return nil })

	handler := server.New(s.logger, server.Config{
		APIKeys:        s.Config.APIKeys,
		TrustedProxies: s.Config.TrustedProxies,
		OutagesSince:   s.Config.KF.OutagesSince,
		EventCacheTTL:  s.Config.C42.CacheTTL,
		EventCacheSize: s.Config.C42.CacheSize,
		SubmitRate:     s.Config.GeoIP.SubmitRate,
		SubmitBurst:    s.Config.GeoIP.SubmitBurst,
		// for the status page
		TemporalUIURL:     s.Config.TemporalUIURL,
		TemporalNamespace: s.Config.TemporalNamespace,
		GeoRateLimit:      s.Config.GeoIP.RateLimit,
		CodecCORSOrigins:  s.Config.CodecCORSOrigins,
		WorkflowIDKey:     s.Config.WorkflowIDKey,
	}, server.Deps{
		Temporal:      s.Client,
		Incidents:     snaps,
		Events:        s.Store,
		RateSlots:     s.Store,
		EventAccepted: s.notifyDispatcher,
		Registry:      s.Registry,
		Alerts:        alerts,
		Codec:         s.payloadCodec(),
		Checks: []server.Check{
			{Name: "temporal", Run: func(ctx context.Context) error {
				_, err := s.Client.CheckHealth(ctx, &client.CheckHealthRequest{})
				return err
			}},
			{Name: "database", Run: s.Store.Ping},
		},
	})
	l, err := net.Listen("tcp", s.Config.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http api on %s: %w", s.Config.HTTPAddr, err)
	}
	srv := server.NewHTTPServer(handler, server.DefaultTimeouts, s.logger)
	s.HTTPAddr = l.Addr().String()
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.served <- err
		}
	}()
	s.onStop(srv.Shutdown)
	return nil
}

// startMetrics serves /metrics on a listener of its own: a worker has no other, and a
// scraper needs no API key for it.
func (s *System) startMetrics() error {
	l, err := net.Listen("tcp", s.Config.MetricsAddr)
	if err != nil {
		return fmt.Errorf("metrics on %s: %w", s.Config.MetricsAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{}))
	// The same timeouts as the API: this listener has no keys, so slow clients matter more.
	srv := server.NewHTTPServer(mux, server.DefaultTimeouts, s.logger)
	s.MetricsAddr = l.Addr().String()
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			select {
			case s.served <- fmt.Errorf("metrics: %w", err):
			default: // the API's failure is reported already
			}
		}
	}()
	s.onStop(srv.Shutdown)
	return nil
}

// notifyDispatcher wakes this process's dispatcher, if it runs one, so that an accepted
// event's workflow starts at once; another process's dispatcher finds it at its next poll.
func (s *System) notifyDispatcher() {
	if s.dispatcher != nil {
		s.dispatcher.Notify()
	}
}

// upstreamHTTPClient is the client activities call upstream APIs with: a call that
// hangs is cut off (RELAY_UPSTREAM_TIMEOUT, inside the activities' own timeouts), so that
// it is retried.
func upstreamHTTPClient(timeout time.Duration) *http.Client {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 32
	return &http.Client{Transport: transport, Timeout: timeout}
}

// workerStoreConns is the pool the worker's concurrency is sized to (see worker.Options):
// PostgreSQL's. On SQLite every write waits for the one writer's lock whatever the pool,
// so there the worker keeps its defaults.
func workerStoreConns(st *store.Store) int {
	if st.Dialect() != store.Postgres {
		return 0
	}
	return st.MaxConns()
}

// identity names this process to Temporal as the SDK would: pid@host.
func identity() string {
	host, _ := os.Hostname()
	return strconv.Itoa(os.Getpid()) + "@" + host
}
