package activities

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"testing"
	"time"

	"relay/internal/ratelimit"
	"relay/internal/store"
)

// freeSlots hands out every rate slot at once and counts nothing: the fuzzer is not the
// geo API.
type freeSlots struct{}

func (freeSlots) ReserveSlot(context.Context, string, time.Duration, time.Duration, time.Duration) (store.Reservation, error) {
	return store.Reservation{OK: true}, nil
}

func (freeSlots) CountCall(context.Context, string) error { return nil }

// FuzzGeoAnswer serves an arbitrary body as the geolocation API's answer: Locate returns
// exactly the location the reference reads from it, or refuses it with a decoding error.
// Read as a 429's body, the wait it gives is the reference's too (FuzzUpstreamAnswer
// checks that the wait reaches the retry).
func FuzzGeoAnswer(f *testing.F) {
	for _, body := range []string{
		`{"city": "Willenhall", "country": {"iso_code": "GB", "name": "United Kingdom"}, "location": {"accuracy_radius": 50, "latitude": 52.58, "longitude": -2.05, "metro_code": null, "time_zone": "Europe/London"}}`,
		`{"city": null, "country": {"iso_code": "US", "name": "United States"}, "location": {"accuracy_radius": 1000, "latitude": 37.751, "longitude": -97.822, "time_zone": "America/Chicago"}}`,
		`{"country": {"iso_code": "GB"}, "location": {"latitude": 0, "longitude": 0}}`,
		`{"country": {"iso_code": "GBR"}, "location": {"latitude": 1, "longitude": 1}}`,
		`{"country": {"iso_code": "GB"}, "location": {"latitude": 1, "longitude": -180.5}}`,
		`{"country": {"iso_code": "GB"}, "location": {"latitude": "52.58", "longitude": 1}}`,
		`{"country": {"iso_code": "GB"}, "location": {"latitude": 1e400, "longitude": 1}}`,
		`{"country": {"iso_code": "GB"}, "location": {"latitude": 1, "longitude": 1, "accuracy_radius": 5.5}}`,
		`{"country": {"iso_code": "GB"}, "location": {"latitude": 1, "longitude": 1, "accuracy_radius": 99999999999999999999}}`,
		`{"country": null, "location": {"latitude": 1, "longitude": 1}}`,
		`{"country": {"iso_code": "GB"}, "location": null}`,
		`{"country": {"iso_code": "GB"}}`,
		`{"Country": {"ISO_CODE": "GB"}, "LOCATION": {"Latitude": 1, "longitude": 1}}`,
		`{"country": {"iso_code": "GB"}, "country": {"name": "X"}, "location": {"latitude": 1, "longitude": 1}}`,
		`{"city": 5, "country": {"iso_code": "GB"}, "location": {"latitude": 1, "longitude": 1}}`,
		`{"city": "Z\u00fcrich \ud83c\udfd4", "country": {"iso_code": "CH", "name": "Schweiz"}, "location": {"latitude": 47.37, "longitude": 8.54, "time_zone": "Europe/Zurich"}}`,
		`{"period_remaining": 0.734}`,
		`{"period_remaining": 0}`,
		`{"period_remaining": -1}`,
		`{"period_remaining": 60}`,
		`{"period_remaining": 60.0001}`,
		`{"period_remaining": 1e-320}`,
		`{"period_remaining": null}`,
		`{"message": "Internal Server Error"}`,
		`null`, `[]`, ``, `{`, "\ufeff{}", `<html></html>`,
	} {
		f.Add([]byte(body))
	}
	answer, client := newCannedAnswer()
	limiter, err := ratelimit.New(freeSlots{}, "geoip", 1e9)
	if err != nil {
		f.Fatal(err)
	}
	geo := &Geo{api: upstream{name: "geoip", baseURL: "http://geoip.test", http: client, retryAfter: periodRemaining}, limiter: limiter}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, body []byte) {
		answer.status, answer.body = http.StatusOK, body
		sure := !hasFoldedDuplicates(body)
		got, err := geo.locate(ctx, "81.2.69.160") // the decoding; Locate adds the verdicts (geolocate_test.go)
		want, ok := refGeoLocation(body)
		switch {
		case err != nil:
			requireDecodeError(t, err, body)
			if sure && ok {
				t.Fatalf("%q: refused (%v), want %+v", body, err, want)
			}
		case sure && !ok:
			t.Fatalf("%q: accepted as %s, want a decoding error", body, describeLocation(got))
		case sure && !reflect.DeepEqual(got, want):
			t.Fatalf("%q: %s, want %s", body, describeLocation(got), describeLocation(want))
		}

		d := periodRemaining(body)
		if d < 0 || d > time.Minute {
			t.Fatalf("%q: period_remaining %v", body, d)
		}
		if wantD, sure := refPeriodRemaining(body); sure && d != wantD {
			t.Fatalf("%q: period_remaining %v, want %v", body, d, wantD)
		}
	})
}

func describeLocation(l Location) string {
	b, _ := json.Marshal(l)
	return string(b)
}

var isoCountry = regexp.MustCompile(`^[A-Z]{2}$`)

// refGeoLocation reads GET /info as spec/upstreams.md describes it. A location needs what
// relay files and filters it by: "country" with an "iso_code" of two capital letters, and
// "location" with a "latitude" (-90 to 90) and a "longitude" (-180 to 180). The other
// members may be missing or null, but not of another type: "city" a string, the country's
// "name" and "time_zone" strings, "accuracy_radius" an integer.
func refGeoLocation(body []byte) (Location, bool) {
	var loc Location
	v, ok := decodeGeneric(body)
	obj, isObj := v.(map[string]any)
	if !ok || !isObj {
		return loc, false
	}
	country, _ := jsonMember(obj, "country")
	countryObj, isObj := country.(map[string]any)
	if !isObj {
		return loc, false
	}
	place, _ := jsonMember(obj, "location")
	placeObj, isObj := place.(map[string]any)
	if !isObj {
		return loc, false
	}
	text := func(obj map[string]any, name string) (*string, bool) {
		switch v, _ := jsonMember(obj, name); v := v.(type) {
		case nil:
			return nil, true
		case string:
			return &v, true
		default:
			return nil, false
		}
	}
	number := func(obj map[string]any, name string, bits int) (*json.Number, bool) {
		switch v, _ := jsonMember(obj, name); v := v.(type) {
		case nil:
			return nil, true
		case json.Number:
			if bits == 0 {
				_, err := strconv.ParseInt(string(v), 10, 0)
				return &v, err == nil
			}
			_, err := strconv.ParseFloat(string(v), 64)
			return &v, err == nil
		default:
			return nil, false
		}
	}
	city, ok1 := text(obj, "city")
	iso, ok2 := text(countryObj, "iso_code")
	name, ok3 := text(countryObj, "name")
	zone, ok4 := text(placeObj, "time_zone")
	lat, ok5 := number(placeObj, "latitude", 64)
	lon, ok6 := number(placeObj, "longitude", 64)
	radius, ok7 := number(placeObj, "accuracy_radius", 0)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 || !ok7 || iso == nil || !isoCountry.MatchString(*iso) || lat == nil || lon == nil {
		return loc, false
	}
	loc.City, loc.Country.IsoCode = city, *iso
	if name != nil {
		loc.Country.Name = *name
	}
	if zone != nil {
		loc.TimeZone = *zone
	}
	loc.Latitude, _ = lat.Float64()
	loc.Longitude, _ = lon.Float64()
	if radius != nil {
		r, _ := radius.Int64()
		loc.AccuracyRadius = int(r)
	}
	if loc.Latitude < -90 || loc.Latitude > 90 || loc.Longitude < -180 || loc.Longitude > 180 {
		return loc, false
	}
	return loc, true
}
