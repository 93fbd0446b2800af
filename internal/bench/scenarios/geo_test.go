package scenarios

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"relay/internal/bench"
	"relay/internal/sim"
)

// The geo-rate numbers come from the simulator's call log: a burst over the limit, a 429,
// and steady calls inside the window.
func TestCountGeoCalls(t *testing.T) {
	start := time.Unix(1000, 0)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	var calls []sim.Call
	for i := range 7 { // a burst of 7 within 0.6 s of the first clock second
		calls = append(calls, sim.Call{At: at(i * 100), Status: http.StatusOK})
	}
	calls[6].Status = http.StatusTooManyRequests
	for i := range 8 { // then 4 a second over the 2 s window [1 s, 3 s)
		calls = append(calls, sim.Call{At: at(1000 + i*250), Status: http.StatusOK})
	}

	got := countGeoCalls(calls, start, start.Add(time.Second), 2*time.Second, 5)
	assert.Equal(t, 7, got.busiest)
	assert.Equal(t, 1, got.over, "one clock second over 5")
	assert.Equal(t, 1, got.tooMany)
	assert.Equal(t, 4.0, got.sustained)
	assert.Equal(t, []bench.Point{{X: 0, Y: 7}, {X: 1, Y: 4}, {X: 2, Y: 4}}, got.perSecond)
}

func TestDistinctIPsArePublicAndDistinct(t *testing.T) {
	seen := map[string]bool{}
	for i := range 70_000 {
		ip := DistinctIP(i)
		assert.False(t, seen[ip], ip)
		seen[ip] = true
	}
	assert.Equal(t, "11.0.1.2", DistinctIP(258))
}
