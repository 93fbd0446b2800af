// Package alerts evaluates relay's alerting rules (deploy/prometheus/alerts.yml) and asks
// Prometheus which of them fire, for the status page.
//
// Where Prometheus runs (docker-compose.yml), it evaluates the rules and relay asks its
// HTTP API (Remote). Where it does not (relay dev: one process holding every metric),
// relay evaluates the same rules itself (Evaluator): it gathers its own registry every
// interval into a bounded in-memory History and runs each rule's query in Prometheus's
// own PromQL engine, with Prometheus's pending/firing rules for `for:`. The tests check
// the Evaluator against Prometheus's rules package on the metrics of a running relay.
package alerts

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// Rule is one alerting rule of a rule file.
type Rule struct {
	Group       string
	Name        string
	Expr        parser.Expr
	For         time.Duration
	Labels      map[string]string
	Annotations map[string]string
}

// ParseRules reads a Prometheus rule file, validated by Prometheus's own parser. It
// returns its alerting rules; a recording rule or keep_firing_for is refused, because the
// Evaluator does not implement them (Prometheus does: a file with them is valid for
// compose, but the status page of relay dev could not show the same alerts).
func ParseRules(content []byte) ([]Rule, error) {
	p := parser.NewParser(parser.Options{})
	groups, errs := rulefmt.Parse(content, false, model.UTF8Validation, p)
	if len(errs) > 0 {
		return nil, fmt.Errorf("alert rules: %w", errors.Join(errs...))
	}
	var out []Rule
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			switch {
			case r.Record != "":
				return nil, fmt.Errorf("alert rules: group %s: recording rule %s: relay evaluates alerting rules only", g.Name, r.Record)
			case r.KeepFiringFor != 0:
				return nil, fmt.Errorf("alert rules: group %s: alert %s: keep_firing_for is not supported by relay's evaluator", g.Name, r.Alert)
			}
			expr, err := p.ParseExpr(r.Expr)
			if err != nil { // rulefmt has checked it already
				return nil, fmt.Errorf("alert rules: alert %s: %w", r.Alert, err)
			}
			out = append(out, Rule{Group: g.Name, Name: r.Alert, Expr: expr, For: time.Duration(r.For),
				Labels: maps.Clone(r.Labels), Annotations: maps.Clone(r.Annotations)})
		}
	}
	if len(out) == 0 {
		return nil, errors.New("alert rules: no alerting rule")
	}
	return out, nil
}

// MetricNames are the metrics the rules read, sorted: the only ones History keeps.
func MetricNames(rules []Rule) []string {
	var names []string
	for _, r := range rules {
		parser.Inspect(r.Expr, func(node parser.Node, _ []parser.Node) error {
			if vs, ok := node.(*parser.VectorSelector); ok && vs.Name != "" {
				names = append(names, vs.Name)
			}
			return nil
		})
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// LongestRange is the widest range selector of the rules, subqueries included: with the
// lookback of an instant selector, the history the rules read. (`for:` needs none: the
// Evaluator keeps each alert's state.)
func LongestRange(rules []Rule) time.Duration {
	var longest time.Duration
	for _, r := range rules {
		parser.Inspect(r.Expr, func(node parser.Node, _ []parser.Node) error {
			switch n := node.(type) {
			case *parser.MatrixSelector:
				longest = max(longest, n.Range)
			case *parser.SubqueryExpr:
				longest = max(longest, n.Range)
			}
			return nil
		})
	}
	return longest
}
