package server

import (
	enumspb "go.temporal.io/api/enums/v1"
)

// statusWords is how relay writes a workflow's status, on every route and on the status
// page alike.
var statusWords = map[enumspb.WorkflowExecutionStatus]string{
	enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:          "running",
	enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:        "completed",
	enumspb.WORKFLOW_EXECUTION_STATUS_FAILED:           "failed",
	enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:         "canceled",
	enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED:       "terminated",
	enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW: "continued-as-new",
	enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:        "timed-out",
	enumspb.WORKFLOW_EXECUTION_STATUS_PAUSED:           "paused",
}

// statusWord is s in relay's words: running, completed, failed, timed-out, …
func statusWord(s enumspb.WorkflowExecutionStatus) string {
	if w, ok := statusWords[s]; ok {
		return w
	}
	return "unknown"
}

// statusWordOf reads a status written as a name, as visibility's GROUP BY gives it
// ("TimedOut", or WORKFLOW_EXECUTION_STATUS_TIMED_OUT).
func statusWordOf(name string) string {
	s, err := enumspb.WorkflowExecutionStatusFromString(name)
	if err != nil {
		return "unknown"
	}
	return statusWord(s)
}
