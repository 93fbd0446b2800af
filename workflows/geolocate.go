package workflows

import (
	"errors"
	"net/netip"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"relay/activities"
)

// geolocateRetryPolicy: a hiccup (a stalled answer cut off by the timeout) and 5xx are
// retried a few times, 429 after what its period_remaining says; 400 is final. An IP still
// not placed after the attempts ends unlocatable: never retried forever.
var geolocateRetryPolicy = &temporal.RetryPolicy{
	InitialInterval:        time.Second,
	BackoffCoefficient:     2,
	MaximumInterval:        10 * time.Second,
	MaximumAttempts:        5,
	NonRetryableErrorTypes: activities.NonRetryableUpstreamErrors,
}

// geolocateCallOptions: the call itself may stall up to 5 s, and waits its turn of the
// rate limit first; ScheduleToStart is unbounded on purpose, as a backlog queues there.
var geolocateCallOptions = workflow.ActivityOptions{
	TaskQueue:           GeoIPTaskQueue,
	StartToCloseTimeout: 30 * time.Second,
	HeartbeatTimeout:    upstreamHeartbeatTimeout,
	RetryPolicy:         geolocateRetryPolicy,
}

// geolocateStoreOptions: cache reads and the outcome's write touch only the store.
var geolocateStoreOptions = workflow.ActivityOptions{
	StartToCloseTimeout: 10 * time.Second,
	RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 200 * time.Millisecond, MaximumAttempts: 10},
}

// claimPoll and maxClaimWaits: how often, and how many times, an event whose IP another
// event is looking up checks the cache before asking the API itself.
const (
	claimPoll     = time.Second
	maxClaimWaits = 300
)

// GeolocateWorkflowID names an event's geolocation.
func GeolocateWorkflowID(taskID string) string { return "geo-event/" + taskID }

// GeolocateEventInput is the event to locate.
type GeolocateEventInput struct {
	TaskID string `json:"task_id"`
	IP     string `json:"ip"`
}

// GeolocateEventResult says how it ended.
type GeolocateEventResult struct {
	TaskID  string `json:"task_id"`
	State   string `json:"state"` // located | unlocatable
	Country string `json:"country,omitempty"`
	From    string `json:"from"` // cache | api | none
}

// GeolocateEvent locates an accepted event by its client IP: from the cache when the IP
// was seen lately, else through the rate-limited geolocation API, and stores the outcome.
// An IP the API cannot place by definition (private, loopback, reserved) costs no call.
func GeolocateEvent(ctx workflow.Context, in GeolocateEventInput) (GeolocateEventResult, error) {
	storeCtx := workflow.WithActivityOptions(ctx, geolocateStoreOptions)
	var geo *activities.Geo
	record := func(loc *activities.Location, cache bool, from string) (GeolocateEventResult, error) {
		err := workflow.ExecuteActivity(storeCtx, geo.RecordLocation,
			activities.RecordInput{TaskID: in.TaskID, IP: in.IP, Location: loc, Cache: cache}).Get(ctx, nil)
		if err != nil {
			return GeolocateEventResult{}, err
		}
		res := GeolocateEventResult{TaskID: in.TaskID, State: "unlocatable", From: from}
		if loc != nil {
			res.State, res.Country = "located", loc.Country.IsoCode
		}
		return res, nil
	}

	if !Placeable(in.IP) {
		return record(nil, false, "none")
	}
	// While another event's lookup of this IP is under way, wait for its answer in the
	// cache rather than spend the API's budget on the same question.
	for waited := 0; ; waited++ {
		var lookup activities.Lookup
		if err := workflow.ExecuteActivity(storeCtx, geo.LookUp, in.IP).Get(ctx, &lookup); err != nil {
			return GeolocateEventResult{}, err
		}
		if lookup.Found {
			return record(lookup.Location, false, "cache")
		}
		if lookup.Claimed || waited >= maxClaimWaits {
			break
		}
		if err := workflow.Sleep(ctx, claimPoll); err != nil {
			return GeolocateEventResult{}, err
		}
	}
	var loc activities.Location
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, geolocateCallOptions), geo.Locate, in.IP).Get(ctx, &loc)
	var app *temporal.ApplicationError
	switch {
	case err == nil:
		return record(&loc, true, "api")
	case errors.As(err, &app) && app.Type() == activities.ErrUpstreamBadRequest:
		return record(nil, true, "api") // the API says the request can never succeed
	default:
		workflow.GetLogger(ctx).Warn("giving up locating the event", "task_id", in.TaskID, "error", err)
		return record(nil, false, "api")
	}
}

// Placeable reports whether the geolocation API could place ip at all: a public IPv4
// address (not private, loopback, link-local, multicast, shared or reserved).
func Placeable(ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() || a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() ||
		a.IsMulticast() || a.IsUnspecified() || a.IsLinkLocalMulticast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
}
