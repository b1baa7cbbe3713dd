package swarm

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"
	"time"
)

// fuzzBytes turns fuzz input into choices; past its end every choice is 0.
type fuzzBytes struct {
	b []byte
}

func (f *fuzzBytes) byte() byte {
	if len(f.b) == 0 {
		return 0
	}
	v := f.b[0]
	f.b = f.b[1:]
	return v
}

func (f *fuzzBytes) intn(n int) int { return int(f.byte()) % n }

func pick[T any](f *fuzzBytes, v ...T) T { return v[f.intn(len(v))] }

// count returns a small count, or now and then one far beyond the bounds.
func (f *fuzzBytes) count() uint64 {
	switch v := f.byte(); {
	case v == 255:
		return 1 << 62
	case v == 254:
		return MaxReplicas + 1
	default:
		return uint64(v % 24)
	}
}

var (
	fuzzConstraints = [][]string{nil, {"node.role==worker"}, {"node.role!=manager"}, {"node.labels.zone==a"},
		{"node.labels.zone!=b", "node.hostname!=h1"}, {"node.bogus==x"}, {"engine.labels.disk==ssd"}}
	fuzzPrefs  = [][]PlacementPreference{nil, {{Spread: "node.labels.zone"}}, {{Spread: "node.labels.zone"}, {Spread: "node.labels.rack"}}}
	fuzzStates = []TaskState{TaskNew, TaskPending, TaskAssigned, TaskAccepted, TaskPreparing, TaskReady, TaskStarting,
		TaskRunning, TaskComplete, TaskShutdown, TaskFailed, TaskRejected, TaskRemove, TaskOrphaned, "bogus"}
)

func fuzzNodes(f *fuzzBytes, n int) []*NodeInfo {
	nodes := make([]*NodeInfo, n)
	for i := range nodes {
		nodes[i] = &NodeInfo{
			ID: fmt.Sprintf("n%d", i), Hostname: fmt.Sprintf("h%d", i),
			Role:         pick(f, RoleWorker, RoleManager),
			State:        pick(f, NodeReady, NodeReady, NodeReady, NodeDown),
			Availability: pick(f, AvailabilityActive, AvailabilityActive, AvailabilityPause, AvailabilityDrain),
			Labels:       map[string]string{"zone": pick(f, "a", "b", ""), "rack": pick(f, "1", "2")},
			EngineLabels: map[string]string{"disk": pick(f, "ssd", "hdd")},
			Resources:    Resources{NanoCPUs: int64(f.intn(5)) * 1e9, MemoryBytes: int64(f.intn(5)) << 30},
		}
	}
	return nodes
}

func fuzzSpec(f *fuzzBytes, name string) ServiceSpec {
	spec := ServiceSpec{Name: name, Image: pick(f, "nginx", "nginx\n", "x")}
	switch f.intn(5) {
	case 0:
		spec.Mode = ServiceMode{Replicas: f.count()}
	case 1:
		spec.Mode = Replicated(f.count())
	case 2:
		spec.Mode = Global()
	case 3:
		spec.Mode = ReplicatedJob(f.count(), f.count())
	case 4:
		spec.Mode = GlobalJob()
	}
	spec.Placement.Constraints = pick(f, fuzzConstraints...)
	spec.Placement.Preferences = pick(f, fuzzPrefs...)
	spec.Placement.MaxReplicas = uint64(f.intn(4))
	spec.Resources.Reservations = Resources{NanoCPUs: int64(f.intn(3)) * 5e8, MemoryBytes: int64(f.intn(3)) << 29}
	if f.intn(3) == 0 {
		spec.Ports = []PortConfig{{TargetPort: 80, PublishedPort: uint32(8000 + f.intn(2)), PublishMode: PublishHost}}
	}
	if f.intn(2) == 0 {
		spec.UpdateConfig = &UpdateConfig{Parallelism: uint64(f.intn(3)), Order: pick(f, UpdateStopFirst, UpdateStartFirst),
			FailureAction: pick(f, UpdateActionPause, UpdateActionContinue, UpdateActionRollback), Delay: time.Duration(f.intn(3)) * time.Second}
	}
	spec.RestartPolicy.Condition = pick(f, "", RestartNone, RestartOnFailure, RestartAny)
	spec.RestartPolicy.MaxAttempts = uint64(f.intn(3))
	if f.intn(2) == 0 {
		b := f.intn(2) == 0
		spec.Rebalance = &b
	}
	return spec
}

// fuzzState builds a random state: nodes, services (valid or not) and
// tasks in any state on any node.
func fuzzState(f *fuzzBytes) *state {
	s := newState()
	s.index = 100
	// Counts first, so that short inputs have content too.
	nNodes, nSvcs, nTasks := f.intn(9), f.intn(5), f.intn(40)
	for _, nd := range fuzzNodes(f, nNodes) {
		s.nodes[nd.ID] = nd
	}
	var svcs []*Service
	for i := 0; i < nSvcs; i++ {
		spec := fuzzSpec(f, fmt.Sprintf("s%d", i))
		v := &Service{ID: fmt.Sprintf("svc%d", i), Spec: spec, SpecVersion: uint64(1 + f.intn(3)), Version: uint64(i + 1)}
		if f.intn(2) == 0 {
			prev := fuzzSpec(f, spec.Name)
			v.PreviousSpec = &prev
		}
		if f.intn(2) == 0 {
			v.UpdateStatus = &UpdateStatus{State: pick(f, UpdateUpdating, UpdatePaused, UpdateCompleted, UpdateRollbackStarted, UpdateRollbackPaused, UpdateRollbackCompleted)}
		}
		if spec.Mode.IsJob() {
			v.JobStatus = &JobStatus{JobIteration: v.SpecVersion}
		}
		s.services[v.ID] = v
		s.serviceByName[spec.Name] = v.ID
		svcs = append(svcs, v)
	}
	base := time.Unix(1_700_000_000, 0).UTC()
	for i := 0; i < nTasks; i++ {
		t := &Task{ID: fmt.Sprintf("t%d", i), Slot: uint64(f.intn(6)), SpecVersion: uint64(1 + f.intn(3)),
			DesiredState: pick(f, TaskRunning, TaskRunning, TaskReady, TaskShutdown, TaskRemove),
			Status:       TaskStatus{State: pick(f, fuzzStates...), Timestamp: base.Add(time.Duration(f.intn(20)) * time.Second)},
			CreatedAt:    base.Add(time.Duration(f.intn(20)) * time.Second)}
		if len(svcs) > 0 && f.intn(8) != 0 {
			v := svcs[f.intn(len(svcs))]
			t.ServiceID, t.ServiceName, t.Spec = v.ID, v.Spec.Name, v.Spec
		} else {
			t.ServiceID = "gone"
		}
		if f.intn(4) != 0 {
			t.NodeID = fmt.Sprintf("n%d", f.intn(10)) // n9 never exists
		}
		s.putTask(t, true)
	}
	return s
}

// FuzzOrchestratorPass: whatever the services, specs, nodes and task
// states, a reconcile pass neither panics nor produces tasks beyond the
// bounds, never touches a service whose spec breaks them, and its plan
// applies.
func FuzzOrchestratorPass(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{3, 0, 0, 0, 1, 1, 1, 1, 2, 2, 0, 0, 1, 5, 1, 3, 2, 2, 1, 0, 0, 1, 20, 3, 4, 1, 1, 7, 7, 7, 2, 0, 1})
	f.Add([]byte{8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 4, 0, 1, 255, 3, 3, 254, 9, 2, 2, 2, 1, 0, 30})
	f.Add(bytes.Repeat([]byte{7, 3, 1}, 60))
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 8; i++ {
		b := make([]byte, 600)
		rng.Read(b)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := fuzzState(&fuzzBytes{b: data})
		var log bytes.Buffer
		o := testOrchestrator(&log)
		before := panics.Load()
		for pass := 0; pass < 2; pass++ {
			p := &plan{now: time.Unix(1_700_000_030, 0).UTC(), watch: map[string]bool{}}
			o.reconcile(s, p)
			if panics.Load() != before {
				t.Fatalf("reconcile panicked:\n%s", log.String())
			}
			created := map[string]int{}
			for _, op := range p.ops {
				var sid, node string
				switch op.Op {
				case opCreate:
					sid, node = op.Task.ServiceID, op.Task.NodeID
					created[sid]++
				case opAssign:
					node = op.NodeID
					if tk := s.tasks[op.ID]; tk != nil {
						sid = tk.ServiceID
					}
				}
				if node != "" && s.nodes[node] == nil {
					t.Fatalf("task placed on unknown node %q", node)
				}
				if v := s.services[sid]; v != nil && op.Op != opDesired && op.Op != opDelete {
					spec := v.Spec
					spec.Mode = spec.Mode.normalized()
					if validateSpec(&spec) != nil {
						t.Fatalf("pass acted on service %s whose spec is invalid (%v)", v.Spec.Name, op.Op)
					}
				}
			}
			for sid, n := range created {
				v := s.services[sid]
				m := v.Spec.Mode.normalized()
				// One per slot or node it wants, plus a replacement for each
				// task it has (restarts, rolling updates).
				limit := int(max(m.Replicas, m.MaxConcurrent)) + len(s.nodes) + len(s.tasksByService[sid])
				if n > limit {
					t.Fatalf("service %s (%+v): %d tasks created in one pass, more than %d", v.Spec.Name, m, n, limit)
				}
			}
			// The plan applies (and the next pass sees its result).
			if len(p.ops) > 0 {
				s.index++
				if err := s.apply(&command{Type: cmdTasks, Ops: p.ops, Time: p.now}, s.index); err != nil {
					t.Fatalf("plan refused: %v", err)
				}
			}
			for _, c := range p.cmds {
				s.index++
				_ = s.apply(c, s.index) // a conflict is fine
			}
		}
	})
}

// FuzzSchedule: any nodes, occupying tasks and spec give a placement of
// the asked size on ready, active nodes that satisfy the constraints, the
// per-node cap, the reservations and the host ports.
func FuzzSchedule(f *testing.F) {
	f.Add([]byte{}, uint8(3))
	f.Add([]byte{5, 0, 0, 0, 1, 2, 1, 1, 0, 0, 1, 1, 0, 2, 0, 1, 1, 3, 2, 1, 2, 9}, uint8(10))
	f.Add(bytes.Repeat([]byte{1, 2, 3, 4}, 40), uint8(200))
	f.Fuzz(func(t *testing.T, data []byte, want uint8) {
		fb := &fuzzBytes{b: data}
		nodes := fuzzNodes(fb, fb.intn(9))
		spec := fuzzSpec(fb, "s")
		var occ []*Task
		for i := 0; i < fb.intn(30); i++ {
			tk := &Task{ID: fmt.Sprint("o", i), ServiceID: pick(fb, "s", "other"), NodeID: fmt.Sprintf("n%d", fb.intn(10))}
			if tk.ServiceID == "s" {
				tk.Spec = spec
			} else {
				tk.Spec = fuzzSpec(fb, "other")
			}
			occ = append(occ, tk)
		}
		if fb.intn(4) == 0 && len(nodes) > 0 {
			nodes = append(nodes, nodes[0]) // a duplicate ID
		}
		sched := newScheduler(nodes, occ)
		out, reason := sched.place("s", &spec, int(want))
		if len(out) != int(want) {
			t.Fatalf("place returned %d nodes for %d tasks", len(out), want)
		}
		byID := map[string]*NodeInfo{}
		for _, nd := range nodes {
			if byID[nd.ID] == nil {
				byID[nd.ID] = nd
			}
		}
		cons, cerr := parseConstraints(spec.Placement.Constraints)
		perNode := map[string]uint64{}
		cpu, mem := map[string]int64{}, map[string]int64{}
		ports := map[string]int{}
		hostPorts := len(newPlacementRequest(&spec).ports)
		for _, tk := range occ {
			if byID[tk.NodeID] == nil {
				continue
			}
			r := newPlacementRequest(&tk.Spec)
			cpu[tk.NodeID] += r.cpu
			mem[tk.NodeID] += r.mem
			if tk.ServiceID == "s" {
				perNode[tk.NodeID]++
				ports[tk.NodeID] += len(r.ports)
			}
		}
		unplaced := 0
		for _, id := range out {
			if id == "" {
				unplaced++
				continue
			}
			nd := byID[id]
			if nd == nil {
				t.Fatalf("placed on unknown node %q", id)
			}
			if cerr != nil {
				t.Fatalf("placed despite invalid constraints: %v", cerr)
			}
			if nd.State != NodeReady || nd.Availability != AvailabilityActive {
				t.Fatalf("placed on %s (%s, %s)", id, nd.State, nd.Availability)
			}
			for _, c := range cons {
				if !c.matches(nd) {
					t.Fatalf("placed on %s against a constraint", id)
				}
			}
			perNode[id]++
			if mr := spec.Placement.MaxReplicas; mr > 0 && perNode[id] > mr {
				t.Fatalf("node %s has %d tasks of the service, cap %d", id, perNode[id], mr)
			}
			r := spec.Resources.Reservations
			if r.NanoCPUs > 0 {
				if cpu[id]+r.NanoCPUs > nd.Resources.NanoCPUs {
					t.Fatalf("node %s: cpu reserved beyond capacity", id)
				}
				cpu[id] += r.NanoCPUs
			}
			if r.MemoryBytes > 0 {
				if mem[id]+r.MemoryBytes > nd.Resources.MemoryBytes {
					t.Fatalf("node %s: memory reserved beyond capacity", id)
				}
				mem[id] += r.MemoryBytes
			}
			if hostPorts > 0 && ports[id] > 0 {
				t.Fatalf("node %s: host port published twice", id)
			}
			ports[id] += hostPorts
		}
		if unplaced > 0 && reason == "" {
			t.Fatalf("%d tasks unplaced without a reason", unplaced)
		}
	})
}
