package swarm_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// skewedClocks gives every node a wall clock offset from the real one,
// by hostname, that the test can step while the node runs.
type skewedClocks struct {
	mu  sync.Mutex
	off map[string]time.Duration
}

func (s *skewedClocks) set(host string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.off[host] = d
}

func (s *skewedClocks) clock(host string) func() time.Time {
	return func() time.Time {
		s.mu.Lock()
		d := s.off[host]
		s.mu.Unlock()
		return time.Now().Add(d)
	}
}

// TestSkewedClocks runs a swarm whose workers' clocks are an hour ahead and
// an hour behind, then fails the leader over onto a manager whose clock is
// an hour behind in the middle of a rolling update and of a restart delay:
// rolling updates honour their monitor period and finish, restart delays
// are honoured (neither skipped nor an hour long), a joining node gets its
// share by rebalancing, and no task is ever replaced while nothing changes.
func TestSkewedClocks(t *testing.T) {
	clocks := &skewedClocks{off: map[string]time.Duration{
		"worker-1": time.Hour, "worker-2": -time.Hour, "worker-3": -time.Hour}}
	rt := swarm.NewInmemRuntime()
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 3, Workers: 2,
		Runtime: func(string) swarm.Runtime { return rt },
		Config:  func(host string, cfg *swarm.Config) { cfg.Clock = clocks.clock(host) }})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	leader := c.Leader()
	// The tasks run on the workers only, so their clocks are the ones
	// that report every task state.
	for i := 0; i < 3; i++ {
		require.NoError(t, leader.UpdateNode(ctx, c.Node(i).ID(), 0, swarm.NodeUpdate{Availability: swarm.AvailabilityDrain}))
	}
	on := true
	delay := 300 * time.Millisecond
	monitor := 200 * time.Millisecond
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx:1", Mode: swarm.Replicated(4),
		UpdateConfig:  &swarm.UpdateConfig{Parallelism: 1, Monitor: &monitor, Delay: 50 * time.Millisecond},
		RestartPolicy: swarm.RestartPolicy{Delay: &delay}, Rebalance: &on})
	require.NoError(t, err)
	// slow's restart delay is long enough to fail the leader over in it.
	slowDelay := 2 * time.Second
	_, err = leader.CreateService(ctx, swarm.ServiceSpec{Name: "slow", Image: "nginx:1",
		RestartPolicy: swarm.RestartPolicy{Delay: &slowDelay}})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "slow"))
	workers := []string{c.Node(3).ID(), c.Node(4).ID()}
	settled(t, ctx, leader, workers)

	startRollingUpdate(t, leader, "nginx:2")
	checkRollingUpdate(t, leader, "nginx:2", monitor)
	settled(t, ctx, leader, workers)
	checkRestart(t, ctx, leader, "web", crashOne(t, ctx, leader, rt, "web"), delay)
	settled(t, ctx, leader, workers)
	noChurn(t, leader)

	// Failover onto a manager whose clock is an hour behind (both
	// followers are, so whichever wins), while slow waits out its restart
	// delay and web is in the middle of a rolling update.
	victim := crashOne(t, ctx, leader, rt, "slow")
	require.Eventually(t, func() bool {
		ts, err := leader.Tasks(ctx, swarm.TaskFilter{Service: "slow", DesiredState: swarm.TaskReady})
		require.NoError(t, err)
		return len(ts) == 1
	}, waitFor, time.Millisecond, "slow's replacement waits for its restart delay")
	startRollingUpdate(t, leader, "nginx:3")
	require.Eventually(t, func() bool { return liveImages(t, leader, "web")["nginx:3"] >= 1 }, waitFor, time.Millisecond)
	clocks.set("manager-2", -time.Hour)
	clocks.set("manager-3", -time.Hour)
	c.Crash(0)
	leader = c.Leader()
	checkRollingUpdate(t, leader, "nginx:3", monitor)
	checkRestart(t, ctx, leader, "slow", victim, slowDelay)
	settled(t, ctx, leader, workers)
	noChurn(t, leader)
	checkRestart(t, ctx, leader, "web", crashOne(t, ctx, leader, rt, "web"), delay)
	settled(t, ctx, leader, workers)
	startRollingUpdate(t, leader, "nginx:4")
	checkRollingUpdate(t, leader, "nginx:4", monitor)
	settled(t, ctx, leader, workers)

	// The workers' clocks jump: the one ahead falls behind, the one behind
	// runs ahead. Nothing happens.
	clocks.set("worker-1", -time.Hour)
	clocks.set("worker-2", time.Hour)
	noChurn(t, leader)

	// A worker joins (its clock an hour behind): it gets its share.
	workers = append(workers, c.Node(c.AddNode(swarm.RoleWorker)).ID())
	require.Eventually(t, func() bool { return running(t, leader, "web")[workers[2]] >= 1 }, waitFor, 10*time.Millisecond,
		"rebalancing moves a task to the new worker")
	settled(t, ctx, leader, workers)
	noChurn(t, leader)
}

// settled waits until web runs its 4 replicas evenly over the workers (so
// rebalancing has nothing left to move) and has converged.
func settled(t *testing.T, ctx context.Context, leader *swarm.Node, workers []string) {
	t.Helper()
	var per map[string]int
	ok := assert.Eventually(t, func() bool {
		per = running(t, leader, "web")
		if total(per) != 4 {
			return false
		}
		lo, hi := 4, 0
		for _, w := range workers {
			lo, hi = min(lo, per[w]), max(hi, per[w])
		}
		return hi-lo <= 1
	}, waitFor, 10*time.Millisecond, "web runs 4 replicas spread over %d workers", len(workers))
	if !ok {
		t.Fatalf("per node %v over %v\n%s", per, workers, dumpTasks(leader))
	}
	require.NoError(t, leader.WaitConverged(ctx, "web"))
}

func startRollingUpdate(t *testing.T, leader *swarm.Node, image string) {
	t.Helper()
	updateImage(t, leader, "web", image, nil)
}

// checkRollingUpdate checks web's update to image finished, taking at
// least the monitor period per task (so it was not skipped) and well
// under the clocks' skew (so it did not stall).
func checkRollingUpdate(t *testing.T, leader *swarm.Node, image string, monitor time.Duration) {
	t.Helper()
	svc := waitUpdateState(t, leader, "web", swarm.UpdateCompleted)
	took := svc.UpdateStatus.CompletedAt.Sub(svc.UpdateStatus.StartedAt)
	require.GreaterOrEqual(t, took, 4*monitor, "each of the 4 tasks was monitored")
	require.Less(t, took, time.Minute)
	require.Eventually(t, func() bool {
		imgs := liveImages(t, leader, "web")
		return imgs[image] == 4 && len(imgs) == 1
	}, waitFor, 10*time.Millisecond)
}

// crashOne crashes one of svc's running tasks and returns it.
func crashOne(t *testing.T, ctx context.Context, leader *swarm.Node, rt *swarm.InmemRuntime, svc string) swarm.Task {
	t.Helper()
	tasks, err := leader.Tasks(ctx, swarm.TaskFilter{Service: svc, DesiredState: swarm.TaskRunning})
	require.NoError(t, err)
	require.NotEmpty(t, tasks)
	require.NoError(t, rt.CrashTask(tasks[0].ID, 1))
	return tasks[0]
}

// checkRestart checks that the crashed task's slot gets exactly one
// replacement, which started after the restart delay (by the cluster's
// own times: the failure's and the replacement's running state), not an
// hour later.
func checkRestart(t *testing.T, ctx context.Context, leader *swarm.Node, svc string, victim swarm.Task, delay time.Duration) {
	t.Helper()
	var failed, repl swarm.Task
	require.Eventually(t, func() bool {
		ts, err := leader.Tasks(ctx, swarm.TaskFilter{Service: svc})
		require.NoError(t, err)
		var newer []swarm.Task
		for _, tk := range ts {
			switch {
			case tk.ID == victim.ID:
				failed = tk
			case tk.Slot == victim.Slot && tk.CreatedIndex > victim.CreatedIndex:
				newer = append(newer, tk)
			}
		}
		require.LessOrEqual(t, len(newer), 1, "one replacement in slot %d: %+v", victim.Slot, newer)
		if len(newer) == 0 || failed.Status.State != swarm.TaskFailed {
			return false
		}
		repl = newer[0]
		return repl.Status.State == swarm.TaskRunning
	}, waitFor, 5*time.Millisecond, "the crashed task of %s is replaced", svc)
	require.True(t, repl.CreatedAt.After(failed.Status.Timestamp), "cluster time moves forward: replacement created at %v, failure at %v",
		repl.CreatedAt, failed.Status.Timestamp)
	after := repl.Status.Timestamp.Sub(failed.Status.Timestamp)
	require.GreaterOrEqual(t, after, delay, "restarted after the restart delay")
	require.Less(t, after, time.Minute, "restarted after the restart delay, not an hour later")
}

// noChurn checks that web's tasks stay as they are while nothing changes:
// no new task in any slot, the same 4 running.
func noChurn(t *testing.T, leader *swarm.Node) {
	t.Helper()
	ids := func() (all map[string]bool, live string) {
		ts, err := leader.Tasks(context.Background(), swarm.TaskFilter{Service: "web"})
		require.NoError(t, err)
		all = map[string]bool{}
		var run []string
		for _, tk := range ts {
			all[tk.ID] = true
			if tk.DesiredState == swarm.TaskRunning && tk.Status.State == swarm.TaskRunning {
				run = append(run, fmt.Sprintf("%d:%s", tk.Slot, tk.ID))
			}
		}
		return all, fmt.Sprint(run)
	}
	before, live := ids()
	require.Never(t, func() bool {
		now, l := ids()
		for id := range now {
			if !before[id] {
				return true
			}
		}
		return l != live
	}, time.Second, 20*time.Millisecond, "no task replaced while nothing changes")
}

func dumpTasks(n *swarm.Node) string {
	ts, _ := n.Tasks(context.Background(), swarm.TaskFilter{})
	out := ""
	for _, tk := range ts {
		out += fmt.Sprintf("%s slot %d node %s desired %s status %+v idx %d\n", tk.ID, tk.Slot, tk.NodeID, tk.DesiredState, tk.Status, tk.CreatedIndex)
	}
	return out
}
