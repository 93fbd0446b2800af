package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/sync/singleflight"

	"relay/activities"
	"relay/workflows"
)

// eventCache holds merged events as ready-to-send JSON, bounded by an LRU of entries: this
// server's copy of what the events' workflows answered, each kept for as long as its
// workflow said the answer stays fresh. Expired entries are dropped when next read: no
// goroutine sweeps it.
//
// Its counters are per request, as X-Cache says: a hit is an answer that caused no upstream
// fetch (from this copy, or from the event's workflow's memory: a hit for the cluster); a
// miss is a request that caused or joined a fetch, or failed.
type eventCache struct {
	entries *lru.Cache[string, cachedEvent]
	ttl     time.Duration // what a new event's workflow is started with (C42_CACHE_TTL)
	now     func() time.Time
	// group lets concurrent misses of one id in this process share one ask; the event's
	// workflow does the same across processes.
	group        singleflight.Group
	hits, misses atomic.Int64 // what /metrics exports and the status page shows
	// workflowHits are the hits the event's workflow answered from memory (within hits).
	workflowHits atomic.Int64
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
	register(reg, prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "relay_cache_workflow_hits_total",
		Help: "Merge requests this server had no fresh copy for that the event's workflow answered from memory, " +
			"without an upstream call (counted as hits in relay_cache_requests_total{cache=\"events\"}).",
	}, func() float64 { return float64(c.workflowHits.Load()) }))
	return c
}

// lookup returns a fresh entry and how long it stays fresh, counting nothing.
func (c *eventCache) lookup(id string) ([]byte, time.Duration, bool) {
	e, ok := c.entries.Get(id)
	if ok {
		if left := e.expires.Sub(c.now()); left > 0 {
			return e.body, left, true
		}
		c.entries.Remove(id)
	}
	return nil, 0, false
}

// get is lookup counted as a hit or a miss.
func (c *eventCache) get(id string) ([]byte, time.Duration, bool) {
	body, left, ok := c.lookup(id)
	if ok {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
	return body, left, ok
}

// add keeps body for the cache's TTL.
func (c *eventCache) add(id string, body []byte) { c.addFor(id, body, c.ttl) }

// addFor keeps body for fresh, measured from now on this server's clock.
func (c *eventCache) addFor(id string, body []byte, fresh time.Duration) {
	c.entries.Add(id, cachedEvent{body: body, expires: c.now().Add(fresh)})
}

// Stats is the status page's view of the cache.
func (c *eventCache) Stats() cacheStats {
	return cacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Entries: c.entries.Len(), TTL: c.ttl}
}

// handleEventWithSubscriptions answers from this server's copy, or asks the event's
// workflow (Update-with-Start: the one running for the event, or a new one that fetches),
// which answers every server from one fetch per TTL. Failures are never kept.
func handleEventWithSubscriptions(logger *slog.Logger, tc Temporal, cache *eventCache) gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.Param("event_id")
		if !workflows.ValidEventID(id) {
			respondError(c, logger, invalidField("event_id", idProblem))
			return
		}
		if body, left, ok := cache.lookup(id); ok {
			cache.hits.Add(1)
			sendEvent(c, body, "HIT", left)
			return
		}
		v, err, _ := cache.group.Do(id, func() (any, error) {
			// Detached from this request: the others sharing the result must not fail
			// because the first caller hung up.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), mergeWait)
			defer cancel()
			a, err := askMerge(ctx, tc, id, cache.ttl)
			if err == nil && a.fresh > 0 {
				cache.addFor(id, a.body, a.fresh)
			}
			return a, err
		})
		if err != nil {
			cache.misses.Add(1)
			respondError(c, logger, mergeError(c, logger, id, err))
			return
		}
		a := v.(mergeAnswer)
		if a.fetched {
			cache.misses.Add(1)
			sendEvent(c, a.body, "MISS", a.fresh)
			return
		}
		cache.hits.Add(1)
		cache.workflowHits.Add(1)
		sendEvent(c, a.body, "HIT", a.fresh)
	}
}

func sendEvent(c *gin.Context, body []byte, cacheResult string, fresh time.Duration) {
	c.Header("X-Cache", cacheResult)
	c.Header("Cache-Control", "max-age="+strconv.Itoa(int(fresh.Seconds())))
	c.Data(http.StatusOK, "application/json; charset=utf-8", body)
}

// errMergeNotStarted marks a merge Temporal did not start or join in time: Temporal's
// fault (or no worker took it), not upstream's.
type errMergeNotStarted struct{ err error }

func (e errMergeNotStarted) Error() string { return "start merge: " + e.err.Error() }
func (e errMergeNotStarted) Unwrap() error { return e.err }

// mergeAnswer is an event's workflow's answer, encoded.
type mergeAnswer struct {
	body    []byte
	fresh   time.Duration // from when the workflow answered
	fetched bool          // the ask caused or joined the upstream fetch
}

// mergeAttempts: an ask can reach a run just as it ends (rejected as closing, or aborted
// as the run closes); asked again, it reaches the next run.
const mergeAttempts = 3

// askMerge asks the event's workflow for the merged event, starting one (alive for ttl)
// if none runs.
func askMerge(ctx context.Context, tc Temporal, id string, ttl time.Duration) (mergeAnswer, error) {
	var err error
	for attempt := range mergeAttempts {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return mergeAnswer{}, err
			case <-time.After(time.Duration(attempt*attempt) * 10 * time.Millisecond):
			}
		}
		var a workflows.EventSubscriptionsAnswer
		if a, err = updateWithStart(ctx, tc, id, ttl); err == nil {
			body, err := json.Marshal(a.Event)
			return mergeAnswer{body: body, fresh: a.FreshFor, fetched: a.Fetched}, err
		}
		if !runEnding(err) {
			return mergeAnswer{}, err
		}
	}
	return mergeAnswer{}, err
}

// updateWithStart sends the update and waits until the run has accepted it, then for its
// answer. The run fetches in local activities, inside the workflow task that accepts the
// update, so a miss is accepted only once its fetch is done, answer included: the ask
// waits for acceptance as long as ctx allows. Waiting long is either Temporal not answering
// or no worker taking the run (503: ask again) or the fetch taking long (504: upstream's
// fault); probeMerge tells them apart while the ask waits, every mergeProbeInterval.
func updateWithStart(ctx context.Context, tc Temporal, id string, ttl time.Duration) (workflows.EventSubscriptionsAnswer, error) {
	var a workflows.EventSubscriptionsAnswer
	op := tc.NewWithStartWorkflowOperation(workflows.EventSubscriptionsStartOptions(id, ttl),
		workflows.MergeEventSubscriptionsWorkflowType, workflows.MergeEventSubscriptionsInput{EventID: id, TTL: ttl})
	askCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var held atomic.Bool           // the last probe found the run's workflow task with a worker
	interval := mergeProbeInterval // read here: the probe may outlive the request
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-askCtx.Done():
				return
			case <-t.C:
			}
			ok, err := probeMerge(askCtx, tc, id)
			if err != nil {
				held.Store(false)
				cancel(errMergeNotStarted{err})
				return
			}
			held.Store(ok)
		}
	}()
	handle, err := tc.UpdateWithStartWorkflow(askCtx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: op,
		UpdateOptions:          workflows.EventSubscriptionsUpdateOptions(id),
	})
	if err != nil {
		var notStarted errMergeNotStarted
		switch cause := context.Cause(askCtx); {
		case errors.As(cause, &notStarted):
			return a, notStarted
		case ctx.Err() != nil && held.Load():
			// Temporal holds the ask, and a worker the run's fetch: the fetch is slow.
			return a, fmt.Errorf("%w: the run did not answer in time: %w", context.DeadlineExceeded, err)
		case ctx.Err() != nil: // no worker took the run's workflow task in time
			err = fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
		}
		return a, errMergeNotStarted{err}
	}
	err = handle.Get(ctx, &a)
	return a, err
}

// probeMerge asks Temporal about the event's run, while an ask waits for it: an error
// when Temporal does not answer; else whether the run's fetch is with a worker (its
// workflow task taken), or may be (Temporal answers, and no task waits for a worker).
func probeMerge(ctx context.Context, tc Temporal, id string) (held bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, temporalProbeTimeout)
	defer cancel()
	desc, err := tc.DescribeWorkflowExecution(ctx, workflows.EventSubscriptionsWorkflowID(id), "")
	var notFound *serviceerror.NotFound
	switch {
	case errors.As(err, &notFound):
		return true, nil // Temporal answers; the ask is creating the run
	case err != nil && ctx.Err() != nil:
		return false, fmt.Errorf("%w: describe %s: %w", context.DeadlineExceeded, workflows.EventSubscriptionsWorkflowID(id), err)
	case err != nil:
		return false, fmt.Errorf("describe %s: %w", workflows.EventSubscriptionsWorkflowID(id), err)
	}
	wt := desc.GetPendingWorkflowTask()
	return wt == nil || wt.GetState() != enumspb.PENDING_WORKFLOW_TASK_STATE_SCHEDULED, nil
}

// mergeWait bounds an ask and its retries: the run's fetch, and then some (a variable for
// the tests).
var mergeWait = workflows.EventSubscriptionsFetchTimeout + 2*time.Second

// mergeProbeInterval is how often a waiting ask asks Temporal about the run (a variable
// for the tests).
var mergeProbeInterval = temporalCallTimeout

// temporalProbeTimeout bounds probeMerge's question: a Temporal that takes longer is
// unavailable.
const temporalProbeTimeout = 2 * time.Second

// runEnding says the ask reached a run that is ending or has just ended: ask again.
func runEnding(err error) bool {
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return true // "workflow update was aborted by closing workflow"
	}
	root := rootCause(err)
	return root != nil && root.Type() == workflows.ErrMergeClosing
}

// mergeError says what went wrong upstream in the API's terms: the event does not exist
// (404), the calendar API refused or failed (502), or it was too slow (504).
func mergeError(c *gin.Context, logger *slog.Logger, id string, err error) error {
	if runEnding(err) { // still, after mergeAttempts asks
		logger.WarnContext(c.Request.Context(), "merge runs kept ending", "event_id", id, "error", err)
		return unavailable("merge event "+id+": its workflow was ending; retry", retryTemporal)
	}
	var notStarted errMergeNotStarted
	if errors.As(err, &notStarted) {
		return temporalError(c, logger, "merge event "+id, notStarted.err)
	}
	var timeout *temporal.TimeoutError
	var waited *client.WorkflowUpdateServiceTimeoutOrCanceledError
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &timeout) || errors.As(err, &waited) {
		logger.WarnContext(c.Request.Context(), "merge timed out", "event_id", id, "error", err)
		return Errorf(CodeGatewayTimeout, "the calendar API did not answer in time for event "+id)
	}
	root := rootCause(err)
	if root == nil {
		return temporalError(c, logger, "merge event "+id, err)
	}
	switch root.Type() {
	case activities.ErrUpstreamTimeout: // the fetch's last attempt ran out of time
		logger.WarnContext(c.Request.Context(), "merge timed out", "event_id", id, "error", err)
		return Errorf(CodeGatewayTimeout, "the calendar API did not answer in time for event "+id)
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
