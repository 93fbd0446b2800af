package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/types/known/timestamppb"

	"relay/internal/store"
	"relay/workflows"
)

// fakeTemporal is the Temporal client the handlers and the status page see, in memory.
//
// Visibility holds runs; a run's Get answers results[run id] or failures[run id]. listErr
// fails every list and count; hang makes them wait for release, ignoring their context,
// like a Temporal that never answers.
//
// ExecuteWorkflow records each start and answers startErr, or start's answer when set,
// or else a run whose Get answers results[workflow id] or failures[workflow id].
// DescribeWorkflowExecution answers described[workflow id], or NotFound.
type fakeTemporal struct {
	runs     []*workflowpb.WorkflowExecutionInfo
	results  map[string]any   // by run id, or by workflow id for a started run
	failures map[string]error // likewise
	listErr  error
	hang     chan struct{}
	lists    atomic.Int64
	gets     atomic.Int64 // GetWorkflow calls: reads of a run's history

	startErr  error
	start     func(opts client.StartWorkflowOptions) (client.WorkflowRun, error)
	described map[string]*workflowpb.WorkflowExecutionInfo
	// pendingActivities are a described run's activities under way, by workflow id.
	pendingActivities map[string][]*workflowpb.PendingActivityInfo

	// update, when set, answers UpdateWithStartWorkflow in place of results and failures.
	update func(opts client.StartWorkflowOptions, n int) (client.WorkflowUpdateHandle, error)
	// notAccepted makes UpdateWithStartWorkflow wait until its context ends, as while a run
	// fetches (or Temporal does not answer), and fail as the SDK does then.
	notAccepted bool
	// pendingWorkflowTasks are a described run's workflow task, by workflow id.
	pendingWorkflowTasks map[string]*workflowpb.PendingWorkflowTaskInfo

	mu     sync.Mutex
	starts []fakeStart
}

// fakeStart is one ExecuteWorkflow or UpdateWithStartWorkflow call (update is set for
// the latter).
type fakeStart struct {
	opts     client.StartWorkflowOptions
	workflow any
	args     []any
	update   *client.UpdateWorkflowOptions
}

// fakeStartOp is the start operation NewWithStartWorkflowOperation makes.
type fakeStartOp struct {
	opts     client.StartWorkflowOptions
	workflow any
	args     []any
}

func (fakeStartOp) Get(context.Context) (client.WorkflowRun, error) {
	return nil, errors.New("fakeStartOp.Get is not faked")
}

func (f *fakeTemporal) NewWithStartWorkflowOperation(opts client.StartWorkflowOptions, workflow any, args ...any) client.WithStartWorkflowOperation {
	return fakeStartOp{opts: opts, workflow: workflow, args: args}
}

// UpdateWithStartWorkflow records the ask as a start and answers startErr; or update's
// answer when set; or else a handle whose Get answers results[workflow id] or
// failures[workflow id].
func (f *fakeTemporal) UpdateWithStartWorkflow(ctx context.Context, o client.UpdateWithStartWorkflowOptions) (client.WorkflowUpdateHandle, error) {
	op := o.StartWorkflowOperation.(fakeStartOp)
	f.mu.Lock()
	f.starts = append(f.starts, fakeStart{opts: op.opts, workflow: op.workflow, args: op.args, update: &o.UpdateOptions})
	n := len(f.starts)
	f.mu.Unlock()
	switch {
	case f.startErr != nil:
		return nil, f.startErr
	case f.update != nil:
		return f.update(op.opts, n)
	case f.notAccepted:
		<-ctx.Done()
		return nil, client.NewWorkflowUpdateServiceTimeoutOrCanceledError(ctx.Err())
	}
	return fakeUpdateHandle{result: f.results[op.opts.ID], err: f.failures[op.opts.ID]}, nil
}

// fakeUpdateHandle's Get answers result, or err.
type fakeUpdateHandle struct {
	result any
	err    error
}

func (fakeUpdateHandle) WorkflowID() string { return "" }
func (fakeUpdateHandle) RunID() string      { return "" }
func (fakeUpdateHandle) UpdateID() string   { return "" }
func (h fakeUpdateHandle) Get(ctx context.Context, ptr any) error {
	return fakeRun{result: h.result, err: h.err}.Get(ctx, ptr)
}

// started is every start so far.
func (f *fakeTemporal) started() []fakeStart {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.starts)
}

var workflowTypeQuery = regexp.MustCompile(`^WorkflowType = '(\w+)'( GROUP BY ExecutionStatus)?$`)

func (f *fakeTemporal) matching(query string) ([]*workflowpb.WorkflowExecutionInfo, error) {
	if f.hang != nil {
		<-f.hang
	}
	if f.listErr != nil {
		return nil, f.listErr
	}
	m := workflowTypeQuery.FindStringSubmatch(query)
	if m == nil {
		return nil, serviceerror.NewInvalidArgument("unexpected query " + query)
	}
	var out []*workflowpb.WorkflowExecutionInfo
	for _, r := range f.runs {
		if r.GetType().GetName() == m[1] {
			out = append(out, r)
		}
	}
	return out, nil
}

func (f *fakeTemporal) ListWorkflow(_ context.Context, req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
	f.lists.Add(1)
	runs, err := f.matching(req.GetQuery())
	if err != nil {
		return nil, err
	}
	return &workflowservice.ListWorkflowExecutionsResponse{Executions: runs[:min(len(runs), int(req.GetPageSize()))]}, nil
}

func (f *fakeTemporal) CountWorkflow(_ context.Context, req *workflowservice.CountWorkflowExecutionsRequest) (*workflowservice.CountWorkflowExecutionsResponse, error) {
	if !strings.HasSuffix(req.GetQuery(), " GROUP BY ExecutionStatus") {
		return nil, serviceerror.NewInvalidArgument("want a count by status")
	}
	runs, err := f.matching(req.GetQuery())
	if err != nil {
		return nil, err
	}
	byStatus := map[string]int64{}
	for _, r := range runs {
		byStatus[r.GetStatus().String()]++
	}
	out := &workflowservice.CountWorkflowExecutionsResponse{Count: int64(len(runs))}
	for status, n := range byStatus {
		p, err := converter.GetDefaultDataConverter().ToPayload(status)
		if err != nil {
			return nil, err
		}
		out.Groups = append(out.Groups, &workflowservice.CountWorkflowExecutionsResponse_AggregationGroup{GroupValues: []*commonpb.Payload{p}, Count: n})
	}
	return out, nil
}

func (f *fakeTemporal) GetWorkflow(_ context.Context, workflowID, runID string) client.WorkflowRun {
	f.gets.Add(1)
	return fakeRun{id: workflowID, runID: runID, result: f.results[runID], err: f.failures[runID]}
}

func (f *fakeTemporal) ExecuteWorkflow(_ context.Context, opts client.StartWorkflowOptions, workflow any, args ...any) (client.WorkflowRun, error) {
	f.mu.Lock()
	f.starts = append(f.starts, fakeStart{opts: opts, workflow: workflow, args: args})
	n := len(f.starts)
	f.mu.Unlock()
	switch {
	case f.startErr != nil:
		return nil, f.startErr
	case f.start != nil:
		return f.start(opts)
	}
	return fakeRun{id: opts.ID, runID: fmt.Sprintf("run-%d", n), result: f.results[opts.ID], err: f.failures[opts.ID]}, nil
}

func (f *fakeTemporal) DescribeWorkflowExecution(_ context.Context, id, _ string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	if f.listErr != nil {
		return nil, f.listErr
	}
	info, ok := f.described[id]
	if !ok {
		return nil, serviceerror.NewNotFound("workflow not found for ID: " + id)
	}
	return &workflowservice.DescribeWorkflowExecutionResponse{WorkflowExecutionInfo: info,
		PendingActivities: f.pendingActivities[id], PendingWorkflowTask: f.pendingWorkflowTasks[id]}, nil
}

type fakeRun struct {
	id, runID string
	result    any
	err       error
}

func (r fakeRun) GetID() string                  { return r.id }
func (r fakeRun) GetRunID() string               { return r.runID }
func (r fakeRun) GetFirstExecutionRunID() string { return r.runID }
func (r fakeRun) Get(_ context.Context, ptr any) error {
	if r.err != nil {
		return r.err
	}
	if ptr == nil {
		return nil
	}
	b, err := json.Marshal(r.result)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, ptr)
}
func (r fakeRun) GetWithOptions(ctx context.Context, ptr any, _ client.WorkflowRunGetOptions) error {
	return r.Get(ctx, ptr)
}

func visRun(typ, id, runID string, status enumspb.WorkflowExecutionStatus, start time.Time, took time.Duration) *workflowpb.WorkflowExecutionInfo {
	info := &workflowpb.WorkflowExecutionInfo{
		Execution: &commonpb.WorkflowExecution{WorkflowId: id, RunId: runID},
		Type:      &commonpb.WorkflowType{Name: typ},
		StartTime: timestamppb.New(start),
		Status:    status,
	}
	if status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		info.CloseTime = timestamppb.New(start.Add(took))
	}
	return info
}

// ended gives a listed run what workflows.recordEnding records: its outcome and count
// search attributes (no count when count < 0, as for a failed run), and memo.
func ended(t *testing.T, info *workflowpb.WorkflowExecutionInfo, outcome string, count int64, memo map[string]any) *workflowpb.WorkflowExecutionInfo {
	t.Helper()
	dc := converter.GetDefaultDataConverter()
	fields := map[string]*commonpb.Payload{}
	attrs := map[string]any{workflows.OutcomeAttribute.GetName(): outcome}
	if count >= 0 {
		attrs[workflows.CountAttribute.GetName()] = count
	}
	for name, v := range attrs {
		p, err := dc.ToPayload(v)
		require.NoError(t, err)
		fields[name] = p
	}
	info.SearchAttributes = &commonpb.SearchAttributes{IndexedFields: fields}
	info.Memo = &commonpb.Memo{Fields: map[string]*commonpb.Payload{}}
	for k, v := range memo {
		p, err := dc.ToPayload(v)
		require.NoError(t, err)
		info.Memo.Fields[k] = p
	}
	return info
}

type fakeSlots struct {
	counts   []store.CallCount
	err      error
	key      string
	from, to time.Time
}

func (f *fakeSlots) CallsPerSecond(_ context.Context, key string, from, to time.Time) ([]store.CallCount, error) {
	f.key, f.from, f.to = key, from, to
	return f.counts, f.err
}

type fakeSnapshots struct{ snap store.Snapshot }

func (f fakeSnapshots) LatestSnapshotID(context.Context) (int64, time.Time, error) {
	return f.snap.ID, f.snap.CreatedAt, nil
}
func (f fakeSnapshots) Snapshot(context.Context, int64) (store.Snapshot, error) { return f.snap, nil }

// ginRoute serves one handler on one route, as routes.go would.
func ginRoute(method, path string, h gin.HandlerFunc) *gin.Engine {
	r := gin.New()
	r.Handle(method, path, h)
	return r
}
