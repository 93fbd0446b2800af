package sim

import (
	"crypto/subtle"
	"net/http"
	"strings"
	"time"
)

// The simulated upstreams' names, as used in knob specs and logs.
const (
	Incidents = "incidents"
	C42       = "c42"
	GeoIP     = "geoip"
	KF        = "kf"
)

// Names lists the simulators in a fixed order.
var Names = []string{Incidents, C42, GeoIP, KF}

// The credentials the simulators accept unless told otherwise; `relay dev` hands the
// same ones to the worker, so a newcomer sets nothing.
const (
	DefaultIncidentsUser     = "relay"
	DefaultIncidentsPassword = "relay-dev-password"
	DefaultC42Token          = "relay-dev-token"
	DefaultKFKey             = "relay-dev-key"
)

var geoKeyAuth = headerAuth("Authorization", "Token ")

// Upstreams returns the four APIs of spec/upstreams.md.
func Upstreams() map[string]Upstream {
	return map[string]Upstream{
		Incidents: {
			Name:         Incidents,
			Defaults:     Knobs{Credentials: DefaultIncidentsUser + ":" + DefaultIncidentsPassword, Size: 700, Seed: 1},
			Authorized:   basicAuth,
			Unauthorized: http.StatusUnauthorized,
			ErrorBody:    messageBody,
			TooManyBody:  func(time.Duration) any { return messageBody(http.StatusTooManyRequests, "too many requests") },
			Routes:       incidentsRoutes,
		},
		C42: {
			Name:         C42,
			Defaults:     Knobs{Credentials: DefaultC42Token, Size: 100, Seed: 1},
			Authorized:   headerAuth("Authorization", "Token "),
			Unauthorized: http.StatusUnauthorized,
			ErrorBody:    c42ErrorBody,
			TooManyBody:  func(time.Duration) any { return c42ErrorBody(http.StatusTooManyRequests, "too many requests") },
			Routes:       c42Routes,
		},
		GeoIP: {
			Name:     GeoIP,
			Defaults: Knobs{RateLimit: 5, HiccupDelay: 5 * time.Second, Seed: 1}, // hiccup-rate alone gives the spec's 5 s stalls
			// The API is open (spec §3); the credentials knob, when set, makes it demand a
			// key relay does not have: how a test plays a revoked key.
			Authorized:    func(r *http.Request, creds string) bool { return creds == "" || geoKeyAuth(r, creds) },
			Unauthorized:  http.StatusUnauthorized,
			FailureStatus: http.StatusServiceUnavailable,
			ErrorBody:     messageBody,
			TooManyBody: func(remaining time.Duration) any {
				return map[string]float64{"period_remaining": remaining.Seconds()}
			},
			Routes: geoipRoutes,
		},
		KF: {
			Name:         KF,
			Defaults:     Knobs{Credentials: DefaultKFKey, Size: 100, Seed: 1},
			Authorized:   headerAuth("x-api-key", ""),
			Unauthorized: http.StatusForbidden,
			ErrorBody: func(status int, msg string) any {
				if status == http.StatusForbidden {
					msg = "Forbidden" // what the real API says
				}
				return messageBody(status, msg)
			},
			TooManyBody: func(time.Duration) any { return messageBody(http.StatusTooManyRequests, "Too Many Requests") },
			Routes:      kfRoutes,
		},
	}
}

func messageBody(_ int, msg string) any { return map[string]string{"message": msg} }

func c42ErrorBody(status int, msg string) any {
	code := strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", "_"))
	return map[string]any{"error": map[string]any{"message": msg, "code": code, "status_code": status}}
}

func basicAuth(r *http.Request, creds string) bool {
	user, pass, ok := r.BasicAuth()
	want, wantPass, _ := strings.Cut(creds, ":")
	return ok && creds != "" && equal(user, want) && equal(pass, wantPass)
}

func headerAuth(name, prefix string) func(*http.Request, string) bool {
	return func(r *http.Request, creds string) bool {
		got, ok := strings.CutPrefix(r.Header.Get(name), prefix)
		return ok && got != "" && equal(got, creds)
	}
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
