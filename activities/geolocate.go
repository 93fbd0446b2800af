package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

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
	return &Geo{api: geoAPI(o.BaseURL, o.HTTP, o.Metrics), limiter: limiter, store: o.Store, cacheTTL: o.CacheTTL}, nil
}

// geoAPI is the geolocation API's client: a 429 says its wait in the body, and a 500 is
// the API's verdict that it cannot place the IP.
func geoAPI(baseURL string, c *http.Client, m *UpstreamMetrics) upstream {
	return upstream{name: "geoip", baseURL: baseURL, http: c, metrics: m, retryAfter: periodRemaining,
		verdicts: map[int]string{http.StatusInternalServerError: ErrGeoCannotPlace}}
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

// Cached is what the cache knows of an IP: Found says whether it has a fresh entry;
// Location is nil for an IP that cannot be placed.
type Cached struct {
	Found    bool      `json:"found"`
	Location *Location `json:"location"`
}

// CachedLocation reads ip's entry in the location cache. It runs as a local activity.
func (a *Geo) CachedLocation(ctx context.Context, ip string) (Cached, error) {
	data, found, err := a.store.CachedLocation(ctx, ip, time.Now())
	if err != nil || !found || data == nil {
		return Cached{Found: found}, err
	}
	var loc Location
	if err := json.Unmarshal(data, &loc); err != nil {
		return Cached{}, fmt.Errorf("cached location of %s: %w", ip, err)
	}
	return Cached{Found: true, Location: &loc}, nil
}

// ErrGeoCannotPlace is the geolocation API's 500: it cannot place the IP (spec/upstreams.md
// §3). Like its 400 (ErrUpstreamBadRequest), it is the API's verdict about the IP, final
// at once.
const ErrGeoCannotPlace = "GeoCannotPlace"

// GeoVerdicts are the errors of Locate that are the API's own verdict about the IP; every
// other failure (a revoked key, an answer of a new shape, relay's store, a timeout) is
// retried until it passes.
var GeoVerdicts = []string{ErrUpstreamBadRequest, ErrGeoCannotPlace}

// Locate asks the geolocation API where ip is, after taking a slot of its rate limit.
// It runs on the relay-geoip task queue.
//
// The answer goes to the cache at once, before Temporal hears of it: an attempt whose
// completion is lost (Temporal down, the worker killed after the call) is retried, and
// the retry finds the answer here instead of asking the API again. That write is best
// effort; the settle that follows caches the answer for good.
func (a *Geo) Locate(ctx context.Context, ip string) (Location, error) {
	if c, err := a.CachedLocation(ctx, ip); err == nil && c.Found {
		if c.Location == nil {
			return Location{}, temporal.NewNonRetryableApplicationError(
				"geoip: an earlier attempt was told the API cannot place "+ip, ErrGeoCannotPlace, nil)
		}
		return *c.Location, nil
	}
	loc, err := a.ask(ctx, ip)
	var app *temporal.ApplicationError
	switch {
	case err == nil:
		a.keep(ctx, ip, &loc)
	case errors.As(err, &app) && slices.Contains(GeoVerdicts, app.Type()):
		a.keep(ctx, ip, nil)
	}
	return loc, err
}

// ask calls the API and sorts its failures: the API's verdicts final, the rest retryable.
func (a *Geo) ask(ctx context.Context, ip string) (Location, error) {
	loc, err := a.locate(ctx, ip)
	return loc, geoVerdict(err)
}

// keep caches an answer of the API, best effort (the settle caches it for good).
func (a *Geo) keep(ctx context.Context, ip string, loc *Location) {
	o, err := outcomeOf(loc)
	if err == nil {
		err = a.store.CacheLocation(ctx, ip, o, time.Now().Add(a.cacheTTL))
	}
	if err != nil {
		activity.GetLogger(ctx).Warn("could not cache the answer before reporting it", "error", err)
	}
}

// geoVerdict keeps the API's verdicts final and makes every other failure retryable:
// 401/403 or a changed answer are relay's to fix, and the events wait for the fix.
func geoVerdict(err error) error {
	var app *temporal.ApplicationError
	if err == nil || !errors.As(err, &app) {
		return err
	}
	switch {
	case slices.Contains(GeoVerdicts, app.Type()) || !app.NonRetryable():
		return err
	default:
		return temporal.NewApplicationErrorWithOptions(app.Message(), app.Type(),
			temporal.ApplicationErrorOptions{NextRetryDelay: app.NextRetryDelay()})
	}
}

func (a *Geo) locate(ctx context.Context, ip string) (Location, error) {
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

// SettleInput is an IP's outcome: its location, or nil when it cannot be placed. Cache
// says whether to keep it for the IP (the API's answers); a cache hit is not kept again.
type SettleInput struct {
	IP       string    `json:"ip"`
	Location *Location `json:"location"`
	Cache    bool      `json:"cache"`
}

// Settle records the outcome on every pending event of the IP, and caches it, in one
// transaction; it returns how many events it settled. It runs as a local activity.
func (a *Geo) Settle(ctx context.Context, in SettleInput) (int, error) {
	o, err := outcomeOf(in.Location)
	if err != nil {
		return 0, err
	}
	var until time.Time
	if in.Cache {
		until = time.Now().Add(a.cacheTTL)
	}
	return a.store.SettleIP(ctx, in.IP, o, until)
}

// outcomeOf is a location as the store keeps it (nil: the IP cannot be placed).
func outcomeOf(loc *Location) (store.GeoOutcome, error) {
	if loc == nil {
		return store.GeoOutcome{}, nil
	}
	data, err := json.Marshal(loc)
	if err != nil {
		return store.GeoOutcome{}, err
	}
	o := store.GeoOutcome{Location: data, Country: loc.Country.IsoCode}
	if loc.City != nil {
		o.City = *loc.City
	}
	return o, nil
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
