package swarm

import (
	"context"
	"sort"
	"sync"
	"time"
)

// orchestrator runs on the leader only. Each pass compares every service's
// desired state with its tasks and writes the difference as one batch of
// task changes: new tasks (already placed by the scheduler), desired-state
// changes, restarts after the restart delay, and reaping of old tasks.
type orchestrator struct {
	n    *Node
	wake chan struct{}

	// watch holds the services whose tasks' progress (not only their end)
	// matters to the last pass: rolling updates and start-first moves wait
	// for new tasks to run.
	watchMu sync.Mutex
	watch   map[string]bool

	// checked caches the validation of stored specs (orch_guard.go); only
	// the pass goroutine uses it.
	checked map[string]specCheck
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
	if c.Type != cmdTasks {
		o.poke()
		return
	}
	var progress []string
	for i := range c.Ops {
		op := &c.Ops[i]
		if op.Op != opStatus || op.Status == nil {
			continue
		}
		if op.Status.State.Terminal() {
			o.poke()
			return
		}
		progress = append(progress, op.ID)
	}
	o.watchMu.Lock()
	watched := len(o.watch) > 0
	o.watchMu.Unlock()
	if !watched || len(progress) == 0 {
		return
	}
	var services []string
	o.n.fsm.read(func(s *state) {
		for _, id := range progress {
			if t, ok := s.tasks[id]; ok {
				services = append(services, t.ServiceID)
			}
		}
	})
	o.watchMu.Lock()
	defer o.watchMu.Unlock()
	for _, sid := range services {
		if o.watch[sid] {
			o.poke()
			return
		}
	}
}

func (o *orchestrator) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var next time.Time
		if err := o.n.guard("orchestrator pass", func() { next = o.pass(ctx) }); err != nil {
			next = time.Now().Add(time.Second)
		}
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
			wait = max(next.Sub(o.n.clusterNow()), time.Millisecond)
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
	ops   []taskOp
	watch map[string]bool // services to watch until the next pass
	cmds  []*command      // service-level changes (update status, rollbacks)
	next  time.Time       // cluster time (clock.go)
	now   time.Time       // cluster time at the start of the pass
}

func (p *plan) wakeAt(t time.Time) {
	if p.next.IsZero() || t.Before(p.next) {
		p.next = t
	}
}

func (p *plan) desired(t *Task, s TaskState) {
	if t.DesiredState.Rank() < s.Rank() {
		p.ops = append(p.ops, taskOp{Op: opDesired, ID: t.ID, State: s})
	}
}

func (p *plan) remove(t *Task) { p.ops = append(p.ops, taskOp{Op: opDelete, ID: t.ID}) }

func (p *plan) create(t *Task) {
	p.ops = append(p.ops, taskOp{Op: opCreate, Task: t, FromService: true})
}

// pass reconciles everything once and returns when it next needs to run
// for a timer (zero: only on changes).
func (o *orchestrator) pass(ctx context.Context) time.Time {
	n := o.n
	p := &plan{now: n.clusterNow(), watch: map[string]bool{}}
	n.fsm.read(func(s *state) { o.reconcile(s, p) })
	o.watchMu.Lock()
	o.watch = p.watch
	o.watchMu.Unlock()
	for len(p.ops) > 0 {
		chunk := p.ops
		if len(chunk) > maxOpsPerEntry {
			chunk = chunk[:maxOpsPerEntry]
		}
		p.ops = p.ops[len(chunk):]
		if _, err := n.applyLocal(ctx, &command{Type: cmdTasks, Ops: chunk}); err != nil {
			if ctx.Err() == nil {
				n.log.Warn("orchestrator write failed", "error", err)
				p.wakeAt(p.now.Add(100 * time.Millisecond))
			}
			return p.next
		}
	}
	for _, c := range p.cmds {
		if _, err := n.applyLocal(ctx, c); err != nil && ctx.Err() == nil {
			// A version conflict means a user changed the service meanwhile:
			// the next pass looks again.
			n.log.Debug("orchestrator service change failed", "error", err)
		}
	}
	if len(p.cmds) > 0 {
		p.wakeAt(p.now)
	}
	return p.next
}

// reconcile computes the pass's changes from a consistent view.
func (o *orchestrator) reconcile(s *state, p *plan) {
	var occupying, failed []*Task
	nodes := nodeList(s)
	for _, t := range s.tasks {
		if t.NodeID != "" && t.Status.State.Rank() >= TaskAssigned.Rank() && !t.Status.State.Terminal() && t.DesiredState.Rank() <= TaskRunning.Rank() {
			occupying = append(occupying, t)
		}
		if t.Status.State == TaskFailed || t.Status.State == TaskRejected {
			failed = append(failed, t)
		}
	}
	sched := newScheduler(nodes, occupying)
	sched.noteFailures(p.now, failed)

	ids := make([]string, 0, len(s.services))
	for id := range s.services {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		o.reconcileService(s, p, sched, s.services[id], nodes)
	}
	// Tasks of removed services go away.
	for sid, tasks := range s.tasksByService {
		if _, ok := s.services[sid]; ok {
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
}

// gone reports whether a task no longer needs its node's attention: it has
// ended, never reached a node, or its node is down or removed.
func gone(s *state, t *Task) bool {
	if t.Status.State.Terminal() || t.NodeID == "" {
		return true
	}
	nd, ok := s.nodes[t.NodeID]
	return !ok || nd.State == NodeDown
}
