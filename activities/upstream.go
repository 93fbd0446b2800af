package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/temporal"
)

// Error types of upstream failures, as workflows' retry policies name them. The first
// five are the upstream saying no: retrying cannot help. The rest may pass on a retry.
const (
	ErrUpstreamBadRequest   = "UpstreamBadRequest"   // 400, 422
	ErrUpstreamUnauthorized = "UpstreamUnauthorized" // 401, 403
	ErrUpstreamNotFound     = "UpstreamNotFound"     // 404
	ErrUpstreamBadResponse  = "UpstreamBadResponse"  // well-formed JSON of the wrong shape: the API changed
	ErrUpstreamRejected     = "UpstreamRejected"     // any other 4xx
	ErrUpstreamRateLimited  = "UpstreamRateLimited"  // 429
	ErrUpstreamUnavailable  = "UpstreamUnavailable"  // 5xx
	ErrUpstreamUnreachable  = "UpstreamUnreachable"  // connection refused, reset, answer cut short
	ErrUpstreamTimeout      = "UpstreamTimeout"      // no answer (or not all of it) in time
	// ErrUpstreamGarbled is a 2xx answer that is not JSON at all: a gateway's HTML page or
	// a body broken on the way. That is how transient faults look, so it is retried
	// (a bounded number of times, like a 5xx).
	ErrUpstreamGarbled = "UpstreamGarbled"
)

// ErrInvalidInput is a workflow or activity input that can never succeed as given.
const ErrInvalidInput = "InvalidInput"

// ErrInvalidUpstreamData is an upstream answer that decodes but breaks the API's rules (an
// incident relay cannot read, subscription pages whose counts disagree): relay refuses to
// guess, and says where. The outage sync never returns it: it drops and counts an outage
// it cannot read (outagesync.Filter).
const ErrInvalidUpstreamData = "InvalidUpstreamData"

// NonRetryableUpstreamErrors lists the types a retry policy must not retry.
var NonRetryableUpstreamErrors = []string{
	ErrUpstreamBadRequest, ErrUpstreamUnauthorized, ErrUpstreamNotFound, ErrUpstreamBadResponse, ErrUpstreamRejected,
}

// maxUpstreamBody bounds what relay reads from an upstream answer.
const maxUpstreamBody = 64 << 20

// UpstreamMetrics count upstream calls by API and status for /metrics.
type UpstreamMetrics struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewUpstreamMetrics registers the upstream call metrics on reg.
func NewUpstreamMetrics(reg prometheus.Registerer) *UpstreamMetrics {
	m := &UpstreamMetrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_upstream_requests_total",
			Help: "Calls to upstream APIs, by API and status (a number, or error for no answer).",
		}, []string{"api", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "relay_upstream_request_duration_seconds",
			Help:    "Time upstream APIs took to answer, by API.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}, []string{"api"}),
	}
	reg.MustRegister(m.calls, m.duration)
	return m
}

func (m *UpstreamMetrics) observe(api, status string, d time.Duration) {
	if m == nil {
		return
	}
	m.calls.WithLabelValues(api, status).Inc()
	m.duration.WithLabelValues(api).Observe(d.Seconds())
}

// upstream calls one API and sorts its failures into Temporal application errors.
type upstream struct {
	name    string
	baseURL string
	http    *http.Client
	auth    func(*http.Request)
	metrics *UpstreamMetrics
	// retryAfter, if set, reads how long to wait from a 429's body (the geo API says it
	// there, not in a header).
	retryAfter func(body []byte) time.Duration
	// verdicts, if set, names the statuses this API gives as its verdict about the request
	// itself (the geo API's 500: it cannot place the IP), each with its error type: never
	// retried.
	verdicts map[int]string
}

// do sends a request and returns the body of a 2xx answer.
func (u *upstream) do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	data, _, err := u.doWithType(ctx, method, path, body)
	return data, err
}

// doWithType is do that also returns the answer's Content-Type.
func (u *upstream) doWithType(ctx context.Context, method, path string, body []byte) ([]byte, string, error) {
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.baseURL+path, reader)
	if err != nil {
		return nil, "", temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s %s: %v", u.name, path, err), ErrUpstreamBadRequest, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if u.auth != nil {
		u.auth(req)
	}
	defer keepAlive(ctx)()
	start := time.Now()
	resp, err := u.http.Do(req)
	if err != nil {
		u.metrics.observe(u.name, "error", time.Since(start))
		return nil, "", temporal.NewApplicationErrorWithCause(
			fmt.Sprintf("%s %s %s: no answer: %v", u.name, method, path, err), unreachableType(err), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxUpstreamBody))
	u.metrics.observe(u.name, strconv.Itoa(resp.StatusCode), time.Since(start))
	if err != nil {
		return nil, "", temporal.NewApplicationErrorWithCause(
			fmt.Sprintf("%s %s %s: answer cut short: %v", u.name, method, path, err), unreachableType(err), err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return data, resp.Header.Get("Content-Type"), nil
	}
	err = statusError(u.name, method, path, resp, data)
	var app *temporal.ApplicationError
	if t, ok := u.verdicts[resp.StatusCode]; ok && errors.As(err, &app) {
		return nil, "", temporal.NewNonRetryableApplicationError(app.Message(), t, nil)
	}
	if resp.StatusCode == http.StatusTooManyRequests && u.retryAfter != nil {
		if d := u.retryAfter(data); d > 0 {
			err = temporal.NewApplicationErrorWithOptions(err.Error(), ErrUpstreamRateLimited,
				temporal.ApplicationErrorOptions{NextRetryDelay: d})
		}
	}
	return nil, "", err
}

// getJSON GETs path and decodes the answer into out.
func (u *upstream) getJSON(ctx context.Context, path string, out any) ([]byte, error) {
	data, contentType, err := u.doWithType(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, out); err != nil {
		// JSON of the wrong shape is the API's contract changing; a body that is not JSON
		// at all (a gateway's HTML page, an answer broken on the way) is a passing fault.
		// The Content-Type is only reported: some APIs label good JSON text/plain.
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return nil, badResponse(u.name, path, err)
		}
		return nil, temporal.NewApplicationErrorWithCause(
			fmt.Sprintf("%s GET %s: answer (%s) is not JSON: %v: %s", u.name, path, excerpt(contentType), err, upstreamMessage(data)),
			ErrUpstreamGarbled, err)
	}
	return data, nil
}

func badResponse(api, path string, err error) error {
	return temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("%s %s: answer is not what the API promises: %v", api, path, err), ErrUpstreamBadResponse, err)
}

// statusError sorts a non-2xx answer by kind, keeping the upstream's own message.
func statusError(api, method, path string, resp *http.Response, body []byte) error {
	msg := fmt.Sprintf("%s %s %s: %d %s", api, method, path, resp.StatusCode, upstreamMessage(body))
	switch code := resp.StatusCode; {
	case code == http.StatusTooManyRequests:
		return temporal.NewApplicationErrorWithOptions(msg, ErrUpstreamRateLimited, temporal.ApplicationErrorOptions{
			NextRetryDelay: retryAfter(resp.Header.Get("Retry-After")),
		})
	case code >= 500:
		return temporal.NewApplicationError(msg, ErrUpstreamUnavailable)
	case code == http.StatusBadRequest || code == http.StatusUnprocessableEntity:
		return temporal.NewNonRetryableApplicationError(msg, ErrUpstreamBadRequest, nil)
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return temporal.NewNonRetryableApplicationError(msg, ErrUpstreamUnauthorized, nil)
	case code == http.StatusNotFound:
		return temporal.NewNonRetryableApplicationError(msg, ErrUpstreamNotFound, nil)
	case code >= 400:
		return temporal.NewNonRetryableApplicationError(msg, ErrUpstreamRejected, nil)
	default: // 1xx, 3xx: nothing relay asked for
		return temporal.NewNonRetryableApplicationError(msg, ErrUpstreamBadResponse, nil)
	}
}

// upstreamMessage finds the message in the envelopes the upstreams use:
// {"message": "..."} or {"error": {"message": "..."}}; otherwise a short excerpt.
func upstreamMessage(body []byte) string {
	var env struct {
		Message string `json:"message"`
		Error   struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil {
		if env.Message != "" {
			return excerpt(env.Message)
		}
		if env.Error.Message != "" {
			return excerpt(env.Error.Message)
		}
	}
	return excerpt(string(body))
}

// excerpt cuts upstream text to about 200 bytes of valid UTF-8. It ends up in an activity's
// failure, which Temporal keeps in history and cannot record at all if a string in it is
// not UTF-8 (a Latin-1 error page, or a cut through a character).
func excerpt(s string) string {
	const limit = 200
	s = strings.ToValidUTF8(strings.TrimSpace(s), "\uFFFD")
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// maxRetryAfter bounds a Retry-After that relay believes: a longer one (or one that would
// overflow a time.Duration) is not a plan for this job, and the retry policy decides.
const maxRetryAfter = time.Hour

// retryAfter reads a Retry-After of whole seconds; 0 leaves the delay to the retry policy.
func retryAfter(v string) time.Duration {
	secs, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || secs <= 0 || secs > int(maxRetryAfter/time.Second) {
		return 0
	}
	return time.Duration(secs) * time.Second
}

// unreachableType tells a call that ran out of time (the attempt's deadline, or
// RELAY_UPSTREAM_TIMEOUT) from one the network failed: a waiting client is told 504 for
// the first and 502 for the second. Both are retried.
func unreachableType(err error) string {
	var netErr net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()) {
		return ErrUpstreamTimeout
	}
	return ErrUpstreamUnreachable
}
