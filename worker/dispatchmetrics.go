package worker

import "github.com/prometheus/client_golang/prometheus"

// What became of dispatched events (relay_geolocate_dispatched_events_total's outcome).
const (
	outcomeCache        = "cache"         // located from the cache, without Temporal
	outcomeUnplaceable  = "unplaceable"   // an IP nobody can place: unlocatable at once
	outcomeSignalled    = "signalled"     // handed to the IP's lookup
	outcomeRedriven     = "redriven"      // handed again: the lease ran out and no lookup ran
	outcomeStillRunning = "still-running" // the lease ran out while the IP's lookup runs
	outcomeFailed       = "failed"        // Temporal refused the signal; tried again soon
)

// DispatchMetrics count the dispatcher's work for /metrics.
type DispatchMetrics struct {
	events  *prometheus.CounterVec
	signals prometheus.Counter
}

// NewDispatchMetrics registers the dispatcher's metrics on reg (nil: counted nowhere).
func NewDispatchMetrics(reg prometheus.Registerer) *DispatchMetrics {
	m := &DispatchMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_geolocate_dispatched_events_total",
			Help: "Accepted events the dispatcher handled, by outcome (cache, unplaceable, signalled, redriven, still-running, failed).",
		}, []string{"outcome"}),
		signals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relay_geolocate_signals_total",
			Help: "Signal-with-starts of Geolocate workflows the dispatcher issued (one per IP per batch).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.events, m.signals)
	}
	for _, o := range []string{outcomeCache, outcomeUnplaceable, outcomeSignalled, outcomeRedriven, outcomeStillRunning, outcomeFailed} {
		m.events.WithLabelValues(o)
	}
	return m
}

func (m *DispatchMetrics) add(outcome string, n int) {
	if m != nil && n > 0 {
		m.events.WithLabelValues(outcome).Add(float64(n))
	}
}

func (m *DispatchMetrics) signal() {
	if m != nil {
		m.signals.Inc()
	}
}
