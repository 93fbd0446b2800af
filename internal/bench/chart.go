package bench

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// Scale maps an axis's values onto the page.
type Scale int

const (
	// Linear spaces values evenly, from 0 for the Y axis.
	Linear Scale = iota
	// Log spaces powers of ten evenly; for latencies that span orders of magnitude.
	Log
	// Nines is for percentiles from 0 to 1: 90%, 99% and 99.9% evenly spaced, so that
	// the tail gets as much room as the middle.
	Nines
)

// Point is one point of a series.
type Point struct{ X, Y float64 }

// Series is one line of a chart.
type Series struct {
	Label  string
	Points []Point
	// Step draws each point's value flat until the next point (counts per interval).
	Step bool
}

// Line is a horizontal reference line, such as a limit.
type Line struct {
	Y     float64
	Label string
}

// Chart is a line chart, drawn as a standalone SVG file with no script.
type Chart struct {
	Title          string
	XLabel, YLabel string
	XScale, YScale Scale
	Series         []Series
	Lines          []Line
	// YMax, if set, is included in the Y axis, so that charts meant to be compared share it.
	YMax float64
}

// PercentilePoints turns latencies into a distribution for a Nines axis: the latency
// (ms) at percentiles from 0 up to 1 - 1/n, the last one the data can tell apart.
func PercentilePoints(l Latencies) []Point {
	if len(l) == 0 {
		return nil
	}
	var pts []Point
	top := math.Log10(float64(len(l)))
	for x := 0.0; x <= top+1e-9; x += 0.02 {
		p := 1 - math.Pow(10, -x)
		pts = append(pts, Point{X: p, Y: Millis(l.Percentile(p))})
	}
	return pts
}

var palette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"}

const (
	chartW, chartH                  = 760, 470
	plotL, plotT, plotR, plotBottom = 78, 50, chartW - 28, chartH - 118
)

// axis maps data values to page coordinates along one direction.
type axis struct {
	scale    Scale
	lo, hi   float64 // in the scale's own space (log10 for Log, nines for Nines)
	from, to float64 // page coordinates of lo and hi
	ticks    []tick
}

type tick struct {
	v     float64 // in data space
	label string
}

func (a axis) tr(v float64) float64 {
	switch a.scale {
	case Log:
		v = math.Log10(math.Max(v, 1e-9))
	case Nines:
		v = nines(v)
	}
	return a.from + (v-a.lo)/(a.hi-a.lo)*(a.to-a.from)
}

func nines(p float64) float64 { return -math.Log10(math.Max(1-p, 1e-6)) }

// newAxis fits an axis to the values vs.
func newAxis(scale Scale, vs []float64, from, to float64) axis {
	a := axis{scale: scale, from: from, to: to}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range vs {
		if scale == Log && v <= 0 {
			continue
		}
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	if math.IsInf(lo, 1) {
		lo, hi = 0, 1
	}
	switch scale {
	case Log:
		a.lo, a.hi = math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
		if a.hi-a.lo < 1 {
			a.hi = a.lo + 1
		}
		for e := a.lo; e <= a.hi; e++ {
			for _, m := range []float64{1, 2, 5} {
				if v := m * math.Pow(10, e); math.Log10(v) <= a.hi+1e-9 {
					a.ticks = append(a.ticks, tick{v, strconv.FormatFloat(v, 'g', -1, 64)})
				}
			}
		}
	case Nines:
		a.lo, a.hi = 0, math.Max(math.Ceil(nines(hi)-1e-9), 1)
		for _, t := range []tick{{0, "0%"}, {0.5, "50%"}, {0.9, "90%"}, {0.99, "99%"}, {0.999, "99.9%"}, {0.9999, "99.99%"}, {0.99999, "99.999%"}} {
			if nines(t.v) <= a.hi+1e-9 {
				a.ticks = append(a.ticks, t)
			}
		}
	default:
		step := niceStep(math.Max(hi, 0) - math.Min(lo, 0))
		a.lo, a.hi = math.Min(0, math.Floor(lo/step)*step), math.Ceil(hi/step)*step
		if a.hi <= a.lo {
			a.hi = a.lo + step
		}
		for v := a.lo; v <= a.hi+step/2; v += step {
			a.ticks = append(a.ticks, tick{v, strconv.FormatFloat(v, 'g', 6, 64)})
		}
	}
	return a
}

// niceStep is a step of 1, 2 or 5 × 10^k giving about six ticks over span.
func niceStep(span float64) float64 {
	if span <= 0 {
		return 1
	}
	raw := span / 6
	e := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*e >= raw {
			return m * e
		}
	}
	return 10 * e
}

// SVG draws the chart.
func (c Chart) SVG() []byte {
	var xs, ys []float64
	for _, s := range c.Series {
		for i, p := range s.Points {
			xs, ys = append(xs, p.X), append(ys, p.Y)
			if s.Step && i == len(s.Points)-1 && i > 0 {
				xs = append(xs, p.X+(p.X-s.Points[i-1].X))
			}
		}
	}
	for _, l := range c.Lines {
		ys = append(ys, l.Y)
	}
	if c.YMax > 0 {
		ys = append(ys, c.YMax)
	}
	x := newAxis(c.XScale, xs, plotL, plotR)
	y := newAxis(c.YScale, ys, plotBottom, plotT)

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		chartW, chartH, chartW, chartH)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", chartW, chartH)
	fmt.Fprintf(&b, `<text x="%d" y="26" font-size="16" font-weight="bold">%s</text>`+"\n", plotL, esc(c.Title))

	// Grid and tick labels.
	for _, t := range y.ticks {
		py := y.tr(t.v)
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", plotL, plotR, py, py)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", plotL-6, py+4, esc(t.label))
	}
	for _, t := range x.ticks {
		px := x.tr(t.v)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#ddd"/>`+"\n", px, px, plotT, plotBottom)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", px, plotBottom+18, esc(t.label))
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n",
		plotL, plotT, plotR-plotL, plotBottom-plotT)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", (plotL+plotR)/2, plotBottom+40, esc(c.XLabel))
	fmt.Fprintf(&b, `<text transform="translate(20 %d) rotate(-90)" text-anchor="middle">%s</text>`+"\n", (plotT+plotBottom)/2, esc(c.YLabel))

	// Series, clipped to the plot.
	fmt.Fprintf(&b, `<clipPath id="plot"><rect x="%d" y="%d" width="%d" height="%d"/></clipPath>`+"\n",
		plotL, plotT-1, plotR-plotL, plotBottom-plotT+2)
	for i, s := range c.Series {
		var pts []string
		for j, p := range s.Points {
			px, py := x.tr(p.X), y.tr(p.Y)
			if s.Step && j > 0 {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", px, y.tr(s.Points[j-1].Y)))
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px, py))
			if s.Step && j == len(s.Points)-1 && j > 0 {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x.tr(p.X+(p.X-s.Points[j-1].X)), py))
			}
		}
		fmt.Fprintf(&b, `<polyline clip-path="url(#plot)" fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n",
			palette[i%len(palette)], strings.Join(pts, " "))
	}
	for _, l := range c.Lines {
		py := y.tr(l.Y)
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#d62728" stroke-width="2" stroke-dasharray="8 5"/>`+"\n",
			plotL, plotR, py, py)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="#d62728">%s</text>`+"\n", plotR-6, py-6, esc(l.Label))
	}

	// Legend, below the axis, three entries a row.
	for i, s := range c.Series {
		lx, ly := plotL+(i%3)*((plotR-plotL)/3), plotBottom+64+(i/3)*20
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n",
			lx, lx+24, ly-4, ly-4, palette[i%len(palette)])
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", lx+30, ly, esc(s.Label))
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

func esc(s string) string { return html.EscapeString(s) }
