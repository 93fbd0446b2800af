package temporalserver

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
)

// slogLogger writes the server's logs to relay's slog logger. The server logs a lot at
// info level about its own housekeeping, so only warnings and errors pass by default.
type slogLogger struct {
	log *slog.Logger
	min *slog.LevelVar // shared by every With, so Stop can quiet them all
}

var _ log.Logger = slogLogger{}

func newLogger(l *slog.Logger) slogLogger {
	min := &slog.LevelVar{}
	min.Set(slog.LevelWarn)
	return slogLogger{log: l.With("system", "temporal"), min: min}
}

func (s slogLogger) Debug(msg string, tags ...tag.Tag)  { s.emit(slog.LevelDebug, msg, tags) }
func (s slogLogger) Info(msg string, tags ...tag.Tag)   { s.emit(slog.LevelInfo, msg, tags) }
func (s slogLogger) Warn(msg string, tags ...tag.Tag)   { s.emit(slog.LevelWarn, msg, tags) }
func (s slogLogger) Error(msg string, tags ...tag.Tag)  { s.emit(slog.LevelError, msg, tags) }
func (s slogLogger) DPanic(msg string, tags ...tag.Tag) { s.emit(slog.LevelError, msg, tags) }
func (s slogLogger) Panic(msg string, tags ...tag.Tag)  { s.fatal(msg, tags) }
func (s slogLogger) Fatal(msg string, tags ...tag.Tag)  { s.fatal(msg, tags) }

// fatalError is what Fatal and Panic panic with. The server's code does not expect them to
// return (its own logger exits or panics): when its gRPC listener cannot bind, it logs
// Fatal and, were Fatal to return, goes on with a nil listener and crashes far from the
// cause. buildAndStart turns the panic back into an error it can retry.
type fatalError struct{ msg string }

func (e fatalError) Error() string { return e.msg }

func (s slogLogger) fatal(msg string, tags []tag.Tag) {
	s.log.Log(context.Background(), slog.LevelError, msg, attrs(tags)...) // whatever the level
	var b strings.Builder
	b.WriteString(msg)
	for _, t := range tags {
		fmt.Fprintf(&b, ", %s: %v", t.Key(), t.Value())
	}
	panic(fatalError{b.String()})
}

// With keeps tags attached, as the server expects of a log.WithLogger.
func (s slogLogger) With(tags ...tag.Tag) log.Logger {
	return slogLogger{log: s.log.With(attrs(tags)...), min: s.min}
}

func (s slogLogger) emit(level slog.Level, msg string, tags []tag.Tag) {
	if level < s.min.Level() || !s.log.Enabled(context.Background(), level) {
		return
	}
	s.log.Log(context.Background(), level, msg, attrs(tags)...)
}

func attrs(tags []tag.Tag) []any {
	out := make([]any, len(tags))
	for i, t := range tags {
		out[i] = slog.Any(t.Key(), t.Value())
	}
	return out
}
