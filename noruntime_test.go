package swarm_test

import (
	"testing"

	"github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
	"github.com/stretchr/testify/require"
)

// A node started without a Runtime says so in its record and never gets a
// task, replicated or global.
func TestNodeWithoutRuntimeGetsNoTasks(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Workers: 2,
		Config: func(host string, cfg *swarm.Config) {
			if host == "manager-1" {
				cfg.Runtime = nil
			}
		}})
	ctx := ctxT(t)
	m := c.Leader()
	info, err := m.Node(ctx, m.ID())
	require.NoError(t, err)
	require.True(t, info.NoRuntime)

	_, err = m.CreateService(ctx, swarm.ServiceSpec{Name: "r", Image: "x", Mode: swarm.Replicated(6)})
	require.NoError(t, err)
	_, err = m.CreateService(ctx, swarm.ServiceSpec{Name: "g", Image: "x", Mode: swarm.Global()})
	require.NoError(t, err)
	require.NoError(t, m.WaitConverged(ctx, "r"))
	require.NoError(t, m.WaitConverged(ctx, "g"))
	tasks, err := m.Tasks(ctx, swarm.TaskFilter{DesiredState: swarm.TaskRunning})
	require.NoError(t, err)
	require.Len(t, tasks, 8) // 6 replicas + one global task on each worker
	for _, tk := range tasks {
		require.NotEqual(t, m.ID(), tk.NodeID, "task %s placed on the node without a runtime", tk.ID)
	}
}
