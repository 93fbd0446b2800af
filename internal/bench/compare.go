package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// SideBySide loads each of reqs alone, in turn, for rounds rounds, after a warm-up of
// each (load.Warmup), so that relay and its baseline meet the machine in the same state:
// a disturbance from outside lands on both. Each request's route collects its rounds.
func SideBySide(ctx context.Context, load ClosedLoop, rounds int, rec *Recorder, reqs ...Request) error {
	warm := ClosedLoop{Conns: load.Conns, Duration: load.Warmup, Timeout: load.Timeout}
	load.Warmup = 0
	for _, r := range reqs {
		if warm.Duration > 0 {
			if err := warm.Run(ctx, NewRecorder(), r); err != nil {
				return err
			}
		}
	}
	for range rounds {
		for _, r := range reqs {
			if err := load.Run(ctx, rec, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// Repeat runs op n times one after another and records each call's time under route:
// for what is not an HTTP request, such as a workflow from start to result.
func Repeat(ctx context.Context, rec *Recorder, route string, n int, op func(ctx context.Context, i int) error) error {
	start := time.Now()
	for i := range n {
		if err := ctx.Err(); err != nil {
			return err
		}
		t := time.Now()
		err := op(ctx, i)
		rec.Observe(route, time.Since(t), err)
	}
	rec.addBusy(route, time.Since(start))
	return nil
}

// ServeBytes serves body at path from a bare gin.New() on loopback, with no middleware:
// the ceiling relay's own handlers are measured against. It returns the URL and a stop.
func ServeBytes(path string, body []byte) (url string, stop func(), err error) {
	gin.SetMode(gin.ReleaseMode) // as relay's server runs
	bare := gin.New()
	bare.GET(path, func(c *gin.Context) { c.Data(http.StatusOK, "application/json; charset=utf-8", body) })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: bare, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	return "http://" + l.Addr().String() + path, func() { _ = srv.Close() }, nil
}

// Poll calls check every interval until it reports done or fails, ctx ends, or timeout
// passes: for waiting on what a load set going (a snapshot published, an outbox drained).
func Poll(ctx context.Context, what string, timeout, interval time.Duration, check func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		done, err := check()
		if err != nil || done {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v", what, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
