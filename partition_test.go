package swarm_test

import (
	"testing"
	"time"

	"github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
	"github.com/stretchr/testify/require"
)

// A leader cut off from the other managers loses leadership; the majority
// elects a new leader and keeps accepting writes; after the heal the old
// leader follows and has every write.
func TestPartitionedLeaderIsReplaced(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 3, Workers: 1, Partitions: true})
	ctx := ctxT(t)
	old := c.Leader()
	oi := c.Index(old)
	_, err := old.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx", Mode: swarm.Replicated(4)})
	require.NoError(t, err)
	require.NoError(t, old.WaitConverged(ctx, "web"))

	var rest []int
	for i := range c.Nodes() {
		if i != oi {
			rest = append(rest, i)
		}
	}
	c.Partition([]int{oi}, rest)
	var other *swarm.Node
	for _, i := range rest {
		if i < 3 {
			other = c.Node(i)
			break
		}
	}
	require.NoError(t, other.ScaleService(ctx, "web", 6), "the majority side accepts writes")
	require.Eventually(t, func() bool { return !old.IsLeader() }, waitFor, 10*time.Millisecond, "the cut-off leader steps down")
	require.Eventually(t, func() bool { return nodeState(t, other, old.ID()) == swarm.NodeDown }, waitFor, 10*time.Millisecond)
	require.NoError(t, other.WaitConverged(ctx, "web"))
	require.Zero(t, running(t, other, "web")[old.ID()], "its tasks run elsewhere")

	c.Heal()
	require.Eventually(t, func() bool {
		svc, err := old.Service(ctx, "web")
		return err == nil && svc.Spec.Mode.Replicas == 6
	}, waitFor, 20*time.Millisecond, "the old leader catches up after the heal")
	require.Eventually(t, func() bool { return nodeState(t, other, old.ID()) == swarm.NodeReady }, waitFor, 10*time.Millisecond)
}

// A worker cut off from everyone is declared down and its tasks move.
func TestPartitionedWorkerIsDeclaredDown(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Workers: 2, Partitions: true})
	ctx := ctxT(t)
	leader := c.Leader()
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx", Mode: swarm.Replicated(6)})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "web"))
	w := c.Node(2).ID()
	c.Partition([]int{2}, []int{0, 1})
	require.Eventually(t, func() bool { return nodeState(t, leader, w) == swarm.NodeDown }, waitFor, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		per := running(t, leader, "web")
		return per[w] == 0 && total(per) == 6
	}, waitFor, 10*time.Millisecond)
	c.Heal()
	require.Eventually(t, func() bool { return nodeState(t, leader, w) == swarm.NodeReady }, waitFor, 10*time.Millisecond)
	// Back on the network, the worker stops its replaced tasks' containers.
	rt := c.Runtime(2).(*swarm.InmemRuntime)
	require.Eventually(t, func() bool { return rt.Running(w) == 0 }, waitFor, 10*time.Millisecond)
}
