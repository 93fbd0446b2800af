// Package worker wires relay's workflows and activities to Temporal: one SDK worker per
// task queue, with the rate limit of the geolocation queue and a graceful drain.
package worker

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"relay/activities"
	"relay/workflows"
)

// Options tune the workers.
type Options struct {
	// GeoIPRateLimit is the geolocation API's allowance in calls per second; the server
	// spreads relay-geoip's activities to it across every worker.
	GeoIPRateLimit float64
	// DrainTimeout is how long Stop lets running activities finish.
	DrainTimeout time.Duration
	// StoreConns is the size of the store's connection pool in this process
	// (store.MaxConns); the activity slots are sized from it (see slotSizes). 0 leaves the
	// SDK's defaults (1,000 of each).
	StoreConns int
}

// storeReserve is how many of the store's connections are kept for what runs beside the
// activities in the same process: the dispatcher, and the HTTP API's reads in dev.
const storeReserve = 2

// slotSizes sizes a worker's concurrency from the store's pool, so that store-using
// activities cannot queue on the pool behind each other without end.
//
// The rule: every store-using activity and local activity holds at most one connection
// at a time, so no kind of slot may outnumber the connections left after the reserve
// (conns-2, at least 1). Local activities are the geolocation job's cache and settle steps
// (store steps) and the merge's calendar fetches (no store, but short); activities on relay's queue include the staging of incidents and
// outages; relay-geoip's take one connection briefly per rate-limit slot, and keep their
// former cap of 16. A slot then waits on the pool at most for statements already running,
// never for another activity to end; raising RELAY_DB_MAX_CONNS raises all three.
func slotSizes(conns int) (activities, local, geo int) {
	if conns <= 0 {
		return 0, 0, 16
	}
	n := max(1, conns-storeReserve)
	return n, n, min(16, n)
}

// Activities are the activity structs, each holding its upstream client and the store.
type Activities struct {
	Pinger    *activities.Pinger
	KF        *activities.KF
	C42       *activities.C42
	Incidents *activities.Incidents
	Geo       *activities.Geo
}

// Worker polls all of relay's task queues.
type Worker struct {
	queues  []string
	workers []sdkworker.Worker
}

// New builds (but does not start) a worker for each queue.
func New(c client.Client, acts Activities, opts Options) (*Worker, error) {
	if acts.Pinger == nil || acts.KF == nil || acts.C42 == nil || acts.Incidents == nil || acts.Geo == nil {
		return nil, errors.New("worker: every activity struct is required")
	}
	if opts.DrainTimeout == 0 {
		opts.DrainTimeout = 10 * time.Second
	}
	activitySlots, localSlots, geoSlots := slotSizes(opts.StoreConns)
	main := sdkworker.New(c, workflows.TaskQueue, sdkworker.Options{
		WorkerStopTimeout:                       opts.DrainTimeout,
		MaxConcurrentActivityExecutionSize:      activitySlots,
		MaxConcurrentLocalActivityExecutionSize: localSlots,
	})
	for name, wf := range workflows.All() {
		main.RegisterWorkflowWithOptions(wf, workflow.RegisterOptions{Name: name})
	}
	main.RegisterActivity(acts.Pinger)
	main.RegisterActivity(acts.KF)
	main.RegisterActivity(acts.C42) // the merge's fetch, run as local activities since merge-local-fetch
	main.RegisterActivity(acts.Incidents)
	main.RegisterActivity(acts.Geo) // its cache and store steps; Locate runs on relay-geoip

	geo := sdkworker.New(c, workflows.GeoIPTaskQueue, sdkworker.Options{
		WorkerStopTimeout: opts.DrainTimeout,
		// The server enforces this for the whole queue, across workers. It is a floor,
		// not the whole guarantee: the geolocation job adds its own limiter.
		TaskQueueActivitiesPerSecond: opts.GeoIPRateLimit,
		// Activities here only wait on the API; never let this worker run workflows.
		DisableWorkflowWorker: true,
		// Calls wait for their slot of the rate limit inside the activity; a few at a time
		// is enough to use the whole budget, and leaves the backlog in the task queue.
		MaxConcurrentActivityExecutionSize: geoSlots,
	})
	geo.RegisterActivity(acts.Pinger)
	geo.RegisterActivity(acts.Geo)

	// Merges only: their workflow tasks and the local activities in them. (Runs started on
	// relay's queue before merges had their own finish there: main registers the type too.)
	merge := sdkworker.New(c, workflows.MergeTaskQueue, sdkworker.Options{
		WorkerStopTimeout:                       opts.DrainTimeout,
		MaxConcurrentLocalActivityExecutionSize: localSlots,
		MaxConcurrentActivityExecutionSize:      4, // Ping's only
	})
	merge.RegisterWorkflowWithOptions(workflows.MergeEventSubscriptions,
		workflow.RegisterOptions{Name: workflows.MergeEventSubscriptionsWorkflowType})
	merge.RegisterActivity(acts.C42)
	merge.RegisterActivity(acts.Pinger) // Ping checks that every queue has a worker

	return &Worker{
		queues:  workflows.TaskQueues,
		workers: []sdkworker.Worker{main, geo, merge},
	}, nil
}

// Start starts polling every queue.
func (w *Worker) Start() error {
	for i, sw := range w.workers {
		if err := sw.Start(); err != nil {
			for _, started := range w.workers[:i] {
				started.Stop()
			}
			return fmt.Errorf("start worker on %s: %w", w.queues[i], err)
		}
	}
	return nil
}

// Stop stops polling and waits, all queues at once, up to the drain timeout for
// running activities.
func (w *Worker) Stop() {
	var wg sync.WaitGroup
	for _, sw := range w.workers {
		wg.Go(sw.Stop)
	}
	wg.Wait()
}
