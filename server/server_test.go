package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"relay/internal/testenv"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// harness is a handler built by New with test-only routes added, its log and its registry.
type harness struct {
	h   *gin.Engine
	log *testenv.SyncBuffer
	reg *prometheus.Registry
}

// internalDetail is what a failing test route returns; it must reach the log, never a client.
const internalDetail = "dial tcp 10.1.2.3:5432: password authentication failed for user relay"

func newHarness(t *testing.T, cfg Config, checks ...Check) *harness {
	t.Helper()
	logs := &testenv.SyncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	h := New(logger, cfg, Deps{Checks: checks, Registry: reg})
	addTestRoutes(h, logger)
	return &harness{h: h, log: logs, reg: reg}
}

// addTestRoutes registers routes that exist only in tests, behind New's middleware.
func addTestRoutes(r *gin.Engine, logger *slog.Logger) {
	r.POST("/test/decode", func(c *gin.Context) {
		v, err := decode[testReq](c)
		if err != nil {
			respondError(c, logger, err)
			return
		}
		respond(c, logger, http.StatusOK, v)
	})
	r.GET("/test/internal", func(c *gin.Context) {
		respondError(c, logger, fmt.Errorf("load snapshot: %w", errors.New(internalDetail)))
	})
	r.GET("/test/conflict", func(c *gin.Context) {
		respondError(c, logger, fmt.Errorf("start sync: %w", Errorf(CodeConflict, "a sync is already running")))
	})
	r.GET("/test/panic", func(c *gin.Context) {
		panic("boom: " + internalDetail)
	})
	r.GET("/test/abort", func(c *gin.Context) {
		panic(http.ErrAbortHandler)
	})
	r.POST("/test/length", func(c *gin.Context) {
		_, _ = io.Copy(io.Discard, c.Request.Body)
		respond(c, logger, http.StatusOK, gin.H{"content_length": c.Request.ContentLength, "transfer_encoding": c.Request.TransferEncoding})
	})
	r.GET("/test/ip", func(c *gin.Context) {
		c.String(http.StatusOK, c.ClientIP())
	})
	r.GET("/items/:id", func(c *gin.Context) {
		respond(c, logger, http.StatusOK, gin.H{"id": c.Param("id")})
	})
}

func (hs *harness) do(t *testing.T, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	hs.h.ServeHTTP(rec, req)
	return rec
}

func (hs *harness) get(t *testing.T, path string) *httptest.ResponseRecorder {
	t.Helper()
	return hs.do(t, httptest.NewRequest(http.MethodGet, path, nil))
}

// apiError is the error envelope as a client reads it.
type apiError struct {
	Error struct {
		Code    string            `json:"code"`
		Message string            `json:"message"`
		Fields  map[string]string `json:"fields"`
	} `json:"error"`
}

// errorOf decodes the error envelope of rec, insisting that it is JSON with a code.
func errorOf(t *testing.T, rec *httptest.ResponseRecorder) apiError {
	t.Helper()
	return parseError(t, rec.Header(), rec.Body.Bytes())
}

func parseError(t *testing.T, h http.Header, body []byte) apiError {
	t.Helper()
	assert.Contains(t, h.Get("Content-Type"), "application/json", "error answers are JSON")
	var e apiError
	require.NoError(t, json.Unmarshal(body, &e), "body: %s", body)
	require.NotEmpty(t, e.Error.Code, "body %s has no error code", body)
	require.NotEmpty(t, e.Error.Message, "body %s has no error message", body)
	return e
}

func TestHealthz(t *testing.T) {
	hs := newHarness(t, Config{})
	rec := hs.get(t, "/healthz")
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Contains(t, rec.Header().Get("Content-Type"), "application/json")
	assert.JSONEq(t, `{"status":"ok"}`, rec.Body.String())
}

func TestHealthzIgnoresFailingChecks(t *testing.T) {
	// /healthz is liveness: a dependency being down must not get the process restarted.
	hs := newHarness(t, Config{}, Check{Name: "database", Run: func(context.Context) error { return errors.New("down") }})
	rec := hs.get(t, "/healthz")
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{"status":"ok"}`, rec.Body.String())
}

func okCheck(name string) Check {
	return Check{Name: name, Run: func(context.Context) error { return nil }}
}

func failingCheck(name, msg string) Check {
	return Check{Name: name, Run: func(context.Context) error { return errors.New(msg) }}
}

func TestReadyzAllChecksPass(t *testing.T) {
	var calls sync.Map
	counted := func(name string) Check {
		return Check{Name: name, Run: func(ctx context.Context) error {
			_, hasDeadline := ctx.Deadline()
			calls.Store(name, hasDeadline)
			return nil
		}}
	}
	hs := newHarness(t, Config{}, counted("temporal"), counted("database"))
	rec := hs.get(t, "/readyz")
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{"status":"ready","checks":{"temporal":"ok","database":"ok"},"details":{"incidents_snapshot_age_seconds":null}}`, rec.Body.String())
	for _, name := range []string{"temporal", "database"} {
		hasDeadline, ok := calls.Load(name)
		if assert.True(t, ok, "check %s was not run", name) {
			assert.True(t, hasDeadline.(bool), "check %s ran without a deadline", name)
		}
	}
}

func TestReadyzWithoutChecksIsReady(t *testing.T) {
	hs := newHarness(t, Config{})
	rec := hs.get(t, "/readyz")
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{"status":"ready","checks":{},"details":{"incidents_snapshot_age_seconds":null}}`, rec.Body.String())
}

func TestReadyzNamesEachFailingCheck(t *testing.T) {
	hs := newHarness(t, Config{},
		failingCheck("temporal", "connection refused"),
		okCheck("cache"),
		failingCheck("database", "too many clients"),
	)
	rec := hs.get(t, "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	// Clients learn what is down; the reasons (which may name hosts) go to the log only.
	assert.JSONEq(t, `{
		"error": {"code": "unavailable", "message": "not ready: database: down; temporal: down"},
		"checks": {"temporal": "down", "cache": "ok", "database": "down"},
		"details": {"incidents_snapshot_age_seconds": null}
	}`, rec.Body.String())
	assert.Contains(t, hs.log.String(), "connection refused")
	assert.Contains(t, hs.log.String(), "too many clients")
}

func TestReadyzCheckThatIgnoresItsDeadlineOrPanicsReadsAsDown(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	defer close(release)
	stuck := Check{Name: "temporal", Run: func(context.Context) error { <-release; return nil }}
	panicky := Check{Name: "database", Run: func(context.Context) error { panic("boom") }}
	hs := newHarness(t, Config{}, stuck, panicky)

	start := time.Now()
	rec := hs.get(t, "/readyz")
	assert.Less(t, time.Since(start), readyTimeout+time.Second, "the probe waited on a stuck check")
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	var body struct {
		Checks map[string]string `json:"checks"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	assert.Equal(t, map[string]string{"temporal": "no answer within 2s", "database": "down"}, body.Checks)
	assert.Contains(t, hs.log.String(), "boom")
}

func TestReadyzHungCheckReadsAsDown(t *testing.T) {
	t.Parallel()
	hung := Check{Name: "temporal", Run: func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}}
	hs := newHarness(t, Config{}, hung, okCheck("database"))

	start := time.Now()
	rec := hs.get(t, "/readyz")
	took := time.Since(start)

	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.GreaterOrEqual(t, took, readyTimeout-100*time.Millisecond, "answered before the timeout: %v", took)
	assert.Less(t, took, readyTimeout+2*time.Second, "the probe hung: %v", took)
	e := errorOf(t, rec)
	assert.Equal(t, CodeUnavailable, e.Error.Code)
	assert.Equal(t, "not ready: temporal: down", e.Error.Message)
	assert.Contains(t, hs.log.String(), context.DeadlineExceeded.Error())
	var body struct {
		Checks map[string]string `json:"checks"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	assert.Equal(t, map[string]string{"temporal": "down", "database": "ok"}, body.Checks)
}

func TestReadyzChecksRunConcurrently(t *testing.T) {
	t.Parallel()
	// Two checks that each take most of the budget pass only if they run side by side.
	slow := func(name string) Check {
		return Check{Name: name, Run: func(ctx context.Context) error {
			select {
			case <-time.After(readyTimeout * 6 / 10):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}}
	}
	hs := newHarness(t, Config{}, slow("a"), slow("b"))
	rec := hs.get(t, "/readyz")
	assert.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
}

func TestUnknownRouteIsNotFound(t *testing.T) {
	hs := newHarness(t, Config{})
	for _, path := range []string{"/nope", "/healthz/", "/HEALTHZ", "/items", "/items/1/more"} {
		t.Run(path, func(t *testing.T) {
			rec := hs.get(t, path)
			assert.Equal(t, http.StatusNotFound, rec.Code)
			assert.Empty(t, rec.Header().Get("Location"), "must not redirect")
			assert.JSONEq(t, `{"error":{"code":"not_found","message":"no route for `+path+`"}}`, rec.Body.String())
		})
	}
}

func TestWrongMethodIsNotAllowed(t *testing.T) {
	hs := newHarness(t, Config{})
	tests := []struct {
		method, path, allow string
	}{
		{http.MethodPost, "/healthz", "GET"},
		{http.MethodDelete, "/readyz", "GET"},
		{http.MethodPut, "/metrics", "GET"},
		{http.MethodGet, "/test/decode", "POST"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			rec := hs.do(t, httptest.NewRequest(tt.method, tt.path, nil))
			assert.Equal(t, http.StatusMethodNotAllowed, rec.Code)
			assert.Equal(t, tt.allow, rec.Header().Get("Allow"))
			assert.JSONEq(t,
				`{"error":{"code":"method_not_allowed","message":"`+tt.method+` is not allowed on `+tt.path+`"}}`,
				rec.Body.String())
		})
	}
}

func TestInternalErrorIsHiddenAndLogged(t *testing.T) {
	hs := newHarness(t, Config{})
	req := httptest.NewRequest(http.MethodGet, "/test/internal", nil)
	req.Header.Set("X-Request-ID", "trace-internal-1")
	rec := hs.do(t, req)

	assert.Equal(t, http.StatusInternalServerError, rec.Code)
	assert.JSONEq(t, `{"error":{"code":"internal","message":"internal error"}}`, rec.Body.String())
	assert.NotContains(t, rec.Body.String(), "password")

	logs := hs.log.String()
	assert.Contains(t, logs, internalDetail, "the detail must be logged")
	assert.Contains(t, logs, "load snapshot", "the wrapping context must be logged")
	assert.Contains(t, logs, `"request_id":"trace-internal-1"`, "the log must carry the request id")
	assert.Contains(t, logs, `"route":"/test/internal"`)
	assert.Contains(t, logs, `"level":"ERROR"`)
}

func TestClientErrorIsShownAndNotLoggedAsError(t *testing.T) {
	hs := newHarness(t, Config{})
	rec := hs.get(t, "/test/conflict")
	assert.Equal(t, http.StatusConflict, rec.Code)
	assert.JSONEq(t, `{"error":{"code":"conflict","message":"a sync is already running"}}`, rec.Body.String())
	assert.NotContains(t, hs.log.String(), `"msg":"internal error"`)
}

func TestPanicIsInternalError(t *testing.T) {
	hs := newHarness(t, Config{})
	rec := hs.get(t, "/test/panic")
	assert.Equal(t, http.StatusInternalServerError, rec.Code)
	assert.JSONEq(t, `{"error":{"code":"internal","message":"internal error"}}`, rec.Body.String())
	assert.Contains(t, hs.log.String(), "panic: boom: "+internalDetail)

	// The server keeps serving afterwards.
	assert.Equal(t, http.StatusOK, hs.get(t, "/healthz").Code)
}

func TestPanicOverRealServerAnswers500(t *testing.T) {
	hs := newHarness(t, Config{})
	srv := httptest.NewServer(hs.h)
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/test/panic")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	assert.JSONEq(t, `{"error":{"code":"internal","message":"internal error"}}`, string(body))
}

func TestAbortHandlerPanicIsNotSwallowed(t *testing.T) {
	// http.ErrAbortHandler is net/http's way to drop a connection on purpose; the
	// recovery middleware must let it through.
	hs := newHarness(t, Config{})
	assert.PanicsWithValue(t, http.ErrAbortHandler, func() {
		hs.h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/test/abort", nil))
	})
}

var generatedID = regexp.MustCompile(`^[0-9a-f]{16}$`)

func TestRequestID(t *testing.T) {
	hs := newHarness(t, Config{})
	tests := []struct {
		name string
		in   *string
		echo bool
	}{
		{"absent", nil, false},
		{"empty", ptr(""), false},
		{"sane", ptr("abc-123"), true},
		{"sane with every allowed character", ptr("AZaz09._:-"), true},
		{"uuid", ptr("3f1c2a9e-8d7b-4c5e-9f0a-1b2c3d4e5f60"), true},
		{"64 characters", ptr(strings.Repeat("a", 64)), true},
		{"65 characters", ptr(strings.Repeat("a", 65)), false},
		{"very long", ptr(strings.Repeat("x", 4096)), false},
		{"space", ptr("abc 123"), false},
		{"slash", ptr("a/b"), false},
		{"markup", ptr("<script>alert(1)</script>"), false},
		{"quote", ptr(`a"b`), false},
		{"non-ASCII", ptr("idé"), false},
		{"log injection", ptr("a\tlevel=ERROR"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
			if tt.in != nil {
				req.Header.Set("X-Request-ID", *tt.in)
			}
			rec := hs.do(t, req)
			require.Equal(t, http.StatusOK, rec.Code)
			got := rec.Header().Values("X-Request-ID")
			require.Len(t, got, 1)
			if tt.echo {
				assert.Equal(t, *tt.in, got[0])
			} else {
				assert.Regexp(t, generatedID, got[0])
			}
		})
	}
}

func TestRequestIDsAreUnique(t *testing.T) {
	hs := newHarness(t, Config{})
	seen := map[string]bool{}
	for range 50 {
		id := hs.get(t, "/healthz").Header().Get("X-Request-ID")
		require.Regexp(t, generatedID, id)
		require.False(t, seen[id], "id %s generated twice", id)
		seen[id] = true
	}
}

func TestRequestIDOnErrorsAndInAccessLog(t *testing.T) {
	hs := newHarness(t, Config{})
	req := httptest.NewRequest(http.MethodGet, "/nope", nil)
	req.Header.Set("X-Request-ID", "req-404")
	rec := hs.do(t, req)
	assert.Equal(t, http.StatusNotFound, rec.Code)
	assert.Equal(t, "req-404", rec.Header().Get("X-Request-ID"))

	var line map[string]any
	for l := range strings.Lines(hs.log.String()) {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m))
		if m["msg"] == "http request" {
			line = m
		}
	}
	require.NotNil(t, line, "no access log line in %s", hs.log.String())
	assert.Equal(t, "req-404", line["request_id"])
	assert.Equal(t, "unmatched", line["route"])
	assert.Equal(t, "/nope", line["path"])
	assert.EqualValues(t, 404, line["status"])
	assert.Equal(t, "GET", line["method"])
	assert.Equal(t, "INFO", line["level"])
}

func ptr[T any](v T) *T { return &v }

func TestAPIKeys(t *testing.T) {
	hs := newHarness(t, Config{APIKeys: []string{"key-one", "key-two"}}, okCheck("database"))
	tests := []struct {
		name   string
		method string
		path   string
		auth   *string
		status int
	}{
		{"healthz needs no key", "GET", "/healthz", nil, 200},
		{"healthz with a wrong key still open", "GET", "/healthz", ptr("Bearer nope"), 200},
		{"readyz without key", "GET", "/readyz", nil, 401},
		{"metrics without key", "GET", "/metrics", nil, 401},
		{"unknown route without key", "GET", "/nope", nil, 401},
		{"post without key", "POST", "/test/decode", nil, 401},
		{"healthz with a trailing slash is not healthz", "GET", "/healthz/", nil, 401},
		{"first key", "GET", "/readyz", ptr("Bearer key-one"), 200},
		{"second key", "GET", "/readyz", ptr("Bearer key-two"), 200},
		{"key on metrics", "GET", "/metrics", ptr("Bearer key-two"), 200},
		{"key on unknown route reaches 404", "GET", "/nope", ptr("Bearer key-one"), 404},
		{"wrong key", "GET", "/readyz", ptr("Bearer key-three"), 401},
		{"prefix of a key", "GET", "/readyz", ptr("Bearer key-on"), 401},
		{"key with extra suffix", "GET", "/readyz", ptr("Bearer key-onex"), 401},
		{"both keys glued", "GET", "/readyz", ptr("Bearer key-onekey-two"), 401},
		{"no scheme", "GET", "/readyz", ptr("key-one"), 401},
		{"basic scheme", "GET", "/readyz", ptr("Basic a2V5LW9uZQ=="), 401},
		{"empty bearer", "GET", "/readyz", ptr("Bearer "), 401},
		{"bearer alone", "GET", "/readyz", ptr("Bearer"), 401},
		{"empty header", "GET", "/readyz", ptr(""), 401},
		{"scheme is case-insensitive", "GET", "/readyz", ptr("bearer key-one"), 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, nil)
			if tt.auth != nil {
				req.Header.Set("Authorization", *tt.auth)
			}
			rec := hs.do(t, req)
			require.Equal(t, tt.status, rec.Code, rec.Body.String())
			if tt.status == http.StatusUnauthorized {
				assert.Equal(t, `Bearer realm="relay"`, rec.Header().Get("WWW-Authenticate"))
				e := errorOf(t, rec)
				assert.Equal(t, CodeUnauthorized, e.Error.Code)
				assert.Contains(t, e.Error.Message, "Authorization: Bearer")
				assert.NotContains(t, rec.Body.String(), "key-one")
			} else {
				assert.Empty(t, rec.Header().Get("WWW-Authenticate"))
			}
		})
	}
}

func TestAPIKeysOffByDefault(t *testing.T) {
	hs := newHarness(t, Config{}, okCheck("database"))
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		assert.Equal(t, http.StatusOK, hs.get(t, path).Code, path)
	}
}

func TestAPIKeyRejectionIsCounted(t *testing.T) {
	hs := newHarness(t, Config{APIKeys: []string{"k"}})
	assert.Equal(t, http.StatusUnauthorized, hs.get(t, "/readyz").Code)
	assert.Equal(t, 1.0, counterValue(t, hs.reg, map[string]string{"route": "/readyz", "method": "GET", "status": "401"}))
}

func TestClientIP(t *testing.T) {
	tests := []struct {
		name    string
		trusted []string
		peer    string
		headers map[string]string
		want    string
	}{
		{"no proxies trusted: header ignored", nil, "10.0.0.5:4321", map[string]string{"X-Forwarded-For": "203.0.113.7"}, "10.0.0.5"},
		{"no proxies trusted: loopback peer not special", nil, "127.0.0.1:4321", map[string]string{"X-Forwarded-For": "203.0.113.7"}, "127.0.0.1"},
		{"no header", []string{"10.0.0.0/8"}, "10.0.0.5:4321", nil, "10.0.0.5"},
		{"trusted peer: forwarded client used", []string{"10.0.0.0/8"}, "10.0.0.5:4321", map[string]string{"X-Forwarded-For": "203.0.113.7"}, "203.0.113.7"},
		{"trusted single address", []string{"10.0.0.5/32"}, "10.0.0.5:4321", map[string]string{"X-Forwarded-For": "203.0.113.7"}, "203.0.113.7"},
		{"trusted peer: rightmost untrusted address wins", []string{"10.0.0.0/8"}, "10.0.0.5:4321", map[string]string{"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}, "203.0.113.7"},
		{"trusted peer: trusted hops skipped", []string{"10.0.0.0/8"}, "10.0.0.5:4321", map[string]string{"X-Forwarded-For": "203.0.113.7, 10.0.0.9"}, "203.0.113.7"},
		{"untrusted peer: spoofed header ignored", []string{"10.0.0.0/8"}, "192.0.2.1:4321", map[string]string{"X-Forwarded-For": "10.0.0.9"}, "192.0.2.1"},
		{"untrusted peer: spoofed public address ignored", []string{"10.0.0.0/8"}, "192.0.2.1:4321", map[string]string{"X-Forwarded-For": "203.0.113.7"}, "192.0.2.1"},
		{"other headers are not believed", []string{"10.0.0.0/8"}, "10.0.0.5:4321", map[string]string{"X-Real-IP": "203.0.113.7"}, "10.0.0.5"},
		{"garbage header from trusted peer", []string{"10.0.0.0/8"}, "10.0.0.5:4321", map[string]string{"X-Forwarded-For": "not-an-ip"}, "10.0.0.5"},
		{"IPv6 trusted peer", []string{"::1/128"}, "[::1]:4321", map[string]string{"X-Forwarded-For": "2001:db8::7"}, "2001:db8::7"},
		{"IPv6 untrusted peer", []string{"10.0.0.0/8"}, "[2001:db8::1]:4321", map[string]string{"X-Forwarded-For": "203.0.113.7"}, "2001:db8::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg Config
			for _, p := range tt.trusted {
				cfg.TrustedProxies = append(cfg.TrustedProxies, netip.MustParsePrefix(p))
			}
			hs := newHarness(t, cfg)
			req := httptest.NewRequest(http.MethodGet, "/test/ip", nil)
			req.RemoteAddr = tt.peer
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			rec := hs.do(t, req)
			require.Equal(t, http.StatusOK, rec.Code)
			assert.Equal(t, tt.want, rec.Body.String())
		})
	}
}

func TestClientIPOverRealServer(t *testing.T) {
	// Over a real connection the peer is 127.0.0.1; nobody trusted means a forged header
	// changes nothing.
	hs := newHarness(t, Config{})
	srv := httptest.NewServer(hs.h)
	defer srv.Close()
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/test/ip", nil)
	require.NoError(t, err)
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1", string(body))
}

// counterValue is the value of relay_http_requests_total with exactly labels, or 0.
func counterValue(t *testing.T, reg prometheus.Gatherer, labels map[string]string) float64 {
	t.Helper()
	m := findMetric(t, reg, "relay_http_requests_total", labels)
	if m == nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

func findMetric(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; !ok || want != l.GetValue() {
					continue metrics
				}
			}
			return m
		}
	}
	return nil
}

func TestMetrics(t *testing.T) {
	hs := newHarness(t, Config{})
	hs.get(t, "/healthz")
	hs.get(t, "/healthz")
	hs.get(t, "/items/1")
	hs.get(t, "/items/2")
	hs.get(t, "/nope")
	hs.get(t, "/nope/again")
	hs.do(t, httptest.NewRequest(http.MethodPost, "/healthz", nil))
	hs.get(t, "/test/internal")
	hs.get(t, "/test/panic")

	tests := []struct {
		route, method, status string
		want                  float64
	}{
		{"/healthz", "GET", "200", 2},
		{"/items/:id", "GET", "200", 2},
		{"unmatched", "GET", "404", 2},
		{"unmatched", "POST", "405", 1},
		{"/test/internal", "GET", "500", 1},
		{"/test/panic", "GET", "500", 1},
	}
	for _, tt := range tests {
		labels := map[string]string{"route": tt.route, "method": tt.method, "status": tt.status}
		assert.Equal(t, tt.want, counterValue(t, hs.reg, labels), "%v", labels)
	}
	// Raw paths never become labels.
	assert.Nil(t, findMetric(t, hs.reg, "relay_http_requests_total", map[string]string{"route": "/items/1", "method": "GET", "status": "200"}))
	assert.Nil(t, findMetric(t, hs.reg, "relay_http_requests_total", map[string]string{"route": "/nope", "method": "GET", "status": "404"}))

	hist := findMetric(t, hs.reg, "relay_http_request_duration_seconds", map[string]string{"route": "/healthz", "method": "GET"})
	require.NotNil(t, hist, "no latency histogram for /healthz")
	assert.EqualValues(t, 2, hist.GetHistogram().GetSampleCount())
	assert.Greater(t, hist.GetHistogram().GetSampleSum(), 0.0)
	assert.Len(t, hist.GetHistogram().GetBucket(), 14)
	hist = findMetric(t, hs.reg, "relay_http_request_duration_seconds", map[string]string{"route": "unmatched", "method": "GET"})
	require.NotNil(t, hist)
	assert.EqualValues(t, 2, hist.GetHistogram().GetSampleCount())

	// /metrics serves the same registry as Prometheus text.
	rec := hs.get(t, "/metrics")
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Contains(t, rec.Header().Get("Content-Type"), "text/plain")
	text := rec.Body.String()
	assert.Contains(t, text, `relay_http_requests_total{method="GET",route="/healthz",status="200"} 2`)
	assert.Contains(t, text, `relay_http_requests_total{method="GET",route="/items/:id",status="200"} 2`)
	assert.Contains(t, text, `relay_http_requests_total{method="GET",route="unmatched",status="404"} 2`)
	assert.Contains(t, text, `relay_http_request_duration_seconds_count{method="GET",route="/healthz"} 2`)
	assert.Contains(t, text, `relay_http_request_duration_seconds_bucket{method="GET",route="/healthz",le="+Inf"} 2`)
}

func TestMetricsServeOtherCollectorsOfTheRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	other := prometheus.NewGauge(prometheus.GaugeOpts{Name: "relay_test_other", Help: "a collector registered by someone else"})
	other.Set(42)
	reg.MustRegister(other)
	h := New(slog.New(slog.DiscardHandler), Config{}, Deps{Registry: reg})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Contains(t, rec.Body.String(), "relay_test_other 42")
}

func TestNewWithoutRegistry(t *testing.T) {
	h := New(slog.New(slog.DiscardHandler), Config{}, Deps{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Contains(t, rec.Body.String(), `relay_http_requests_total{method="GET",route="/healthz",status="200"} 1`)
}

func TestNewTwiceOnOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.DiscardHandler)
	var first, second *gin.Engine
	require.NotPanics(t, func() {
		first = New(logger, Config{}, Deps{Registry: reg})
		second = New(logger, Config{}, Deps{Registry: reg})
	})
	for _, h := range []*gin.Engine{first, second} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		require.Equal(t, http.StatusOK, rec.Code)
	}
	// Both handlers share the series.
	assert.Equal(t, 2.0, counterValue(t, reg, map[string]string{"route": "/healthz", "method": "GET", "status": "200"}))
}

func TestRegisterPanicsOnAConflictingMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "relay_http_requests_total", Help: "not a counter vec"}))
	assert.Panics(t, func() { newHTTPMetrics(reg) })
}

func TestStatus(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{Errorf(CodeInvalid, "x"), http.StatusBadRequest},
		{Errorf(CodeUnauthorized, "x"), http.StatusUnauthorized},
		{Errorf(CodeNotFound, "x"), http.StatusNotFound},
		{Errorf(CodeMethodNotAllowed, "x"), http.StatusMethodNotAllowed},
		{Errorf(CodeConflict, "x"), http.StatusConflict},
		{Errorf(CodeTooLarge, "x"), http.StatusRequestEntityTooLarge},
		{Errorf(CodeRateLimited, "x"), http.StatusTooManyRequests},
		{Errorf(CodeInternal, "x"), http.StatusInternalServerError},
		{Errorf(CodeBadGateway, "x"), http.StatusBadGateway},
		{Errorf(CodeUnavailable, "x"), http.StatusServiceUnavailable},
		{Errorf(CodeGatewayTimeout, "x"), http.StatusGatewayTimeout},
		{fmt.Errorf("wrapped: %w", Errorf(CodeNotFound, "x")), http.StatusNotFound},
		{fmt.Errorf("twice: %w", fmt.Errorf("wrapped: %w", Errorf(CodeRateLimited, "x"))), http.StatusTooManyRequests},
		{errors.Join(errors.New("other"), Errorf(CodeConflict, "x")), http.StatusConflict},
		{Errorf("no_such_code", "x"), http.StatusInternalServerError},
		{errors.New("plain"), http.StatusInternalServerError},
		{context.DeadlineExceeded, http.StatusInternalServerError},
		{nil, http.StatusInternalServerError},
	}
	for _, tt := range tests {
		name := "nil"
		if tt.err != nil {
			name = tt.err.Error()
		}
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tt.want, Status(tt.err))
		})
	}
	// Every declared code has a status, and no two codes collide.
	seen := map[int]string{}
	for code, status := range statusByCode {
		assert.Equal(t, status, Status(Errorf(code, "x")), code)
		assert.Empty(t, seen[status], "codes %s and %s share status %d", seen[status], code, status)
		seen[status] = code
	}
	assert.Len(t, statusByCode, 11)
}

func TestErrorString(t *testing.T) {
	assert.Equal(t, "not_found: no event 7", Errorf(CodeNotFound, "no event 7").Error())
	b, err := json.Marshal(envelope{Error: Errorf(CodeConflict, "busy")})
	require.NoError(t, err)
	assert.JSONEq(t, `{"error":{"code":"conflict","message":"busy"}}`, string(b), "fields are left out when empty")
	b, err = json.Marshal(envelope{Error: &Error{Code: CodeInvalid, Message: "bad", Fields: map[string]string{"name": "required"}}})
	require.NoError(t, err)
	assert.JSONEq(t, `{"error":{"code":"invalid_request","message":"bad","fields":{"name":"required"}}}`, string(b))
}
