// Package activities holds relay's side effects: upstream calls and store reads and
// writes, one struct per upstream holding its client. Workflows call them by method.
package activities

import (
	"context"

	"go.temporal.io/sdk/activity"
)

// Pinger answers pings; it touches nothing, so that a ping measures relay itself.
type Pinger struct {
	// Worker names the process in answers (pid@host, as the Web UI shows workers).
	Worker string
}

// Pong is a ping's answer.
type Pong struct {
	Message string `json:"message"`
	Worker  string `json:"worker"`
}

// Pong echoes msg with the identity of the worker that ran it.
func (p *Pinger) Pong(ctx context.Context, msg string) (Pong, error) {
	activity.GetLogger(ctx).Debug("pong", "message", msg)
	return Pong{Message: msg, Worker: p.Worker}, nil
}
