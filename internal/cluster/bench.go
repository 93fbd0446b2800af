package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"relay/internal/bench"
	"relay/internal/sim"
)

// BenchKnobs are the simulators' knobs the topology benchmark runs with: a calendar API
// that takes 50 ms, as relay bench's merge scenarios.
const BenchKnobs = "c42:latency=50ms"

// BenchEnv are the relay settings the benchmark needs: submissions from many IPs are
// trusted as forwarded by a proxy and not throttled per client.
var BenchEnv = []string{"RELAY_TRUSTED_PROXIES=127.0.0.1/32", "RELAY_SUBMIT_RATE_LIMIT=100000", "RELAY_SUBMIT_BURST=100000"}

// Bench measures the topology (two servers, three workers, started with BenchKnobs and
// BenchEnv) and writes what it found to out, one line per measurement. It kills and
// restarts the Temporal server and stops two workers for a while, and leaves them running.
func Bench(ctx context.Context, c *Cluster, out io.Writer) error {
	if len(c.Servers) < 2 || len(c.Workers) < 3 {
		return errors.New("bench: needs two servers and three workers")
	}
	hc := &http.Client{Timeout: time.Minute}
	fmt.Fprintf(out, "topology: Temporal %s on PostgreSQL %s, %d relay servers, %d workers, knobs %q\n",
		c.FrontendAddr, c.opts.Postgres, len(c.Servers), len(c.Workers), BenchKnobs)

	// Merge misses across two servers: each event first asked on one server, then on the other.
	ids := calendarEventIDs()
	var misses []time.Duration
	for i, id := range ids {
		first, second := c.ServerURLs[i%2], c.ServerURLs[(i+1)%2]
		start := time.Now()
		if err := expect(hc, http.MethodGet, first+"/events-with-subscriptions/"+id, "", http.StatusOK); err != nil {
			return err
		}
		misses = append(misses, time.Since(start))
		if err := expect(hc, http.MethodGet, second+"/events-with-subscriptions/"+id, "", http.StatusOK); err != nil {
			return err
		}
	}
	fetches, err := c.CalendarFetches(ids...)
	if err != nil {
		return err
	}
	l := bench.Sorted(misses)
	fmt.Fprintf(out, "merge, %d events each asked on both servers: calendar API fetches per event %.2f (max %d)\n",
		len(ids), float64(sum(fetches))/float64(len(ids)), maxOf(fetches))
	fmt.Fprintf(out, "merge miss latency (calendar API 50 ms): p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms\n",
		bench.Millis(l.Percentile(0.5)), bench.Millis(l.Percentile(0.9)), bench.Millis(l.Percentile(0.99)), bench.Millis(l.Max()))

	// Submissions through both servers, 32 connections, 10 s.
	accepted, perSecond, err := submitLoad(ctx, hc, c.ServerURLs, 32, 10*time.Second, 200)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "submissions through two servers, 32 connections for 10 s: %.0f accepted/s\n", perSecond)
	// Located per second with 3 workers: the events just accepted, from 200 IPs (the first
	// call of each IP goes through the geolocation API's 5/s, the rest are cache hits).
	rate, took, err := locatedRate(ctx, hc, c.ServerURLs[0], accepted)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "located, 3 workers: %d events from 200 new IPs in %s: %.0f/s\n", len(accepted), took.Round(time.Millisecond), rate)

	// A backlog drained by 1 worker, then by 3: every worker stopped while events from
	// cached IPs are accepted, then the workers started; from their start to the last one
	// located. Cached IPs need no API call, so this measures relay, not the API's 5/s.
	for _, n := range []int{1, 3} {
		for _, w := range c.Workers {
			if err := w.Stop(45 * time.Second); err != nil {
				return err
			}
		}
		backlog, _, err := submitLoad(ctx, hc, c.ServerURLs, 32, 10*time.Second, 200)
		if err != nil {
			return err
		}
		start := time.Now()
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i, w := range c.Workers[:n] {
			wg.Go(func() { errs[i] = c.Restart(ctx, w) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		if _, _, err := locatedRate(ctx, hc, c.ServerURLs[0], backlog); err != nil {
			return err
		}
		took := time.Since(start)
		fmt.Fprintf(out, "backlog of %d events from cached IPs drained by %d worker(s) in %s (from their start): %.0f located/s\n",
			len(backlog), n, took.Round(time.Millisecond), float64(len(backlog))/took.Seconds())
	}
	// A Temporal server SIGKILL, restarted at once: how long until a merge miss (which
	// needs Temporal) is answered again, and whether submissions were ever refused.
	var refused atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			status, _ := do(hc, http.MethodPost, c.ServerURLs[i%2]+"/event/submit/", `{"name":"bench","status_code":200}`, fmt.Sprintf("9.8.%d.%d", (i%200)/250, (i%200)%250+1))
			if status != http.StatusAccepted {
				refused.Add(1)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	killed := time.Now()
	c.Temporal.Kill()
	if err := c.RestartTemporal(ctx); err != nil {
		return err
	}
	frontend := time.Since(killed)
	var back time.Duration
	for i := 0; ; i++ {
		status, _ := do(hc, http.MethodGet, c.ServerURLs[i%2]+"/events-with-subscriptions/"+sim.C42EventTeamSync+"x"+fmt.Sprint(i), "", "")
		// An id the calendar API does not know: 404 is the API's answer through a workflow.
		if status == http.StatusNotFound {
			back = time.Since(killed)
			break
		}
		if time.Since(killed) > 5*time.Minute {
			return fmt.Errorf("merges not answered 5 min after the Temporal kill (last %d)", status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	fmt.Fprintf(out, "Temporal server SIGKILL + restart: frontend up again after %.1f s, merges answered after %.1f s; submissions refused meanwhile: %d\n",
		frontend.Seconds(), back.Seconds(), refused.Load())
	return nil
}

func calendarEventIDs() []string {
	s, err := sim.New(sim.Upstreams()[sim.C42], "")
	if err != nil {
		panic(err)
	}
	ids := s.Routes().(*sim.C42API).EventIDs()
	return ids[:min(len(ids), 60)]
}

// CalendarFetches counts, for each event id, the calendar API's fetches of the event (not
// of its subscriptions), from relay sim's record of its calls.
func (c *Cluster) CalendarFetches(ids ...string) ([]int, error) {
	resp, err := http.Get(c.SimURLs[sim.C42] + "/_sim/calls")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var calls []sim.Call
	if err := json.NewDecoder(resp.Body).Decode(&calls); err != nil {
		return nil, err
	}
	per := map[string]int{}
	for _, call := range calls {
		p := strings.TrimSuffix(call.Path, "/")
		if i := strings.LastIndex(p, "/events/"); i >= 0 {
			per[p[i+len("/events/"):]]++
		}
	}
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = per[id]
	}
	return out, nil
}

// submitLoad posts events through the servers in turn from conns connections for d, from
// ips client addresses, and returns the accepted task ids and how many were accepted per second.
func submitLoad(ctx context.Context, hc *http.Client, servers []string, conns int, d time.Duration, ips int) ([]string, float64, error) {
	var mu sync.Mutex
	var ids []string
	var firstErr error
	var n atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := range conns {
		wg.Go(func() {
			for i := w; time.Now().Before(deadline) && ctx.Err() == nil; i += conns {
				status, body := do(hc, http.MethodPost, servers[i%len(servers)]+"/event/submit/",
					`{"name":"bench","status_code":200}`, fmt.Sprintf("9.8.%d.%d", (i%ips)/250, (i%ips)%250+1))
				if status != http.StatusAccepted {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("submit: %d %s", status, body)
					}
					mu.Unlock()
					return
				}
				_, after, _ := strings.Cut(body, `"task_id":"`)
				id, _, _ := strings.Cut(after, `"`)
				n.Add(1)
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return ids, float64(n.Load()) / d.Seconds(), firstErr
}

// locatedRate waits until every id is located (asking through base) and returns events
// per second from the call on. Each id is asked until it is located, in order: a located
// event stays located, so the last answer is when all were.
func locatedRate(ctx context.Context, hc *http.Client, base string, ids []string) (float64, time.Duration, error) {
	start := time.Now()
	for i := 0; i < len(ids); {
		status, body := do(hc, http.MethodGet, base+"/event/"+ids[i], "", "")
		if status == http.StatusOK && strings.Contains(body, `"state":"located"`) {
			i++
			continue
		}
		if strings.Contains(body, `"state":"unlocatable"`) {
			return 0, 0, fmt.Errorf("event %s ended unlocatable: %s", ids[i], body)
		}
		if time.Since(start) > 10*time.Minute {
			return 0, 0, fmt.Errorf("%d of %d events not located after 10 min", len(ids)-i, len(ids))
		}
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	took := time.Since(start)
	return float64(len(ids)) / took.Seconds(), took, nil
}

func do(hc *http.Client, method, url, body, forwardedFor string) (int, string) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	if forwardedFor != "" {
		req.Header.Set("X-Forwarded-For", forwardedFor)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func expect(hc *http.Client, method, url, body string, want int) error {
	status, got := do(hc, method, url, body, "")
	if status != want {
		return fmt.Errorf("%s %s: %d %.200s", method, url, status, got)
	}
	return nil
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

func maxOf(xs []int) int {
	m := 0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}
