package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"relay/internal/store"
	"relay/internal/timefmt"
)

// EventStore stores submitted events and reads them back (*store.Store has it all).
type EventStore interface {
	AcceptEvent(ctx context.Context, e store.NewEvent) (store.Event, bool, error)
	Event(ctx context.Context, taskID string) (store.Event, error)
	Events(ctx context.Context, f store.EventFilter) ([]store.Event, string, error)
}

// Limits of the event endpoints.
const (
	maxEventNameRunes    = 120
	maxStatusCodeDigits  = 18 // always fits an int64
	maxIdempotencyKeyLen = 200
	maxCityRunes         = 100
	defaultEventsLimit   = 50
	maxEventsLimit       = 500
	submitLimitersSize   = 10_000 // client IPs with a limiter; the least recently seen go first
	idempotencyKeyHeader = "Idempotency-Key"
	statusSuccess        = "success"
	statusError          = "error"
	taskIDProblem        = "want 1 to 64 of A-Z, a-z, 0-9 and -"
)

var validTaskID = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)

// isEventPath says whether path is under the event endpoints, whose answers carry
// "status" in their envelope (success and error alike); respondError uses it, so that
// the middleware's errors (401, 413, 500 of a panic) have it too.
func isEventPath(path string) bool {
	return path == "/events" || path == "/events/" || strings.HasPrefix(path, "/event/")
}

// eventSubmitRequest is the body of POST /event/submit. Its fields stay raw so that each
// can be checked for its own rules and named in the 400.
type eventSubmitRequest struct {
	Name       json.RawMessage `json:"name"`
	StatusCode json.RawMessage `json:"status_code"`
}

func (r eventSubmitRequest) Valid(context.Context) map[string]string {
	_, _, problems := r.parse()
	return problems
}

// parse checks the fields and returns them; a field that is absent or null is nil.
func (r eventSubmitRequest) parse() (name *string, code *int64, problems map[string]string) {
	problems = map[string]string{}
	name, nameMsg := parseEventName(r.Name)
	if nameMsg != "" {
		problems["name"] = nameMsg
	}
	code, codeMsg := parseStatusCode(r.StatusCode)
	if codeMsg != "" {
		problems["status_code"] = codeMsg
	}
	if len(problems) == 0 && name == nil && code == nil {
		msg := "give name, status_code or both"
		problems["name"], problems["status_code"] = msg, msg
	}
	if len(problems) == 0 {
		problems = nil
	}
	return name, code, problems
}

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

// parseEventName takes a JSON string of 1 to 120 characters (runes) with no control
// characters.
func parseEventName(raw json.RawMessage) (*string, string) {
	if isNull(raw) {
		return nil, ""
	}
	const want = "want a string of 1 to 120 characters"
	if raw[0] != '"' {
		return nil, want + ", got " + jsonTypeOf(raw)
	}
	if !utf8.Valid(raw) {
		return nil, "must be valid UTF-8"
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, want
	}
	n := utf8.RuneCountInString(s)
	switch {
	case n == 0:
		return nil, want + ", got an empty string"
	case n > maxEventNameRunes:
		return nil, fmt.Sprintf("%s, got %d", want, n)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return nil, fmt.Sprintf("must not contain control characters (found U+%04X)", r)
		}
	}
	return &s, ""
}

// parseStatusCode takes a non-negative JSON integer, or a string of 1 to 18 ASCII digits
// ("0200" is 200). Fractions, exponents and signs are refused in either form.
func parseStatusCode(raw json.RawMessage) (*int64, string) {
	if isNull(raw) {
		return nil, ""
	}
	const want = "want a non-negative integer or a string of 1 to 18 digits"
	var digits, got string
	switch {
	case raw[0] == '"':
		if err := json.Unmarshal(raw, &digits); err != nil {
			return nil, want
		}
		got = "string " + strconv.Quote(shorten(digits))
		if digits == "" {
			return nil, want + ", got an empty string"
		}
	case raw[0] == '-':
		return nil, want + ", got a negative number"
	case raw[0] >= '0' && raw[0] <= '9':
		digits, got = string(raw), jsonTypeOf(raw)
	default:
		return nil, want + ", got " + jsonTypeOf(raw)
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return nil, want + ", got " + got
		}
	}
	if len(digits) > maxStatusCodeDigits {
		return nil, fmt.Sprintf("%s, got %d digits", want, len(digits))
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil { // cannot happen with at most 18 digits
		return nil, want
	}
	return &n, ""
}

// shorten cuts s for quoting in a message.
func shorten(s string) string {
	const max = 32
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	return string([]rune(s)[:max]) + "…"
}

// jsonTypeOf names the kind of a JSON value by its first byte, for messages.
func jsonTypeOf(raw json.RawMessage) string {
	switch raw[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number " + shorten(string(raw))
	}
}

// idempotencyKey is the request's Idempotency-Key: absent is "", else 1 to 200 printable
// ASCII characters, given once.
func idempotencyKey(c *gin.Context) (string, error) {
	vals, present := c.Request.Header[idempotencyKeyHeader]
	if !present {
		return "", nil
	}
	bad := func(msg string) error { return invalidField(idempotencyKeyHeader, msg) }
	if len(vals) != 1 {
		return "", bad("give it once")
	}
	key := vals[0]
	if key == "" || len(key) > maxIdempotencyKeyLen {
		return "", bad(fmt.Sprintf("want 1 to %d printable ASCII characters, got %d bytes", maxIdempotencyKeyLen, len(key)))
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return "", bad(fmt.Sprintf("want 1 to %d printable ASCII characters", maxIdempotencyKeyLen))
		}
	}
	return key, nil
}

// handleEventSubmit stores a submitted event for geolocation and answers with its task id.
// A client over its rate is refused before its body is read.
func handleEventSubmit(logger *slog.Logger, events EventStore, limiter *submitLimiter, accepted func()) gin.HandlerFunc {
	return func(c *gin.Context) {
		ip := clientIP(c)
		if ok, wait := limiter.allow(ip); !ok {
			respondError(c, logger, &Error{Code: CodeRateLimited, RetryAfter: wait,
				Message: "too many submissions from " + ip + ": retry in " + retryAfterSeconds(wait) + " s"})
			return
		}
		key, err := idempotencyKey(c)
		if err != nil {
			respondError(c, logger, err)
			return
		}
		req, err := decode[eventSubmitRequest](c)
		if err != nil {
			respondError(c, logger, err)
			return
		}
		name, code, _ := req.parse() // decode has checked it
		id, err := uuid.NewV7()
		if err != nil {
			respondError(c, logger, fmt.Errorf("new task id: %w", err))
			return
		}
		ev, existed, err := events.AcceptEvent(c.Request.Context(), store.NewEvent{
			TaskID: id.String(), Name: name, StatusCode: code, IP: ip, IdempotencyKey: key,
		})
		if err != nil {
			respondError(c, logger, storeError(c, logger, "accept event", err))
			return
		}
		if !existed && accepted != nil {
			accepted()
		}
		respond(c, logger, http.StatusAccepted, gin.H{"data": gin.H{"task_id": ev.TaskID}, "status": statusSuccess})
	}
}

// eventJSON is an event as the API shows it.
type eventJSON struct {
	TaskID     string          `json:"task_id"`
	Name       *string         `json:"name"`
	StatusCode *int64          `json:"status_code"`
	IP         string          `json:"ip"`
	ReceivedAt string          `json:"received_at"`
	State      string          `json:"state"`
	Location   json.RawMessage `json:"location"` // as stored; null until located
}

func toEventJSON(e store.Event) eventJSON {
	return eventJSON{
		TaskID: e.TaskID, Name: e.Name, StatusCode: e.StatusCode, IP: e.IP,
		ReceivedAt: timefmt.Millis(e.ReceivedAt), State: e.State,
		Location: json.RawMessage(e.Location),
	}
}

// handleEventGet shows one event.
func handleEventGet(logger *slog.Logger, events EventStore) gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.Param("task_id")
		if !validTaskID.MatchString(id) {
			respondError(c, logger, invalidField("task_id", taskIDProblem))
			return
		}
		ev, err := events.Event(c.Request.Context(), id)
		if errors.Is(err, store.ErrNotFound) {
			respondError(c, logger, Errorf(CodeNotFound, "no event "+id))
			return
		}
		if err != nil {
			respondError(c, logger, storeError(c, logger, "read event", err))
			return
		}
		respond(c, logger, http.StatusOK, struct {
			Data   eventJSON `json:"data"`
			Status string    `json:"status"`
		}{toEventJSON(ev), statusSuccess})
	}
}

// eventsQueryParams are the parameters GET /events knows; any other is refused, so that
// a misspelt filter is not silently a list of everything.
var eventsQueryParams = map[string]bool{"limit": true, "cursor": true, "country": true, "city": true, "state": true}

// eventsFilter reads GET /events's query: each parameter at most once, an empty one as
// absent.
func eventsFilter(c *gin.Context) (store.EventFilter, error) {
	f := store.EventFilter{Limit: defaultEventsLimit}
	// URL.Query drops a pair it cannot decode (cursor=%%%%) without a word: refuse it.
	q, err := url.ParseQuery(c.Request.URL.RawQuery)
	if err != nil {
		return f, invalidField(undecodableParam(c.Request.URL.RawQuery), "not URL-encoded correctly: "+err.Error())
	}
	problems := map[string]string{}
	for name, vals := range q {
		switch {
		case !eventsQueryParams[name]:
			problems[name] = "unknown parameter: want limit, cursor, country, city or state"
		case len(vals) > 1:
			problems[name] = "give it once"
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxEventsLimit {
			problems["limit"] = fmt.Sprintf("want an integer from 1 to %d", maxEventsLimit)
		}
		f.Limit = n
	}
	if v := q.Get("state"); v != "" {
		switch v {
		case store.EventPending, store.EventLocated, store.EventUnlocatable:
			f.State = v
		default:
			problems["state"] = "want pending, located or unlocatable"
		}
	}
	if v := q.Get("country"); v != "" {
		if len(v) != 2 || !isASCIILetter(v[0]) || !isASCIILetter(v[1]) {
			problems["country"] = "want a 2-letter ISO 3166 code such as US"
		}
		f.Country = strings.ToUpper(v)
	}
	if v := q.Get("city"); v != "" {
		if !utf8.ValidString(v) || utf8.RuneCountInString(v) > maxCityRunes || containsControl(v) {
			problems["city"] = fmt.Sprintf("want up to %d characters without control characters", maxCityRunes)
		}
		f.City = v
	}
	f.Cursor = q.Get("cursor")
	if len(problems) > 0 {
		return f, invalidFields(problems)
	}
	return f, nil
}

// undecodableParam names the first query parameter whose name or value does not decode.
func undecodableParam(rawQuery string) string {
	for pair := range strings.SplitSeq(rawQuery, "&") {
		name, value, _ := strings.Cut(pair, "=")
		_, nameErr := url.QueryUnescape(name)
		if _, err := url.QueryUnescape(value); err != nil || nameErr != nil {
			if nameErr == nil && name != "" {
				return name
			}
			break
		}
	}
	return "query"
}

func isASCIILetter(b byte) bool { return b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' }

func containsControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// handleEventsList lists events newest first, a page at a time.
func handleEventsList(logger *slog.Logger, events EventStore) gin.HandlerFunc {
	return func(c *gin.Context) {
		f, err := eventsFilter(c)
		if err != nil {
			respondError(c, logger, err)
			return
		}
		list, next, err := events.Events(c.Request.Context(), f)
		if errors.Is(err, store.ErrBadCursor) {
			respondError(c, logger, invalidField("cursor", "not a cursor of this API: pass next_cursor of a previous page as is"))
			return
		}
		if err != nil {
			respondError(c, logger, storeError(c, logger, "list events", err))
			return
		}
		data := make([]eventJSON, len(list))
		for i, e := range list {
			data[i] = toEventJSON(e)
		}
		var nextCursor *string
		if next != "" {
			nextCursor = &next
		}
		respond(c, logger, http.StatusOK, struct {
			Data       []eventJSON `json:"data"`
			NextCursor *string     `json:"next_cursor"`
			Status     string      `json:"status"`
		}{data, nextCursor, statusSuccess})
	}
}

// noEventStore stands in when New is given no EventStore: the event endpoints answer 503.
type noEventStore struct{}

var errNoEventStore = Errorf(CodeUnavailable, "events are not available: no event store is configured")

func (noEventStore) AcceptEvent(context.Context, store.NewEvent) (store.Event, bool, error) {
	return store.Event{}, false, errNoEventStore
}

func (noEventStore) Event(context.Context, string) (store.Event, error) {
	return store.Event{}, errNoEventStore
}

func (noEventStore) Events(context.Context, store.EventFilter) ([]store.Event, string, error) {
	return nil, "", errNoEventStore
}
