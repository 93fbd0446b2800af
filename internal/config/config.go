// Package config reads relay's configuration from flags and the environment.
//
// Every setting has one environment variable and one flag; the flag's name is the
// variable's, lower-cased, with "RELAY_" dropped and "_" turned into "-"
// (RELAY_HTTP_ADDR is --http-addr, DATABASE_URL is --database-url). A flag beats the
// variable, the variable beats the default. Secrets may also come from NAME_FILE.
package config

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Config is everything relay's commands can be told. Defaults are in Default.
type Config struct {
	HTTPAddr          string
	DataDir           string
	DatabaseURL       string
	TemporalAddress   string
	TemporalNamespace string
	APIKeys           []string
	TrustedProxies    []netip.Prefix
	LogLevel          string
	LogFormat         string
	// TemporalUIURL is the Temporal Web UI the status page links each run to; dev fills
	// it in with the embedded UI's.
	TemporalUIURL string
	// MetricsAddr, when set, serves /metrics on a listener of its own: a worker's only one.
	MetricsAddr string

	// dev only: where the embedded Temporal frontend and its Web UI listen.
	TemporalListen string
	UIAddr         string

	// sim (and dev's built-in simulators): the fault knobs, see package sim.
	SimKnobs  string
	SimListen string

	Incidents Incidents
	C42       C42
	GeoIP     GeoIP
	KF        KF
	// UpstreamTimeout bounds one upstream call, answer included: a call that hangs is
	// cut off and retried.
	UpstreamTimeout time.Duration
}

// Incidents configures the security incidents API.
type Incidents struct {
	URL             string
	User            string
	Password        string
	RefreshInterval time.Duration
}

// C42 configures the calendar API.
type C42 struct {
	URL      string
	Token    string
	CacheTTL time.Duration
}

// GeoIP configures the geolocation API.
type GeoIP struct {
	URL       string
	RateLimit float64
	CacheTTL  time.Duration // how long a located IP is reused
	// SubmitRate is how many events one client may submit per second.
	SubmitRate float64
}

// KF configures the outage API.
type KF struct {
	URL          string
	APIKey       string
	SiteID       string
	OutagesSince time.Time
}

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		HTTPAddr:          "127.0.0.1:9000",
		DataDir:           "./.relay",
		TemporalNamespace: "default",
		LogLevel:          "info",
		LogFormat:         "text",
		TemporalListen:    "127.0.0.1:7233",
		UIAddr:            "127.0.0.1:8233",
		SimListen:         "127.0.0.1",
		Incidents:         Incidents{RefreshInterval: 5 * time.Minute},
		C42:               C42{CacheTTL: 252 * time.Second},
		GeoIP:             GeoIP{RateLimit: 5, CacheTTL: 24 * time.Hour, SubmitRate: 20},
		KF: KF{
			SiteID:       "norwich-pear-tree",
			OutagesSince: time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC),
		},
		UpstreamTimeout: 45 * time.Second,
	}
}

// DefaultTemporalAddress is the frontend that server and worker dial when TEMPORAL_ADDRESS is empty.
const DefaultTemporalAddress = "127.0.0.1:7233"

// Group says which commands a setting belongs to.
type Group uint8

// The setting groups; a command asks for the union of those it uses.
const (
	Common   Group = 1 << iota // every command that talks to Temporal
	HTTP                       // the HTTP API
	Store                      // the application database
	Upstream                   // the upstream APIs the worker calls
	Embedded                   // dev's embedded Temporal server
	Sim                        // the simulators
)

// Error is a configuration mistake: the command should stop with exit code 2.
type Error struct {
	Name string // the variable or flag
	Msg  string
}

func (e *Error) Error() string {
	if e.Name == "" {
		return e.Msg
	}
	return e.Name + ": " + e.Msg
}

type setting struct {
	env    string
	usage  string
	group  Group
	secret bool
	field  func(c *Config) value
}

func (s setting) flagName() string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(s.env, "RELAY_")), "_", "-")
}

var settings = []setting{
	{"RELAY_HTTP_ADDR", "HTTP API listen `address`", HTTP, false, func(c *Config) value { return addrValue{&c.HTTPAddr} }},
	{"RELAY_DATA_DIR", "`dir`ectory where dev keeps its SQLite files (Temporal and app data)", Embedded | Store, false, func(c *Config) value { return stringValue{&c.DataDir} }},
	{"DATABASE_URL", "application database `url`: postgres://… selects PostgreSQL (default: SQLite in the data dir)", Store, true, func(c *Config) value { return dbURLValue{&c.DatabaseURL} }},
	{"TEMPORAL_ADDRESS", "Temporal frontend `host:port` (dev: empty runs an embedded server; others: " + DefaultTemporalAddress + ")", Common, false, func(c *Config) value { return optAddrValue{&c.TemporalAddress} }},
	{"TEMPORAL_NAMESPACE", "Temporal `namespace`", Common, false, func(c *Config) value { return stringValue{&c.TemporalNamespace} }},
	{"RELAY_LOG_LEVEL", "log `level`: debug, info, warn or error", Common | Sim, false, func(c *Config) value { return oneOfValue{&c.LogLevel, []string{"debug", "info", "warn", "error"}} }},
	{"RELAY_LOG_FORMAT", "log `format`: text or json", Common | Sim, false, func(c *Config) value { return oneOfValue{&c.LogFormat, []string{"text", "json"}} }},
	{"RELAY_API_KEYS", "comma-separated API `keys`; when set, every route but /healthz needs 'Authorization: Bearer <key>'", HTTP, true, func(c *Config) value { return listValue{&c.APIKeys} }},
	{"RELAY_TRUSTED_PROXIES", "comma-separated `CIDRs` whose X-Forwarded-For is believed", HTTP, false, func(c *Config) value { return cidrsValue{&c.TrustedProxies} }},
	{"RELAY_TEMPORAL_UI_URL", "Temporal Web UI base `URL` the status page links runs to (dev: the embedded UI)", HTTP, false, func(c *Config) value { return urlValue{&c.TemporalUIURL} }},
	{"RELAY_METRICS_ADDR", "also serve /metrics, without API keys, on this listen `address` (a worker's only HTTP listener)", Common, false, func(c *Config) value { return optAddrValue{&c.MetricsAddr} }},
	{"RELAY_TEMPORAL_LISTEN", "dev: embedded Temporal frontend listen `address` (port 0 picks a free one)", Embedded, false, func(c *Config) value { return addrValue{&c.TemporalListen} }},
	{"RELAY_UI_ADDR", "dev: Temporal Web UI listen `address`, or 'off'", Embedded, false, func(c *Config) value { return uiAddrValue{&c.UIAddr} }},
	{"RELAY_SIM_KNOBS", "simulator fault `knobs`, e.g. 'latency=50ms;geoip:hiccup-rate=0.1,hiccup-delay=5s' (see README)", Sim, false, func(c *Config) value { return stringValue{&c.SimKnobs} }},
	{"RELAY_SIM_LISTEN", "simulators' listen `host` (sim: ports 9101-9104; dev: free ports)", Sim, false, func(c *Config) value { return stringValue{&c.SimListen} }},
	{"INCIDENTS_API_URL", "security incidents API base `URL` (dev: built-in simulator)", Upstream, false, func(c *Config) value { return urlValue{&c.Incidents.URL} }},
	{"INCIDENTS_API_USER", "security incidents API `user`", Upstream, false, func(c *Config) value { return stringValue{&c.Incidents.User} }},
	{"INCIDENTS_API_PASSWORD", "security incidents API `password`", Upstream, true, func(c *Config) value { return stringValue{&c.Incidents.Password} }},
	{"INCIDENTS_REFRESH_INTERVAL", "how often the incident snapshot is rebuilt (a `duration`)", Upstream, false, func(c *Config) value { return durationValue{&c.Incidents.RefreshInterval} }},
	{"C42_API_URL", "calendar API base `URL`, without /api/v2 (dev: built-in simulator)", Upstream, false, func(c *Config) value { return urlValue{&c.C42.URL} }},
	{"C42_API_TOKEN", "calendar API `token`", Upstream, true, func(c *Config) value { return stringValue{&c.C42.Token} }},
	{"C42_CACHE_TTL", "how long a merged event is served from cache (a `duration`)", HTTP, false, func(c *Config) value { return durationValue{&c.C42.CacheTTL} }},
	{"GEOIP_API_URL", "geolocation API base `URL` (dev: built-in simulator)", Upstream, false, func(c *Config) value { return urlValue{&c.GeoIP.URL} }},
	{"GEOIP_RATE_LIMIT", "`requests` per second the geolocation API allows", Upstream | HTTP, false, func(c *Config) value { return rateValue{&c.GeoIP.RateLimit} }},
	{"GEOIP_CACHE_TTL", "how long a located IP is reused without asking the geolocation API (a `duration`)", Upstream, false, func(c *Config) value { return durationValue{&c.GeoIP.CacheTTL} }},
	{"RELAY_SUBMIT_RATE_LIMIT", "event `submissions` per second allowed per client IP", HTTP, false, func(c *Config) value { return rateValue{&c.GeoIP.SubmitRate} }},
	{"KF_API_URL", "outage API base `URL` (dev: built-in simulator)", Upstream, false, func(c *Config) value { return urlValue{&c.KF.URL} }},
	{"KF_API_KEY", "outage API `key`", Upstream, true, func(c *Config) value { return stringValue{&c.KF.APIKey} }},
	{"KF_SITE_ID", "`site` synced by default", Upstream | HTTP, false, func(c *Config) value { return stringValue{&c.KF.SiteID} }},
	{"KF_OUTAGES_SINCE", "default cutoff for kept outages (an RFC 3339 `time`)", Upstream | HTTP, false, func(c *Config) value { return timeValue{&c.KF.OutagesSince} }},
	{"RELAY_UPSTREAM_TIMEOUT", "how long one upstream call may take before it is cut off and retried (a `duration`)", Upstream, false, func(c *Config) value { return durationValue{&c.UpstreamTimeout} }},
}

// Loader binds the settings of some groups to a flag set, then reads flags and environment.
type Loader struct {
	cfg    *Config
	fs     *flag.FlagSet
	groups Group
}

// Bind registers on fs a flag for every setting in groups, writing into cfg.
func Bind(fs *flag.FlagSet, cfg *Config, groups Group) *Loader {
	for _, s := range settings {
		if s.group&groups == 0 {
			continue
		}
		usage := s.usage + " (env " + s.env + ")"
		if s.secret {
			usage = s.usage + " (env " + s.env + " or " + s.env + "_FILE)"
		}
		fs.Var(flagValue{s.field(cfg), s.secret}, s.flagName(), usage)
	}
	return &Loader{cfg: cfg, fs: fs, groups: groups}
}

// Load parses args into the flag set, then fills every setting no flag gave from getenv.
// Mistakes come back as *Error naming the variable or flag.
func (l *Loader) Load(args []string, getenv func(string) string) error {
	if err := l.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &Error{Msg: err.Error()}
	}
	if l.fs.NArg() > 0 {
		return &Error{Msg: fmt.Sprintf("unexpected argument %q", l.fs.Arg(0))}
	}
	given := map[string]bool{}
	l.fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, s := range settings {
		if s.group&l.groups == 0 || given[s.flagName()] {
			continue
		}
		raw, name, err := lookup(s, getenv)
		if err != nil {
			return err
		}
		if raw == "" {
			continue
		}
		if err := s.field(l.cfg).Set(raw); err != nil {
			return &Error{Name: name, Msg: err.Error()}
		}
	}
	return nil
}

// lookup reads a setting's variable, or for a secret the file NAME_FILE names.
func lookup(s setting, getenv func(string) string) (raw, name string, err error) {
	if v := getenv(s.env); v != "" || !s.secret {
		return v, s.env, nil
	}
	path := getenv(s.env + "_FILE")
	if path == "" {
		return "", s.env, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", s.env + "_FILE", &Error{Name: s.env + "_FILE", Msg: fmt.Sprintf("cannot read secret file: %v", err)}
	}
	return strings.TrimSpace(string(b)), s.env + "_FILE", nil
}

// IsLoopback reports whether addr's host is a loopback address or name.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// simCredentials finds the credentials knob's value in RELAY_SIM_KNOBS: dev hands those
// credentials to its worker, so they are as secret as INCIDENTS_API_PASSWORD.
var simCredentials = regexp.MustCompile(`(credentials\s*=)[^,;]*`)

// Redacted returns the configuration as name=value lines fit for a log: secrets are masked.
func (c *Config) Redacted(groups Group) []string {
	var out []string
	for _, s := range settings {
		if s.group&groups == 0 {
			continue
		}
		v := s.field(c).String()
		if s.secret && v != "" {
			v = "[redacted]"
		}
		if s.env == "RELAY_SIM_KNOBS" {
			v = simCredentials.ReplaceAllString(v, "${1}[redacted]")
		}
		out = append(out, s.env+"="+v)
	}
	sort.Strings(out)
	return out
}

// value is a flag.Value over one Config field.
type value interface {
	String() string
	Set(string) error
}

// flagValue hides a secret's value from --help.
type flagValue struct {
	value
	secret bool
}

func (f flagValue) String() string {
	if f.value == nil || f.secret {
		return ""
	}
	return f.value.String()
}

type stringValue struct{ p *string }

func (v stringValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}
func (v stringValue) Set(s string) error { *v.p = s; return nil }

type addrValue struct{ p *string }

func (v addrValue) String() string { return stringValue(v).String() }
func (v addrValue) Set(s string) error {
	if _, port, err := net.SplitHostPort(s); err != nil {
		return fmt.Errorf("want host:port, got %q", s)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("invalid port in %q", s)
	}
	*v.p = s
	return nil
}

type optAddrValue struct{ p *string }

func (v optAddrValue) String() string { return stringValue(v).String() }
func (v optAddrValue) Set(s string) error {
	if s == "" {
		*v.p = ""
		return nil
	}
	return addrValue(v).Set(s)
}

type uiAddrValue struct{ p *string }

func (v uiAddrValue) String() string { return stringValue(v).String() }
func (v uiAddrValue) Set(s string) error {
	if s == "off" {
		*v.p = ""
		return nil
	}
	return addrValue(v).Set(s)
}

type oneOfValue struct {
	p      *string
	values []string
}

func (v oneOfValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}
func (v oneOfValue) Set(s string) error {
	for _, ok := range v.values {
		if s == ok {
			*v.p = s
			return nil
		}
	}
	return fmt.Errorf("want one of %s, got %q", strings.Join(v.values, ", "), s)
}

type urlValue struct{ p *string }

func (v urlValue) String() string { return stringValue(v).String() }
func (v urlValue) Set(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("want an http(s) URL, got %q", s)
	}
	*v.p = strings.TrimRight(s, "/")
	return nil
}

type dbURLValue struct{ p *string }

func (v dbURLValue) String() string { return stringValue(v).String() }
func (v dbURLValue) Set(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL") // never echo it: it may hold a password
	}
	switch u.Scheme {
	case "postgres", "postgresql", "sqlite", "file":
	default:
		return fmt.Errorf("want postgres://… or sqlite:<path>, got scheme %q", u.Scheme)
	}
	*v.p = s
	return nil
}

type listValue struct{ p *[]string }

func (v listValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.Join(*v.p, ",")
}
func (v listValue) Set(s string) error {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	*v.p = out
	return nil
}

type cidrsValue struct{ p *[]netip.Prefix }

func (v cidrsValue) String() string {
	if v.p == nil {
		return ""
	}
	parts := make([]string, len(*v.p))
	for i, p := range *v.p {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}
func (v cidrsValue) Set(s string) error {
	var out []netip.Prefix
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			// A bare address means that one host.
			a, aerr := netip.ParseAddr(item)
			if aerr != nil {
				return fmt.Errorf("want CIDRs like 10.0.0.0/8, got %q", item)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	*v.p = out
	return nil
}

type durationValue struct{ p *time.Duration }

func (v durationValue) String() string {
	if v.p == nil {
		return ""
	}
	return v.p.String()
}
func (v durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return fmt.Errorf("want a positive duration like 90s or 5m, got %q", s)
	}
	*v.p = d
	return nil
}

type rateValue struct{ p *float64 }

func (v rateValue) String() string {
	if v.p == nil {
		return ""
	}
	return strconv.FormatFloat(*v.p, 'g', -1, 64)
}
func (v rateValue) Set(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f > 0) || math.IsInf(f, 0) { // !(f > 0) also refuses NaN
		return fmt.Errorf("want a positive number of requests per second, got %q", s)
	}
	*v.p = f
	return nil
}

type timeValue struct{ p *time.Time }

func (v timeValue) String() string {
	if v.p == nil || v.p.IsZero() {
		return ""
	}
	return v.p.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}
func (v timeValue) Set(s string) error {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("want an RFC 3339 time like 2022-01-01T00:00:00.000Z, got %q", s)
	}
	*v.p = t
	return nil
}
