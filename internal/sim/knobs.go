package sim

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Knobs shape how a simulator behaves: how slow, how flaky, how strict, how big.
type Knobs struct {
	Latency     time.Duration // added to every answer
	FailureRate float64       // share of calls answered 500 (503 by the geolocation API), 0..1
	HiccupRate  float64       // share of calls that stall, 0..1
	HiccupDelay time.Duration // how long a stall lasts at most (each one is uniform in (0, HiccupDelay])
	// ResetRate is the share of calls whose connection is closed before any answer.
	ResetRate float64
	// TruncateRate is the share of answers cut off halfway, the connection closed: the
	// upstream did the work, the client never heard all of it.
	TruncateRate float64
	// GarbleRate is the share of successful answers replaced by something that is not
	// JSON: half of them an HTML error page (text/html), half broken JSON.
	GarbleRate  float64
	RateLimit   float64 // calls allowed per one-second window before 429; 0 is unlimited
	Credentials string  // what the upstream accepts: "user:password", a token or a key
	Size        int     // how much data to generate (the upstream says of what)
	Seed        uint64  // seeds both the generated data and the faults
}

// knob is one settable field, in the spec's spelling.
type knob struct {
	name string
	get  func(*Knobs) string
	set  func(*Knobs, string) error
}

var knobList = []knob{
	{"latency", func(k *Knobs) string { return k.Latency.String() }, func(k *Knobs, v string) error { return setDuration(&k.Latency, v) }},
	{"failure-rate", func(k *Knobs) string { return fmtFloat(k.FailureRate) }, func(k *Knobs, v string) error { return setShare(&k.FailureRate, v) }},
	{"hiccup-rate", func(k *Knobs) string { return fmtFloat(k.HiccupRate) }, func(k *Knobs, v string) error { return setShare(&k.HiccupRate, v) }},
	{"hiccup-delay", func(k *Knobs) string { return k.HiccupDelay.String() }, func(k *Knobs, v string) error { return setDuration(&k.HiccupDelay, v) }},
	{"reset-rate", func(k *Knobs) string { return fmtFloat(k.ResetRate) }, func(k *Knobs, v string) error { return setShare(&k.ResetRate, v) }},
	{"truncate-rate", func(k *Knobs) string { return fmtFloat(k.TruncateRate) }, func(k *Knobs, v string) error { return setShare(&k.TruncateRate, v) }},
	{"garble-rate", func(k *Knobs) string { return fmtFloat(k.GarbleRate) }, func(k *Knobs, v string) error { return setShare(&k.GarbleRate, v) }},
	{"rate-limit", func(k *Knobs) string { return fmtFloat(k.RateLimit) }, func(k *Knobs, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f >= 0) || math.IsInf(f, 0) { // !(f >= 0) also refuses NaN
			return fmt.Errorf("want calls per second >= 0, got %q", v)
		}
		k.RateLimit = f
		return nil
	}},
	{"credentials", func(k *Knobs) string { return k.Credentials }, func(k *Knobs, v string) error { k.Credentials = v; return nil }},
	{"size", func(k *Knobs) string { return strconv.Itoa(k.Size) }, func(k *Knobs, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("want a whole number >= 0, got %q", v)
		}
		k.Size = n
		return nil
	}},
	{"seed", func(k *Knobs) string { return strconv.FormatUint(k.Seed, 10) }, func(k *Knobs, v string) error {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return fmt.Errorf("want a whole number, got %q", v)
		}
		k.Seed = n
		return nil
	}},
}

// String renders the knobs in the spec syntax, credentials left out.
func (k Knobs) String() string {
	var parts []string
	for _, kn := range knobList {
		if kn.name == "credentials" {
			continue
		}
		parts = append(parts, kn.name+"="+kn.get(&k))
	}
	return strings.Join(parts, ",")
}

// Apply sets the knobs named in a list like "latency=50ms,failure-rate=0.3".
func (k *Knobs) Apply(list string) error {
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, val, ok := strings.Cut(item, "=")
		if !ok {
			return fmt.Errorf("knob %q: want name=value", item)
		}
		kn, found := findKnob(strings.TrimSpace(name))
		if !found {
			return fmt.Errorf("unknown knob %q (known: %s)", name, knobNames())
		}
		if err := kn.set(k, strings.TrimSpace(val)); err != nil {
			return fmt.Errorf("knob %s: %w", kn.name, err)
		}
	}
	return nil
}

// ParseSpec splits a spec like "latency=50ms;geoip:hiccup-rate=0.1,hiccup-delay=5s" into
// the part for every simulator (no prefix) and the parts for each named one.
// Names must be among known.
func ParseSpec(spec string, known []string) (all string, each map[string]string, err error) {
	each = map[string]string{}
	for _, group := range strings.Split(spec, ";") {
		group = strings.TrimSpace(group)
		if group == "" {
			continue
		}
		name, rest, hasName := strings.Cut(group, ":")
		if !hasName || strings.Contains(name, "=") {
			all = joinList(all, group)
			continue
		}
		name = strings.TrimSpace(name)
		if !slices.Contains(known, name) {
			return "", nil, fmt.Errorf("unknown simulator %q (known: %s)", name, strings.Join(known, ", "))
		}
		each[name] = joinList(each[name], rest)
	}
	// Check the syntax now, so that a typo stops start-up with a clear message.
	var probe Knobs
	if err := probe.Apply(all); err != nil {
		return "", nil, err
	}
	for name, list := range each {
		if err := probe.Apply(list); err != nil {
			return "", nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return all, each, nil
}

func findKnob(name string) (knob, bool) {
	for _, kn := range knobList {
		if kn.name == name {
			return kn, true
		}
	}
	return knob{}, false
}

func knobNames() string {
	names := make([]string, len(knobList))
	for i, kn := range knobList {
		names[i] = kn.name
	}
	return strings.Join(names, ", ")
}

func setDuration(p *time.Duration, v string) error {
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return fmt.Errorf("want a duration like 50ms or 5s, got %q", v)
	}
	*p = d
	return nil
}

func setShare(p *float64, v string) error {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f >= 0 && f <= 1) { // written so that NaN fails too
		return fmt.Errorf("want a share from 0 to 1, got %q", v)
	}
	*p = f
	return nil
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func joinList(a, b string) string {
	if a == "" {
		return b
	}
	if b == "" {
		return a
	}
	return a + "," + b
}
