package server

import (
	"log/slog"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// addRoutes is the whole API surface in one place.
func addRoutes(r *gin.Engine, logger *slog.Logger, cfg Config, deps Deps) {
	r.GET("/healthz", handleHealthz(logger))
	r.GET("/readyz", handleReadyz(logger, deps.Checks, func() gin.H {
		// Informative, not a condition: an old snapshot is still served while upstream is down.
		age, ok := deps.Incidents.Age()
		if !ok {
			return gin.H{"incidents_snapshot_age_seconds": nil}
		}
		return gin.H{"incidents_snapshot_age_seconds": int(age.Seconds())}
	}))
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(deps.Registry, promhttp.HandlerOpts{})))
	r.GET("/openapi.json", handleOpenAPI()) // the contract; tests hold it to these routes

	incidents := handleIncidentsGet(logger, deps.Incidents)
	r.GET("/incidents", incidents)
	r.HEAD("/incidents", incidents) // headers only: a cheap freshness check
	r.POST("/incidents/refresh", handleIncidentsRefresh(logger, deps.Temporal))

	eventCache := newEventCache(cfg.EventCacheTTL, cfg.EventCacheSize, deps.Registry)
	events := handleEventWithSubscriptions(logger, deps.Temporal, eventCache)
	r.GET("/events-with-subscriptions/:event_id", events)
	r.GET("/events-with-subscriptions/:event_id/", events)

	submit := handleEventSubmit(logger, deps.Events, newSubmitLimiter(cfg.SubmitRate, cfg.SubmitBurst, submitLimitersSize), deps.EventAccepted)
	r.POST("/event/submit", submit)
	r.POST("/event/submit/", submit)
	event := handleEventGet(logger, deps.Events)
	r.GET("/event/:task_id", event)
	r.GET("/event/:task_id/", event)
	r.GET("/events", handleEventsList(logger, deps.Events))

	memos := newMemoReader(deps.Codec)
	r.POST("/sites/:site_id/outage-sync", handleOutageSyncStart(logger, deps.Temporal, memos, cfg.OutagesSince))
	r.GET("/sites/:site_id/outage-sync", handleOutageSyncGet(logger, deps.Temporal))

	// The operators' page: every job at a glance (HTML, behind the API keys like the rest).
	pending, _ := deps.Events.(pendingReader)
	if pending != nil {
		registerPendingGauges(deps.Registry, pending)
	}
	r.GET("/", handleStatus(logger, newStatusPage(logger, cfg, statusSources{
		snapshots: deps.Incidents, cache: eventCache, runs: deps.Temporal, slots: deps.RateSlots,
		pending: pending, lookups: deps.Temporal, checks: deps.Checks, alerts: deps.Alerts, memos: memos,
	})))

	addCodecRoutes(r, logger, deps.Codec)
}
