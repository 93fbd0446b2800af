package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Row is one measured metric: relay's value, the baseline's measured in the same run,
// their ratio, and the target it is held to.
type Row struct {
	Scenario string   `json:"scenario"`
	Size     int      `json:"size,omitempty"`
	Metric   string   `json:"metric"`
	Unit     string   `json:"unit,omitempty"`
	Relay    float64  `json:"relay"`
	Baseline *float64 `json:"baseline"` // null without one
	Ratio    *float64 `json:"ratio"`    // relay ÷ baseline
	Target   string   `json:"target,omitempty"`
	Pass     *bool    `json:"pass"` // null without a target

	target *Target
}

// Vs sets the baseline's value of the same metric.
func (r *Row) Vs(baseline float64) *Row {
	r.Baseline = &baseline
	r.Ratio = nil
	if baseline != 0 {
		ratio := r.Relay / baseline
		r.Ratio = &ratio
	}
	return r
}

// Want holds the row to a target.
func (r *Row) Want(t Target) *Row {
	r.target = &t
	return r
}

// judge fills Target and Pass from the target, if any.
func (r *Row) judge() {
	if r.target == nil {
		return
	}
	r.Target = r.target.text(r.Unit)
	pass := r.target.ok(*r)
	r.Pass = &pass
}

// Target is what a metric must reach.
type Target struct {
	text func(unit string) string
	ok   func(Row) bool
}

// AtMost wants relay's value ≤ v, in the row's unit.
func AtMost(v float64) Target {
	return Target{func(u string) string { return "≤ " + withUnit(v, u) }, func(r Row) bool { return r.Relay <= v }}
}

// AtLeast wants relay's value ≥ v, in the row's unit.
func AtLeast(v float64) Target {
	return Target{func(u string) string { return "≥ " + withUnit(v, u) }, func(r Row) bool { return r.Relay >= v }}
}

// RatioAtLeast wants relay ÷ baseline ≥ x.
func RatioAtLeast(x float64) Target {
	return Target{func(string) string { return "≥ " + ratio(x) + " baseline" },
		func(r Row) bool { return r.Ratio != nil && *r.Ratio >= x }}
}

// RatioAtMost wants relay ÷ baseline ≤ x.
func RatioAtMost(x float64) Target {
	return Target{func(string) string { return "≤ " + ratio(x) + " baseline" },
		func(r Row) bool { return r.Ratio != nil && *r.Ratio <= x }}
}

// Num formats a measured number with about three significant digits, thousands separated.
func Num(v float64) string {
	a := math.Abs(v)
	switch {
	case v == 0:
		return "0"
	case a >= 1000:
		s := strconv.FormatFloat(math.Round(a), 'f', 0, 64)
		for i := len(s) - 3; i > 0; i -= 3 {
			s = s[:i] + "," + s[i:]
		}
		if v < 0 {
			s = "-" + s
		}
		return s
	case a >= 100 || v == math.Trunc(v): // whole numbers (counts, round targets) as they are
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

func withUnit(v float64, unit string) string {
	if unit == "" {
		return Num(v)
	}
	return Num(v) + " " + unit
}

func ratio(x float64) string {
	switch {
	case x >= 100:
		return strconv.FormatFloat(x, 'f', 0, 64) + "×"
	case x >= 10:
		return strconv.FormatFloat(x, 'f', 1, 64) + "×"
	case x >= 0.1 || x == 0:
		return strconv.FormatFloat(x, 'f', 2, 64) + "×"
	default:
		return strconv.FormatFloat(x, 'g', 2, 64) + "×"
	}
}

// SizeLabel writes a size as 1k, 10k, 100k, 1M.
func SizeLabel(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "M"
	case n >= 1000 && n%1000 == 0:
		return strconv.Itoa(n/1000) + "k"
	default:
		return strconv.Itoa(n)
	}
}

// CaseResult is how one scenario at one size went.
type CaseResult struct {
	Scenario  string          `json:"scenario"`
	Size      int             `json:"size,omitempty"`
	Baseline  string          `json:"baseline,omitempty"` // what relay was compared with
	Seconds   float64         `json:"seconds"`
	Error     string          `json:"error,omitempty"`
	Latencies []SeriesSummary `json:"latencies,omitempty"`
}

// SeriesSummary is a Summary under the name a chart gives its series.
type SeriesSummary struct {
	Series string `json:"series"`
	Summary
}

// Label is the case's name in the table: the scenario and its size.
func (c CaseResult) Label() string {
	if c.Size == 0 {
		return c.Scenario
	}
	return c.Scenario + " " + SizeLabel(c.Size)
}

// Report is a whole run: every case's rows, summaries and charts.
type Report struct {
	Started    time.Time    `json:"started"`
	Command    string       `json:"command"`
	Smoke      bool         `json:"smoke"`
	Machine    Machine      `json:"machine"`
	LoadBefore string       `json:"load_before"` // /proc/loadavg: others' work on a shared machine shows here
	LoadAfter  string       `json:"load_after"`
	Cases      []CaseResult `json:"cases"`
	Rows       []Row        `json:"rows"`
	Charts     []string     `json:"charts,omitempty"` // file names, written next to the JSON

	charts []namedChart
}

type namedChart struct {
	file  string
	chart Chart
}

// Failed lists the cases that ended in an error.
func (r *Report) Failed() []CaseResult {
	var out []CaseResult
	for _, c := range r.Cases {
		if c.Error != "" {
			out = append(out, c)
		}
	}
	return out
}

// Missed counts the rows whose target was not met.
func (r *Report) Missed() int {
	n := 0
	for _, row := range r.Rows {
		if row.Pass != nil && !*row.Pass {
			n++
		}
	}
	return n
}

// WriteTable prints the rows as a table, then what each baseline is, then the failures.
func (r *Report) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tmetric\trelay\tbaseline\tratio\ttarget\tpass")
	for _, row := range r.Rows {
		label := CaseResult{Scenario: row.Scenario, Size: row.Size}.Label()
		base, rat, pass := "—", "—", "—"
		if row.Baseline != nil {
			base = withUnit(*row.Baseline, row.Unit)
		}
		if row.Ratio != nil {
			rat = ratio(*row.Ratio)
		}
		if row.Pass != nil {
			pass = map[bool]string{true: "yes", false: "NO"}[*row.Pass]
		}
		target := row.Target
		if target == "" {
			target = "—"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", label, row.Metric, withUnit(row.Relay, row.Unit), base, rat, target, pass)
	}
	tw.Flush()
	seen := map[string]bool{}
	var legend []string
	for _, c := range r.Cases {
		if c.Baseline != "" && !seen[c.Scenario] {
			seen[c.Scenario] = true
			legend = append(legend, fmt.Sprintf("  %s: %s", c.Scenario, c.Baseline))
		}
	}
	if len(legend) > 0 {
		fmt.Fprintf(w, "\nbaselines (measured in the same run):\n%s\n", strings.Join(legend, "\n"))
	}
	for _, c := range r.Failed() {
		fmt.Fprintf(w, "\nFAILED %s: %s\n", c.Label(), c.Error)
	}
	fmt.Fprintf(w, "\n%d cases, %d failed; %d of %d targets met.\n",
		len(r.Cases), len(r.Failed()), r.targets()-r.Missed(), r.targets())
	fmt.Fprintf(w, "machine: %s; load average %s before, %s after\n", r.Machine, r.LoadBefore, r.LoadAfter)
}

func (r *Report) targets() int {
	n := 0
	for _, row := range r.Rows {
		if row.Pass != nil {
			n++
		}
	}
	return n
}

// WriteCharts writes every chart as an SVG file into dir and lists them in the report.
func (r *Report) WriteCharts(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	r.Charts = nil
	for _, nc := range r.charts {
		if err := os.WriteFile(filepath.Join(dir, nc.file), nc.chart.SVG(), 0o644); err != nil {
			return err
		}
		r.Charts = append(r.Charts, nc.file)
	}
	return nil
}

// WriteJSON writes the report, indented, to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
