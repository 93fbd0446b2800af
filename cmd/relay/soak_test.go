package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"relay/internal/soak"
	"relay/internal/testenv"
)

// A short soak: the command runs every route under faults, finishes what it accepted, and
// reports (the README's two-minute soak is the same with the defaults).
//
// It runs without the race detector (.ci/run: a step of its own): instrumented, beside the
// other packages' end-to-end tests on 2 cores, Temporal calls pass their 5 s budget and
// the soak sees 503s. Measured 2026-12-01 with five busy loops beside it: the code before
// and after issue 14 alike answered 7 and 8 requests 503.
func TestSoakCommand(t *testing.T) {
	testenv.EndToEnd(t)
	if raceDetector {
		t.Skip("the soak runs without -race (timing-sensitive under instrumentation): go test -count=1 -run '^TestSoakCommand$' ./cmd/relay")
	}
	jsonPath := filepath.Join(t.TempDir(), "soak.json")
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"soak", "--duration", "5s", "--rate", "20", "--json", jsonPath}, noEnv, &out, &errOut)
	require.NoError(t, err, "%s\n%s", out.String(), errOut.String())
	assert.Contains(t, out.String(), "PASS")

	b, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	var r soak.Report
	require.NoError(t, json.Unmarshal(b, &r))
	assert.True(t, r.Passed())
	assert.Len(t, r.Routes, 10, "every route of the mix was loaded")
	for _, s := range r.Routes {
		assert.Positive(t, s.Requests, s.Route)
	}
	assert.Positive(t, r.Events["located"])
	assert.Positive(t, r.MemoryStart.RSS)
}
