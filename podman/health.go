package podman

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containers/image/v5/manifest"
	"github.com/containers/podman/v4/libpod/define"
	"github.com/containers/podman/v4/pkg/bindings/containers"
)

// Healthcheck defaults, Docker's: a check every 30 s that may take 30 s,
// unhealthy after 3 failures in a row.
const (
	defaultHealthInterval = 30 * time.Second
	defaultHealthTimeout  = 30 * time.Second
	defaultHealthRetries  = 3
)

// healthConfigOf returns the container's healthcheck, nil when it has none
// (or it is disabled with NONE).
func healthConfigOf(data *define.InspectContainerData) *manifest.Schema2HealthConfig {
	if data == nil || data.Config == nil || data.Config.Healthcheck == nil {
		return nil
	}
	hc := data.Config.Healthcheck
	if len(hc.Test) == 0 || strings.EqualFold(hc.Test[0], "NONE") {
		return nil
	}
	return hc
}

// healthWatch is the health of one container as its driver last saw it.
// Waiters take a snapshot and wait on its changed channel, which is closed
// (and replaced) on every change.
type healthWatch struct {
	cancel context.CancelFunc

	mu      sync.Mutex
	status  string // define.HealthCheckStarting, Healthy or Unhealthy
	output  string // the last check's output
	ended   bool   // the driver stopped (container not running, removed, runtime closed)
	changed chan struct{}
}

type healthSnapshot struct {
	status, output string
	ended          bool
	changed        <-chan struct{}
}

func (h *healthWatch) snapshot() healthSnapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	return healthSnapshot{h.status, h.output, h.ended, h.changed}
}

func (h *healthWatch) update(status, output string, ended bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if status == "" {
		status = h.status
	}
	if status == h.status && output == h.output && ended == h.ended {
		return
	}
	h.status, h.output, h.ended = status, output, ended
	close(h.changed)
	h.changed = make(chan struct{})
}

func (h *healthWatch) end() {
	h.mu.Lock()
	st, out := h.status, h.output
	h.mu.Unlock()
	h.update(st, out, true)
}

// watchHealth returns the container's health watch, starting its driver if
// none runs (after a Close, the watch is ended at once).
func (r *Runtime) watchHealth(id string, hc *manifest.Schema2HealthConfig, cur define.HealthCheckResults) *healthWatch {
	r.mu.Lock()
	defer r.mu.Unlock()
	if h, ok := r.health[id]; ok && !h.snapshot().ended {
		return h
	}
	status := cur.Status
	if status == "" {
		status = define.HealthCheckStarting
	}
	h := &healthWatch{status: status, output: lastHealthOutput(cur), changed: make(chan struct{})}
	if r.closed {
		h.ended = true
		return h
	}
	ctx, cancel := context.WithCancel(r.base)
	h.cancel = cancel
	r.health[id] = h
	r.wg.Add(1)
	go r.driveHealth(ctx, id, hc, h)
	return h
}

// dropHealth stops the driver of a container (by ID, name or ID prefix).
func (r *Runtime) dropHealth(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, h := range r.health {
		if key == id || strings.HasPrefix(key, id) {
			h.cancel()
			delete(r.health, key)
		}
	}
}

// driveHealth runs the container's healthcheck every interval, as Podman's
// systemd timer would, until the container stops running or ctx ends. Podman
// keeps the health state (failing streak, start period, log); the driver
// reads it back after each check. Where Podman's timers do run (a host with
// a systemd user session), the driver sees checks it did not run in the
// health log and only watches, so checks do not run twice as often. A check
// that outlives its timeout plus a grace period (Podman 4.3 waits for a hung
// check forever) counts as failed by the driver itself.
func (r *Runtime) driveHealth(ctx context.Context, id string, hc *manifest.Schema2HealthConfig, h *healthWatch) {
	defer r.wg.Done()
	defer h.end()
	defer func() {
		r.mu.Lock()
		if r.health[id] == h {
			delete(r.health, id)
		}
		r.mu.Unlock()
	}()
	interval, timeout, retries := hc.Interval, hc.Timeout, hc.Retries
	if interval <= 0 {
		interval = defaultHealthInterval
	}
	if timeout <= 0 {
		timeout = defaultHealthTimeout
	}
	if retries <= 0 {
		retries = defaultHealthRetries
	}
	hung := 0             // checks in a row that did not return in time
	ourLast := time.Now() // when the driver's last check ended
	timer := time.NewTimer(interval)
	defer timer.Stop()
	// observe reads the health state back; false when the driver should stop.
	observe := func() (last time.Time, ok bool) {
		data, err := containers.Inspect(r.call(ctx), id, nil)
		switch {
		case err != nil:
			return time.Time{}, ctx.Err() == nil && apiCode(err) != 404
		case !data.State.Running:
			return time.Time{}, false
		}
		hs := data.State.Health
		if n := len(hs.Log); n > 0 {
			last, _ = time.Parse(time.RFC3339Nano, hs.Log[n-1].Start)
		}
		h.update(hs.Status, lastHealthOutput(hs), false)
		return last, true
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		timer.Reset(interval)
		last, ok := observe()
		if !ok {
			return
		}
		if last.After(ourLast) {
			continue // someone else (Podman's timer) runs the checks
		}
		cctx, cancel := context.WithTimeout(ctx, timeout+5*time.Second)
		_, err := containers.RunHealthCheck(r.call(cctx), id, nil)
		timedOut := cctx.Err() != nil && ctx.Err() == nil
		cancel()
		ourLast = time.Now()
		switch {
		case ctx.Err() != nil:
			return
		case timedOut:
			hung++
			if hung >= retries {
				h.update(define.HealthCheckUnhealthy, "healthcheck did not return within its timeout "+timeout.String(), false)
			}
			continue
		case err != nil && (apiCode(err) == 404 || apiCode(err) == 409):
			return // removed, not running, or no healthcheck any more
		}
		hung = 0
		if _, ok := observe(); !ok {
			return
		}
	}
}

// lastHealthOutput is the output of the latest check, trimmed.
func lastHealthOutput(res define.HealthCheckResults) string {
	if len(res.Log) == 0 {
		return ""
	}
	l := res.Log[len(res.Log)-1]
	out := strings.TrimSpace(l.Output)
	if l.ExitCode != 0 && out == "" {
		out = "check exited with code " + strconv.Itoa(l.ExitCode)
	}
	return out
}
