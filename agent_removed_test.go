package swarm_test

import (
	"testing"
	"time"

	"github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
	"github.com/stretchr/testify/require"
)

// A worker that was cut off while its service was removed learns, when it
// answers again, that it has no tasks: its runners then end after their
// tasks have left the assignments, and their containers must still go (no
// later assignment names those tasks, and the sweep spares history).
func TestRemovedWhileHungLeavesNoContainer(t *testing.T) {
	rts := map[string]*swarm.InmemRuntime{}
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Workers: 1,
		Runtime: func(host string) swarm.Runtime {
			rts[host] = swarm.NewInmemRuntime()
			return rts[host]
		},
		Config: func(host string, cfg *swarm.Config) {
			if host == "manager-1" {
				cfg.Runtime = nil // every task on the worker
			}
		}})
	ctx := ctxT(t)
	m := c.Leader()
	_, err := m.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "x", Mode: swarm.Replicated(3)})
	require.NoError(t, err)
	require.NoError(t, m.WaitConverged(ctx, "web"))
	wrt := rts["worker-1"]
	require.Equal(t, 3, wrt.Running(""))

	release := swarm.HangNode(c.Node(1))
	require.Eventually(t, func() bool { return nodeState(t, m, c.Node(1).ID()) == swarm.NodeDown }, waitFor, 20*time.Millisecond)
	require.NoError(t, m.RemoveService(ctx, "web"))
	release()

	require.Eventually(t, func() bool { return len(wrt.Containers()) == 0 }, waitFor, 20*time.Millisecond,
		"containers left on the worker: %v", wrt.Containers())
}
