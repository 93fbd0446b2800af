package app_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"relay/activities"
	"relay/internal/config"
	"relay/internal/relaytest"
	"relay/internal/sim"
	"relay/internal/testenv"
	"relay/workflows"
)

// The secrets of TestNoSecretLeaks: distinctive, and made of letters, digits and '-'
// only, so that no encoding on the way (JSON, URLs, log quoting) can disguise them.
const (
	leakAPIKey1      = "apikey-one-Qm7vXc2L9s"
	leakAPIKey2      = "apikey-two-Zr4pWn8K3d"
	leakIncidentUser = "incidents-user-Hb3Tq"
	leakIncidentPass = "incidents-pass-Vf9sKd2Q7w"
	leakC42Token     = "c42-token-Jq6wEr1Y5t"
	leakKFKey        = "kf-key-Ub5nMz7P2c"
	leakDBSecret     = "db-secret-Lx8cGt4H6j"
	// leakCanary is planted on purpose in a log line, an HTTP answer and a workflow's
	// input: the search must find it in each, or it could not find the others either.
	leakCanary = "canary-Nd3Rk8Fw1a"
)

// leakNeedles are the secrets in every form they could leak in: as they are, base64
// (standard and URL), and the Basic authorization the incidents API is sent.
func leakNeedles() map[string]string {
	raw := map[string]string{
		"RELAY_API_KEYS[0]":      leakAPIKey1,
		"RELAY_API_KEYS[1]":      leakAPIKey2,
		"INCIDENTS_API_PASSWORD": leakIncidentPass,
		"C42_API_TOKEN":          leakC42Token,
		"KF_API_KEY":             leakKFKey,
		"DATABASE_URL secret":    leakDBSecret,
		"canary":                 leakCanary,
	}
	needles := map[string]string{}
	for name, v := range raw {
		needles[name] = v
		needles[name+" (base64)"] = base64.StdEncoding.EncodeToString([]byte(v))
		needles[name+" (base64url)"] = base64.RawURLEncoding.EncodeToString([]byte(v))
	}
	needles["incidents Basic auth"] = base64.StdEncoding.EncodeToString([]byte(leakIncidentUser + ":" + leakIncidentPass))
	return needles
}

// leakKnobs make the simulators demand the secret credentials.
const leakKnobs = "incidents:credentials=" + leakIncidentUser + ":" + leakIncidentPass +
	";c42:credentials=" + leakC42Token + ";kf:credentials=" + leakKFKey

// haystack is one place relay wrote something: a log, an answer, a history event.
type haystack struct {
	where string
	data  []byte
}

// leak is a needle found in a haystack.
type leak struct {
	needle, where, context string
}

func (l leak) String() string { return fmt.Sprintf("%s in %s: …%s…", l.needle, l.where, l.context) }

// findLeaks searches every haystack for every needle.
func findLeaks(needles map[string]string, hay []haystack) []leak {
	names := make([]string, 0, len(needles))
	for name := range needles {
		names = append(names, name)
	}
	sort.Strings(names)
	var found []leak
	for _, h := range hay {
		for _, name := range names {
			if i := bytes.Index(h.data, []byte(needles[name])); i >= 0 {
				from, to := max(i-80, 0), min(i+len(needles[name])+80, len(h.data))
				found = append(found, leak{needle: name, where: h.where, context: fmt.Sprintf("%q", h.data[from:to])})
			}
		}
	}
	return found
}

// The search finds a secret planted in a log line, in a gzip answer, base64-encoded in a
// Basic header, and in a workflow payload as the history serialiser writes it.
func TestLeakSearchFindsPlantedSecrets(t *testing.T) {
	needles := leakNeedles()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(`{"token":"` + leakC42Token + `"}`))
	require.NoError(t, zw.Close())
	payload, err := proto.Marshal(&commonpb.Payload{Data: []byte(`{"key":"` + leakKFKey + `"}`)})
	require.NoError(t, err)
	ev := &historypb.HistoryEvent{EventId: 1, EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
		Attributes: &historypb.HistoryEvent_WorkflowExecutionStartedEventAttributes{
			WorkflowExecutionStartedEventAttributes: &historypb.WorkflowExecutionStartedEventAttributes{
				Input: &commonpb.Payloads{Payloads: []*commonpb.Payload{{Data: []byte(`{"password":"` + leakIncidentPass + `"}`)}}},
			}}}
	hay := []haystack{
		{"log", []byte(`{"level":"DEBUG","msg":"x","key":"` + leakAPIKey2 + `"}`)},
		{"clean", []byte("nothing to see " + leakIncidentUser)},
		{"basic", []byte("Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(leakIncidentUser+":"+leakIncidentPass)))},
		{"payload", payload},
	}
	hay = append(hay, answerHaystacks("gzip answer", http.Header{"Content-Encoding": {"gzip"}}, gz.Bytes())...)
	hay = append(hay, historyEventHaystacks("history", ev)...)

	where := map[string][]string{}
	for _, l := range findLeaks(needles, hay) {
		where[l.where] = append(where[l.where], l.needle)
	}
	assert.Equal(t, []string{"RELAY_API_KEYS[1]"}, where["log"])
	assert.Empty(t, where["clean"], "the user name alone is not a secret")
	assert.Contains(t, where["basic"], "incidents Basic auth")
	assert.Equal(t, []string{"KF_API_KEY"}, where["payload"])
	assert.Equal(t, []string{"C42_API_TOKEN"}, where["gzip answer (unzipped)"])
	assert.Equal(t, []string{"INCIDENTS_API_PASSWORD"}, where["history event 1 WorkflowExecutionStarted (binary)"])
}

// answerHaystacks is an HTTP answer's headers and body, unzipped too when gzip.
func answerHaystacks(where string, h http.Header, body []byte) []haystack {
	var head bytes.Buffer
	_ = h.Write(&head)
	out := []haystack{{where + " headers", head.Bytes()}, {where, body}}
	if h.Get("Content-Encoding") == "gzip" {
		if zr, err := gzip.NewReader(bytes.NewReader(body)); err == nil {
			plain, _ := io.ReadAll(zr)
			out = append(out, haystack{where + " (unzipped)", plain})
		}
	}
	return out
}

// historyEventHaystacks is one history event as protojson (what the Web UI and the CLI
// show) and as its wire bytes, where a payload's data appears verbatim (protojson writes
// it base64-encoded).
func historyEventHaystacks(where string, ev *historypb.HistoryEvent) []haystack {
	name := fmt.Sprintf("%s event %d %s", where, ev.GetEventId(), ev.GetEventType())
	js, _ := protojson.Marshal(ev)
	wire, _ := proto.Marshal(ev)
	return []haystack{{name + " (json)", js}, {name + " (binary)", wire}}
}

// logLines is each line of relay's log, a haystack of its own.
func logLines(log string) []haystack {
	var out []haystack
	for i, line := range strings.Split(log, "\n") {
		if line != "" {
			out = append(out, haystack{fmt.Sprintf("log line %d", i+1), []byte(line)})
		}
	}
	return out
}

// leakClient calls the API and keeps every answer relay sent, headers and body.
type leakClient struct {
	base string
	http *http.Client
	mu   sync.Mutex
	seen []haystack
}

func newLeakClient(env *relaytest.Env) *leakClient {
	// No transparent gzip: the bytes relay sent are the bytes searched.
	// Expect: 100-continue lets relay refuse an oversize body before it is sent.
	return &leakClient{base: env.BaseURL, http: &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{DisableCompression: true, ExpectContinueTimeout: 5 * time.Second}}}
}

// do sends a request with the first API key unless header sets Authorization itself.
func (c *leakClient) do(t *testing.T, method, path, body string, header ...string) (*http.Response, []byte) {
	t.Helper()
	var reader io.Reader
	if body != "" {
		reader = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, reader)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+leakAPIKey1)
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	resp, err := c.http.Do(req)
	require.NoError(t, err, "%s %s", method, path)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	c.mu.Lock()
	c.seen = append(c.seen, answerHaystacks(fmt.Sprintf("answer %d to %s %.80s", len(c.seen), method, path), resp.Header, b)...)
	c.mu.Unlock()
	return resp, b
}

func (c *leakClient) expect(t *testing.T, status int, method, path, body string, header ...string) []byte {
	t.Helper()
	resp, b := c.do(t, method, path, body, header...)
	require.Equal(t, status, resp.StatusCode, "%s %s: %s", method, path, b)
	return b
}

// TestNoSecretLeaks runs every job for real with a distinctive value in every secret
// setting, and some requests that fail, then searches every log line (debug, JSON),
// every answer relay sent, /metrics, the schedule and every workflow's history for each
// secret. It runs twice: once as `relay dev` with its simulators demanding credentials
// set by RELAY_SIM_KNOBS (which dev hands to its worker), once with the upstreams
// configured as in production, the secrets read from *_FILE and the environment.
func TestNoSecretLeaks(t *testing.T) {
	testenv.EndToEnd(t) // before the second run's simulators start
	groups := config.Common | config.HTTP | config.Store | config.Upstream | config.Embedded | config.Sim
	common := func() map[string]string {
		return map[string]string{
			"RELAY_TRUSTED_PROXIES":   "127.0.0.1/32",
			"RELAY_SUBMIT_RATE_LIMIT": "1000",
			"RELAY_LOG_LEVEL":         "debug",
			"RELAY_LOG_FORMAT":        "json",
			"RELAY_METRICS_ADDR":      "127.0.0.1:0", // the worker's own /metrics, searched too
			// An event's merge workflow lives for the TTL; this test waits for every run to close.
			"C42_CACHE_TTL": "1s",
		}
	}
	dbURL := func(t *testing.T) string {
		// SQLite ignores the query; relay must treat the whole URL as secret all the same
		// (a PostgreSQL URL's password is where this secret would be).
		return "sqlite:" + filepath.Join(t.TempDir(), "relay.db") + "?auth=" + leakDBSecret
	}

	t.Run("dev simulators, credentials from RELAY_SIM_KNOBS", func(t *testing.T) {
		env := common()
		env["RELAY_API_KEYS"] = leakAPIKey1 + ", " + leakAPIKey2
		env["DATABASE_URL"] = dbURL(t)
		env["RELAY_SIM_KNOBS"] = leakKnobs
		runLeakCheck(t, groups, env, nil)
	})

	t.Run("configured upstreams, secrets from files and environment", func(t *testing.T) {
		fleet, err := sim.Start("127.0.0.1", sim.Names, nil, leakKnobs)
		require.NoError(t, err)
		t.Cleanup(func() { _ = fleet.Close(context.Background()) })
		dir := t.TempDir()
		file := func(name, v string) string {
			p := filepath.Join(dir, name)
			require.NoError(t, os.WriteFile(p, []byte(v+"\n"), 0o600))
			return p
		}
		env := common()
		env["RELAY_API_KEYS_FILE"] = file("keys", leakAPIKey1+","+leakAPIKey2)
		env["DATABASE_URL_FILE"] = file("db", dbURL(t))
		env["INCIDENTS_API_URL"] = fleet.URL(sim.Incidents)
		env["INCIDENTS_API_USER"] = leakIncidentUser
		env["INCIDENTS_API_PASSWORD_FILE"] = file("incidents", leakIncidentPass)
		env["C42_API_URL"] = fleet.URL(sim.C42)
		env["C42_API_TOKEN_FILE"] = file("c42", leakC42Token)
		env["GEOIP_API_URL"] = fleet.URL(sim.GeoIP)
		env["KF_API_URL"] = fleet.URL(sim.KF)
		env["KF_API_KEY"] = leakKFKey
		runLeakCheck(t, groups, env, fleet)
	})
}

// runLeakCheck loads the configuration from getenv as `relay dev` does, starts relay,
// runs the jobs and searches. fleet is the upstreams' simulators when the test runs them
// itself (nil: dev's own).
func runLeakCheck(t *testing.T, groups config.Group, getenv map[string]string, fleet *sim.Fleet) {
	logs := &testenv.SyncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var loaded config.Config
	env := relaytest.Start(t, relaytest.WithLogger(logger), relaytest.WithConfig(func(c *config.Config) {
		fs := flag.NewFlagSet("relay dev", flag.ContinueOnError)
		require.NoError(t, config.Bind(fs, c, groups).Load(nil, func(k string) string { return getenv[k] }))
		loaded = *c
	}))
	// What `relay dev` logs at start (cmd/relay), and the configuration as completed.
	logger.Debug("configuration", "command", "dev", "settings", loaded.Redacted(groups))
	logger.Debug("configuration completed", "settings", env.Config.Redacted(groups))
	require.ElementsMatch(t, []string{leakAPIKey1, leakAPIKey2}, env.Config.APIKeys, "the keys were configured")
	if fleet == nil {
		fleet = env.Sims
		require.NotNil(t, fleet)
	}

	c := newLeakClient(env)
	runEveryJob(t, env, c, fleet)

	// The canary, planted where a leak would be: a log line, an answer, a workflow's input.
	logger.Info("planted on purpose", "value", leakCanary)
	c.expect(t, http.StatusNotFound, http.MethodGet, "/no-such-route/"+leakCanary, "")
	pingCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// In the clear, as a leak would be: relay's own client encrypts every payload.
	plain, err := client.NewClientFromExisting(env.Client, client.Options{DataConverter: converter.GetDefaultDataConverter()})
	require.NoError(t, err)
	defer plain.Close()
	ping, err := plain.ExecuteWorkflow(pingCtx, client.StartWorkflowOptions{
		ID: workflows.PingWorkflowID("leak-canary"), TaskQueue: workflows.TaskQueue,
	}, workflows.PingWorkflowType, workflows.PingInput{Message: leakCanary})
	require.NoError(t, err)
	require.NoError(t, ping.Get(pingCtx, nil))

	metrics := c.expect(t, http.StatusOK, http.MethodGet, "/metrics", "")
	require.NotEmpty(t, env.MetricsAddr)
	resp, err := http.Get("http://" + env.MetricsAddr + "/metrics")
	require.NoError(t, err)
	ownMetrics, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	hay := append(c.seen, haystack{"/metrics", metrics}, haystack{"/metrics of RELAY_METRICS_ADDR", ownMetrics})
	hay = append(hay, temporalHaystacks(t, env)...)
	log := logs.String() // last: the log of everything above
	lines := logLines(log)
	hay = append(hay, lines...)

	kinds := map[string]bool{}
	var leaks []string
	for _, l := range findLeaks(leakNeedles(), hay) {
		if strings.HasPrefix(l.needle, "canary") {
			kind, _, _ := strings.Cut(l.where, " ")
			kinds[kind] = true
			continue
		}
		leaks = append(leaks, l.String())
	}
	for _, kind := range []string{"log", "answer", "history"} {
		assert.True(t, kinds[kind], "the canary planted in a %s was not found: the search is broken", kind)
	}
	t.Logf("searched %d haystacks (%d log lines, %d KiB of log)", len(hay), len(lines), len(log)>>10)
	if len(leaks) > 0 {
		t.Errorf("secrets leaked in %d places:\n%s", len(leaks), strings.Join(leaks[:min(len(leaks), 40)], "\n"))
	}
}

// runEveryJob drives each of relay's jobs over HTTP to its end, and some requests that fail.
func runEveryJob(t *testing.T, env *relaytest.Env, c *leakClient, fleet *sim.Fleet) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, path := range []string{"/healthz", "/readyz", "/openapi.json", "/"} {
		c.expect(t, http.StatusOK, http.MethodGet, path, "")
	}

	// Incidents: the refresh the worker triggers at start, then one asked for.
	testenv.WaitFor(t, 90*time.Second, func() error {
		if resp, _ := c.do(t, http.MethodGet, "/incidents", ""); resp.StatusCode != http.StatusOK {
			return testenv.Waitf("no incident snapshot yet: GET /incidents answers %d", resp.StatusCode)
		}
		return nil
	})
	c.expect(t, http.StatusOK, http.MethodGet, "/incidents", "", "Accept-Encoding", "gzip")
	c.expect(t, http.StatusOK, http.MethodHead, "/incidents", "")
	refresh := startedRun(t, c.expect(t, http.StatusAccepted, http.MethodPost, "/incidents/refresh", ""))
	require.NoError(t, env.Client.GetWorkflow(ctx, refresh.WorkflowID, refresh.RunID).Get(ctx, nil))

	// The merge: a miss, then a hit.
	for _, cache := range []string{"MISS", "HIT"} {
		resp, b := c.do(t, http.MethodGet, "/events-with-subscriptions/"+sim.C42EventTeamSync, "")
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		assert.Equal(t, cache, resp.Header.Get("X-Cache"))
	}

	// Events from public clients behind a trusted proxy (this test's loopback).
	ips := []string{"81.2.69.142", "8.10.20.30", "203.0.113.50"}
	var ids []string
	for i, ip := range ips {
		b := c.expect(t, http.StatusAccepted, http.MethodPost, "/event/submit/", fmt.Sprintf(`{"name":"login %d","status_code":"200"}`, i),
			"X-Forwarded-For", ip, "Content-Type", "application/json")
		var ok struct {
			Data struct {
				TaskID string `json:"task_id"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(b, &ok))
		ids = append(ids, ok.Data.TaskID)
	}
	geo, _ := fleet.Sim(sim.GeoIP).Routes().(*sim.GeoIPAPI)
	for i, id := range ids {
		var v struct {
			Data eventView `json:"data"`
		}
		testenv.WaitFor(t, time.Minute, func() error {
			require.NoError(t, json.Unmarshal(c.expect(t, http.StatusOK, http.MethodGet, "/event/"+id, ""), &v))
			if v.Data.State == "pending" {
				return testenv.Waitf("event %s from %s still pending", id, ips[i])
			}
			return nil
		})
		assert.Equal(t, ips[i], v.Data.IP, "the client behind the trusted proxy")
		if geo != nil && geo.Placeable(ips[i]) {
			assert.Equal(t, "located", v.Data.State, ips[i])
		}
	}
	c.expect(t, http.StatusOK, http.MethodGet, "/events?limit=10", "")

	// An outage sync of kingfisher, to its end.
	c.expect(t, http.StatusAccepted, http.MethodPost, "/sites/kingfisher/outage-sync", "")
	st := waitLeakSync(t, c, "kingfisher")
	require.Equal(t, "completed", st.State, "%+v", st.Error)
	require.NotNil(t, st.Result)
	assert.Positive(t, st.Result.Posted)

	// Every upstream call so far carried the configured secret: the worker used it.
	for _, name := range []string{sim.Incidents, sim.C42, sim.KF} {
		calls := fleet.Sim(name).Calls()
		require.NotEmpty(t, calls, name)
		for _, call := range calls {
			require.True(t, call.Authorized, "%s refused %s %s: the worker did not send the configured secret", name, call.Method, call.Path)
		}
	}

	// Requests that fail: no key, wrong keys, bad bodies, bad parameters.
	c.expect(t, http.StatusUnauthorized, http.MethodGet, "/incidents", "", "Authorization", "")
	c.expect(t, http.StatusUnauthorized, http.MethodGet, "/incidents", "", "Authorization", "Bearer "+leakAPIKey1+"x")
	c.expect(t, http.StatusUnauthorized, http.MethodGet, "/metrics", "", "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(leakAPIKey2)))
	c.expect(t, http.StatusUnauthorized, http.MethodPost, "/event/submit", `{"name":"x"}`, "Authorization", "Bearer nope")
	c.expect(t, http.StatusBadRequest, http.MethodPost, "/event/submit", `{"name":""}`)
	c.expect(t, http.StatusBadRequest, http.MethodPost, "/event/submit", `{"name":"x","password":"y"}`)
	c.expect(t, http.StatusBadRequest, http.MethodPost, "/event/submit", `not json`)
	c.expect(t, http.StatusRequestEntityTooLarge, http.MethodPost, "/event/submit", `{"name":"`+strings.Repeat("a", 2<<20)+`"}`,
		"Expect", "100-continue")
	c.expect(t, http.StatusBadRequest, http.MethodPost, "/sites/kingfisher/outage-sync", `{"since":"yesterday"}`)
	c.expect(t, http.StatusBadRequest, http.MethodGet, "/events-with-subscriptions/not!an!id", "")
	c.expect(t, http.StatusNotFound, http.MethodGet, "/event/no-such-task", "")
	c.expect(t, http.StatusMethodNotAllowed, http.MethodDelete, "/incidents", "")

	// The upstreams stop accepting relay's credentials: each job fails with their 401/403.
	for _, name := range []string{sim.Incidents, sim.C42, sim.KF} {
		s := fleet.Sim(name)
		k := s.Knobs()
		k.Credentials = "rotated-" + name + ":elsewhere"
		s.SetKnobs(k)
	}
	refresh = startedRun(t, c.expect(t, http.StatusAccepted, http.MethodPost, "/incidents/refresh", ""))
	err := env.Client.GetWorkflow(ctx, refresh.WorkflowID, refresh.RunID).Get(ctx, nil)
	require.Error(t, err)
	assert.Contains(t, applicationErrorTypes(err), activities.ErrUpstreamUnauthorized, "%v", err)
	c.expect(t, http.StatusBadGateway, http.MethodGet, "/events-with-subscriptions/"+sim.C42EventAllHands, "")
	c.expect(t, http.StatusAccepted, http.MethodPost, "/sites/norwich-pear-tree/outage-sync", "")
	st = waitLeakSync(t, c, "norwich-pear-tree")
	require.Equal(t, "failed", st.State)
	require.NotNil(t, st.Error)
	assert.Equal(t, activities.ErrUpstreamUnauthorized, st.Error.Type)
	c.expect(t, http.StatusOK, http.MethodGet, "/incidents", "") // the last good snapshot
	c.expect(t, http.StatusOK, http.MethodGet, "/", "")          // the status page, failures and all
}

type leakRun struct {
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
}

func startedRun(t *testing.T, body []byte) leakRun {
	t.Helper()
	var r leakRun
	require.NoError(t, json.Unmarshal(body, &r))
	require.NotEmpty(t, r.WorkflowID)
	return r
}

func waitLeakSync(t *testing.T, c *leakClient, site string) syncStatus {
	t.Helper()
	var st syncStatus
	testenv.WaitFor(t, 2*time.Minute, func() error {
		st = syncStatus{}
		require.NoError(t, json.Unmarshal(c.expect(t, http.StatusOK, http.MethodGet, "/sites/"+site+"/outage-sync", ""), &st))
		if st.State == "running" {
			return testenv.Waitf("sync of %s still running (run %s)", site, st.RunID)
		}
		return nil
	})
	return st
}

// temporalHaystacks is everything relay gave Temporal: the schedule, and every workflow
// run in the namespace (once all have closed), its visibility record and every event of
// its history: inputs, results, failures, activity inputs and results, memos.
func temporalHaystacks(t *testing.T, env *relaytest.Env) []haystack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var hay []haystack
	sched, err := env.Client.WorkflowService().DescribeSchedule(ctx, &workflowservice.DescribeScheduleRequest{
		Namespace: env.Config.TemporalNamespace, ScheduleId: workflows.IncidentsScheduleID,
	})
	require.NoError(t, err)
	js, _ := protojson.Marshal(sched)
	wire, _ := proto.Marshal(sched)
	hay = append(hay, haystack{"schedule (json)", js}, haystack{"schedule (binary)", wire})

	// Visibility lags the runs a little: wait until every run has closed and is listed so.
	var runs []*workflowservice.ListWorkflowExecutionsResponse
	testenv.WaitFor(t, time.Minute, func() error {
		runs = runs[:0]
		var open []string
		var token []byte
		for {
			resp, err := env.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
				Namespace: env.Config.TemporalNamespace, PageSize: 500, NextPageToken: token,
			})
			require.NoError(t, err)
			runs = append(runs, resp)
			for _, e := range resp.GetExecutions() {
				if e.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
					open = append(open, e.GetExecution().GetWorkflowId())
				}
			}
			if token = resp.GetNextPageToken(); len(token) == 0 {
				break
			}
		}
		if len(open) > 0 {
			return testenv.Waitf("%d workflows still running: %v", len(open), open[:min(len(open), 10)])
		}
		return nil
	})

	types := map[string]int{}
	for _, page := range runs {
		for _, e := range page.GetExecutions() {
			id, run := e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId()
			types[e.GetType().GetName()]++
			where := "history of " + id + "/" + run
			js, _ := protojson.Marshal(e)
			wire, _ := proto.Marshal(e)
			hay = append(hay, haystack{where + " visibility (json)", js}, haystack{where + " visibility (binary)", wire})
			it := env.Client.GetWorkflowHistory(ctx, id, run, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			for it.HasNext() {
				ev, err := it.Next()
				require.NoError(t, err)
				hay = append(hay, historyEventHaystacks(where, ev)...)
			}
		}
	}
	for _, typ := range []string{workflows.AggregateIncidentsWorkflowType, workflows.MergeEventSubscriptionsWorkflowType,
		workflows.GeolocateWorkflowType, workflows.SyncSiteOutagesWorkflowType, workflows.PingWorkflowType} {
		assert.Positive(t, types[typ], "no %s run was searched", typ)
	}
	t.Logf("workflow runs searched: %v", types)
	return hay
}

// applicationErrorTypes lists the types of the application errors in err's chain.
func applicationErrorTypes(err error) []string {
	var types []string
	for ; err != nil; err = errors.Unwrap(err) {
		if a, ok := err.(*temporal.ApplicationError); ok {
			types = append(types, a.Type())
		}
	}
	return types
}
