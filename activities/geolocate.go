package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"time"

	"go.temporal.io/sdk/activity"

	"relay/internal/ratelimit"
	"relay/internal/store"
)

// Geo calls the geolocation API, never faster than its limit across all workers (package
// ratelimit), and keeps locations in the store's cache.
type Geo struct {
	api      upstream
	limiter  *ratelimit.Limiter
	store    *store.Store
	cacheTTL time.Duration
}

// GeoOptions configure the geolocation API client.
type GeoOptions struct {
	BaseURL   string
	HTTP      *http.Client
	Store     *store.Store
	Metrics   *UpstreamMetrics
	RateLimit float64       // calls per second the API allows (GEOIP_RATE_LIMIT)
	CacheTTL  time.Duration // how long a location is reused for its IP
}

// GeoRateKey names the geolocation API's rate slots in the store; the status page counts
// them to chart the API's calls per second.
const GeoRateKey = "geoip"

// NewGeo builds the geolocation activities.
func NewGeo(o GeoOptions) (*Geo, error) {
	limiter, err := ratelimit.New(o.Store, GeoRateKey, o.RateLimit)
	if err != nil {
		return nil, err
	}
	return &Geo{
		api: upstream{name: "geoip", baseURL: o.BaseURL, http: o.HTTP, metrics: o.Metrics,
			retryAfter: periodRemaining},
		limiter: limiter, store: o.Store, cacheTTL: o.CacheTTL,
	}, nil
}

// Location is an event's location as relay serves it.
type Location struct {
	City    *string `json:"city"`
	Country struct {
		IsoCode string `json:"iso_code"`
		Name    string `json:"name"`
	} `json:"country"`
	Latitude       float64 `json:"latitude"`
	Longitude      float64 `json:"longitude"`
	TimeZone       string  `json:"time_zone"`
	AccuracyRadius int     `json:"accuracy_radius"`
}

// Lookup is what is known of an IP: Found says whether the cache had it (Location is nil
// for an IP that cannot be placed); if not, Claimed says whether this caller is the one to
// ask the API, or another lookup of the IP is already under way.
type Lookup struct {
	Found    bool      `json:"found"`
	Location *Location `json:"location"`
	Claimed  bool      `json:"claimed"`
}

// claimTTL bounds how long events wait on another's lookup of their IP before asking
// themselves: longer than a lookup takes, backlog included.
const claimTTL = 5 * time.Minute

// LookUp reads the location cache, and on a miss claims the IP's lookup.
func (a *Geo) LookUp(ctx context.Context, ip string) (Lookup, error) {
	now := time.Now()
	data, found, err := a.store.CachedLocation(ctx, ip, now)
	if err != nil {
		return Lookup{}, err
	}
	if !found {
		// The claimant is the event's workflow, so that a retry after a crash is not
		// mistaken for someone else's lookup and left waiting on itself.
		claimant := activity.GetInfo(ctx).WorkflowExecution.ID
		claimed, err := a.store.ClaimLookup(ctx, ip, claimant, now, claimTTL)
		return Lookup{Claimed: claimed}, err
	}
	if data == nil {
		return Lookup{Found: true}, nil
	}
	var loc Location
	if err := json.Unmarshal(data, &loc); err != nil {
		return Lookup{}, fmt.Errorf("cached location of %s: %w", ip, err)
	}
	return Lookup{Found: true, Location: &loc}, nil
}

// Locate asks the geolocation API where ip is, after taking a slot of its rate limit.
// It runs on the relay-geoip task queue.
func (a *Geo) Locate(ctx context.Context, ip string) (Location, error) {
	waiting := keepAlive(ctx) // the turn of the rate limit may take a while
	err := a.limiter.Wait(ctx)
	waiting()
	if err != nil {
		return Location{}, err
	}
	path := "/info?ip=" + url.QueryEscape(ip)
	var answer struct {
		City    *string `json:"city"`
		Country *struct {
			IsoCode *string `json:"iso_code"`
			Name    string  `json:"name"`
		} `json:"country"`
		Location *struct {
			AccuracyRadius int      `json:"accuracy_radius"`
			Latitude       *float64 `json:"latitude"`
			Longitude      *float64 `json:"longitude"`
			TimeZone       string   `json:"time_zone"`
		} `json:"location"`
	}
	if _, err := a.api.getJSON(ctx, path, &answer); err != nil {
		return Location{}, err
	}
	// An event is filed by its country code (GET /events?country= matches two capitals)
	// and placed by its coordinates: an answer without them is no location, not (0, 0).
	switch {
	case answer.Country == nil || answer.Location == nil:
		return Location{}, badResponse("geoip", path, fmt.Errorf("no country or location"))
	case answer.Country.IsoCode == nil || !isCountryCode(*answer.Country.IsoCode):
		return Location{}, badResponse("geoip", path, fmt.Errorf("country.iso_code is not two capital letters"))
	case answer.Location.Latitude == nil || answer.Location.Longitude == nil ||
		math.Abs(*answer.Location.Latitude) > 90 || math.Abs(*answer.Location.Longitude) > 180:
		return Location{}, badResponse("geoip", path, fmt.Errorf("no latitude and longitude on the globe"))
	}
	loc := Location{City: answer.City, Latitude: *answer.Location.Latitude, Longitude: *answer.Location.Longitude,
		TimeZone: answer.Location.TimeZone, AccuracyRadius: answer.Location.AccuracyRadius}
	loc.Country.IsoCode, loc.Country.Name = *answer.Country.IsoCode, answer.Country.Name
	return loc, nil
}

// RecordInput is an event's outcome: its location, or nil when it cannot be placed.
type RecordInput struct {
	TaskID   string    `json:"task_id"`
	IP       string    `json:"ip"`
	Location *Location `json:"location"`
	// Cache says whether the outcome may be reused for the IP (not after a give-up on
	// errors that might pass).
	Cache bool `json:"cache"`
}

// RecordLocation stores the event's outcome, and caches it for its IP.
func (a *Geo) RecordLocation(ctx context.Context, in RecordInput) error {
	var data []byte
	var country, city string
	if in.Location != nil {
		var err error
		if data, err = json.Marshal(in.Location); err != nil {
			return err
		}
		country = in.Location.Country.IsoCode
		if in.Location.City != nil {
			city = *in.Location.City
		}
	}
	if in.Cache {
		if err := a.store.CacheLocation(ctx, in.IP, data, time.Now().Add(a.cacheTTL)); err != nil {
			return err
		}
	}
	if err := a.store.SetEventLocation(ctx, in.TaskID, data, country, city); err != nil {
		return err
	}
	// Whoever waits on this IP finds the answer in the cache now (or, after a give-up,
	// may ask again).
	return a.store.ReleaseLookup(ctx, in.IP)
}

// isCountryCode reports whether s is an ISO 3166 alpha-2 code as the API writes them: "GB".
func isCountryCode(s string) bool {
	return len(s) == 2 && 'A' <= s[0] && s[0] <= 'Z' && 'A' <= s[1] && s[1] <= 'Z'
}

// periodRemaining reads the geo API's 429 body: {"period_remaining": <seconds>}.
func periodRemaining(body []byte) time.Duration {
	var b struct {
		PeriodRemaining float64 `json:"period_remaining"`
	}
	if json.Unmarshal(body, &b) != nil || !(b.PeriodRemaining > 0) || b.PeriodRemaining > 60 {
		return 0
	}
	return time.Duration(math.Ceil(b.PeriodRemaining*1000)) * time.Millisecond
}
