package bench

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"time"
)

// Latencies are request latencies in ascending order.
type Latencies []time.Duration

// Sorted returns ds sorted, as Latencies (ds itself is sorted in place).
func Sorted(ds []time.Duration) Latencies {
	slices.Sort(ds)
	return ds
}

// Percentile is the nearest-rank p-th percentile, p from 0 to 1: the smallest latency
// that at least p of all are at or below. It is 0 when there are none.
func (l Latencies) Percentile(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(l)))) - 1
	return l[min(max(i, 0), len(l)-1)]
}

// Mean is the average latency, 0 when there are none.
func (l Latencies) Mean() time.Duration {
	if len(l) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range l {
		sum += d
	}
	return sum / time.Duration(len(l))
}

// Max is the largest latency, 0 when there are none.
func (l Latencies) Max() time.Duration {
	if len(l) == 0 {
		return 0
	}
	return l[len(l)-1]
}

// Summary describes one route's requests, in milliseconds for JSON.
type Summary struct {
	Route      string         `json:"route"`
	Requests   int            `json:"requests"` // answered as expected
	Errors     int            `json:"errors"`
	ErrorKinds map[string]int `json:"error_kinds,omitempty"` // a few messages and how often each came
	PerSecond  float64        `json:"per_second"`            // requests over the time loads of this route ran
	MeanMS     float64        `json:"mean_ms"`
	P50MS      float64        `json:"p50_ms"`
	P90MS      float64        `json:"p90_ms"`
	P99MS      float64        `json:"p99_ms"`
	P999MS     float64        `json:"p999_ms"`
	MaxMS      float64        `json:"max_ms"`
}

// Millis turns a duration into fractional milliseconds.
func Millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// maxErrorKinds bounds the distinct error messages kept per route.
const maxErrorKinds = 10

// Recorder collects latencies and errors per route; it is safe for concurrent use, so a
// mixed load can record every route into one Recorder.
type Recorder struct {
	mu     sync.Mutex
	routes map[string]*routeRecord
	order  []string
}

type routeRecord struct {
	lat    []time.Duration
	errors int
	kinds  map[string]int
	busy   time.Duration // how long loads that included the route ran
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{routes: map[string]*routeRecord{}} }

func (r *Recorder) route(name string) *routeRecord {
	rr, ok := r.routes[name]
	if !ok {
		rr = &routeRecord{kinds: map[string]int{}}
		r.routes[name] = rr
		r.order = append(r.order, name)
	}
	return rr
}

// Observe records one request of route: its latency if err is nil, else the error.
func (r *Recorder) Observe(route string, d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rr := r.route(route)
	if err == nil {
		rr.lat = append(rr.lat, d)
		return
	}
	rr.errors++
	msg := err.Error()
	if _, seen := rr.kinds[msg]; seen || len(rr.kinds) < maxErrorKinds {
		rr.kinds[msg]++
	}
}

// addBusy counts d as time during which route was being loaded.
func (r *Recorder) addBusy(route string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.route(route).busy += d
}

// Routes lists the routes seen, in the order they first appeared.
func (r *Recorder) Routes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.order)
}

// Latencies returns a sorted copy of route's latencies.
func (r *Recorder) Latencies(route string) Latencies {
	r.mu.Lock()
	defer r.mu.Unlock()
	rr, ok := r.routes[route]
	if !ok {
		return nil
	}
	return Sorted(slices.Clone(rr.lat))
}

// Summary describes route.
func (r *Recorder) Summary(route string) Summary {
	lat := r.Latencies(route)
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Summary{Route: route, Requests: len(lat)}
	if rr, ok := r.routes[route]; ok {
		s.Errors = rr.errors
		if len(rr.kinds) > 0 {
			s.ErrorKinds = make(map[string]int, len(rr.kinds))
			for k, v := range rr.kinds {
				s.ErrorKinds[k] = v
			}
		}
		if rr.busy > 0 {
			s.PerSecond = float64(len(lat)) / rr.busy.Seconds()
		}
	}
	s.MeanMS, s.MaxMS = Millis(lat.Mean()), Millis(lat.Max())
	s.P50MS, s.P90MS = Millis(lat.Percentile(0.50)), Millis(lat.Percentile(0.90))
	s.P99MS, s.P999MS = Millis(lat.Percentile(0.99)), Millis(lat.Percentile(0.999))
	return s
}

// Summaries describes every route, in the order they first appeared.
func (r *Recorder) Summaries() []Summary {
	var out []Summary
	for _, route := range r.Routes() {
		out = append(out, r.Summary(route))
	}
	return out
}

// Err reports the failed requests of every route as one error, or nil if none failed.
func (r *Recorder) Err() error {
	var errs []error
	for _, s := range r.Summaries() {
		if s.Errors == 0 {
			continue
		}
		kinds := make([]string, 0, len(s.ErrorKinds))
		for k := range s.ErrorKinds {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		errs = append(errs, fmt.Errorf("%s: %d of %d requests failed, e.g. %s",
			s.Route, s.Errors, s.Errors+s.Requests, kinds[0]))
	}
	return errors.Join(errs...)
}
