package swarm_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const waitFor = 15 * time.Second

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// running returns the service's tasks that want to run and do, by node ID.
func running(t *testing.T, n *swarm.Node, svc string) map[string]int {
	t.Helper()
	tasks, err := n.Tasks(context.Background(), swarm.TaskFilter{Service: svc, DesiredState: swarm.TaskRunning})
	require.NoError(t, err)
	out := map[string]int{}
	for _, tk := range tasks {
		if tk.Status.State == swarm.TaskRunning {
			out[tk.NodeID]++
		}
	}
	return out
}

func total(m map[string]int) int {
	s := 0
	for _, v := range m {
		s += v
	}
	return s
}

func nodeState(t *testing.T, n *swarm.Node, id string) swarm.NodeState {
	t.Helper()
	info, err := n.Node(context.Background(), id)
	require.NoError(t, err)
	return info.State
}

func TestClusterSpreadsReplicas(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 3, Workers: 2})
	ctx := ctxT(t)
	leader := c.Leader()
	svc, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx", Mode: swarm.Replicated(6)})
	require.NoError(t, err)
	require.Regexp(t, regexp.MustCompile(`^[0-9a-z]{25}$`), svc.ID)
	require.NoError(t, leader.WaitConverged(ctx, svc.ID))
	per := running(t, leader, "web")
	require.Equal(t, 6, total(per))
	for node, k := range per {
		require.LessOrEqual(t, k, 2, "node %s runs %d replicas", node, k)
	}
	// Slots are 1..6, one live task each.
	tasks, err := leader.Tasks(ctx, swarm.TaskFilter{Service: "web"})
	require.NoError(t, err)
	slots := map[uint64]bool{}
	for _, tk := range tasks {
		slots[tk.Slot] = true
	}
	require.Len(t, slots, 6)
	for s := uint64(1); s <= 6; s++ {
		require.True(t, slots[s], "slot %d", s)
	}
	nodes, err := leader.Nodes(ctx)
	require.NoError(t, err)
	require.Len(t, nodes, 5)
	leaders := 0
	for _, nd := range nodes {
		require.Equal(t, swarm.NodeReady, nd.State, nd.Hostname)
		if nd.Leader {
			leaders++
		}
	}
	require.Equal(t, 1, leaders)
	// Every manager serves reads of the same state.
	for _, m := range c.Managers() {
		got, err := m.Service(ctx, "web")
		require.NoError(t, err)
		require.Equal(t, svc.ID, got.ID)
	}
}

func TestWorkerCrashReplacesTasks(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 3, Workers: 2})
	ctx := ctxT(t)
	leader := c.Leader()
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx", Mode: swarm.Replicated(6)})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "web"))

	victim := c.Node(3) // worker-1
	victimID := victim.ID()
	require.NotZero(t, running(t, leader, "web")[victimID], "the worker should run some replicas")
	c.Crash(3)

	require.Eventually(t, func() bool { return nodeState(t, leader, victimID) == swarm.NodeDown }, waitFor, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		per := running(t, leader, "web")
		return total(per) == 6 && per[victimID] == 0
	}, waitFor, 10*time.Millisecond)
	require.NoError(t, leader.WaitConverged(ctx, "web"))
}

func TestLeaderCrashFailover(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 3, Workers: 1})
	ctx := ctxT(t)
	old := c.Leader()
	_, err := old.CreateService(ctx, swarm.ServiceSpec{Name: "api", Image: "nginx", Mode: swarm.Replicated(2)})
	require.NoError(t, err)
	require.NoError(t, old.WaitConverged(ctx, "api"))

	old.Shutdown()
	var other *swarm.Node
	for _, m := range c.Managers() {
		if m != old {
			other = m
			break
		}
	}
	require.NotNil(t, other)
	// A write sent to any surviving manager succeeds once a new leader is elected.
	require.NoError(t, other.ScaleService(ctx, "api", 4))
	newLeader := c.Leader()
	require.NotEqual(t, old.ID(), newLeader.ID())
	require.NoError(t, newLeader.WaitConverged(ctx, "api"))
	svc, err := newLeader.Service(ctx, "api")
	require.NoError(t, err)
	require.Equal(t, uint64(4), svc.Spec.Mode.Replicas)
	require.Eventually(t, func() bool { return nodeState(t, newLeader, old.ID()) == swarm.NodeDown }, waitFor, 10*time.Millisecond)
}

func TestWriteOnFollowerIsForwarded(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 3})
	ctx := ctxT(t)
	leader := c.Leader()
	var follower *swarm.Node
	for _, m := range c.Managers() {
		if m != leader {
			follower = m
		}
	}
	svc, err := follower.CreateService(ctx, swarm.ServiceSpec{Name: "fwd", Image: "nginx"})
	require.NoError(t, err)
	// Read-your-writes on the follower and the leader.
	got, err := follower.Service(ctx, svc.ID)
	require.NoError(t, err)
	require.Equal(t, uint64(1), got.Spec.Mode.Replicas)
	_, err = leader.Service(ctx, "fwd")
	require.NoError(t, err)
	require.NoError(t, follower.WaitConverged(ctx, "fwd"))
}

func TestManagerRestartKeepsState(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 3, Persistent: true})
	ctx := ctxT(t)
	leader := c.Leader()
	for i := 0; i < 3; i++ {
		_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: fmt.Sprintf("svc%d", i), Image: "nginx"})
		require.NoError(t, err)
	}
	idx := 1
	if c.Node(1) == leader {
		idx = 2
	}
	oldID := c.Node(idx).ID()
	c.Crash(idx)
	// A write while it is down must reach it after the restart too.
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "while-down", Image: "nginx"})
	require.NoError(t, err)
	n := c.Restart(idx)
	require.Equal(t, oldID, n.ID(), "the node keeps its identity")
	require.Eventually(t, func() bool {
		svcs, err := n.Services(ctx)
		return err == nil && len(svcs) == 4
	}, waitFor, 10*time.Millisecond)
	require.Eventually(t, func() bool { return nodeState(t, leader, oldID) == swarm.NodeReady }, waitFor, 10*time.Millisecond)
	// It is a voter again: with another manager down, the two left still have a quorum.
	var third int
	for i := 0; i < 3; i++ {
		if i != idx && c.Node(i) != leader {
			third = i
		}
	}
	c.Crash(third)
	require.NoError(t, n.ScaleService(ctx, "svc0", 2))
}

func TestWorkerRestartAdoptsContainers(t *testing.T) {
	rt := swarm.NewInmemRuntime()
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Workers: 1, Persistent: true,
		Runtime: func(string) swarm.Runtime { return rt }})
	ctx := ctxT(t)
	leader := c.Leader()
	// Keep the replicas on the worker.
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "w", Image: "nginx", Mode: swarm.Replicated(3),
		Placement: swarm.Placement{Constraints: []string{"node.role==worker"}}})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "w"))
	created := rt.Created()
	workerID := c.Node(1).ID()
	require.Equal(t, 3, rt.Running(workerID))

	c.Restart(1)
	require.NoError(t, leader.WaitConverged(ctx, "w"))
	require.Equal(t, created, rt.Created(), "a quick restart re-adopts the containers instead of creating new ones")
	require.Equal(t, 3, rt.Running(workerID))
	require.Len(t, rt.Containers(), 3)
}

func TestWorkerBackAfterDownStopsStaleContainers(t *testing.T) {
	rt := swarm.NewInmemRuntime()
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Workers: 2, Persistent: true,
		Runtime: func(string) swarm.Runtime { return rt }})
	ctx := ctxT(t)
	leader := c.Leader()
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "w", Image: "nginx", Mode: swarm.Replicated(4),
		Placement: swarm.Placement{Constraints: []string{"node.role==worker"}}})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "w"))
	workerID := c.Node(1).ID()
	c.Crash(1)
	require.Eventually(t, func() bool {
		per := running(t, leader, "w")
		return total(per) == 4 && per[workerID] == 0
	}, waitFor, 10*time.Millisecond)
	// Its containers still "run" on the host, as after a daemon crash.
	require.Equal(t, 2, rt.Running(workerID))
	c.Restart(1)
	require.Eventually(t, func() bool { return rt.Running(workerID) == 0 }, waitFor, 10*time.Millisecond)
	require.NoError(t, leader.WaitConverged(ctx, "w"))
	require.Equal(t, 4, rt.Running(""))
}

func TestGlobalServiceOnLateNode(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Workers: 1})
	ctx := ctxT(t)
	leader := c.Leader()
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "agent", Image: "nginx", Mode: swarm.Global()})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "agent"))
	require.Len(t, running(t, leader, "agent"), 2)

	i := c.AddNode(swarm.RoleWorker)
	late := c.Node(i).ID()
	require.Eventually(t, func() bool { return running(t, leader, "agent")[late] == 1 }, waitFor, 10*time.Millisecond)
	require.NoError(t, leader.WaitConverged(ctx, "agent"))
	per := running(t, leader, "agent")
	require.Len(t, per, 3)
	for _, k := range per {
		require.Equal(t, 1, k)
	}
}

func TestDrainMovesTasks(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Workers: 2})
	ctx := ctxT(t)
	leader := c.Leader()
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx", Mode: swarm.Replicated(6)})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "web"))
	w := c.Node(1).ID()
	require.NotZero(t, running(t, leader, "web")[w])

	require.NoError(t, leader.UpdateNode(ctx, w, 0, swarm.NodeUpdate{Availability: swarm.AvailabilityDrain}))
	require.Eventually(t, func() bool {
		per := running(t, leader, "web")
		return per[w] == 0 && total(per) == 6
	}, waitFor, 10*time.Millisecond)
	require.NoError(t, leader.WaitConverged(ctx, "web"))
	rt := c.Runtime(1).(*swarm.InmemRuntime)
	require.Eventually(t, func() bool { return rt.Running(w) == 0 }, waitFor, 10*time.Millisecond)

	// Pause keeps tasks but takes no new ones.
	require.NoError(t, leader.UpdateNode(ctx, w, 0, swarm.NodeUpdate{Availability: swarm.AvailabilityPause}))
	require.NoError(t, leader.ScaleService(ctx, "web", 9))
	require.NoError(t, leader.WaitConverged(ctx, "web"))
	require.Zero(t, running(t, leader, "web")[w])
}

func TestFailedTaskRestartsInSameSlot(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1})
	ctx := ctxT(t)
	leader := c.Leader()
	delay := 50 * time.Millisecond
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "crashy", Image: "nginx",
		RestartPolicy: swarm.RestartPolicy{Delay: &delay}})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "crashy"))
	tasks, err := leader.Tasks(ctx, swarm.TaskFilter{Service: "crashy"})
	require.NoError(t, err)
	require.Len(t, tasks, 1)
	first := tasks[0]

	rt := c.Runtime(0).(*swarm.InmemRuntime)
	require.NoError(t, rt.CrashTask(first.ID, 2))
	require.Eventually(t, func() bool {
		ts, err := leader.Tasks(ctx, swarm.TaskFilter{Service: "crashy"})
		require.NoError(t, err)
		if len(ts) != 2 {
			return false
		}
		var old, repl swarm.Task
		for _, tk := range ts {
			if tk.ID == first.ID {
				old = tk
			} else {
				repl = tk
			}
		}
		return old.Status.State == swarm.TaskFailed && old.DesiredState == swarm.TaskShutdown &&
			old.Status.ExitCode == 2 && repl.Slot == first.Slot && repl.Status.State == swarm.TaskRunning
	}, waitFor, 10*time.Millisecond)

	// Restart condition none: a task that exits is not replaced.
	none := swarm.RestartPolicy{Condition: swarm.RestartNone}
	_, err = leader.CreateService(ctx, swarm.ServiceSpec{Name: "once", Image: "inmem/exit:0", RestartPolicy: none})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		ts, err := leader.Tasks(ctx, swarm.TaskFilter{Service: "once"})
		require.NoError(t, err)
		return len(ts) == 1 && ts[0].Status.State == swarm.TaskComplete
	}, waitFor, 10*time.Millisecond)
}

func TestTaskHistoryIsReaped(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1})
	ctx := ctxT(t)
	leader := c.Leader()
	delay := time.Millisecond
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "flap", Image: "inmem/exit:1",
		RestartPolicy: swarm.RestartPolicy{Delay: &delay}})
	require.NoError(t, err)
	// Each task fails at once and is replaced; history stays at 5 ended tasks + 1 live.
	require.Eventually(t, func() bool {
		ts, err := leader.Tasks(ctx, swarm.TaskFilter{Service: "flap"})
		require.NoError(t, err)
		failed := 0
		for _, tk := range ts {
			if tk.Status.State == swarm.TaskFailed && tk.DesiredState == swarm.TaskShutdown {
				failed++
			}
		}
		return failed >= 5
	}, waitFor, 10*time.Millisecond)
	for i := 0; i < 20; i++ {
		ts, err := leader.Tasks(ctx, swarm.TaskFilter{Service: "flap"})
		require.NoError(t, err)
		require.LessOrEqual(t, len(ts), 7, "history is bounded")
	}
}

func TestReservationsKeepTasksPending(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Workers: 2})
	ctx := ctxT(t)
	leader := c.Leader()
	// Each InmemRuntime reports 8 GiB.
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "big", Image: "nginx", Mode: swarm.Replicated(4),
		Resources: swarm.ResourceRequirements{Reservations: swarm.Resources{MemoryBytes: 5 << 30}}})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return total(running(t, leader, "big")) == 3 }, waitFor, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		ts, err := leader.Tasks(ctx, swarm.TaskFilter{Service: "big", DesiredState: swarm.TaskRunning})
		require.NoError(t, err)
		for _, tk := range ts {
			if tk.Status.State == swarm.TaskPending {
				return tk.Status.Message == "no suitable node (insufficient memory on 3 nodes)"
			}
		}
		return false
	}, waitFor, 10*time.Millisecond)
	// A node that joins with room takes the pending task.
	c.AddNode(swarm.RoleWorker)
	require.NoError(t, leader.WaitConverged(ctx, "big"))
}

func TestConstraints(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Workers: 2,
		Config: func(host string, cfg *swarm.Config) {
			if host == "worker-2" {
				cfg.Labels = map[string]string{"disk": "ssd"}
			}
		}})
	ctx := ctxT(t)
	leader := c.Leader()
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "db", Image: "postgres", Mode: swarm.Replicated(3),
		Placement: swarm.Placement{Constraints: []string{"engine.labels.disk==ssd"}}})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "db"))
	require.Equal(t, map[string]int{c.Node(2).ID(): 3}, running(t, leader, "db"))

	_, err = leader.CreateService(ctx, swarm.ServiceSpec{Name: "mgr", Image: "nginx", Mode: swarm.Global(),
		Placement: swarm.Placement{Constraints: []string{"node.role==manager"}}})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "mgr"))
	require.Equal(t, map[string]int{leader.ID(): 1}, running(t, leader, "mgr"))
}

func TestLeaveReschedulesAtOnce(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 3, Workers: 2})
	ctx := ctxT(t)
	leader := c.Leader()
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx", Mode: swarm.Replicated(5)})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "web"))
	w := c.Node(3)
	wid := w.ID()
	rt := c.Runtime(3).(*swarm.InmemRuntime)
	require.NoError(t, w.Leave())
	require.Equal(t, 0, rt.Running(wid), "a leaving node stops its containers")
	info, err := leader.Node(ctx, wid)
	require.NoError(t, err)
	require.Equal(t, swarm.NodeDown, info.State, "the leader marks it down before Leave returns")
	require.NoError(t, leader.WaitConverged(ctx, "web"))
	require.ErrorIs(t, w.Leave(), swarm.ErrShutdown)

	// A manager that leaves is no longer a Raft voter: two managers remain,
	// and losing one of them leaves no quorum... so check the count instead.
	var m *swarm.Node
	for _, x := range c.Managers() {
		if x != leader {
			m = x
			break
		}
	}
	require.NoError(t, m.Leave())
	info2, err := leader.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, info2.Managers, "the node record stays (down) until removed")
	_, err = leader.CreateService(ctx, swarm.ServiceSpec{Name: "after", Image: "nginx"})
	require.NoError(t, err, "the remaining managers still have a quorum")
}

func TestJoinTokens(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1})
	leader := c.Leader()
	wt, err := leader.JoinToken(swarm.RoleWorker)
	require.NoError(t, err)
	mt, err := leader.JoinToken(swarm.RoleManager)
	require.NoError(t, err)
	re := regexp.MustCompile(`^SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$`)
	require.Regexp(t, re, wt)
	require.Regexp(t, re, mt)
	require.NotEqual(t, wt, mt)
	require.Equal(t, wt[:59], mt[:59], "both tokens carry the same swarm digest")

	bad := []string{
		"",
		"garbage",
		wt[:len(wt)-1] + otherChar(wt[len(wt)-1]),      // wrong secret
		"SWMTKN-1-" + stringsRepeat("a", 50) + wt[59:], // wrong swarm
		"SWMTKN-1-abc-def",                             // malformed
	}
	for _, tok := range bad {
		cfg := swarm.DefaultLocalConfig()
		cfg.Hostname = "intruder"
		cfg.JoinToken = tok
		n := swarm.NewNode(cfg)
		err := n.Join(leader.Addr())
		require.ErrorIs(t, err, swarm.ErrInvalidToken, "token %q", tok)
		n.Shutdown()
	}
	nodes, err := leader.Nodes(context.Background())
	require.NoError(t, err)
	require.Len(t, nodes, 1, "no intruder was admitted")
	// Workers do not know the tokens.
	i := c.AddNode(swarm.RoleWorker)
	_, err = c.Node(i).JoinToken(swarm.RoleWorker)
	require.ErrorIs(t, err, swarm.ErrNotManager)
}

func otherChar(c byte) string {
	if c == 'x' {
		return "y"
	}
	return "x"
}

func stringsRepeat(s string, n int) string {
	out := ""
	for i := 0; i < n; i++ {
		out += s
	}
	return out
}

func TestBadInput(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Workers: 1})
	ctx := ctxT(t)
	leader := c.Leader()
	cases := []struct {
		name string
		spec swarm.ServiceSpec
		want error
		msg  string
	}{
		{"empty image", swarm.ServiceSpec{Name: "x"}, swarm.ErrInvalidSpec, "image is empty"},
		{"empty name", swarm.ServiceSpec{Image: "nginx"}, swarm.ErrInvalidSpec, "name is empty"},
		{"bad name", swarm.ServiceSpec{Name: "no spaces", Image: "nginx"}, swarm.ErrInvalidSpec, "no spaces"},
		{"bad constraint", swarm.ServiceSpec{Name: "x", Image: "nginx",
			Placement: swarm.Placement{Constraints: []string{"node.foo==bar"}}}, swarm.ErrInvalidSpec, "node.foo"},
		{"constraint operator", swarm.ServiceSpec{Name: "x", Image: "nginx",
			Placement: swarm.Placement{Constraints: []string{"node.role=manager"}}}, swarm.ErrInvalidSpec, "node.role=manager"},
		{"bad ulimit", swarm.ServiceSpec{Name: "x", Image: "nginx",
			Ulimits: []swarm.Ulimit{{Name: "nofiles", Soft: 1, Hard: 2}}}, swarm.ErrInvalidSpec, "nofiles"},
		{"bad mount", swarm.ServiceSpec{Name: "x", Image: "nginx",
			Mounts: []swarm.Mount{{Type: "nfs", Target: "/x"}}}, swarm.ErrInvalidSpec, "nfs"},
		{"bad restart", swarm.ServiceSpec{Name: "x", Image: "nginx",
			RestartPolicy: swarm.RestartPolicy{Condition: "sometimes"}}, swarm.ErrInvalidSpec, "sometimes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := leader.CreateService(ctx, tc.spec)
			require.ErrorIs(t, err, tc.want)
			require.Contains(t, err.Error(), tc.msg)
		})
	}
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "dup", Image: "nginx"})
	require.NoError(t, err)
	_, err = leader.CreateService(ctx, swarm.ServiceSpec{Name: "dup", Image: "nginx"})
	require.ErrorIs(t, err, swarm.ErrNameConflict)

	_, err = leader.Service(ctx, "nope")
	require.ErrorIs(t, err, swarm.ErrNotFound)
	require.ErrorIs(t, leader.ScaleService(ctx, "nope", 3), swarm.ErrNotFound)
	require.ErrorIs(t, leader.RemoveService(ctx, "nope"), swarm.ErrNotFound)
	_, err = leader.Tasks(ctx, swarm.TaskFilter{Service: "nope"})
	require.ErrorIs(t, err, swarm.ErrNotFound)
	require.ErrorIs(t, leader.UpdateNode(ctx, "nope", 0, swarm.NodeUpdate{}), swarm.ErrNotFound)
	require.ErrorIs(t, leader.UpdateNode(ctx, leader.ID(), 0, swarm.NodeUpdate{Availability: "sleepy"}), swarm.ErrInvalidSpec)

	svcs, err := leader.Services(ctx)
	require.NoError(t, err)
	require.Len(t, svcs, 1, "failed creates left nothing behind")

	// A worker is not a manager.
	_, err = c.Node(1).Services(ctx)
	require.ErrorIs(t, err, swarm.ErrNotManager)
	_, err = c.Node(1).CreateService(ctx, swarm.ServiceSpec{Name: "w", Image: "nginx"})
	require.ErrorIs(t, err, swarm.ErrNotManager)

	// Misuse of the lifecycle.
	require.ErrorIs(t, leader.Init(), swarm.ErrAlreadyInSwarm)
	fresh := swarm.NewNode(swarm.DefaultLocalConfig())
	_, err = fresh.Services(ctx)
	require.ErrorIs(t, err, swarm.ErrNotInSwarm)
	require.NoError(t, fresh.Shutdown())
	require.NoError(t, fresh.Shutdown(), "Shutdown is idempotent")
	require.ErrorIs(t, fresh.Init(), swarm.ErrShutdown)
	bad := swarm.DefaultLocalConfig()
	bad.ListenAddr = "nonsense"
	require.ErrorIs(t, swarm.NewNode(bad).Init(), swarm.ErrInvalidSpec)
}

func TestReferencesResolveLikeSwarm(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1})
	ctx := ctxT(t)
	leader := c.Leader()
	a, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "alpha", Image: "nginx"})
	require.NoError(t, err)
	for _, ref := range []string{a.ID, "alpha", a.ID[:6]} {
		got, err := leader.Service(ctx, ref)
		require.NoError(t, err, ref)
		require.Equal(t, a.ID, got.ID)
	}
	nd, err := leader.Node(ctx, "manager-1")
	require.NoError(t, err)
	require.Equal(t, leader.ID(), nd.ID)
	nd, err = leader.Node(ctx, leader.ID()[:5])
	require.NoError(t, err)
	require.Equal(t, leader.ID(), nd.ID)
	// An empty prefix is no reference at all.
	_, err = leader.Service(ctx, "")
	require.ErrorIs(t, err, swarm.ErrInvalidSpec)
}

func TestUpdateServiceReplacesTasksOnlyOnSpecChange(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Workers: 1})
	ctx := ctxT(t)
	leader := c.Leader()
	svc, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "u", Image: "nginx:1", Mode: swarm.Replicated(2)})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "u"))
	ids := func() map[string]bool {
		ts, err := leader.Tasks(ctx, swarm.TaskFilter{Service: "u", DesiredState: swarm.TaskRunning})
		require.NoError(t, err)
		m := map[string]bool{}
		for _, tk := range ts {
			m[tk.ID] = true
		}
		return m
	}
	before := ids()

	// Labels only: same tasks.
	spec := svc.Spec
	spec.Labels = map[string]string{"team": "a"}
	require.NoError(t, leader.UpdateService(ctx, "u", svc.Version, spec))
	require.NoError(t, leader.WaitConverged(ctx, "u"))
	require.Equal(t, before, ids())

	// A stale version is refused.
	err = leader.UpdateService(ctx, "u", svc.Version, spec)
	require.ErrorIs(t, err, swarm.ErrVersionConflict)

	// Image change: new tasks running the new image.
	cur, err := leader.Service(ctx, "u")
	require.NoError(t, err)
	spec = cur.Spec
	spec.Image = "nginx:2"
	require.NoError(t, leader.UpdateService(ctx, "u", cur.Version, spec))
	require.NoError(t, leader.WaitConverged(ctx, "u"))
	after := ids()
	require.Len(t, after, 2)
	for id := range after {
		require.False(t, before[id], "task %s should have been replaced", id)
	}
	ts, err := leader.Tasks(ctx, swarm.TaskFilter{Service: "u", DesiredState: swarm.TaskRunning})
	require.NoError(t, err)
	for _, tk := range ts {
		require.Equal(t, "nginx:2", tk.Spec.Image)
	}
}

func TestScaleDownAndRemoveLeaveNothing(t *testing.T) {
	rt := swarm.NewInmemRuntime()
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Workers: 1,
		Runtime: func(string) swarm.Runtime { return rt }})
	ctx := ctxT(t)
	leader := c.Leader()
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "s", Image: "nginx", Mode: swarm.Replicated(4)})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "s"))
	require.Equal(t, 4, rt.Running(""))
	require.NoError(t, leader.ScaleService(ctx, "s", 1))
	require.NoError(t, leader.WaitConverged(ctx, "s"))
	require.Eventually(t, func() bool { return len(rt.Containers()) == 1 }, waitFor, 10*time.Millisecond)
	require.NoError(t, leader.RemoveService(ctx, "s"))
	require.Eventually(t, func() bool {
		ts, err := leader.Tasks(ctx, swarm.TaskFilter{})
		require.NoError(t, err)
		return len(ts) == 0 && len(rt.Containers()) == 0
	}, waitFor, 10*time.Millisecond)
	err = leader.WaitConverged(ctx, "s")
	require.ErrorIs(t, err, swarm.ErrNotFound)
}

func TestErrorsAreWrapped(t *testing.T) {
	// Errors crossing a node boundary keep their sentinel.
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 2})
	ctx := ctxT(t)
	leader := c.Leader()
	var follower *swarm.Node
	for _, m := range c.Managers() {
		if m != leader {
			follower = m
		}
	}
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "dup", Image: "nginx"})
	require.NoError(t, err)
	_, err = follower.CreateService(ctx, swarm.ServiceSpec{Name: "dup", Image: "nginx"})
	require.ErrorIs(t, err, swarm.ErrNameConflict)
	assert.True(t, errors.Is(err, swarm.ErrNameConflict))
	assert.Contains(t, err.Error(), `"dup"`)
}
