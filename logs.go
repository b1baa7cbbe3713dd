package swarm

import (
	"context"
	"time"
)

// LogOptions select the log lines of a container.
type LogOptions struct {
	// Follow keeps streaming new lines until the container exits or the
	// context ends.
	Follow bool
	// Tail is the number of most recent lines to return; a negative Tail
	// returns them all. The zero value returns none, which with Follow
	// means "only new lines" (docker logs -f --tail 0). Podman counts the
	// records of its log file: a line the container wrote in several pieces
	// (without the newline in the same write) may count as several.
	Tail int
	// Since drops lines written before it (zero: no limit).
	Since time.Time
	// Timestamps fills LogLine.Time; without it Time is zero.
	Timestamps bool
}

// LogLine is one line a container wrote.
type LogLine struct {
	// Stream is 1 for stdout and 2 for stderr.
	Stream int
	// Time is when the line was written (zero unless LogOptions.Timestamps).
	Time time.Time
	// Text is the line without its trailing newline.
	Text string
}

// LogRuntime is implemented by runtimes that keep their containers' output
// (the Runtime of package github.com/podswarm/swarm/podman does). It is optional: callers type-assert a Runtime.
type LogRuntime interface {
	// Logs sends the container's log lines to out, in order, and returns
	// when they are all sent, when the container exits (with Follow) or when
	// ctx ends. It never closes out.
	Logs(ctx context.Context, id string, opts LogOptions, out chan<- LogLine) error
}
