package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/internal/store"
	"relay/internal/testenv"
)

// receivedAt is the time the fake stamps on every event: not UTC, with milliseconds.
var receivedAt = time.Date(2024, 5, 6, 7, 8, 9, 123_456_789, time.FixedZone("CEST", 2*3600))

// fakeEvents is an EventStore in memory that records what it is asked.
type fakeEvents struct {
	mu       sync.Mutex
	accepted []store.NewEvent  // every AcceptEvent call
	byKey    map[string]string // ip + " " + idempotency key → task id
	events   map[string]store.Event
	gets     []string            // every Event call
	filters  []store.EventFilter // every Events call
	list     []store.Event       // what Events returns
	next     string              // and its cursor
	err      error               // returned by every method when set
}

func newFakeEvents() *fakeEvents {
	return &fakeEvents{byKey: map[string]string{}, events: map[string]store.Event{}}
}

func (f *fakeEvents) AcceptEvent(_ context.Context, e store.NewEvent) (store.Event, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.accepted = append(f.accepted, e)
	if f.err != nil {
		return store.Event{}, false, f.err
	}
	if e.IdempotencyKey != "" {
		if id, ok := f.byKey[e.IP+" "+e.IdempotencyKey]; ok {
			return f.events[id], true, nil
		}
		f.byKey[e.IP+" "+e.IdempotencyKey] = e.TaskID
	}
	ev := store.Event{TaskID: e.TaskID, Name: e.Name, StatusCode: e.StatusCode, IP: e.IP, ReceivedAt: receivedAt, State: store.EventPending}
	f.events[e.TaskID] = ev
	return ev, false, nil
}

func (f *fakeEvents) Event(_ context.Context, taskID string) (store.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets = append(f.gets, taskID)
	if f.err != nil {
		return store.Event{}, f.err
	}
	ev, ok := f.events[taskID]
	if !ok {
		return store.Event{}, store.ErrNotFound
	}
	return ev, nil
}

func (f *fakeEvents) Events(_ context.Context, filter store.EventFilter) ([]store.Event, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.filters = append(f.filters, filter)
	if f.err != nil {
		return nil, "", f.err
	}
	if filter.Cursor == "bogus" {
		return nil, "", store.ErrBadCursor
	}
	return f.list, f.next, nil
}

func (f *fakeEvents) acceptCalls() []store.NewEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]store.NewEvent(nil), f.accepted...)
}

// eventsHarness is New with a fake store, counting EventAccepted calls.
type eventsHarness struct {
	*harness
	store    *fakeEvents
	mu       sync.Mutex
	accepted int
}

func newEventsHarness(t *testing.T, cfg Config) *eventsHarness {
	t.Helper()
	logs := &testenv.SyncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	eh := &eventsHarness{store: newFakeEvents()}
	h := New(logger, cfg, Deps{Registry: reg, Events: eh.store, EventAccepted: func() {
		eh.mu.Lock()
		eh.accepted++
		eh.mu.Unlock()
	}})
	eh.harness = &harness{h: h, log: logs, reg: reg}
	return eh
}

func (eh *eventsHarness) acceptedCalls() int {
	eh.mu.Lock()
	defer eh.mu.Unlock()
	return eh.accepted
}

// submit posts body from peer (host:port) with optional headers (name, value pairs).
func (eh *eventsHarness) submit(t *testing.T, path, peer, body string, headers ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = peer
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	return eh.do(t, req)
}

// taskIDOf checks a 202 answer's envelope and returns its task id, a UUID v7.
func taskIDOf(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	var got struct {
		Data   map[string]string `json:"data"`
		Status string            `json:"status"`
	}
	dec := json.NewDecoder(rec.Body)
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&got))
	assert.Equal(t, "success", got.Status)
	require.Len(t, got.Data, 1, "data has task_id only")
	id, err := uuid.Parse(got.Data["task_id"])
	require.NoError(t, err)
	assert.Equal(t, uuid.Version(7), id.Version())
	assert.Equal(t, id.String(), got.Data["task_id"], "canonical form")
	return got.Data["task_id"]
}

// eventError is the event endpoints' error envelope: the standard one plus "status".
type eventError struct {
	Error struct {
		Code    string            `json:"code"`
		Message string            `json:"message"`
		Fields  map[string]string `json:"fields"`
	} `json:"error"`
	Status string `json:"status"`
}

// eventErrorOf checks rec's status and envelope, exactly: no other keys.
func eventErrorOf(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) eventError {
	t.Helper()
	require.Equal(t, status, rec.Code, rec.Body.String())
	assert.Contains(t, rec.Header().Get("Content-Type"), "application/json")
	var e eventError
	dec := json.NewDecoder(strings.NewReader(rec.Body.String()))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&e), rec.Body.String())
	assert.Equal(t, "error", e.Status, rec.Body.String())
	assert.Equal(t, code, e.Error.Code)
	assert.NotEmpty(t, e.Error.Message)
	return e
}

const peer = "192.0.2.1:4321"

func TestEventSubmitAccepts(t *testing.T) {
	eh := newEventsHarness(t, Config{SubmitBurst: 1000})
	tests := []struct {
		name, body string
		wantName   *string
		wantCode   *int64
	}{
		{"name only", `{"name":"disk full"}`, ptr("disk full"), nil},
		{"integer status_code only", `{"status_code":200}`, nil, ptr[int64](200)},
		{"string status_code", `{"status_code":"200"}`, nil, ptr[int64](200)},
		{"leading zeros in a string", `{"status_code":"0200"}`, nil, ptr[int64](200)},
		{"zero", `{"status_code":0}`, nil, ptr[int64](0)},
		{"18 digits", `{"status_code":"999999999999999999"}`, nil, ptr[int64](999_999_999_999_999_999)},
		{"both", `{"name":"boot","status_code":503}`, ptr("boot"), ptr[int64](503)},
		{"null status_code is absent", `{"name":"a","status_code":null}`, ptr("a"), nil},
		{"null name is absent", `{"name":null,"status_code":"7"}`, nil, ptr[int64](7)},
		{"one character", `{"name":"x"}`, ptr("x"), nil},
		{"120 runes of multibyte text", `{"name":"` + strings.Repeat("日", 120) + `"}`, ptr(strings.Repeat("日", 120)), nil},
		{"120 emoji", `{"name":"` + strings.Repeat("🛰", 120) + `"}`, ptr(strings.Repeat("🛰", 120)), nil},
		{"escaped unicode", `{"name":"caf\u00e9"}`, ptr("café"), nil},
		{"spaces are not control characters", `{"name":"  a b  "}`, ptr("  a b  "), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(eh.store.acceptCalls())
			id := taskIDOf(t, eh.submit(t, "/event/submit/", peer, tt.body))
			calls := eh.store.acceptCalls()
			require.Len(t, calls, before+1)
			got := calls[len(calls)-1]
			assert.Equal(t, store.NewEvent{TaskID: id, Name: tt.wantName, StatusCode: tt.wantCode, IP: "192.0.2.1"}, got)
		})
	}
}

func TestEventSubmitBothURLForms(t *testing.T) {
	eh := newEventsHarness(t, Config{})
	for _, path := range []string{"/event/submit", "/event/submit/"} {
		rec := eh.submit(t, path, peer, `{"name":"a"}`)
		assert.Empty(t, rec.Header().Get("Location"), "never a redirect")
		taskIDOf(t, rec)
	}
	assert.Len(t, eh.store.acceptCalls(), 2)
	assert.Equal(t, 2, eh.acceptedCalls())
}

func TestEventSubmitRejects(t *testing.T) {
	eh := newEventsHarness(t, Config{SubmitBurst: 1000})
	both := []string{"name", "status_code"}
	tests := []struct {
		name, body string
		fields     []string // the fields named; nil: none
		message    string   // a part of the message
	}{
		{name: "empty name", body: `{"name":""}`, fields: []string{"name"}, message: "got an empty string"},
		{name: "121 runes", body: `{"name":"` + strings.Repeat("é", 121) + `"}`, fields: []string{"name"}, message: "1 to 120 characters, got 121"},
		{name: "control character", body: `{"name":"a\u0007b"}`, fields: []string{"name"}, message: "control characters (found U+0007)"},
		{name: "newline", body: `{"name":"a\nb"}`, fields: []string{"name"}, message: "control characters"},
		{name: "NUL", body: `{"name":"\u0000"}`, fields: []string{"name"}, message: "control characters"},
		{name: "C1 control", body: `{"name":"a\u0085"}`, fields: []string{"name"}, message: "control characters"},
		{name: "number for name", body: `{"name":5}`, fields: []string{"name"}, message: "want a string of 1 to 120 characters, got number 5"},
		{name: "boolean for name", body: `{"name":true}`, fields: []string{"name"}, message: "got boolean"},
		{name: "object for name", body: `{"name":{}}`, fields: []string{"name"}, message: "got object"},
		{name: "invalid UTF-8 in name", body: "{\"name\":\"a\xffb\"}", fields: []string{"name"}, message: "UTF-8"},
		{name: "fraction", body: `{"status_code":2.5}`, fields: []string{"status_code"}, message: "got number 2.5"},
		{name: "integral fraction", body: `{"status_code":200.0}`, fields: []string{"status_code"}, message: "got number 200.0"},
		{name: "exponent", body: `{"status_code":2e2}`, fields: []string{"status_code"}},
		{name: "negative", body: `{"status_code":-1}`, fields: []string{"status_code"}, message: "negative"},
		{name: "negative zero", body: `{"status_code":-0}`, fields: []string{"status_code"}},
		{name: "letters in digits", body: `{"status_code":"2a"}`, fields: []string{"status_code"}, message: `got string "2a"`},
		{name: "signed string", body: `{"status_code":"+200"}`, fields: []string{"status_code"}},
		{name: "spaces in string", body: `{"status_code":" 200"}`, fields: []string{"status_code"}},
		{name: "non-ASCII digits", body: `{"status_code":"２００"}`, fields: []string{"status_code"}},
		{name: "empty string code", body: `{"status_code":""}`, fields: []string{"status_code"}, message: "empty string"},
		{name: "19 digits", body: `{"status_code":"1234567890123456789"}`, fields: []string{"status_code"}, message: "got 19 digits"},
		{name: "a long value is cut in the message", body: `{"status_code":"` + strings.Repeat("x", 1000) + `"}`, fields: []string{"status_code"}, message: `got string "` + strings.Repeat("x", 32) + `…"`},
		{name: "huge integer", body: `{"status_code":123456789012345678901234567890}`, fields: []string{"status_code"}},
		{name: "true for code", body: `{"status_code":true}`, fields: []string{"status_code"}, message: "got boolean"},
		{name: "array for code", body: `{"status_code":[200]}`, fields: []string{"status_code"}, message: "got array"},
		{name: "both wrong", body: `{"name":"","status_code":"x"}`, fields: both},
		{name: "bad name with good code", body: `{"name":1,"status_code":200}`, fields: []string{"name"}},
		{name: "both fields missing", body: `{}`, fields: both, message: "give name, status_code or both"},
		{name: "both fields null", body: `{"name":null,"status_code":null}`, fields: both, message: "give name, status_code or both"},
		{name: "null status_code alone", body: `{"status_code":null}`, fields: both},
		{name: "unknown field", body: `{"name":"a","priority":"high"}`, fields: []string{"priority"}, message: "unknown field"},
		{name: "malformed JSON", body: `{"name":}`, message: "malformed JSON"},
		{name: "truncated JSON", body: `{"name":"a"`, message: "body ends early"},
		{name: "array body", body: `[{"name":"a"}]`, message: "body must be a JSON object, not array"},
		{name: "string body", body: `"a"`, message: "body must be a JSON object"},
		{name: "null body", body: `null`, message: "not null"},
		{name: "empty body", body: ``, message: "body is empty"},
		{name: "trailing data", body: `{"name":"a"}{}`, message: "unexpected data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := eventErrorOf(t, eh.submit(t, "/event/submit", peer, tt.body), http.StatusBadRequest, CodeInvalid)
			assert.ElementsMatch(t, tt.fields, keys(e.Error.Fields), "fields named: %v", e.Error.Fields)
			for _, f := range tt.fields {
				assert.Contains(t, e.Error.Message, f+": ", "the message names %s", f)
			}
			assert.Contains(t, e.Error.Message, tt.message)
		})
	}
	assert.Empty(t, eh.store.acceptCalls(), "nothing invalid reaches the store")
	assert.Zero(t, eh.acceptedCalls())
}

func TestEventSubmitTooLarge(t *testing.T) {
	eh := newEventsHarness(t, Config{})
	body := `{"name":"` + strings.Repeat("a", MaxBodyBytes) + `"}`
	t.Run("declared length", func(t *testing.T) {
		eventErrorOf(t, eh.submit(t, "/event/submit", peer, body), http.StatusRequestEntityTooLarge, CodeTooLarge)
	})
	t.Run("undeclared length", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodPost, "/event/submit/", strings.NewReader(body))
		req.ContentLength = -1
		req.RemoteAddr = peer
		eventErrorOf(t, eh.do(t, req), http.StatusRequestEntityTooLarge, CodeTooLarge)
	})
	assert.Empty(t, eh.store.acceptCalls())
}

func TestEventSubmitClientIP(t *testing.T) {
	tests := []struct {
		name    string
		trusted string
		peer    string
		xff     string
		want    string
	}{
		{"the TCP peer", "", "198.51.100.4:5555", "", "198.51.100.4"},
		{"IPv6 peer", "", "[2001:db8::7]:5555", "", "2001:db8::7"},
		{"spoofed header from an untrusted peer ignored", "", "198.51.100.4:5555", "203.0.113.9", "198.51.100.4"},
		{"spoofed header from a peer outside the trusted range ignored", "10.0.0.0/8", "198.51.100.4:5555", "203.0.113.9", "198.51.100.4"},
		{"header from a trusted proxy used", "10.0.0.0/8", "10.1.2.3:5555", "203.0.113.9", "203.0.113.9"},
		{"rightmost untrusted hop from a trusted proxy", "10.0.0.0/8", "10.1.2.3:5555", "192.0.2.77, 203.0.113.9, 10.9.9.9", "203.0.113.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg Config
			if tt.trusted != "" {
				cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix(tt.trusted)}
			}
			eh := newEventsHarness(t, cfg)
			var headers []string
			if tt.xff != "" {
				headers = []string{"X-Forwarded-For", tt.xff}
			}
			taskIDOf(t, eh.submit(t, "/event/submit", tt.peer, `{"name":"a"}`, headers...))
			calls := eh.store.acceptCalls()
			require.Len(t, calls, 1)
			assert.Equal(t, tt.want, calls[0].IP)
		})
	}
}

func TestEventSubmitIdempotencyKey(t *testing.T) {
	eh := newEventsHarness(t, Config{})
	key := "order-42:retry"
	first := taskIDOf(t, eh.submit(t, "/event/submit", peer, `{"name":"a"}`, "Idempotency-Key", key))
	again := taskIDOf(t, eh.submit(t, "/event/submit/", peer, `{"name":"a"}`, "Idempotency-Key", key))
	assert.Equal(t, first, again, "a repeat answers with the first event's task id")
	other := taskIDOf(t, eh.submit(t, "/event/submit", "192.0.2.2:1", `{"name":"a"}`, "Idempotency-Key", key))
	assert.NotEqual(t, first, other, "the key is the client's own")
	without := taskIDOf(t, eh.submit(t, "/event/submit", peer, `{"name":"a"}`))
	assert.NotEqual(t, first, without)

	calls := eh.store.acceptCalls()
	require.Len(t, calls, 4)
	for _, c := range calls[:3] {
		assert.Equal(t, key, c.IdempotencyKey, "passed to the store as is")
	}
	assert.Empty(t, calls[3].IdempotencyKey)
	assert.Equal(t, 3, eh.acceptedCalls(), "EventAccepted once per new event, not for the repeat")
}

func TestEventSubmitInvalidIdempotencyKey(t *testing.T) {
	eh := newEventsHarness(t, Config{SubmitBurst: 100})
	tests := []struct {
		name   string
		values []string
	}{
		{"empty", []string{""}},
		{"201 characters", []string{strings.Repeat("k", 201)}},
		{"non-ASCII", []string{"clé"}},
		{"control character", []string{"a\x01b"}},
		{"tab", []string{"a\tb"}},
		{"DEL", []string{"a\x7fb"}},
		{"given twice", []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/event/submit", strings.NewReader(`{"name":"a"}`))
			req.RemoteAddr = peer
			req.Header["Idempotency-Key"] = tt.values
			e := eventErrorOf(t, eh.do(t, req), http.StatusBadRequest, CodeInvalid)
			assert.Equal(t, []string{"Idempotency-Key"}, keys(e.Error.Fields))
		})
	}
	t.Run("200 printable characters are fine", func(t *testing.T) {
		taskIDOf(t, eh.submit(t, "/event/submit", peer, `{"name":"a"}`, "Idempotency-Key", strings.Repeat("~ ", 100)))
	})
	assert.Len(t, eh.store.acceptCalls(), 1, "only the valid one reaches the store")
}

func TestEventSubmitRateLimit(t *testing.T) {
	eh := newEventsHarness(t, Config{SubmitRate: 1, SubmitBurst: 2})
	taskIDOf(t, eh.submit(t, "/event/submit", peer, `{"name":"a"}`))
	taskIDOf(t, eh.submit(t, "/event/submit", peer, `{"name":"b"}`))
	rec := eh.submit(t, "/event/submit", peer, `{"name":"c"}`)
	e := eventErrorOf(t, rec, http.StatusTooManyRequests, CodeRateLimited)
	assert.Contains(t, e.Error.Message, "192.0.2.1")
	secs, err := strconv.Atoi(rec.Header().Get("Retry-After"))
	require.NoError(t, err, "Retry-After is whole seconds: %q", rec.Header().Get("Retry-After"))
	assert.GreaterOrEqual(t, secs, 1)
	assert.LessOrEqual(t, secs, 1, "one token a second")
	assert.Len(t, eh.store.acceptCalls(), 2, "a refused submission does not reach the store")

	taskIDOf(t, eh.submit(t, "/event/submit", "192.0.2.2:1", `{"name":"d"}`))
	// Even an invalid body is refused first: the limit protects the decoding too.
	eventErrorOf(t, eh.submit(t, "/event/submit", peer, `{`), http.StatusTooManyRequests, CodeRateLimited)
}

func TestEventSubmitRateLimitGroupsAnIPv6Slash64(t *testing.T) {
	eh := newEventsHarness(t, Config{SubmitRate: 1, SubmitBurst: 1})
	taskIDOf(t, eh.submit(t, "/event/submit", "[2001:db8:1:2::1]:1", `{"name":"a"}`))
	eventErrorOf(t, eh.submit(t, "/event/submit", "[2001:db8:1:2::ffff]:1", `{"name":"a"}`), http.StatusTooManyRequests, CodeRateLimited)
	taskIDOf(t, eh.submit(t, "/event/submit", "[2001:db8:1:3::1]:1", `{"name":"a"}`))
}

func TestSubmitLimiterIsBounded(t *testing.T) {
	l := newSubmitLimiter(1, 1, 2)
	for _, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
		ok, _ := l.allow(ip)
		assert.True(t, ok, ip)
	}
	assert.Equal(t, 2, l.limiters.Len())
	ok, wait := l.allow("192.0.2.3")
	assert.False(t, ok)
	assert.Positive(t, wait)
}

func TestRetryAfter(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "1", time.Millisecond: "1", time.Second: "1", 1001 * time.Millisecond: "2", 90 * time.Second: "90",
	} {
		assert.Equal(t, want, retryAfterSeconds(d), d.String())
	}
}

func TestEventSubmitStoreFailureIsInternal(t *testing.T) {
	eh := newEventsHarness(t, Config{})
	eh.store.err = errors.New(internalDetail)
	rec := eh.submit(t, "/event/submit", peer, `{"name":"a"}`)
	e := eventErrorOf(t, rec, http.StatusInternalServerError, CodeInternal)
	assert.Equal(t, "internal error", e.Error.Message)
	assert.NotContains(t, rec.Body.String(), "password")
	assert.Contains(t, eh.log.String(), internalDetail, "the detail is logged")
	assert.Zero(t, eh.acceptedCalls())
}

func TestEventSubmitWhileTheDatabaseIsDownIs503(t *testing.T) {
	eh := newEventsHarness(t, Config{})
	eh.store.err = fmt.Errorf("insert: %w", syscall.ECONNREFUSED)
	rec := eh.submit(t, "/event/submit", peer, `{"name":"a"}`)
	e := eventErrorOf(t, rec, http.StatusServiceUnavailable, CodeUnavailable)
	assert.Contains(t, e.Error.Message, "the database is unavailable")
	assert.Equal(t, "2", rec.Header().Get("Retry-After"))
	assert.Zero(t, eh.acceptedCalls())
}

func TestEventEndpointsWithoutStoreAreUnavailable(t *testing.T) {
	h := New(slog.New(slog.DiscardHandler), Config{}, Deps{})
	for _, req := range []*http.Request{
		httptest.NewRequest(http.MethodPost, "/event/submit", strings.NewReader(`{"name":"a"}`)),
		httptest.NewRequest(http.MethodGet, "/event/abc", nil),
		httptest.NewRequest(http.MethodGet, "/events", nil),
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		eventErrorOf(t, rec, http.StatusServiceUnavailable, CodeUnavailable)
	}
}

func TestEventMiddlewareErrorsHaveTheStatus(t *testing.T) {
	eh := newEventsHarness(t, Config{APIKeys: []string{"k"}})
	eventErrorOf(t, eh.submit(t, "/event/submit", peer, `{"name":"a"}`), http.StatusUnauthorized, CodeUnauthorized)
	eventErrorOf(t, eh.get(t, "/events"), http.StatusUnauthorized, CodeUnauthorized)

	eh = newEventsHarness(t, Config{})
	rec := eh.do(t, httptest.NewRequest(http.MethodDelete, "/event/abc", nil))
	eventErrorOf(t, rec, http.StatusMethodNotAllowed, CodeMethodNotAllowed)
	eventErrorOf(t, eh.get(t, "/event/abc/more"), http.StatusNotFound, CodeNotFound)
	// Other routes keep the plain envelope.
	assert.JSONEq(t, `{"error":{"code":"not_found","message":"no route for /eventsx"}}`, eh.get(t, "/eventsx").Body.String())
}

// storedEvent is an event as the store gives it back, located.
func storedEvent(id string) store.Event {
	return store.Event{
		TaskID: id, Name: ptr("disk full"), StatusCode: ptr[int64](507), IP: "203.0.113.9",
		ReceivedAt: receivedAt, State: store.EventLocated,
		Location: []byte(`{"city":"Norwich","country":{"iso_code":"GB","name":"United Kingdom"},"latitude":52.63,"longitude":1.29,"time_zone":"Europe/London","accuracy_radius":20}`),
	}
}

const storedEventJSON = `{"task_id":"%s","name":"disk full","status_code":507,"ip":"203.0.113.9",
	"received_at":"2024-05-06T05:08:09.123Z","state":"located",
	"location":{"city":"Norwich","country":{"iso_code":"GB","name":"United Kingdom"},"latitude":52.63,"longitude":1.29,"time_zone":"Europe/London","accuracy_radius":20}}`

func TestEventGet(t *testing.T) {
	eh := newEventsHarness(t, Config{})
	id := "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
	eh.store.events[id] = storedEvent(id)
	eh.store.events["pending-1"] = store.Event{TaskID: "pending-1", IP: "192.0.2.1", ReceivedAt: time.UnixMilli(0), State: store.EventPending}

	for _, path := range []string{"/event/" + id, "/event/" + id + "/"} {
		t.Run(path, func(t *testing.T) {
			rec := eh.get(t, path)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			assert.Equal(t, "application/json; charset=utf-8", rec.Header().Get("Content-Type"))
			assert.JSONEq(t, `{"data":`+strings.ReplaceAll(storedEventJSON, "%s", id)+`,"status":"success"}`, rec.Body.String())
		})
	}
	t.Run("not given and not located are null", func(t *testing.T) {
		rec := eh.get(t, "/event/pending-1")
		require.Equal(t, http.StatusOK, rec.Code)
		assert.JSONEq(t, `{"data":{"task_id":"pending-1","name":null,"status_code":null,"ip":"192.0.2.1",
			"received_at":"1970-01-01T00:00:00.000Z","state":"pending","location":null},"status":"success"}`, rec.Body.String())
	})
	t.Run("unknown", func(t *testing.T) {
		e := eventErrorOf(t, eh.get(t, "/event/0190a1b2-0000-7000-8000-000000000000"), http.StatusNotFound, CodeNotFound)
		assert.Contains(t, e.Error.Message, "0190a1b2-0000-7000-8000-000000000000")
	})
	t.Run("store failure", func(t *testing.T) {
		eh := newEventsHarness(t, Config{})
		eh.store.err = errors.New(internalDetail)
		e := eventErrorOf(t, eh.get(t, "/event/abc"), http.StatusInternalServerError, CodeInternal)
		assert.Equal(t, "internal error", e.Error.Message)
	})
	t.Run("a stored location that is not JSON is an internal error", func(t *testing.T) {
		eh := newEventsHarness(t, Config{})
		eh.store.events["bad"] = store.Event{TaskID: "bad", ReceivedAt: receivedAt, State: store.EventLocated, Location: []byte(`{"city":`)}
		eventErrorOf(t, eh.get(t, "/event/bad"), http.StatusInternalServerError, CodeInternal)
	})
}

func TestEventGetBadID(t *testing.T) {
	eh := newEventsHarness(t, Config{})
	for _, id := range []string{strings.Repeat("a", 65), "a_b", "a.b", "a%20b", "%C3%A9", "a:b"} {
		t.Run(id, func(t *testing.T) {
			e := eventErrorOf(t, eh.get(t, "/event/"+id), http.StatusBadRequest, CodeInvalid)
			assert.Equal(t, []string{"task_id"}, keys(e.Error.Fields))
		})
	}
	rec := eh.get(t, "/event/"+strings.Repeat("a", 64))
	eventErrorOf(t, rec, http.StatusNotFound, CodeNotFound)
	assert.Equal(t, []string{strings.Repeat("a", 64)}, eh.store.gets, "only the valid id reached the store")
}

func TestEventsList(t *testing.T) {
	eh := newEventsHarness(t, Config{})
	eh.store.list = []store.Event{storedEvent("b"), storedEvent("a")}
	eh.store.next = "Y3Vyc29y"

	rec := eh.get(t, "/events?limit=2&cursor=abc&country=gb&city=Norwich&state=located")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.JSONEq(t, `{"data":[`+strings.ReplaceAll(storedEventJSON, "%s", "b")+`,`+strings.ReplaceAll(storedEventJSON, "%s", "a")+`],
		"next_cursor":"Y3Vyc29y","status":"success"}`, rec.Body.String())
	assert.Equal(t, store.EventFilter{Country: "GB", City: "Norwich", State: "located", Limit: 2, Cursor: "abc"}, eh.store.filters[0])

	t.Run("defaults and the last page", func(t *testing.T) {
		eh := newEventsHarness(t, Config{})
		rec := eh.get(t, "/events")
		require.Equal(t, http.StatusOK, rec.Code)
		assert.JSONEq(t, `{"data":[],"next_cursor":null,"status":"success"}`, rec.Body.String())
		assert.Equal(t, []store.EventFilter{{Limit: 50}}, eh.store.filters)
	})
	t.Run("empty parameters are absent", func(t *testing.T) {
		eh := newEventsHarness(t, Config{})
		require.Equal(t, http.StatusOK, eh.get(t, "/events?limit=&cursor=&country=&city=&state=").Code)
		assert.Equal(t, []store.EventFilter{{Limit: 50}}, eh.store.filters)
	})
	t.Run("limit bounds", func(t *testing.T) {
		eh := newEventsHarness(t, Config{})
		for _, l := range []string{"1", "500"} {
			require.Equal(t, http.StatusOK, eh.get(t, "/events?limit="+l).Code, l)
		}
		assert.Equal(t, []store.EventFilter{{Limit: 1}, {Limit: 500}}, eh.store.filters)
	})
	t.Run("city in any script", func(t *testing.T) {
		eh := newEventsHarness(t, Config{})
		require.Equal(t, http.StatusOK, eh.get(t, "/events?city=S%C3%A3o+Paulo&country=Br").Code)
		assert.Equal(t, []store.EventFilter{{City: "São Paulo", Country: "BR", Limit: 50}}, eh.store.filters)
	})
}

func TestEventsListRejects(t *testing.T) {
	eh := newEventsHarness(t, Config{})
	tests := []struct {
		query  string
		fields []string
	}{
		{"limit=0", []string{"limit"}},
		{"limit=501", []string{"limit"}},
		{"limit=-1", []string{"limit"}},
		{"limit=ten", []string{"limit"}},
		{"limit=2.5", []string{"limit"}},
		{"state=done", []string{"state"}},
		{"state=LOCATED", []string{"state"}},
		{"country=USA", []string{"country"}},
		{"country=u", []string{"country"}},
		{"country=1A", []string{"country"}},
		{"country=%C3%A9e", []string{"country"}},
		{"city=" + strings.Repeat("x", 101), []string{"city"}},
		{"city=a%0Ab", []string{"city"}},
		{"contry=US", []string{"contry"}},
		{"cursor=%%%%", []string{"cursor"}},
		{"limit=5&city=%zz", []string{"city"}},
		{"%zz=1", []string{"query"}},
		{"state=located&state=pending", []string{"state"}},
		{"limit=0&state=x&country=xyz", []string{"limit", "state", "country"}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			e := eventErrorOf(t, eh.get(t, "/events?"+tt.query), http.StatusBadRequest, CodeInvalid)
			assert.ElementsMatch(t, tt.fields, keys(e.Error.Fields))
		})
	}
	assert.Empty(t, eh.store.filters, "nothing invalid reaches the store")

	t.Run("a cursor the store rejects", func(t *testing.T) {
		e := eventErrorOf(t, eh.get(t, "/events?cursor=bogus"), http.StatusBadRequest, CodeInvalid)
		assert.Equal(t, []string{"cursor"}, keys(e.Error.Fields))
	})
	t.Run("store failure", func(t *testing.T) {
		eh := newEventsHarness(t, Config{})
		eh.store.err = errors.New(internalDetail)
		eventErrorOf(t, eh.get(t, "/events"), http.StatusInternalServerError, CodeInternal)
	})
}

func TestParseStatusCodeAndName(t *testing.T) {
	n, msg := parseStatusCode(json.RawMessage(`"000"`))
	assert.Empty(t, msg)
	assert.Equal(t, int64(0), *n)
	_, msg = parseStatusCode(json.RawMessage(`{}`))
	assert.Contains(t, msg, "got object")
	s, msg := parseEventName(json.RawMessage(`"\ud83d\ude00"`))
	assert.Empty(t, msg)
	assert.Equal(t, "😀", *s)
}
