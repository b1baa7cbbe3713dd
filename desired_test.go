package swarm_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
	"github.com/stretchr/testify/require"
)

// splitCluster starts a cluster whose nodes share one InmemRuntime, except
// the host named bad, which gets its own: a test makes that one misbehave
// and still counts every container of the swarm.
func splitCluster(t *testing.T, managers, workers int, bad string) (c *swarmtest.Cluster, good, badRT *swarm.InmemRuntime) {
	good, badRT = swarm.NewInmemRuntime(), swarm.NewInmemRuntime()
	c = swarmtest.NewCluster(t, swarmtest.Options{Managers: managers, Workers: workers,
		Runtime: func(host string) swarm.Runtime {
			if host == bad {
				return badRT
			}
			return good
		}})
	return c, good, badRT
}

// tasksOn counts the service's tasks on node in the given state.
func tasksOn(t *testing.T, n *swarm.Node, svc, node string, state swarm.TaskState) int {
	t.Helper()
	tasks, err := n.Tasks(context.Background(), swarm.TaskFilter{Service: svc, Node: node})
	require.NoError(t, err)
	k := 0
	for _, tk := range tasks {
		if tk.Status.State == state {
			k++
		}
	}
	return k
}

// taskCount counts all the service's tasks, history included.
func taskCount(t *testing.T, n *swarm.Node, svc string) int {
	t.Helper()
	tasks, err := n.Tasks(context.Background(), swarm.TaskFilter{Service: svc})
	require.NoError(t, err)
	return len(tasks)
}

// TestRebalanceNeverBelowDesired joins a node whose runtime rejects every
// create to a service that rebalances: the moves onto it fail, the tasks
// they were to replace keep running, and after 5 failures the node is no
// target any more, so the service settles at its 8 replicas where they
// were.
func TestRebalanceNeverBelowDesired(t *testing.T) {
	c, good, bad := splitCluster(t, 1, 1, "worker-2")
	bad.SetBehavior(func(swarm.ContainerConfig) swarm.InmemBehavior {
		return swarm.InmemBehavior{CreateError: errors.New("no space left on device")}
	})
	ctx := ctxT(t)
	leader := c.Leader()
	on := true
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx", Mode: swarm.Replicated(8),
		UpdateConfig:  &swarm.UpdateConfig{Parallelism: 2, Monitor: ms(20 * time.Millisecond)},
		RestartPolicy: swarm.RestartPolicy{Delay: ms(20 * time.Millisecond)}, Rebalance: &on})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "web"))
	inState := sample(func() int { return runningCount(leader, "web") })
	t.Cleanup(inState.stop)
	inRuntime := sample(func() int { return good.Running("") + bad.Running("") })
	t.Cleanup(inRuntime.stop)

	badID := c.Node(c.AddNode(swarm.RoleWorker)).ID()
	require.Eventually(t, func() bool { return tasksOn(t, leader, "web", badID, swarm.TaskRejected) >= 5 },
		waitFor, 5*time.Millisecond, "rebalancing tries the new node")
	// Ranked last and left out of the spread: no more moves, and nothing
	// else changes (each retry would add a task, 20 ms apart).
	before := taskCount(t, leader, "web")
	require.Never(t, func() bool { return taskCount(t, leader, "web") != before }, 300*time.Millisecond, 10*time.Millisecond)
	inState.stop()
	inRuntime.stop()
	require.GreaterOrEqual(t, inState.min.Load(), int64(8), "running tasks in the state never below desired")
	require.GreaterOrEqual(t, inRuntime.min.Load(), int64(8), "running containers never below desired")
	require.Equal(t, 8, runningCount(leader, "web"))
	require.Equal(t, 8, good.Running(""))
	require.Zero(t, bad.Running(""))
}

// TestStartFirstUpdateNeverBelowDesired updates a start-first service to an
// image that one node cannot create: replacements there fail and are
// retried after the restart delay while the old tasks keep running; after
// 5 failures the node ranks last, the replacements go elsewhere and the
// update completes with all 8 replicas on the new image.
func TestStartFirstUpdateNeverBelowDesired(t *testing.T) {
	c, good, bad := splitCluster(t, 1, 3, "worker-3")
	bad.SetBehavior(func(cc swarm.ContainerConfig) swarm.InmemBehavior {
		if cc.Spec.Image == "nginx:2" {
			return swarm.InmemBehavior{CreateError: errors.New("image not found")}
		}
		return swarm.InmemBehavior{}
	})
	ctx := ctxT(t)
	leader := c.Leader()
	upd := &swarm.UpdateConfig{Parallelism: 2, Monitor: ms(20 * time.Millisecond),
		Order: swarm.UpdateStartFirst, FailureAction: swarm.UpdateActionContinue}
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx:1", Mode: swarm.Replicated(8),
		UpdateConfig: upd, RestartPolicy: swarm.RestartPolicy{Delay: ms(20 * time.Millisecond)}})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "web"))
	badID := c.Node(3).ID()
	require.NotZero(t, bad.Running(""), "the bad node runs old replicas")
	inState := sample(func() int { return runningCount(leader, "web") })
	t.Cleanup(inState.stop)
	inRuntime := sample(func() int { return good.Running("") + bad.Running("") })
	t.Cleanup(inRuntime.stop)

	updateImage(t, leader, "web", "nginx:2", nil)
	waitUpdateState(t, leader, "web", swarm.UpdateCompleted)
	require.NoError(t, leader.WaitConverged(ctx, "web"))
	require.Eventually(t, func() bool { return good.Running("")+bad.Running("") == 8 }, waitFor, 5*time.Millisecond)
	inState.stop()
	inRuntime.stop()
	require.GreaterOrEqual(t, inState.min.Load(), int64(8), "running tasks in the state never below desired")
	require.GreaterOrEqual(t, inRuntime.min.Load(), int64(8), "running containers never below desired")
	// Replaced tasks are told to stop once their replacements run, and the
	// next wave may start while their containers are still stopping (as in
	// SwarmKit), so the bound on extras holds for the tasks that want to
	// run, not for the containers still winding down.
	require.LessOrEqual(t, inState.max.Load(), int64(10), "at most Parallelism extra")
	require.Equal(t, map[string]int{"nginx:2": 8}, liveImages(t, leader, "web"))
	require.GreaterOrEqual(t, tasksOn(t, leader, "web", badID, swarm.TaskRejected), 1, "the bad node was tried")
	require.Zero(t, bad.Running(""), "no replica left on the node that cannot run the image")
}

// TestStartFirstUpdatePausesAboveDesired is the same update with the
// default failure action: the first failed replacement pauses it, and the
// old task it was to replace still runs.
func TestStartFirstUpdatePausesAboveDesired(t *testing.T) {
	c, good, bad := splitCluster(t, 1, 1, "worker-1")
	bad.SetBehavior(func(cc swarm.ContainerConfig) swarm.InmemBehavior {
		if cc.Spec.Image == "nginx:2" {
			return swarm.InmemBehavior{CreateError: errors.New("image not found")}
		}
		return swarm.InmemBehavior{}
	})
	ctx := ctxT(t)
	leader := c.Leader()
	upd := &swarm.UpdateConfig{Parallelism: 1, Monitor: ms(20 * time.Millisecond), Order: swarm.UpdateStartFirst}
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx:1", Mode: swarm.Replicated(4), UpdateConfig: upd})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "web"))
	s := sample(func() int { return runningCount(leader, "web") })
	t.Cleanup(s.stop)
	updateImage(t, leader, "web", "nginx:2", nil)
	waitUpdateState(t, leader, "web", swarm.UpdatePaused)
	require.Eventually(t, func() bool { return runningCount(leader, "web") == 4 && good.Running("")+bad.Running("") == 4 },
		waitFor, 5*time.Millisecond)
	s.stop()
	require.GreaterOrEqual(t, s.min.Load(), int64(4), "never below desired")
}

// TestFailingNodeRankedLast runs a service whose tasks always fail on one
// node: after 5 failures there the node ranks last for that service, whose
// tasks then all run on the healthy nodes, while another service still
// places a task on it.
func TestFailingNodeRankedLast(t *testing.T) {
	c, good, bad := splitCluster(t, 1, 2, "worker-2")
	bad.SetBehavior(func(cc swarm.ContainerConfig) swarm.InmemBehavior {
		if cc.ServiceName == "a" {
			return swarm.InmemBehavior{StartError: errors.New("exec format error")}
		}
		return swarm.InmemBehavior{}
	})
	ctx := ctxT(t)
	leader := c.Leader()
	badID := c.Node(2).ID()
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "a", Image: "app", Mode: swarm.Replicated(3),
		RestartPolicy: swarm.RestartPolicy{Delay: ms(10 * time.Millisecond)}})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		per := running(t, leader, "a")
		return total(per) == 3 && per[badID] == 0
	}, waitFor, 5*time.Millisecond, "a's tasks end up on the healthy nodes")
	require.GreaterOrEqual(t, tasksOn(t, leader, "a", badID, swarm.TaskFailed), 5)
	// Settled: no more attempts on the bad node (one would come every 10 ms).
	before := taskCount(t, leader, "a")
	require.Never(t, func() bool { return taskCount(t, leader, "a") != before }, 300*time.Millisecond, 10*time.Millisecond)
	require.Equal(t, 3, good.Running(""))

	// Another service is not affected: it spreads over all three nodes.
	_, err = leader.CreateService(ctx, swarm.ServiceSpec{Name: "b", Image: "app", Mode: swarm.Replicated(3)})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "b"))
	require.Equal(t, 1, running(t, leader, "b")[badID], "b still uses the node")
	require.Equal(t, 1, bad.Running(""))
}
