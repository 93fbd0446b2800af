// Package sim simulates the upstream APIs relay integrates with (spec/upstreams.md), so
// that `relay dev`, the tests and the benchmarks run against real HTTP with the faults a
// careful client must survive: latency, random 500s, hiccups, dropped connections,
// answers cut short or garbled, a rate limit and credentials, all set by Knobs, on data generated deterministically from a seed.
//
// Every simulator also answers, outside its faults and auth:
//
//	GET  /_sim/knobs   the knobs, as "latency=0s,failure-rate=0,..."
//	PUT  /_sim/knobs   change knobs: the body is a list like "failure-rate=0.3,latency=50ms"
//	GET  /_sim/calls   the calls so far, as JSON
//	DELETE /_sim/calls forget them
package sim

import (
	"cmp"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Upstream describes one API: how it authenticates, how its errors look, and its routes.
type Upstream struct {
	Name string
	// Defaults are the knobs before any spec is applied.
	Defaults Knobs
	// Authorized reports whether r carries creds; nil means the API is open.
	Authorized func(r *http.Request, creds string) bool
	// Unauthorized is the status of a call without valid credentials (401 or 403).
	Unauthorized int
	// FailureStatus is how a simulated failure (failure-rate) answers: 500 unless set. The
	// geolocation API's 500 is its verdict that it cannot place an IP, so its failures
	// are 503s: a server that failed, not an answer about the IP.
	FailureStatus int
	// ErrorBody is the JSON body of an error in this API's own envelope.
	ErrorBody func(status int, msg string) any
	// TooManyBody is the JSON body of a 429; remaining is what is left of the window.
	TooManyBody func(remaining time.Duration) any
	// Routes builds the API's handler over data generated from the knobs' Size and Seed.
	Routes func(k Knobs) http.Handler
}

// Call is one request a simulator received, for tests to check.
type Call struct {
	At         time.Time `json:"at"`
	Method     string    `json:"method"`
	Path       string    `json:"path"`
	Query      string    `json:"query,omitempty"`
	Authorized bool      `json:"authorized"`
	Status     int       `json:"status"`
	// Fault names what the knobs did to this call, if anything: "reset", "rate-limit",
	// "hiccup", "failure", "truncate" or "garble".
	Fault  string      `json:"fault,omitempty"`
	Header http.Header `json:"-"`
}

// maxCalls bounds the call log so that a long load test cannot grow it without end.
const maxCalls = 200_000

// Sim serves one upstream with its faults.
type Sim struct {
	up Upstream

	mu          sync.Mutex
	knobs       Knobs
	routes      http.Handler
	rng         *rand.Rand
	windowStart time.Time
	windowCalls int
	calls       []Call
	dropped     int
}

// New builds a simulator for up with its defaults changed by the knob list (may be empty).
func New(up Upstream, list string) (*Sim, error) {
	k := up.Defaults
	if err := k.Apply(list); err != nil {
		return nil, err
	}
	s := &Sim{up: up}
	s.SetKnobs(k)
	return s, nil
}

// Name is the upstream's name.
func (s *Sim) Name() string { return s.up.Name }

// Knobs returns the current knobs.
func (s *Sim) Knobs() Knobs {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.knobs
}

// SetKnobs changes the knobs; data is generated again when Size or Seed change.
func (s *Sim) SetKnobs(k Knobs) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.routes == nil || k.Size != s.knobs.Size || k.Seed != s.knobs.Seed {
		s.routes = s.up.Routes(k)
		s.rng = rand.New(rand.NewPCG(k.Seed, 0x5eed))
	}
	s.knobs = k
}

// Routes returns the handler API calls reach now, for tests to type-assert to an
// upstream's own type (e.g. *KFAPI); it changes when Size or Seed do.
func (s *Sim) Routes() http.Handler {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.routes
}

// Calls returns a copy of the calls received so far (the API's, not /_sim's).
func (s *Sim) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call{}, s.calls...) // [] rather than null in /_sim/calls
}

// CallCount counts the calls whose path starts with prefix.
func (s *Sim) CallCount(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		if strings.HasPrefix(c.Path, prefix) {
			n++
		}
	}
	return n
}

// ResetCalls forgets the calls so far.
func (s *Sim) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls, s.dropped = nil, 0
}

// ServeHTTP answers a call: admin routes directly, API routes through the faults.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_sim/") {
		s.serveAdmin(w, r)
		return
	}
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	call := Call{At: time.Now(), Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone()}
	defer func() {
		call.Status = rec.status
		s.record(call)
	}()

	d := s.decide(r)
	call.Authorized = d.authorized
	call.Fault = d.fault()
	if d.reset {
		rec.status = 0 // no answer at all
		closeConnection(w)
		return
	}
	if !d.authorized {
		writeJSON(rec, s.up.Unauthorized, s.up.ErrorBody(s.up.Unauthorized, "invalid or missing credentials"))
		return
	}
	if d.limited > 0 {
		writeJSON(rec, http.StatusTooManyRequests, s.up.TooManyBody(d.limited))
		return
	}
	if d.delay > 0 {
		select {
		case <-time.After(d.delay):
		case <-r.Context().Done():
			rec.status = 499 // the client gave up; nothing to write to
			return
		}
	}
	if d.fail {
		status := cmp.Or(s.up.FailureStatus, http.StatusInternalServerError)
		writeJSON(rec, status, s.up.ErrorBody(status, "simulated failure"))
		return
	}
	if d.truncate || d.garble != garbleNone {
		// The API does its work (a POST is taken), then the answer goes wrong on the way.
		answer := httptest.NewRecorder()
		d.routes.ServeHTTP(answer, r)
		rec.status = answer.Code
		if answer.Code < 200 || answer.Code > 299 {
			copyAnswer(w, answer, answer.Body.Bytes())
		} else if d.truncate {
			body := answer.Body.Bytes()
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			copyAnswer(w, answer, body[:len(body)/2])
			closeConnection(w)
		} else {
			garbled(w, answer, d.garble)
		}
		return
	}
	d.routes.ServeHTTP(rec, r)
}

// garbleKind is how a garbled answer looks.
type garbleKind int

const (
	garbleNone garbleKind = iota
	garbleHTML            // a gateway's error page with status 200
	garbleJSON            // JSON cut off, with a Content-Length that matches
)

func garbled(w http.ResponseWriter, answer *httptest.ResponseRecorder, kind garbleKind) {
	if kind == garbleHTML {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(answer.Code)
		io.WriteString(w, "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>\n")
		return
	}
	body := answer.Body.Bytes()
	copyAnswer(w, answer, append(body[:len(body)/2:len(body)/2], "\u0000}"...))
}

func copyAnswer(w http.ResponseWriter, answer *httptest.ResponseRecorder, body []byte) {
	for k, v := range answer.Header() {
		if k != "Content-Length" {
			w.Header()[k] = v
		}
	}
	w.WriteHeader(answer.Code)
	w.Write(body)
}

// closeConnection drops the client's connection: no answer, or the rest of one, ever comes.
func closeConnection(w http.ResponseWriter) {
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		conn.Close()
		return
	}
	panic(http.ErrAbortHandler) // HTTP/2 or a test recorder: abort the stream instead
}

type decision struct {
	authorized bool
	limited    time.Duration // > 0: answer 429 with this much of the window left
	reset      bool
	delay      time.Duration
	hiccup     bool
	fail       bool
	truncate   bool
	garble     garbleKind
	routes     http.Handler
}

// fault names the first fault the call meets, as Call.Fault reports it.
func (d decision) fault() string {
	switch {
	case d.reset:
		return "reset"
	case d.limited > 0:
		return "rate-limit"
	case d.fail:
		return "failure"
	case d.truncate:
		return "truncate"
	case d.garble != garbleNone:
		return "garble"
	case d.hiccup:
		return "hiccup"
	}
	return ""
}

// decide rolls the dice for one call under the lock, so that faults are reproducible
// for a seed when calls arrive one at a time.
func (s *Sim) decide(r *http.Request) decision {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now() // under the lock, so that windows only move forward
	k := s.knobs
	d := decision{authorized: true, routes: s.routes}
	if s.up.Authorized != nil && !s.up.Authorized(r, k.Credentials) {
		d.authorized = false
		return d
	}
	if k.RateLimit > 0 {
		// A fixed one-second window that opens at the first call after the last one closed.
		if s.windowStart.IsZero() || now.Sub(s.windowStart) >= time.Second {
			s.windowStart, s.windowCalls = now, 0
		}
		if float64(s.windowCalls) >= k.RateLimit {
			d.limited = time.Second - now.Sub(s.windowStart)
			return d
		}
		s.windowCalls++
	}
	d.delay = k.Latency
	if k.HiccupRate > 0 && k.HiccupDelay > 0 && s.rng.Float64() < k.HiccupRate {
		d.delay += time.Duration(1 + s.rng.Int64N(int64(k.HiccupDelay)))
		d.hiccup = true
	}
	d.fail = k.FailureRate > 0 && s.rng.Float64() < k.FailureRate
	d.reset = k.ResetRate > 0 && s.rng.Float64() < k.ResetRate
	d.truncate = k.TruncateRate > 0 && s.rng.Float64() < k.TruncateRate
	if k.GarbleRate > 0 && s.rng.Float64() < k.GarbleRate {
		d.garble = garbleHTML + garbleKind(s.rng.IntN(2))
	}
	return d
}

func (s *Sim) record(c Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.calls) >= maxCalls {
		s.calls = s.calls[1:]
		s.dropped++
	}
	s.calls = append(s.calls, c)
}

func (s *Sim) serveAdmin(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/_sim/knobs" && r.Method == http.MethodGet:
		k := s.Knobs()
		io.WriteString(w, k.String()+"\n")
	case r.URL.Path == "/_sim/knobs" && r.Method == http.MethodPut:
		body, err := io.ReadAll(io.LimitReader(r.Body, 4096))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		k := s.Knobs()
		if err := k.Apply(strings.TrimSpace(string(body))); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.SetKnobs(k)
		io.WriteString(w, k.String()+"\n")
	case r.URL.Path == "/_sim/calls" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.Calls())
	case r.URL.Path == "/_sim/calls" && r.Method == http.MethodDelete:
		s.ResetCalls()
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status  int
	written bool
}

func (r *statusRecorder) WriteHeader(status int) {
	if !r.written {
		r.status, r.written = status, true
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.written = true
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
