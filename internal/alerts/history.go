package alerts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// History is a small in-memory time series store for the PromQL engine: the samples of
// some metrics over the last retention, appended one scrape at a time. Prometheus's TSDB
// would do, but it brings a write-ahead log, compaction and a directory for what is here a
// few hundred series over half an hour.
//
// A scrape is read with Prometheus's own text parser, so the series are named exactly as
// Prometheus names them when it scrapes /metrics; a series missing from a scrape gets a
// staleness marker, as Prometheus writes one.
type History struct {
	keep      map[string]bool // metric names kept; nil keeps all
	retention time.Duration

	mu     sync.RWMutex
	series map[uint64]*memSeries
}

type memSeries struct {
	lset    labels.Labels
	samples []fpoint // by time
}

// NewHistory keeps the samples of the metrics named (all of them if none) for retention.
func NewHistory(retention time.Duration, metrics ...string) *History {
	h := &History{retention: retention, series: map[uint64]*memSeries{}}
	if len(metrics) > 0 {
		h.keep = map[string]bool{}
		for _, m := range metrics {
			h.keep[m] = true
		}
	}
	return h
}

// textFormat is the Prometheus text exposition format's content type.
const textFormat = "text/plain; version=0.0.4; charset=utf-8"

// AppendScrape adds one scrape in the text format, taken at ts, and drops what is older
// than the retention.
func (h *History) AppendScrape(body []byte, ts time.Time) error {
	p, err := textparse.New(body, textFormat, nil, textparse.ParserOptions{})
	if err != nil {
		return fmt.Errorf("parse metrics: %w", err)
	}
	t := timestamp.FromTime(ts)
	type point struct {
		lset labels.Labels
		v    float64
	}
	var scraped []point
	for {
		entry, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("parse metrics: %w", err)
		}
		if entry != textparse.EntrySeries {
			continue
		}
		_, _, v := p.Series()
		var lset labels.Labels
		p.Labels(&lset)
		if h.keep != nil && !h.keep[lset.Get(labels.MetricName)] {
			continue
		}
		scraped = append(scraped, point{lset, v})
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	seen := make(map[uint64]bool, len(scraped))
	for _, pt := range scraped {
		hash := pt.lset.Hash()
		seen[hash] = true
		s := h.series[hash]
		if s == nil {
			s = &memSeries{lset: pt.lset}
			h.series[hash] = s
		}
		s.add(t, pt.v)
	}
	minT := timestamp.FromTime(ts.Add(-h.retention))
	for hash, s := range h.series {
		i, _ := slices.BinarySearchFunc(s.samples, minT, func(p fpoint, t int64) int { return cmpInt(p.t, t) })
		s.samples = slices.Delete(s.samples, 0, i)
		switch {
		case len(s.samples) == 0:
			delete(h.series, hash)
		case !seen[hash] && !value.IsStaleNaN(s.samples[len(s.samples)-1].f):
			s.add(t, math.Float64frombits(value.StaleNaN)) // gone from this scrape
		}
	}
	return nil
}

// add appends a sample; one not after the last (a clock that stepped back) is dropped.
func (s *memSeries) add(t int64, v float64) {
	if n := len(s.samples); n > 0 && s.samples[n-1].t >= t {
		return
	}
	s.samples = append(s.samples, fpoint{t: t, f: v})
}

// Series counts the series held, for tests and the log.
func (h *History) Series() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.series)
}

// Querier implements storage.Queryable for the PromQL engine.
func (h *History) Querier(mint, maxt int64) (storage.Querier, error) {
	return &historyQuerier{h: h, mint: mint, maxt: maxt}, nil
}

type historyQuerier struct {
	h          *History
	mint, maxt int64
}

func (q *historyQuerier) Select(_ context.Context, sortSeries bool, hints *storage.SelectHints, matchers ...*labels.Matcher) storage.SeriesSet {
	mint, maxt := q.mint, q.maxt
	if hints != nil {
		mint, maxt = hints.Start, hints.End
	}
	q.h.mu.RLock()
	defer q.h.mu.RUnlock()
	var out []storage.Series
	for _, s := range q.h.series {
		if !matchesAll(s.lset, matchers) {
			continue
		}
		var samples []chunks.Sample
		for _, p := range s.samples {
			if p.t >= mint && p.t <= maxt {
				samples = append(samples, p) // a copy: appends after this do not show
			}
		}
		if len(samples) > 0 {
			out = append(out, storage.NewListSeries(s.lset, samples))
		}
	}
	if sortSeries {
		slices.SortFunc(out, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	}
	return &seriesSet{series: out, i: -1}
}

func matchesAll(lset labels.Labels, matchers []*labels.Matcher) bool {
	for _, m := range matchers {
		if !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}

// LabelValues and LabelNames are not used by rule evaluation; they answer nothing.
func (q *historyQuerier) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (q *historyQuerier) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (q *historyQuerier) Close() error { return nil }

type seriesSet struct {
	series []storage.Series
	i      int
}

func (s *seriesSet) Next() bool                        { s.i++; return s.i < len(s.series) }
func (s *seriesSet) At() storage.Series                { return s.series[s.i] }
func (s *seriesSet) Err() error                        { return nil }
func (s *seriesSet) Warnings() annotations.Annotations { return nil }

// fpoint is a float sample: relay exports no native histograms.
type fpoint struct {
	t int64
	f float64
}

func (p fpoint) T() int64                      { return p.t }
func (p fpoint) ST() int64                     { return 0 }
func (p fpoint) F() float64                    { return p.f }
func (p fpoint) H() *histogram.Histogram       { return nil }
func (p fpoint) FH() *histogram.FloatHistogram { return nil }
func (p fpoint) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (p fpoint) Copy() chunks.Sample           { return p }

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
