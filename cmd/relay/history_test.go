package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/internal/histories"
	"relay/internal/testenv"
)

// TestHistoryRecordThenReplay runs `relay history record` for real (every workflow type on
// an embedded relay) into a temp dir, then `relay history replay` on what it wrote.
// `relay history record --overwrite` with the default dir is how workflows/testdata/ is
// refreshed.
func TestHistoryRecordThenReplay(t *testing.T) {
	testenv.EndToEnd(t)
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"history", "record", "--dir", dir}, noEnv, &out, &errOut), errOut.String())
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	require.NoError(t, err)
	require.Len(t, files, len(histories.Scenarios), out.String())
	for _, s := range histories.Scenarios {
		assert.Contains(t, out.String(), "recorded and replayed  "+filepath.Join(dir, s.File))
	}

	out.Reset()
	require.NoError(t, run(context.Background(), append([]string{"history", "replay"}, files...), noEnv, &out, &errOut))
	assert.Equal(t, len(files), strings.Count(out.String(), "ok  "), out.String())

	// A second record into the same dir refuses: old histories are evidence.
	err = run(context.Background(), []string{"history", "record", "--dir", dir}, noEnv, &out, &errOut)
	require.ErrorIs(t, err, histories.ErrExists)
}

func TestHistoryReplayFailsOnAHistoryTheCodeCannotContinue(t *testing.T) {
	// A Ping history whose activity was renamed: the replayer must refuse it.
	b, err := os.ReadFile(filepath.Join("..", "..", "workflows", "testdata", "Ping-basic.json"))
	require.NoError(t, err)
	require.Contains(t, string(b), `"Pong"`)
	bad := filepath.Join(t.TempDir(), "Ping-tampered.json")
	require.NoError(t, os.WriteFile(bad, bytes.ReplaceAll(b, []byte(`"Pong"`), []byte(`"Pang"`)), 0o644))

	var out, errOut bytes.Buffer
	err = run(context.Background(), []string{"history", "replay", bad}, noEnv, &out, &errOut)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nondeterministic")

	assert.Equal(t, 1, exitCode(err), "a history the code cannot continue is a failure, not a usage mistake")
}
