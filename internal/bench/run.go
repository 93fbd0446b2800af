package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Scenario is one thing `relay bench` measures, relay against its baseline.
type Scenario struct {
	Name string
	// About says in one line what is measured, for --help.
	About string
	// Baseline says what relay is compared with, measured in the same run.
	Baseline string
	// Sizes are the sizes a full run measures, smallest first (a smoke run takes the
	// first); nil for a scenario without a size.
	Sizes []int
	// Run measures one size (0 without sizes) and adds its rows and charts to c.
	Run func(ctx context.Context, c *Case) error
}

// Case is one run of a scenario at one size: the scenario adds what it measured.
type Case struct {
	Scenario string
	Size     int
	// Smoke asks for a short run that shows the scenario works, not how fast.
	Smoke bool
	// Logger receives the logs of the relay under test.
	Logger *slog.Logger

	progress  io.Writer
	rows      []*Row
	charts    []namedChart
	latency   *Chart
	summaries []SeriesSummary
}

// Logf reports progress (not results) on the run's progress writer.
func (c *Case) Logf(format string, args ...any) {
	if c.progress != nil {
		fmt.Fprintf(c.progress, "  "+format+"\n", args...)
	}
}

// Add records a metric of relay's; chain Vs and Want to compare and judge it.
func (c *Case) Add(metric, unit string, relay float64) *Row {
	r := &Row{Scenario: c.Scenario, Size: c.Size, Metric: metric, Unit: unit, Relay: relay}
	c.rows = append(c.rows, r)
	return r
}

// Latency adds a series to the case's latency chart (percentile against latency) and its
// summary to the report.
func (c *Case) Latency(series string, rec *Recorder, route string) {
	lat := rec.Latencies(route)
	c.summaries = append(c.summaries, SeriesSummary{Series: series, Summary: rec.Summary(route)})
	if c.latency == nil {
		title := c.Scenario
		if c.Size > 0 {
			title += " (" + SizeLabel(c.Size) + ")"
		}
		c.latency = &Chart{Title: title + ": latency distribution", XLabel: "percentile", YLabel: "latency (ms)",
			XScale: Nines, YScale: Log}
	}
	c.latency.Series = append(c.latency.Series, Series{Label: series, Points: PercentilePoints(lat)})
}

// Chart adds a chart of the case's own, written as <scenario>[-<size>]-<kind>.svg.
func (c *Case) Chart(kind string, ch Chart) {
	c.charts = append(c.charts, namedChart{file: c.fileName(kind), chart: ch})
}

func (c *Case) fileName(kind string) string {
	name := c.Scenario
	if c.Size > 0 {
		name += "-" + strconv.Itoa(c.Size)
	}
	return name + "-" + kind + ".svg"
}

// Job is a scenario at the sizes to run.
type Job struct {
	Scenario Scenario
	Sizes    []int // [0] for a scenario without sizes
}

// Select picks the scenarios named in args (all when none), each written name or
// name:size[,size...]; a smoke run takes each one's smallest size unless sizes are named.
func Select(all []Scenario, args []string, smoke bool) ([]Job, error) {
	if len(args) == 0 {
		for _, s := range all {
			args = append(args, s.Name)
		}
	}
	var jobs []Job
	for _, arg := range args {
		name, sizeList, hasSizes := strings.Cut(arg, ":")
		i := slices.IndexFunc(all, func(s Scenario) bool { return s.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("unknown scenario %q (scenarios: %s)", name, names(all))
		}
		s := all[i]
		job := Job{Scenario: s, Sizes: s.Sizes}
		switch {
		case hasSizes && len(s.Sizes) == 0:
			return nil, fmt.Errorf("scenario %s has no sizes", name)
		case hasSizes:
			job.Sizes = nil
			for _, f := range strings.Split(sizeList, ",") {
				n, err := parseSize(f)
				if err != nil {
					return nil, fmt.Errorf("scenario %s: %w", name, err)
				}
				job.Sizes = append(job.Sizes, n)
			}
		case len(s.Sizes) == 0:
			job.Sizes = []int{0}
		case smoke:
			job.Sizes = s.Sizes[:1]
		}
		jobs = append(jobs, job)
	}
	return jobs, nil
}

// parseSize reads a size as SizeLabel writes it (100k, 1M) or as a plain number.
func parseSize(s string) (int, error) {
	s = strings.TrimSpace(s)
	unit := 1
	switch {
	case strings.HasSuffix(s, "k"):
		s, unit = strings.TrimSuffix(s, "k"), 1000
	case strings.HasSuffix(s, "M"):
		s, unit = strings.TrimSuffix(s, "M"), 1_000_000
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q is not a positive whole number (like 1000, 10k or 1M)", s)
	}
	return n * unit, nil
}

func names(all []Scenario) string {
	var ns []string
	for _, s := range all {
		ns = append(ns, s.Name)
	}
	return strings.Join(ns, ", ")
}

// Options shape a run.
type Options struct {
	Command  string    // how the run was started, for the report
	Smoke    bool      // short runs that show each scenario works
	Progress io.Writer // progress lines; nil for none
	Logger   *slog.Logger
}

// Run runs the jobs one after another (never side by side, so that they do not disturb
// each other) and reports them. A case that fails is reported and the run goes on.
func Run(ctx context.Context, jobs []Job, opts Options) *Report {
	r := &Report{Started: time.Now().UTC(), Command: opts.Command, Smoke: opts.Smoke, Machine: DescribeMachine(), LoadBefore: loadAverage()}
	logger := opts.Logger
	if logger == nil {
		// Relay formats its logs as a real process does, then drops them.
		logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	for _, job := range jobs {
		for _, size := range job.Sizes {
			if ctx.Err() != nil {
				break
			}
			c := &Case{Scenario: job.Scenario.Name, Size: size, Smoke: opts.Smoke, Logger: logger, progress: opts.Progress}
			res := CaseResult{Scenario: c.Scenario, Size: size, Baseline: job.Scenario.Baseline}
			if opts.Progress != nil {
				fmt.Fprintf(opts.Progress, "%s: %s\n", res.Label(), job.Scenario.About)
			}
			debug.FreeOSMemory() // what the case before left is not this one's memory
			start := time.Now()
			if err := job.Scenario.Run(ctx, c); err != nil {
				res.Error = err.Error()
				if opts.Progress != nil {
					fmt.Fprintf(opts.Progress, "  failed: %v\n", err)
				}
			}
			res.Seconds = time.Since(start).Seconds()
			res.Latencies = c.summaries
			r.Cases = append(r.Cases, res)
			for _, row := range c.rows {
				row.judge()
				r.Rows = append(r.Rows, *row)
			}
			if c.latency != nil {
				r.charts = append(r.charts, namedChart{file: c.fileName("latency"), chart: *c.latency})
			}
			r.charts = append(r.charts, c.charts...)
		}
	}
	r.LoadAfter = loadAverage()
	return r
}
