package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"relay/internal/timefmt"
	"relay/workflows"
)

// outageSyncRequest is the optional body of POST /sites/{site_id}/outage-sync.
type outageSyncRequest struct {
	Since string `json:"since"`
}

func (r outageSyncRequest) Valid(context.Context) map[string]string {
	if r.Since == "" {
		return nil
	}
	if _, err := time.Parse(time.RFC3339Nano, r.Since); err != nil {
		return map[string]string{"since": "want an RFC 3339 time like 2022-01-01T00:00:00.000Z"}
	}
	return nil
}

// handleOutageSyncStart starts a site's sync, or answers with the one already running:
// the workflow id is the site's, and a start joins a running workflow of that id.
func handleOutageSyncStart(logger *slog.Logger, tc Temporal, defaultSince time.Time) gin.HandlerFunc {
	return func(c *gin.Context) {
		site, err := siteParam(c)
		if err != nil {
			respondError(c, logger, err)
			return
		}
		req, err := decodeOptional[outageSyncRequest](c)
		if err != nil {
			respondError(c, logger, err)
			return
		}
		since := req.Since
		if since == "" {
			since = timefmt.Millis(defaultSince)
		}
		ctx, cancel := context.WithTimeout(c.Request.Context(), temporalCallTimeout)
		defer cancel()
		run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID:                       workflows.OutageSyncWorkflowID(site),
			TaskQueue:                workflows.TaskQueue,
			WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
			WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		}, workflows.SyncSiteOutagesWorkflowType, workflows.SyncSiteOutagesInput{SiteID: site, Since: since})
		if err != nil {
			respondError(c, logger, temporalError(logger, c, "start outage sync", err))
			return
		}
		respond(c, http.StatusAccepted, gin.H{"workflow_id": run.GetID(), "run_id": run.GetRunID()})
	}
}

// outageSyncStatus is the answer of GET /sites/{site_id}/outage-sync.
type outageSyncStatus struct {
	WorkflowID string            `json:"workflow_id"`
	RunID      string            `json:"run_id"`
	State      string            `json:"state"` // running | completed | failed
	StartedAt  time.Time         `json:"started_at"`
	ClosedAt   *time.Time        `json:"closed_at"`
	Result     *outageSyncCounts `json:"result"`
	Error      *syncFailure      `json:"error"`
}

type outageSyncCounts struct {
	Fetched              int `json:"fetched"`
	Kept                 int `json:"kept"`
	DroppedBeforeSince   int `json:"dropped_before_since"`
	DroppedUnknownDevice int `json:"dropped_unknown_device"`
	Posted               int `json:"posted"`
}

// syncFailure says why a sync failed: the deepest cause's type and message, which is the
// upstream's own when an upstream said no.
type syncFailure struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// handleOutageSyncGet describes a site's latest sync, from Temporal itself.
func handleOutageSyncGet(logger *slog.Logger, tc Temporal) gin.HandlerFunc {
	return func(c *gin.Context) {
		site, err := siteParam(c)
		if err != nil {
			respondError(c, logger, err)
			return
		}
		// Three calls at most (describe, then the result): each well inside the bound.
		ctx, cancel := context.WithTimeout(c.Request.Context(), temporalCallTimeout)
		defer cancel()
		id := workflows.OutageSyncWorkflowID(site)
		desc, err := tc.DescribeWorkflowExecution(ctx, id, "")
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			respondError(c, logger, Errorf(CodeNotFound, "no outage sync of site "+site+" yet"))
			return
		}
		if err != nil {
			respondError(c, logger, temporalError(logger, c, "describe outage sync", err))
			return
		}
		info := desc.GetWorkflowExecutionInfo()
		out := outageSyncStatus{
			WorkflowID: id,
			RunID:      info.GetExecution().GetRunId(),
			State:      "failed",
			StartedAt:  info.GetStartTime().AsTime(),
		}
		if ct := info.GetCloseTime(); ct != nil {
			t := ct.AsTime()
			out.ClosedAt = &t
		}
		switch info.GetStatus() {
		case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
			out.State = "running"
		case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
			var res workflows.SyncSiteOutagesResult
			if err := tc.GetWorkflow(ctx, id, out.RunID).Get(ctx, &res); err != nil {
				respondError(c, logger, temporalError(logger, c, "read result of "+id, err))
				return
			}
			out.State = "completed"
			out.Result = &outageSyncCounts{
				Fetched: res.Fetched, Kept: res.Kept, DroppedBeforeSince: res.DroppedBeforeSince,
				DroppedUnknownDevice: res.DroppedUnknownDevice, Posted: res.Posted,
			}
		default: // failed, timed out, terminated, canceled, continued-as-new
			out.Error = failureOf(tc.GetWorkflow(ctx, id, out.RunID).Get(ctx, nil), info.GetStatus())
		}
		respond(c, http.StatusOK, out)
	}
}

// failureOf digs the root cause out of a closed workflow's error.
func failureOf(err error, status enumspb.WorkflowExecutionStatus) *syncFailure {
	f := &syncFailure{Type: strings.ToLower(strings.TrimPrefix(status.String(), "WORKFLOW_EXECUTION_STATUS_")), Message: "workflow " + strings.ToLower(status.String())}
	if err == nil {
		return f
	}
	f.Message = err.Error()
	if root := rootCause(err); root != nil {
		f.Type, f.Message = root.Type(), root.Message()
	}
	return f
}

// siteParam is the route's site id, checked before anything reaches Temporal.
func siteParam(c *gin.Context) (string, error) {
	site := c.Param("site_id")
	if !workflows.ValidSiteID(site) {
		msg := "want 1 to 128 of A-Z, a-z, 0-9, _ and -"
		return "", &Error{Code: CodeInvalid, Message: "invalid fields: site_id: " + msg, Fields: map[string]string{"site_id": msg}}
	}
	return site, nil
}

// temporalCallTimeout bounds one call to Temporal (a start, a describe). While the frontend
// is unreachable the SDK retries until its deadline; the client hears 503 well before its
// own patience runs out.
const temporalCallTimeout = 5 * time.Second

// temporalRetryAfter is what a 503 for Temporal asks the client to wait, in seconds.
const temporalRetryAfter = "5"

// temporalError turns a failed Temporal call into what the client sees: 503 with
// Retry-After when Temporal cannot be reached, is overloaded or did not answer in time
// (nothing was started: the request can simply be repeated); the detail goes to the log.
func temporalError(logger *slog.Logger, c *gin.Context, what string, err error) error {
	logger.WarnContext(c.Request.Context(), what+" failed", "error", err, "request_id", requestID(c))
	var unavailable *serviceerror.Unavailable
	var busy *serviceerror.ResourceExhausted
	var deadline *serviceerror.DeadlineExceeded
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &deadline):
		c.Header("Retry-After", temporalRetryAfter)
		return Errorf(CodeUnavailable, what+": Temporal did not answer in time (unreachable or overloaded); retry later")
	case errors.As(err, &unavailable), errors.As(err, &busy):
		c.Header("Retry-After", temporalRetryAfter)
		return Errorf(CodeUnavailable, what+": Temporal is unavailable; retry later")
	default:
		return fmt.Errorf("%s: %w", what, err)
	}
}
