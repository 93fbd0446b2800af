// Package bench measures relay: load generators (closed-loop over N connections,
// open-loop at a fixed rate, both bounded by a request count and a duration), latency
// recording per route, results as a table and JSON against targets and baselines, and SVG
// charts. `relay bench` (scenarios in bench/scenarios) and the Go benchmarks build on it.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Request is one kind of request a load sends: what to ask and what a right answer is.
// A load given several mixes them by Weight, so one run can drive many routes at once.
type Request struct {
	// Route names the request in the Recorder, e.g. "GET /incidents".
	Route string
	// Weight is the request's share of a mix (0 counts as 1).
	Weight int
	// New builds the request; i counts this Request's calls from 0 within a run.
	New func(ctx context.Context, i int) (*http.Request, error)
	// KeepBody hands the body to Check; otherwise it is read and dropped unseen.
	KeepBody bool
	// Check says whether the answer is right; nil wants a 2xx.
	Check func(resp *http.Response, body []byte) error
}

// Get is a Request for GET url that wants a 200.
func Get(route, url string) Request {
	return Request{Route: route, New: func(ctx context.Context, _ int) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	}}
}

// WithHeader returns r with a header set on every request.
func (r Request) WithHeader(key, value string) Request {
	build := r.New
	r.New = func(ctx context.Context, i int) (*http.Request, error) {
		req, err := build(ctx, i)
		if err == nil {
			req.Header.Set(key, value)
		}
		return req, err
	}
	return r
}

// Client returns an HTTP client for load generation. Compression is off: Go's transport
// would otherwise ask for gzip on its own and unpack it, measuring the client instead of
// the server. (A request that sets Accept-Encoding itself still gets gzip, unpacked by no
// one, as a proxy would receive it.) conns bounds the connections kept open.
func Client(conns int, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		MaxConnsPerHost:     conns,
		MaxIdleConnsPerHost: conns,
		DisableCompression:  true,
	}}
}

// errStatus is a Check failure for an unexpected status.
func errStatus(resp *http.Response) error {
	return fmt.Errorf("status %d", resp.StatusCode)
}

// do sends one request and records it.
func (r Request) do(ctx context.Context, c *http.Client, rec *Recorder, i int, start time.Time) {
	req, err := r.New(ctx, i)
	if err != nil {
		rec.Observe(r.Route, 0, err)
		return
	}
	resp, err := c.Do(req)
	if err != nil {
		if ctx.Err() == nil { // a load cut short is not a failed request
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // the cause, without the URL, so that alike failures count as one kind
			}
			rec.Observe(r.Route, 0, err)
		}
		return
	}
	var body []byte
	if r.KeepBody {
		body, err = io.ReadAll(resp.Body)
	} else {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	resp.Body.Close()
	took := time.Since(start)
	switch {
	case err != nil && ctx.Err() != nil:
		return
	case err != nil:
		err = fmt.Errorf("read body: %w", err)
	case r.Check != nil:
		err = r.Check(resp, body)
	case resp.StatusCode/100 != 2:
		err = errStatus(resp)
	}
	rec.Observe(r.Route, took, err)
}

// mix picks the request for the n-th call of a run, spreading requests by weight, and
// numbers each request's own calls.
type mix struct {
	reqs    []Request
	slots   []int // request index for each slot of one turn
	counter []atomic.Int64
}

func newMix(reqs []Request) (*mix, error) {
	if len(reqs) == 0 {
		return nil, errors.New("bench: a load needs at least one request")
	}
	m := &mix{reqs: reqs, counter: make([]atomic.Int64, len(reqs))}
	for i, r := range reqs {
		if r.New == nil {
			return nil, fmt.Errorf("bench: request %q has no New", r.Route)
		}
		for range max(r.Weight, 1) {
			m.slots = append(m.slots, i)
		}
	}
	return m, nil
}

func (m *mix) pick(n int64) (Request, int) {
	i := m.slots[n%int64(len(m.slots))]
	return m.reqs[i], int(m.counter[i].Add(1) - 1)
}

func (m *mix) ran(rec *Recorder, d time.Duration) {
	for _, r := range m.reqs {
		rec.addBusy(r.Route, d)
	}
}

// ClosedLoop keeps Conns connections busy: each sends its next request as soon as the
// last is answered, so the rate is whatever the server sustains. It stops at Duration or
// after Requests requests in all, whichever comes first (either may be 0 for no bound,
// not both).
type ClosedLoop struct {
	Conns    int
	Duration time.Duration
	Requests int
	// Warmup, if set, runs the same load this long first, unrecorded.
	Warmup time.Duration
	// Timeout bounds each request (default 30 s).
	Timeout time.Duration
}

// Run drives the mix of reqs and records into rec.
func (l ClosedLoop) Run(parent context.Context, rec *Recorder, reqs ...Request) error {
	if l.Duration <= 0 && l.Requests <= 0 {
		return errors.New("bench: a closed loop needs a duration or a request count")
	}
	if l.Warmup > 0 {
		warm := l
		warm.Duration, warm.Requests, warm.Warmup = l.Warmup, 0, 0
		if err := warm.Run(parent, NewRecorder(), reqs...); err != nil {
			return err
		}
	}
	m, err := newMix(reqs)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(parent)
	if l.Duration > 0 {
		ctx, cancel = context.WithTimeout(parent, l.Duration) // running out of it is the normal end
	}
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range max(l.Conns, 1) {
		wg.Go(func() {
			// One client per connection, as that many separate callers would be.
			c := Client(1, orDefault(l.Timeout, 30*time.Second))
			defer c.CloseIdleConnections()
			for ctx.Err() == nil {
				n := next.Add(1) - 1
				if l.Requests > 0 && n >= int64(l.Requests) {
					return
				}
				req, i := m.pick(n)
				req.do(ctx, c, rec, i, time.Now())
			}
		})
	}
	wg.Wait()
	m.ran(rec, time.Since(start))
	return parent.Err()
}

// OpenLoop sends Rate requests a second, each on its schedule whatever happened to the
// ones before it, and measures each from its scheduled time, so that a stalled server
// shows in the latencies instead of slowing the load (no coordinated omission). It sends
// Requests requests, or Rate × Duration when Requests is 0, and then waits for the answers.
type OpenLoop struct {
	Rate     float64
	Duration time.Duration
	Requests int
	// Timeout bounds each request (default 30 s).
	Timeout time.Duration
}

// Run drives the mix of reqs and records into rec.
func (l OpenLoop) Run(ctx context.Context, rec *Recorder, reqs ...Request) error {
	n := l.Requests
	if n <= 0 {
		n = int(l.Rate * l.Duration.Seconds())
	}
	if !(l.Rate > 0) || n <= 0 {
		return errors.New("bench: an open loop needs a rate and a duration or a request count")
	}
	m, err := newMix(reqs)
	if err != nil {
		return err
	}
	c := Client(1024, orDefault(l.Timeout, 30*time.Second))
	defer c.CloseIdleConnections()
	interval := time.Duration(float64(time.Second) / l.Rate)
	var wg sync.WaitGroup
	start := time.Now()
	for k := range n {
		at := start.Add(time.Duration(k) * interval)
		if d := time.Until(at); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			break
		}
		req, i := m.pick(int64(k))
		wg.Go(func() { req.do(ctx, c, rec, i, at) })
	}
	wg.Wait()
	m.ran(rec, time.Since(start))
	return ctx.Err()
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
