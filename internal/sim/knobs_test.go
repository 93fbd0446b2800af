package sim

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestKnobsApply(t *testing.T) {
	base := Knobs{Credentials: "c", Size: 100, Seed: 1}
	tests := []struct {
		name string
		list string
		want Knobs
	}{
		{"empty list changes nothing", "", base},
		{"blank items are skipped", " , ,", base},
		{"latency", "latency=50ms", Knobs{Latency: 50 * time.Millisecond, Credentials: "c", Size: 100, Seed: 1}},
		{"zero latency", "latency=0s", base},
		{"failure rate", "failure-rate=0.3", Knobs{FailureRate: 0.3, Credentials: "c", Size: 100, Seed: 1}},
		{"share bounds", "failure-rate=1,hiccup-rate=0", Knobs{FailureRate: 1, Credentials: "c", Size: 100, Seed: 1}},
		{"hiccups", "hiccup-rate=0.1,hiccup-delay=5s", Knobs{HiccupRate: 0.1, HiccupDelay: 5 * time.Second, Credentials: "c", Size: 100, Seed: 1}},
		{"rate limit", "rate-limit=5", Knobs{RateLimit: 5, Credentials: "c", Size: 100, Seed: 1}},
		{"unlimited", "rate-limit=0", base},
		{"credentials may hold = and :", "credentials=user:pa=ss", Knobs{Credentials: "user:pa=ss", Size: 100, Seed: 1}},
		{"size and seed", "size=7,seed=18446744073709551615", Knobs{Credentials: "c", Size: 7, Seed: 18446744073709551615}},
		{"spaces around names and values", " latency = 1s , size= 3 ", Knobs{Latency: time.Second, Credentials: "c", Size: 3, Seed: 1}},
		{"later wins", "size=1,size=2", Knobs{Credentials: "c", Size: 2, Seed: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := base
			require.NoError(t, k.Apply(tt.list))
			assert.Equal(t, tt.want, k)
		})
	}
}

func TestKnobsApplyErrors(t *testing.T) {
	tests := []struct {
		list string
		msg  string
	}{
		{"latency", `knob "latency": want name=value`},
		{"bogus=1", `unknown knob "bogus"`},
		{"=1", `unknown knob ""`},
		{"latency=fast", `knob latency: want a duration like 50ms or 5s, got "fast"`},
		{"latency=-5ms", `knob latency: want a duration`},
		{"hiccup-delay=5", `knob hiccup-delay: want a duration`},
		{"failure-rate=1.5", `knob failure-rate: want a share from 0 to 1, got "1.5"`},
		{"failure-rate=-0.1", `knob failure-rate: want a share from 0 to 1`},
		{"failure-rate=half", `knob failure-rate: want a share`},
		{"hiccup-rate=2", `knob hiccup-rate: want a share from 0 to 1`},
		{"rate-limit=-1", `knob rate-limit: want calls per second >= 0, got "-1"`},
		{"rate-limit=lots", `knob rate-limit: want calls per second`},
		{"size=-1", `knob size: want a whole number >= 0`},
		{"size=1.5", `knob size: want a whole number >= 0`},
		{"seed=-1", `knob seed: want a whole number, got "-1"`},
		{"seed=x", `knob seed: want a whole number`},
		{"latency=1s,bogus=1", `unknown knob "bogus"`},
	}
	for _, tt := range tests {
		t.Run(tt.list, func(t *testing.T) {
			var k Knobs
			err := k.Apply(tt.list)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.msg)
		})
	}
	var k Knobs
	err := k.Apply("nope=1")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "known: latency, failure-rate, hiccup-rate, hiccup-delay, reset-rate, truncate-rate, garble-rate, rate-limit, credentials, size, seed")
}

// strconv.ParseFloat accepts "NaN", and every comparison with NaN is false: a naive
// range check would let "failure-rate=NaN" through (and then never fail a call), and
// "rate-limit=NaN" would silently mean unlimited.
func TestKnobsApplyRejectsNaN(t *testing.T) {
	for _, list := range []string{"failure-rate=NaN", "hiccup-rate=NaN", "rate-limit=NaN"} {
		t.Run(list, func(t *testing.T) {
			var k Knobs
			assert.Error(t, k.Apply(list))
		})
	}
}

func TestKnobsString(t *testing.T) {
	k := Knobs{
		Latency: 50 * time.Millisecond, FailureRate: 0.25, HiccupRate: 0.1, HiccupDelay: 5 * time.Second,
		RateLimit: 5, Credentials: "top-secret", Size: 10, Seed: 42,
	}
	s := k.String()
	assert.Equal(t, "latency=50ms,failure-rate=0.25,hiccup-rate=0.1,hiccup-delay=5s,reset-rate=0,truncate-rate=0,garble-rate=0,rate-limit=5,size=10,seed=42", s)
	assert.NotContains(t, s, "top-secret", "credentials are left out")

	// The rendering reads back to the same knobs (credentials aside).
	back := Knobs{Credentials: "top-secret"}
	require.NoError(t, back.Apply(s))
	assert.Equal(t, k, back)

	assert.Equal(t, "latency=0s,failure-rate=0,hiccup-rate=0,hiccup-delay=0s,reset-rate=0,truncate-rate=0,garble-rate=0,rate-limit=0,size=0,seed=0", Knobs{}.String())
}

func TestParseSpec(t *testing.T) {
	tests := []struct {
		name string
		spec string
		all  string
		each map[string]string
	}{
		{"empty", "", "", map[string]string{}},
		{"only blanks", " ; ;", "", map[string]string{}},
		{"all only", "latency=50ms,failure-rate=0.1", "latency=50ms,failure-rate=0.1", map[string]string{}},
		{"the README example", "latency=50ms;geoip:hiccup-rate=0.1,hiccup-delay=5s",
			"latency=50ms", map[string]string{"geoip": "hiccup-rate=0.1,hiccup-delay=5s"}},
		{"several names and all-parts joined", "latency=1ms; kf:seed=3 ;failure-rate=0.5;kf:size=2;c42:latency=2ms",
			"latency=1ms,failure-rate=0.5", map[string]string{"kf": "seed=3,size=2", "c42": "latency=2ms"}},
		{"a colon in a value is not a name", "credentials=user:pass", "credentials=user:pass", map[string]string{}},
		{"a colon in a named value", "incidents:credentials=u:p", "", map[string]string{"incidents": "credentials=u:p"}},
		{"an all-part with a colon after an =", "latency=1s,credentials=u:p", "latency=1s,credentials=u:p", map[string]string{}},
		{"spaces around the name", " geoip :rate-limit=2", "", map[string]string{"geoip": "rate-limit=2"}},
		{"a name with an empty list", "geoip:", "", map[string]string{"geoip": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			all, each, err := ParseSpec(tt.spec, Names)
			require.NoError(t, err)
			assert.Equal(t, tt.all, all)
			assert.Equal(t, tt.each, each)
		})
	}
}

func TestParseSpecErrors(t *testing.T) {
	tests := []struct {
		name string
		spec string
		msg  []string
	}{
		{"unknown simulator", "nope:latency=1s", []string{`unknown simulator "nope"`, "known: incidents, c42, geoip, kf"}},
		{"unknown knob in all", "speed=3", []string{`unknown knob "speed"`}},
		{"unknown knob in a named part", "geoip:speed=3", []string{"geoip: ", `unknown knob "speed"`}},
		{"bad duration", "latency=soon", []string{"knob latency", `"soon"`}},
		{"bad value in a named part", "kf:latency=-1s", []string{"kf: ", "knob latency"}},
		{"share above 1", "failure-rate=1.01", []string{"knob failure-rate", "from 0 to 1"}},
		{"share below 0", "c42:hiccup-rate=-0.5", []string{"c42: ", "knob hiccup-rate", "from 0 to 1"}},
		{"no =", "latency", []string{`knob "latency": want name=value`}},
		{"negative rate", "geoip:rate-limit=-2", []string{"geoip: ", "knob rate-limit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			all, each, err := ParseSpec(tt.spec, Names)
			require.Error(t, err)
			for _, m := range tt.msg {
				assert.Contains(t, err.Error(), m)
			}
			assert.Empty(t, all)
			assert.Nil(t, each)
		})
	}

	// Known names are the caller's: a name outside them is unknown even if it is a simulator.
	_, _, err := ParseSpec("kf:seed=1", []string{Incidents})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `unknown simulator "kf"`)
}
