package server

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

const (
	requestIDHeader = "X-Request-ID"
	requestIDKey    = "relay.request_id"
)

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// withRequestID takes the caller's X-Request-ID when it is sane, or makes one, and
// echoes it, so that a client's report can be found in the logs.
func withRequestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader(requestIDHeader)
		if !validRequestID.MatchString(id) {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		c.Set(requestIDKey, id)
		c.Header(requestIDHeader, id)
		c.Next()
	}
}

func requestID(c *gin.Context) string { return c.GetString(requestIDKey) }

// withRecovery turns a panic into a logged internal error instead of a dropped connection.
func withRecovery(logger *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				respondError(c, logger, fmt.Errorf("panic: %v", p))
			}
		}()
		c.Next()
	}
}

// withAccessLog logs one line per request once it is answered. Probes, scrapes and the
// status page (which reloads itself) go at debug level so that they do not drown the rest.
func withAccessLog(logger *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		level := slog.LevelInfo
		switch c.FullPath() {
		case "/healthz", "/readyz", "/metrics", "/":
			level = slog.LevelDebug
		}
		if c.Writer.Status() >= 500 {
			level = slog.LevelWarn
		}
		logger.LogAttrs(c.Request.Context(), level, "http request",
			slog.String("method", c.Request.Method),
			slog.String("path", c.Request.URL.Path),
			slog.String("route", routeLabel(c)),
			slog.Int("status", c.Writer.Status()),
			slog.Int("bytes", max(c.Writer.Size(), 0)),
			slog.Duration("duration", time.Since(start)),
			slog.String("client_ip", c.ClientIP()),
			slog.String("request_id", requestID(c)),
		)
	}
}

// withBodyLimit caps request bodies: a declared oversize body is refused at once, an
// undeclared one fails when read past the cap (decode then answers 413).
func withBodyLimit(limit int64, logger *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.ContentLength > limit {
			respondError(c, logger, Errorf(CodeTooLarge, fmt.Sprintf("body is larger than %d bytes", limit)))
			return
		}
		if c.Request.Body != nil {
			c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
		}
		c.Next()
	}
}

// withAPIKeys requires "Authorization: Bearer <key>" with one of keys on every route but
// /healthz. Keys are compared as hashes in constant time, so neither their content nor
// their length leaks through timing.
func withAPIKeys(keys []string, logger *slog.Logger) gin.HandlerFunc {
	hashes := make([][32]byte, len(keys))
	for i, k := range keys {
		hashes[i] = sha256.Sum256([]byte(k))
	}
	return func(c *gin.Context) {
		if len(hashes) == 0 || c.Request.URL.Path == "/healthz" {
			c.Next()
			return
		}
		scheme, token, ok := strings.Cut(strings.TrimSpace(c.GetHeader("Authorization")), " ")
		ok = ok && strings.EqualFold(scheme, "Bearer") // auth schemes are case-insensitive
		got := sha256.Sum256([]byte(strings.TrimSpace(token)))
		match := 0
		for _, h := range hashes {
			match |= subtle.ConstantTimeCompare(got[:], h[:])
		}
		if !ok || match != 1 {
			c.Header("WWW-Authenticate", `Bearer realm="relay"`)
			respondError(c, logger, Errorf(CodeUnauthorized, "missing or invalid API key: send 'Authorization: Bearer <key>'"))
			return
		}
		c.Next()
	}
}

// withMetrics counts requests by route and status and times them.
func withMetrics(m *httpMetrics) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := routeLabel(c)
		m.requests.WithLabelValues(route, c.Request.Method, strconv.Itoa(c.Writer.Status())).Inc()
		m.duration.WithLabelValues(route, c.Request.Method).Observe(time.Since(start).Seconds())
	}
}

// routeLabel is the route pattern, never the raw path, so that metric labels stay few.
func routeLabel(c *gin.Context) string {
	if r := c.FullPath(); r != "" {
		return r
	}
	return "unmatched"
}
