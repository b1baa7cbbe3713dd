package podman

// The waits of Runtime: for a start, for readiness (healthchecks) and
// for an exit.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/containers/podman/v4/libpod/define"
	"github.com/containers/podman/v4/pkg/bindings/containers"
	"github.com/containers/podman/v4/pkg/bindings/system"
	"github.com/containers/podman/v4/pkg/domain/entities"

	swarm "github.com/podswarm/swarm"
)

// exitConditions are the wait conditions of a container that has run and
// ended. Podman counts a container that never started as ended too, so the
// waits below first make sure it has started (waitStarted).
var exitConditions = []string{define.ContainerStateStopped.String(), define.ContainerStateExited.String()}

// hasStarted reports whether the container has been started at least once.
func hasStarted(data *define.InspectContainerData) bool {
	return data.State != nil && (data.State.Running || !data.State.StartedAt.IsZero())
}

// waitStarted inspects the container and, while it has never been started,
// waits for its next event (Podman's events API, replayed from before the
// first inspect so no start is missed) and inspects it again.
func (r *Runtime) waitStarted(ctx context.Context, id string) (*define.InspectContainerData, error) {
	since := time.Now().Add(-time.Second)
	cctx := r.call(ctx)
	data, err := containers.Inspect(cctx, id, nil)
	if err != nil {
		return nil, r.ctxOr(ctx, podmanErr(err, "inspect container %s", id))
	}
	if hasStarted(data) {
		return data, nil
	}
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan entities.Event)
	done := make(chan error, 1)
	go func() {
		opts := new(system.EventsOptions).WithStream(true).WithSince(since.UTC().Format(time.RFC3339Nano)).
			WithFilters(map[string][]string{"type": {"container"}, "container": {data.ID}})
		done <- system.Events(r.call(ectx), events, nil, opts)
	}()
	finished := false // the bindings have returned
	defer func() {
		cancel()
		if finished {
			return
		}
		// Drain until the bindings notice the cancellation and return.
		go func(events chan entities.Event) {
			for {
				select {
				case _, ok := <-events:
					if !ok {
						events = nil
					}
				case <-done:
					return
				}
			}
		}(events)
	}()
	for {
		select {
		case _, ok := <-events:
			if !ok {
				events = nil // closed: the bindings are about to return
				continue
			}
		case err := <-done:
			finished = true
			if err == nil {
				err = errors.New("event stream ended")
			}
			return nil, r.ctxOr(ctx, fmt.Errorf("wait for container %s to start: %w", id, err))
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		data, err = containers.Inspect(cctx, id, nil)
		if err != nil {
			return nil, r.ctxOr(ctx, podmanErr(err, "inspect container %s", id))
		}
		if hasStarted(data) {
			return data, nil
		}
	}
}

// WaitReady blocks until the container has started (a created container is
// waited for through Podman's events) and, when it has a healthcheck, until
// the check reports healthy. With a healthcheck it fails
// when the container exits or turns unhealthy first. Without one, a
// container that has already run and exited is ready too: it did start, and
// Wait reports how it ended (a job may well exit at once).
func (r *Runtime) WaitReady(ctx context.Context, id string) error {
	if err := r.checkOpen(); err != nil {
		return err
	}
	data, err := r.waitStarted(ctx, id)
	if err != nil {
		return err
	}
	hc := healthConfigOf(data)
	if hc == nil {
		return nil
	}
	if !data.State.Running {
		return fmt.Errorf("container %s exited with code %d before it became healthy", id, data.State.ExitCode)
	}
	hw := r.watchHealth(data.ID, hc, data.State.Health)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	exited := r.waitExitAsync(wctx, data.ID)
	for {
		st := hw.snapshot()
		switch {
		case st.status == define.HealthCheckHealthy:
			return nil
		case st.status == define.HealthCheckUnhealthy:
			return fmt.Errorf("container %s turned unhealthy before it became healthy: %s", id, st.output)
		case st.ended:
			// The driver stopped: the container is no longer running; the
			// exit wait below says how it ended.
		}
		select {
		case <-st.changed:
		case res := <-exited:
			if res.err != nil {
				return r.ctxOr(ctx, res.err)
			}
			return fmt.Errorf("container %s exited with code %d before it became healthy", id, res.status.ExitCode)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ctxOr returns ctx's error when it has ended (the call failed because of
// it), else err.
func (r *Runtime) ctxOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// Wait blocks until the container exits or, when it has a healthcheck,
// turns unhealthy, and reports how it ended: the exit code and whether the
// kernel killed it for memory (from Podman's inspect after the exit), or
// Unhealthy with the check's last output (the container still runs then).
// It waits through Podman's wait and events APIs, never by polling. A
// container that was never started is waited for until it starts and ends.
func (r *Runtime) Wait(ctx context.Context, id string) (swarm.ExitStatus, error) {
	if err := r.checkOpen(); err != nil {
		return swarm.ExitStatus{}, err
	}
	data, err := r.waitStarted(ctx, id)
	if err != nil {
		return swarm.ExitStatus{}, err
	}
	hc := healthConfigOf(data)
	if hc == nil || !data.State.Running {
		return r.waitExit(ctx, data.ID)
	}
	hw := r.watchHealth(data.ID, hc, data.State.Health)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	exited := r.waitExitAsync(wctx, data.ID)
	for {
		st := hw.snapshot()
		if st.status == define.HealthCheckUnhealthy {
			return swarm.ExitStatus{Unhealthy: true, Message: "healthcheck failed: " + st.output}, nil
		}
		select {
		case <-st.changed:
		case res := <-exited:
			return res.status, r.ctxOr(ctx, res.err)
		case <-ctx.Done():
			return swarm.ExitStatus{}, ctx.Err()
		}
	}
}

// promptly returns f's result, or ctx's error as soon as ctx ends. The
// bindings retry a failed request three times with pauses (0.6 s in all),
// which would delay the return of a cancelled long wait; f, whose context
// is ctx, is left to finish on its own.
func promptly[T any](ctx context.Context, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

type podmanExit struct {
	status swarm.ExitStatus
	err    error
}

// waitExitAsync runs waitExit in a goroutine that ends with ctx.
func (r *Runtime) waitExitAsync(ctx context.Context, id string) <-chan podmanExit {
	ch := make(chan podmanExit, 1)
	go func() {
		st, err := r.waitExit(ctx, id)
		ch <- podmanExit{st, err}
	}()
	return ch
}

// waitExit waits for the container, which has started, to end and inspects how.
func (r *Runtime) waitExit(ctx context.Context, id string) (swarm.ExitStatus, error) {
	cctx := r.call(ctx)
	code, err := promptly(ctx, func() (int32, error) {
		return containers.Wait(cctx, id, new(containers.WaitOptions).WithConditions(exitConditions))
	})
	if err != nil {
		return swarm.ExitStatus{}, r.ctxOr(ctx, podmanErr(err, "wait for container %s", id))
	}
	data, err := containers.Inspect(cctx, id, nil)
	if err != nil {
		if errors.Is(podmanErr(err, ""), swarm.ErrNotFound) {
			// Removed right after it exited: the wait's code is all there is.
			return swarm.ExitStatus{ExitCode: int(code), Message: "container removed"}, nil
		}
		return swarm.ExitStatus{}, r.ctxOr(ctx, podmanErr(err, "inspect container %s", id))
	}
	st := swarm.ExitStatus{ExitCode: int(data.State.ExitCode), OOMKilled: data.State.OOMKilled, Message: data.State.Error}
	if st.OOMKilled && st.Message == "" {
		st.Message = "killed by the kernel: out of memory"
	}
	return st, nil
}
