package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/temporal"

	"relay/internal/store"
)

// This file is the one place where failures become what a client sees: the error codes
// and their HTTP statuses, the 400 that names fields, and the translation of Temporal's
// and the store's errors (with how long to wait before asking again).

// Error codes: the small set clients can switch on. Each maps to one HTTP status.
const (
	CodeInvalid          = "invalid_request"
	CodeUnauthorized     = "unauthorized"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeConflict         = "conflict"
	CodeTooLarge         = "payload_too_large"
	CodeRateLimited      = "rate_limited"
	CodeInternal         = "internal"
	CodeBadGateway       = "bad_gateway"
	CodeUnavailable      = "unavailable"
	CodeGatewayTimeout   = "gateway_timeout"
)

var statusByCode = map[string]int{
	CodeInvalid:          http.StatusBadRequest,
	CodeUnauthorized:     http.StatusUnauthorized,
	CodeNotFound:         http.StatusNotFound,
	CodeMethodNotAllowed: http.StatusMethodNotAllowed,
	CodeConflict:         http.StatusConflict,
	CodeTooLarge:         http.StatusRequestEntityTooLarge,
	CodeRateLimited:      http.StatusTooManyRequests,
	CodeInternal:         http.StatusInternalServerError,
	CodeBadGateway:       http.StatusBadGateway,
	CodeUnavailable:      http.StatusServiceUnavailable,
	CodeGatewayTimeout:   http.StatusGatewayTimeout,
}

// How long a 503 or 429 asks the client to wait (the Retry-After header).
const (
	// retryTemporal: Temporal unreachable or overloaded; a frontend restart takes seconds.
	retryTemporal = 5 * time.Second
	// retryStore: the database down or failing over; each retry is one cheap query.
	retryStore = 2 * time.Second
	// retryNoSnapshot: the first incident refresh is still running.
	retryNoSnapshot = 5 * time.Second
)

// temporalCallTimeout bounds one call to Temporal (a start, a describe). While the frontend
// is unreachable the SDK retries until its deadline; the client hears 503 well before its
// own patience runs out.
const temporalCallTimeout = 5 * time.Second

// Error is what a client is told went wrong. Anything else a handler returns is an
// internal error: logged in full, shown to the client as "internal error".
type Error struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"` // per-field problems of a 400
	// RetryAfter, when set, is sent as the Retry-After header (whole seconds, rounded up).
	RetryAfter time.Duration `json:"-"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf is shorthand for an *Error.
func Errorf(code, message string) *Error { return &Error{Code: code, Message: message} }

// Status is the HTTP status of err: its code's, or 500 for anything that is not an *Error.
func Status(err error) int {
	var e *Error
	if errors.As(err, &e) {
		if s, ok := statusByCode[e.Code]; ok {
			return s
		}
	}
	return http.StatusInternalServerError
}

// invalidField is the 400 for one field (a body member, a path or query parameter, a header).
func invalidField(field, problem string) *Error {
	return invalidFields(map[string]string{field: problem})
}

// idProblem is what is wrong with an event or site id in the path.
const idProblem = "want 1 to 128 of A-Z, a-z, 0-9, _ and -"

// invalidFields is the 400 naming each field and its problem.
func invalidFields(problems map[string]string) *Error {
	keys := slices.Sorted(maps.Keys(problems))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ": " + problems[k]
	}
	return &Error{Code: CodeInvalid, Message: "invalid fields: " + strings.Join(parts, "; "), Fields: problems}
}

// unavailable is a 503 that asks the client to come back after wait.
func unavailable(message string, wait time.Duration) *Error {
	return &Error{Code: CodeUnavailable, Message: message, RetryAfter: wait}
}

// retryAfterSeconds is d in whole seconds, rounded up, at least 1.
func retryAfterSeconds(d time.Duration) string {
	s := math.Ceil(d.Seconds())
	if s < 1 || math.IsNaN(s) {
		s = 1
	}
	if s > math.MaxInt32 {
		s = math.MaxInt32
	}
	return strconv.Itoa(int(s))
}

// temporalError turns a failed Temporal call into what the client sees: 503 with
// Retry-After when Temporal cannot be reached, is overloaded or did not answer in time
// (nothing was started: the request can simply be repeated); the detail goes to the log.
func temporalError(c *gin.Context, logger *slog.Logger, what string, err error) error {
	logger.WarnContext(c.Request.Context(), what+" failed", "error", err, "request_id", requestID(c))
	var unavailableErr *serviceerror.Unavailable
	var busy *serviceerror.ResourceExhausted
	var deadline *serviceerror.DeadlineExceeded
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &deadline):
		return unavailable(what+": Temporal did not answer in time (unreachable or overloaded); retry later", retryTemporal)
	case errors.As(err, &unavailableErr), errors.As(err, &busy):
		return unavailable(what+": Temporal is unavailable; retry later", retryTemporal)
	default:
		return fmt.Errorf("%s: %w", what, err)
	}
}

// storeError answers a database that is down or restarting with 503 and Retry-After:
// nothing was stored, and the same request can be sent again. Anything else is internal.
func storeError(c *gin.Context, logger *slog.Logger, what string, err error) error {
	if store.IsUnavailable(err) {
		logger.WarnContext(c.Request.Context(), what+": database unavailable", "error", err, "request_id", requestID(c))
		return unavailable(what+": the database is unavailable; retry later", retryStore)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// rootCause is the first application error in err's chain past the workflow's own
// wrapping: the activity's, which names what went wrong upstream. Not the deepest: an
// activity's error may carry its Go cause (UpstreamUnreachable caused by a context
// deadline), whose type names no verdict. Nil when there is none.
func rootCause(err error) *temporal.ApplicationError {
	for e := err; e != nil; e = errors.Unwrap(e) {
		var app *temporal.ApplicationError
		if errors.As(e, &app) && app.Type() != "wrapError" {
			return app
		}
	}
	return nil
}

// envelope is the body of every error answer.
type envelope struct {
	Error *Error `json:"error"`
}

// statusEnvelope is the error body of the event endpoints, which add "status".
type statusEnvelope struct {
	Error  *Error `json:"error"`
	Status string `json:"status"` // always "error"
}
