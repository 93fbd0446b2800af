package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// Check is one dependency /readyz asks: it returns nil when the dependency answers.
type Check struct {
	Name string
	Run  func(ctx context.Context) error
}

// readyTimeout bounds /readyz, so that a hung dependency reads as down, not as a hung probe.
const readyTimeout = 2 * time.Second

func handleHealthz(logger *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		respond(c, logger, http.StatusOK, gin.H{"status": "ok"})
	}
}

// handleReadyz asks every check at once and answers 200 when all pass, else 503 naming
// each one that is down.
func handleReadyz(logger *slog.Logger, checks []Check, details func() gin.H) gin.HandlerFunc {
	return func(c *gin.Context) {
		ready := checkReadiness(c.Request.Context(), logger, checks)
		if len(ready.down) > 0 {
			respond(c, logger, http.StatusServiceUnavailable, gin.H{
				"error":   Errorf(CodeUnavailable, "not ready: "+strings.Join(ready.down, "; ")),
				"checks":  ready.checks,
				"details": details(),
			})
			return
		}
		respond(c, logger, http.StatusOK, gin.H{"status": "ready", "checks": ready.checks, "details": details()})
	}
}

// readiness is what the checks said: "ok", "down" or "no answer within …" by check, and
// those not ok as "name: state", sorted.
type readiness struct {
	checks map[string]string
	down   []string
}

// checkReadiness asks every check at once, within readyTimeout. A check that ignores its
// deadline or panics reads as down too; the reasons go to the log, not to the client.
// /readyz and the status page both use it.
func checkReadiness(ctx context.Context, logger *slog.Logger, checks []Check) readiness {
	type result struct {
		name string
		err  error
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(parent, readyTimeout)
	defer cancel()
	// Wait a little past the checks' deadline, so that a check that honours it is
	// reported with its own error, and only one that ignores it as "no answer".
	wait, stopWait := context.WithTimeout(parent, readyTimeout+100*time.Millisecond)
	defer stopWait()
	results := make(chan result, len(checks)) // buffered: a late check never blocks
	for _, check := range checks {
		go func() {
			defer func() {
				if p := recover(); p != nil {
					results <- result{check.Name, fmt.Errorf("check panicked: %v", p)}
				}
			}()
			results <- result{check.Name, check.Run(ctx)}
		}()
	}
	status := make(map[string]string, len(checks))
	for _, check := range checks {
		status[check.Name] = "no answer within " + readyTimeout.String()
	}
collect:
	for range checks {
		select {
		case r := <-results:
			if r.err == nil {
				status[r.name] = "ok"
			} else {
				status[r.name] = "down"
				logger.WarnContext(parent, "readiness check failed", "check", r.name, "error", r.err)
			}
		case <-wait.Done():
			break collect
		}
	}
	var down []string
	for name, s := range status {
		if s != "ok" {
			down = append(down, name+": "+s)
		}
	}
	sort.Strings(down)
	return readiness{checks: status, down: down}
}
