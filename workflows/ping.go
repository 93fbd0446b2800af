package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"relay/activities"
)

// pingActivityOptions: a pong is instant, so a short timeout and a few quick retries.
var pingActivityOptions = workflow.ActivityOptions{
	StartToCloseTimeout: 5 * time.Second,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:    100 * time.Millisecond,
		BackoffCoefficient: 2,
		MaximumInterval:    time.Second,
		MaximumAttempts:    5,
	},
}

// maxPingSleep keeps a forgotten ping from lingering for days.
const maxPingSleep = time.Hour

// PingWorkflowID names a ping; key is any unique string.
func PingWorkflowID(key string) string { return "ping/" + key }

// PingInput asks a worker to answer, optionally after a durable pause.
type PingInput struct {
	Message string `json:"message"`
	// Sleep is a Go duration ("5s") the workflow waits on a durable timer before the
	// activity: long enough to stop and restart relay mid-workflow.
	Sleep string `json:"sleep,omitempty"`
	// Queue is the task queue the activity runs on: "relay" (default), "relay-geoip" or
	// "relay-merge".
	Queue string `json:"queue,omitempty"`
}

// PingResult is the answer: the message back, and which worker gave it.
type PingResult struct {
	Message string `json:"message"`
	Worker  string `json:"worker"`
	Queue   string `json:"queue"`
}

// Ping checks the whole path (server, history, matching, worker, activity) with one
// activity. It is relay's smoke test: `relay dev` users start it from the CLI, the
// durability test stops relay during its sleep, and the latency benchmark times it.
func Ping(ctx workflow.Context, in PingInput) (_ PingResult, err error) {
	defer func() { recordEnding(ctx, ending{job: JobPing, outcome: OutcomePong}, err) }()
	queue := in.Queue
	if queue == "" {
		queue = TaskQueue
	}
	if !slices.Contains(TaskQueues, queue) {
		return PingResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("queue %q is not one of relay's task queues %v", queue, TaskQueues), activities.ErrInvalidInput, nil)
	}
	if in.Sleep != "" {
		d, err := time.ParseDuration(in.Sleep)
		if err != nil || d < 0 || d > maxPingSleep {
			return PingResult{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("sleep %q: want a duration from 0s to %s", in.Sleep, maxPingSleep), activities.ErrInvalidInput, nil)
		}
		if err := workflow.Sleep(ctx, d); err != nil {
			return PingResult{}, err
		}
	}
	opts := pingActivityOptions
	opts.TaskQueue = queue
	ctx = workflow.WithActivityOptions(ctx, opts)
	var p *activities.Pinger
	var pong activities.Pong
	if err := workflow.ExecuteActivity(ctx, p.Pong, in.Message).Get(ctx, &pong); err != nil {
		return PingResult{}, fmt.Errorf("pong: %w", err)
	}
	return PingResult{Message: pong.Message, Worker: pong.Worker, Queue: queue}, nil
}
