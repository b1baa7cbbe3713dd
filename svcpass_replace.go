package swarm

import "time"

// Start-first replacements never take a slot below its running task: an
// update of order start-first and a rebalance move both add the new task
// beside the old one, and the old one stops only once the new one runs
// (see [svcPass.reconcileSlot]). A replacement that ends first — rejected
// by its node's runtime, failed, exited — is abandoned: the old task keeps
// running and stays the slot's task, and the replacement is tried again
// after the restart delay (an update, if its failure action lets it go on)
// or when rebalancing next finds the spread uneven (a move).

// dropFailedReplacements takes the slot's newest live task t and the older
// live ones: while t has ended and an older task is still there to keep
// the slot, t is a replacement that did not take over, so it goes to the
// history (r.abandoned) and the next older task is the slot's again.
func (sp *svcPass) dropFailedReplacements(t *Task, older []*Task, r *slotResult) (*Task, []*Task) {
	for len(older) > 0 && t.Status.State.Terminal() {
		sp.p.desired(t, TaskShutdown)
		if r.abandoned == nil {
			r.abandoned = t
		}
		t, older = older[0], older[1:]
	}
	return t, older
}

// retryOf returns how a start-first replacement of an outdated slot is
// made: the desired state and restart attempt of the new task. After an
// abandoned replacement of the current spec the new one is a restart: it
// counts one attempt more and waits the restart delay (as a restarted
// task, see [svcPass.reconcileSlot]), so an image that fails on a node is
// not retried in a tight loop.
func (sp *svcPass) retryOf(o outdatedSlot) (TaskState, uint64) {
	if a := o.abandoned; a != nil && sp.isFresh(a) {
		sp.p.wakeAt(sp.p.now.Add(sp.restartDelay()))
		return TaskReady, a.Attempt + 1
	}
	return TaskRunning, 0
}

// moveBackoff reports whether a rebalance move of the service failed too
// recently to try another: a move waits the restart delay after the last
// abandoned one (by its CreatedAt, which the leader stamped).
func (sp *svcPass) moveBackoff(results []slotResult) bool {
	var last time.Time
	for _, r := range results {
		if a := r.abandoned; a != nil && a.CreatedAt.After(last) {
			last = a.CreatedAt
		}
	}
	if last.IsZero() {
		return false
	}
	if at := last.Add(sp.restartDelay()); sp.p.now.Before(at) {
		sp.p.wakeAt(at)
		return true
	}
	return false
}
