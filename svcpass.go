package swarm

import (
	"sort"
	"time"
)

// svcPass is one orchestrator pass over one service: it reconciles the
// service's slots (replica slots, or nodes for global services), runs its
// rolling update or rollback, applies the restart policy and, if asked,
// rebalances. All changes go into the pass's plan.
type svcPass struct {
	o     *orchestrator
	s     *state
	p     *plan
	sched *scheduler
	svc   *Service
	nodes []*NodeInfo
	cons  []constraint
	// fresh memoizes, per task SpecVersion, whether that spec is the
	// service's current one (a rollback brings an old spec back).
	fresh map[uint64]bool

	upd     UpdateConfig // the update (or rollback) policy in force
	monitor time.Duration
	// active: an update or rollback is under way; paused: it stopped on
	// failures; rollingBack: it is a rollback.
	active, paused, rollingBack bool
}

// defaultMonitor is Swarm's update monitor period.
const defaultMonitor = 5 * time.Second

func (o *orchestrator) newSvcPass(s *state, p *plan, sched *scheduler, svc *Service, nodes []*NodeInfo) *svcPass {
	sp := &svcPass{o: o, s: s, p: p, sched: sched, svc: svc, nodes: nodes, fresh: map[uint64]bool{}}
	sp.cons, _ = parseConstraints(svc.Spec.Placement.Constraints) // validated at create
	if us := svc.UpdateStatus; us != nil {
		switch us.State {
		case UpdateUpdating:
			sp.active = true
		case UpdateRollbackStarted:
			sp.active, sp.rollingBack = true, true
		case UpdatePaused:
			sp.paused = true
		case UpdateRollbackPaused:
			sp.paused, sp.rollingBack = true, true
		}
	}
	cfg := svc.Spec.UpdateConfig
	if sp.rollingBack {
		cfg = svc.Spec.RollbackConfig
	}
	sp.upd = effectiveUpdateConfig(cfg)
	sp.monitor = *sp.upd.Monitor
	return sp
}

// effectiveUpdateConfig fills Swarm's defaults into an update policy.
func effectiveUpdateConfig(c *UpdateConfig) UpdateConfig {
	if c == nil {
		c = &UpdateConfig{Parallelism: 1}
	}
	out := *c
	if out.FailureAction == "" {
		out.FailureAction = UpdateActionPause
	}
	if out.Order == "" {
		out.Order = UpdateStopFirst
	}
	if out.Monitor == nil {
		m := defaultMonitor
		out.Monitor = &m
	}
	return out
}

// isFresh reports whether t runs the service's current spec.
func (sp *svcPass) isFresh(t *Task) bool {
	if t.SpecVersion == sp.svc.SpecVersion {
		return true
	}
	v, ok := sp.fresh[t.SpecVersion]
	if !ok {
		v = !taskSpecChanged(&t.Spec, &sp.svc.Spec)
		sp.fresh[t.SpecVersion] = v
	}
	return v
}

// nodeOK reports whether t may keep running where it is: its node exists,
// is not down or drained, and still satisfies the service's constraints
// (the constraint enforcer).
func (sp *svcPass) nodeOK(t *Task) bool {
	if t.NodeID == "" {
		return true
	}
	nd, ok := sp.s.nodes[t.NodeID]
	if !ok || nd.State == NodeDown || nd.Availability == AvailabilityDrain {
		return false
	}
	for _, c := range sp.cons {
		if !c.matches(nd) {
			return false
		}
	}
	return true
}

func (sp *svcPass) restartDelay() time.Duration {
	if d := sp.svc.Spec.RestartPolicy.Delay; d != nil {
		return *d
	}
	return sp.o.n.cfg.RestartDelay
}

// wantsRestart applies the restart policy to a task that ended on its own;
// slot holds all the tasks of its slot (for MaxAttempts within Window).
func (sp *svcPass) wantsRestart(t *Task, slot []*Task) bool {
	rp := sp.svc.Spec.RestartPolicy
	cond := rp.Condition
	if cond == "" {
		cond = RestartAny
		if sp.svc.Spec.Mode.IsJob() {
			cond = RestartOnFailure
		}
	}
	switch cond {
	case RestartNone:
		return false
	case RestartOnFailure:
		if t.Status.State == TaskComplete {
			return false
		}
	}
	if rp.MaxAttempts == 0 {
		return true
	}
	if rp.Window == 0 {
		return t.Attempt < rp.MaxAttempts
	}
	// Restarts within the window: the slot's tasks that ended on their own
	// since then, the first of which was no restart.
	since := sp.p.now.Add(-rp.Window)
	ended := 0
	var oldest time.Time
	for _, x := range slot {
		if x.Status.State.Terminal() && x.Status.State != TaskShutdown && x.UpdatedAt.After(since) {
			ended++
			if oldest.IsZero() || x.UpdatedAt.Before(oldest) {
				oldest = x.UpdatedAt
			}
		}
	}
	if uint64(ended) > rp.MaxAttempts {
		sp.p.wakeAt(oldest.Add(rp.Window))
		return false
	}
	return true
}

// slotResult is what reconcileSlot found in one slot.
type slotResult struct {
	// live is the slot's current task (nil: none; it needs a new one).
	live *Task
	// needNew asks for a new task, desired newDesired, restart attempt attempt.
	needNew    bool
	newDesired TaskState
	attempt    uint64
	// outdated: live runs an old spec (the updater replaces it).
	outdated bool
	// inflight: the slot counts against the update's parallelism.
	inflight bool
	// doneAt is when live, a task of the running update, finished its
	// monitor period (zero if it has not).
	doneAt time.Time
	// abandoned is the newest task of the slot made after live that ended
	// or was stopped without taking over (a start-first replacement that
	// failed); nil if none.
	abandoned *Task
}

// reconcileSlot handles one slot's tasks: stranded tasks are replaced at
// once, ended ones per the restart policy, delayed ones started when due,
// start-first leftovers stopped once their replacement runs; the slot's
// ended tasks beyond the history limit are deleted.
func (sp *svcPass) reconcileSlot(tasks []*Task) (r slotResult) {
	p := sp.p
	defer func() {
		if r.inflight || sp.active {
			p.watch[sp.svc.ID] = true
		}
	}()
	sort.Slice(tasks, func(i, j int) bool { return newerTask(tasks[i], tasks[j]) })
	var live, hist []*Task
	for _, t := range tasks {
		switch {
		case t.DesiredState.Rank() > TaskRunning.Rank():
			hist = append(hist, t)
		case !sp.nodeOK(t):
			// Node down, drained or no longer matching: replace now, no delay.
			p.desired(t, TaskShutdown)
			hist = append(hist, t)
		default:
			live = append(live, t)
		}
	}
	defer sp.reap(hist)
	if len(live) == 0 {
		r.needNew, r.newDesired = true, TaskRunning
		return r
	}
	t, older := live[0], live[1:]
	for _, h := range hist {
		if h.CreatedAt.After(t.CreatedAt) {
			r.abandoned = h // hist is newest first
			break
		}
	}
	t, older = sp.dropFailedReplacements(t, older, &r)
	if len(older) > 0 {
		// A start-first replacement (update or rebalance move) is under
		// way: the old task stops only once the new one runs (and is
		// healthy: agents report running after the healthcheck passes),
		// so the slot never goes without a running task.
		if t.Status.State == TaskRunning {
			for _, x := range older {
				p.desired(x, TaskShutdown)
			}
		} else {
			r.inflight = true
		}
	}
	switch {
	case t.Status.State.Terminal():
		if sp.wantsRestart(t, tasks) {
			p.desired(t, TaskShutdown)
			r.needNew, r.newDesired = true, TaskReady
			if sp.isFresh(t) {
				r.attempt = t.Attempt + 1
			}
			p.wakeAt(p.now.Add(sp.restartDelay()))
			return r
		}
		// It stays as the slot's (ended) task: no restart.
	case t.DesiredState == TaskReady:
		due := true
		if t.Attempt > 0 {
			if at := t.CreatedAt.Add(sp.restartDelay()); p.now.Before(at) {
				due = false
				p.wakeAt(at)
			}
		}
		for _, h := range hist {
			// Stop-first: the task it replaces must have stopped (unless
			// its node is gone, and the task with it).
			if !h.Status.State.Terminal() && h.NodeID != "" && nodeReady(sp.s, h.NodeID) {
				due = false
			}
		}
		if due {
			p.desired(t, TaskRunning)
		}
	}
	r.live = t
	if !sp.isFresh(t) {
		r.outdated = true
		return r
	}
	if sp.active && sp.svc.UpdateStatus != nil && !t.CreatedAt.Before(sp.svc.UpdateStatus.StartedAt) {
		switch {
		case t.Status.State == TaskRunning:
			done := t.Status.Timestamp.Add(sp.monitor)
			if p.now.Before(done) {
				r.inflight = true
				p.wakeAt(done)
			} else {
				r.doneAt = done
			}
		case !t.Status.State.Terminal():
			r.inflight = true
		}
	}
	return r
}

// reap deletes a slot's ended tasks beyond the history limit, and tasks
// marked for removal once they are gone.
func (sp *svcPass) reap(hist []*Task) {
	limit := sp.o.n.cfg.TaskHistoryLimit
	for i, t := range hist {
		if i >= limit || (t.DesiredState == TaskRemove && gone(sp.s, t)) {
			sp.p.remove(t)
		}
	}
}

// newTask returns a task of the service's current spec.
func (sp *svcPass) newTask(slot uint64, desired TaskState, attempt uint64) *Task {
	return &Task{
		ID: newID(), ServiceID: sp.svc.ID, ServiceName: sp.svc.Spec.Name, Slot: slot,
		SpecVersion: sp.svc.SpecVersion, DesiredState: desired, Attempt: attempt,
		Status: TaskStatus{State: TaskNew, Message: "created"},
		// Spec: filled in by Apply from the service (FromService).
	}
}

// updateFailures counts the tasks of the running update that failed or
// ended early, and returns one of them for the message.
func (sp *svcPass) updateFailures() (int, *Task) {
	if !sp.active || sp.svc.UpdateStatus == nil {
		return 0, nil
	}
	start := sp.svc.UpdateStatus.StartedAt
	n := 0
	var last *Task
	for _, t := range sp.s.tasksByService[sp.svc.ID] {
		if t.CreatedAt.Before(start) || !sp.isFresh(t) {
			continue
		}
		switch t.Status.State {
		case TaskFailed, TaskRejected, TaskComplete:
			n++
			last = t
		}
	}
	return n, last
}

// checkFailures takes the update's failure action when too many of its
// tasks failed; it reports whether the update must stop replacing tasks.
func (sp *svcPass) checkFailures(slots int) bool {
	fails, t := sp.updateFailures()
	if fails == 0 || float64(fails)/float64(max(slots, 1)) <= sp.upd.MaxFailureRatio {
		return false
	}
	msg := "update paused due to failure or early termination of task " + t.ID
	switch sp.upd.FailureAction {
	case UpdateActionContinue:
		return false
	case UpdateActionRollback:
		if !sp.rollingBack && sp.svc.PreviousSpec != nil {
			sp.p.cmds = append(sp.p.cmds, &command{Type: cmdServiceUpdate, Version: sp.svc.Version,
				Service: rollbackOf(sp.svc, "update rolled back due to failure or early termination of task "+t.ID)})
			return true
		}
	}
	state := UpdatePaused
	if sp.rollingBack {
		state = UpdateRollbackPaused
		msg = "rollback paused due to failure or early termination of task " + t.ID
	}
	sp.setStatus(state, msg)
	return true
}

func (sp *svcPass) setStatus(state UpdateState, msg string) {
	us := *sp.svc.UpdateStatus
	us.State, us.Message = state, msg
	sp.p.cmds = append(sp.p.cmds, &command{Type: cmdServiceStatus, ID: sp.svc.ID,
		Service: &Service{SpecVersion: sp.svc.SpecVersion, UpdateStatus: &us}})
}

// outdatedSlot is a slot whose task runs an old spec.
type outdatedSlot struct {
	slot uint64 // replica slot, or 0
	node string // node of a global service's slot
	live *Task
	// abandoned is the slot's last replacement that did not take over.
	abandoned *Task
}

// roll replaces outdated tasks, at most Parallelism in flight at once and
// Delay after the last one finished its monitor period; replace creates
// the new task of a slot.
func (sp *svcPass) roll(outdated []outdatedSlot, inflight int, lastDone time.Time, replace func(o outdatedSlot, desired TaskState, attempt uint64)) {
	if len(outdated) == 0 || sp.paused {
		return
	}
	par := int(sp.upd.Parallelism)
	if par == 0 || !sp.active {
		par = len(outdated) // no update under way (old data): replace at once
	}
	allowed := par - inflight
	if allowed <= 0 {
		return
	}
	if sp.active && sp.upd.Delay > 0 && !lastDone.IsZero() {
		if at := lastDone.Add(sp.upd.Delay); sp.p.now.Before(at) {
			sp.p.wakeAt(at)
			return
		}
	}
	for i := 0; i < allowed && i < len(outdated); i++ {
		o := outdated[i]
		sp.p.watch[sp.svc.ID] = true // the next step waits on the new task's progress
		if sp.upd.Order == UpdateStartFirst && o.live.Status.State == TaskRunning {
			desired, attempt := sp.retryOf(o)
			replace(o, desired, attempt) // the old task stops once the new one runs
			continue
		}
		desired := TaskRunning
		if !o.live.Status.State.Terminal() && o.live.NodeID != "" && o.live.Status.State.Rank() >= TaskAssigned.Rank() {
			desired = TaskReady // starts once the old one has stopped
		}
		sp.p.desired(o.live, TaskShutdown)
		replace(o, desired, 0)
	}
}

// finishUpdate marks the update or rollback complete once nothing is
// outdated or in flight.
func (sp *svcPass) finishUpdate(outdated, inflight int) {
	if !sp.active || outdated > 0 || inflight > 0 {
		return
	}
	if sp.rollingBack {
		sp.setStatus(UpdateRollbackCompleted, "rollback completed")
	} else {
		sp.setStatus(UpdateCompleted, "update completed")
	}
}

// reconcileReplicated handles a replicated service.
func (sp *svcPass) reconcileReplicated() {
	p, s, svc := sp.p, sp.s, sp.svc
	replicas := svc.Spec.Mode.normalized().Replicas
	bySlot := map[uint64][]*Task{}
	for _, t := range s.tasksByService[svc.ID] {
		bySlot[t.Slot] = append(bySlot[t.Slot], t)
	}
	var (
		created, pending []*Task
		outdated         []outdatedSlot
		inflight         int
		lastDone         time.Time
		results          = make([]slotResult, 0, replicas)
	)
	for slot := uint64(1); slot <= replicas; slot++ {
		r := sp.reconcileSlot(bySlot[slot])
		results = append(results, r)
		if r.needNew {
			created = append(created, sp.newTask(slot, r.newDesired, r.attempt))
		}
		if r.outdated {
			outdated = append(outdated, outdatedSlot{slot: slot, live: r.live, abandoned: r.abandoned})
		}
		if r.inflight {
			inflight++
		}
		if r.doneAt.After(lastDone) {
			lastDone = r.doneAt
		}
		for _, t := range bySlot[slot] {
			if t.NodeID == "" && t.DesiredState.Rank() <= TaskRunning.Rank() && !t.Status.State.Terminal() && (r.live == t) {
				pending = append(pending, t)
			}
		}
	}
	// Slots beyond the replica count: scaled down.
	for slot, tasks := range bySlot {
		if slot >= 1 && slot <= replicas {
			continue
		}
		for _, t := range tasks {
			if t.DesiredState.Rank() < TaskRemove.Rank() {
				p.desired(t, TaskRemove)
			} else if gone(s, t) {
				p.remove(t)
			}
		}
	}
	stop := sp.checkFailures(int(replicas))
	if !stop {
		sp.roll(outdated, inflight, lastDone, func(o outdatedSlot, desired TaskState, attempt uint64) {
			created = append(created, sp.newTask(o.slot, desired, attempt))
			inflight++
		})
		sp.finishUpdate(len(outdated), inflight)
	}
	if len(created) == 0 && len(pending) == 0 && len(outdated) == 0 && inflight == 0 && !sp.active {
		sp.rebalance(results)
	}
	sp.o.schedule(p, sp.sched, svc, created, pending)
}

// rebalance moves tasks from the most to the least loaded eligible nodes,
// start-first and at the update parallelism, when the service opted in and
// every replica runs.
func (sp *svcPass) rebalance(results []slotResult) {
	svc := sp.svc
	on := sp.o.n.cfg.Rebalance
	if svc.Spec.Rebalance != nil {
		on = *svc.Spec.Rebalance
	}
	if !on {
		return
	}
	counts := map[string]int{}
	for _, nd := range sp.nodes {
		// A node that keeps failing the service's tasks is no target (and
		// its tasks are not counted against the spread).
		if sp.sched.eligible(nd.ID, &svc.Spec) && !sp.sched.failing(nd.ID, svc.ID) {
			counts[nd.ID] = 0
		}
	}
	if len(counts) < 2 {
		return
	}
	if sp.moveBackoff(results) {
		return
	}
	var bySource = map[string][]*Task{}
	for _, r := range results {
		t := r.live
		if t == nil || t.Status.State != TaskRunning {
			return // not settled
		}
		// Let the last change settle for the monitor period and delay.
		if settle := t.Status.Timestamp.Add(sp.monitor + sp.upd.Delay); sp.p.now.Before(settle) {
			sp.p.wakeAt(settle)
			return
		}
		if _, ok := counts[t.NodeID]; ok {
			counts[t.NodeID]++
			bySource[t.NodeID] = append(bySource[t.NodeID], t)
		}
	}
	par := int(sp.upd.Parallelism)
	if par == 0 {
		par = len(results)
	}
	for moved := 0; moved < par; moved++ {
		src, hi, lo := "", -1, int(^uint(0)>>1)
		for id, c := range counts {
			if c > hi || (c == hi && id < src) {
				src, hi = id, c
			}
			lo = min(lo, c)
		}
		if hi-lo <= 1 || len(bySource[src]) == 0 {
			return
		}
		tasks := bySource[src]
		sort.Slice(tasks, func(i, j int) bool { return tasks[i].Slot > tasks[j].Slot })
		t := tasks[0]
		dst, _ := sp.sched.place(svc.ID, &svc.Spec, 1)
		if len(dst) == 0 || dst[0] == "" || dst[0] == src {
			return
		}
		if c, ok := counts[dst[0]]; !ok || c+1 >= hi {
			// Not a node the spread wants more on (failing, or as loaded
			// as the source but for one): moving would only churn.
			return
		}
		nt := sp.newTask(t.Slot, TaskRunning, 0)
		nt.NodeID = dst[0]
		nt.Status = TaskStatus{State: TaskAssigned, Message: "rebalanced from node " + src}
		sp.p.create(nt)
		// Watch the service: the old task stops when the new one reports
		// running, a report that wakes the orchestrator only for watched
		// services.
		sp.p.watch[svc.ID] = true
		bySource[src] = tasks[1:]
		counts[src]--
		counts[dst[0]]++
	}
}

// reconcileGlobal handles a global service: one slot per node.
func (sp *svcPass) reconcileGlobal() {
	p, s, svc := sp.p, sp.s, sp.svc
	byNode := map[string][]*Task{}
	for _, t := range s.tasksByService[svc.ID] {
		byNode[t.NodeID] = append(byNode[t.NodeID], t)
	}
	var (
		outdated []outdatedSlot
		inflight int
		lastDone time.Time
		eligible int
	)
	create := func(nodeID string, desired TaskState, attempt uint64) {
		t := sp.newTask(0, desired, attempt)
		t.NodeID = nodeID
		if ok, reason := sp.sched.placeOn(nodeID, svc.ID, &svc.Spec); ok {
			t.Status = TaskStatus{State: TaskAssigned, Message: "scheduler assigned task to node"}
		} else {
			t.Status = TaskStatus{State: TaskPending, Message: reason}
		}
		p.create(t)
	}
	for _, nd := range sp.nodes {
		tasks := byNode[nd.ID]
		delete(byNode, nd.ID)
		wanted := sp.sched.eligible(nd.ID, &svc.Spec)
		if wanted {
			eligible++
		}
		r := sp.reconcileSlot(tasks)
		if r.needNew && wanted {
			create(nd.ID, r.newDesired, r.attempt)
		}
		if r.outdated {
			outdated = append(outdated, outdatedSlot{node: nd.ID, live: r.live, abandoned: r.abandoned})
		}
		if r.inflight {
			inflight++
		}
		if r.doneAt.After(lastDone) {
			lastDone = r.doneAt
		}
		// A global task waits on its node until its reservations fit.
		if t := r.live; t != nil && t.Status.State == TaskPending {
			if ok, reason := sp.sched.placeOn(nd.ID, svc.ID, &svc.Spec); ok {
				p.ops = append(p.ops, taskOp{Op: opAssign, ID: t.ID, NodeID: nd.ID})
			} else {
				p.ops = append(p.ops, taskOp{Op: opPending, ID: t.ID, Status: &TaskStatus{Message: reason}})
			}
		}
	}
	// Tasks on nodes that were removed from the swarm.
	for _, tasks := range byNode {
		for _, t := range tasks {
			if t.DesiredState.Rank() <= TaskRunning.Rank() {
				p.desired(t, TaskShutdown)
			} else if gone(s, t) {
				p.remove(t)
			}
		}
	}
	if !sp.checkFailures(eligible) {
		sp.roll(outdated, inflight, lastDone, func(o outdatedSlot, desired TaskState, attempt uint64) {
			create(o.node, desired, attempt)
			inflight++
		})
		sp.finishUpdate(len(outdated), inflight)
	}
}

// schedule places the pass's new tasks and the service's pending ones.
func (o *orchestrator) schedule(p *plan, sched *scheduler, svc *Service, created, pending []*Task) {
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
		p.create(t)
	}
}
