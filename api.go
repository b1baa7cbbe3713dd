package swarm

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"sort"

	"github.com/hashicorp/raft"
)

// CreateService creates a service; the orchestrator then creates and
// places its tasks. Any manager accepts it (a follower forwards to the leader).
func (n *Node) CreateService(ctx context.Context, spec ServiceSpec) (Service, error) {
	spec = cloneSpec(spec)
	spec.Mode = spec.Mode.normalized()
	if err := validateSpec(&spec); err != nil {
		return Service{}, err
	}
	if err := n.resolveFileRefs(ctx, &spec); err != nil {
		return Service{}, err
	}
	svc := &Service{ID: newID(), Spec: spec, SpecVersion: 1}
	if spec.Mode.IsJob() {
		svc.JobStatus = &JobStatus{JobIteration: 1}
	}
	idx, err := n.apply(ctx, &command{Type: cmdServiceCreate, Service: svc})
	if err != nil {
		return Service{}, err
	}
	svc.Version = idx
	return readBackCreated(ctx, svc.ID, n.Service, *svc)
}

// readBackCreated reads back an object whose create has committed. A
// concurrent remove may win the read-back; the create still happened, so
// the caller gets the object as it was created (without the leader's
// timestamps) rather than an ErrNotFound that would report a committed
// write as failed.
func readBackCreated[T any](ctx context.Context, id string, read func(context.Context, string) (T, error), created T) (T, error) {
	v, err := read(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return created, nil
	}
	return v, err
}

// ScaleService sets the replica count of a replicated service (at most
// MaxReplicas).
func (n *Node) ScaleService(ctx context.Context, idOrName string, replicas uint64) error {
	for {
		svc, err := n.Service(ctx, idOrName)
		if err != nil {
			return err
		}
		if svc.Spec.Mode.IsGlobal() {
			return invalidf("service %q is global: only replicated services can be scaled", svc.Spec.Name)
		}
		spec := svc.Spec
		spec.Mode = Replicated(replicas)
		err = n.UpdateService(ctx, svc.ID, svc.Version, spec)
		if err == nil || !isVersionConflict(err) {
			return err
		}
		// Someone else changed the service meanwhile: scale the new version.
	}
}

// UpdateService replaces a service's spec. version must be the Version the
// caller read (0 skips the check); a stale version fails with
// ErrVersionConflict. Tasks are replaced only when the change affects them
// (not for scaling or label changes).
func (n *Node) UpdateService(ctx context.Context, idOrName string, version uint64, spec ServiceSpec) error {
	svc, err := n.Service(ctx, idOrName)
	if err != nil {
		return err
	}
	spec = cloneSpec(spec)
	spec.Mode = spec.Mode.normalized()
	if err := validateSpec(&spec); err != nil {
		return err
	}
	if err := n.resolveFileRefs(ctx, &spec); err != nil {
		return err
	}
	if spec.Name != svc.Spec.Name {
		return invalidf("service name cannot be changed (%q -> %q)", svc.Spec.Name, spec.Name)
	}
	if spec.Mode.Kind != svc.Spec.Mode.Kind {
		return invalidf("service %q: mode cannot change from %s to %s", spec.Name, svc.Spec.Mode.Kind, spec.Mode.Kind)
	}
	if version == 0 {
		version = svc.Version
	}
	next := svc
	prev := svc.Spec
	next.Spec = spec
	next.PreviousSpec = &prev
	// A job whose counts change runs again (a new iteration), as Swarm
	// does: the running tasks were started under the old MaxConcurrent.
	jobRerun := spec.Mode.IsJob() && spec.Mode.normalized() != prev.Mode.normalized()
	if taskSpecChanged(&prev, &spec) || jobRerun {
		next.SpecVersion++
		if spec.Mode.IsJob() {
			next.JobStatus = &JobStatus{JobIteration: next.SpecVersion}
		} else {
			next.UpdateStatus = &UpdateStatus{State: UpdateUpdating, Message: "update in progress"}
		}
	}
	_, err = n.apply(ctx, &command{Type: cmdServiceUpdate, Service: &next, Version: version})
	return err
}

// RollbackService puts the service's previous spec back, replacing its
// tasks under the service's RollbackConfig (Swarm's `docker service
// rollback`). version works as in UpdateService.
func (n *Node) RollbackService(ctx context.Context, idOrName string, version uint64) error {
	svc, err := n.Service(ctx, idOrName)
	if err != nil {
		return err
	}
	if svc.PreviousSpec == nil {
		return invalidf("service %q has no previous spec to roll back to", svc.Spec.Name)
	}
	if version == 0 {
		version = svc.Version
	}
	_, err = n.apply(ctx, &command{Type: cmdServiceUpdate, Service: rollbackOf(&svc, "rollback requested"), Version: version})
	return err
}

// rollbackOf returns svc with its previous spec back in place and a
// rollback under way.
func rollbackOf(svc *Service, msg string) *Service {
	next := *svc
	cur := svc.Spec
	next.Spec = *svc.PreviousSpec
	next.PreviousSpec = &cur
	next.SpecVersion++
	next.UpdateStatus = &UpdateStatus{State: UpdateRollbackStarted, Message: msg}
	return &next
}

func isVersionConflict(err error) bool { return errors.Is(err, ErrVersionConflict) }

// taskSpecChanged reports whether a spec change needs the tasks replaced:
// anything but the mode (scaling), the service labels and the name.
func taskSpecChanged(a, b *ServiceSpec) bool {
	x, y := *a, *b
	x.Mode, y.Mode = ServiceMode{}, ServiceMode{}
	x.Labels, y.Labels = nil, nil
	x.UpdateConfig, y.UpdateConfig = nil, nil
	x.RollbackConfig, y.RollbackConfig = nil, nil
	x.Rebalance, y.Rebalance = nil, nil
	return !reflect.DeepEqual(normalizeForCompare(x), normalizeForCompare(y))
}

// normalizeForCompare makes nil and empty collections compare equal.
func normalizeForCompare(s ServiceSpec) string {
	b, _ := json.Marshal(s)
	var m map[string]any
	json.Unmarshal(b, &m)
	for k, v := range m {
		if v == nil {
			delete(m, k)
		}
		if a, ok := v.([]any); ok && len(a) == 0 {
			delete(m, k)
		}
		if o, ok := v.(map[string]any); ok && len(o) == 0 {
			delete(m, k)
		}
	}
	out, _ := json.Marshal(m)
	return string(out)
}

// RemoveService removes a service; its tasks are shut down and deleted.
func (n *Node) RemoveService(ctx context.Context, idOrName string) error {
	svc, err := n.Service(ctx, idOrName)
	if err != nil {
		return err
	}
	_, err = n.apply(ctx, &command{Type: cmdServiceRemove, ID: svc.ID})
	return err
}

// Service returns one service by full ID, exact name or unique ID prefix.
func (n *Node) Service(ctx context.Context, idOrName string) (Service, error) {
	if err := n.readBarrier(ctx); err != nil {
		return Service{}, err
	}
	var (
		svc *Service
		err error
	)
	n.fsm.read(func(s *state) { svc, err = s.lookupService(idOrName) })
	if err != nil {
		return Service{}, err
	}
	return cloneService(svc), nil
}

// Services returns all services, sorted by name.
func (n *Node) Services(ctx context.Context) ([]Service, error) {
	if err := n.readBarrier(ctx); err != nil {
		return nil, err
	}
	var out []Service
	n.fsm.read(func(s *state) {
		for _, v := range s.services {
			out = append(out, cloneService(v))
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.Name < out[j].Spec.Name })
	return out, nil
}

// Tasks returns the tasks that match f, sorted by service name, slot (or
// node) and creation, newest first within a slot.
func (n *Node) Tasks(ctx context.Context, f TaskFilter) ([]Task, error) {
	if err := n.readBarrier(ctx); err != nil {
		return nil, err
	}
	if f.DesiredState != "" && !f.DesiredState.Valid() {
		return nil, invalidf("unknown desired state %q", f.DesiredState)
	}
	var (
		out []Task
		err error
	)
	n.fsm.read(func(s *state) {
		var pool map[string]*Task
		var nodeID string
		if f.Node != "" {
			var nd *NodeInfo
			if nd, err = s.lookupNode(f.Node); err != nil {
				return
			}
			nodeID = nd.ID
			pool = s.tasksByNode[nodeID]
		}
		if f.Service != "" {
			var svc *Service
			if svc, err = s.lookupService(f.Service); err != nil {
				return
			}
			pool = s.tasksByService[svc.ID]
		}
		if f.Node == "" && f.Service == "" {
			pool = s.tasks
		}
		for _, t := range pool {
			if nodeID != "" && t.NodeID != nodeID {
				continue
			}
			if f.DesiredState != "" && t.DesiredState != f.DesiredState {
				continue
			}
			out = append(out, cloneTask(t))
		}
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := &out[i], &out[j]
		if a.ServiceName != b.ServiceName {
			return a.ServiceName < b.ServiceName
		}
		if a.Slot != b.Slot {
			return a.Slot < b.Slot
		}
		if a.Slot == 0 && a.NodeID != b.NodeID {
			return a.NodeID < b.NodeID // global tasks group by node
		}
		return newerTask(a, b) // newest first
	})
	return out, nil
}

// WaitConverged blocks until the service runs its desired tasks: every
// replica (or every eligible node, for a global service) has a running
// task of the current spec and no outdated task is still running. It fails
// when ctx ends first or the service is removed.
func (n *Node) WaitConverged(ctx context.Context, idOrName string) error {
	svc, err := n.Service(ctx, idOrName)
	if err != nil {
		return err
	}
	// Convergence seen locally is confirmed by a linearizable read: a
	// manager cut off from the leader does not report it from old state.
	confirmed := false
	for {
		ch, _ := n.fsm.waitCh()
		var done bool
		n.fsm.read(func(s *state) {
			cur, ok := s.services[svc.ID]
			if !ok {
				err = notFoundf("service", idOrName)
				return
			}
			done = converged(s, cur)
		})
		if err != nil {
			return err
		}
		if done {
			if confirmed {
				return nil
			}
			if err := n.readBarrier(ctx); err != nil {
				return err
			}
			confirmed = true
			continue
		}
		confirmed = false
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-n.shutdownCh:
			return ErrShutdown
		}
	}
}

// converged reports whether a service runs what it should: every replica
// (or eligible node) has a running task of the current spec and no old
// task is still running; a job has completed its tasks.
func converged(s *state, svc *Service) bool {
	mode := svc.Spec.Mode.normalized()
	memo := map[uint64]bool{}
	fresh := func(t *Task) bool {
		if t.SpecVersion == svc.SpecVersion {
			return true
		}
		v, ok := memo[t.SpecVersion]
		if !ok {
			v = !taskSpecChanged(&t.Spec, &svc.Spec)
			memo[t.SpecVersion] = v
		}
		return v
	}
	eligible := func() map[string]bool {
		sched := newScheduler(nodeList(s), nil)
		out := map[string]bool{}
		for id := range s.nodes {
			if sched.eligible(id, &svc.Spec) {
				out[id] = true
			}
		}
		return out
	}
	switch mode.Kind {
	case ModeReplicatedJob:
		done := uint64(0)
		for _, t := range s.tasksByService[svc.ID] {
			if t.SpecVersion == svc.SpecVersion && t.Status.State == TaskComplete {
				done++
			}
		}
		return done >= mode.TotalCompletions
	case ModeGlobalJob:
		done := map[string]bool{}
		for _, t := range s.tasksByService[svc.ID] {
			if t.SpecVersion == svc.SpecVersion && t.Status.State == TaskComplete {
				done[t.NodeID] = true
			}
		}
		for id := range eligible() {
			if !done[id] {
				return false
			}
		}
		return true
	}
	want := int(mode.Replicas)
	if mode.IsGlobal() {
		want = len(eligible())
	}
	running := 0
	for _, t := range s.tasksByService[svc.ID] {
		live := t.DesiredState.Rank() <= TaskRunning.Rank()
		switch {
		case live && t.Status.State == TaskRunning && fresh(t) && nodeReady(s, t.NodeID):
			running++
		case live:
			return false
		case !t.Status.State.Terminal() && t.NodeID != "" && nodeReady(s, t.NodeID):
			return false // an old task is still stopping
		}
	}
	return running == want
}

func nodeReady(s *state, id string) bool {
	nd, ok := s.nodes[id]
	return ok && nd.State == NodeReady
}

func nodeList(s *state) []*NodeInfo {
	out := make([]*NodeInfo, 0, len(s.nodes))
	for _, nd := range s.nodes {
		out = append(out, nd)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Info summarises the swarm as this node sees it. Workers fill in only
// their own identity.
func (n *Node) Info(ctx context.Context) (Info, error) {
	n.mu.Lock()
	info := Info{NodeID: n.id, ClusterID: n.clusterID, Role: n.role}
	started, stopped := n.started, n.stopped
	n.mu.Unlock()
	if stopped {
		return info, ErrShutdown
	}
	if !started {
		return info, ErrNotInSwarm
	}
	if err := n.lockedErr(); err != nil {
		return info, err
	}
	r := n.raftNode()
	if r == nil {
		return info, nil
	}
	info.Leader = r.State() == raft.Leader
	_, lid := r.LeaderWithID()
	info.LeaderID = string(lid)
	n.fsm.read(func(s *state) {
		info.Managers = s.managers()
		info.Nodes = len(s.nodes)
		info.Services = len(s.services)
		info.Tasks = len(s.tasks)
		info.AppliedIndex = s.index
	})
	return info, nil
}
