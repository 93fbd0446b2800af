package workflows

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"relay/activities"
)

// A run records how it ended where an operator filters (search attributes) and where the
// status page reads (memo): a pong, and a failure with its type and message.
func TestARunRecordsItsEnding(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	t.Run("completed", func(t *testing.T) {
		env := ts.NewTestWorkflowEnvironment()
		env.RegisterWorkflow(Ping)
		var p *activities.Pinger
		env.OnActivity(p.Pong, mock.Anything, "hi").Return(activities.Pong{Message: "hi", Worker: "w"}, nil)
		env.OnUpsertTypedSearchAttributes(temporal.NewSearchAttributes(JobAttribute.ValueSet(JobPing),
			OutcomeAttribute.ValueSet(OutcomePong), CountAttribute.ValueSet(0))).Return(nil).Once()
		env.ExecuteWorkflow(Ping, PingInput{Message: "hi"})
		require.NoError(t, env.GetWorkflowError())
		env.AssertExpectations(t)
	})
	t.Run("failed", func(t *testing.T) {
		env := ts.NewTestWorkflowEnvironment()
		env.RegisterWorkflow(Ping)
		env.OnUpsertTypedSearchAttributes(temporal.NewSearchAttributes(JobAttribute.ValueSet(JobPing),
			OutcomeAttribute.ValueSet(OutcomeFailed))).Return(nil).Once()
		env.OnUpsertMemo(map[string]any{FailureMemo: Failure{Type: activities.ErrInvalidInput,
			Message: `queue "nope" is not one of relay's task queues [relay relay-geoip relay-merge]`}}).Return(nil).Once()
		env.ExecuteWorkflow(Ping, PingInput{Message: "hi", Queue: "nope"})
		require.Error(t, env.GetWorkflowError())
		env.AssertExpectations(t)
	})
}

func TestFailureOfKeepsTheApplicationErrorAndBoundsTheMessage(t *testing.T) {
	long := make([]byte, 2*maxFailureMessage)
	for i := range long {
		long[i] = 'x'
	}
	f := failureOf(temporal.NewApplicationError(string(long), activities.ErrUpstreamNotFound))
	assert.Equal(t, activities.ErrUpstreamNotFound, f.Type)
	assert.Len(t, f.Message, maxFailureMessage+len("…"))
	assert.Equal(t, Failure{Type: "error", Message: assert.AnError.Error()}, failureOf(assert.AnError))
}
