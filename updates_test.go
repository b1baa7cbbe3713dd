package swarm_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
	"github.com/stretchr/testify/require"
)

// sampler polls f in the background and keeps the smallest and largest
// values it saw, until stop is called; a negative value (f could not
// count) is no sample.
type sampler struct {
	min, max atomic.Int64
	stop     func()
}

func sample(f func() int) *sampler {
	s := &sampler{}
	s.min.Store(1 << 30)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			v := int64(f())
			if v < 0 {
				continue
			}
			if v < s.min.Load() {
				s.min.Store(v)
			}
			if v > s.max.Load() {
				s.max.Store(v)
			}
			time.Sleep(200 * time.Microsecond) // sampling rate, not synchronisation
		}
	}()
	s.stop = func() { cancel(); wg.Wait() }
	return s
}

// runningCount counts the service's tasks that want to run and do, or
// returns -1 if the node cannot tell; unlike running it may be called from
// any goroutine.
func runningCount(n *swarm.Node, svc string) int {
	tasks, err := n.Tasks(context.Background(), swarm.TaskFilter{Service: svc, DesiredState: swarm.TaskRunning})
	if err != nil {
		return -1
	}
	k := 0
	for _, tk := range tasks {
		if tk.Status.State == swarm.TaskRunning {
			k++
		}
	}
	return k
}

func ms(d time.Duration) *time.Duration { return &d }

// sharedCluster starts a cluster whose nodes share one InmemRuntime, so a
// test can count every container of the swarm at once.
func sharedCluster(t *testing.T, managers, workers int) (*swarmtest.Cluster, *swarm.InmemRuntime) {
	rt := swarm.NewInmemRuntime()
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: managers, Workers: workers,
		Runtime: func(string) swarm.Runtime { return rt }})
	return c, rt
}

func updateImage(t *testing.T, n *swarm.Node, svc, image string, mutate func(*swarm.ServiceSpec)) {
	t.Helper()
	cur, err := n.Service(context.Background(), svc)
	require.NoError(t, err)
	spec := cur.Spec
	spec.Image = image
	if mutate != nil {
		mutate(&spec)
	}
	require.NoError(t, n.UpdateService(context.Background(), svc, cur.Version, spec))
}

func waitUpdateState(t *testing.T, n *swarm.Node, svc string, want swarm.UpdateState) swarm.Service {
	t.Helper()
	var got swarm.Service
	require.Eventually(t, func() bool {
		var err error
		got, err = n.Service(context.Background(), svc)
		require.NoError(t, err)
		return got.UpdateStatus != nil && got.UpdateStatus.State == want
	}, 30*time.Second, 5*time.Millisecond, "update state of %s: %+v", svc, got.UpdateStatus)
	return got
}

func liveImages(t *testing.T, n *swarm.Node, svc string) map[string]int {
	tasks, err := n.Tasks(context.Background(), swarm.TaskFilter{Service: svc, DesiredState: swarm.TaskRunning})
	require.NoError(t, err)
	out := map[string]int{}
	for _, tk := range tasks {
		if tk.Status.State == swarm.TaskRunning {
			out[tk.Spec.Image]++
		}
	}
	return out
}

func TestRollingUpdateStopFirst(t *testing.T) {
	c, rt := sharedCluster(t, 1, 3)
	ctx := ctxT(t)
	leader := c.Leader()
	upd := &swarm.UpdateConfig{Parallelism: 2, Monitor: ms(50 * time.Millisecond)}
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx:1", Mode: swarm.Replicated(6), UpdateConfig: upd})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "web"))
	s := sample(func() int { return rt.Running("") })
	updateImage(t, leader, "web", "nginx:2", nil)
	svc := waitUpdateState(t, leader, "web", swarm.UpdateCompleted)
	require.NoError(t, leader.WaitConverged(ctx, "web"))
	s.stop()
	require.GreaterOrEqual(t, s.min.Load(), int64(4), "never more than 2 replicas down")
	require.LessOrEqual(t, s.max.Load(), int64(6), "stop-first never runs extra tasks")
	require.Equal(t, map[string]int{"nginx:2": 6}, liveImages(t, leader, "web"))
	require.Equal(t, "update completed", svc.UpdateStatus.Message)
	require.False(t, svc.UpdateStatus.CompletedAt.Before(svc.UpdateStatus.StartedAt))
}

func TestRollingUpdateStartFirst(t *testing.T) {
	c, rt := sharedCluster(t, 1, 3)
	ctx := ctxT(t)
	leader := c.Leader()
	upd := &swarm.UpdateConfig{Parallelism: 2, Monitor: ms(50 * time.Millisecond), Order: swarm.UpdateStartFirst}
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx:1", Mode: swarm.Replicated(6), UpdateConfig: upd})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "web"))
	s := sample(func() int { return rt.Running("") })
	updateImage(t, leader, "web", "nginx:2", nil)
	waitUpdateState(t, leader, "web", swarm.UpdateCompleted)
	require.NoError(t, leader.WaitConverged(ctx, "web"))
	require.Eventually(t, func() bool { return rt.Running("") == 6 }, waitFor, 5*time.Millisecond)
	s.stop()
	require.LessOrEqual(t, s.max.Load(), int64(8), "never more than 8 tasks running")
	require.GreaterOrEqual(t, s.min.Load(), int64(6), "start-first never drops below the replica count")
	require.Equal(t, map[string]int{"nginx:2": 6}, liveImages(t, leader, "web"))
}

func TestUpdateFailureRollsBack(t *testing.T) {
	c, _ := sharedCluster(t, 1, 2)
	ctx := ctxT(t)
	leader := c.Leader()
	upd := &swarm.UpdateConfig{Parallelism: 1, Monitor: ms(200 * time.Millisecond), FailureAction: swarm.UpdateActionRollback}
	rb := &swarm.UpdateConfig{Parallelism: 0, Monitor: ms(50 * time.Millisecond)}
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "api", Image: "nginx:1", Mode: swarm.Replicated(4),
		UpdateConfig: upd, RollbackConfig: rb})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "api"))
	// The new image's containers exit at once.
	updateImage(t, leader, "api", "inmem/exit:1", nil)
	svc := waitUpdateState(t, leader, "api", swarm.UpdateRollbackCompleted)
	require.Equal(t, "nginx:1", svc.Spec.Image)
	require.NoError(t, leader.WaitConverged(ctx, "api"))
	require.Equal(t, map[string]int{"nginx:1": 4}, liveImages(t, leader, "api"))
}

func TestUpdateFailurePauses(t *testing.T) {
	c, _ := sharedCluster(t, 1, 2)
	ctx := ctxT(t)
	leader := c.Leader()
	upd := &swarm.UpdateConfig{Parallelism: 1, Monitor: ms(200 * time.Millisecond)} // failure action: pause (default)
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "api", Image: "nginx:1", Mode: swarm.Replicated(4), UpdateConfig: upd})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "api"))
	updateImage(t, leader, "api", "inmem/exit:1", nil)
	svc := waitUpdateState(t, leader, "api", swarm.UpdatePaused)
	require.Contains(t, svc.UpdateStatus.Message, "update paused due to failure")
	// Paused: the other replicas keep the old image.
	require.Eventually(t, func() bool { return liveImages(t, leader, "api")["nginx:1"] == 3 }, waitFor, 10*time.Millisecond)

	// A manual rollback brings the old spec back everywhere.
	require.NoError(t, leader.RollbackService(ctx, "api", 0))
	svc = waitUpdateState(t, leader, "api", swarm.UpdateRollbackCompleted)
	require.Equal(t, "nginx:1", svc.Spec.Image)
	require.NoError(t, leader.WaitConverged(ctx, "api"))
	require.Equal(t, map[string]int{"nginx:1": 4}, liveImages(t, leader, "api"))
}

func TestForceUpdateRedeploys(t *testing.T) {
	c, _ := sharedCluster(t, 1, 1)
	ctx := ctxT(t)
	leader := c.Leader()
	upd := &swarm.UpdateConfig{Parallelism: 0, Monitor: ms(10 * time.Millisecond)}
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "f", Image: "nginx", Mode: swarm.Replicated(3), UpdateConfig: upd})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "f"))
	before, err := leader.Tasks(ctx, swarm.TaskFilter{Service: "f", DesiredState: swarm.TaskRunning})
	require.NoError(t, err)
	updateImage(t, leader, "f", "nginx", func(s *swarm.ServiceSpec) { s.ForceUpdate++ })
	waitUpdateState(t, leader, "f", swarm.UpdateCompleted)
	require.NoError(t, leader.WaitConverged(ctx, "f"))
	after, err := leader.Tasks(ctx, swarm.TaskFilter{Service: "f", DesiredState: swarm.TaskRunning})
	require.NoError(t, err)
	require.Len(t, after, 3)
	old := map[string]bool{}
	for _, tk := range before {
		old[tk.ID] = true
	}
	for _, tk := range after {
		require.False(t, old[tk.ID], "every task was redeployed")
	}
	// A rollback with nothing to roll back to is refused.
	_, err = leader.CreateService(ctx, swarm.ServiceSpec{Name: "fresh", Image: "nginx"})
	require.NoError(t, err)
	require.ErrorIs(t, leader.RollbackService(ctx, "fresh", 0), swarm.ErrInvalidSpec)
}

func TestRestartMaxAttempts(t *testing.T) {
	c, _ := sharedCluster(t, 1, 1)
	ctx := ctxT(t)
	leader := c.Leader()
	rp := swarm.RestartPolicy{Condition: swarm.RestartOnFailure, MaxAttempts: 3, Delay: ms(10 * time.Millisecond)}
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "crash", Image: "inmem/exit:3", RestartPolicy: rp})
	require.NoError(t, err)
	count := func() (all, failed int) {
		ts, err := leader.Tasks(ctx, swarm.TaskFilter{Service: "crash"})
		require.NoError(t, err)
		for _, tk := range ts {
			if tk.Status.State == swarm.TaskFailed {
				failed++
			}
		}
		return len(ts), failed
	}
	require.Eventually(t, func() bool { _, f := count(); return f == 4 }, waitFor, 5*time.Millisecond,
		"the first task and its 3 restarts fail")
	// No fifth task comes: wait past several restart delays, then look.
	ts, err := leader.Tasks(ctx, swarm.TaskFilter{Service: "crash"})
	require.NoError(t, err)
	last := ts[0]
	require.Equal(t, uint64(3), last.Attempt)
	require.Never(t, func() bool { all, _ := count(); return all > 4 }, 300*time.Millisecond, 10*time.Millisecond)

	// on-failure does not restart a task that exits 0.
	_, err = leader.CreateService(ctx, swarm.ServiceSpec{Name: "ok", Image: "inmem/exit:0",
		RestartPolicy: swarm.RestartPolicy{Condition: swarm.RestartOnFailure}})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		ts, err := leader.Tasks(ctx, swarm.TaskFilter{Service: "ok"})
		require.NoError(t, err)
		return len(ts) == 1 && ts[0].Status.State == swarm.TaskComplete
	}, waitFor, 5*time.Millisecond)
}

func TestRebalanceAfterJoin(t *testing.T) {
	rt := swarm.NewInmemRuntime()
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Workers: 1,
		Runtime: func(string) swarm.Runtime { return rt }})
	ctx := ctxT(t)
	leader := c.Leader()
	on := true
	upd := &swarm.UpdateConfig{Parallelism: 2, Monitor: ms(20 * time.Millisecond)}
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx", Mode: swarm.Replicated(8),
		UpdateConfig: upd, Rebalance: &on})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "web"))
	s := sample(func() int { return runningCount(leader, "web") })
	t.Cleanup(s.stop) // also when the test fails before it stops the sampler
	c.AddNode(swarm.RoleWorker)
	c.AddNode(swarm.RoleWorker)
	require.Eventually(t, func() bool {
		per := running(t, leader, "web")
		if len(per) != 4 || total(per) != 8 {
			return false
		}
		for _, k := range per {
			if k != 2 {
				return false
			}
		}
		return true
	}, waitFor, 10*time.Millisecond, "8 replicas even out over 4 nodes")
	s.stop()
	require.GreaterOrEqual(t, s.min.Load(), int64(8), "never fewer running replicas than desired")

	// Without the opt-in nothing moves (Swarm's behaviour).
	_, err = leader.CreateService(ctx, swarm.ServiceSpec{Name: "still", Image: "nginx", Mode: swarm.Replicated(4),
		Placement: swarm.Placement{Constraints: []string{"node.hostname!=worker-3"}}})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "still"))
}

func TestConstraintEnforcer(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Workers: 2})
	ctx := ctxT(t)
	leader := c.Leader()
	w1 := c.Node(1).ID()
	require.NoError(t, leader.UpdateNode(ctx, w1, 0, swarm.NodeUpdate{Labels: map[string]string{"tier": "db"}}))
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "db", Image: "postgres", Mode: swarm.Replicated(2),
		Placement: swarm.Placement{Constraints: []string{"node.labels.tier==db"}}})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "db"))
	require.Equal(t, map[string]int{w1: 2}, running(t, leader, "db"))
	// The label moves: the tasks follow it.
	w2 := c.Node(2).ID()
	require.NoError(t, leader.UpdateNode(ctx, w1, 0, swarm.NodeUpdate{Labels: map[string]string{}}))
	require.NoError(t, leader.UpdateNode(ctx, w2, 0, swarm.NodeUpdate{Labels: map[string]string{"tier": "db"}}))
	require.Eventually(t, func() bool {
		per := running(t, leader, "db")
		return per[w2] == 2 && per[w1] == 0
	}, waitFor, 10*time.Millisecond)
}
