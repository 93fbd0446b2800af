package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"relay/internal/store"
)

// The fuzz targets of the event endpoints drive the real engine (New) and compare what it
// does with a reference written from spec/api.md alone. `go test` runs their seeds (the
// f.Add calls and testdata/fuzz); scripts/fuzz.sh fuzzes them.

// lastCallEvents is an EventStore for fuzzing: it accepts everything and remembers only
// its last call, so that memory stays flat over millions of inputs.
type lastCallEvents struct {
	acceptCalls int
	accepted    store.NewEvent
	listCalls   int
	filter      store.EventFilter
}

func (s *lastCallEvents) AcceptEvent(_ context.Context, e store.NewEvent) (store.Event, bool, error) {
	s.acceptCalls++
	s.accepted = e
	return store.Event{TaskID: e.TaskID, Name: e.Name, StatusCode: e.StatusCode, IP: e.IP, State: store.EventPending}, false, nil
}

func (s *lastCallEvents) Event(context.Context, string) (store.Event, error) {
	return store.Event{}, store.ErrNotFound
}

func (s *lastCallEvents) Events(_ context.Context, f store.EventFilter) ([]store.Event, string, error) {
	s.listCalls++
	s.filter = f
	return nil, "", nil
}

// newFuzzEngine is New with a store that remembers its last call, logs thrown away, and a
// submission rate no fuzzer reaches.
func newFuzzEngine(cfg Config) (http.Handler, *lastCallEvents) {
	events := &lastCallEvents{}
	cfg.SubmitRate, cfg.SubmitBurst = 1e12, 1<<30
	logger := slog.New(slog.DiscardHandler)
	return New(logger, cfg, Deps{Events: events}), events
}

// Modes of FuzzEventSubmit, bits of its mode argument.
const (
	submitWithKey     = 1 << iota // send the Idempotency-Key header
	submitUndeclared              // no Content-Length: the body limit must still hold
	submitOversize                // pad the body with spaces past MaxBodyBytes
	submitDuplicateCT             // send Content-Type twice
)

// FuzzEventSubmit posts arbitrary bodies, content types and idempotency keys to
// POST /event/submit/: never a 5xx; 202 exactly when the reference accepts the body, with
// the event stored as the reference reads it; otherwise 400 (413 past the body limit, 415
// if a content type is ever refused) in the error envelope, and nothing stored.
func FuzzEventSubmit(f *testing.F) {
	const ctJSON = "application/json"
	for _, s := range []struct {
		contentType, key, body string
		mode                   byte
	}{
		{ctJSON, "", `{"name":"checkout","status_code":"200"}`, 0},
		{ctJSON, "", `{"name":"disk full"}`, 0},
		{ctJSON, "", `{"status_code":503}`, 0},
		{ctJSON, "", `{"status_code":"0200"}`, 0},
		{ctJSON, "", `{"status_code":"999999999999999999"}`, 0},
		{ctJSON, "", `{"status_code":"1234567890123456789"}`, 0},
		{ctJSON, "", `{"status_code":123456789012345678901234567890}`, 0},
		{ctJSON, "", `{"status_code":2e2}`, 0},
		{ctJSON, "", `{"status_code":-0}`, 0},
		{ctJSON, "", `{"status_code":"２００"}`, 0},
		{ctJSON, "", `{"name":null,"status_code":null}`, 0},
		{ctJSON, "", `{"name":"","status_code":"x"}`, 0},
		{ctJSON, "", `{"name":"` + strings.Repeat("日", 120) + `"}`, 0},
		{ctJSON, "", `{"name":"` + strings.Repeat("é", 121) + `"}`, 0},
		{ctJSON, "", `{"name":"a\u0085b"}`, 0},
		{ctJSON, "", `{"name":"\ud800"}`, 0},
		{ctJSON, "", "{\"name\":\"a\xffb\"}", 0},
		{ctJSON, "", `{"n\u0061me":"escaped key"}`, 0},
		{ctJSON, "", `{"Name":"x"}`, 0},
		{ctJSON, "", `{"name":"a","NAME":5}`, 0},
		{ctJSON, "", `{"\u017ftatus_code":"7"}`, 0},
		{ctJSON, "", `{"name":"a","name":"b"}`, 0},
		{ctJSON, "", `{"name":"a","priority":"high"}`, 0},
		{ctJSON, "", "\ufeff" + `{"name":"bom"}`, 0},
		{ctJSON, "", `{"name":"a"}{}`, 0},
		{ctJSON, "", `{"name":"a"}]`, 0},
		{ctJSON, "", `{"name":"a"`, 0},
		{ctJSON, "", `[{"name":"a"}]`, 0},
		{ctJSON, "", `null`, 0},
		{ctJSON, "", ` `, 0},
		{ctJSON, "order-17", `{"name":"x"}`, submitWithKey},
		{ctJSON, "", `{"name":"x"}`, submitWithKey},
		{ctJSON, "bad\x7fkey", `{"name":"x"}`, submitWithKey},
		{ctJSON, "", `{"name":"x"}`, submitUndeclared},
		{ctJSON, "", `{"name":"x"}`, submitOversize},
		{ctJSON, "", `{"name":"x"}`, submitOversize | submitUndeclared},
		{"text/plain", "", `{"name":"x"}`, 0},
		{"", "", `{"name":"x"}`, submitDuplicateCT},
		{"application/json; charset=utf-8", "", `{"name":"x"}`, 0},
		{"application/x-www-form-urlencoded", "", `name=x`, 0},
	} {
		f.Add(s.contentType, s.key, []byte(s.body), s.mode)
	}
	h, events := newFuzzEngine(Config{})
	f.Fuzz(func(t *testing.T, contentType, key string, body []byte, mode byte) {
		sent := body
		if mode&submitOversize != 0 {
			sent = append(append([]byte(nil), body...), bytes.Repeat([]byte{' '}, MaxBodyBytes+1)...)
		}
		req := httptest.NewRequest(http.MethodPost, "/event/submit/", bytes.NewReader(sent))
		req.RemoteAddr = peer
		req.Header.Set("Content-Type", contentType)
		if mode&submitDuplicateCT != 0 {
			req.Header.Add("Content-Type", "text/plain")
		}
		if mode&submitWithKey != 0 {
			req.Header.Set(idempotencyKeyHeader, key)
		}
		if mode&submitUndeclared != 0 {
			req.ContentLength = -1
		}
		before := events.acceptCalls
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		keyOK := mode&submitWithKey == 0 || referenceIdempotencyKey(key)
		name, code, bodyOK := referenceSubmit(body)
		if rec.Code != http.StatusAccepted {
			requireEventError(t, rec)
			if events.acceptCalls != before {
				t.Fatalf("answered %d, yet the event was stored", rec.Code)
			}
		}
		switch {
		case rec.Code == http.StatusUnsupportedMediaType:
			if mt, _, err := mime.ParseMediaType(contentType); err == nil && mt == "application/json" && mode&submitDuplicateCT == 0 {
				t.Fatalf("415 for Content-Type %q", contentType)
			}
		case mode&submitOversize != 0:
			if rec.Code != http.StatusRequestEntityTooLarge && (keyOK || rec.Code != http.StatusBadRequest) {
				t.Fatalf("a body past the limit: want 413, got %d: %s", rec.Code, rec.Body)
			}
		case !keyOK:
			if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), idempotencyKeyHeader) {
				t.Fatalf("Idempotency-Key %q: want a 400 naming it, got %d: %s", key, rec.Code, rec.Body)
			}
		case !bodyOK:
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("body %q: want 400, got %d: %s", body, rec.Code, rec.Body)
			}
		default:
			if rec.Code != http.StatusAccepted {
				t.Fatalf("body %q: want 202, got %d: %s", body, rec.Code, rec.Body)
			}
			if events.acceptCalls != before+1 {
				t.Fatalf("202, yet %d events stored", events.acceptCalls-before)
			}
			wantKey := ""
			if mode&submitWithKey != 0 {
				wantKey = key
			}
			got := events.accepted
			want := store.NewEvent{TaskID: got.TaskID, Name: name, StatusCode: code, IP: "192.0.2.1", IdempotencyKey: wantKey}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("body %q: stored %s, want %s", body, describeNewEvent(got), describeNewEvent(want))
			}
			var answer struct {
				Data struct {
					TaskID string `json:"task_id"`
				} `json:"data"`
				Status string `json:"status"`
			}
			if err := strictUnmarshal(rec.Body.Bytes(), &answer); err != nil || answer.Status != "success" ||
				answer.Data.TaskID != got.TaskID || uuid.Validate(got.TaskID) != nil {
				t.Fatalf("202 answer %s (stored task id %q): %v", rec.Body, got.TaskID, err)
			}
		}
	})
}

func describeNewEvent(e store.NewEvent) string {
	s := "{"
	if e.Name != nil {
		s += "name " + strconv.Quote(*e.Name) + " "
	}
	if e.StatusCode != nil {
		s += "status_code " + strconv.FormatInt(*e.StatusCode, 10) + " "
	}
	return s + "ip " + e.IP + " key " + strconv.Quote(e.IdempotencyKey) + "}"
}

var statusCodeDigits = regexp.MustCompile(`^[0-9]{1,18}$`)

// referenceSubmit reads a submission body as spec/api.md describes it: a JSON object whose
// only members are "name" (1 to 120 characters, none of them a control character) and
// "status_code" (an integer or a string of digits; relay takes up to 18, which always fit
// an int64), at least one of them not null. Member names are case-sensitive (decode checks
// them exactly); a member given twice is refused (parsers disagree on which one counts).
func referenceSubmit(body []byte) (name *string, code *int64, ok bool) {
	if !json.Valid(body) {
		return nil, nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, false // not an object, or null
	}
	var nameRaw, codeRaw json.RawMessage
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, false
		}
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, nil, false
		}
		member := tok.(string)
		if seen[member] {
			return nil, nil, false
		}
		seen[member] = true
		switch {
		case member == "name":
			nameRaw = val
		case member == "status_code":
			codeRaw = val
		default:
			return nil, nil, false
		}
	}
	if raw := nameRaw; raw != nil && string(raw) != "null" {
		var s string
		if raw[0] != '"' || !utf8.Valid(raw) || json.Unmarshal(raw, &s) != nil {
			return nil, nil, false
		}
		if n := utf8.RuneCountInString(s); n < 1 || n > 120 || strings.IndexFunc(s, unicode.IsControl) >= 0 {
			return nil, nil, false
		}
		name = &s
	}
	if raw := codeRaw; raw != nil && string(raw) != "null" {
		text := string(raw)
		if raw[0] == '"' && json.Unmarshal(raw, &text) != nil {
			return nil, nil, false
		}
		if !statusCodeDigits.MatchString(text) {
			return nil, nil, false
		}
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return nil, nil, false
		}
		code = &n
	}
	return name, code, name != nil || code != nil
}

// referenceIdempotencyKey: 1 to 200 printable ASCII characters.
func referenceIdempotencyKey(key string) bool {
	if len(key) < 1 || len(key) > 200 {
		return false
	}
	for _, r := range key {
		if r < ' ' || r > '~' {
			return false
		}
	}
	return true
}

// requireEventError checks an error answer of the event endpoints: not a 5xx, JSON, exactly
// {"error": {"code", "message", "fields"?}, "status": "error"}, the code matching the
// status, a message in valid UTF-8.
func requireEventError(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("a 5xx: %d %s", rec.Code, rec.Body)
	}
	if !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("%d answer of type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var e eventError
	if err := strictUnmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("%d answer %s: not the error envelope: %v", rec.Code, rec.Body, err)
	}
	if e.Status != "error" || statusByCode[e.Error.Code] != rec.Code || e.Error.Message == "" || !utf8.ValidString(e.Error.Message) {
		t.Fatalf("%d answer %s: want status error, a code of this status and a message", rec.Code, rec.Body)
	}
}

// strictUnmarshal is json.Unmarshal refusing unknown fields and trailing data.
func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return io.ErrUnexpectedEOF
	}
	return nil
}

// FuzzEventsQuery sends arbitrary queries to GET /events: never a 5xx; 200 exactly when the
// reference accepts the query, with the store asked for exactly the filter the reference
// reads; otherwise a 400 in the error envelope and the store not asked.
func FuzzEventsQuery(f *testing.F) {
	for _, q := range []string{
		"", "limit=20&country=GB&state=located", "limit=500", "limit=501", "limit=0", "limit=+5", "limit=-1",
		"limit=99999999999999999999", "limit=", "limit=1&limit=2", "country=gb", "country=G", "country=G%C3%9F",
		"state=pending", "state=Pending", "city=K%C3%B6ln", "city=%FF", "city=a%00b", "city=" + strings.Repeat("x", 101),
		"cursor=abc", "cursor=", "sort=asc", "limit=5;country=GB", "%zz=1", "a&&b=", "city=%E2%80%8B",
	} {
		f.Add(q)
	}
	h, events := newFuzzEngine(Config{})
	f.Fuzz(func(t *testing.T, rawQuery string) {
		req := httptest.NewRequest(http.MethodGet, "/events", nil)
		req.URL.RawQuery = rawQuery
		req.RemoteAddr = peer
		before := events.listCalls
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		want, ok := referenceEventsFilter(rawQuery)
		if !ok {
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("query %q: want 400, got %d: %s", rawQuery, rec.Code, rec.Body)
			}
			requireEventError(t, rec)
			if events.listCalls != before {
				t.Fatal("400, yet the store was asked")
			}
			return
		}
		if rec.Code != http.StatusOK {
			t.Fatalf("query %q: want 200, got %d: %s", rawQuery, rec.Code, rec.Body)
		}
		if events.listCalls != before+1 || events.filter != want {
			t.Fatalf("query %q: store asked %d times, last for %+v; want %+v", rawQuery, events.listCalls-before, events.filter, want)
		}
		if got := rec.Body.String(); got != `{"data":[],"next_cursor":null,"status":"success"}` {
			t.Fatalf("query %q: answer %s", rawQuery, got)
		}
	})
}

// referenceEventsFilter reads GET /events's query as spec/api.md and the README describe it:
// limit (1 to 500, default 50), cursor, country (2 letters), city (up to 100 characters, no
// control characters), state (pending, located or unlocatable); each at most once, an empty
// value as absent, no other parameter, and a query that does not decode refused.
func referenceEventsFilter(rawQuery string) (store.EventFilter, bool) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil { // a pair that does not decode, or a ';' separator
		return store.EventFilter{}, false
	}
	f := store.EventFilter{Limit: 50}
	for k, vs := range q {
		if len(vs) != 1 {
			return f, false
		}
		v := vs[0]
		switch k {
		case "limit":
			if v == "" {
				continue
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 || n > 500 {
				return f, false
			}
			f.Limit = int(n)
		case "cursor":
			f.Cursor = v
		case "country":
			if v == "" {
				continue
			}
			if len(v) != 2 || !isLetter(v[0]) || !isLetter(v[1]) {
				return f, false
			}
			f.Country = strings.ToUpper(v)
		case "city":
			if !utf8.ValidString(v) || utf8.RuneCountInString(v) > 100 || strings.IndexFunc(v, unicode.IsControl) >= 0 {
				return f, false
			}
			f.City = v
		case "state":
			switch v {
			case "", "pending", "located", "unlocatable":
				f.State = v
			default:
				return f, false
			}
		default:
			return f, false
		}
	}
	return f, true
}

func isLetter(b byte) bool { return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' }
