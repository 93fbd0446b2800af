package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"

	"relay/internal/outagesync"
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

// handleOutageSyncStart starts a site's sync, or answers with the one already running
// when it asks for the same cutoff (or none); a request for another cutoff while one runs
// is a 409 naming the running sync and its cutoff.
func handleOutageSyncStart(logger *slog.Logger, tc Temporal, memos memoReader, defaultSince time.Time) gin.HandlerFunc {
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
		ctx, cancel := context.WithTimeout(c.Request.Context(), temporalCallTimeout)
		defer cancel()
		id, runID, err := startOutageSync(ctx, tc, memos, site, req.Since, defaultSince)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				err = temporalError(c, logger, "start outage sync", err)
			}
			respondError(c, logger, err)
			return
		}
		respond(c, logger, http.StatusAccepted, gin.H{"workflow_id": id, "run_id": runID})
	}
}

// startOutageSync starts the site's sync, or finds the one running and joins it when the
// cutoffs agree. A sync that closes between the failed start and the describe is simply
// started again.
func startOutageSync(ctx context.Context, tc Temporal, memos memoReader, site, since string, defaultSince time.Time) (string, string, error) {
	cutoff := since
	if cutoff == "" {
		cutoff = timefmt.Millis(defaultSince)
	}
	in := workflows.SyncSiteOutagesInput{SiteID: site, Since: cutoff}
	for range 3 {
		run, err := tc.ExecuteWorkflow(ctx, workflows.OutageSyncStartOptions(site, cutoff), workflows.SyncSiteOutagesWorkflowType, in)
		var already *serviceerror.WorkflowExecutionAlreadyStarted
		if !errors.As(err, &already) {
			if err != nil {
				return "", "", err
			}
			return run.GetID(), run.GetRunID(), nil
		}
		desc, err := tc.DescribeWorkflowExecution(ctx, workflows.OutageSyncWorkflowID(site), "")
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			continue
		}
		if err != nil {
			return "", "", err
		}
		info := desc.GetWorkflowExecutionInfo()
		if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			continue // closed meanwhile: start a new one
		}
		running, known := memos.str(info.GetMemo(), workflows.OutageSyncSinceMemo)
		if since == "" || (known && sameInstant(running, since)) {
			return info.GetExecution().GetWorkflowId(), info.GetExecution().GetRunId(), nil
		}
		if !known {
			running = "unknown (started outside relay's API)"
		}
		return "", "", Errorf(CodeConflict, fmt.Sprintf(
			"an outage sync of site %s is running with since %s (workflow %s, run %s): ask for the same since, "+
				"or wait for it to end (GET /sites/%s/outage-sync)",
			site, running, info.GetExecution().GetWorkflowId(), info.GetExecution().GetRunId(), site))
	}
	return "", "", Errorf(CodeConflict, "the outage sync of site "+site+" kept starting and ending: retry")
}

// sameInstant says whether two RFC 3339 times name one instant (2023-01-01T01:00:00+01:00
// is 2023-01-01T00:00:00Z), as the outage filter compares them.
func sameInstant(a, b string) bool {
	ta, errA := time.Parse(time.RFC3339Nano, a)
	tb, errB := time.Parse(time.RFC3339Nano, b)
	return errA == nil && errB == nil && ta.Equal(tb)
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
	if !outagesync.ValidSiteID(site) {
		return "", invalidField("site_id", idProblem)
	}
	return site, nil
}
