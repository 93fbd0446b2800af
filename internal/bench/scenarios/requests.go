package scenarios

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"relay/internal/bench"
	"relay/internal/store"
)

// The requests of relay's four routes, for loads to mix.

// IncidentsGet is GET /incidents, wanting 200; with gzip it asks for the pre-compressed
// bytes and wants them (the client keeps them compressed, as a proxy would).
func IncidentsGet(route, baseURL string, gzip bool) bench.Request {
	r := bench.Get(route, baseURL+"/incidents")
	if gzip {
		r = r.WithHeader("Accept-Encoding", "gzip")
		r.Check = func(resp *http.Response, _ []byte) error {
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "gzip" {
				return fmt.Errorf("status %d, Content-Encoding %q", resp.StatusCode, resp.Header.Get("Content-Encoding"))
			}
			return nil
		}
	}
	return r
}

// EventGet is GET /events-with-subscriptions/{id} of the i-th of ids (cycling), wanting
// 200 with X-Cache as cache says ("HIT", "MISS", or "" for either).
func EventGet(route, baseURL string, ids []string, cache string) bench.Request {
	return bench.Request{
		Route: route,
		New: func(ctx context.Context, i int) (*http.Request, error) {
			return http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/events-with-subscriptions/"+ids[i%len(ids)], nil)
		},
		Check: func(resp *http.Response, _ []byte) error {
			got := resp.Header.Get("X-Cache")
			if resp.StatusCode != http.StatusOK || (cache != "" && got != cache) {
				return fmt.Errorf("status %d, X-Cache %q", resp.StatusCode, got)
			}
			return nil
		},
	}
}

// TaskIDs collects the task ids of accepted submissions; safe for concurrent use.
type TaskIDs struct {
	mu  sync.Mutex
	ids []string
}

func (t *TaskIDs) add(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ids = append(t.ids, id)
}

// All returns the ids collected so far.
func (t *TaskIDs) All() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string{}, t.ids...)
}

// DistinctIP gives every i a public address of its own.
func DistinctIP(i int) string { return fmt.Sprintf("11.%d.%d.%d", i>>16&255, i>>8&255, i&255) }

// Submit is POST /event/submit/ as sent by the client ipOf(i) names in X-Forwarded-For
// (relay must trust the loopback proxy: BehindLoopbackProxy), wanting 202; the task id
// of each accepted event goes to ids, if set.
func Submit(route, baseURL string, ipOf func(i int) string, ids *TaskIDs) bench.Request {
	return bench.Request{
		Route: route,
		New: func(ctx context.Context, i int) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/event/submit/",
				strings.NewReader(`{"name":"load","status_code":200}`))
			if err == nil {
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Forwarded-For", ipOf(i))
			}
			return req, err
		},
		KeepBody: true,
		Check: func(resp *http.Response, body []byte) error {
			if resp.StatusCode != http.StatusAccepted {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			var answer struct {
				Data struct {
					TaskID string `json:"task_id"`
				} `json:"data"`
			}
			if err := json.Unmarshal(body, &answer); err != nil || answer.Data.TaskID == "" {
				return fmt.Errorf("no task_id in %.100q", body)
			}
			if ids != nil {
				ids.add(answer.Data.TaskID)
			}
			return nil
		},
	}
}

// OutageSyncPost is POST /sites/{site}/outage-sync, wanting 202 (the sync started).
func OutageSyncPost(route, baseURL, site string) bench.Request {
	return bench.Request{
		Route: route,
		New: func(ctx context.Context, _ int) (*http.Request, error) {
			return http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/sites/"+site+"/outage-sync", nil)
		},
		Check: func(resp *http.Response, _ []byte) error {
			if resp.StatusCode != http.StatusAccepted {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		},
	}
}

// WaitDispatched waits until every accepted event has been dispatched (the outbox is
// empty), then checks each of ids is stored; it returns how long the outbox took to drain.
func WaitDispatched(ctx context.Context, st *store.Store, ids []string) (time.Duration, error) {
	start := time.Now()
	err := bench.Poll(ctx, "outbox drained", 5*time.Minute, 100*time.Millisecond, func() (bool, error) {
		n, err := st.UndispatchedEvents(ctx)
		return n == 0, err
	})
	if err != nil {
		return 0, err
	}
	drained := time.Since(start)
	for _, id := range ids {
		if _, err := st.Event(ctx, id); err != nil {
			return drained, fmt.Errorf("accepted event %s: %w", id, err)
		}
	}
	return drained, nil
}
