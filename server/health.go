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

func handleHealthz() gin.HandlerFunc {
	return func(c *gin.Context) {
		respond(c, http.StatusOK, gin.H{"status": "ok"})
	}
}

// handleReadyz asks every check at once and answers 200 when all pass, else 503 naming
// each one that is down. A check that ignores its deadline or panics reads as down too;
// the reasons go to the log, not to the client.
func handleReadyz(logger *slog.Logger, checks []Check, details func() gin.H) gin.HandlerFunc {
	type result struct {
		name string
		err  error
	}
	return func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), readyTimeout)
		defer cancel()
		// Wait a little past the checks' deadline, so that a check that honours it is
		// reported with its own error, and only one that ignores it as "no answer".
		wait, stopWait := context.WithTimeout(c.Request.Context(), readyTimeout+100*time.Millisecond)
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
		var down []string
	collect:
		for range checks {
			select {
			case r := <-results:
				if r.err == nil {
					status[r.name] = "ok"
				} else {
					status[r.name] = "down"
					logger.WarnContext(c.Request.Context(), "readiness check failed", "check", r.name, "error", r.err)
				}
			case <-wait.Done():
				break collect
			}
		}
		for name, s := range status {
			if s != "ok" {
				down = append(down, name+": "+s)
			}
		}
		if len(down) > 0 {
			sort.Strings(down)
			c.JSON(http.StatusServiceUnavailable, gin.H{
				"error":   Errorf(CodeUnavailable, "not ready: "+strings.Join(down, "; ")),
				"checks":  status,
				"details": details(),
			})
			return
		}
		respond(c, http.StatusOK, gin.H{"status": "ready", "checks": status, "details": details()})
	}
}
