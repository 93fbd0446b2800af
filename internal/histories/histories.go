// Package histories saves workflow histories as JSON files, the format the replay test
// (and `temporal workflow show --output json`) reads.
package histories

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"
)

// Record writes the full history of a closed workflow run to path.
func Record(ctx context.Context, c client.Client, workflowID, runID, path string) error {
	iter := c.GetWorkflowHistory(ctx, workflowID, runID, false, 0)
	var history historypb.History
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			return fmt.Errorf("history of %s: %w", workflowID, err)
		}
		history.Events = append(history.Events, ev)
	}
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(&history)
	if err != nil {
		return fmt.Errorf("encode history of %s: %w", workflowID, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
