package server

import (
	"embed"
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"

	"relay/internal/store"
)

//go:embed status.html.tmpl
var statusFS embed.FS

var statusTemplate = template.Must(template.New("status.html.tmpl").Funcs(template.FuncMap{
	"num":   formatInt,
	"int64": func(n int) int64 { return int64(n) },
	"bytes": formatBytes,
	"dur":   formatDuration,
	"pct":   func(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) },
	"rate":  func(f float64) string { return fmt.Sprintf("%.2f", f) },
	"f1":    func(f float64) string { return fmt.Sprintf("%.1f", f) },
	"utc":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"clock": func(t time.Time) string { return t.UTC().Format("15:04:05") },
}).ParseFS(statusFS, "status.html.tmpl"))

type durationChart struct {
	Width, Height int
	Bars          []chartBar
	Max           time.Duration
}

type chartBar struct {
	X, Y, W, H float64
	Class      string
	Title      string
}

type geoChart struct {
	Width, Height  int
	Left, Bottom   float64 // the plot area's edges
	Bars           []chartBar
	LimitY         float64
	Ticks          []chartTick
	XLabels        []chartTick
	LimitLabelY    float64
	PlotTop, Right float64
}

type chartTick struct {
	X, Y  float64
	Label string
}

// geoStats sums the calls per second of the window ending at now and draws them.
func geoStats(counts []store.CallCount, now time.Time, limit float64) geoPanel {
	out := geoPanel{Limit: limit, Window: geoWindow}
	lastMinute := 0
	for _, c := range counts {
		out.Total += c.Calls
		out.Peak = max(out.Peak, c.Calls)
		if now.Sub(c.Second) <= time.Minute {
			lastMinute += c.Calls
		}
	}
	out.LastMinute = float64(lastMinute) / 60
	out.Chart = drawGeoChart(counts, now, limit)
	return out
}

func drawGeoChart(counts []store.CallCount, now time.Time, limit float64) geoChart {
	const width, height, left, right, top, bottom = 1180, 190, 34.0, 1170.0, 14.0, 166.0
	seconds := int(geoWindow.Seconds())
	yMax := int(math.Ceil(math.Max(limit*1.25, 1)))
	for _, c := range counts {
		yMax = max(yMax, c.Calls+1)
	}
	y := func(v float64) float64 { return bottom - (bottom-top)*v/float64(yMax) }
	start := now.Add(-geoWindow)
	barW := (right - left) / float64(seconds)
	ch := geoChart{Width: width, Height: height, Left: left, Right: right, Bottom: bottom, PlotTop: top,
		LimitY: y(limit), LimitLabelY: y(limit) - 4}
	for _, c := range counts {
		i := int(c.Second.Sub(start.Truncate(time.Second)) / time.Second)
		if i < 0 || i > seconds {
			continue
		}
		class := "bar"
		if float64(c.Calls) > limit {
			class = "bar over"
		}
		ch.Bars = append(ch.Bars, chartBar{
			X: left + float64(min(i, seconds-1))*barW, Y: y(float64(c.Calls)), W: math.Max(barW-0.3, 0.8),
			H: bottom - y(float64(c.Calls)), Class: class,
			Title: fmt.Sprintf("%s: %d calls", c.Second.UTC().Format("15:04:05"), c.Calls),
		})
	}
	for _, v := range []int{0, yMax / 2, yMax} {
		ch.Ticks = append(ch.Ticks, chartTick{X: left - 6, Y: y(float64(v)) + 4, Label: fmt.Sprint(v)})
	}
	minutes := int(geoWindow.Minutes())
	for m := 0; m <= minutes; m++ {
		label := fmt.Sprintf("-%d min", minutes-m)
		if m == minutes {
			label = "now"
		}
		ch.XLabels = append(ch.XLabels, chartTick{X: left + (right-left)*float64(m)/geoWindow.Minutes(), Y: bottom + 16, Label: label})
	}
	return ch
}

// drawDurations is a bar per listed run, oldest on the left, as tall as it took.
func drawDurations(runs []runRow) durationChart {
	const width, height, gap = 180, 36, 6.0
	ch := durationChart{Width: width, Height: height}
	for _, r := range runs {
		ch.Max = max(ch.Max, r.Duration)
	}
	if len(runs) == 0 || ch.Max <= 0 {
		return ch
	}
	barW := (width - gap*float64(statusRuns-1)) / float64(statusRuns)
	for i := range runs {
		r := runs[len(runs)-1-i]
		h := math.Max(2, (height-2)*float64(r.Duration)/float64(ch.Max))
		ch.Bars = append(ch.Bars, chartBar{
			X: float64(i) * (barW + gap), Y: height - h, W: barW, H: h, Class: "bar " + r.Status,
			Title: fmt.Sprintf("%s %s: %s", r.WorkflowID, r.Status, formatDuration(r.Duration)),
		})
	}
	return ch
}

// formatInt writes n with thousands separators: 1,234,567.
func formatInt(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func formatBytes(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%d B", n)
	}
}

// formatDuration is short and human: 850 ms, 2.4 s, 3 min 5 s, 2 h 10 min.
func formatDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "0 ms"
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d < time.Hour && int(d.Seconds())%60 == 0:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < time.Hour:
		return fmt.Sprintf("%d min %d s", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	}
}
