package histories

import (
	"fmt"
	"log/slog"

	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"relay/workflows"
)

// Replay replays each history file (JSON, as Record or `temporal workflow show --output
// json` writes it) against this build's workflows. An error means the code would not
// continue that run: a non-deterministic change, or a history of an unknown type.
func Replay(files ...string) error {
	replayer := worker.NewWorkflowReplayer()
	for name, wf := range workflows.All() {
		replayer.RegisterWorkflowWithOptions(wf, workflow.RegisterOptions{Name: name})
	}
	logger := sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	for _, f := range files {
		if err := replayer.ReplayWorkflowHistoryFromJSONFile(logger, f); err != nil {
			return fmt.Errorf("replay %s: %w", f, err)
		}
	}
	return nil
}
