package podman

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/containers/podman/v4/pkg/bindings/containers"

	swarm "github.com/podswarm/swarm"
)

// Logs sends the container's log lines to out (see LogRuntime). Podman
// keeps them (k8s-file log driver) after the container exits, until it is
// removed; with Follow the stream ends when the container exits.
func (r *Runtime) Logs(ctx context.Context, id string, opts swarm.LogOptions, out chan<- swarm.LogLine) error {
	if err := r.checkOpen(); err != nil {
		return err
	}
	lo := new(containers.LogOptions).WithStdout(true).WithStderr(true).
		WithFollow(opts.Follow).WithTimestamps(opts.Timestamps)
	if opts.Tail >= 0 {
		lo.WithTail(strconv.Itoa(opts.Tail))
	} else {
		lo.WithTail("all")
	}
	if !opts.Since.IsZero() {
		lo.WithSince(opts.Since.UTC().Format(time.RFC3339Nano))
	}
	stdout, stderr := make(chan string), make(chan string)
	done := make(chan error, 1)
	go func() { done <- containers.Logs(r.call(ctx), id, lo, stdout, stderr) }()

	// The bindings send one frame per line; a line longer than Podman's
	// buffer arrives in parts (without a newline until the last), each part
	// with its own timestamp when asked for.
	var pending [3]strings.Builder
	var pendingTime [3]time.Time
	cut := false // ctx ended: drain the bindings without forwarding
	send := func(l swarm.LogLine) {
		if cut {
			return
		}
		select {
		case out <- l:
		case <-ctx.Done():
			cut = true
		}
	}
	frame := func(stream int, s string) {
		var ts time.Time
		if opts.Timestamps {
			if i := strings.IndexByte(s, ' '); i > 0 {
				if t, err := time.Parse(time.RFC3339Nano, s[:i]); err == nil {
					ts, s = t, s[i+1:]
				}
			}
		}
		if pending[stream].Len() == 0 {
			pendingTime[stream] = ts
		}
		for {
			i := strings.IndexByte(s, '\n')
			if i < 0 {
				pending[stream].WriteString(s)
				return
			}
			pending[stream].WriteString(s[:i])
			send(swarm.LogLine{Stream: stream, Time: pendingTime[stream], Text: pending[stream].String()})
			pending[stream].Reset()
			s = s[i+1:]
			pendingTime[stream] = ts
		}
	}
	for {
		select {
		case s := <-stdout:
			frame(1, s)
		case s := <-stderr:
			frame(2, s)
		case <-ctx.Done():
			// Return now; the bindings notice the cancellation a little
			// later, and whatever they still send is drained.
			go func() {
				for {
					select {
					case <-stdout:
					case <-stderr:
					case <-done:
						return
					}
				}
			}()
			return ctx.Err()
		case err := <-done:
			for stream := 1; stream <= 2; stream++ {
				if pending[stream].Len() > 0 {
					send(swarm.LogLine{Stream: stream, Time: pendingTime[stream], Text: pending[stream].String()})
				}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				return podmanErr(err, "logs of container %s", id)
			}
			return nil
		}
	}
}
