// Package config reads relay's configuration from flags and the environment.
//
// Every setting has one environment variable and one flag; the flag's name is the
// variable's, lower-cased, with "RELAY_" dropped and "_" turned into "-"
// (RELAY_HTTP_ADDR is --http-addr, DATABASE_URL is --database-url). A flag beats the
// variable, the variable beats the default. Secrets may also come from NAME_FILE.
package config

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"sort"
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
	// TemporalTLS and TemporalAPIKey secure the connection to a Temporal cluster (Temporal
	// Cloud, or one with TLS and auth): see Temporal.
	TemporalTLS    TemporalTLS
	TemporalAPIKey string
	// PayloadKeys encrypt every payload relay writes to Temporal: "id:base64,..." (see
	// payloadcodec.ParseKeys), the first encrypts. Empty: payloads are written in the
	// clear, except by dev, which keeps a key of its own in the data dir.
	PayloadKeys string
	// WorkflowIDKey turns client IPs into workflow ids (HMAC): geolocate/<hash>, not
	// geolocate/<ip>. Empty: ids hold the IP, except in dev, which keeps a key of its own.
	WorkflowIDKey string
	// DBMaxConns caps the application database's connection pool of each process; 0 is the
	// store's default. The worker sizes its concurrency from the pool.
	DBMaxConns     int
	APIKeys        []string
	TrustedProxies []netip.Prefix
	LogLevel       string
	LogFormat      string
	// TemporalUIURL is the Temporal Web UI the status page links each run to; dev fills
	// it in with the embedded UI's.
	TemporalUIURL string
	// CodecCORSOrigins are the Web UI origins that may call the codec endpoint from a
	// browser; dev adds its embedded UI's.
	CodecCORSOrigins []string
	// PrometheusURL is the Prometheus the status page asks for firing alerts; without one,
	// relay evaluates the alert rules against its own metrics.
	PrometheusURL string
	// MetricsAddr, when set, serves /metrics on a listener of its own: a worker's only one.
	MetricsAddr string

	// dev only: where the embedded Temporal frontend and its Web UI listen.
	TemporalListen string
	UIAddr         string

	// sim (and dev's built-in simulators): the fault knobs, see package sim.
	SimKnobs  string
	SimListen string
	// SimPorts are relay sim's ports, in the order incidents, c42, geoip, kf (0: a free one).
	SimPorts []int

	Incidents Incidents
	C42       C42
	GeoIP     GeoIP
	KF        KF
	// UpstreamTimeout bounds one upstream call, answer included: a call that hangs is
	// cut off and retried.
	UpstreamTimeout time.Duration
}

// TemporalTLS names the PEM files that secure the connection to Temporal. Any field set
// turns TLS on; the zero value dials in plain text (unless an API key is set: then TLS
// is on with the system's roots, as Temporal Cloud requires).
type TemporalTLS struct {
	Cert string // client certificate, for mutual TLS; needs Key
	Key  string // the client certificate's private key
	CA   string // authority that signed the server's certificate (default: the system's roots)
	// ServerName is the name the server's certificate must hold (default: the address's host).
	ServerName string
}

// Enabled reports whether any TLS setting is given.
func (t TemporalTLS) Enabled() bool { return t != TemporalTLS{} }

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
	// CacheSize bounds each relay server's in-memory cache of merged events, in entries.
	CacheSize int
}

// GeoIP configures the geolocation API.
type GeoIP struct {
	URL       string
	RateLimit float64
	CacheTTL  time.Duration // how long a located IP is reused
	// SubmitRate is how many events one client may submit per second; SubmitBurst is how
	// many it may submit at once.
	SubmitRate  float64
	SubmitBurst int
}

// KF configures the outage API.
type KF struct {
	URL          string
	APIKey       string
	SiteID       string
	OutagesSince time.Time
	// SyncInterval is how often the worker's schedule syncs SiteID; 0 turns it off.
	SyncInterval time.Duration
}

// Default returns the configuration used when nothing is set: every default relay has.
func Default() Config {
	return Config{
		HTTPAddr:          "127.0.0.1:9000",
		DataDir:           "./.relay",
		TemporalNamespace: "default",
		LogLevel:          "info",
		LogFormat:         "text",
		TemporalListen:    DefaultTemporalAddress,
		UIAddr:            "127.0.0.1:8233",
		SimListen:         "127.0.0.1",
		SimPorts:          []int{9101, 9102, 9103, 9104},
		Incidents:         Incidents{RefreshInterval: 5 * time.Minute},
		C42:               C42{CacheTTL: 252 * time.Second, CacheSize: 10_000},
		GeoIP:             GeoIP{RateLimit: 5, CacheTTL: 24 * time.Hour, SubmitRate: 20, SubmitBurst: 40},
		KF: KF{
			SiteID:       "norwich-pear-tree",
			OutagesSince: time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC),
			SyncInterval: time.Hour,
		},
		UpstreamTimeout: 45 * time.Second,
	}
}

// DevDefault is Default with the one default only relay dev has: it believes
// X-Forwarded-For from loopback, so that a request made on this machine with that header
// (curl -H 'X-Forwarded-For: 81.2.69.142' ...) stands for a client anywhere. relay server
// trusts no proxy unless RELAY_TRUSTED_PROXIES names it.
func DevDefault() Config {
	c := Default()
	c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	return c
}

// DefaultTemporalAddress is the frontend that server and worker dial when TEMPORAL_ADDRESS
// is empty, and where dev's embedded one listens.
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

// setting is one variable and its flag.
type setting struct {
	env    string
	usage  string
	group  Group
	secret bool // masked in logs and --help, and may come from NAME_FILE
	field  func(c *Config) value
}

func (s setting) flagName() string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(s.env, "RELAY_")), "_", "-")
}

// settings are every variable relay reads, in the order of the README's table. usage is the
// flag's help: its `quoted` word names the value in --help.
var settings = []setting{
	{env: "RELAY_HTTP_ADDR", usage: "HTTP API listen `address`", group: HTTP,
		field: func(c *Config) value { return addrValue{&c.HTTPAddr} }},
	{env: "RELAY_DATA_DIR", usage: "`dir`ectory where dev keeps its SQLite files (Temporal and app data)",
		group: Embedded | Store, field: func(c *Config) value { return stringValue{&c.DataDir} }},
	{env: "DATABASE_URL",
		usage: "application database `url`: postgres://… selects PostgreSQL (default: SQLite in the data dir)",
		group: Store, secret: true, field: func(c *Config) value { return dbURLValue{&c.DatabaseURL} }},
	{env: "RELAY_DB_MAX_CONNS",
		usage: "application database `connections` per process (default: 16 on PostgreSQL, 4 on SQLite); the worker's concurrency follows it",
		group: Store, field: func(c *Config) value { return positiveIntValue{&c.DBMaxConns} }},
	{env: "TEMPORAL_ADDRESS",
		usage: "Temporal frontend `host:port` (dev: empty runs an embedded server; others: " + DefaultTemporalAddress + ")",
		group: Common, field: func(c *Config) value { return optAddrValue{&c.TemporalAddress} }},
	{env: "TEMPORAL_NAMESPACE", usage: "Temporal `namespace`", group: Common,
		field: func(c *Config) value { return stringValue{&c.TemporalNamespace} }},
	{env: "TEMPORAL_TLS_CERT", usage: "client certificate `file` (PEM) for mutual TLS with Temporal; needs TEMPORAL_TLS_KEY",
		group: Common, field: func(c *Config) value { return pemFileValue{&c.TemporalTLS.Cert, pemCert} }},
	{env: "TEMPORAL_TLS_KEY", usage: "private key `file` (PEM) of TEMPORAL_TLS_CERT", group: Common,
		field: func(c *Config) value { return pemFileValue{&c.TemporalTLS.Key, pemKey} }},
	{env: "TEMPORAL_TLS_CA",
		usage: "CA certificate `file` (PEM) that signed Temporal's server certificate (default: the system's roots)",
		group: Common, field: func(c *Config) value { return pemFileValue{&c.TemporalTLS.CA, pemCA} }},
	{env: "TEMPORAL_TLS_SERVER_NAME",
		usage: "`name` Temporal's server certificate must hold (default: TEMPORAL_ADDRESS's host); turns TLS on",
		group: Common, field: func(c *Config) value { return stringValue{&c.TemporalTLS.ServerName} }},
	{env: "TEMPORAL_API_KEY",
		usage: "Temporal API `key`, sent as 'authorization: Bearer <key>'; turns TLS on (system roots unless TEMPORAL_TLS_CA)",
		group: Common, secret: true, field: func(c *Config) value { return stringValue{&c.TemporalAPIKey} }},
	{env: "RELAY_PAYLOAD_KEYS",
		usage: "comma-separated `id:base64` AES-256 keys that encrypt the payloads relay writes to Temporal; the first encrypts, all decrypt (dev: a key of its own in the data dir)",
		group: Common, secret: true, field: func(c *Config) value { return payloadKeysValue{&c.PayloadKeys} }},
	{env: "RELAY_WORKFLOW_ID_KEY",
		usage: "secret `key` (at least 32 characters) that turns client IPs into workflow ids by HMAC; every server and worker needs the same one, and changing it leaves running lookups to be driven again (dev: a key of its own in the data dir)",
		group: Common, secret: true, field: func(c *Config) value { return idKeyValue{&c.WorkflowIDKey} }},
	{env: "RELAY_LOG_LEVEL", usage: "log `level`: debug, info, warn or error", group: Common | Sim,
		field: func(c *Config) value { return oneOfValue{&c.LogLevel, []string{"debug", "info", "warn", "error"}} }},
	{env: "RELAY_LOG_FORMAT", usage: "log `format`: text or json", group: Common | Sim,
		field: func(c *Config) value { return oneOfValue{&c.LogFormat, []string{"text", "json"}} }},
	{env: "RELAY_API_KEYS",
		usage: "comma-separated API `keys`; when set, every route but /healthz needs 'Authorization: Bearer <key>'",
		group: HTTP, secret: true, field: func(c *Config) value { return listValue{&c.APIKeys} }},
	{env: "RELAY_TRUSTED_PROXIES",
		usage: "comma-separated `CIDRs` whose X-Forwarded-For is believed (dev: loopback unless set)",
		group: HTTP, field: func(c *Config) value { return cidrsValue{&c.TrustedProxies} }},
	{env: "RELAY_TEMPORAL_UI_URL",
		usage: "Temporal Web UI base `URL` the status page links runs to (dev: the embedded UI)",
		group: HTTP, field: func(c *Config) value { return urlValue{&c.TemporalUIURL} }},
	{env: "RELAY_CODEC_CORS_ORIGINS",
		usage: "comma-separated Web UI `origins` (scheme://host:port) allowed to call the codec endpoint /codec from a browser (dev: its embedded UI)",
		group: HTTP, field: func(c *Config) value { return listValue{&c.CodecCORSOrigins} }},
	{env: "RELAY_PROMETHEUS_URL",
		usage: "Prometheus base `URL` the status page asks for firing alerts (default: relay evaluates the alert rules itself)",
		group: HTTP, field: func(c *Config) value { return urlValue{&c.PrometheusURL} }},
	{env: "RELAY_METRICS_ADDR",
		usage: "also serve /metrics, without API keys, on this listen `address` (a worker's only HTTP listener)",
		group: Common, field: func(c *Config) value { return optAddrValue{&c.MetricsAddr} }},
	{env: "RELAY_TEMPORAL_LISTEN", usage: "dev: embedded Temporal frontend listen `address` (port 0 picks a free one)",
		group: Embedded, field: func(c *Config) value { return addrValue{&c.TemporalListen} }},
	{env: "RELAY_UI_ADDR", usage: "dev: Temporal Web UI listen `address`, or 'off'", group: Embedded,
		field: func(c *Config) value { return uiAddrValue{&c.UIAddr} }},
	{env: "RELAY_SIM_KNOBS",
		usage: "simulator fault `knobs`, e.g. 'latency=50ms;geoip:hiccup-rate=0.1,hiccup-delay=5s' (see README)",
		group: Sim, field: func(c *Config) value { return stringValue{&c.SimKnobs} }},
	{env: "RELAY_SIM_LISTEN", usage: "simulators' listen `host` (dev: free ports)", group: Sim,
		field: func(c *Config) value { return stringValue{&c.SimListen} }},
	{env: "RELAY_SIM_PORTS", usage: "relay sim's four `ports`: incidents,c42,geoip,kf (0 picks a free one)", group: Sim,
		field: func(c *Config) value { return portsValue{p: &c.SimPorts, n: 4} }},
	{env: "INCIDENTS_API_URL", usage: "security incidents API base `URL` (dev: built-in simulator)", group: Upstream,
		field: func(c *Config) value { return urlValue{&c.Incidents.URL} }},
	{env: "INCIDENTS_API_USER", usage: "security incidents API `user`", group: Upstream,
		field: func(c *Config) value { return stringValue{&c.Incidents.User} }},
	{env: "INCIDENTS_API_PASSWORD", usage: "security incidents API `password`", group: Upstream, secret: true,
		field: func(c *Config) value { return stringValue{&c.Incidents.Password} }},
	{env: "INCIDENTS_REFRESH_INTERVAL", usage: "how often the incident snapshot is rebuilt (a `duration`)",
		group: Upstream, field: func(c *Config) value { return durationValue{&c.Incidents.RefreshInterval} }},
	{env: "C42_API_URL", usage: "calendar API base `URL`, without /api/v2 (dev: built-in simulator)", group: Upstream,
		field: func(c *Config) value { return urlValue{&c.C42.URL} }},
	{env: "C42_API_TOKEN", usage: "calendar API `token`", group: Upstream, secret: true,
		field: func(c *Config) value { return stringValue{&c.C42.Token} }},
	{env: "C42_CACHE_TTL", usage: "how long a merged event is served from cache (a `duration`)", group: HTTP,
		field: func(c *Config) value { return durationValue{&c.C42.CacheTTL} }},
	{env: "C42_CACHE_SIZE", usage: "how many merged events one relay server keeps in memory (`entries`)", group: HTTP,
		field: func(c *Config) value { return positiveIntValue{&c.C42.CacheSize} }},
	{env: "GEOIP_API_URL", usage: "geolocation API base `URL` (dev: built-in simulator)", group: Upstream,
		field: func(c *Config) value { return urlValue{&c.GeoIP.URL} }},
	{env: "GEOIP_RATE_LIMIT", usage: "`requests` per second the geolocation API allows", group: Upstream | HTTP,
		field: func(c *Config) value { return rateValue{&c.GeoIP.RateLimit} }},
	{env: "GEOIP_CACHE_TTL", usage: "how long a located IP is reused without asking the geolocation API (a `duration`)",
		group: Upstream, field: func(c *Config) value { return durationValue{&c.GeoIP.CacheTTL} }},
	{env: "RELAY_SUBMIT_RATE_LIMIT", usage: "event `submissions` per second allowed per client IP", group: HTTP,
		field: func(c *Config) value { return rateValue{&c.GeoIP.SubmitRate} }},
	{env: "RELAY_SUBMIT_BURST", usage: "event `submissions` one client IP may make at once, above its rate", group: HTTP,
		field: func(c *Config) value { return positiveIntValue{&c.GeoIP.SubmitBurst} }},
	{env: "KF_API_URL", usage: "outage API base `URL` (dev: built-in simulator)", group: Upstream,
		field: func(c *Config) value { return urlValue{&c.KF.URL} }},
	{env: "KF_API_KEY", usage: "outage API `key`", group: Upstream, secret: true,
		field: func(c *Config) value { return stringValue{&c.KF.APIKey} }},
	{env: "KF_SITE_ID", usage: "`site` synced by default, on a schedule", group: Upstream | HTTP,
		field: func(c *Config) value { return siteValue{&c.KF.SiteID} }},
	{env: "KF_SYNC_INTERVAL", usage: "how often KF_SITE_ID is synced (a `duration`; 0 turns the schedule off)", group: Upstream,
		field: func(c *Config) value { return intervalValue{&c.KF.SyncInterval} }},
	{env: "KF_OUTAGES_SINCE", usage: "default cutoff for kept outages (an RFC 3339 `time`)", group: Upstream | HTTP,
		field: func(c *Config) value { return timeValue{&c.KF.OutagesSince} }},
	{env: "RELAY_UPSTREAM_TIMEOUT",
		usage: "how long one upstream call may take before it is cut off and retried (a `duration`)",
		group: Upstream, field: func(c *Config) value { return durationValue{&c.UpstreamTimeout} }},
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
	return l.ReadEnv(getenv)
}

// ReadEnv fills every setting that no flag gave from getenv, for a caller that parsed the
// flag set itself. A bad value comes back as *Error naming the variable.
func (l *Loader) ReadEnv(getenv func(string) string) error {
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
	return l.cfg.checkTemporalSecurity(l.groups)
}

// checkTemporalSecurity checks the Temporal TLS settings together, once each has been
// read on its own: a certificate needs its key (and the key must be the certificate's),
// and dev's embedded server is plain, so securing the connection needs TEMPORAL_ADDRESS.
func (c *Config) checkTemporalSecurity(groups Group) error {
	t := c.TemporalTLS
	switch {
	case t.Cert != "" && t.Key == "":
		return &Error{Name: "TEMPORAL_TLS_KEY", Msg: "TEMPORAL_TLS_CERT is set without its private key: mutual TLS needs both"}
	case t.Key != "" && t.Cert == "":
		return &Error{Name: "TEMPORAL_TLS_CERT", Msg: "TEMPORAL_TLS_KEY is set without its certificate: mutual TLS needs both"}
	case t.Cert != "":
		if _, err := tls.LoadX509KeyPair(t.Cert, t.Key); err != nil {
			return &Error{Name: "TEMPORAL_TLS_KEY", Msg: fmt.Sprintf("%s is not the key of the certificate in %s: %v", t.Key, t.Cert, err)}
		}
	}
	if groups&Embedded != 0 && c.TemporalAddress == "" && (t.Enabled() || c.TemporalAPIKey != "") {
		name := "TEMPORAL_API_KEY"
		if t.Enabled() {
			name = "TEMPORAL_TLS_*"
		}
		return &Error{Name: name, Msg: "dev's embedded Temporal server is plain: set TEMPORAL_ADDRESS to dial a secured one"}
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
