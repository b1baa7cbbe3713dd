package swarm

import (
	"context"
	"sync"
	"time"
)

// Container removal. An agent removes every container of its node that no
// assigned task needs: the container of an ended task once the task leaves
// the node's assignments, a stale container found at adoption, and any
// container a failed call left behind. A loaded runtime can take longer than
// any deadline to stop or remove a container (50 containers that ignore
// SIGTERM, killed at once after their grace, keep rootless Podman busy for
// tens of seconds), so a removal that fails is never dropped: it stays
// queued and is retried with backoff. A periodic sweep lists the node's
// containers by label as a backstop for anything the queue never heard of
// (a create that timed out on the caller's side after Podman made the
// container, a stop that failed).

// sweepInterval is how often an agent lists its node's containers and
// removes those no task needs.
const sweepInterval = 5 * time.Second

// reapParallel bounds the concurrent stop and remove calls of one agent.
const reapParallel = 16

// doom queues a container for removal, after a stop with grace when grace
// is positive. The caller holds a.mu.
func (a *agent) doomLocked(id string, grace time.Duration) {
	if id == "" {
		return
	}
	if old, ok := a.doomed[id]; !ok || grace > old {
		a.doomed[id] = grace
	}
	select {
	case a.reapKick <- struct{}{}:
	default:
	}
}

// reapLoop removes the queued containers, retrying failures with backoff,
// and sweeps the node's containers every sweepInterval.
func (a *agent) reapLoop() {
	defer a.wg.Done()
	tick := time.NewTicker(sweepInterval)
	defer tick.Stop()
	var retry <-chan time.Time
	attempt := 0
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-a.reapKick:
		case <-retry:
		case <-tick.C:
			a.sweep()
		}
		retry = nil
		if a.reap() {
			attempt = 0
			continue
		}
		if a.ctx.Err() != nil {
			return
		}
		attempt++
		retry = time.After(backoff(attempt))
	}
}

// reap stops and removes the queued containers and reports whether all of
// them are gone. Those that fail stay queued, to be removed at once next
// time (a stop that ran out of time is not waited for twice).
func (a *agent) reap() bool {
	a.mu.Lock()
	batch := make(map[string]time.Duration, len(a.doomed))
	for id, g := range a.doomed {
		batch[id] = g
	}
	a.mu.Unlock()
	if len(batch) == 0 {
		return true
	}
	sem := make(chan struct{}, reapParallel)
	var wg sync.WaitGroup
	ok := true // under a.mu
	for id, grace := range batch {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			err := a.removeContainer(id, grace)
			a.mu.Lock()
			defer a.mu.Unlock()
			if err == nil {
				if a.doomed[id] == grace {
					delete(a.doomed, id)
				}
				return
			}
			ok = false
			if a.ctx.Err() == nil {
				a.n.log.Warn("removing container failed, will retry", "container", id, "error", err)
			}
			if _, still := a.doomed[id]; still {
				a.doomed[id] = 0
			}
		}()
	}
	wg.Wait()
	return ok
}

// removeContainer stops a container with grace (when positive), then
// removes it (Remove kills what still runs).
func (a *agent) removeContainer(id string, grace time.Duration) error {
	if grace > 0 {
		ctx, cancel := context.WithTimeout(a.ctx, grace+a.n.cfg.RPCTimeout)
		if err := a.rt.Stop(ctx, id, grace); err != nil && a.ctx.Err() == nil {
			a.n.log.Debug("stopping container before removal failed", "container", id, "error", err)
		}
		cancel()
	}
	ctx, cancel := context.WithTimeout(a.ctx, a.n.cfg.RPCTimeout)
	defer cancel()
	return a.rt.Remove(ctx, id)
}

// sweep lists the node's containers and queues for removal each one that
// neither a runner owns nor an ended, still assigned task keeps as its
// history; such a history container that still runs (its stop failed) is
// stopped. It does nothing before the agent adopted what it found at
// start: until then every container is unaccounted for.
func (a *agent) sweep() {
	a.mu.Lock()
	adopted := a.adopted
	a.mu.Unlock()
	if !adopted {
		return
	}
	ctx, cancel := context.WithTimeout(a.ctx, a.n.cfg.RPCTimeout)
	defer cancel()
	list, err := a.rt.List(ctx, a.nodeID)
	if err != nil {
		if a.ctx.Err() == nil {
			a.n.log.Debug("sweep: listing containers failed", "error", err)
		}
		return
	}
	var halt []string
	a.mu.Lock()
	for _, c := range list {
		if _, owned := a.runners[c.TaskID]; owned {
			continue // a runner creates, runs or stops it
		}
		if cid, kept := a.containers[c.TaskID]; kept && cid == c.ID {
			if c.Running {
				halt = append(halt, c.ID)
			}
			continue
		}
		if _, queued := a.doomed[c.ID]; !queued {
			a.n.log.Info("removing unneeded container", "container", c.Name, "task", c.TaskID)
			a.doomLocked(c.ID, 0)
		}
	}
	a.mu.Unlock()
	for _, id := range halt {
		// The task ended; its container must not run on.
		if err := a.rt.Stop(ctx, id, 0); err != nil && a.ctx.Err() == nil {
			a.n.log.Warn("stopping the container of an ended task failed", "container", id, "error", err)
		}
	}
}

// StagePruner is implemented by runtimes that stage files on the host for
// their containers (the Podman runtime stages secrets and configs on a
// tmpfs) and can remove what they staged for a node. It is optional: the
// agent type-asserts its Runtime and, before it creates anything, removes
// what a previous life of the node left (a crash between a create and its
// start leaves secrets staged).
type StagePruner interface {
	// PruneStaged removes every file staged for the containers of node
	// nodeID; the agent calls it before it creates anything.
	PruneStaged(nodeID string) error
}

// pruneStaged removes what the runtime staged for this node in a previous
// life (a crash between a create and its start leaves secrets on a
// tmpfs). It runs before the agent creates anything.
func (a *agent) pruneStaged() {
	if p, ok := a.rt.(StagePruner); ok {
		if err := p.PruneStaged(a.nodeID); err != nil {
			a.n.log.Warn("removing staged secrets and configs failed", "error", err)
		}
	}
}
