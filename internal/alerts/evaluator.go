package alerts

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/template"
)

// Alert states, as Prometheus names them.
const (
	StatePending = "pending" // the expression holds, not yet for its `for:`
	StateFiring  = "firing"
)

// Alert is one active alert: a rule whose expression holds for one label set.
type Alert struct {
	Name        string
	State       string
	Labels      map[string]string // the series' labels and the rule's, without alertname
	Annotations map[string]string // templates expanded
	ActiveAt    time.Time         // since when the expression holds
	Value       float64
}

// Summary is the alert's summary annotation, or its name.
func (a Alert) Summary() string {
	if s := a.Annotations["summary"]; s != "" {
		return s
	}
	return a.Name
}

// SortAlerts orders alerts firing first, then by name and labels.
func SortAlerts(as []Alert) {
	slices.SortFunc(as, func(a, b Alert) int {
		if a.State != b.State {
			if a.State == StateFiring {
				return -1
			}
			if b.State == StateFiring {
				return 1
			}
		}
		return cmp.Or(strings.Compare(a.Name, b.Name),
			labels.Compare(labels.FromMap(a.Labels), labels.FromMap(b.Labels)))
	})
}

// DefaultInterval is how often the Evaluator gathers and evaluates: Prometheus's default
// evaluation interval is 1m, compose's 5s; 15 s keeps the status page (which reloads
// every 10 s) close without gathering the whole registry too often.
const DefaultInterval = 15 * time.Second

// lookback is how far back an instant selector looks: Prometheus's default.
const lookback = 5 * time.Minute

// Evaluator evaluates alerting rules against one process's own metrics. Step gathers the
// registry into its History and evaluates every rule at that instant; Run steps every
// interval. An alert is pending from the first evaluation at which its expression
// returns its label set, and firing once it has held for the rule's `for:` (at once
// without one); it ends at the first evaluation without it. These are Prometheus's rules
// (rules.AlertingRule), which the tests compare it with.
type Evaluator struct {
	rules    []Rule
	gatherer prometheus.Gatherer
	history  *History
	engine   *promql.Engine
	logger   *slog.Logger

	mu      sync.Mutex
	active  []map[uint64]*Alert // per rule, by label set
	evalErr error               // of the last Step
	stepped bool
}

// NewEvaluator evaluates rules against what g gathers, keeping the history the rules read.
func NewEvaluator(rules []Rule, g prometheus.Gatherer, logger *slog.Logger) *Evaluator {
	e := &Evaluator{
		rules:    rules,
		gatherer: g,
		history:  NewHistory(LongestRange(rules)+lookback+2*DefaultInterval, MetricNames(rules)...),
		engine: promql.NewEngine(promql.EngineOpts{
			Logger: logger, MaxSamples: 1_000_000, Timeout: 10 * time.Second, LookbackDelta: lookback,
		}),
		logger: logger,
		active: make([]map[uint64]*Alert, len(rules)),
	}
	for i := range e.active {
		e.active[i] = map[uint64]*Alert{}
	}
	return e
}

// History is what the Evaluator has gathered.
func (e *Evaluator) History() *History { return e.history }

// Run steps every interval until ctx ends; a failed step is logged and the next one tried.
func (e *Evaluator) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := e.Step(ctx, time.Now()); err != nil && ctx.Err() == nil {
			e.logger.Warn("alert rules: evaluation failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Step gathers the metrics as of ts and evaluates every rule at ts.
func (e *Evaluator) Step(ctx context.Context, ts time.Time) error {
	body, err := gatherText(e.gatherer)
	if err != nil {
		return e.fail(err)
	}
	if err := e.history.AppendScrape(body, ts); err != nil {
		return e.fail(err)
	}
	return e.Eval(ctx, ts)
}

func (e *Evaluator) fail(err error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.evalErr = err
	return err
}

// Eval evaluates every rule at ts against the history as it is (the tests fill it).
func (e *Evaluator) Eval(ctx context.Context, ts time.Time) error {
	var errs []error
	next := make([]map[uint64]*Alert, len(e.rules))
	for i, r := range e.rules {
		results, err := e.evalRule(ctx, r, ts)
		if err != nil {
			errs = append(errs, fmt.Errorf("alert %s: %w", r.Name, err))
			next[i] = e.activeOf(i) // an evaluation that failed changes nothing
			continue
		}
		next[i] = e.advance(i, r, results, ts)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.active, e.stepped, e.evalErr = next, true, nil
	if len(errs) > 0 {
		e.evalErr = fmt.Errorf("alert rules: %w", errors.Join(errs...))
	}
	return e.evalErr
}

func (e *Evaluator) activeOf(i int) map[uint64]*Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.active[i]
}

// evalRule runs the rule's query at ts and labels each result as Prometheus would.
func (e *Evaluator) evalRule(ctx context.Context, r Rule, ts time.Time) ([]*Alert, error) {
	vec, err := e.query(ctx, r.Expr.String(), ts)
	if err != nil {
		return nil, err
	}
	out := make([]*Alert, 0, len(vec))
	for _, s := range vec {
		expand := e.expander(ctx, r, s, ts)
		lb := labels.NewBuilder(s.Metric)
		lb.Del(labels.MetricName)
		for k, v := range r.Labels {
			lb.Set(k, expand(v))
		}
		a := &Alert{Name: r.Name, Labels: lb.Labels().Map(), Annotations: map[string]string{}, Value: s.F}
		for k, v := range r.Annotations {
			a.Annotations[k] = expand(v)
		}
		out = append(out, a)
	}
	return out, nil
}

func (e *Evaluator) query(ctx context.Context, q string, ts time.Time) (promql.Vector, error) {
	qry, err := e.engine.NewInstantQuery(ctx, e.history, nil, q, ts)
	if err != nil {
		return nil, err
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		return nil, res.Err
	}
	switch v := res.Value.(type) {
	case promql.Vector:
		return v, nil
	case promql.Scalar:
		return promql.Vector{promql.Sample{T: v.T, F: v.V}}, nil
	default:
		return nil, fmt.Errorf("rule query returned a %s, not a vector", res.Value.Type())
	}
}

// expander expands an annotation or label template with Prometheus's template functions
// and the $labels, $value conveniences its rules define.
func (e *Evaluator) expander(ctx context.Context, r Rule, s promql.Sample, ts time.Time) func(string) string {
	data := template.AlertTemplateData(s.Metric.Map(), nil, "", s)
	defs := "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"
	return func(text string) string {
		out, err := template.NewTemplateExpander(ctx, defs+text, "__alert_"+r.Name, data,
			model.TimeFromUnixNano(ts.UnixNano()), template.QueryFunc(e.query), nil, nil).Expand()
		if err != nil {
			return fmt.Sprintf("<error expanding template: %s>", err)
		}
		return out
	}
}

// advance moves rule i's alerts to ts: new ones pending, those held for the rule's `for:`
// firing, those not returned any more gone.
func (e *Evaluator) advance(i int, r Rule, results []*Alert, ts time.Time) map[uint64]*Alert {
	prev := e.activeOf(i)
	next := make(map[uint64]*Alert, len(results))
	for _, a := range results {
		h := labels.FromMap(a.Labels).Hash()
		if old, ok := prev[h]; ok {
			a.ActiveAt, a.State = old.ActiveAt, old.State
		} else {
			a.ActiveAt, a.State = ts, StatePending
		}
		if a.State == StatePending && ts.Sub(a.ActiveAt) >= r.For {
			a.State = StateFiring
		}
		next[h] = a
	}
	return next
}

// Alerts are the active alerts as of the last evaluation, firing first (none before the
// first), and what went wrong in the last step, if anything: a rule whose query failed
// keeps its alerts as they were.
func (e *Evaluator) Alerts(context.Context) ([]Alert, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Alert
	for _, m := range e.active {
		for _, a := range m {
			c := *a
			c.Labels, c.Annotations = maps.Clone(a.Labels), maps.Clone(a.Annotations)
			out = append(out, c)
		}
	}
	SortAlerts(out)
	return out, e.evalErr
}

// Evaluated reports whether a Step has evaluated the rules yet.
func (e *Evaluator) Evaluated() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stepped
}

// gatherText renders what g gathers in the text format, which History reads exactly as
// Prometheus reads a scrape of /metrics.
func gatherText(g prometheus.Gatherer) ([]byte, error) {
	mfs, err := g.Gather()
	if err != nil && len(mfs) == 0 {
		return nil, fmt.Errorf("gather metrics: %w", err)
	}
	// A collector that failed leaves the others' metrics, as /metrics serves them.
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return nil, fmt.Errorf("encode metrics: %w", err)
		}
	}
	return buf.Bytes(), nil
}
