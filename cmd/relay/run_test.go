package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"relay/internal/config"
	"relay/internal/payloadcodec"
	"relay/internal/relaytest"
	"relay/internal/testenv"
	"relay/workflows"
)

func noEnv(string) string { return "" }

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestHelpAndUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"--help"}, noEnv, &out, &errOut))
	assert.Contains(t, out.String(), "relay <command> [flags]")
	for _, c := range commands {
		assert.Contains(t, out.String(), "\n  "+c.name+" ", "relay --help lists %s", c.name)
	}

	for _, cmd := range []string{"dev", "server", "worker", "sim"} {
		out.Reset()
		require.NoError(t, run(context.Background(), []string{cmd, "--help"}, noEnv, &out, &errOut), cmd)
		assert.Contains(t, out.String(), "Usage: relay "+cmd+" [flags]\n", cmd)
		assert.Contains(t, out.String(), "(env ", cmd)
	}
	// Only dev has the embedded server's flags; only the worker and dev the upstreams'.
	out.Reset()
	require.NoError(t, run(context.Background(), []string{"server", "-h"}, noEnv, &out, &errOut))
	assert.NotContains(t, out.String(), "-ui-addr")
	assert.NotContains(t, out.String(), "-kf-api-key")
	assert.Contains(t, out.String(), "-api-keys")

	// A group's name alone, or with --help, shows its subcommands.
	out.Reset()
	require.NoError(t, run(context.Background(), []string{"history", "--help"}, noEnv, &out, &errOut))
	assert.Contains(t, out.String(), "Usage: relay history <subcommand>")
	assert.Regexp(t, `(?m)^  record\s+record every workflow's history`, out.String())
	assert.Regexp(t, `(?m)^  replay\s+replay histories`, out.String())
	for args, want := range map[string]string{
		"history record --help": "Usage: relay history record [flags]\n",
		"history replay -help":  "Usage: relay history replay [flags] FILE...\n",
		"soak --help":           "Usage: relay soak [flags]\n",
	} {
		out.Reset()
		require.NoError(t, run(context.Background(), strings.Fields(args), noEnv, &out, &errOut), args)
		assert.Contains(t, out.String(), want, args)
	}
	assert.Empty(t, errOut.String(), "help goes to stdout")
}

// Every usage mistake is a *usageError (exit 2), one line that names what is wrong.
func TestUsageMistakesAreOneLineAndExitCode2(t *testing.T) {
	cases := map[string]struct {
		args []string
		want string
	}{
		"no command":         {nil, "no command given (see 'relay --help')"},
		"unknown command":    {[]string{"deploy"}, `unknown command "deploy", want one of dev, server, worker, sim, history, bench, soak`},
		"bad flag value":     {[]string{"dev", "--http-addr", "nonsense"}, `dev: invalid value "nonsense" for flag -http-addr`},
		"unknown flag":       {[]string{"server", "--nope"}, "server: flag provided but not defined: -nope (see 'relay server --help')"},
		"flag of another":    {[]string{"sim", "--database-url", "sqlite:x"}, "-database-url"},
		"stray argument":     {[]string{"dev", "extra"}, `dev: unexpected argument "extra"`},
		"stray after flags":  {[]string{"worker", "--log-level", "warn", "x"}, `worker: unexpected argument "x"`},
		"no subcommand":      {[]string{"history"}, "history: no subcommand given (record or replay) (see 'relay history --help')"},
		"unknown subcommand": {[]string{"history", "rewind"}, `history: unknown subcommand "rewind" (record or replay)`},
		"no history files":   {[]string{"history", "replay"}, "history replay: name at least one history file"},
		"history flag":       {[]string{"history", "record", "--dirr", "x"}, "history record: flag provided but not defined: -dirr"},
		"soak argument":      {[]string{"soak", "now"}, `soak: unexpected argument "now"`},
		"soak bad flag":      {[]string{"soak", "--duration", "long"}, `soak: invalid value "long" for flag -duration`},
		"bench scenario":     {[]string{"bench", "nonsense"}, `bench: unknown scenario "nonsense"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tc.args, noEnv, &out, &errOut)
			require.Error(t, err)
			var usageErr *usageError
			assert.True(t, errors.As(err, &usageErr), "want a *usageError, got %T: %v", err, err)
			assert.Equal(t, 2, exitCode(err))
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "\n", "one line")
			assert.Empty(t, out.String(), "nothing on stdout")
		})
	}
}

// Bad configuration (a variable's value, a combination the command refuses) is a
// *config.Error naming the variable: exit 2 as well, and one line.
func TestBadConfigurationIsOneLineAndExitCode2(t *testing.T) {
	cases := map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"bad env duration": {[]string{"dev"}, map[string]string{"C42_CACHE_TTL": "soon"},
			"dev: C42_CACHE_TTL: want a positive duration"},
		"bad env url": {[]string{"worker"}, map[string]string{"KF_API_URL": "ftp://x"}, "KF_API_URL"},
		"bad burst":   {[]string{"server"}, map[string]string{"RELAY_SUBMIT_BURST": "0"}, "RELAY_SUBMIT_BURST: want a positive"},
		"bad cache size": {[]string{"server"}, map[string]string{"C42_CACHE_SIZE": "many"},
			"C42_CACHE_SIZE: want a positive whole number"},
		"worker needs urls": {[]string{"worker"}, map[string]string{"TEMPORAL_ADDRESS": "127.0.0.1:1"},
			"INCIDENTS_API_URL: required"},
		"public dev without key": {[]string{"dev", "--http-addr", "0.0.0.0:9000", "--data-dir", t.TempDir()}, nil,
			"RELAY_API_KEYS"},
		"bad sim knobs": {[]string{"sim"}, map[string]string{"RELAY_SIM_KNOBS": "geoip:speed=11"},
			`RELAY_SIM_KNOBS: geoip: unknown knob "speed"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tc.args, envOf(tc.env), &out, &errOut)
			require.Error(t, err)
			var cfgErr *config.Error
			assert.True(t, errors.As(err, &cfgErr), "want a *config.Error (exit code 2), got %T: %v", err, err)
			assert.Equal(t, 2, exitCode(err))
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "\n", "one line")
		})
	}
}

func TestExitCodes(t *testing.T) {
	assert.Equal(t, 0, exitCode(nil))
	assert.Equal(t, 2, exitCode(usagef("bad")))
	assert.Equal(t, 2, exitCode(&config.Error{Name: "X", Msg: "bad"}))
	assert.Equal(t, 1, exitCode(errors.New("listen tcp: address already in use")))
}

func TestParseFlagsTakesFlagsAnywhere(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	a := fs.String("a", "", "")
	b := fs.Bool("b", false, "")
	args, err := parseFlags(fs, []string{"one", "-a", "x", "two", "-b", "--", "-three", "four"})
	require.NoError(t, err)
	assert.Equal(t, []string{"one", "two", "-three", "four"}, args)
	assert.Equal(t, "x", *a)
	assert.True(t, *b)
}

// relay dev believes X-Forwarded-For from loopback unless RELAY_TRUSTED_PROXIES says
// otherwise; relay server believes nobody unless told.
func TestOnlyDevTrustsLoopbackProxiesByDefault(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	load := func(name string, env map[string]string, args ...string) config.Config {
		t.Helper()
		cmd, _, err := lookup([]string{name}, io.Discard, io.Discard)
		require.NoError(t, err)
		require.NotNil(t, cmd.config, name)
		cfg := cmd.config.defaults()
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		require.NoError(t, config.Bind(fs, &cfg, cmd.config.groups).Load(args, envOf(env)))
		return cfg
	}
	assert.Equal(t, loopback, load("dev", nil).TrustedProxies)
	assert.Empty(t, load("server", nil).TrustedProxies)
	ten := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	assert.Equal(t, ten, load("dev", map[string]string{"RELAY_TRUSTED_PROXIES": "10.0.0.0/8"}).TrustedProxies)
	assert.Equal(t, ten, load("server", map[string]string{"RELAY_TRUSTED_PROXIES": "10.0.0.0/8"}).TrustedProxies)
	assert.Empty(t, load("dev", nil, "--trusted-proxies=").TrustedProxies, "an empty flag: dev trusts nobody")

	assert.Equal(t, "127.0.0.0/8, ::1 (dev default: X-Forwarded-For from loopback is believed)", describeProxies(loopback))
	assert.Equal(t, "10.0.0.0/8, 192.0.2.7 (RELAY_TRUSTED_PROXIES)",
		describeProxies(append(ten, netip.MustParsePrefix("192.0.2.7/32"))))
	assert.Contains(t, describeProxies(nil), "none")

	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"dev", "--help"}, noEnv, &out, io.Discard))
	assert.Contains(t, out.String(), "(default 127.0.0.0/8,::1/128)")
	out.Reset()
	require.NoError(t, run(context.Background(), []string{"server", "--help"}, noEnv, &out, io.Discard))
	assert.NotContains(t, out.String(), "(default 127.0.0.0/8")
}

var httpLine = regexp.MustCompile(`HTTP API\s+http://(\S+)`)

// startDev runs `relay dev` in the background and waits for /readyz; stop cancels it and
// returns run's error. It returns what relay dev printed so far, too.
func startDev(t *testing.T, args []string, env map[string]string) (base string, out *testenv.SyncBuffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out = &testenv.SyncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"dev"}, args...), envOf(env), out, testWriter{t}) }()

	testenv.WaitFor(t, 30*time.Second, func() error {
		select {
		case err := <-done:
			cancel()
			t.Fatalf("relay dev stopped before it was ready: %v\nstdout:\n%s", err, out.String())
		default:
		}
		m := httpLine.FindStringSubmatch(out.String())
		if m == nil {
			return testenv.Waitf("no HTTP API address printed yet; stdout:\n%s", out.String())
		}
		base = "http://" + m[1]
		if status := getStatus(http.DefaultClient, base+"/readyz"); status != http.StatusOK {
			return testenv.Waitf("GET /readyz: %d", status)
		}
		return nil
	})
	for _, want := range []string{"Temporal", "simulator incidents", "simulator c42", "simulator geoip", "simulator kf"} {
		assert.Contains(t, out.String(), want)
	}
	if env["TEMPORAL_ADDRESS"] != "" {
		assert.Contains(t, out.String(), env["TEMPORAL_ADDRESS"]+" (namespace default)")
		assert.NotContains(t, out.String(), "embedded")
	} else {
		assert.Contains(t, out.String(), "(embedded, namespace default)")
	}
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(45 * time.Second):
				runErr = errors.New("relay dev did not stop within 45s")
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return base, out, stop
}

// testWriter sends a command's logs to the test log under go test -v.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	if testing.Verbose() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// The durability promise at its smallest: a workflow sleeping on a timer when relay dev
// stops completes after relay dev starts again on the same data dir.
func TestDevStoppedMidWorkflowFinishesItAfterRestart(t *testing.T) {
	testenv.EndToEnd(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	temporalAddr := testenv.FreeAddr(t)
	args := []string{"--http-addr", "127.0.0.1:0", "--temporal-listen", temporalAddr, "--ui-addr", "off", "--data-dir", dataDir}

	_, _, stop := startDev(t, args, nil)
	c := devClient(t, temporalAddr, dataDir)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: workflows.PingWorkflowID("restart"), TaskQueue: workflows.TaskQueue,
	}, workflows.PingWorkflowType, workflows.PingInput{Message: "still here", Sleep: "3s"})
	require.NoError(t, err)
	c.Close()
	require.NoError(t, stop(), "graceful stop")

	// The workflow is mid-sleep: nothing runs it until relay dev is back.
	_, _, stop = startDev(t, args, nil)
	c = devClient(t, temporalAddr, dataDir) // the keys dev made at its first start
	defer c.Close()
	var res workflows.PingResult
	require.NoError(t, c.GetWorkflow(ctx, first.GetID(), first.GetRunID()).Get(ctx, &res))
	assert.Equal(t, "still here", res.Message)
	require.NoError(t, stop())
}

// The README's geolocation example: on relay dev, an event submitted from this machine
// with X-Forwarded-For is placed at that address, since dev believes loopback by default.
func TestDevBelievesForwardedForFromLoopback(t *testing.T) {
	testenv.EndToEnd(t)
	base, out, stop := startDev(t, []string{"--http-addr", "127.0.0.1:0", "--temporal-listen", "127.0.0.1:0",
		"--ui-addr", "off", "--data-dir", t.TempDir()}, nil)
	assert.Regexp(t, `trusted proxies\s+127\.0\.0\.0/8, ::1 \(dev default: X-Forwarded-For from loopback is believed\)`,
		out.String())

	c := &http.Client{Timeout: 30 * time.Second}
	id := submitFrom(t, c, base, "81.2.69.142")
	var ev struct {
		Data struct {
			IP       string          `json:"ip"`
			State    string          `json:"state"`
			Location json.RawMessage `json:"location"`
		} `json:"data"`
	}
	testenv.WaitFor(t, time.Minute, func() error {
		if err := getJSON(c, base+"/event/"+id, &ev); err != nil {
			return err
		}
		if ev.Data.State != "located" {
			return testenv.Waitf("event %s is %s", id, ev.Data.State)
		}
		return nil
	})
	assert.Equal(t, "81.2.69.142", ev.Data.IP)
	assert.Contains(t, string(ev.Data.Location), `"country"`)
	require.NoError(t, stop())
}

// Production shape: `relay server` and `relay worker` as separate commands against one
// Temporal server (here the test environment's embedded one).
func TestServerAndWorkerCommandsAgainstATemporalServer(t *testing.T) {
	testenv.EndToEnd(t)
	env := relaytest.Start(t)
	cfg := map[string]string{
		"TEMPORAL_ADDRESS":  env.Config.TemporalAddress,
		"DATABASE_URL":      "sqlite:" + filepath.Join(t.TempDir(), "relay.db"),
		"INCIDENTS_API_URL": env.Config.Incidents.URL, "C42_API_URL": env.Config.C42.URL,
		"GEOIP_API_URL": env.Config.GeoIP.URL, "KF_API_URL": env.Config.KF.URL,
		"RELAY_HTTP_ADDR": "127.0.0.1:0",
	}
	ctx, cancel := context.WithCancel(context.Background())
	serverOut, workerOut := &testenv.SyncBuffer{}, &testenv.SyncBuffer{}
	serverDone, workerDone := make(chan error, 1), make(chan error, 1)
	go func() { serverDone <- run(ctx, []string{"server"}, envOf(cfg), serverOut, testWriter{t}) }()
	go func() { workerDone <- run(ctx, []string{"worker"}, envOf(cfg), workerOut, testWriter{t}) }()

	addr := regexp.MustCompile(`HTTP API on http://(\S+),`)
	running := map[string]chan error{"server": serverDone, "worker": workerDone}
	waitRunning(t, running, func() error {
		m := addr.FindStringSubmatch(serverOut.String())
		if m == nil {
			return testenv.Waitf("relay server printed no address yet")
		}
		if status := getStatus(http.DefaultClient, "http://"+m[1]+"/readyz"); status != http.StatusOK {
			return testenv.Waitf("relay server: GET /readyz: %d", status)
		}
		return nil
	})
	waitRunning(t, running, func() error {
		if !strings.Contains(workerOut.String(), "polling task queues") {
			return testenv.Waitf("relay worker not polling yet")
		}
		return nil
	})

	cancel()
	for name, done := range running {
		select {
		case err := <-done:
			assert.NoError(t, err, name)
		case <-time.After(45 * time.Second):
			t.Fatalf("relay %s did not stop", name)
		}
	}
}

// relay sim serves on fixed ports: they must be free, or the test says which is not.
func requireSimPortsFree(t *testing.T) {
	t.Helper()
	for _, port := range []int{9101, 9102, 9103, 9104} {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		require.NoError(t, err, "relay sim needs port %d free", port)
		l.Close()
	}
}

func TestSimCommandServesTheFourSimulators(t *testing.T) {
	requireSimPortsFree(t)
	ctx, cancel := context.WithCancel(context.Background())
	out := &testenv.SyncBuffer{}
	done := make(chan error, 1)
	go func() {
		knobs := envOf(map[string]string{"RELAY_SIM_KNOBS": "latency=1ms;geoip:rate-limit=3"})
		done <- run(ctx, []string{"sim"}, knobs, out, testWriter{t})
	}()
	testenv.WaitFor(t, 10*time.Second, func() error {
		if !strings.Contains(out.String(), "kf") {
			return testenv.Waitf("relay sim printed %q", out.String())
		}
		return nil
	})
	assert.Contains(t, out.String(), "http://127.0.0.1:9103")
	assert.Contains(t, out.String(), "rate-limit=3")

	resp, err := http.Get("http://127.0.0.1:9104/outages")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "kf without x-api-key")
	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("relay sim did not stop")
	}
}

// A simulator port already taken is a failure to start (exit 1) that names the simulator
// and the address, not a bad RELAY_SIM_KNOBS.
func TestSimCommandPortTakenIsARuntimeFailure(t *testing.T) {
	requireSimPortsFree(t)
	l, err := net.Listen("tcp", "127.0.0.1:9103")
	require.NoError(t, err)
	defer l.Close()

	err = run(context.Background(), []string{"sim"}, noEnv, io.Discard, io.Discard)
	require.Error(t, err)
	assert.Equal(t, 1, exitCode(err), "%v", err)
	assert.True(t, strings.HasPrefix(err.Error(), "start simulator geoip on 127.0.0.1:9103: listen tcp 127.0.0.1:9103: "),
		err.Error())
	assert.Contains(t, err.Error(), "address already in use")
	assert.NotContains(t, err.Error(), "RELAY_SIM_KNOBS")
	requireSimPortsFreeAgain(t)
}

// requireSimPortsFreeAgain checks that a failed start released the ports it had bound.
func requireSimPortsFreeAgain(t *testing.T) {
	t.Helper()
	for _, port := range []int{9101, 9102} {
		testenv.WaitFor(t, 2*time.Second, func() error {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
			if err != nil {
				return err
			}
			return l.Close()
		})
	}
}

// waitRunning waits for check like testenv.WaitFor, for up to 30 s; a command in running
// that stops meanwhile fails the test with its error instead of a time-out.
func waitRunning(t *testing.T, running map[string]chan error, check func() error) {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, func() error {
		for name, done := range running {
			select {
			case err := <-done:
				t.Fatalf("relay %s stopped: %v", name, err)
			default:
			}
		}
		return check()
	})
}

// devClient dials the server of the relay dev whose data dir is dataDir, with the payload
// keys that dev made and keeps there.
func devClient(t *testing.T, addr, dataDir string) client.Client {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "payload-keys"))
	require.NoError(t, err, "dev keeps its payload keys in its data dir")
	keys, err := payloadcodec.ParseKeys(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	codec, err := payloadcodec.New(keys)
	require.NoError(t, err)
	c, err := client.Dial(client.Options{HostPort: addr, Logger: quietLogger{}, DataConverter: payloadcodec.DataConverter(codec)})
	require.NoError(t, err)
	return c
}

type quietLogger struct{}

func (quietLogger) Debug(string, ...interface{}) {}
func (quietLogger) Info(string, ...interface{})  {}
func (quietLogger) Warn(string, ...interface{})  {}
func (quietLogger) Error(string, ...interface{}) {}

// With TEMPORAL_ADDRESS set, dev embeds no server and uses that one (here the test
// environment's), still starting the simulators, the worker and the API.
func TestDevUsesTemporalAddressInsteadOfEmbedding(t *testing.T) {
	testenv.EndToEnd(t)
	env := relaytest.Start(t)
	// The keys of the relay already on that server: both workers read what either wrote.
	base, _, stop := startDev(t, []string{"--http-addr", "127.0.0.1:0", "--ui-addr", "off", "--data-dir", t.TempDir()},
		map[string]string{"TEMPORAL_ADDRESS": env.Config.TemporalAddress,
			"RELAY_PAYLOAD_KEYS": env.Config.PayloadKeys, "RELAY_WORKFLOW_ID_KEY": env.Config.WorkflowIDKey})
	assert.Equal(t, http.StatusOK, getStatus(http.DefaultClient, base+"/readyz"))

	// A ping started on that server is answered (by either worker polling it).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run, err := env.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: workflows.PingWorkflowID("external"), TaskQueue: workflows.TaskQueue,
	}, workflows.PingWorkflowType, workflows.PingInput{Message: "external"})
	require.NoError(t, err)
	require.NoError(t, run.Get(ctx, nil))
	require.NoError(t, stop())
}
