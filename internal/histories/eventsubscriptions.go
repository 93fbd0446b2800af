package histories

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"relay/internal/sim"
	"relay/workflows"
)

// mergeTTL is how long a recorded merge run answers from memory: short, so the recording
// does not wait out the production TTL.
const mergeTTL = 2 * time.Second

// mergeScenarios record MergeEventSubscriptions as servers drive it, by Update-with-Start:
// a fetch then a hit from memory (two updates), an event of several subscribers, one of
// three pages (the first with the event, the other two after it), an event
// the calendar API does not know (404), and a calendar API that keeps failing. The same
// cases recorded before the fetch became local activities are kept in workflows/testdata as
// MergeEventSubscriptions-<case>-activities.json: runs of that code may still be open
// during an upgrade, and must replay.
var mergeScenarios = []Scenario{
	{"MergeEventSubscriptions-hit-from-memory.json", askMerge(sim.C42EventTeamSync, 2, "")},
	{"MergeEventSubscriptions-all-hands.json", askMerge(sim.C42EventAllHands, 1, "")},
	{"MergeEventSubscriptions-town-hall.json", askMerge(sim.C42EventTownHall, 1, "")},
	{"MergeEventSubscriptions-not-found.json", askMerge("ffffffffffffffffffffffffffffffff_99999999999999", 1, "")},
	{"MergeEventSubscriptions-upstream-failure.json", askMerge(sim.C42EventEmpty, 1, "failure-rate=1")},
}

// askMerge asks the event's run n times, one after another, as n servers would, and waits
// for the run to end. With knobs, the calendar simulator runs with them meanwhile (the
// run must then fail).
func askMerge(eventID string, n int, knobs string) func(context.Context, Target) (string, string, error) {
	return func(ctx context.Context, t Target) (string, string, error) {
		if knobs != "" {
			if t.SetC42Knobs == nil {
				return "", "", errors.New("this scenario needs the calendar simulator's knobs")
			}
			if err := t.SetC42Knobs(knobs); err != nil {
				return "", "", err
			}
			defer t.SetC42Knobs("failure-rate=0")
		}
		id := workflows.EventSubscriptionsWorkflowID(eventID)
		var runID string
		var failed error
		for i := range n {
			op := t.Client.NewWithStartWorkflowOperation(workflows.EventSubscriptionsStartOptions(eventID, mergeTTL),
				workflows.MergeEventSubscriptionsWorkflowType, workflows.MergeEventSubscriptionsInput{EventID: eventID, TTL: mergeTTL})
			h, err := t.Client.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
				StartWorkflowOperation: op, UpdateOptions: workflows.EventSubscriptionsUpdateOptions(eventID)})
			if err != nil {
				return "", "", fmt.Errorf("update-with-start %s: %w", id, err)
			}
			var a workflows.EventSubscriptionsAnswer
			if failed = h.Get(ctx, &a); failed == nil && i > 0 && a.Fetched {
				return "", "", fmt.Errorf("%s: ask %d was not answered from memory", id, i+1)
			}
			runID = h.RunID()
		}
		var app *temporal.ApplicationError
		if knobs != "" && !errors.As(failed, &app) {
			return "", "", fmt.Errorf("%s: want an upstream failure, got %v", id, failed)
		}
		// The run ends mergeTTL after its fetch, or at once after a failure.
		_ = t.Client.GetWorkflow(ctx, id, runID).Get(ctx, nil)
		return id, runID, nil
	}
}
