// Package server is relay's HTTP API: gin routes, handlers and middleware (request ids,
// access logs, metrics, API keys, body limits, one error envelope). It translates HTTP
// into Temporal calls and store reads; it starts no goroutines of its own.
package server

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"relay/internal/config"
)

// Config is what the API needs to know of relay's configuration.
type Config struct {
	// APIKeys, when not empty, are required on every route but /healthz.
	APIKeys []string
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// OutagesSince is the cutoff of an outage sync started without one (KF_OUTAGES_SINCE).
	OutagesSince time.Time
	// EventCacheTTL is how long a merged event is served from cache (C42_CACHE_TTL);
	// EventCacheSize bounds the cache in entries.
	EventCacheTTL  time.Duration
	EventCacheSize int
	// SubmitRate is how many event submissions per second a client IP may make;
	// SubmitBurst is how many it may make at once.
	SubmitRate  float64
	SubmitBurst int

	// TemporalUIURL is the Temporal Web UI the status page links runs to; empty shows
	// their ids without links. TemporalNamespace is the namespace in those links.
	TemporalUIURL     string
	TemporalNamespace string
	// GeoRateLimit is the geolocation API's calls per second, drawn on the status page.
	GeoRateLimit float64
	// CodecCORSOrigins are the Web UI origins whose browsers may call the codec endpoint.
	CodecCORSOrigins []string
	// WorkflowIDKey names IP lookups (workflows.GeolocateWorkflowID), as the workers do.
	WorkflowIDKey string
}

// Temporal is what the API asks of the Temporal client (client.Client has it all).
type Temporal interface {
	ExecuteWorkflow(ctx context.Context, options client.StartWorkflowOptions, workflow any, args ...any) (client.WorkflowRun, error)
	// NewWithStartWorkflowOperation and UpdateWithStartWorkflow ask an entity workflow
	// (an event's merge), starting it if none runs.
	NewWithStartWorkflowOperation(options client.StartWorkflowOptions, workflow any, args ...any) client.WithStartWorkflowOperation
	UpdateWithStartWorkflow(ctx context.Context, options client.UpdateWithStartWorkflowOptions) (client.WorkflowUpdateHandle, error)
	DescribeWorkflowExecution(ctx context.Context, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error)
	Visibility
}

// Visibility reads runs and their results: what the status page asks of Temporal.
type Visibility interface {
	GetWorkflow(ctx context.Context, workflowID, runID string) client.WorkflowRun
	ListWorkflow(ctx context.Context, request *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error)
	CountWorkflow(ctx context.Context, request *workflowservice.CountWorkflowExecutionsRequest) (*workflowservice.CountWorkflowExecutionsResponse, error)
}

// Deps are the API's collaborators.
type Deps struct {
	// Temporal starts and inspects workflows.
	Temporal Temporal
	// Incidents holds the incident snapshot GET /incidents serves (its owner runs Watch).
	Incidents *IncidentSnapshots
	// Checks are what /readyz asks (Temporal, the database).
	Checks []Check
	// Registry collects the API's metrics and serves /metrics, with whatever else is
	// registered on it (the Temporal SDK's, the Go runtime's).
	Registry *prometheus.Registry
	// Events stores submitted events and reads them back. Without it the event
	// endpoints answer 503.
	Events EventStore
	// EventAccepted, if set, is called after each new event is stored (it must not
	// block), so an in-process dispatcher can start its workflow at once instead of at
	// its next poll. A repeated submission (same Idempotency-Key) does not call it.
	EventAccepted func()
	// RateSlots reads the geolocation API's calls per second from the store, for the
	// status page (the workers that make the calls may be other processes).
	RateSlots RateSlotReader
	// Alerts lists the alerts that fire, for the status page; nil says none is configured.
	Alerts AlertSource
	// Codec is relay's payload codec (payloadcodec): it serves the codec endpoint and
	// decodes memos. Nil: payloads are in the clear.
	Codec converter.PayloadCodec
}

// withDefaults fills the settings left at zero from config.Default, where every default lives.
func (cfg Config) withDefaults() Config {
	d := config.Default()
	if cfg.EventCacheTTL <= 0 {
		cfg.EventCacheTTL = d.C42.CacheTTL
	}
	if cfg.EventCacheSize <= 0 {
		cfg.EventCacheSize = d.C42.CacheSize
	}
	if !(cfg.SubmitRate > 0) { // NaN too
		cfg.SubmitRate = d.GeoIP.SubmitRate
	}
	if cfg.SubmitBurst <= 0 {
		cfg.SubmitBurst = d.GeoIP.SubmitBurst
	}
	if cfg.TemporalNamespace == "" {
		cfg.TemporalNamespace = d.TemporalNamespace
	}
	if cfg.OutagesSince.IsZero() {
		cfg.OutagesSince = d.KF.OutagesSince
	}
	if !(cfg.GeoRateLimit > 0) {
		cfg.GeoRateLimit = d.GeoIP.RateLimit
	}
	return cfg
}

func init() {
	// Release mode: no route dump at start and no debug warnings on every request.
	gin.SetMode(gin.ReleaseMode)
}

// New builds the API's handler. Settings left at zero take relay's defaults (config.Default).
func New(logger *slog.Logger, cfg Config, deps Deps) *gin.Engine {
	if deps.Registry == nil {
		deps.Registry = prometheus.NewRegistry()
	}
	cfg = cfg.withDefaults()
	if deps.Events == nil {
		deps.Events = noEventStore{}
	}
	r := gin.New()
	r.HandleMethodNotAllowed = true
	// Routes that accept a trailing slash register both forms; never redirect a POST.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.ContextWithFallback = true
	// The client IP is the TCP peer unless the peer is a trusted proxy; then it is the
	// rightmost untrusted address of X-Forwarded-For.
	r.RemoteIPHeaders = []string{"X-Forwarded-For"}
	proxies := make([]string, len(cfg.TrustedProxies))
	for i, p := range cfg.TrustedProxies {
		proxies[i] = p.String()
	}
	if err := r.SetTrustedProxies(proxies); err != nil {
		// config has parsed them already, so this cannot happen; trust nobody if it does.
		logger.Error("trusted proxies rejected; trusting none", "error", err)
		_ = r.SetTrustedProxies(nil)
	}

	r.Use(
		withRequestID(),
		withAccessLog(logger),
		withMetrics(newHTTPMetrics(deps.Registry)),
		withRecovery(logger),
		withCodecCORS(cfg.CodecCORSOrigins), // before the keys: a browser's preflight carries none
		withAPIKeys(cfg.APIKeys, logger),
		withBodyLimit(MaxBodyBytes, logger),
	)
	if deps.Incidents == nil {
		deps.Incidents = NewIncidentSnapshots(nil, logger) // serves 503 until given a source
	}
	deps.Incidents.register(deps.Registry)
	r.NoRoute(func(c *gin.Context) {
		respondError(c, logger, Errorf(CodeNotFound, "no route for "+c.Request.URL.Path))
	})
	r.NoMethod(func(c *gin.Context) {
		respondError(c, logger, Errorf(CodeMethodNotAllowed, c.Request.Method+" is not allowed on "+c.Request.URL.Path))
	})
	addRoutes(r, logger, cfg, deps)
	return r
}
