package swarm_test

import (
	"testing"

	"github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// A shut-down cluster leaves no goroutines behind: not Raft's, not
// gossip's, not the agents', not the transport's.
func TestShutdownLeavesNoGoroutines(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 3, Workers: 2, Persistent: true})
	ctx := ctxT(t)
	leader := c.Leader()
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx", Mode: swarm.Replicated(6)})
	require.NoError(t, err)
	_, err = leader.CreateService(ctx, swarm.ServiceSpec{Name: "g", Image: "nginx", Mode: swarm.Global()})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "web"))
	require.NoError(t, leader.WaitConverged(ctx, "g"))
	// Exercise crash, restart and leave paths too.
	c.Crash(4)
	c.Restart(3)
	require.NoError(t, c.Node(3).Leave())
	c.Shutdown()
	goleak.VerifyNone(t, ignore)
}
