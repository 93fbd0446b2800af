package histories

import (
	"fmt"
	"log/slog"

	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"relay/internal/payloadcodec"
	"relay/workflows"
)

// Replay replays each history file (JSON, as Record or `temporal workflow show --output
// json` writes it) against this build's workflows, reading its payloads through codec
// (the keys that encrypted them; payloads in the clear pass through). An error means the
// code would not continue that run: a non-deterministic change, or a history of an
// unknown type.
func Replay(codec *payloadcodec.Codec, files ...string) error {
	dc := payloadcodec.DataConverter(codec)
	replayer, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
		DataConverter: dc, FailureConverter: payloadcodec.FailureConverter(dc),
	})
	if err != nil {
		return err
	}
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
