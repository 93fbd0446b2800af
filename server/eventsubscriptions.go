package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/sync/singleflight"

	"relay/activities"
	"relay/internal/eventsubscriptions"
	"relay/workflows"
)

// eventCache holds merged events as ready-to-send JSON for a TTL, bounded by an LRU of
// entries. Expired entries are dropped when next read: no goroutine sweeps it.
type eventCache struct {
	entries *lru.Cache[string, cachedEvent]
	ttl     time.Duration
	now     func() time.Time
	// group lets concurrent misses of one id in this process share one workflow; the
	// workflow id's conflict policy does the same across processes.
	group        singleflight.Group
	hits, misses atomic.Int64 // what /metrics exports and the status page shows
}

type cachedEvent struct {
	body    []byte
	expires time.Time
}

// cacheStats is what the merge cache has done since the process started.
type cacheStats struct {
	Hits, Misses int64
	Entries      int
	TTL          time.Duration
}

func newEventCache(ttl time.Duration, size int, reg prometheus.Registerer) *eventCache {
	entries, err := lru.New[string, cachedEvent](size)
	if err != nil {
		panic(err) // only for size <= 0, which New's caller never passes
	}
	c := &eventCache{entries: entries, ttl: ttl, now: time.Now}
	// The cache's own counters, exported as they are. A second handler on one registry
	// (tests build them) keeps exporting the first one's.
	for result, n := range map[string]*atomic.Int64{"hit": &c.hits, "miss": &c.misses} {
		register(reg, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "relay_cache_requests_total",
			Help:        "Cache lookups, by cache and result (hit or miss).",
			ConstLabels: prometheus.Labels{"cache": "events", "result": result},
		}, func() float64 { return float64(n.Load()) }))
	}
	return c
}

// get returns a fresh entry and how long it stays fresh.
func (c *eventCache) get(id string) ([]byte, time.Duration, bool) {
	e, ok := c.entries.Get(id)
	if ok {
		if left := e.expires.Sub(c.now()); left > 0 {
			c.hits.Add(1)
			return e.body, left, true
		}
		c.entries.Remove(id)
	}
	c.misses.Add(1)
	return nil, 0, false
}

func (c *eventCache) add(id string, body []byte) {
	c.entries.Add(id, cachedEvent{body: body, expires: c.now().Add(c.ttl)})
}

// Stats is the status page's view of the cache.
func (c *eventCache) Stats() cacheStats {
	return cacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Entries: c.entries.Len(), TTL: c.ttl}
}

// handleEventWithSubscriptions answers from the cache, or runs the merge workflow (one per
// id at a time) and caches its answer. Failures are never cached.
func handleEventWithSubscriptions(logger *slog.Logger, tc Temporal, cache *eventCache) gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.Param("event_id")
		if !workflows.ValidEventID(id) {
			respondError(c, logger, invalidField("event_id", idProblem))
			return
		}
		if body, left, ok := cache.get(id); ok {
			sendEvent(c, body, "HIT", left)
			return
		}
		v, err, _ := cache.group.Do(id, func() (any, error) {
			// Detached from this request: the others sharing the result must not fail
			// because the first caller hung up.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), workflows.EventSubscriptionsRunTimeout+2*time.Second)
			defer cancel()
			body, err := mergeEvent(ctx, tc, id)
			if err == nil {
				cache.add(id, body)
			}
			return body, err
		})
		if err != nil {
			respondError(c, logger, mergeError(c, logger, id, err))
			return
		}
		sendEvent(c, v.([]byte), "MISS", cache.ttl)
	}
}

func sendEvent(c *gin.Context, body []byte, cacheResult string, fresh time.Duration) {
	c.Header("X-Cache", cacheResult)
	c.Header("Cache-Control", "max-age="+strconv.Itoa(int(fresh.Seconds())))
	c.Data(http.StatusOK, "application/json; charset=utf-8", body)
}

// errMergeNotStarted marks a merge Temporal did not start: Temporal's fault, not upstream's.
type errMergeNotStarted struct{ err error }

func (e errMergeNotStarted) Error() string { return "start merge: " + e.err.Error() }
func (e errMergeNotStarted) Unwrap() error { return e.err }

// mergeEvent runs (or joins) the event's merge workflow and encodes its answer.
func mergeEvent(ctx context.Context, tc Temporal, id string) ([]byte, error) {
	startCtx, cancel := context.WithTimeout(ctx, temporalCallTimeout)
	defer cancel()
	run, err := tc.ExecuteWorkflow(startCtx, workflows.EventSubscriptionsStartOptions(id), workflows.MergeEventSubscriptionsWorkflowType, workflows.MergeEventSubscriptionsInput{EventID: id})
	if err != nil {
		return nil, errMergeNotStarted{err}
	}
	var merged eventsubscriptions.Merged
	if err := run.Get(ctx, &merged); err != nil {
		return nil, err
	}
	return json.Marshal(merged)
}

// mergeError says what went wrong upstream in the API's terms: the event does not exist
// (404), the calendar API refused or failed (502), or it was too slow (504).
func mergeError(c *gin.Context, logger *slog.Logger, id string, err error) error {
	var notStarted errMergeNotStarted
	if errors.As(err, &notStarted) {
		return temporalError(c, logger, "merge event "+id, notStarted.err)
	}
	var timeout *temporal.TimeoutError
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &timeout) {
		logger.WarnContext(c.Request.Context(), "merge timed out", "event_id", id, "error", err)
		return Errorf(CodeGatewayTimeout, "the calendar API did not answer in time for event "+id)
	}
	root := rootCause(err)
	if root == nil {
		return temporalError(c, logger, "merge event "+id, err)
	}
	switch root.Type() {
	case activities.ErrUpstreamNotFound:
		return Errorf(CodeNotFound, "event "+id+" not found")
	case activities.ErrInvalidInput:
		return Errorf(CodeInvalid, root.Message())
	}
	logger.WarnContext(c.Request.Context(), "merge failed", "event_id", id, "error", err)
	if root.Type() == activities.ErrUpstreamUnauthorized {
		return Errorf(CodeBadGateway, "the calendar API refused relay's credentials")
	}
	return Errorf(CodeBadGateway, "the calendar API failed for event "+id+": "+root.Type())
}
