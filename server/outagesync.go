package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"

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
		run, err := tc.ExecuteWorkflow(ctx, workflows.OutageSyncStartOptions(site), workflows.SyncSiteOutagesWorkflowType, workflows.SyncSiteOutagesInput{SiteID: site, Since: since})
		if err != nil {
			respondError(c, logger, temporalError(c, logger, "start outage sync", err))
			return
		}
		respond(c, logger, http.StatusAccepted, gin.H{"workflow_id": run.GetID(), "run_id": run.GetRunID()})
	}
}

// outageSyncStatus is the answer of GET /sites/{site_id}/outage-sync.
type outageSyncStatus struct {
	WorkflowID string            `json:"workflow_id"`
	RunID      string            `json:"run_id"`
	State      string            `json:"state"` // running | completed | failed (any other end)
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
	DroppedInvalid       int `json:"dropped_invalid"`
	Posted               int `json:"posted"`
}

func syncCounts(res workflows.SyncSiteOutagesResult) *outageSyncCounts {
	return &outageSyncCounts{
		Fetched: res.Fetched, Kept: res.Kept, DroppedBeforeSince: res.DroppedBeforeSince,
		DroppedUnknownDevice: res.DroppedUnknownDevice, DroppedInvalid: res.DroppedInvalid, Posted: res.Posted,
	}
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
			respondError(c, logger, temporalError(c, logger, "describe outage sync", err))
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
				respondError(c, logger, temporalError(c, logger, "read result of "+id, err))
				return
			}
			out.State = "completed"
			out.Result = syncCounts(res)
		default: // failed, timed out, terminated, canceled, continued-as-new
			out.Error = failureOf(tc.GetWorkflow(ctx, id, out.RunID).Get(ctx, nil), info.GetStatus())
		}
		respond(c, logger, http.StatusOK, out)
	}
}

// failureOf digs the root cause out of a closed workflow's error; without one, the type
// is the workflow's status (timed-out, terminated, …).
func failureOf(err error, status enumspb.WorkflowExecutionStatus) *syncFailure {
	f := &syncFailure{Type: statusWord(status), Message: "the sync ended " + statusWord(status)}
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
		return "", invalidField("site_id", idProblem)
	}
	return site, nil
}
