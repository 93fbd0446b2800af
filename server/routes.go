package server

import (
	"log/slog"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// addRoutes is the whole API surface in one place.
func addRoutes(r *gin.Engine, logger *slog.Logger, cfg Config, deps Deps) {
	r.GET("/healthz", handleHealthz())
	r.GET("/readyz", handleReadyz(logger, deps.Checks))
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(deps.Registry, promhttp.HandlerOpts{})))

	events := handleEventWithSubscriptions(logger, deps.Temporal, newEventCache(cfg.EventCacheTTL, cfg.EventCacheSize, deps.Registry))
	r.GET("/events-with-subscriptions/:event_id", events)
	r.GET("/events-with-subscriptions/:event_id/", events)

	r.POST("/sites/:site_id/outage-sync", handleOutageSyncStart(logger, deps.Temporal, cfg.OutagesSince))
	r.GET("/sites/:site_id/outage-sync", handleOutageSyncGet(logger, deps.Temporal))
}
