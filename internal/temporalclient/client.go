// Package temporalclient connects relay to a Temporal frontend with relay's logger and
// with the SDK's metrics exported to Prometheus.
package temporalclient

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
)

// Options say which server to dial and where logs and metrics go.
type Options struct {
	HostPort  string
	Namespace string
	Logger    *slog.Logger
	// Registry receives the SDK's metrics (temporal_request, temporal_activity_execution_latency, ...).
	// Nil exports none.
	Registry prometheus.Registerer
	// Identity names this process in the Web UI (default: the SDK's pid@host).
	Identity string
	// ConnectTimeout bounds how long Dial keeps trying (default 30s).
	ConnectTimeout time.Duration
	// TLS secures the connection (Temporal Cloud, a cluster with TLS or mutual TLS).
	TLS TLS
	// APIKey is sent with every call as 'authorization: Bearer <key>'. An API key is never
	// sent in plain text: with no TLS settings it turns TLS on with the system's roots,
	// which is what Temporal Cloud needs.
	APIKey string
	// DataConverter and FailureConverter, when set, are what every payload and failure
	// goes through (payloadcodec: encryption). Nil: the SDK's defaults, in the clear.
	DataConverter    converter.DataConverter
	FailureConverter converter.FailureConverter
}

// Dial connects and checks that the server answers, retrying for up to ConnectTimeout:
// a frontend that has just started (or a cluster still coming up) may need a moment.
func Dial(ctx context.Context, opts Options) (client.Client, error) {
	co, err := clientOptions(opts)
	if err != nil {
		return nil, err
	}
	if opts.ConnectTimeout == 0 {
		opts.ConnectTimeout = 30 * time.Second
	}
	deadline := time.Now().Add(opts.ConnectTimeout)
	var lastErr error
	for {
		c, err := client.DialContext(ctx, co)
		if err == nil {
			return c, nil
		}
		lastErr = err
		if time.Now().After(deadline) || ctx.Err() != nil || tlsRefused(err) {
			return nil, fmt.Errorf("connect to temporal at %s (namespace %s%s): %w%s",
				opts.HostPort, opts.Namespace, describeSecurity(opts), lastErr, hint(opts, lastErr))
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func clientOptions(opts Options) (client.Options, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	co := client.Options{
		HostPort:  opts.HostPort,
		Namespace: opts.Namespace,
		Identity:  opts.Identity,
		// The SDK logs every activity at DEBUG; keep it at relay's level and name the source.
		Logger:           sdklog.NewStructuredLogger(logger.With("system", "temporal-sdk")),
		DataConverter:    opts.DataConverter,
		FailureConverter: opts.FailureConverter,
	}
	tlsCfg, err := tlsConfig(opts.TLS)
	if err != nil {
		return co, err
	}
	if opts.APIKey != "" {
		co.Credentials = client.NewAPIKeyStaticCredentials(opts.APIKey)
		if tlsCfg == nil {
			// The SDK would do the same; saying it here keeps the rule in one place.
			tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
	}
	co.ConnectionOptions.TLS = tlsCfg
	if opts.Registry != nil {
		handler, err := metricsHandler(opts.Registry)
		if err != nil {
			return co, err
		}
		co.MetricsHandler = handler
	}
	return co, nil
}

// describeSecurity names how the connection was secured, for a dial error.
func describeSecurity(opts Options) string {
	if !opts.TLS.Enabled() && opts.APIKey == "" {
		return ", plain text"
	}
	s := ", TLS"
	if opts.TLS.ServerName != "" {
		s += " for server name " + opts.TLS.ServerName
	}
	if opts.TLS.CAFile != "" {
		s += ", CA " + opts.TLS.CAFile
	} else {
		s += ", system roots"
	}
	if opts.TLS.CertFile != "" {
		s += ", client certificate " + opts.TLS.CertFile
	}
	if opts.APIKey != "" {
		s += ", API key"
	}
	return s
}

// tlsRefused reports whether err is a TLS handshake that failed on the certificates or the
// protocol: a mistake in the settings (or the server's), which waiting does not mend, so
// Dial says so at once instead of at the end of ConnectTimeout.
func tlsRefused(err error) bool {
	msg := err.Error()
	for _, s := range []string{"x509:", "tls: certificate required", "tls: bad certificate", "tls: unknown certificate",
		"first record does not look like a TLS handshake"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// hint adds what an operator most likely has to change for the errors that say little
// on their own.
func hint(opts Options, err error) string {
	msg := err.Error()
	switch {
	case !opts.TLS.Enabled() && opts.APIKey == "" &&
		(strings.Contains(msg, "server preface") || strings.Contains(msg, "EOF")):
		return " (does the server require TLS? set TEMPORAL_TLS_CA, or TEMPORAL_TLS_SERVER_NAME for the system's roots)"
	case strings.Contains(msg, "first record does not look like a TLS handshake"):
		return " (the server speaks plain text: unset the TEMPORAL_TLS_* settings and TEMPORAL_API_KEY)"
	case strings.Contains(msg, "certificate required") || strings.Contains(msg, "bad certificate"):
		return " (the server wants a client certificate it trusts: set TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY)"
	}
	return ""
}

// metricsHandler bridges the SDK's metrics, through OpenTelemetry, into a Prometheus registry.
func metricsHandler(reg prometheus.Registerer) (client.MetricsHandler, error) {
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter for temporal sdk metrics: %w", err)
	}
	// The SDK records latencies in seconds; OpenTelemetry's default buckets are meant for
	// milliseconds (0 to 10000), which would put every activity in the first bucket.
	seconds := sdkmetric.NewView(
		sdkmetric.Instrument{Kind: sdkmetric.InstrumentKindHistogram},
		sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{
			Boundaries: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}},
	)
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter), sdkmetric.WithView(seconds))
	return opentelemetry.NewMetricsHandler(opentelemetry.MetricsHandlerOptions{
		Meter: provider.Meter("go.temporal.io/sdk"),
	}), nil
}
