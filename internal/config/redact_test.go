package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// The simulators' credentials knob is what dev hands its worker, so the configuration
// dump masks it inside RELAY_SIM_KNOBS and keeps the other knobs readable.
func TestRedactedMasksSimulatorCredentials(t *testing.T) {
	cfg := Default()
	cfg.SimKnobs = "latency=20ms;incidents:credentials=alice:pw-s3cret,failure-rate=0.1;c42:credentials = tok-s3cret;kf:credentials=key-s3cret"
	lines := cfg.Redacted(Sim)
	all := strings.Join(lines, "\n")
	assert.NotContains(t, all, "s3cret")
	assert.NotContains(t, all, "alice")
	assert.Contains(t, lines, "RELAY_SIM_KNOBS=latency=20ms;incidents:credentials=[redacted],failure-rate=0.1;c42:credentials =[redacted];kf:credentials=[redacted]")
}
