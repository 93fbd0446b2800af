package sim

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"time"
)

// The geolocation simulator (spec/upstreams.md §3): GET /info?ip=<ipv4> places a public
// IPv4 address in one of a fixed table of real cities. The framework supplies the rest of
// §3: the 5-per-second window with its 429 {"period_remaining": ...} and the hiccups.
//
// Where an IP lands is drawn from the Seed and the address alone, so the same IP gets the
// same answer on every call and in every simulator with that Seed (Size plays no part).
// Some answers are less complete on purpose: a few IPs are placed only in a country, with
// "city": null, and a few US ones lack their metro_code (which is null outside the US, as
// in the spec's example).
//
// An address nobody can place (private, loopback, link-local, multicast, reserved,
// carrier-grade NAT, documentation and benchmarking ranges) is a 500 in the API's own
// envelope; a request without exactly one well-formed IPv4 ip parameter, or with any other
// parameter, is a 400. Neither is worth retrying.

const (
	geoInfoPath       = "/info"
	geoCityNullPct    = 5   // share of IPs placed in a country only, with "city": null
	geoMetroNullPct   = 20  // share of IPs in US cities whose metro_code is null
	geoCountryRadius  = 500 // accuracy_radius of a country-only answer, in km
	geoStream         = 0x67656f00 << 32
	geoExampleAddress = "8.8.8.8"
)

// geoCity is one place an IP can land; metro is 0 where there is none (outside the US).
type geoCity struct {
	city, iso, country string
	lat, long          float64
	zone               string
	radius             int
	metro              int
}

// geoCities are real places, with coordinates to two decimals and MaxMind's English names.
// The first is the spec's example.
var geoCities = []geoCity{
	{"Willenhall", "GB", "United Kingdom", 52.58, -2.05, "Europe/London", 50, 0},
	{"London", "GB", "United Kingdom", 51.51, -0.13, "Europe/London", 20, 0},
	{"Manchester", "GB", "United Kingdom", 53.48, -2.24, "Europe/London", 20, 0},
	{"Dublin", "IE", "Ireland", 53.35, -6.26, "Europe/Dublin", 10, 0},
	{"Amsterdam", "NL", "Netherlands", 52.37, 4.9, "Europe/Amsterdam", 5, 0},
	{"Frankfurt am Main", "DE", "Germany", 50.11, 8.68, "Europe/Berlin", 20, 0},
	{"Munich", "DE", "Germany", 48.14, 11.58, "Europe/Berlin", 50, 0},
	{"Paris", "FR", "France", 48.86, 2.35, "Europe/Paris", 20, 0},
	{"Madrid", "ES", "Spain", 40.42, -3.7, "Europe/Madrid", 100, 0},
	{"Milan", "IT", "Italy", 45.46, 9.19, "Europe/Rome", 50, 0},
	{"Zurich", "CH", "Switzerland", 47.38, 8.54, "Europe/Zurich", 10, 0},
	{"Stockholm", "SE", "Sweden", 59.33, 18.07, "Europe/Stockholm", 20, 0},
	{"Kraków", "PL", "Poland", 50.06, 19.94, "Europe/Warsaw", 100, 0},
	{"Reykjavík", "IS", "Iceland", 64.15, -21.94, "Atlantic/Reykjavik", 200, 0},
	{"New York", "US", "United States", 40.71, -74.01, "America/New_York", 10, 501},
	{"Ashburn", "US", "United States", 39.04, -77.49, "America/New_York", 1000, 511},
	{"Chicago", "US", "United States", 41.88, -87.63, "America/Chicago", 20, 602},
	{"Dallas", "US", "United States", 32.78, -96.8, "America/Chicago", 50, 623},
	{"Los Angeles", "US", "United States", 34.05, -118.24, "America/Los_Angeles", 20, 803},
	{"San Francisco", "US", "United States", 37.77, -122.42, "America/Los_Angeles", 10, 807},
	{"Seattle", "US", "United States", 47.61, -122.33, "America/Los_Angeles", 20, 819},
	{"Toronto", "CA", "Canada", 43.65, -79.38, "America/Toronto", 50, 0},
	{"Montréal", "CA", "Canada", 45.5, -73.57, "America/Toronto", 100, 0},
	{"Mexico City", "MX", "Mexico", 19.43, -99.13, "America/Mexico_City", 200, 0},
	{"São Paulo", "BR", "Brazil", -23.55, -46.63, "America/Sao_Paulo", 100, 0},
	{"Buenos Aires", "AR", "Argentina", -34.6, -58.38, "America/Argentina/Buenos_Aires", 200, 0},
	{"Lagos", "NG", "Nigeria", 6.52, 3.38, "Africa/Lagos", 500, 0},
	{"Nairobi", "KE", "Kenya", -1.29, 36.82, "Africa/Nairobi", 200, 0},
	{"Johannesburg", "ZA", "South Africa", -26.2, 28.05, "Africa/Johannesburg", 100, 0},
	{"Mumbai", "IN", "India", 19.08, 72.88, "Asia/Kolkata", 100, 0},
	{"Singapore", "SG", "Singapore", 1.29, 103.85, "Asia/Singapore", 5, 0},
	{"Tokyo", "JP", "Japan", 35.68, 139.69, "Asia/Tokyo", 20, 0},
	{"Seoul", "KR", "South Korea", 37.57, 126.98, "Asia/Seoul", 50, 0},
	{"Sydney", "AU", "Australia", -33.87, 151.21, "Australia/Sydney", 50, 0},
	{"Auckland", "NZ", "New Zealand", -36.85, 174.76, "Pacific/Auckland", 100, 0},
}

// geoReserved are the ranges netip has no predicate for that no one can place.
var geoReserved = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), `reserved for "this network"`},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space (carrier-grade NAT)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "reserved for IETF protocol assignments"},
	{netip.MustParsePrefix("192.0.2.0/24"), "reserved for documentation (TEST-NET-1)"},
	{netip.MustParsePrefix("198.18.0.0/15"), "reserved for benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "reserved for documentation (TEST-NET-2)"},
	{netip.MustParsePrefix("203.0.113.0/24"), "reserved for documentation (TEST-NET-3)"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved for future use"},
}

var geoBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

type geoCountry struct {
	ISOCode string `json:"iso_code"`
	Name    string `json:"name"`
}

type geoLocation struct {
	AccuracyRadius int     `json:"accuracy_radius"`
	Latitude       float64 `json:"latitude"`
	Longitude      float64 `json:"longitude"`
	MetroCode      *int    `json:"metro_code"`
	TimeZone       string  `json:"time_zone"`
}

// geoAnswer is the body of a 200 from GET /info.
type geoAnswer struct {
	City     *string     `json:"city"`
	Country  geoCountry  `json:"country"`
	Location geoLocation `json:"location"`
}

// GeoIPAPI serves the geolocation routes. Get it from a running simulator with
// sim.Routes().(*GeoIPAPI); changing Seed (or Size) replaces it.
type GeoIPAPI struct {
	seed uint64
}

// geoipRoutes builds the geolocation API for k's Seed.
func geoipRoutes(k Knobs) http.Handler { return &GeoIPAPI{seed: k.Seed} }

// Locate returns what GET /info answers for ip: its city ("" where the answer's city is
// null) and its country's ISO code; ok is false when /info answers 400 or 500 instead.
func (a *GeoIPAPI) Locate(ip string) (city, isoCode string, ok bool) {
	addr, err := geoParseIP(ip)
	if err != nil || geoUnplaceable(addr) != "" {
		return "", "", false
	}
	ans := a.place(addr)
	if ans.City != nil {
		city = *ans.City
	}
	return city, ans.Country.ISOCode, true
}

// Placeable reports whether ip is a well-formed IPv4 address that /info places (a 200).
func (a *GeoIPAPI) Placeable(ip string) bool {
	_, _, ok := a.Locate(ip)
	return ok
}

// ServeHTTP answers the geolocation routes; the framework has already applied the faults.
func (a *GeoIPAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != geoInfoPath {
		writeMessageError(w, http.StatusNotFound, "no such route: "+r.Method+" "+r.URL.Path)
		return
	}
	if !allowMethod(w, r, http.MethodGet) {
		return
	}
	addr, err := geoIPParam(r.URL.RawQuery)
	if err != nil {
		writeMessageError(w, http.StatusBadRequest, err.Error())
		return
	}
	if what := geoUnplaceable(addr); what != "" {
		writeMessageError(w, http.StatusInternalServerError, fmt.Sprintf("cannot place %s: it is %s", addr, what))
		return
	}
	writeJSON(w, http.StatusOK, a.place(addr))
}

// place draws addr's answer from the seed and the address, so it never changes for them.
func (a *GeoIPAPI) place(addr netip.Addr) geoAnswer {
	b := addr.As4()
	ip := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
	rng := rand.New(rand.NewPCG(a.seed, geoStream|ip))
	c := geoCities[rng.IntN(len(geoCities))]
	ans := geoAnswer{
		Country: geoCountry{ISOCode: c.iso, Name: c.country},
		Location: geoLocation{
			AccuracyRadius: c.radius,
			Latitude:       c.lat,
			Longitude:      c.long,
			TimeZone:       c.zone,
		},
	}
	if rng.IntN(100) < geoCityNullPct {
		// Placed in the country only: no city, no metro, a coarse point and radius.
		ans.Location.Latitude, ans.Location.Longitude = math.Round(c.lat), math.Round(c.long)
		ans.Location.AccuracyRadius = max(c.radius, geoCountryRadius)
		return ans
	}
	city := c.city
	ans.City = &city
	if c.metro != 0 && rng.IntN(100) >= geoMetroNullPct {
		metro := c.metro
		ans.Location.MetroCode = &metro
	}
	return ans
}

// geoIPParam reads the query of GET /info, which must be exactly one ip, an IPv4 address.
func geoIPParam(rawQuery string) (netip.Addr, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("malformed query: %v", err)
	}
	for _, name := range slices.Sorted(maps.Keys(q)) {
		if name != "ip" {
			return netip.Addr{}, fmt.Errorf("unknown parameter %q: /info takes only ip", name)
		}
	}
	vals, ok := q["ip"]
	switch {
	case !ok:
		return netip.Addr{}, fmt.Errorf("ip is required, like %s?ip=%s", geoInfoPath, geoExampleAddress)
	case len(vals) > 1:
		return netip.Addr{}, fmt.Errorf("ip is given %d times, want once", len(vals))
	}
	return geoParseIP(vals[0])
}

// geoParseIP accepts only an IPv4 address in dotted decimal, nothing around it.
func geoParseIP(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, fmt.Errorf("ip is empty, want an IPv4 address like %s", geoExampleAddress)
	}
	addr, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return netip.Addr{}, fmt.Errorf("ip %q is not an IPv4 address like %s", s, geoExampleAddress)
	case !addr.Is4():
		return netip.Addr{}, fmt.Errorf("ip %q is an IPv6 address: only IPv4 is supported", s)
	}
	return addr, nil
}

// geoUnplaceable says what addr is when no one can place it, or returns "".
func geoUnplaceable(addr netip.Addr) string {
	switch {
	case addr.IsUnspecified():
		return "the unspecified address"
	case addr.IsLoopback():
		return "a loopback address"
	case addr.IsPrivate():
		return "a private address"
	case addr.IsLinkLocalUnicast():
		return "a link-local address"
	case addr.IsMulticast():
		return "a multicast address"
	case addr == geoBroadcast:
		return "the broadcast address"
	}
	for _, r := range geoReserved {
		if r.prefix.Contains(addr) {
			return r.what
		}
	}
	if !addr.IsGlobalUnicast() {
		return "not a global unicast address"
	}
	return ""
}

// MaxCallsPerWindow returns the largest number of calls whose At falls in any one window
// [t, t+window), whatever t and whatever each call's status: at most limit per second
// means MaxCallsPerWindow(calls, time.Second) <= limit. Calls exactly window apart are
// never in the same window. A window <= 0 holds no calls.
func MaxCallsPerWindow(calls []Call, window time.Duration) int {
	if window <= 0 {
		return 0
	}
	at := make([]time.Time, len(calls))
	for i, c := range calls {
		at[i] = c.At
	}
	slices.SortFunc(at, time.Time.Compare)
	// The fullest window can always start at a call: slide each one's start to its first.
	best, end := 0, 0
	for start := range at {
		for end < len(at) && at[end].Sub(at[start]) < window {
			end++
		}
		best = max(best, end-start)
	}
	return best
}
