package server

import (
	"errors"
	"net/http"
)

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

// Error is what a client is told went wrong. Anything else a handler returns is an
// internal error: logged in full, shown to the client as "internal error".
type Error struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"` // per-field problems of a 400
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

// envelope is the body of every error answer.
type envelope struct {
	Error *Error `json:"error"`
}

// statusEnvelope is the error body of the event endpoints, which add "status".
type statusEnvelope struct {
	Error  *Error `json:"error"`
	Status string `json:"status"` // always "error"
}
