package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // so that the table's zones load wherever the tests run

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// serveGeoIP starts the real geolocation simulator with the knob list and returns its API too.
func serveGeoIP(t *testing.T, list string) (*Sim, *GeoIPAPI, string) {
	t.Helper()
	s, url := serve(t, Upstreams()[GeoIP], list)
	api, ok := s.Routes().(*GeoIPAPI)
	require.True(t, ok, "geoip routes are %T", s.Routes())
	return s, api, url
}

// geoInfo asks /info about ip, escaped as a query value.
func geoInfo(t *testing.T, base, ip string) response {
	t.Helper()
	return get(t, base+"/info?ip="+url.QueryEscape(ip), nil)
}

// geoBody is a 200 from /info decoded strictly: every field of the spec, nothing else.
type geoBody struct {
	City    *string `json:"city"`
	Country struct {
		ISOCode string `json:"iso_code"`
		Name    string `json:"name"`
	} `json:"country"`
	Location struct {
		AccuracyRadius int     `json:"accuracy_radius"`
		Latitude       float64 `json:"latitude"`
		Longitude      float64 `json:"longitude"`
		MetroCode      *int    `json:"metro_code"`
		TimeZone       string  `json:"time_zone"`
	} `json:"location"`
}

func decodeGeo(t *testing.T, body string) geoBody {
	t.Helper()
	var raw map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(body), &raw), body)
	assert.ElementsMatch(t, []string{"city", "country", "location"}, keysOf(raw), body)
	var country, location map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw["country"], &country), body)
	assert.ElementsMatch(t, []string{"iso_code", "name"}, keysOf(country), body)
	require.NoError(t, json.Unmarshal(raw["location"], &location), body)
	assert.ElementsMatch(t, []string{"accuracy_radius", "latitude", "longitude", "metro_code", "time_zone"}, keysOf(location), body)

	var g geoBody
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&g), body)
	return g
}

func keysOf(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// geoPublicIPs are n public IPv4 addresses spread over the space, none in a special range.
func geoPublicIPs(n int) []string {
	ips := make([]string, 0, n)
	for i := 0; len(ips) < n; i++ {
		ip := fmt.Sprintf("%d.%d.%d.%d", 1+i*7%223, i*37%256, i*101%256, 1+i*13%254)
		if geoUnplaceableString(ip) == "" {
			ips = append(ips, ip)
		}
	}
	return ips
}

func geoUnplaceableString(ip string) string {
	addr, err := geoParseIP(ip)
	if err != nil {
		return "malformed"
	}
	return geoUnplaceable(addr)
}

func TestGeoIPInfoShape(t *testing.T) {
	_, api, url := serveGeoIP(t, "rate-limit=0")
	res := geoInfo(t, url, "8.8.8.8")
	require.Equal(t, http.StatusOK, res.status, res.body)
	assert.Equal(t, "application/json", res.header.Get("Content-Type"))
	g := decodeGeo(t, res.body)

	// The answer is one of the table's places, as the table has it.
	var place *geoCity
	for i, c := range geoCities {
		if c.iso == g.Country.ISOCode && g.City != nil && c.city == *g.City {
			place = &geoCities[i]
		}
	}
	require.NotNil(t, place, "8.8.8.8 is placed in a city of the table: %s", res.body)
	assert.Equal(t, place.country, g.Country.Name)
	assert.Equal(t, place.lat, g.Location.Latitude)
	assert.Equal(t, place.long, g.Location.Longitude)
	assert.Equal(t, place.zone, g.Location.TimeZone)
	assert.Equal(t, place.radius, g.Location.AccuracyRadius)

	city, iso, ok := api.Locate("8.8.8.8")
	assert.True(t, ok)
	assert.Equal(t, *g.City, city)
	assert.Equal(t, g.Country.ISOCode, iso)
	assert.True(t, api.Placeable("8.8.8.8"))
}

// TestGeoIPSpecExample checks that the spec's example is what the simulator serves for it.
func TestGeoIPSpecExample(t *testing.T) {
	const example = `{"city": "Willenhall", "country": {"iso_code": "GB", "name": "United Kingdom"},
		"location": {"accuracy_radius": 50, "latitude": 52.58, "longitude": -2.05, "metro_code": null, "time_zone": "Europe/London"}}`
	c := geoCities[0]
	city := c.city
	ans := geoAnswer{
		City:     &city,
		Country:  geoCountry{ISOCode: c.iso, Name: c.country},
		Location: geoLocation{AccuracyRadius: c.radius, Latitude: c.lat, Longitude: c.long, TimeZone: c.zone},
	}
	assert.JSONEq(t, example, string(mustJSON(ans)))

	// And some IP lands there over HTTP with exactly that body.
	_, api, url := serveGeoIP(t, "rate-limit=0")
	for _, ip := range geoPublicIPs(5000) {
		if city, _, _ := api.Locate(ip); city != "Willenhall" {
			continue
		}
		res := geoInfo(t, url, ip)
		require.Equal(t, http.StatusOK, res.status, res.body)
		assert.JSONEq(t, example, res.body, ip)
		return
	}
	t.Fatal("no IP among 5000 lands in Willenhall")
}

// TestGeoIPTableIsSane checks the table the answers come from.
func TestGeoIPTableIsSane(t *testing.T) {
	require.GreaterOrEqual(t, len(geoCities), 30)
	seen := map[string]bool{}
	names := map[string]string{}
	for _, c := range geoCities {
		key := c.iso + "/" + c.city
		assert.False(t, seen[key], "%s twice", key)
		seen[key] = true
		assert.NotEmpty(t, c.city)
		assert.Regexp(t, `^[A-Z]{2}$`, c.iso, c.city)
		if prev, ok := names[c.iso]; ok {
			assert.Equal(t, prev, c.country, "one name per country code")
		}
		names[c.iso] = c.country
		assert.True(t, c.lat >= -90 && c.lat <= 90, c.city)
		assert.True(t, c.long >= -180 && c.long <= 180, c.city)
		_, err := time.LoadLocation(c.zone)
		assert.NoError(t, err, "%s: time zone %q", c.city, c.zone)
		assert.Positive(t, c.radius, c.city)
		assert.Equal(t, c.iso == "US", c.metro != 0, "%s: metro codes are for US cities only", c.city)
	}
}

func TestGeoIPDeterminism(t *testing.T) {
	ips := geoPublicIPs(200)
	_, _, urlA := serveGeoIP(t, "rate-limit=0")
	_, _, urlB := serveGeoIP(t, "rate-limit=0")
	for _, ip := range ips[:40] {
		first := geoInfo(t, urlA, ip)
		require.Equal(t, http.StatusOK, first.status, first.body)
		again := geoInfo(t, urlA, ip)
		other := geoInfo(t, urlB, ip)
		assert.Equal(t, first.body, again.body, "same IP, same answer: %s", ip)
		assert.Equal(t, first.body, other.body, "same seed, same answer in another simulator: %s", ip)
	}

	// Another seed moves IPs elsewhere; the same seed again brings them back.
	a := newGeoIPForTest(1)
	b := newGeoIPForTest(2)
	moved := 0
	for _, ip := range ips {
		ca, ia, okA := a.Locate(ip)
		cb, ib, okB := b.Locate(ip)
		require.True(t, okA && okB, ip)
		if ca != cb || ia != ib {
			moved++
		}
		c2, i2, _ := newGeoIPForTest(1).Locate(ip)
		assert.Equal(t, [2]string{ca, ia}, [2]string{c2, i2}, ip)
	}
	assert.Greater(t, moved, len(ips)/2, "the seed shapes where IPs land")
}

func newGeoIPForTest(seed uint64) *GeoIPAPI {
	return geoipRoutes(Knobs{Seed: seed}).(*GeoIPAPI)
}

// TestGeoIPVariety checks that the answers over many IPs hold what a client must cope
// with: many places, null cities, US cities with and without a metro code.
func TestGeoIPVariety(t *testing.T) {
	_, api, url := serveGeoIP(t, "rate-limit=0")
	ips := geoPublicIPs(2000)
	places := map[string]bool{}
	var nullCity, usMetro, usNoMetro int
	for _, ip := range ips {
		g := api.place(mustParseAddr(t, ip))
		city, iso, ok := api.Locate(ip)
		require.True(t, ok, ip)
		assert.Equal(t, g.Country.ISOCode, iso, ip)
		if g.City == nil {
			nullCity++
			assert.Equal(t, "", city, ip)
			assert.Nil(t, g.Location.MetroCode, "a country-only answer has no metro: %s", ip)
			assert.GreaterOrEqual(t, g.Location.AccuracyRadius, geoCountryRadius, ip)
			continue
		}
		assert.Equal(t, *g.City, city, ip)
		places[iso+"/"+city] = true
		switch {
		case iso != "US":
			assert.Nil(t, g.Location.MetroCode, "metro codes are for the US only: %s", ip)
		case g.Location.MetroCode != nil:
			usMetro++
		default:
			usNoMetro++
		}
	}
	assert.Greater(t, len(places), len(geoCities)*3/4, "IPs spread over the table")
	assert.Positive(t, nullCity, "some IPs have a null city")
	assert.Less(t, nullCity, len(ips)/5, "but only a few")
	assert.Positive(t, usMetro, "US IPs with a metro code")
	assert.Positive(t, usNoMetro, "US IPs with a null metro code")

	// A null city over HTTP is a JSON null, not "" or a missing field.
	for _, ip := range ips {
		if city, _, _ := api.Locate(ip); city != "" {
			continue
		}
		res := geoInfo(t, url, ip)
		require.Equal(t, http.StatusOK, res.status, res.body)
		g := decodeGeo(t, res.body)
		assert.Nil(t, g.City, res.body)
		assert.Contains(t, res.body, `"city":null`)
		assert.NotEmpty(t, g.Country.ISOCode)
		assert.NotEmpty(t, g.Location.TimeZone)
		return
	}
}

func mustParseAddr(t *testing.T, ip string) netip.Addr {
	t.Helper()
	addr, err := geoParseIP(ip)
	require.NoError(t, err, ip)
	return addr
}

func TestGeoIPUnplaceable(t *testing.T) {
	_, api, url := serveGeoIP(t, "rate-limit=0")
	tests := []struct {
		ip, want string // want: part of the message
	}{
		{"10.0.0.0", "private"},
		{"10.1.2.3", "private"},
		{"10.255.255.255", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.254", "private"},
		{"192.168.0.1", "private"},
		{"192.168.255.255", "private"},
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"169.254.0.1", "link-local"},
		{"169.254.169.254", "link-local"},
		{"224.0.0.1", "multicast"},
		{"224.0.0.251", "multicast"},
		{"239.255.255.250", "multicast"},
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "this network"},
		{"240.0.0.1", "reserved"},
		{"250.1.2.3", "reserved"},
		{"255.255.255.254", "reserved"},
		{"255.255.255.255", "broadcast"},
		{"100.64.0.1", "carrier-grade NAT"},
		{"100.127.255.254", "carrier-grade NAT"},
		{"192.0.2.1", "documentation"},
		{"198.51.100.7", "documentation"},
		{"203.0.113.200", "documentation"},
		{"192.0.0.8", "IETF"},
		{"198.18.0.1", "benchmarking"},
		{"198.19.255.255", "benchmarking"},
	}
	for _, tt := range tests {
		t.Run(tt.ip, func(t *testing.T) {
			res := geoInfo(t, url, tt.ip)
			require.Equal(t, http.StatusInternalServerError, res.status, res.body)
			assert.Equal(t, "application/json", res.header.Get("Content-Type"))
			var body map[string]string
			require.NoError(t, json.Unmarshal([]byte(res.body), &body), res.body)
			require.Len(t, body, 1, res.body)
			assert.Contains(t, body["message"], tt.ip)
			assert.Contains(t, body["message"], tt.want)
			assert.False(t, api.Placeable(tt.ip))
			_, _, ok := api.Locate(tt.ip)
			assert.False(t, ok)
		})
	}

	// Just outside each range is placeable.
	for _, ip := range []string{
		"9.255.255.255", "11.0.0.0", "172.15.255.255", "172.32.0.0", "192.167.255.255", "192.169.0.0",
		"126.255.255.255", "128.0.0.0", "169.253.255.255", "169.255.0.0", "223.255.255.255",
		"1.0.0.0", "100.63.255.255", "100.128.0.0", "192.0.1.255", "192.0.3.0",
		"198.51.99.255", "198.51.101.0", "203.0.112.255", "203.0.114.0", "198.17.255.255", "198.20.0.0",
	} {
		t.Run("placeable "+ip, func(t *testing.T) {
			res := geoInfo(t, url, ip)
			assert.Equal(t, http.StatusOK, res.status, res.body)
			assert.True(t, api.Placeable(ip))
		})
	}
}

func TestGeoIPMalformed(t *testing.T) {
	_, api, base := serveGeoIP(t, "rate-limit=0")
	tests := []struct {
		name, query, want string // want: part of the message
	}{
		{"no query", "", "ip is required"},
		{"no ip", "addr=8.8.8.8", "unknown parameter"},
		{"empty ip", "ip=", "empty"},
		{"ip without value", "ip", "empty"},
		{"twice", "ip=8.8.8.8&ip=1.1.1.1", "2 times"},
		{"extra parameter", "ip=8.8.8.8&lang=en", `unknown parameter "lang"`},
		{"a name", "ip=example.com", "not an IPv4"},
		{"three parts", "ip=8.8.8", "not an IPv4"},
		{"five parts", "ip=8.8.8.8.8", "not an IPv4"},
		{"octet too big", "ip=8.8.8.256", "not an IPv4"},
		{"leading zero", "ip=08.8.8.8", "not an IPv4"},
		{"negative", "ip=8.8.8.-8", "not an IPv4"},
		{"trailing junk", "ip=8.8.8.8x", "not an IPv4"},
		{"leading space", "ip=%208.8.8.8", "not an IPv4"},
		{"trailing space", "ip=8.8.8.8+", "not an IPv4"},
		{"with a port", "ip=8.8.8.8:80", "not an IPv4"},
		{"a prefix", "ip=8.8.8.0/24", "not an IPv4"},
		{"a zone", "ip=8.8.8.8%25eth0", "not an IPv4"},
		{"a number", "ip=134744072", "not an IPv4"},
		{"hex", "ip=0x08080808", "not an IPv4"},
		{"IPv6", "ip=2001:4860:4860::8888", "IPv6"},
		{"IPv6 loopback", "ip=::1", "IPv6"},
		{"IPv4-mapped IPv6", "ip=::ffff:8.8.8.8", "IPv6"},
		{"bad escape", "ip=%zz", "malformed query"},
		{"semicolon", "ip=8.8.8.8;x=1", "malformed query"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := get(t, base+"/info?"+tt.query, nil)
			require.Equal(t, http.StatusBadRequest, res.status, res.body)
			assert.Equal(t, "application/json", res.header.Get("Content-Type"))
			var body map[string]string
			require.NoError(t, json.Unmarshal([]byte(res.body), &body), res.body)
			require.Len(t, body, 1, res.body)
			assert.Contains(t, body["message"], tt.want)

			if q, err := url.ParseQuery(tt.query); err == nil && len(q) == 1 && len(q["ip"]) == 1 {
				assert.False(t, api.Placeable(q.Get("ip")))
			}
		})
	}
}

func TestGeoIPRoutesAndMethods(t *testing.T) {
	_, _, url := serveGeoIP(t, "rate-limit=0")
	tests := []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/", 404},
		{http.MethodGet, "/nope", 404},
		{http.MethodGet, "/info/", 404},
		{http.MethodGet, "/info/8.8.8.8", 404},
		{http.MethodGet, "/Info?ip=8.8.8.8", 404},
		{http.MethodGet, "/v1/info?ip=8.8.8.8", 404},
		{http.MethodPost, "/info?ip=8.8.8.8", 405},
		{http.MethodPut, "/info?ip=8.8.8.8", 405},
		{http.MethodDelete, "/info", 405},
		{http.MethodHead, "/info?ip=8.8.8.8", 405},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			res := call(t, tt.method, url+tt.path, "{}", nil)
			assert.Equal(t, tt.status, res.status)
			if tt.status == 405 {
				assert.Equal(t, "GET", res.header.Get("Allow"))
			}
			if tt.method == http.MethodHead {
				return // no body to read
			}
			var body map[string]string
			require.NoError(t, json.Unmarshal([]byte(res.body), &body), res.body)
			require.Len(t, body, 1, res.body)
			assert.NotEmpty(t, body["message"])
		})
	}
}

// TestGeoIPRateLimit checks the framework's window end to end with the real routes.
func TestGeoIPRateLimit(t *testing.T) {
	s, _, url := serveGeoIP(t, "") // the default: 5 per second
	require.Equal(t, 5.0, s.Knobs().RateLimit)
	for i := range 5 {
		require.Equal(t, http.StatusOK, geoInfo(t, url, "8.8.8.8").status, "call %d", i+1)
	}
	res := geoInfo(t, url, "8.8.8.8")
	require.Equal(t, http.StatusTooManyRequests, res.status, res.body)
	var body map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.body), &body), res.body)
	require.Len(t, body, 1, res.body)
	remaining, ok := body["period_remaining"].(float64)
	require.True(t, ok, "period_remaining is a number: %s", res.body)
	assert.Greater(t, remaining, 0.0)
	assert.LessOrEqual(t, remaining, 1.0)

	// Unplaceable and malformed calls count against the window too.
	assert.Equal(t, http.StatusTooManyRequests, geoInfo(t, url, "10.0.0.1").status)
	assert.Equal(t, http.StatusTooManyRequests, geoInfo(t, url, "nope").status)

	time.Sleep(time.Duration(remaining*float64(time.Second)) + 20*time.Millisecond)
	assert.Equal(t, http.StatusOK, geoInfo(t, url, "8.8.8.8").status, "the next window lets calls through")
	assert.Equal(t, http.StatusInternalServerError, geoInfo(t, url, "10.0.0.1").status)
	assert.Equal(t, http.StatusBadRequest, geoInfo(t, url, "nope").status)

	calls := s.Calls()
	require.Len(t, calls, 11)
	assert.Equal(t, 8, MaxCallsPerWindow(calls[:8], time.Second), "every call counts, 429s included")
	assert.GreaterOrEqual(t, MaxCallsPerWindow(calls, time.Second), 8)
}

func TestGeoIPHiccups(t *testing.T) {
	const delay = 100 * time.Millisecond
	require.Equal(t, 5*time.Second, Upstreams()[GeoIP].Defaults.HiccupDelay, "hiccup-rate alone gives the spec's stalls")
	require.Zero(t, Upstreams()[GeoIP].Defaults.HiccupRate, "off by default")

	_, _, url := serveGeoIP(t, "rate-limit=0,hiccup-rate=1,hiccup-delay=100ms")
	var total time.Duration
	const n = 6
	for range n {
		start := time.Now()
		res := geoInfo(t, url, "8.8.8.8")
		elapsed := time.Since(start)
		require.Equal(t, http.StatusOK, res.status, res.body)
		assert.Less(t, elapsed, delay+time.Second)
		total += elapsed
	}
	// Each stall is uniform in (0, 100ms]: over six calls, well above no stalls at all.
	assert.Greater(t, total, n*delay/10)

	_, _, url = serveGeoIP(t, "rate-limit=0")
	start := time.Now()
	for range n {
		require.Equal(t, http.StatusOK, geoInfo(t, url, "8.8.8.8").status)
	}
	assert.Less(t, time.Since(start), time.Second, "no stalls by default")
}

func TestMaxCallsPerWindow(t *testing.T) {
	t0 := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(offsets ...time.Duration) []Call {
		calls := make([]Call, len(offsets))
		for i, d := range offsets {
			calls[i] = Call{At: t0.Add(d), Status: 200}
		}
		return calls
	}
	ms := time.Millisecond
	tests := []struct {
		name   string
		calls  []Call
		window time.Duration
		want   int
	}{
		{"none", nil, time.Second, 0},
		{"one", at(0), time.Second, 1},
		{"same instant", at(0, 0, 0), time.Second, 3},
		{"exactly a window apart", at(0, time.Second), time.Second, 1},
		{"just under a window apart", at(0, time.Second-1), time.Second, 2},
		{"a chain a window apart", at(0, time.Second, 2*time.Second, 3*time.Second), time.Second, 1},
		{"five per fixed second, bunched at the seam", at(
			// Five late in one second and five early in the next: a fixed window allows
			// it, a sliding one sees ten.
			900*ms, 910*ms, 920*ms, 930*ms, 940*ms,
			1000*ms, 1010*ms, 1020*ms, 1030*ms, 1040*ms,
		), time.Second, 10},
		{"steady 5 per second", at(0, 200*ms, 400*ms, 600*ms, 800*ms, 1000*ms, 1200*ms, 1400*ms), time.Second, 5},
		{"steady, a hair too fast", at(0, 199*ms, 398*ms, 597*ms, 796*ms, 995*ms, 1194*ms), time.Second, 6},
		{"the fullest window starts late", at(0, 500*ms, 1200*ms, 1300*ms, 1400*ms, 1500*ms, 2100*ms), time.Second, 5},
		{"unsorted", at(2100*ms, 1500*ms, 0, 1300*ms, 500*ms, 1400*ms, 1200*ms), time.Second, 5},
		{"another window", at(0, 50*ms, 99*ms, 100*ms, 150*ms), 100 * ms, 3},
		{"zero window", at(0, 0), 0, 0},
		{"negative window", at(0, 0), -time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, MaxCallsPerWindow(tt.calls, tt.window))
		})
	}

	t.Run("every status counts", func(t *testing.T) {
		calls := at(0, ms, 2*ms, 3*ms)
		for i, st := range []int{200, 429, 500, 499} {
			calls[i].Status = st
		}
		assert.Equal(t, 4, MaxCallsPerWindow(calls, time.Second))
	})

	t.Run("leaves the calls alone", func(t *testing.T) {
		calls := at(2*ms, 0, ms)
		MaxCallsPerWindow(calls, time.Second)
		assert.Equal(t, at(2*ms, 0, ms), calls)
	})

	t.Run("time zones do not matter", func(t *testing.T) {
		calls := at(0, 999*ms)
		calls[1].At = calls[1].At.In(time.FixedZone("", -5*3600))
		assert.Equal(t, 2, MaxCallsPerWindow(calls, time.Second))
	})

	t.Run("agrees with counting every window by brute force", func(t *testing.T) {
		var offsets []time.Duration
		for i := range 60 {
			offsets = append(offsets, time.Duration(i*i*37%2900)*ms)
		}
		calls := at(offsets...)
		want := 0
		for _, start := range calls {
			n := 0
			for _, c := range calls {
				if d := c.At.Sub(start.At); d >= 0 && d < time.Second {
					n++
				}
			}
			want = max(want, n)
		}
		assert.Equal(t, want, MaxCallsPerWindow(calls, time.Second))
	})
}

// TestMaxCallsPerWindowOnRealCalls: unlimited, quick calls all fall in one second.
func TestMaxCallsPerWindowOnRealCalls(t *testing.T) {
	s, _, url := serveGeoIP(t, "rate-limit=0")
	for range 20 {
		require.Equal(t, http.StatusOK, geoInfo(t, url, "8.8.8.8").status)
	}
	calls := s.Calls()
	require.Len(t, calls, 20)
	assert.GreaterOrEqual(t, MaxCallsPerWindow(calls, time.Second), 20)
	assert.Equal(t, 1, MaxCallsPerWindow(calls, time.Nanosecond), "a window too short for two calls")
}

// The geolocation API is open, as the spec has it; the credentials knob makes it demand a
// key (a test's revoked key), and clearing the knob opens it again.
func TestGeoIPCredentialsKnob(t *testing.T) {
	s, _, url := serveGeoIP(t, "rate-limit=0")
	require.Equal(t, http.StatusOK, geoInfo(t, url, "8.8.8.8").status, "open by default")
	s.SetKnobs(func() Knobs { k := s.Knobs(); k.Credentials = "revoked"; return k }())
	res := geoInfo(t, url, "8.8.8.8")
	require.Equal(t, http.StatusUnauthorized, res.status, res.body)
	assert.JSONEq(t, `{"message":"invalid or missing credentials"}`, res.body)
	s.SetKnobs(func() Knobs { k := s.Knobs(); k.Credentials = ""; return k }())
	assert.Equal(t, http.StatusOK, geoInfo(t, url, "8.8.8.8").status, "open again")
}
