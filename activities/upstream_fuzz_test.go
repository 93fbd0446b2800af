package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"
)

// The fuzz targets of this package feed arbitrary upstream answers to the decoders through
// their real HTTP calls (an http.RoundTripper serves the input, so that no socket is
// opened per input) and check that each either returns a well-formed result, as a
// reference written from spec/upstreams.md reads the body, or fails with an error the
// workflows sort correctly and Temporal can record: never a panic, never a silent partial
// result. `go test` runs their seeds (f.Add and testdata/fuzz); scripts/fuzz.sh fuzzes them.

// cannedAnswer answers every request with one status, header and body.
type cannedAnswer struct {
	status int
	header http.Header
	body   []byte
}

func (a *cannedAnswer) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		_ = req.Body.Close()
	}
	return &http.Response{
		Status: strconv.Itoa(a.status) + " " + http.StatusText(a.status), StatusCode: a.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: a.header.Clone(), Body: io.NopCloser(bytes.NewReader(a.body)), ContentLength: int64(len(a.body)),
		Request: req,
	}, nil
}

// newCannedAnswer answers 200 with a JSON body until told otherwise.
func newCannedAnswer() (*cannedAnswer, *http.Client) {
	a := &cannedAnswer{status: http.StatusOK, header: http.Header{"Content-Type": {"application/json"}}}
	return a, &http.Client{Transport: a, Timeout: 5 * time.Second}
}

// requireDecodeError checks the error of a 2xx answer that a decoder refused: well-formed
// JSON is final (UpstreamBadResponse); a body that is not JSON is that or garbled; either
// is retryable exactly when the workflows' retry policies retry it, and Temporal can record
// it.
func requireDecodeError(t *testing.T, err error, body []byte) {
	t.Helper()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		t.Fatalf("answer %q: want an application error, got %T: %v", body, err, err)
	}
	switch typ := appErr.Type(); {
	case typ == ErrUpstreamBadResponse:
	case typ == ErrUpstreamGarbled && !json.Valid(body):
	default:
		t.Fatalf("answer %q: error of type %s: %v", body, typ, err)
	}
	requireRetryableAsDeclared(t, appErr)
	requireRecordable(t, err)
}

func requireRetryableAsDeclared(t *testing.T, appErr *temporal.ApplicationError) {
	t.Helper()
	if appErr.NonRetryable() != slices.Contains(NonRetryableUpstreamErrors, appErr.Type()) {
		t.Fatalf("%s error is non-retryable=%v, unlike what the retry policies declare", appErr.Type(), appErr.NonRetryable())
	}
}

// maxFailureBytes bounds an upstream error as Temporal records it: it lands in workflow
// history, where it should be an excerpt, never a whole body.
const maxFailureBytes = 4 << 10

// requireRecordable checks that Temporal can record err: its failure encodes (protobuf
// strings must be valid UTF-8, or the activity cannot report its result) and is small.
func requireRecordable(t *testing.T, err error) {
	t.Helper()
	failure := temporal.GetDefaultFailureConverter().ErrorToFailure(err)
	encoded, perr := proto.Marshal(failure)
	if perr != nil {
		t.Fatalf("Temporal cannot record the error %q: %v", err, perr)
	}
	if len(encoded) > maxFailureBytes {
		t.Fatalf("the error is %d bytes as Temporal records it: %.200q…", len(encoded), err.Error())
	}
}

// jsonMember finds a member of a JSON object the way encoding/json matches a struct field:
// by exact name, else ignoring case. The references call it only for bodies without
// folded duplicates (hasFoldedDuplicates), where at most one member matches.
func jsonMember(obj map[string]any, name string) (v any, present bool) {
	if v, ok := obj[name]; ok {
		return v, true
	}
	for k, val := range obj {
		if strings.EqualFold(k, name) {
			return val, true
		}
	}
	return nil, false
}

// decodeGeneric decodes JSON text with numbers kept as text; ok is false for anything else.
func decodeGeneric(body []byte) (v any, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return v, true
}

// hasFoldedDuplicates reports whether an object anywhere in body has two member names that
// encoding/json would match to one field (equal, or equal ignoring case). For such bodies
// a struct decoder merges or overwrites by position, which the references do not model.
func hasFoldedDuplicates(body []byte) bool {
	dup, _ := foldedDuplicatesIn(json.NewDecoder(bytes.NewReader(body)))
	return dup
}

// foldedDuplicatesIn reads one value from dec.
func foldedDuplicatesIn(dec *json.Decoder) (bool, error) {
	tok, err := dec.Token()
	if err != nil {
		return false, err
	}
	switch tok {
	case json.Delim('{'):
		var names []string
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return false, err
			}
			name, _ := tok.(string)
			for _, seen := range names {
				if strings.EqualFold(seen, name) {
					return true, nil
				}
			}
			names = append(names, name)
			if dup, err := foldedDuplicatesIn(dec); dup || err != nil {
				return dup, err
			}
		}
	case json.Delim('['):
		for dec.More() {
			if dup, err := foldedDuplicatesIn(dec); dup || err != nil {
				return dup, err
			}
		}
	default:
		return false, nil
	}
	_, err = dec.Token() // the closing delimiter
	return false, err
}

// refRetryAfter reads a Retry-After of whole seconds as the upstream client promises to:
// a positive number of seconds up to an hour; anything else leaves the delay to the policy.
func refRetryAfter(v string) time.Duration {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n <= 0 || n > 3600 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// refPeriodRemaining reads the geo API's 429 body {"period_remaining": <seconds>} as a
// wait: above 0 and at most 60 s, rounded up to the millisecond; 0 for anything else.
func refPeriodRemaining(body []byte) (d time.Duration, sure bool) {
	if hasFoldedDuplicates(body) {
		return 0, false
	}
	v, ok := decodeGeneric(body)
	obj, isObj := v.(map[string]any)
	if !ok || !isObj {
		return 0, true
	}
	p, present := jsonMember(obj, "period_remaining")
	n, isNum := p.(json.Number)
	if !present || !isNum {
		return 0, true
	}
	secs, err := strconv.ParseFloat(string(n), 64)
	if err != nil || !(secs > 0) || secs > 60 {
		return 0, true
	}
	return time.Duration(math.Ceil(secs*1000)) * time.Millisecond, true
}

// wantStatusType is how spec/upstreams.md's statuses are sorted (upstream.go's table).
func wantStatusType(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return ErrUpstreamRateLimited
	case status >= 500:
		return ErrUpstreamUnavailable
	case status == http.StatusBadRequest || status == http.StatusUnprocessableEntity:
		return ErrUpstreamBadRequest
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return ErrUpstreamUnauthorized
	case status == http.StatusNotFound:
		return ErrUpstreamNotFound
	case status >= 400:
		return ErrUpstreamRejected
	default:
		return ErrUpstreamBadResponse
	}
}

// FuzzUpstreamAnswer sends arbitrary answers (status 200 to 599, Content-Type, Retry-After,
// body) to the upstream client every activity uses, as the geo API's client (which reads
// a 429's wait from its body) or another: a 2xx is returned whole if it is JSON and refused
// as a decoding error if not; any other status is sorted by kind, retryable exactly as the
// retry policies say, with the wait the answer gives (Retry-After, or the geo API's
// period_remaining) and a short message in valid UTF-8 that Temporal can record.
func FuzzUpstreamAnswer(f *testing.F) {
	for _, s := range []struct {
		status                  uint16
		contentType, retryAfter string
		body                    string
		geo                     bool
	}{
		{0, "application/json", "", `{"ok":true}`, false},
		{0, "text/html", "", `<html>oops</html>`, false},
		{229, "application/json", "3", `{"period_remaining": 0.2}`, true},
		{229, "application/json", "", `{"period_remaining": 61}`, true},
		{229, "application/json", "", `{"period_remaining": 1e-300}`, true},
		{229, "application/json", "", `{"period_remaining": "1"}`, true},
		{229, "application/json", "", `{"PERIOD_REMAINING": 1.5}`, true},
		{229, "application/json", "7", `{"message": "Too Many Requests"}`, false},
		{229, "application/json", " 5 ", ``, false},
		{229, "application/json", "+5", ``, false},
		{229, "application/json", "-1", ``, false},
		{229, "application/json", "Wed, 21 Oct 2015 07:28:00 GMT", ``, false},
		{300, "application/json", "", `{"message": "Internal Server Error"}`, false},
		{300, "text/html", "", strings.Repeat("<p>é</p>", 100), false},
		{200, "application/json", "", `{"error": {"message": "Not found", "code": "not_found", "status_code": 404}}`, false},
		{203, "application/json", "", `{"message": "Forbidden"}`, false},
		{222, "application/json", "", `{"message": 5}`, false},
		{218, "application/json", "", `teapot`, false},
		{104, "", "", ``, false},
	} {
		f.Add(s.status, s.contentType, s.retryAfter, []byte(s.body), s.geo)
	}
	answer, client := newCannedAnswer()
	f.Fuzz(func(t *testing.T, status uint16, contentType, retryAfter string, body []byte, geo bool) {
		answer.status = 200 + int(status)%400
		answer.header = http.Header{"Content-Type": {contentType}, "Retry-After": {retryAfter}}
		answer.body = body
		u := upstream{name: "kf", baseURL: "http://upstream.test", http: client}
		if geo {
			u.name, u.retryAfter = "geoip", periodRemaining
		}
		var v any
		data, err := u.getJSON(context.Background(), "/outages", &v)
		if answer.status < 300 {
			if !json.Valid(body) {
				requireDecodeError(t, err, body)
				return
			}
			if err != nil || !bytes.Equal(data, body) {
				t.Fatalf("%d %q: want the body back, got %q, %v", answer.status, body, data, err)
			}
			return
		}
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) {
			t.Fatalf("%d: want an application error, got %T: %v", answer.status, err, err)
		}
		if want := wantStatusType(answer.status); appErr.Type() != want {
			t.Fatalf("%d: error type %s, want %s", answer.status, appErr.Type(), want)
		}
		requireRetryableAsDeclared(t, appErr)
		requireRecordable(t, err)
		if !strings.Contains(appErr.Error(), strconv.Itoa(answer.status)) {
			t.Fatalf("%d: the message does not say the status: %q", answer.status, appErr.Error())
		}
		var wantDelay time.Duration
		if answer.status == http.StatusTooManyRequests {
			wantDelay = refRetryAfter(retryAfter)
			if geo {
				d, sure := refPeriodRemaining(body)
				if !sure {
					return
				}
				if d > 0 {
					wantDelay = d
				}
			}
		}
		if got := appErr.NextRetryDelay(); got != wantDelay {
			t.Fatalf("%d, Retry-After %q, body %q: retry in %v, want %v", answer.status, retryAfter, body, got, wantDelay)
		}
	})
}
