package server

import (
	"context"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
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
// each one that failed.
func handleReadyz(logger *slog.Logger, checks []Check) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), readyTimeout)
		defer cancel()
		results := make(map[string]string, len(checks))
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, check := range checks {
			wg.Go(func() {
				status := "ok"
				if err := check.Run(ctx); err != nil {
					status = err.Error()
				}
				mu.Lock()
				results[check.Name] = status
				mu.Unlock()
			})
		}
		wg.Wait()
		var down []string
		for name, status := range results {
			if status != "ok" {
				down = append(down, name+": "+status)
			}
		}
		if len(down) > 0 {
			sort.Strings(down)
			logger.WarnContext(c.Request.Context(), "not ready", "down", down)
			c.JSON(http.StatusServiceUnavailable, gin.H{
				"error":  Errorf(CodeUnavailable, "not ready: "+strings.Join(down, "; ")),
				"checks": results,
			})
			return
		}
		respond(c, http.StatusOK, gin.H{"status": "ready", "checks": results})
	}
}
