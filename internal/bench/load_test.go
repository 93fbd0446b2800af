package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPercentileIsNearestRank(t *testing.T) {
	var l Latencies
	for i := 1; i <= 100; i++ {
		l = append(l, time.Duration(i)*time.Millisecond)
	}
	assert.Equal(t, time.Millisecond, l.Percentile(0))
	assert.Equal(t, 50*time.Millisecond, l.Percentile(0.5))
	assert.Equal(t, 99*time.Millisecond, l.Percentile(0.99))
	assert.Equal(t, 100*time.Millisecond, l.Percentile(0.999))
	assert.Equal(t, 100*time.Millisecond, l.Max())
	assert.Equal(t, 50500*time.Microsecond, l.Mean())
	assert.Zero(t, Latencies(nil).Percentile(0.5))
	assert.Equal(t, Latencies{1, 2, 3}, Sorted([]time.Duration{3, 1, 2}))
}

// countingServer answers 200 and counts requests, remembering whether any asked for gzip.
type countingServer struct {
	*httptest.Server
	n         atomic.Int64
	askedGzip atomic.Bool
}

func newCountingServer(t *testing.T, handle func(w http.ResponseWriter, r *http.Request)) *countingServer {
	s := &countingServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.n.Add(1)
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			s.askedGzip.Store(true)
		}
		if handle != nil {
			handle(w, r)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func TestClosedLoopStopsAtItsRequestCount(t *testing.T) {
	srv := newCountingServer(t, nil)
	rec := NewRecorder()
	require.NoError(t, ClosedLoop{Conns: 8, Requests: 300, Duration: time.Minute}.Run(context.Background(), rec, Get("r", srv.URL)))
	assert.EqualValues(t, 300, srv.n.Load())
	s := rec.Summary("r")
	assert.Equal(t, 300, s.Requests)
	assert.Zero(t, s.Errors)
	assert.Greater(t, s.PerSecond, 0.0)
	assert.False(t, srv.askedGzip.Load(), "the load's client must not ask for gzip on its own")
}

func TestClosedLoopStopsAtItsDuration(t *testing.T) {
	srv := newCountingServer(t, func(http.ResponseWriter, *http.Request) { time.Sleep(5 * time.Millisecond) })
	rec := NewRecorder()
	start := time.Now()
	require.NoError(t, ClosedLoop{Conns: 4, Duration: 200 * time.Millisecond, Warmup: 50 * time.Millisecond}.Run(context.Background(), rec, Get("r", srv.URL)))
	took := time.Since(start)
	assert.GreaterOrEqual(t, took, 250*time.Millisecond)
	assert.Less(t, took, 2*time.Second)
	s := rec.Summary("r")
	assert.Positive(t, s.Requests)
	assert.Less(t, int64(s.Requests), srv.n.Load(), "the warm-up is not recorded")
	assert.Zero(t, s.Errors, "requests cut off by the end are not failures")
	// Four connections, each at most one request per 5 ms: the rate cannot pass 800/s.
	assert.LessOrEqual(t, s.PerSecond, 4*200.0*1.05)
}

func TestMixSpreadsByWeightAndNumbersEachRequest(t *testing.T) {
	srv := newCountingServer(t, nil)
	var mu sync.Mutex
	seen := map[string][]int{}
	req := func(route string, weight int) Request {
		return Request{Route: route, Weight: weight, New: func(ctx context.Context, i int) (*http.Request, error) {
			mu.Lock()
			seen[route] = append(seen[route], i)
			mu.Unlock()
			return http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		}}
	}
	rec := NewRecorder()
	require.NoError(t, ClosedLoop{Conns: 1, Requests: 100}.Run(context.Background(), rec, req("a", 3), req("b", 1)))
	assert.Equal(t, 75, rec.Summary("a").Requests)
	assert.Equal(t, 25, rec.Summary("b").Requests)
	assert.Equal(t, []string{"a", "b"}, rec.Routes())
	assert.Len(t, seen["b"], 25)
	for i, n := range seen["b"] {
		assert.Equal(t, i, n, "each request counts its own calls from 0")
	}
}

func TestFailuresAreCountedNotTimed(t *testing.T) {
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	rec := NewRecorder()
	require.NoError(t, ClosedLoop{Conns: 2, Requests: 40}.Run(context.Background(), rec, Get("good", srv.URL+"/good"), Get("bad", srv.URL+"/bad")))
	bad := rec.Summary("bad")
	assert.Equal(t, 0, bad.Requests)
	assert.Equal(t, 20, bad.Errors)
	assert.Equal(t, map[string]int{"status 500": 20}, bad.ErrorKinds)
	assert.Equal(t, 20, rec.Summary("good").Requests)
	require.Error(t, rec.Err())
	assert.Contains(t, rec.Err().Error(), "bad: 20 of 20 requests failed, e.g. status 500")

	rec = NewRecorder()
	require.NoError(t, ClosedLoop{Conns: 1, Requests: 3}.Run(context.Background(), rec, Get("refused", "http://127.0.0.1:1/")))
	assert.Equal(t, 3, rec.Summary("refused").Errors)
}

// An open loop keeps its schedule while the server stalls, and times each request from
// when it was due: a stall shows in full in the latencies.
func TestOpenLoopKeepsItsScheduleAndTimesFromIt(t *testing.T) {
	const stall = 500 * time.Millisecond
	start := time.Now()
	var arrivals sync.Map
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		arrivals.Store(r.URL.Query().Get("i"), time.Since(start))
		if d := stall - time.Since(start); d > 0 {
			time.Sleep(d) // everything due in the first 500 ms waits until then
		}
	})
	req := Request{Route: "r", New: func(ctx context.Context, i int) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"?i="+strconv.Itoa(i), nil)
	}}
	rec := NewRecorder()
	start = time.Now()
	require.NoError(t, OpenLoop{Rate: 100, Duration: 600 * time.Millisecond}.Run(context.Background(), rec, req))
	s := rec.Summary("r")
	require.Equal(t, 60, s.Requests)
	// The first was due at 0 and answered at 500 ms, the 50th due at 490 ms waited 10 ms,
	// the last ten barely waited: the median is about 200 ms.
	assert.GreaterOrEqual(t, s.MaxMS, 450.0)
	assert.Less(t, s.MaxMS, 1500.0)
	assert.Greater(t, s.P50MS, 100.0)
	assert.Less(t, s.P50MS, 600.0)
	sent, ok := arrivals.Load("15")
	require.True(t, ok)
	assert.Less(t, sent.(time.Duration), stall, "request 15, due at 150 ms, was sent while the first were still stalled")
}

func TestOpenLoopAndClosedLoopNeedBounds(t *testing.T) {
	rec := NewRecorder()
	assert.Error(t, ClosedLoop{Conns: 1}.Run(context.Background(), rec, Get("r", "http://127.0.0.1:1")))
	assert.Error(t, OpenLoop{Rate: 10}.Run(context.Background(), rec, Get("r", "http://127.0.0.1:1")))
	assert.Error(t, OpenLoop{Rate: 10, Requests: 1}.Run(context.Background(), rec))
}

func TestRepeatTimesEachCall(t *testing.T) {
	rec := NewRecorder()
	require.NoError(t, Repeat(context.Background(), rec, "op", 5, func(context.Context, int) error {
		time.Sleep(2 * time.Millisecond)
		return nil
	}))
	s := rec.Summary("op")
	assert.Equal(t, 5, s.Requests)
	assert.GreaterOrEqual(t, s.P50MS, 2.0)
}

func TestPollWaitsForDoneOrGivesUp(t *testing.T) {
	n := 0
	require.NoError(t, Poll(context.Background(), "third call", time.Second, time.Millisecond, func() (bool, error) {
		n++
		return n == 3, nil
	}))
	assert.Equal(t, 3, n)
	err := Poll(context.Background(), "never", 20*time.Millisecond, time.Millisecond, func() (bool, error) { return false, nil })
	assert.ErrorContains(t, err, "never: not within 20ms")
}
