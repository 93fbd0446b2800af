package workflows

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"relay/internal/payloadcodec"
	"relay/internal/testenv"
)

// TestReplayRecordedHistories replays every history in testdata/ against today's code:
// a change that would break a running workflow (a non-deterministic change) fails here.
// Histories are named <WorkflowType>-<anything>.json. To record fresh ones from a real
// run on the embedded server (it refuses to overwrite: rename an old history to keep it,
// e.g. -v0, as versioning_test.go does):
//
//	go run ./cmd/relay history record --dir workflows/testdata
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, f := range files {
		seen[strings.SplitN(filepath.Base(f), "-", 2)[0]] = true
	}
	for name := range All() {
		require.True(t, seen[name], "workflow type %s has no recorded history in testdata/", name)
	}

	// Through relay's codec, with the key the recordings were encrypted with: histories
	// recorded before relay encrypted (in the clear) replay through it too.
	dc := payloadcodec.DataConverter(payloadcodec.Recording())
	replayer, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
		DataConverter: dc, FailureConverter: payloadcodec.FailureConverter(dc),
	})
	require.NoError(t, err)
	for name, wf := range All() {
		replayer.RegisterWorkflowWithOptions(wf, workflow.RegisterOptions{Name: name})
	}
	// Both kinds are here: histories relay encrypted, and ones from before, in the clear.
	encrypted := base64.StdEncoding.EncodeToString([]byte(payloadcodec.MetadataEncoding))
	kinds := map[bool]int{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		kinds[strings.Contains(string(b), encrypted)]++
	}
	require.Positive(t, kinds[true], "encrypted histories")
	require.Positive(t, kinds[false], "histories in the clear")

	logger := sdklog.NewStructuredLogger(testenv.Logger(t))
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			require.NoError(t, replayer.ReplayWorkflowHistoryFromJSONFile(logger, f))
		})
	}
}
