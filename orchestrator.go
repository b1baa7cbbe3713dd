package swarm

import (
	"context"
	"sort"
	"time"
)

// orchestrator runs on the leader only. Each pass compares every service's
// desired state with its tasks and writes the difference as one batch of
// task changes: new tasks (already placed by the scheduler), desired-state
// changes, restarts after the restart delay, and reaping of old tasks.
type orchestrator struct {
	n    *Node
	wake chan struct{}
}

// maxOpsPerEntry bounds one log entry; a pass that changes more tasks
// writes several entries.
const maxOpsPerEntry = 20000

func newOrchestrator(n *Node) *orchestrator {
	return &orchestrator{n: n, wake: make(chan struct{}, 1)}
}

func (o *orchestrator) poke() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// notify is called after each applied command; it wakes the orchestrator
// unless the command cannot change what the orchestrator wants (agents'
// reports of tasks that are still going, the orchestrator's own writes).
func (o *orchestrator) notify(c *command) {
	if c.Type == cmdTasks {
		relevant := false
		for i := range c.Ops {
			if op := &c.Ops[i]; op.Op == opStatus && op.Status != nil && op.Status.State.Terminal() {
				relevant = true
				break
			}
		}
		if !relevant {
			return
		}
	}
	o.poke()
}

func (o *orchestrator) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := o.pass(ctx)
		if ctx.Err() != nil {
			return
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), time.Millisecond)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-o.wake:
			// Coalesce a burst of changes into one pass.
			select {
			case <-ctx.Done():
				return
			case <-time.After(2 * time.Millisecond):
			}
		case <-timer.C:
		}
	}
}

// plan accumulates one pass's changes.
type plan struct {
	ops  []taskOp
	next time.Time
	now  time.Time
}

func (p *plan) wakeAt(t time.Time) {
	if p.next.IsZero() || t.Before(p.next) {
		p.next = t
	}
}

func (p *plan) desired(t *Task, s TaskState) {
	p.ops = append(p.ops, taskOp{Op: opDesired, ID: t.ID, State: s})
}

// pass reconciles everything once and returns when it next needs to run
// for a timer (zero: only on changes).
func (o *orchestrator) pass(ctx context.Context) time.Time {
	n := o.n
	p := &plan{now: time.Now().UTC()}
	n.fsm.read(func(s *state) { o.reconcile(s, p) })
	for len(p.ops) > 0 {
		chunk := p.ops
		if len(chunk) > maxOpsPerEntry {
			chunk = chunk[:maxOpsPerEntry]
		}
		p.ops = p.ops[len(chunk):]
		if _, err := n.applyLocal(ctx, &command{Type: cmdTasks, Ops: chunk}); err != nil {
			if ctx.Err() == nil {
				n.log.Warn("orchestrator write failed", "error", err)
				p.wakeAt(time.Now().Add(100 * time.Millisecond))
			}
			break
		}
	}
	return p.next
}

// reconcile computes the pass's changes from a consistent view.
func (o *orchestrator) reconcile(s *state, p *plan) {
	var occupying []*Task
	nodes := make([]*NodeInfo, 0, len(s.nodes))
	for _, nd := range s.nodes {
		nodes = append(nodes, nd)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].ID < nodes[j].ID })
	for _, t := range s.tasks {
		if t.NodeID != "" && t.Status.State.Rank() >= TaskAssigned.Rank() && !t.Status.State.Terminal() && t.DesiredState.Rank() <= TaskRunning.Rank() {
			occupying = append(occupying, t)
		}
	}
	sched := newScheduler(nodes, occupying)

	ids := make([]string, 0, len(s.services))
	for id := range s.services {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		svc := s.services[id]
		if svc.Spec.Mode.IsGlobal() {
			o.reconcileGlobal(s, p, sched, svc, nodes)
		} else {
			o.reconcileReplicated(s, p, sched, svc)
		}
	}
	// Tasks of removed services go away.
	for sid, tasks := range s.tasksByService {
		if _, ok := s.services[sid]; ok {
			continue
		}
		for _, t := range tasks {
			if t.DesiredState.Rank() < TaskRemove.Rank() {
				p.desired(t, TaskRemove)
			} else if o.gone(s, t) {
				p.ops = append(p.ops, taskOp{Op: opDelete, ID: t.ID})
			}
		}
	}
}

// gone reports whether a task no longer needs its node's attention: it has
// ended, never reached a node, or its node is down or removed.
func (o *orchestrator) gone(s *state, t *Task) bool {
	if t.Status.State.Terminal() || t.NodeID == "" {
		return true
	}
	nd, ok := s.nodes[t.NodeID]
	return !ok || nd.State == NodeDown
}

// nodeUsable reports whether a task may keep running on its node.
func nodeUsable(s *state, t *Task) bool {
	if t.NodeID == "" {
		return true
	}
	nd, ok := s.nodes[t.NodeID]
	return ok && nd.State != NodeDown && nd.Availability != AvailabilityDrain
}

func (o *orchestrator) restartDelay(spec *ServiceSpec) time.Duration {
	if spec.RestartPolicy.Delay != nil {
		return *spec.RestartPolicy.Delay
	}
	return o.n.cfg.RestartDelay
}

// wantsRestart applies the restart condition to a task that ended on its own.
func wantsRestart(spec *ServiceSpec, t *Task) bool {
	switch spec.RestartPolicy.Condition {
	case RestartNone:
		return false
	case RestartOnFailure:
		return t.Status.State != TaskComplete
	}
	return true
}

// slotTasks reconciles the tasks of one slot (or, for global services, one
// node): it returns whether the slot still has a live task, after queueing
// the changes for ended, stranded and outdated tasks.
func (o *orchestrator) slotTasks(s *state, p *plan, svc *Service, tasks []*Task, newTask func(desired TaskState)) {
	// Newest first.
	sort.Slice(tasks, func(i, j int) bool {
		if !tasks[i].CreatedAt.Equal(tasks[j].CreatedAt) {
			return tasks[i].CreatedAt.After(tasks[j].CreatedAt)
		}
		return tasks[i].ID > tasks[j].ID
	})
	var live *Task
	var history []*Task
	for _, t := range tasks {
		if t.DesiredState.Rank() > TaskRunning.Rank() {
			history = append(history, t)
			continue
		}
		if live != nil {
			// Two live tasks in one slot: keep the newest.
			p.desired(t, TaskShutdown)
			history = append(history, t)
			continue
		}
		live = t
	}
	occupied := live != nil
	if live != nil {
		switch {
		case !nodeUsable(s, live):
			// Its node is down or drained: replace it now, no restart delay.
			p.desired(live, TaskShutdown)
			occupied = false
		case live.SpecVersion != svc.SpecVersion:
			p.desired(live, TaskShutdown)
			occupied = false
		case live.Status.State.Terminal():
			// Ended on its own: the restart policy decides.
			if wantsRestart(&svc.Spec, live) {
				p.desired(live, TaskShutdown)
				newTask(TaskReady)
				// The replacement starts after the restart delay.
				p.wakeAt(p.now.Add(o.restartDelay(&svc.Spec)))
				occupied = true
			}
		case live.DesiredState == TaskReady:
			at := live.CreatedAt.Add(o.restartDelay(&svc.Spec))
			if !p.now.Before(at) {
				p.desired(live, TaskRunning)
			} else {
				p.wakeAt(at)
			}
		}
	}
	if !occupied {
		newTask(TaskRunning)
	}
	// Keep TaskHistoryLimit ended tasks per slot.
	limit := o.n.cfg.TaskHistoryLimit
	for i, t := range history {
		if i >= limit || (t.DesiredState == TaskRemove && o.gone(s, t)) {
			p.ops = append(p.ops, taskOp{Op: opDelete, ID: t.ID})
		}
	}
}

func (o *orchestrator) newTaskFor(svc *Service, slot uint64, desired TaskState) *Task {
	return &Task{
		ID: newID(), ServiceID: svc.ID, ServiceName: svc.Spec.Name, Slot: slot,
		SpecVersion: svc.SpecVersion, DesiredState: desired, // Spec: filled in by Apply (FromService)
		Status: TaskStatus{State: TaskNew, Message: "created"},
	}
}

func (o *orchestrator) reconcileReplicated(s *state, p *plan, sched *scheduler, svc *Service) {
	replicas := svc.Spec.Mode.normalized().Replicas
	bySlot := map[uint64][]*Task{}
	for _, t := range s.tasksByService[svc.ID] {
		bySlot[t.Slot] = append(bySlot[t.Slot], t)
	}
	var created []*Task
	var pending []*Task
	for slot := uint64(1); slot <= replicas; slot++ {
		o.slotTasks(s, p, svc, bySlot[slot], func(desired TaskState) {
			created = append(created, o.newTaskFor(svc, slot, desired))
		})
	}
	// Slots beyond the replica count: scaled down.
	for slot, tasks := range bySlot {
		if slot >= 1 && slot <= replicas {
			for _, t := range tasks {
				if t.NodeID == "" && t.DesiredState.Rank() <= TaskRunning.Rank() && !t.Status.State.Terminal() {
					pending = append(pending, t)
				}
			}
			continue
		}
		for _, t := range tasks {
			if t.DesiredState.Rank() < TaskRemove.Rank() {
				p.desired(t, TaskRemove)
			} else if o.gone(s, t) {
				p.ops = append(p.ops, taskOp{Op: opDelete, ID: t.ID})
			}
		}
	}
	o.schedule(p, sched, svc, created, pending)
}

// schedule places the pass's new tasks and the service's pending ones.
func (o *orchestrator) schedule(p *plan, sched *scheduler, svc *Service, created, pending []*Task) {
	// Pending tasks whose replacement is already being created are shut
	// down by slotTasks; place the rest in slot order.
	sort.Slice(pending, func(i, j int) bool { return pending[i].Slot < pending[j].Slot })
	all := len(pending) + len(created)
	if all == 0 {
		return
	}
	nodes, reason := sched.place(svc.ID, &svc.Spec, all)
	for i, t := range pending {
		if nodes[i] != "" {
			p.ops = append(p.ops, taskOp{Op: opAssign, ID: t.ID, NodeID: nodes[i]})
		} else {
			p.ops = append(p.ops, taskOp{Op: opPending, ID: t.ID, Status: &TaskStatus{Message: reason}})
		}
	}
	for i, t := range created {
		if nd := nodes[len(pending)+i]; nd != "" {
			t.NodeID = nd
			t.Status = TaskStatus{State: TaskAssigned, Message: "scheduler assigned task to node"}
		} else {
			t.Status = TaskStatus{State: TaskPending, Message: reason}
		}
		p.ops = append(p.ops, taskOp{Op: opCreate, Task: t, FromService: true})
	}
}

func (o *orchestrator) reconcileGlobal(s *state, p *plan, sched *scheduler, svc *Service, nodes []*NodeInfo) {
	byNode := map[string][]*Task{}
	for _, t := range s.tasksByService[svc.ID] {
		byNode[t.NodeID] = append(byNode[t.NodeID], t)
	}
	for _, nd := range nodes {
		tasks := byNode[nd.ID]
		delete(byNode, nd.ID)
		if !sched.eligible(nd.ID, &svc.Spec) {
			for _, t := range tasks {
				if t.DesiredState.Rank() <= TaskRunning.Rank() {
					p.desired(t, TaskShutdown)
				}
			}
			o.slotTasks(s, p, svc, nil, func(TaskState) {}) // nothing to create
			o.reapHistory(s, p, tasks)
			continue
		}
		nodeID := nd.ID
		var create []TaskState
		o.slotTasks(s, p, svc, tasks, func(desired TaskState) { create = append(create, desired) })
		for _, t := range tasks {
			// A global task waits on its node until its reservations fit.
			if t.Status.State == TaskPending && t.DesiredState.Rank() <= TaskRunning.Rank() {
				if ok, reason := sched.placeOn(nodeID, svc.ID, &svc.Spec); ok {
					p.ops = append(p.ops, taskOp{Op: opAssign, ID: t.ID, NodeID: nodeID})
				} else {
					p.ops = append(p.ops, taskOp{Op: opPending, ID: t.ID, Status: &TaskStatus{Message: reason}})
				}
			}
		}
		for _, desired := range create {
			t := o.newTaskFor(svc, 0, desired)
			t.NodeID = nodeID
			if ok, reason := sched.placeOn(nodeID, svc.ID, &svc.Spec); ok {
				t.Status = TaskStatus{State: TaskAssigned, Message: "scheduler assigned task to node"}
			} else {
				t.Status = TaskStatus{State: TaskPending, Message: reason}
			}
			p.ops = append(p.ops, taskOp{Op: opCreate, Task: t, FromService: true})
		}
	}
	// Tasks on nodes that were removed from the swarm.
	for _, tasks := range byNode {
		for _, t := range tasks {
			if t.DesiredState.Rank() <= TaskRunning.Rank() {
				p.desired(t, TaskShutdown)
			} else if o.gone(s, t) {
				p.ops = append(p.ops, taskOp{Op: opDelete, ID: t.ID})
			}
		}
	}
}

// reapHistory trims the ended tasks of a global service on a node where it
// no longer runs.
func (o *orchestrator) reapHistory(s *state, p *plan, tasks []*Task) {
	sort.Slice(tasks, func(i, j int) bool { return tasks[i].CreatedAt.After(tasks[j].CreatedAt) })
	kept := 0
	for _, t := range tasks {
		if t.DesiredState.Rank() <= TaskRunning.Rank() {
			continue
		}
		if kept >= o.n.cfg.TaskHistoryLimit {
			p.ops = append(p.ops, taskOp{Op: opDelete, ID: t.ID})
			continue
		}
		kept++
	}
}
