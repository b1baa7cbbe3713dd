package swarm

import "sort"

// Jobs run their tasks to completion. A job's iteration is its
// SpecVersion: a spec change or ForceUpdate starts a new run, and the
// tasks of older runs are stopped and no longer counted. Completed tasks
// are never restarted; failed ones follow the restart policy (on-failure
// unless set).

// reconcileReplicatedJob runs TotalCompletions tasks to completion, at
// most MaxConcurrent at a time.
func (sp *svcPass) reconcileReplicatedJob() {
	p, s, svc := sp.p, sp.s, sp.svc
	mode := svc.Spec.Mode.normalized()
	bySlot := map[uint64][]*Task{}
	for _, t := range s.tasksByService[svc.ID] {
		if t.SpecVersion != svc.SpecVersion {
			sp.retireOldRun(t)
			continue
		}
		bySlot[t.Slot] = append(bySlot[t.Slot], t)
	}
	var (
		done, active uint64
		created      []*Task
		pending      []*Task
		maxSlot      uint64
	)
	slots := make([]uint64, 0, len(bySlot))
	for slot := range bySlot {
		slots = append(slots, slot)
		maxSlot = max(maxSlot, slot)
	}
	sort.Slice(slots, func(i, j int) bool { return slots[i] < slots[j] })
	for _, slot := range slots {
		tasks := bySlot[slot]
		if jobSlotComplete(tasks) {
			done++
			sp.reapJob(tasks)
			continue
		}
		r := sp.reconcileSlot(tasks)
		switch {
		case r.needNew:
			created = append(created, sp.newTask(slot, r.newDesired, r.attempt))
			active++
		case r.live != nil && r.live.Status.State.Terminal():
			// Failed for good (restart policy exhausted): the slot is spent.
			done++
		case r.live != nil:
			active++
			if r.live.NodeID == "" && r.live.Status.State.Rank() <= TaskPending.Rank() {
				pending = append(pending, r.live)
			}
		}
	}
	for done+active < mode.TotalCompletions && active < mode.MaxConcurrent {
		maxSlot++
		created = append(created, sp.newTask(maxSlot, TaskRunning, 0))
		active++
	}
	sp.o.schedule(p, sp.sched, svc, created, pending)
}

// jobSlotComplete reports whether a job slot has a completed task.
func jobSlotComplete(tasks []*Task) bool {
	for _, t := range tasks {
		if t.Status.State == TaskComplete {
			return true
		}
	}
	return false
}

// reapJob trims a finished slot's history, keeping its completed task.
func (sp *svcPass) reapJob(tasks []*Task) {
	sort.Slice(tasks, func(i, j int) bool { return newerTask(tasks[i], tasks[j]) })
	kept := 0
	for _, t := range tasks {
		if t.Status.State == TaskComplete {
			continue
		}
		if kept >= sp.o.n.cfg.TaskHistoryLimit {
			sp.p.remove(t)
			continue
		}
		kept++
	}
}

// retireOldRun stops a task of an earlier job iteration and reaps it once
// it has ended.
func (sp *svcPass) retireOldRun(t *Task) {
	if t.DesiredState.Rank() <= TaskRunning.Rank() && !t.Status.State.Terminal() {
		sp.p.desired(t, TaskShutdown)
		return
	}
	if gone(sp.s, t) && t.Status.State != TaskComplete {
		sp.p.remove(t)
	}
}

// reconcileGlobalJob runs one task to completion on every eligible node,
// including nodes that join later.
func (sp *svcPass) reconcileGlobalJob() {
	p, s, svc := sp.p, sp.s, sp.svc
	byNode := map[string][]*Task{}
	for _, t := range s.tasksByService[svc.ID] {
		if t.SpecVersion != svc.SpecVersion {
			sp.retireOldRun(t)
			continue
		}
		byNode[t.NodeID] = append(byNode[t.NodeID], t)
	}
	for _, nd := range sp.nodes {
		tasks := byNode[nd.ID]
		if jobSlotComplete(tasks) {
			sp.reapJob(tasks)
			continue
		}
		r := sp.reconcileSlot(tasks)
		if r.needNew && sp.sched.eligible(nd.ID, &svc.Spec) {
			t := sp.newTask(0, r.newDesired, r.attempt)
			t.NodeID = nd.ID
			if ok, reason := sp.sched.placeOn(nd.ID, svc.ID, &svc.Spec); ok {
				t.Status = TaskStatus{State: TaskAssigned, Message: "scheduler assigned task to node"}
			} else {
				t.Status = TaskStatus{State: TaskPending, Message: reason}
			}
			p.create(t)
		}
	}
}
