package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/internal/payloadcodec"
)

// allGroups is the union of every setting group.
const allGroups = Common | HTTP | Store | Upstream | Embedded | Sim

// fakeEnv is a getenv over a map that remembers which names were asked for.
type fakeEnv struct {
	vars  map[string]string
	asked map[string]bool
}

func newFakeEnv(vars map[string]string) *fakeEnv {
	return &fakeEnv{vars: vars, asked: map[string]bool{}}
}

func (e *fakeEnv) getenv(name string) string {
	e.asked[name] = true
	return e.vars[name]
}

// load binds groups on a fresh flag set over Default() and loads args and env.
func load(t *testing.T, groups Group, args []string, env map[string]string) (Config, error) {
	t.Helper()
	cfg := Default()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	err := Bind(fs, &cfg, groups).Load(args, newFakeEnv(env).getenv)
	return cfg, err
}

// requireConfigError asserts err is an *Error with the given name and returns it.
func requireConfigError(t *testing.T, err error, name string) *Error {
	t.Helper()
	require.Error(t, err)
	var cerr *Error
	require.True(t, errors.As(err, &cerr), "want *config.Error, got %T: %v", err, err)
	assert.Equal(t, name, cerr.Name)
	return cerr
}

func TestDefaults(t *testing.T) {
	cfg, err := load(t, allGroups, nil, nil)
	require.NoError(t, err)
	assert.Equal(t, Default(), cfg, "nothing set: the defaults stand")

	tests := []struct {
		name string
		got  any
		want any
	}{
		{"HTTPAddr", cfg.HTTPAddr, "127.0.0.1:9000"},
		{"DataDir", cfg.DataDir, "./.relay"},
		{"DatabaseURL", cfg.DatabaseURL, ""},
		{"TemporalAddress", cfg.TemporalAddress, ""},
		{"TemporalNamespace", cfg.TemporalNamespace, "default"},
		{"APIKeys", cfg.APIKeys, []string(nil)},
		{"TrustedProxies", cfg.TrustedProxies, []netip.Prefix(nil)},
		{"LogLevel", cfg.LogLevel, "info"},
		{"LogFormat", cfg.LogFormat, "text"},
		{"TemporalListen", cfg.TemporalListen, "127.0.0.1:7233"},
		{"UIAddr", cfg.UIAddr, "127.0.0.1:8233"},
		{"SimKnobs", cfg.SimKnobs, ""},
		{"SimListen", cfg.SimListen, "127.0.0.1"},
		{"Incidents.RefreshInterval", cfg.Incidents.RefreshInterval, 5 * time.Minute},
		{"C42.CacheTTL", cfg.C42.CacheTTL, 252 * time.Second},
		{"C42.CacheSize", cfg.C42.CacheSize, 10_000},
		{"GeoIP.RateLimit", cfg.GeoIP.RateLimit, 5.0},
		{"GeoIP.CacheTTL", cfg.GeoIP.CacheTTL, 24 * time.Hour},
		{"GeoIP.SubmitRate", cfg.GeoIP.SubmitRate, 20.0},
		{"GeoIP.SubmitBurst", cfg.GeoIP.SubmitBurst, 40},
		{"KF.SiteID", cfg.KF.SiteID, "norwich-pear-tree"},
		{"KF.OutagesSince", cfg.KF.OutagesSince, time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"KF.SyncInterval", cfg.KF.SyncInterval, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.got)
		})
	}
	assert.Equal(t, "127.0.0.1:7233", DefaultTemporalAddress)
}

// relay dev believes X-Forwarded-For from loopback unless told otherwise; Default (relay
// server's) believes nobody. A setting given wins over either, an empty one leaves it.
func TestDevDefaultTrustsLoopbackOnly(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	assert.Equal(t, loopback, DevDefault().TrustedProxies)
	assert.Nil(t, Default().TrustedProxies)

	dev := DevDefault()
	dev.TrustedProxies = nil
	assert.Equal(t, Default(), dev, "the trusted proxies are dev's only default of its own")

	loadDev := func(args []string, env map[string]string) Config {
		cfg := DevDefault()
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		require.NoError(t, Bind(fs, &cfg, allGroups).Load(args, newFakeEnv(env).getenv))
		return cfg
	}
	assert.Equal(t, loopback, loadDev(nil, nil).TrustedProxies)
	assert.Equal(t, loopback, loadDev(nil, map[string]string{"RELAY_TRUSTED_PROXIES": ""}).TrustedProxies)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		loadDev(nil, map[string]string{"RELAY_TRUSTED_PROXIES": "10.0.0.0/8"}).TrustedProxies)
	assert.Empty(t, loadDev([]string{"--trusted-proxies="}, nil).TrustedProxies, "an empty flag trusts nobody")
}

// ReadEnv is Load for a caller that parsed the flags itself.
func TestReadEnvAfterParse(t *testing.T) {
	cfg := Default()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	l := Bind(fs, &cfg, HTTP)
	require.NoError(t, fs.Parse([]string{"--http-addr", "127.0.0.1:1"}))
	env := map[string]string{"RELAY_HTTP_ADDR": "127.0.0.1:2", "RELAY_SUBMIT_BURST": "3"}
	require.NoError(t, l.ReadEnv(newFakeEnv(env).getenv))
	assert.Equal(t, "127.0.0.1:1", cfg.HTTPAddr, "the flag wins")
	assert.Equal(t, 3, cfg.GeoIP.SubmitBurst)

	err := l.ReadEnv(newFakeEnv(map[string]string{"C42_CACHE_SIZE": "none"}).getenv)
	requireConfigError(t, err, "C42_CACHE_SIZE")
}

func TestDefaultReturnsFreshValues(t *testing.T) {
	a := Default()
	a.HTTPAddr = "changed:1"
	a.APIKeys = append(a.APIKeys, "k")
	b := Default()
	assert.Equal(t, "127.0.0.1:9000", b.HTTPAddr)
	assert.Empty(t, b.APIKeys)
}

func TestFlagNames(t *testing.T) {
	tests := []struct {
		env, flag string
	}{
		{"RELAY_HTTP_ADDR", "http-addr"},
		{"DATABASE_URL", "database-url"},
		{"TEMPORAL_ADDRESS", "temporal-address"},
		{"RELAY_UI_ADDR", "ui-addr"},
		{"INCIDENTS_API_PASSWORD", "incidents-api-password"},
		{"KF_OUTAGES_SINCE", "kf-outages-since"},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			assert.Equal(t, tt.flag, setting{env: tt.env}.flagName())
		})
	}

	// Every setting is a flag when all groups are bound, under its derived name.
	cfg := Default()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	Bind(fs, &cfg, allGroups)
	for _, s := range settings {
		f := fs.Lookup(s.flagName())
		if assert.NotNil(t, f, "flag for %s", s.env) {
			assert.Contains(t, f.Usage, s.env, "usage names the variable")
			if s.secret {
				assert.Contains(t, f.Usage, s.env+"_FILE", "usage of a secret names NAME_FILE")
			}
		}
	}
}

func TestPrecedence(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"default", nil, nil, "127.0.0.1:9000"},
		{"env beats default", nil, map[string]string{"RELAY_HTTP_ADDR": "127.0.0.1:1111"}, "127.0.0.1:1111"},
		{"flag beats default", []string{"--http-addr", "127.0.0.1:2222"}, nil, "127.0.0.1:2222"},
		{"flag beats env", []string{"-http-addr=127.0.0.1:2222"}, map[string]string{"RELAY_HTTP_ADDR": "127.0.0.1:1111"}, "127.0.0.1:2222"},
		{"flag beats a bad env, which is not even read", []string{"--http-addr", "127.0.0.1:2222"}, map[string]string{"RELAY_HTTP_ADDR": "nonsense"}, "127.0.0.1:2222"},
		{"empty env leaves the default", nil, map[string]string{"RELAY_HTTP_ADDR": ""}, "127.0.0.1:9000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := load(t, HTTP, tt.args, tt.env)
			require.NoError(t, err)
			assert.Equal(t, tt.want, cfg.HTTPAddr)
		})
	}
}

func TestEnvSetsEverySetting(t *testing.T) {
	env := map[string]string{
		"RELAY_HTTP_ADDR":            "0.0.0.0:8080",
		"RELAY_DATA_DIR":             "/var/lib/relay",
		"DATABASE_URL":               "postgres://u:p@db:5432/relay",
		"TEMPORAL_ADDRESS":           "temporal:7233",
		"TEMPORAL_NAMESPACE":         "prod",
		"RELAY_LOG_LEVEL":            "debug",
		"RELAY_LOG_FORMAT":           "json",
		"RELAY_API_KEYS":             " a, b ,,c ",
		"RELAY_TRUSTED_PROXIES":      "10.0.0.0/8, 192.168.1.7 ,fd00::/8,::1",
		"RELAY_TEMPORAL_UI_URL":      "https://temporal-ui.example/",
		"RELAY_PROMETHEUS_URL":       "http://prometheus:9090/",
		"RELAY_METRICS_ADDR":         "0.0.0.0:9090",
		"RELAY_TEMPORAL_LISTEN":      "127.0.0.1:0",
		"RELAY_UI_ADDR":              "127.0.0.1:18233",
		"RELAY_SIM_KNOBS":            "latency=50ms",
		"RELAY_SIM_LISTEN":           "0.0.0.0",
		"RELAY_SIM_PORTS":            "9201,0,9203,9204",
		"INCIDENTS_API_URL":          "http://incidents.example/",
		"INCIDENTS_API_USER":         "user",
		"INCIDENTS_API_PASSWORD":     "pw",
		"INCIDENTS_REFRESH_INTERVAL": "90s",
		"C42_API_URL":                "https://c42.example/base//",
		"C42_API_TOKEN":              "tok",
		"C42_CACHE_TTL":              "1m",
		"C42_CACHE_SIZE":             "500",
		"GEOIP_API_URL":              "http://geoip.example:8080",
		"GEOIP_RATE_LIMIT":           "2.5",
		"GEOIP_CACHE_TTL":            "1h",
		"RELAY_SUBMIT_RATE_LIMIT":    "7",
		"RELAY_SUBMIT_BURST":         "9",
		"KF_API_URL":                 "https://kf.example",
		"KF_API_KEY":                 "key",
		"KF_SITE_ID":                 "kingfisher",
		"KF_SYNC_INTERVAL":           "30m",
		"KF_OUTAGES_SINCE":           "2023-06-01T12:00:00.5+02:00",
		"RELAY_UPSTREAM_TIMEOUT":     "12s",
	}
	cfg, err := load(t, allGroups, nil, env)
	require.NoError(t, err)

	want := Config{
		HTTPAddr:          "0.0.0.0:8080",
		DataDir:           "/var/lib/relay",
		DatabaseURL:       "postgres://u:p@db:5432/relay",
		TemporalAddress:   "temporal:7233",
		TemporalNamespace: "prod",
		APIKeys:           []string{"a", "b", "c"},
		TrustedProxies: []netip.Prefix{
			netip.MustParsePrefix("10.0.0.0/8"),
			netip.MustParsePrefix("192.168.1.7/32"),
			netip.MustParsePrefix("fd00::/8"),
			netip.MustParsePrefix("::1/128"),
		},
		LogLevel:       "debug",
		LogFormat:      "json",
		TemporalUIURL:  "https://temporal-ui.example",
		PrometheusURL:  "http://prometheus:9090",
		MetricsAddr:    "0.0.0.0:9090",
		TemporalListen: "127.0.0.1:0",
		UIAddr:         "127.0.0.1:18233",
		SimKnobs:       "latency=50ms",
		SimListen:      "0.0.0.0",
		SimPorts:       []int{9201, 0, 9203, 9204},
		Incidents:      Incidents{URL: "http://incidents.example", User: "user", Password: "pw", RefreshInterval: 90 * time.Second},
		C42:            C42{URL: "https://c42.example/base", Token: "tok", CacheTTL: time.Minute, CacheSize: 500},
		GeoIP: GeoIP{URL: "http://geoip.example:8080", RateLimit: 2.5, CacheTTL: time.Hour,
			SubmitRate: 7, SubmitBurst: 9},
		KF:              KF{URL: "https://kf.example", APIKey: "key", SiteID: "kingfisher", SyncInterval: 30 * time.Minute},
		UpstreamTimeout: 12 * time.Second,
	}
	// Compare the time as an instant, then the rest.
	assert.True(t, time.Date(2023, 6, 1, 10, 0, 0, 500_000_000, time.UTC).Equal(cfg.KF.OutagesSince), "got %v", cfg.KF.OutagesSince)
	cfg.KF.OutagesSince = time.Time{}
	assert.Equal(t, want, cfg)
}

func TestFlagsSetEverySettingKind(t *testing.T) {
	args := []string{
		"--http-addr", "[::1]:9000",
		"--api-keys", "x,y",
		"--trusted-proxies", "10.1.2.3",
		"--ui-addr", "off",
		"--incidents-refresh-interval", "2m",
		"--geoip-rate-limit", "0.5",
		"--kf-outages-since", "2022-01-01T00:00:00.000Z",
		"--database-url", "sqlite:/tmp/x.db",
		"--log-level", "warn",
	}
	cfg, err := load(t, allGroups, args, nil)
	require.NoError(t, err)
	assert.Equal(t, "[::1]:9000", cfg.HTTPAddr)
	assert.Equal(t, []string{"x", "y"}, cfg.APIKeys)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.1.2.3/32")}, cfg.TrustedProxies)
	assert.Equal(t, "", cfg.UIAddr)
	assert.Equal(t, 2*time.Minute, cfg.Incidents.RefreshInterval)
	assert.Equal(t, 0.5, cfg.GeoIP.RateLimit)
	assert.Equal(t, time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC), cfg.KF.OutagesSince.UTC())
	assert.Equal(t, "sqlite:/tmp/x.db", cfg.DatabaseURL)
	assert.Equal(t, "warn", cfg.LogLevel)
}

func TestTrustedProxies(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"10.0.0.1", []string{"10.0.0.1/32"}},
		{"::1", []string{"::1/128"}},
		{"10.0.0.0/8", []string{"10.0.0.0/8"}},
		{"10.1.2.3/8", []string{"10.0.0.0/8"}}, // masked
		{"10.0.0.1, 172.16.0.0/12", []string{"10.0.0.1/32", "172.16.0.0/12"}},
		{" , 192.168.0.1 ,", []string{"192.168.0.1/32"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			cfg, err := load(t, HTTP, nil, map[string]string{"RELAY_TRUSTED_PROXIES": tt.in})
			require.NoError(t, err)
			var got []string
			for _, p := range cfg.TrustedProxies {
				got = append(got, p.String())
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestUIAddrOff(t *testing.T) {
	cfg, err := load(t, Embedded, nil, map[string]string{"RELAY_UI_ADDR": "off"})
	require.NoError(t, err)
	assert.Equal(t, "", cfg.UIAddr)

	cfg, err = load(t, Embedded, []string{"--ui-addr=off"}, map[string]string{"RELAY_UI_ADDR": "127.0.0.1:1"})
	require.NoError(t, err)
	assert.Equal(t, "", cfg.UIAddr)

	_, err = load(t, Embedded, nil, map[string]string{"RELAY_UI_ADDR": "Off"})
	requireConfigError(t, err, "RELAY_UI_ADDR")
}

func TestEnvParseErrors(t *testing.T) {
	tests := []struct {
		env, value string
		msg        []string // substrings the message must hold
	}{
		// host:port
		{"RELAY_HTTP_ADDR", "localhost", []string{"want host:port", `"localhost"`}},
		{"RELAY_HTTP_ADDR", "127.0.0.1:99999", []string{"invalid port", `"127.0.0.1:99999"`}},
		{"RELAY_HTTP_ADDR", "127.0.0.1:http", []string{"invalid port"}},
		{"RELAY_HTTP_ADDR", "127.0.0.1:-1", []string{"invalid port"}},
		{"TEMPORAL_ADDRESS", "temporal", []string{"want host:port"}},
		{"RELAY_TEMPORAL_LISTEN", "1.2.3.4:70000", []string{"invalid port"}},
		{"RELAY_UI_ADDR", "nowhere", []string{"want host:port"}},
		// durations
		{"INCIDENTS_REFRESH_INTERVAL", "5", []string{"want a positive duration", `"5"`}},
		{"INCIDENTS_REFRESH_INTERVAL", "soon", []string{"want a positive duration", `"soon"`}},
		{"INCIDENTS_REFRESH_INTERVAL", "0s", []string{"want a positive duration"}},
		{"C42_CACHE_TTL", "-1m", []string{"want a positive duration", `"-1m"`}},
		{"KF_SYNC_INTERVAL", "-1m", []string{"or 0 for off", `"-1m"`}},
		{"KF_SYNC_INTERVAL", "hourly", []string{"or 0 for off", `"hourly"`}},
		// ids
		{"KF_SITE_ID", "norwich/pear-tree", []string{"want 1 to 128 of A-Z", `"norwich/pear-tree"`}},
		// URLs
		{"INCIDENTS_API_URL", "incidents.example", []string{"want an http(s) URL", `"incidents.example"`}},
		{"C42_API_URL", "ftp://c42.example", []string{"want an http(s) URL"}},
		{"GEOIP_API_URL", "http://", []string{"want an http(s) URL"}},
		{"KF_API_URL", "http://bad host", []string{"want an http(s) URL"}},
		{"DATABASE_URL", "mysql://db/relay", []string{"want postgres://", `"mysql"`}},
		{"DATABASE_URL", "postgres://[bad", []string{"not a URL"}},
		// CIDRs
		{"RELAY_TRUSTED_PROXIES", "10.0.0.0/33", []string{"want CIDRs", `"10.0.0.0/33"`}},
		{"RELAY_TRUSTED_PROXIES", "10.0.0.0/8,nope", []string{"want CIDRs", `"nope"`}},
		{"RELAY_TRUSTED_PROXIES", "300.1.1.1", []string{"want CIDRs"}},
		// rates
		{"GEOIP_RATE_LIMIT", "0", []string{"want a positive number", `"0"`}},
		{"GEOIP_RATE_LIMIT", "-3", []string{"want a positive number"}},
		{"GEOIP_RATE_LIMIT", "fast", []string{"want a positive number", `"fast"`}},
		// whole numbers
		{"RELAY_SUBMIT_BURST", "0", []string{"want a positive whole number", `"0"`}},
		{"RELAY_SUBMIT_BURST", "-5", []string{"want a positive whole number", `"-5"`}},
		{"RELAY_SUBMIT_BURST", "2.5", []string{"want a positive whole number"}},
		{"C42_CACHE_SIZE", "lots", []string{"want a positive whole number", `"lots"`}},
		{"C42_CACHE_SIZE", "0", []string{"want a positive whole number"}},
		// times
		{"KF_OUTAGES_SINCE", "2022-01-01", []string{"want an RFC 3339 time", `"2022-01-01"`}},
		{"KF_OUTAGES_SINCE", "yesterday", []string{"want an RFC 3339 time"}},
		{"KF_OUTAGES_SINCE", "2022-01-01 00:00:00Z", []string{"want an RFC 3339 time"}},
		// one-of
		{"RELAY_LOG_LEVEL", "verbose", []string{"want one of debug, info, warn, error", `"verbose"`}},
		{"RELAY_LOG_LEVEL", "INFO", []string{"want one of"}},
		{"RELAY_LOG_FORMAT", "xml", []string{"want one of text, json", `"xml"`}},
	}
	for _, tt := range tests {
		t.Run(tt.env+"="+tt.value, func(t *testing.T) {
			before := Default()
			cfg := before
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			err := Bind(fs, &cfg, allGroups).Load(nil, newFakeEnv(map[string]string{tt.env: tt.value}).getenv)
			cerr := requireConfigError(t, err, tt.env)
			for _, m := range tt.msg {
				assert.Contains(t, cerr.Msg, m)
			}
			assert.True(t, strings.HasPrefix(err.Error(), tt.env+": "), "Error() starts with the name: %q", err.Error())
			assert.Equal(t, before, cfg, "a rejected value leaves the setting alone")
		})
	}
}

func TestDatabaseURLErrorNeverEchoesPassword(t *testing.T) {
	for _, v := range []string{"mysql://user:hunter2@db/relay", "postgres://user:hunter2@[::1"} {
		_, err := load(t, Store, nil, map[string]string{"DATABASE_URL": v})
		requireConfigError(t, err, "DATABASE_URL")
		assert.NotContains(t, err.Error(), "hunter2")
	}
}

func TestValidBoundaryValues(t *testing.T) {
	tests := []struct {
		env, value string
	}{
		{"RELAY_HTTP_ADDR", ":9000"},
		{"RELAY_HTTP_ADDR", "127.0.0.1:0"},
		{"RELAY_HTTP_ADDR", "127.0.0.1:65535"},
		{"RELAY_HTTP_ADDR", "[::1]:80"},
		{"GEOIP_RATE_LIMIT", "0.001"},
		{"INCIDENTS_REFRESH_INTERVAL", "1ns"},
		{"KF_SYNC_INTERVAL", "0"},
		{"KF_SYNC_INTERVAL", "0s"},
		{"KF_SYNC_INTERVAL", "15m"},
		{"DATABASE_URL", "postgresql://h/db"},
		{"DATABASE_URL", "file:relay.db"},
		{"KF_OUTAGES_SINCE", "2021-12-31T23:59:59.999Z"},
		{"KF_OUTAGES_SINCE", "2022-01-01T00:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.env+"="+tt.value, func(t *testing.T) {
			_, err := load(t, allGroups, nil, map[string]string{tt.env: tt.value})
			assert.NoError(t, err)
		})
	}
}

// strconv.ParseFloat accepts "NaN", and NaN <= 0 is false: a naive check would let
// GEOIP_RATE_LIMIT=NaN through to the worker's TaskQueueActivitiesPerSecond.
func TestRateRejectsNaN(t *testing.T) {
	for _, v := range []string{"NaN", "nan"} {
		_, err := load(t, Upstream, nil, map[string]string{"GEOIP_RATE_LIMIT": v})
		requireConfigError(t, err, "GEOIP_RATE_LIMIT")
	}
}

func TestFlagParseErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"unknown flag", []string{"--bogus"}, "flag provided but not defined: -bogus"},
		{"bad value", []string{"--http-addr", "nope"}, `want host:port, got "nope"`},
		{"bad duration", []string{"--c42-cache-ttl=forever"}, "want a positive duration"},
		{"missing value", []string{"--http-addr"}, "flag needs an argument"},
		{"stray argument", []string{"extra"}, `unexpected argument "extra"`},
		{"stray argument after flags", []string{"--log-level", "debug", "one", "two"}, `unexpected argument "one"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, allGroups, tt.args, nil)
			cerr := requireConfigError(t, err, "")
			assert.Contains(t, cerr.Msg, tt.msg)
			assert.Equal(t, cerr.Msg, cerr.Error(), "no name: Error() is the message")
		})
	}
}

func TestHelpPassesThrough(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "-help"} {
		t.Run(arg, func(t *testing.T) {
			_, err := load(t, allGroups, []string{arg}, nil)
			require.Error(t, err)
			assert.ErrorIs(t, err, flag.ErrHelp)
			var cerr *Error
			assert.False(t, errors.As(err, &cerr), "help is not a configuration mistake")
		})
	}
}

func TestHelpNeverShowsSecrets(t *testing.T) {
	cfg := Default()
	cfg.C42.Token = "tok-s3cret"
	cfg.KF.APIKey = "key-s3cret"
	cfg.Incidents.Password = "pw-s3cret"
	cfg.DatabaseURL = "postgres://u:db-s3cret@h/db"
	cfg.APIKeys = []string{"api-s3cret"}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	Bind(fs, &cfg, allGroups)
	fs.PrintDefaults()
	help := out.String()
	assert.NotContains(t, help, "s3cret")
	assert.NotContains(t, help, "panic", "PrintDefaults must be able to call String on a zero value")
	assert.Contains(t, help, "-http-addr")
	assert.Contains(t, help, "(default 127.0.0.1:9000)", "non-secret defaults are shown")
}

func TestGroups(t *testing.T) {
	// Bind only HTTP: log level (Common|Sim) and incidents settings (Upstream) are out.
	cfg := Default()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	l := Bind(fs, &cfg, HTTP)

	assert.NotNil(t, fs.Lookup("http-addr"))
	assert.NotNil(t, fs.Lookup("kf-site-id"), "Upstream|HTTP setting is bound with HTTP")
	assert.Nil(t, fs.Lookup("log-level"))
	assert.Nil(t, fs.Lookup("incidents-api-url"))
	assert.Nil(t, fs.Lookup("database-url"))

	env := newFakeEnv(map[string]string{
		"RELAY_LOG_LEVEL":   "not-a-level",     // would fail if read
		"INCIDENTS_API_URL": "not a url",       // would fail if read
		"DATABASE_URL_FILE": "/does/not/exist", // would fail if read
		"RELAY_HTTP_ADDR":   "127.0.0.1:1234",
	})
	require.NoError(t, l.Load(nil, env.getenv))
	assert.Equal(t, "127.0.0.1:1234", cfg.HTTPAddr)
	assert.Equal(t, "info", cfg.LogLevel)
	assert.Equal(t, "", cfg.Incidents.URL)

	for name := range env.asked {
		base := strings.TrimSuffix(name, "_FILE")
		var s *setting
		for i := range settings {
			if settings[i].env == base {
				s = &settings[i]
			}
		}
		if assert.NotNil(t, s, "asked for unknown variable %s", name) {
			assert.NotZero(t, s.group&HTTP, "%s is outside the bound groups but was read", name)
		}
	}
	assert.True(t, env.asked["RELAY_HTTP_ADDR"])
	assert.False(t, env.asked["RELAY_LOG_LEVEL"])
	assert.False(t, env.asked["DATABASE_URL"])
	assert.False(t, env.asked["DATABASE_URL_FILE"])

	// A flag of an unbound group is unknown.
	_, err := load(t, HTTP, []string{"--log-level", "debug"}, nil)
	cerr := requireConfigError(t, err, "")
	assert.Contains(t, cerr.Msg, "-log-level")

	// Union of groups binds both.
	cfg2, err := load(t, HTTP|Common, []string{"--log-level", "debug"}, nil)
	require.NoError(t, err)
	assert.Equal(t, "debug", cfg2.LogLevel)
}

// The status page's settings: the Web UI to link to and the geo limit are the API's (the
// server may run apart from the workers); the metrics listener is any process's.
func TestStatusPageAndMetricsSettings(t *testing.T) {
	const server, worker = Common | HTTP | Store, Common | Store | Upstream
	env := map[string]string{
		"RELAY_TEMPORAL_UI_URL": "http://127.0.0.1:8233/",
		"RELAY_METRICS_ADDR":    "0.0.0.0:9090",
		"GEOIP_RATE_LIMIT":      "3",
	}
	cfg, err := load(t, server, nil, env)
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:8233", cfg.TemporalUIURL, "no trailing slash: links append paths")
	assert.Equal(t, "0.0.0.0:9090", cfg.MetricsAddr)
	assert.Equal(t, 3.0, cfg.GeoIP.RateLimit, "relay server reads the limit it charts")

	cfg, err = load(t, worker, nil, env)
	require.NoError(t, err)
	assert.Equal(t, "0.0.0.0:9090", cfg.MetricsAddr, "relay worker can serve its metrics")
	assert.Equal(t, "", cfg.TemporalUIURL, "the worker serves no page")

	cfg, err = load(t, server, []string{"--temporal-ui-url", "https://ui.example/base", "--metrics-addr", "127.0.0.1:0"}, nil)
	require.NoError(t, err)
	assert.Equal(t, "https://ui.example/base", cfg.TemporalUIURL)
	assert.Equal(t, "127.0.0.1:0", cfg.MetricsAddr)

	_, err = load(t, server, nil, map[string]string{"RELAY_TEMPORAL_UI_URL": "temporal-ui:8080"})
	requireConfigError(t, err, "RELAY_TEMPORAL_UI_URL")

	// The Prometheus whose alerts the page lists is the API's setting.
	cfg, err = load(t, server, nil, map[string]string{"RELAY_PROMETHEUS_URL": "http://prometheus:9090/"})
	require.NoError(t, err)
	assert.Equal(t, "http://prometheus:9090", cfg.PrometheusURL)
	_, err = load(t, server, nil, map[string]string{"RELAY_PROMETHEUS_URL": "prometheus:9090"})
	requireConfigError(t, err, "RELAY_PROMETHEUS_URL")
	_, err = load(t, worker, nil, map[string]string{"RELAY_METRICS_ADDR": "9090"})
	requireConfigError(t, err, "RELAY_METRICS_ADDR")
}

func writeSecret(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

func TestSecretsFromFile(t *testing.T) {
	path := writeSecret(t, "  file-token\n")

	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"from file, trimmed", nil, map[string]string{"C42_API_TOKEN_FILE": path}, "file-token"},
		{"env beats file", nil, map[string]string{"C42_API_TOKEN": "env-token", "C42_API_TOKEN_FILE": path}, "env-token"},
		{"flag beats file", []string{"--c42-api-token", "flag-token"}, map[string]string{"C42_API_TOKEN_FILE": path}, "flag-token"},
		{"neither", nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := load(t, Upstream, tt.args, tt.env)
			require.NoError(t, err)
			assert.Equal(t, tt.want, cfg.C42.Token)
		})
	}

	// Every secret may come from a file.
	cfg, err := load(t, allGroups, nil, map[string]string{
		"DATABASE_URL_FILE":           writeSecret(t, "postgres://u:p@h/db\n"),
		"RELAY_API_KEYS_FILE":         writeSecret(t, "k1,k2\n"),
		"INCIDENTS_API_PASSWORD_FILE": writeSecret(t, "pw\n"),
		"KF_API_KEY_FILE":             writeSecret(t, "kfkey\n"),
	})
	require.NoError(t, err)
	assert.Equal(t, "postgres://u:p@h/db", cfg.DatabaseURL)
	assert.Equal(t, []string{"k1", "k2"}, cfg.APIKeys)
	assert.Equal(t, "pw", cfg.Incidents.Password)
	assert.Equal(t, "kfkey", cfg.KF.APIKey)

	// A non-secret is never read from a file.
	cfg, err = load(t, Upstream, nil, map[string]string{"INCIDENTS_API_USER_FILE": writeSecret(t, "u")})
	require.NoError(t, err)
	assert.Equal(t, "", cfg.Incidents.User)
}

func TestSecretFileErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	_, err := load(t, Upstream, nil, map[string]string{"KF_API_KEY_FILE": missing})
	cerr := requireConfigError(t, err, "KF_API_KEY_FILE")
	assert.Contains(t, cerr.Msg, "cannot read secret file")
	assert.Contains(t, cerr.Msg, missing)

	// A bad value read from a file is blamed on NAME_FILE, and not echoed.
	_, err = load(t, Store, nil, map[string]string{"DATABASE_URL_FILE": writeSecret(t, "mysql://u:hunter2@h/db")})
	cerr = requireConfigError(t, err, "DATABASE_URL_FILE")
	assert.Contains(t, cerr.Msg, "want postgres://")
	assert.NotContains(t, err.Error(), "hunter2")
}

func TestRedacted(t *testing.T) {
	cfg := Default()
	cfg.DatabaseURL = "postgres://u:db-s3cret@h/db"
	cfg.APIKeys = []string{"api-s3cret-1", "api-s3cret-2"}
	cfg.Incidents.Password = "pw-s3cret"
	cfg.Incidents.User = "alice"
	cfg.C42.Token = "tok-s3cret"
	cfg.KF.APIKey = "key-s3cret"
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}

	lines := cfg.Redacted(allGroups)
	require.Len(t, lines, len(settings))
	assert.IsIncreasing(t, lines, "sorted")

	all := strings.Join(lines, "\n")
	assert.NotContains(t, all, "s3cret")

	tests := []string{
		"DATABASE_URL=[redacted]",
		"RELAY_API_KEYS=[redacted]",
		"INCIDENTS_API_PASSWORD=[redacted]",
		"C42_API_TOKEN=[redacted]",
		"KF_API_KEY=[redacted]",
		"INCIDENTS_API_USER=alice",
		"RELAY_HTTP_ADDR=127.0.0.1:9000",
		"RELAY_TRUSTED_PROXIES=10.0.0.0/8",
		"INCIDENTS_REFRESH_INTERVAL=5m0s",
		"GEOIP_RATE_LIMIT=5",
		"KF_OUTAGES_SINCE=2022-01-01T00:00:00.000Z",
		"TEMPORAL_ADDRESS=",
	}
	for _, want := range tests {
		t.Run(want, func(t *testing.T) {
			assert.Contains(t, lines, want)
		})
	}

	// An unset secret shows as empty, so the log tells "not set" from "set".
	empty := Default()
	assert.Contains(t, empty.Redacted(Upstream), "C42_API_TOKEN=")

	// Only the asked-for groups.
	http := cfg.Redacted(HTTP)
	for _, l := range http {
		name, _, _ := strings.Cut(l, "=")
		found := false
		for _, s := range settings {
			if s.env == name {
				found = true
				assert.NotZero(t, s.group&HTTP, "%s is not an HTTP setting", name)
			}
		}
		assert.True(t, found, "unknown line %q", l)
	}
	assert.NotContains(t, strings.Join(http, "\n"), "INCIDENTS_API_PASSWORD")
}

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:9000", true},
		{"127.0.0.2:80", true},
		{"[::1]:9000", true},
		{"localhost:9000", true},
		{"0.0.0.0:9000", false},
		{"10.0.0.1:9000", false},
		{"[::]:9000", false},
		{":9000", false},
		{"example.com:80", false},
		{"127.0.0.1", false}, // no port: not an address
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			assert.Equal(t, tt.want, IsLoopback(tt.addr))
		})
	}
}

func TestErrorString(t *testing.T) {
	assert.Equal(t, "X: bad", (&Error{Name: "X", Msg: "bad"}).Error())
	assert.Equal(t, "bad", (&Error{Msg: "bad"}).Error())
}

// relay sim's ports: four, in sim.Names' order, each a port or 0.
func TestSimPorts(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		err  string
	}{
		{in: "9201,0,9203,9204", want: []int{9201, 0, 9203, 9204}},
		{in: "9201,9202,9203", err: "want 4 comma-separated ports"},
		{in: "9201,x,9203,9204", err: "want ports from 0 to 65535"},
		{in: "9201,70000,9203,9204", err: "want ports from 0 to 65535"},
	} {
		var got []int
		err := portsValue{p: &got, n: 4}.Set(tc.in)
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got)
	}
	assert.Equal(t, []int{9101, 9102, 9103, 9104}, Default().SimPorts)
}

// The payload keys and the workflow id key are checked at start, may come from files, and
// never show in an error.
func TestPayloadKeysAndWorkflowIDKey(t *testing.T) {
	_, keys, err := payloadcodec.NewKey("2026-12")
	require.NoError(t, err)
	idKey := strings.Repeat("k", MinWorkflowIDKey)
	cfg, err := load(t, Common, nil, map[string]string{
		"RELAY_PAYLOAD_KEYS_FILE": writeSecret(t, keys+"\n"), "RELAY_WORKFLOW_ID_KEY": idKey,
	})
	require.NoError(t, err)
	assert.Equal(t, keys, cfg.PayloadKeys)
	assert.Equal(t, idKey, cfg.WorkflowIDKey)
	assert.NotContains(t, fmt.Sprint(cfg.Redacted(Common)), strings.TrimPrefix(keys, "2026-12:"))

	_, err = load(t, Common, nil, map[string]string{"RELAY_PAYLOAD_KEYS": "k1:dG9vIHNob3J0"})
	cerr := requireConfigError(t, err, "RELAY_PAYLOAD_KEYS")
	assert.Contains(t, cerr.Error(), "32 random bytes")
	assert.NotContains(t, cerr.Error(), "dG9vIHNob3J0")
	_, err = load(t, Common, nil, map[string]string{"RELAY_WORKFLOW_ID_KEY": "short"})
	cerr = requireConfigError(t, err, "RELAY_WORKFLOW_ID_KEY")
	assert.NotContains(t, cerr.Error(), "short\"")

	cfg, err = load(t, HTTP, nil, map[string]string{"RELAY_CODEC_CORS_ORIGINS": "http://localhost:8080, http://ui.example"})
	require.NoError(t, err)
	assert.Equal(t, []string{"http://localhost:8080", "http://ui.example"}, cfg.CodecCORSOrigins)
}
