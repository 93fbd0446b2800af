package workflows

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/netip"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"relay/activities"
)

// geolocateCallPolicy: only the API's verdict about the IP (400, 500) is final. Anything
// else (a stall cut off, 429, 502, a revoked key, an answer of a new shape, the store
// behind the rate limit) is retried without a cap, at most a minute apart, and the IP's
// events stay pending until it passes: relay's own failures never say "unlocatable".
var geolocateCallPolicy = &temporal.RetryPolicy{
	InitialInterval:        time.Second,
	BackoffCoefficient:     2,
	MaximumInterval:        time.Minute,
	NonRetryableErrorTypes: activities.GeoVerdicts,
}

// geolocateCallOptions: an attempt waits its turn of the rate limit (a slot at most 5 s
// ahead, or longer while other attempts queue) and the call may stall 5 s; heartbeats
// tell a killed worker within 10 s. ScheduleToStart is unbounded on purpose: a backlog
// queues there.
var geolocateCallOptions = workflow.ActivityOptions{
	TaskQueue:           GeoIPTaskQueue,
	StartToCloseTimeout: 2 * time.Minute,
	HeartbeatTimeout:    upstreamHeartbeatTimeout,
	RetryPolicy:         geolocateCallPolicy,
}

// geolocateStoreOptions: the cache read and the settle touch only relay's store, as local
// activities (no task queue round trip, one marker in history each). A store outage is
// waited out, at most 10 s between tries, for up to a week (a local activity's retries
// end at its ScheduleToClose, which defaults to its StartToClose).
var geolocateStoreOptions = workflow.LocalActivityOptions{
	StartToCloseTimeout:    10 * time.Second,
	ScheduleToCloseTimeout: 7 * 24 * time.Hour,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second,
	},
}

// GeolocateSignal tells an IP's workflow that more of its events are pending.
const GeolocateSignal = "events"

// GeolocateWorkflowID names the lookup of one IP: geolocate/<the IP's HMAC-SHA256 under
// key, 128 bits in hex>, so that neither Temporal nor its database learns client IPs from
// workflow ids (which no codec encrypts), while every worker and server names an IP's
// lookup alike. With no key (relay without RELAY_WORKFLOW_ID_KEY) the id is
// geolocate/<ip>.
func GeolocateWorkflowID(key []byte, ip string) string {
	if len(key) == 0 {
		return "geolocate/" + ip
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(ip))
	return "geolocate/" + hex.EncodeToString(mac.Sum(nil)[:16])
}

// GeolocateInput is the IP to locate.
type GeolocateInput struct {
	IP string `json:"ip"`
}

// GeolocateResult says how the IP's lookup ended.
type GeolocateResult struct {
	IP      string `json:"ip"`
	State   string `json:"state"` // located | unlocatable
	Country string `json:"country,omitempty"`
	From    string `json:"from"`              // cache | api
	Verdict string `json:"verdict,omitempty"` // the API's error type, when unlocatable
	Settled int    `json:"settled"`           // events located by this run
}

// Geolocate locates one IP for every pending event from it: from the cache when the IP
// was seen lately, else through the rate-limited geolocation API, once however many
// events wait. It settles every pending event of the IP in the store, and settles again
// while the dispatcher signals that more came, so nobody polls for the answer.
func Geolocate(ctx workflow.Context, in GeolocateInput) (res GeolocateResult, err error) {
	// No memo: the outcome and count are enough to find a lookup, and each command costs the
	// single-writer visibility store a write per lookup, the busiest job's.
	defer func() {
		recordEnding(ctx, ending{job: JobGeolocation, outcome: res.State, count: res.Settled}, err)
	}()
	var geo *activities.Geo
	storeCtx := workflow.WithLocalActivityOptions(ctx, geolocateStoreOptions)
	more := workflow.GetSignalChannel(ctx, GeolocateSignal)
	res = GeolocateResult{IP: in.IP, From: "cache"}
	settle := activities.SettleInput{IP: in.IP}

	say(ctx, "looking the IP up in relay's cache")
	var cached activities.Cached
	if err := workflow.ExecuteLocalActivity(storeCtx, geo.CachedLocation, in.IP).Get(ctx, &cached); err != nil {
		return res, err
	}
	settle.Location = cached.Location
	if !cached.Found {
		res.From, settle.Cache = "api", true
		say(ctx, "asking the geolocation API: waiting for a slot of its rate limit, then for its answer (retried until it gives one)")
		var loc activities.Location
		err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, geolocateCallOptions), geo.Locate, in.IP).Get(ctx, &loc)
		var app *temporal.ApplicationError
		switch {
		case err == nil:
			settle.Location = &loc
		case errors.As(err, &app) && slices.Contains(activities.GeoVerdicts, app.Type()):
			res.Verdict = app.Type() // the API says it cannot place the IP
		default:
			// Only a cancellation or a termination gets here: the events stay pending, and
			// the dispatcher drives them again when their lease runs out.
			return res, err
		}
	}
	res.State = "unlocatable"
	if settle.Location != nil {
		res.State, res.Country = "located", settle.Location.Country.IsoCode
	}
	drain(more) // the events signalled so far are pending now: the settle covers them
	for {
		say(ctx, "%s: settling the IP's pending events (%d settled so far)", res.State, res.Settled)
		var n int
		if err := workflow.ExecuteLocalActivity(storeCtx, geo.Settle, settle).Get(ctx, &n); err != nil {
			return res, err
		}
		res.Settled += n
		settle.Cache = false // kept once is enough
		// Events signalled during the settle may have missed both it and the cache (their
		// batch read the cache just before the settle committed): settle again.
		if !drain(more) {
			return res, nil
		}
		if workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			return res, workflow.NewContinueAsNewError(ctx, Geolocate, in)
		}
	}
}

// drain takes every signal already sent and says whether there was any.
func drain(ch workflow.ReceiveChannel) bool {
	got := false
	for ch.ReceiveAsync(nil) {
		got = true
	}
	return got
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
