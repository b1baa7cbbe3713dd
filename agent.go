package swarm

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// agent runs a node's assigned tasks on its Runtime. It long-polls a
// manager (the local state on a manager) for the node's tasks, runs one
// goroutine per live task, and sends status changes to the managers in
// batches. After a restart it re-adopts the containers of tasks that are
// still its own and removes the rest.
type agent struct {
	n      *Node
	rt     Runtime
	nodeID string
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	runners    map[string]*runner
	containers map[string]string // task ID -> container of an ended task, kept as history
	// assigned is the task set of the last assignments acted on (nil
	// before the first): a runner that ends after its task left it must
	// remove its container, since no later assignment will name the task.
	assigned map[string]bool
	pending  map[string]TaskStatus
	flush    chan struct{}
	// files holds the data of the secrets and configs the node's live
	// tasks use, in memory only (secrets.go).
	files agentFiles
	// doomed holds the containers to remove, with the stop grace to give
	// them first (agent_reap.go); reapKick wakes the reaper. adopted is
	// set once the containers found at start are accounted for.
	doomed   map[string]time.Duration
	reapKick chan struct{}
	adopted  bool

	// roleSeen is the node's role as the last assignments reply had it,
	// from the node record at roleVer (owned by loop; see noteRole).
	roleSeen Role
	roleVer  uint64
}

// runner owns one task's container.
type runner struct {
	task        *Task
	containerID string
	stop        chan struct{} // closed when the managers want the task stopped
	stopOnce    sync.Once
	done        chan struct{}
}

func (r *runner) requestStop() { r.stopOnce.Do(func() { close(r.stop) }) }

func (n *Node) startAgent() {
	if n.cfg.Runtime == nil {
		return
	}
	ctx, cancel := context.WithCancel(n.baseCtx)
	a := &agent{
		n: n, rt: n.cfg.Runtime, nodeID: n.ID(), ctx: ctx, cancel: cancel,
		runners: map[string]*runner{}, containers: map[string]string{},
		pending: map[string]TaskStatus{}, flush: make(chan struct{}, 1),
		roleSeen: n.Role(),
		doomed:   map[string]time.Duration{}, reapKick: make(chan struct{}, 1),
	}
	a.pruneStaged()
	n.mu.Lock()
	n.agent = a
	n.mu.Unlock()
	a.wg.Add(3)
	go a.loop()
	go a.reportLoop()
	go a.reapLoop()
}

// shutdown stops the agent as a crash would: containers keep running.
func (a *agent) shutdown() {
	a.cancel()
	a.wg.Wait()
}

// stopAll stops and removes every container of the node (Leave).
func (a *agent) stopAll(ctx context.Context) {
	a.mu.Lock()
	runners := make([]*runner, 0, len(a.runners))
	for _, r := range a.runners {
		runners = append(runners, r)
	}
	a.mu.Unlock()
	for _, r := range runners {
		r.requestStop()
	}
	for _, r := range runners {
		select {
		case <-r.done:
		case <-ctx.Done():
		}
	}
	if list, err := a.rt.List(ctx, a.nodeID); err == nil {
		for _, c := range list {
			a.rt.Stop(ctx, c.ID, 0)
			a.rt.Remove(ctx, c.ID)
		}
	}
}

// fetch gets the node's tasks, waiting for a change after since.
func (a *agent) fetch(since uint64, first bool) (*assignReply, error) {
	a.n.hangPoint()
	defer a.n.hangPoint() // a reply that comes in while hung waits too
	args := &assignArgs{NodeID: a.nodeID, Since: since, First: first, Wait: 10 * time.Second,
		Role: a.roleSeen, NodeVersion: a.roleVer}
	if a.n.raftNode() != nil {
		return a.n.handleAssignments(a.ctx, args)
	}
	var lastErr error = fmt.Errorf("%w: no manager address known", ErrNoLeader)
	for _, addr := range a.n.managerAddrs() {
		var reply assignReply
		err := a.session(addr, args, &reply)
		if err == nil {
			return &reply, nil
		}
		lastErr = err
		if a.ctx.Err() != nil {
			return nil, a.ctx.Err()
		}
	}
	return nil, lastErr
}

// session long-polls one manager. It gives up early when gossip declares
// that manager dead: a partitioned manager never answers, and waiting for
// the request's deadline would leave the node without assignments.
func (a *agent) session(addr string, args *assignArgs, reply *assignReply) error {
	ctx, cancel := context.WithTimeout(a.ctx, args.Wait+a.n.cfg.RPCTimeout)
	defer cancel()
	go func() {
		t := time.NewTicker(a.n.cfg.GossipProbeInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if !slices.Contains(a.n.aliveManagerAddrs(), addr) {
					cancel()
					return
				}
			}
		}
	}()
	return a.n.tr.call(ctx, addr, "assignments", args, reply)
}

func (a *agent) loop() {
	defer a.wg.Done()
	defer a.waitRunners()
	var since uint64
	first := true
	known := map[string]*Task{}
	for attempt := 0; ; {
		reply, err := a.fetch(since, first)
		if a.ctx.Err() != nil {
			return
		}
		if err != nil {
			a.n.log.Debug("fetching assignments failed", "error", err)
			attempt++
			select {
			case <-a.ctx.Done():
				return
			case <-time.After(backoff(attempt)):
			}
			continue
		}
		attempt = 0
		a.noteRole(reply)
		if reply.Index == since && !first {
			continue // the long poll timed out: nothing changed
		}
		if first {
			known = map[string]*Task{}
		}
		for _, t := range reply.Tasks {
			if spec, ok := reply.Specs[specKey(t)]; ok {
				t.Spec = spec
			}
			known[t.ID] = t
		}
		current := make(map[string]bool, len(reply.IDs))
		for _, id := range reply.IDs {
			current[id] = true
		}
		tasks := make([]*Task, 0, len(reply.IDs))
		for id, t := range known {
			if !current[id] {
				delete(known, id)
				continue
			}
			tasks = append(tasks, t)
		}
		if err := a.n.guard("agent assignments", func() {
			a.holdFiles(reply, tasks)
			if first {
				a.adopt(tasks)
			}
			a.assign(tasks)
		}); err != nil {
			first, since = true, 0 // start over from a full list, after a pause
			select {
			case <-a.ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		first = false
		since = reply.Index
	}
}

func (a *agent) waitRunners() {
	a.mu.Lock()
	runners := make([]*runner, 0, len(a.runners))
	for _, r := range a.runners {
		runners = append(runners, r)
	}
	a.mu.Unlock()
	for _, r := range runners {
		<-r.done
	}
}

// adopt reconciles the runtime's containers of this node with its tasks
// after a (re)start: containers of live tasks are adopted, the rest removed.
func (a *agent) adopt(tasks []*Task) {
	// From now on every container of the node is accounted for (even if
	// listing failed: the sweep then removes what was not adopted).
	defer func() {
		a.mu.Lock()
		a.adopted = true
		a.mu.Unlock()
	}()
	list, err := a.rt.List(a.ctx, a.nodeID)
	if err != nil {
		a.n.log.Warn("listing containers failed", "error", err)
		return
	}
	byID := map[string]*Task{}
	for _, t := range tasks {
		byID[t.ID] = t
	}
	found := map[string]bool{}
	for _, c := range list {
		t := byID[c.TaskID]
		switch {
		case t != nil && c.Running && t.DesiredState.Rank() <= TaskRunning.Rank() && !t.Status.State.Terminal() && !found[t.ID]:
			found[t.ID] = true
			a.startRunner(t, c.ID)
		case t != nil && !c.Running && t.Status.State.Terminal() && !found[t.ID]:
			found[t.ID] = true
			a.mu.Lock()
			a.containers[t.ID] = c.ID
			a.mu.Unlock()
		default:
			a.n.log.Info("removing stale container", "container", c.Name, "task", c.TaskID)
			a.mu.Lock()
			a.doomLocked(c.ID, stopGrace(t))
			a.mu.Unlock()
		}
	}
	// Tasks whose container should exist but does not died with the node.
	for _, t := range tasks {
		if !found[t.ID] && !t.Status.State.Terminal() && t.Status.State.Rank() >= TaskReady.Rank() {
			a.report(t.ID, TaskStatus{State: TaskFailed, Err: "container lost while the node was down", Message: "container lost"})
			if t.DesiredState.Rank() <= TaskRunning.Rank() {
				a.mu.Lock()
				a.containers[t.ID] = ""
				a.mu.Unlock()
			}
		}
	}
}

func stopGrace(t *Task) time.Duration {
	if t != nil && t.Spec.StopGracePeriod != nil {
		return *t.Spec.StopGracePeriod
	}
	return 10 * time.Second
}

// assign acts on the node's current task set.
func (a *agent) assign(tasks []*Task) {
	seen := make(map[string]bool, len(tasks))
	var toRemove []string
	a.mu.Lock()
	for _, t := range tasks {
		seen[t.ID] = true
		if t.Status.State.Rank() < TaskAssigned.Rank() {
			continue // a global task still pending on this node
		}
		if r, ok := a.runners[t.ID]; ok {
			r.task = t
			if t.DesiredState.Rank() > TaskRunning.Rank() {
				r.requestStop()
			}
			continue
		}
		if _, ended := a.containers[t.ID]; ended {
			if t.DesiredState == TaskRemove {
				toRemove = append(toRemove, t.ID)
			}
			continue
		}
		switch {
		case t.Status.State.Terminal():
		case t.DesiredState == TaskRunning && t.Status.State.Rank() < TaskReady.Rank():
			a.startRunnerLocked(t, "")
		case t.DesiredState.Rank() > TaskRunning.Rank():
			// Never started here (or lost): nothing to stop.
			a.reportLocked(t.ID, TaskStatus{State: TaskShutdown, Message: "shutdown"})
			a.containers[t.ID] = ""
		case t.Status.State.Rank() >= TaskReady.Rank() && t.DesiredState == TaskRunning:
			// Reported started, but this agent has no container for it.
			a.reportLocked(t.ID, TaskStatus{State: TaskFailed, Err: "container lost", Message: "container lost"})
			a.containers[t.ID] = ""
		}
	}
	a.assigned = seen
	for id := range a.containers {
		if !seen[id] {
			toRemove = append(toRemove, id)
		}
	}
	for id, r := range a.runners {
		if !seen[id] {
			r.requestStop()
		}
	}
	for _, id := range toRemove {
		a.doomLocked(a.containers[id], 0)
		delete(a.containers, id)
	}
	a.mu.Unlock()
}

func (a *agent) startRunner(t *Task, containerID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.startRunnerLocked(t, containerID)
}

func (a *agent) startRunnerLocked(t *Task, containerID string) {
	if a.ctx.Err() != nil {
		return
	}
	r := &runner{task: t, containerID: containerID, stop: make(chan struct{}), done: make(chan struct{})}
	a.runners[t.ID] = r
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer close(r.done)
		final := a.run(r)
		a.mu.Lock()
		delete(a.runners, t.ID)
		if a.ctx.Err() == nil {
			if a.assigned == nil || a.assigned[t.ID] {
				a.containers[t.ID] = r.containerID
			} else {
				// The task was removed while it ran (its service removed,
				// say): keeping the container as history would leave it
				// for good, since the sweep spares history.
				a.doomLocked(r.containerID, 0)
			}
		}
		a.pruneFilesLocked()
		a.mu.Unlock()
		if final != nil && a.ctx.Err() == nil {
			a.report(t.ID, *final)
		}
	}()
}

// run drives one task through Swarm's states and returns its final status
// (nil when the agent itself is shutting down: the task is left as is).
func (a *agent) run(r *runner) *TaskStatus {
	a.mu.Lock()
	t := r.task // assign replaces r.task under a.mu; the spec never changes
	a.mu.Unlock()
	ctx, cancel := context.WithCancel(a.ctx)
	defer cancel()
	go func() {
		select {
		case <-r.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	stopped := func() bool {
		select {
		case <-r.stop:
			return true
		default:
			return false
		}
	}
	// finish decides the final status once a step was interrupted or failed.
	finish := func(fail *TaskStatus) *TaskStatus {
		if a.ctx.Err() != nil {
			return nil
		}
		if stopped() {
			if r.containerID != "" {
				sctx, scancel := context.WithTimeout(a.ctx, stopGrace(t)+a.n.cfg.RPCTimeout)
				if err := a.rt.Stop(sctx, r.containerID, stopGrace(t)); err != nil {
					a.n.log.Warn("stopping container failed", "container", r.containerID, "error", err)
				}
				scancel()
			}
			return &TaskStatus{State: TaskShutdown, Message: "shutdown", ContainerID: r.containerID}
		}
		if fail == nil {
			fail = &TaskStatus{State: TaskShutdown, Message: "shutdown"}
		}
		fail.ContainerID = r.containerID
		return fail
	}

	if r.containerID == "" {
		a.report(t.ID, TaskStatus{State: TaskAccepted, Message: "accepted"})
		a.report(t.ID, TaskStatus{State: TaskPreparing, Message: "preparing"})
		// Create runs to the end even if a stop comes meanwhile (only the
		// agent's own shutdown cancels it): a runtime may create the
		// container after the caller gave up, leaving it behind unknown.
		id, err := a.create(t)
		if err != nil {
			if a.ctx.Err() != nil || stopped() {
				return finish(nil)
			}
			return &TaskStatus{State: TaskRejected, Message: "rejected", Err: err.Error()}
		}
		r.containerID = id
		if stopped() {
			return finish(nil)
		}
		a.report(t.ID, TaskStatus{State: TaskReady, Message: "ready", ContainerID: id})
		if stopped() {
			return finish(nil)
		}
		a.report(t.ID, TaskStatus{State: TaskStarting, Message: "starting", ContainerID: id})
		if err := a.rt.Start(ctx, id); err != nil {
			return finish(&TaskStatus{State: TaskFailed, Message: "starting container failed", Err: err.Error()})
		}
		if err := a.rt.WaitReady(ctx, id); err != nil {
			if ctx.Err() != nil {
				return finish(nil)
			}
			// It exited, or it runs but failed its healthcheck: a failed
			// task's container must not keep running (its replacement
			// is already on the way), so stop it before reading how it
			// ended (Wait would block on a container that still runs).
			a.stopContainer(t, id)
			wctx, wcancel := context.WithTimeout(a.ctx, a.n.cfg.RPCTimeout)
			st, _ := a.rt.Wait(wctx, id)
			wcancel()
			return finish(&TaskStatus{State: TaskFailed, Message: "started", Err: err.Error(), ExitCode: st.ExitCode})
		}
	}
	a.report(t.ID, TaskStatus{State: TaskRunning, Message: "started", ContainerID: r.containerID})
	st, err := a.rt.Wait(ctx, r.containerID)
	if err != nil {
		if ctx.Err() != nil {
			return finish(nil)
		}
		return finish(&TaskStatus{State: TaskFailed, Message: "wait failed", Err: err.Error()})
	}
	if stopped() {
		return finish(nil)
	}
	switch {
	case st.Unhealthy:
		a.stopContainer(t, r.containerID)
		return &TaskStatus{State: TaskFailed, Message: "unhealthy", Err: "task: container is unhealthy", ContainerID: r.containerID, ExitCode: st.ExitCode}
	case st.ExitCode == 0:
		return &TaskStatus{State: TaskComplete, Message: "finished", ContainerID: r.containerID}
	default:
		msg := fmt.Sprintf("task: non-zero exit (%d)", st.ExitCode)
		if st.OOMKilled {
			msg += ": OOM killed"
		} else if st.Message != "" {
			msg += ": " + st.Message
		}
		return &TaskStatus{State: TaskFailed, Message: "failed", Err: msg, ContainerID: r.containerID, ExitCode: st.ExitCode}
	}
}

// stopContainer stops a task's container with the task's grace period.
func (a *agent) stopContainer(t *Task, id string) {
	sctx, scancel := context.WithTimeout(a.ctx, stopGrace(t)+a.n.cfg.RPCTimeout)
	defer scancel()
	if err := a.rt.Stop(sctx, id, stopGrace(t)); err != nil && a.ctx.Err() == nil {
		a.n.log.Warn("stopping container failed", "container", id, "error", err)
	}
}

// containerConfig builds what the runtime needs for a task.
func (a *agent) containerConfig(t *Task) ContainerConfig {
	labels := make(map[string]string, len(t.Spec.ContainerLabels)+7)
	for k, v := range t.Spec.ContainerLabels {
		labels[k] = v
	}
	name := t.Name() + "." + t.ID
	labels[LabelNodeID] = a.nodeID
	labels[LabelServiceID] = t.ServiceID
	labels[LabelServiceName] = t.ServiceName
	labels[LabelTaskID] = t.ID
	labels[LabelTaskName] = name
	labels[LabelTaskSlot] = uitoa(t.Slot)
	labels[LabelManagedBy] = "podswarm"
	return ContainerConfig{Name: name, Labels: labels, NodeID: a.nodeID, ServiceID: t.ServiceID,
		ServiceName: t.ServiceName, TaskID: t.ID, Slot: t.Slot, Spec: t.Spec}
}

// create creates a task's container with its secrets and configs; a task
// whose secret or config did not arrive is rejected.
func (a *agent) create(t *Task) (string, error) {
	cc := a.containerConfig(t)
	var err error
	if cc.Secrets, cc.Configs, err = a.containerFiles(t); err != nil {
		return "", err
	}
	return a.rt.Create(a.ctx, cc)
}

func (a *agent) report(taskID string, st TaskStatus) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reportLocked(taskID, st)
}

func (a *agent) reportLocked(taskID string, st TaskStatus) {
	if st.Timestamp.IsZero() {
		// Informational: the leader stamps the time that counts on receipt.
		st.Timestamp = a.n.now().UTC()
	}
	if old, ok := a.pending[taskID]; ok && st.State.Before(old.State) {
		return
	}
	a.pending[taskID] = st
	select {
	case a.flush <- struct{}{}:
	default:
	}
}

// reportLoop sends pending status changes in batches: it waits
// StatusBatchInterval after the first change so that a burst goes as one
// request (and one log entry), and keeps at most one request in flight.
func (a *agent) reportLoop() {
	defer a.wg.Done()
	for attempt := 0; ; {
		select {
		case <-a.ctx.Done():
			return
		case <-a.flush:
		}
		select {
		case <-a.ctx.Done():
			return
		case <-time.After(a.n.cfg.StatusBatchInterval):
		}
		a.mu.Lock()
		batch := a.pending
		a.pending = map[string]TaskStatus{}
		a.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		ops := make([]taskOp, 0, len(batch))
		for id, st := range batch {
			st := st
			ops = append(ops, taskOp{Op: opStatus, ID: id, NodeID: a.nodeID, Status: &st})
		}
		if err := a.n.guardErr("agent status report", func() error { return a.send(ops) }); err != nil {
			if a.ctx.Err() != nil {
				return
			}
			a.n.log.Debug("status report failed, will retry", "error", err)
			a.mu.Lock()
			for id, st := range batch {
				if cur, ok := a.pending[id]; !ok || cur.State.Before(st.State) {
					a.pending[id] = st
				}
			}
			a.mu.Unlock()
			attempt++
			select {
			case <-a.ctx.Done():
				return
			case <-time.After(backoff(attempt)):
			}
			select {
			case a.flush <- struct{}{}:
			default:
			}
			continue
		}
		attempt = 0
	}
}

func (a *agent) send(ops []taskOp) error {
	a.n.hangPoint()
	ctx, cancel := context.WithTimeout(a.ctx, a.n.cfg.RPCTimeout)
	defer cancel()
	args := &statusArgs{NodeID: a.nodeID, Ops: ops}
	if a.n.raftNode() != nil {
		return a.n.handleStatus(ctx, args)
	}
	return a.n.callManagers(ctx, "status", args, nil)
}
