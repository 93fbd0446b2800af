package server

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	workflowpb "go.temporal.io/api/workflow/v1"

	"relay/internal/htmltest"
	"relay/internal/store"
	"relay/workflows"
)

type fakePending struct {
	p   store.Pending
	err error
}

func (f fakePending) PendingEvents(context.Context) (store.Pending, error) { return f.p, f.err }

// Events that wait show on the page with why: the oldest one's lookup, its attempt and
// its last failure (here, the API refusing relay's key).
func TestStatusPageSaysWhyEventsWait(t *testing.T) {
	f := newStatusFixture(t)
	f.pending = fakePending{p: store.Pending{Events: 12, Oldest: f.now.Add(-150 * time.Second), OldestIP: "9.4.0.1"}}
	id := workflows.GeolocateWorkflowID(nil, "9.4.0.1")
	f.temporal.described = map[string]*workflowpb.WorkflowExecutionInfo{id: {
		Execution: &commonpb.WorkflowExecution{WorkflowId: id, RunId: "run-9"},
		Status:    enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
	}}
	f.temporal.pendingActivities = map[string][]*workflowpb.PendingActivityInfo{id: {{
		Attempt:     7,
		LastFailure: &failurepb.Failure{Message: "geoip GET /info?ip=9.4.0.1: 401 invalid or missing credentials"},
	}}}
	_, page := serveStatus(t, f.page())
	waiting := htmltest.Element(t, page, "div", "id", "geo-waiting")
	assert.Contains(t, waiting, `id="geo-pending" data-value="12"`)
	assert.Contains(t, waiting, `data-seconds="150"`)
	assert.Contains(t, waiting, `href="http://ui.example:8233/namespaces/prod/workflows/geolocate%2F9.4.0.1/run-9/history"`)
	assert.Contains(t, waiting, "is running, calling the API (attempt 7)")
	assert.Contains(t, waiting, "401 invalid or missing credentials")
}

func TestStatusPageWhenNothingWaits(t *testing.T) {
	f := newStatusFixture(t)
	f.pending = fakePending{}
	_, page := serveStatus(t, f.page())
	assert.Contains(t, htmltest.Element(t, page, "div", "id", "geo-waiting"), "No event waits to be located.")

	f = newStatusFixture(t)
	f.pending = fakePending{err: errors.New("connection refused")}
	_, page = serveStatus(t, f.page())
	assert.Contains(t, htmltest.Element(t, page, "div", "id", "geo-waiting"), "reading pending events from the store")
}

func TestPendingGauges(t *testing.T) {
	reg := prometheus.NewRegistry()
	pending := &fakePending{p: store.Pending{Events: 3, Oldest: time.Now().Add(-time.Minute)}}
	registerPendingGauges(reg, pending)
	n, err := testutil.GatherAndCount(reg, "relay_geolocate_pending_events", "relay_geolocate_oldest_pending_seconds")
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, mf := range mfs {
		got[mf.GetName()] = mf.GetMetric()[0].GetGauge().GetValue()
	}
	assert.Equal(t, 3.0, got["relay_geolocate_pending_events"])
	assert.InDelta(t, 60, got["relay_geolocate_oldest_pending_seconds"], 5)

	pending.err = errors.New("down")
	mfs, err = reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		assert.Equal(t, -1.0, mf.GetMetric()[0].GetGauge().GetValue(), mf.GetName())
	}
}
