package activities

import (
	"context"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
)

// keepAlive heartbeats while an activity waits on an upstream or its rate limit, so that a
// worker that dies mid-call is noticed within the activity's HeartbeatTimeout (seconds),
// not its StartToClose (a minute), and the call is retried elsewhere that much sooner. It
// does nothing outside an activity or without a HeartbeatTimeout. Call the returned stop
// before returning.
func keepAlive(ctx context.Context) (stop func()) {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	timeout := activity.GetInfo(ctx).HeartbeatTimeout
	if timeout <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		// The SDK sends at most one heartbeat per 80% of the timeout; ticking at a third of
		// it keeps one always due.
		t := time.NewTicker(max(timeout/3, 100*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	})
	return func() { close(done); wg.Wait() }
}
