package server

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"

	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"relay/workflows"
)

// job lists a job's latest runs and counts all its runs by status, from Temporal's
// visibility store.
func (p *statusPage) job(ctx context.Context, job statusJob) jobPanel {
	out := jobPanel{statusJob: job, State: "idle"}
	if p.src.runs == nil {
		out.Err = "no Temporal client in this process"
		return out
	}
	query := fmt.Sprintf("WorkflowType = '%s'", job.WorkflowType)
	var (
		wg                sync.WaitGroup
		list              *workflowservice.ListWorkflowExecutionsResponse
		count             *workflowservice.CountWorkflowExecutionsResponse
		listErr, countErr error
	)
	wg.Go(func() {
		list, listErr = p.src.runs.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			PageSize: statusRuns, Query: query})
	})
	wg.Go(func() {
		count, countErr = p.src.runs.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{
			Query: query + " GROUP BY ExecutionStatus"})
	})
	wg.Wait()
	if listErr != nil {
		out.Err = p.panelError("listing runs", listErr)
		return out
	}
	execs := latestFirst(list.GetExecutions())
	for _, e := range execs[:min(len(execs), statusRuns)] {
		out.Runs = append(out.Runs, p.runRow(e))
	}
	if len(out.Runs) > 0 {
		out.State = out.Runs[0].Status
		for _, r := range out.Runs {
			if r.Status == "running" {
				out.State = "running"
			}
		}
	}
	out.Chart = drawDurations(out.Runs)
	if countErr != nil {
		out.Err = p.panelError("counting runs", countErr)
		return out
	}
	for _, g := range count.GetGroups() {
		var status string
		if vals := g.GetGroupValues(); len(vals) == 1 {
			_ = converter.GetDefaultDataConverter().FromPayload(vals[0], &status) // "" reads as unknown
		}
		out.Totals = append(out.Totals, statusTotal{Status: statusWordOf(status), Count: g.GetCount()})
	}
	slices.SortFunc(out.Totals, func(a, b statusTotal) int { return strings.Compare(a.Status, b.Status) })
	return out
}

// latestFirst orders runs by start time, newest first (visibility lists running ones first).
func latestFirst(execs []*workflowpb.WorkflowExecutionInfo) []*workflowpb.WorkflowExecutionInfo {
	execs = slices.Clone(execs)
	slices.SortStableFunc(execs, func(a, b *workflowpb.WorkflowExecutionInfo) int {
		return b.GetStartTime().AsTime().Compare(a.GetStartTime().AsTime())
	})
	return execs
}

func (p *statusPage) runRow(e *workflowpb.WorkflowExecutionInfo) runRow {
	r := runRow{
		WorkflowID: e.GetExecution().GetWorkflowId(),
		RunID:      e.GetExecution().GetRunId(),
		Status:     statusWord(e.GetStatus()),
		Started:    e.GetStartTime().AsTime(),
	}
	if ct := e.GetCloseTime(); ct != nil && e.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		r.Duration = ct.AsTime().Sub(r.Started)
	} else {
		r.Duration = p.now().Sub(r.Started)
	}
	r.URL = p.runURL(r.WorkflowID, r.RunID)
	fields := e.GetSearchAttributes().GetIndexedFields()
	dc := converter.GetDefaultDataConverter() // search attributes are never encoded by a codec
	if v, ok := fields[workflows.OutcomeAttribute.GetName()]; ok {
		_ = dc.FromPayload(v, &r.Outcome)
	}
	if v, ok := fields[workflows.CountAttribute.GetName()]; ok && dc.FromPayload(v, &r.Count) == nil {
		r.Counted = true
	}
	return r
}

// runURL is a run's history in the Temporal Web UI, or "" when no UI is configured.
func (p *statusPage) runURL(workflowID, runID string) string {
	if p.uiURL == "" {
		return ""
	}
	return strings.TrimRight(p.uiURL, "/") + "/namespaces/" + url.PathEscape(p.ns) +
		"/workflows/" + url.PathEscape(workflowID) + "/" + url.PathEscape(runID) + "/history"
}

// outages is each site's latest sync with what it did, from the workflows' results.
func (p *statusPage) outages(ctx context.Context) outagesPanel {
	if p.src.runs == nil {
		return outagesPanel{Err: "no Temporal client in this process"}
	}
	list, err := p.src.runs.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		PageSize: syncsListed, Query: fmt.Sprintf("WorkflowType = '%s'", workflows.SyncSiteOutagesWorkflowType),
	})
	if err != nil {
		return outagesPanel{Err: p.panelError("listing outage syncs", err)}
	}
	prefix := workflows.OutageSyncWorkflowID("")
	var out outagesPanel
	seen := map[string]bool{}
	var statuses []enumspb.WorkflowExecutionStatus
	for _, e := range latestFirst(list.GetExecutions()) {
		id := e.GetExecution().GetWorkflowId()
		site, ok := strings.CutPrefix(id, prefix)
		if !ok || seen[id] {
			continue // started by hand under another id, or an older run of a listed site
		}
		seen[id] = true
		out.Sites = append(out.Sites, siteSync{Site: site, runRow: p.runRow(e), memo: e.GetMemo()})
		statuses = append(statuses, e.GetStatus())
		if len(out.Sites) == statusSites {
			break
		}
	}
	// The counts are in each closed run's memo (workflows.recordEnding): no history is read.
	for i := range out.Sites {
		s, status := &out.Sites[i], statuses[i]
		switch status {
		case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
			var res workflows.SyncSiteOutagesResult
			switch err := p.src.memos.value(s.memo, workflows.ResultMemo, &res); {
			case errors.Is(err, errNoMemo):
				s.Err = "no counts in the memo (a run of an older relay): see the run in the Web UI"
				continue
			case err != nil:
				s.Err = "the counts in the memo do not read: " + err.Error()
				continue
			}
			s.Result = syncCounts(res)
		default:
			s.Error = failureOf(nil, status)
			var f workflows.Failure
			if p.src.memos.value(s.memo, workflows.FailureMemo, &f) == nil {
				s.Error.Type, s.Error.Message = f.Type, f.Message
			}
		}
	}
	return out
}
