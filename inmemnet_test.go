package swarm_test

import (
	"testing"
	"time"

	"github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// A cluster on the in-memory network runs a service; a worker cut off by
// Partition (no root, no sockets) is declared down and its tasks move;
// after Heal it is ready again and gets tasks back (Rebalance); shut down,
// the cluster leaves no goroutines.
func TestInmemNetworkPartitionHeal(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Workers: 2, Network: swarmtest.InmemNetwork})
	ctx := ctxT(t)
	leader := c.Leader()
	rebalance := true
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx",
		Mode: swarm.Replicated(6), Rebalance: &rebalance})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "web"))
	w := c.Node(2).ID()
	require.Eventually(t, func() bool { return running(t, leader, "web")[w] > 0 }, waitFor, 10*time.Millisecond)

	c.Partition([]int{2}, []int{0, 1})
	require.Eventually(t, func() bool { return nodeState(t, leader, w) == swarm.NodeDown }, waitFor, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		per := running(t, leader, "web")
		return per[w] == 0 && total(per) == 6
	}, waitFor, 10*time.Millisecond)

	c.Heal()
	require.Eventually(t, func() bool { return nodeState(t, leader, w) == swarm.NodeReady }, waitFor, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		per := running(t, leader, "web")
		return per[w] > 0 && total(per) == 6
	}, waitFor, 10*time.Millisecond)

	c.Shutdown()
	goleak.VerifyNone(t, ignore)
}

// A one-way cut (the leader can no longer reach a worker) is also
// detected on the in-memory network.
func TestInmemNetworkOneWayPartition(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Workers: 2, Network: swarmtest.InmemNetwork})
	ctx := ctxT(t)
	leader := c.Leader()
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx", Mode: swarm.Replicated(4)})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "web"))
	w := c.Node(2).ID()
	c.PartitionOneWay([]int{2}, []int{0, 1})
	require.Eventually(t, func() bool { return nodeState(t, leader, w) == swarm.NodeDown }, waitFor, 10*time.Millisecond)
	c.Heal()
	require.Eventually(t, func() bool { return nodeState(t, leader, w) == swarm.NodeReady }, waitFor, 10*time.Millisecond)
}
