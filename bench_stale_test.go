package swarm_test

import (
	"context"
	"testing"

	"github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
	"github.com/stretchr/testify/require"
)

// BenchmarkStaleRead is BenchmarkLinearizableRead's baseline: the same
// parallel reads under WithStaleReads, served from local state.
func BenchmarkStaleRead(b *testing.B) {
	c := swarmtest.NewCluster(b, swarmtest.Options{Managers: 3})
	ctx := swarm.WithStaleReads(context.Background())
	leader := c.Leader()
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx"})
	require.NoError(b, err)
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := leader.Service(ctx, "web"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
