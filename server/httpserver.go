package server

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// Timeouts bound how long a client may hold a connection of the API's.
type Timeouts struct {
	// ReadHeader is how long a client has to send its request line and headers, from
	// the moment the server starts reading them: a client that trickles them in (or
	// stops halfway) is disconnected.
	ReadHeader time.Duration
	// Read bounds the whole request, body included, so that a slow upload cannot hold
	// a connection and a handler's goroutine.
	Read time.Duration
	// Write bounds the time from the end of the request's headers to the end of the
	// answer; the handler's context ends then too (see NewHTTPServer).
	Write time.Duration
	// Idle is how long a keep-alive connection may wait for its next request.
	Idle time.Duration
}

// DefaultTimeouts are the API's timeouts.
//
// Write is 60 s because it must outlast the slowest handler and still leave a slow
// reader time to take the largest answer: GET /events-with-subscriptions waits for its
// merge up to workflows.EventSubscriptionsRunTimeout+2s (12 s), and GET /incidents at 100,000 incidents
// is 17.0 MB plain or 2.3 MB gzipped (measured), which a client reading 360 KB/s (plain)
// or 50 KB/s (gzip) still receives in the 48 s left. Everything else answers in
// milliseconds.
var DefaultTimeouts = Timeouts{
	ReadHeader: 10 * time.Second,
	Read:       30 * time.Second,
	Write:      60 * time.Second,
	Idle:       2 * time.Minute,
}

// MaxHeaderBytes caps a request's headers (net/http's default is 1 MiB). 64 KiB is many
// times what a real client sends, API key and proxy headers included; more is 431.
const MaxHeaderBytes = 64 << 10

// NewHTTPServer wraps handler (the API, as New builds it) in the http.Server that serves
// it, with the timeouts against slow or stalled clients. Each request's context ends at
// the write deadline: past it no answer can reach the client, so work done for it (a
// Temporal call, a store query) stops and its connection is released instead of being
// held until the work ends on its own. Errors of the server itself (a failed accept, a
// TLS handshake) go to logger at warn level.
func NewHTTPServer(handler http.Handler, t Timeouts, logger *slog.Logger) *http.Server {
	if t.Write > 0 {
		handler = withWriteDeadline(handler, t.Write)
	}
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// withWriteDeadline ends each request's context after d: net/http sets the connection's
// write deadline to d after the request's headers, just before the handler runs.
func withWriteDeadline(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}
