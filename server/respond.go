package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"

	"github.com/gin-gonic/gin"
)

// MaxBodyBytes caps every request body (1 MiB); more is answered 413.
const MaxBodyBytes = 1 << 20

// Validator is a decoded request that can check itself; it returns problems by field.
type Validator interface {
	Valid(ctx context.Context) map[string]string
}

// decode reads a JSON body into T: capped, unknown fields and trailing data rejected,
// then T.Valid. Every failure is an *Error naming what is wrong.
func decode[T Validator](c *gin.Context) (T, error) {
	return decodeBody[T](c, false)
}

// decodeOptional is decode for routes whose body may be left out: no body at all gives
// the zero T, still checked by Valid.
func decodeOptional[T Validator](c *gin.Context) (T, error) {
	return decodeBody[T](c, true)
}

func decodeBody[T Validator](c *gin.Context, optional bool) (T, error) {
	var v T
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return v, Errorf(CodeTooLarge, fmt.Sprintf("body is larger than %d bytes", tooBig.Limit))
		}
		return v, Errorf(CodeInvalid, "could not read body: "+err.Error())
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 && optional {
		body = []byte("{}")
	} else if len(trimmed) == 0 {
		return v, Errorf(CodeInvalid, "body is empty: want a JSON object")
	}
	if string(trimmed) == "null" { // it would decode to the zero value without complaint
		return v, Errorf(CodeInvalid, "body must be a JSON object, not null")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, jsonError(err)
	}
	// dec.More is not enough here: it reports a stray '}' or ']' as the end of input.
	if len(bytes.TrimLeft(body[dec.InputOffset():], " \t\r\n")) > 0 {
		return v, Errorf(CodeInvalid, "unexpected data after the JSON object")
	}
	if field, found := duplicateKey(body); found {
		return v, invalidField(field, "given more than once: give each member once")
	}
	if field, found := unknownKey(body, reflect.TypeOf(v)); found {
		return v, invalidField(field, "unknown field (names are case-sensitive)")
	}
	if problems := v.Valid(c.Request.Context()); len(problems) > 0 {
		return v, invalidFields(problems)
	}
	return v, nil
}

// jsonError turns the decoder's errors into messages a client can act on.
func jsonError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return Errorf(CodeInvalid, fmt.Sprintf("malformed JSON at byte %d: %v", syntax.Offset, syntax))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Errorf(CodeInvalid, "malformed JSON: body ends early")
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return Errorf(CodeInvalid, fmt.Sprintf("body must be a JSON object, not %s", typ.Value))
		}
		msg := fmt.Sprintf("want %s, got %s", jsonKind(typ.Type.Kind().String()), typ.Value)
		return invalidField(field, msg)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return invalidField(field, "unknown field")
	default:
		return Errorf(CodeInvalid, "invalid JSON: "+err.Error())
	}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "a number"
	case "slice", "array":
		return "an array"
	default:
		return "an object"
	}
}

// respond writes v as JSON with status. It encodes before writing anything, so that a
// value that cannot be encoded (a stored location that is not JSON) is an internal error,
// not half a body.
func respond(c *gin.Context, logger *slog.Logger, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		respondError(c, logger, fmt.Errorf("encode answer: %w", err))
		return
	}
	c.Data(status, "application/json; charset=utf-8", body)
}

// respondError writes err in the error envelope, with Retry-After when it asks for one;
// on the event endpoints the envelope also has "status": "error" (see isEventPath).
// Internal errors are logged with the request id and shown only as "internal error".
func respondError(c *gin.Context, logger *slog.Logger, err error) {
	e := clientError(c, logger, err)
	c.Abort()
	if e.RetryAfter > 0 {
		c.Header("Retry-After", retryAfterSeconds(e.RetryAfter))
	}
	var body any = envelope{Error: e}
	if isEventPath(c.Request.URL.Path) {
		body = statusEnvelope{Error: e, Status: statusError}
	}
	b, _ := json.Marshal(body) // strings and a string map: cannot fail
	c.Data(Status(e), "application/json; charset=utf-8", b)
}

// clientError is what the client is told of err: err's *Error, or for anything else
// "internal error", with the detail logged.
func clientError(c *gin.Context, logger *slog.Logger, err error) *Error {
	var e *Error
	if !errors.As(err, &e) || statusByCode[e.Code] == 0 {
		logger.ErrorContext(c.Request.Context(), "internal error",
			"error", err, "request_id", requestID(c), "route", c.FullPath())
		e = Errorf(CodeInternal, "internal error")
	}
	return e
}
