package swarm_test

import (
	"context"
	"testing"
	"time"

	"github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
	"github.com/stretchr/testify/require"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// runningPerNode counts the service's running tasks on each node.
func runningPerNode(t *testing.T, n *swarm.Node, svc string) map[string]int {
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

func TestClusterSpreadsReplicas(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 3, Workers: 2})
	ctx := ctxT(t)
	leader := c.Leader()
	svc, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx", Mode: swarm.Replicated(6)})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, svc.ID))
	per := runningPerNode(t, leader, "web")
	total := 0
	for node, k := range per {
		require.LessOrEqual(t, k, 2, "node %s runs %d", node, k)
		total += k
	}
	require.Equal(t, 6, total)
	nodes, err := leader.Nodes(ctx)
	require.NoError(t, err)
	require.Len(t, nodes, 5)
}
