package swarm

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

func dumpFSM(f *fsm) string {
	var out []byte
	f.read(func(s *state) { out, _ = json.Marshal(s.export()) })
	return string(out)
}

// A command that breaks the API's bounds, proposed straight into the FSM
// (as an old version's log entry or a hostile peer would), is refused with
// ErrInvalidSpec and changes nothing, on every replay.
func TestFSMRefusesOutOfBoundsCommands(t *testing.T) {
	f := newFSM()
	now := time.Unix(1000, 0).UTC()
	require.NoError(t, applyCmd(t, f, 1, &command{Type: cmdClusterInit, Time: now, Cluster: &clusterRecord{ID: "c"}}))
	require.NoError(t, applyCmd(t, f, 2, &command{Type: cmdNodeUpsert, Time: now, Node: &NodeInfo{ID: "n1", Hostname: "h", Role: RoleManager}}))
	good := &Service{ID: "s1", SpecVersion: 1, Spec: ServiceSpec{Name: "web", Image: "nginx", Mode: Replicated(2)}}
	require.NoError(t, applyCmd(t, f, 3, &command{Type: cmdServiceCreate, Time: now, Service: good}))

	huge := func(mode ServiceMode) *Service {
		return &Service{ID: "s2", SpecVersion: 1, Spec: ServiceSpec{Name: "boom", Image: "nginx", Mode: mode}}
	}
	scaled := *good
	scaled.Spec.Mode = Replicated(1 << 62)
	badImage := *good
	badImage.Spec.Image = "nginx\nrm -rf /"
	bad := []*command{
		{Type: cmdServiceCreate, Service: huge(Replicated(1 << 62))},
		{Type: cmdServiceCreate, Service: huge(ReplicatedJob(1<<62, 1<<62))},
		{Type: cmdServiceUpdate, Service: &scaled},
		{Type: cmdServiceUpdate, Service: &badImage},
		{Type: cmdNodeSpec, ID: "n1", Node: &NodeInfo{Labels: map[string]string{"k": strings.Repeat("v", 4<<20)}}},
		{Type: cmdNodeUpsert, Node: &NodeInfo{ID: "n2", Hostname: strings.Repeat("h", 5000)}},
		{Type: cmdConfigCreate, Config: &ConfigObject{ID: "c1", Spec: ConfigSpec{Name: "c\n", Data: []byte("x")}}},
		{Type: cmdSecretUpdate, ID: "x", Labels: map[string]string{"": "x"}},
	}
	before := dumpFSM(f)
	for i, c := range bad {
		c.Time = now
		for replay := 0; replay < 2; replay++ {
			err := applyCmd(t, f, uint64(10+i), c)
			require.ErrorIs(t, err, ErrInvalidSpec, "command %d (%s)", i, c.Type)
		}
	}
	// Only the applied index moved.
	f.read(func(s *state) { s.index = 3 })
	require.Equal(t, before, dumpFSM(f))
	f.read(func(s *state) {
		require.Len(t, s.services, 1)
		require.Equal(t, uint64(2), s.services["s1"].Spec.Mode.Replicas)
	})
}

// testOrchestrator returns an orchestrator that is not attached to a
// running node, for driving reconcile passes directly; log receives what
// its guards log.
func testOrchestrator(log *bytes.Buffer) *orchestrator {
	cfg := DefaultLocalConfig().withDefaults()
	n := &Node{cfg: cfg, log: hclog.New(&hclog.LoggerOptions{Output: log, Level: hclog.Error})}
	return newOrchestrator(n)
}

// A service whose stored spec breaks the bounds (restored from an old
// snapshot) is left alone and its UpdateStatus says why; the others are
// reconciled.
func TestOrchestratorSkipsInvalidStoredSpec(t *testing.T) {
	s := newState()
	s.nodes["n1"] = &NodeInfo{ID: "n1", Role: RoleWorker, State: NodeReady, Availability: AvailabilityActive}
	s.services["bad"] = &Service{ID: "bad", SpecVersion: 1, Spec: ServiceSpec{Name: "bad", Image: "x", Mode: Replicated(1 << 62)}}
	s.services["ok"] = &Service{ID: "ok", SpecVersion: 1, Spec: ServiceSpec{Name: "ok", Image: "x", Mode: Replicated(3)}}
	var log bytes.Buffer
	o := testOrchestrator(&log)
	p := &plan{now: time.Now(), watch: map[string]bool{}}
	o.reconcile(s, p)
	creates := 0
	for _, op := range p.ops {
		require.NotEqual(t, "bad", op.Task.ServiceID)
		creates++
	}
	require.Equal(t, 3, creates)
	require.Len(t, p.cmds, 1)
	require.Equal(t, "bad", p.cmds[0].ID)
	require.Equal(t, UpdatePaused, p.cmds[0].Service.UpdateStatus.State)
	require.Contains(t, p.cmds[0].Service.UpdateStatus.Message, "mode.replicas")
}

// A panic in one service's reconcile is recovered and shown on that
// service; another service still converges, and the node stays up.
func TestReconcilePanicIsContained(t *testing.T) {
	hook := func(svc *Service) {
		if svc.Spec.Name == "boom" {
			var m map[string]int
			m["x"]++ // a nil map write: a real runtime panic
		}
	}
	reconcileHook.Store(&hook)
	t.Cleanup(func() { reconcileHook.Store(nil) })
	before := panics.Load()

	cfg := DefaultLocalConfig()
	cfg.Runtime = NewInmemRuntime()
	n := NewNode(cfg)
	require.NoError(t, n.Init())
	t.Cleanup(func() { n.Shutdown() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	_, err := n.CreateService(ctx, ServiceSpec{Name: "boom", Image: "x", Mode: Replicated(2)})
	require.NoError(t, err)
	_, err = n.CreateService(ctx, ServiceSpec{Name: "ok", Image: "x", Mode: Replicated(3)})
	require.NoError(t, err)
	require.NoError(t, n.WaitConverged(ctx, "ok"))
	require.Eventually(t, func() bool {
		svc, err := n.Service(ctx, "boom")
		return err == nil && svc.UpdateStatus != nil && strings.HasPrefix(svc.UpdateStatus.Message, msgReconcilePanic)
	}, 10*time.Second, 10*time.Millisecond)
	svc, err := n.Service(ctx, "boom")
	require.NoError(t, err)
	require.Equal(t, UpdatePaused, svc.UpdateStatus.State)
	require.Contains(t, svc.UpdateStatus.Message, "assignment to entry in nil map")
	tasks, err := n.Tasks(ctx, TaskFilter{Service: "boom"})
	require.NoError(t, err)
	require.Empty(t, tasks, "nothing of the failed pass was written")
	require.Greater(t, panics.Load(), before)

	// The swarm keeps converging: a scale and a new service.
	require.NoError(t, n.ScaleService(ctx, "ok", 5))
	require.NoError(t, n.WaitConverged(ctx, "ok"))
	_, err = n.CreateService(ctx, ServiceSpec{Name: "later", Image: "x", Mode: Replicated(2)})
	require.NoError(t, err)
	require.NoError(t, n.WaitConverged(ctx, "later"))
	require.True(t, n.IsLeader())

	// Once the bug is gone, the service converges too.
	reconcileHook.Store(nil)
	require.NoError(t, n.ScaleService(ctx, "boom", 1))
	require.NoError(t, n.WaitConverged(ctx, "boom"))
}

// bigSpecState is a state with one service of a spec with a 100 KiB label
// and 1,000 tasks created by Apply, as the orchestrator creates them.
func bigSpecState(t testing.TB) (*fsm, int) {
	f := newFSM()
	now := time.Unix(1000, 0).UTC()
	spec := ServiceSpec{Name: "big", Image: "nginx", Mode: Replicated(1000),
		Labels: map[string]string{"blob": strings.Repeat("x", 100<<10)}}
	specBytes, _ := json.Marshal(spec)
	data, err := encodeCommand(&command{Type: cmdServiceCreate, Time: now, Service: &Service{ID: "s1", SpecVersion: 1, Spec: spec}})
	require.NoError(t, err)
	require.Nil(t, f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: data}))
	ops := make([]taskOp, 0, 1000)
	for i := 0; i < 1000; i++ {
		ops = append(ops, taskOp{Op: opCreate, FromService: true, Task: &Task{ID: "t" + uitoa(uint64(i)), ServiceID: "s1",
			ServiceName: "big", Slot: uint64(i + 1), SpecVersion: 1, DesiredState: TaskRunning, Status: TaskStatus{State: TaskNew}}})
	}
	data, err = encodeCommand(&command{Type: cmdTasks, Time: now, Ops: ops})
	require.NoError(t, err)
	require.Less(t, len(data), 1<<20, "the log entry carries no spec")
	require.Nil(t, f.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: data}))
	return f, len(specBytes)
}

func persist(t testing.TB, f *fsm) *memSink {
	snap, err := f.Snapshot()
	require.NoError(t, err)
	sink := &memSink{}
	require.NoError(t, snap.Persist(sink))
	return sink
}

// A snapshot grows with the number of tasks, not tasks x spec size; its
// restore gives every task its spec back, shared.
func TestSnapshotStoresEachSpecOnce(t *testing.T) {
	f, specSize := bigSpecState(t)
	sink := persist(t, f)
	// Format 0 wrote the spec with every task: over 1,000 x 100 KiB.
	require.Less(t, len(sink.buf), 10*specSize, "snapshot of 1,000 tasks is %d bytes for a %d-byte spec", len(sink.buf), specSize)
	t.Logf("snapshot: %d bytes for 1,000 tasks of a %d-byte spec", len(sink.buf), specSize)

	g := newFSM()
	require.NoError(t, g.Restore(sink))
	require.Equal(t, dumpFSM(f), dumpFSM(g))
	g.read(func(s *state) {
		require.Len(t, s.tasks, 1000)
		var first uintptr
		for _, tk := range s.tasks {
			require.Len(t, tk.Spec.Labels["blob"], 100<<10)
			p := reflect.ValueOf(tk.Spec.Labels).Pointer()
			if first == 0 {
				first = p
			}
			require.Equal(t, first, p, "the tasks share one spec in memory")
		}
	})
}

// A snapshot written before specs were stored once (format 0: the spec in
// every task) still restores.
func TestSnapshotRestoresOldFormat(t *testing.T) {
	f, specSize := bigSpecState(t)
	var old bytes.Buffer
	f.read(func(s *state) { require.NoError(t, json.NewEncoder(&old).Encode(s.export())) })
	require.Greater(t, old.Len(), 1000*specSize, "format 0 stores the spec per task")
	g := newFSM()
	require.NoError(t, g.Restore(&memSink{buf: old.Bytes()}))
	require.Equal(t, dumpFSM(f), dumpFSM(g))
	// And a snapshot of the restored state is small again.
	require.Less(t, len(persist(t, g).buf), 10*specSize)
}

// The bounds leave room for their own limits.
func TestValidateAcceptsTheLimits(t *testing.T) {
	spec := ServiceSpec{Name: "x", Image: "nginx", Mode: Replicated(MaxReplicas)}
	require.NoError(t, validateSpec(&spec))
	spec.Mode = ReplicatedJob(MaxReplicas, MaxReplicas)
	require.NoError(t, validateSpec(&spec))
	spec.Mode = Replicated(MaxReplicas + 1)
	require.ErrorIs(t, validateSpec(&spec), ErrInvalidSpec)
}
