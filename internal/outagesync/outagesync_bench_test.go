package outagesync

import (
	"testing"
	"time"
)

// BenchmarkFilter filters 1,000,000 outages against a site of 10,000 devices; the target is
// at least 2 million outages/s on one core (`relay bench outage-filter` measures it at three
// sizes against the target; this benchmark is the one to profile):
//
//	go test ./internal/outagesync -run '^$' -bench Filter -benchtime 20x -cpu 1
func BenchmarkFilter(b *testing.B) {
	since := time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)
	devices, list := Sample(10_000, 2_000, 1_000_000, since)
	b.ReportAllocs()
	var kept int
	for b.Loop() {
		out, c := Filter(since, devices, list)
		kept = len(out)
		if c.Kept != kept || c.Fetched != len(list) {
			b.Fatalf("counts %+v, %d kept", c, kept)
		}
	}
	b.ReportMetric(float64(len(list))*float64(b.N)/b.Elapsed().Seconds(), "outages/s")
	b.ReportMetric(float64(kept), "kept")
}
